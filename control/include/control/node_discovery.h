// An SFU node's NAT self-discovery (docs/sfu.md, "A node behind a NAT"): its public address and
// its RFC 5780 NAT type, learnt from the one SFU port, without DPDK.
//
// A node has one port to learn from, where a client's probe (punch/probe.h) has two sockets:
// the filtering tests need a mapping that has only ever sent to the server's primary address
// (RFC 5780 §4.4), and the mapping tests send to its alternate address, which would open an
// address-dependent filter to it. So the order is what keeps the tests honest:
//   1. test I: a Binding request to the primary address (mapping test I and filtering test I
//      at once): the public address, and OTHER-ADDRESS
//   2. filtering tests II and III, together, to the primary address with CHANGE-REQUEST
//      (change IP and port; change port): the filter is measured before anything has gone to
//      the alternate address
//   3. mapping tests II and III, together, to the alternate IP (primary port; alternate port),
//      unless test I showed no NAT
// then punch::classify() decides (nat/include/punch/nat_classify.h). Every transaction is a
// punch::StunClient's (RFC 8489 §6.2.1 retransmissions, bounded by the policy's
// max_duration), so the whole run ends within three bounds of its start.
//
// Run it when the SFU port has sent nothing to the alternate address for longer than any NAT
// keeps a filter open (Linux conntrack: 30 s for unreplied UDP, 120 s for a stream): at
// start-up. A second run soon after the first reads the filter its own mapping tests opened.
//
// The datagrams go through the caller's punch::DatagramSender (the engine: a frame through a
// worker from the SFU address; tests: a kernel UDP socket or a recording fake), and the
// answers come back through on_datagram(). Time is the caller's Clock and TimerQueue: nothing
// here sleeps or reads a system clock.
#pragma once

#include <functional>
#include <optional>
#include <span>

#include "punch/clock.h"
#include "punch/nat_classify.h"
#include "punch/stun_transaction.h"
#include "punch/timer_queue.h"
#include "punch/udp_socket.h"
#include "stun/address.h"

namespace control {

/// What a run found.
struct DiscoveryReport {
    /// Test I's XOR-MAPPED-ADDRESS; absent when test I got no success answer (the type is then
    /// `blocked` on a timeout, `unknown` on an error response).
    std::optional<stun::Address> public_address;
    punch::ProbeResults tests;
    punch::Classification classification;
    punch::Time elapsed{0};
};

class NodeDiscovery {
public:
    using Done = std::function<void(const DiscoveryReport&)>;

    /// `local` is the SFU address (the engine's IP and the SFU port): a mapped address equal
    /// to it means no NAT. `policy` bounds each transaction (its max_duration: each phase).
    NodeDiscovery(const punch::Clock& clock, punch::TimerQueue& timers,
                  punch::DatagramSender& transport, stun::Address local,
                  punch::RetransmissionPolicy policy);
    NodeDiscovery(const NodeDiscovery&) = delete;
    NodeDiscovery& operator=(const NodeDiscovery&) = delete;

    /// Starts a run against `server` (an RFC 5780 server's primary address). `done` runs once,
    /// from a timer or from on_datagram(), never from here. False when a run is in progress or
    /// no transaction ID could be drawn (then `done` never runs).
    bool start(const stun::Address& server, Done done);

    /// Offers a datagram that arrived at the SFU address; what punch::StunClient made of it
    /// (answered, rejected, not_response, not_stun).
    punch::DatagramVerdict on_datagram(const stun::Address& from,
                                       std::span<const std::byte> datagram);

    /// Ends a run without calling its `done`.
    void cancel();

    [[nodiscard]] bool running() const noexcept { return running_; }
    /// The rejected answers (malformed, unknown transaction, bad FINGERPRINT ...), for reports.
    [[nodiscard]] const punch::StunClient& client() const noexcept { return client_; }

private:
    void on_test1(const punch::BindingResult& result);
    void start_filtering();
    void start_mapping();
    void finish();
    bool start_test(const stun::Address& to, std::uint32_t change_flags,
                    punch::TestResult& slot);

    const punch::Clock& clock_;
    stun::Address local_;
    punch::StunClient client_;
    bool running_ = false;
    unsigned outstanding_ = 0;  // transactions of the current phase not yet done
    punch::Time started_{0};
    DiscoveryReport report_;
    Done done_;
};

}  // namespace control
