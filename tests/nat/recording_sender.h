// A DatagramSender that keeps what it is given, stamped with the injected clock: what the STUN
// and TURN client tests read back byte for byte. `accept = false` plays a kernel that refuses.
#pragma once

#include <span>
#include <vector>

#include "punch/clock.h"
#include "punch/udp_socket.h"
#include "stun/address.h"

namespace punch::testing {

struct Sent {
    stun::Address to;
    std::vector<std::byte> datagram;
    Time at;
};

class RecordingSender final : public DatagramSender {
public:
    explicit RecordingSender(const Clock& clock) : clock_(clock) {}
    bool send_to(const stun::Address& to, std::span<const std::byte> datagram) override {
        sent.push_back({to, {datagram.begin(), datagram.end()}, clock_.now()});
        return accept;
    }
    std::vector<Sent> sent;
    bool accept = true;

private:
    const Clock& clock_;
};

}  // namespace punch::testing
