// An SFU node's own test packets (docs/sfu.md, "A node behind a NAT"): on the coordinator's
// `sfu_punch` order, Binding requests from the SFU port towards each of a participant's
// addresses, paced, so that the node's NAT opens towards the participant before the
// participant's admission requests arrive.
//
// Each request carries USERNAME = the participant's token username, MESSAGE-INTEGRITY keyed
// with the password the node derives from its secret (stun::make_sfu_password, the 44
// characters as they are: the participant holds the same password and can check that the
// request comes from a node that knows the secret) and FINGERPRINT (RFC 8489 §7, so that the
// participant's demultiplexer tells it from media). A target (one address of one participant)
// sends the same request, one transaction, every `interval` until `duration` has passed or an
// answer came: the participant answers like a punching check (a success response to where the
// request came from), which shows the path is open both ways and ends the target.
//
// The control thread owns it: no threads, no system clock (the Clock is injected).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "punch/clock.h"
#include "punch/udp_socket.h"
#include "stun/address.h"
#include "stun/message.h"
#include "stun/sfu_token.h"

namespace control {

struct PunchPacing {
    punch::Time interval = std::chrono::milliseconds(50);
    punch::Time duration = std::chrono::seconds(2);
    /// Targets at once; an order past it is refused for the addresses that do not fit.
    std::size_t max_targets = 1024;
};

/// A validated `sfu_punch` order.
struct PunchOrder {
    std::string username;  ///< the participant's token username (stun/sfu_token.h)
    std::vector<stun::Address> addresses;
};

struct PunchCounters {
    std::uint64_t orders = 0;             ///< orders taken
    std::uint64_t targets = 0;            ///< targets started (a repeated one restarts)
    std::uint64_t targets_refused = 0;    ///< addresses left out: max_targets reached
    std::uint64_t requests_sent = 0;      ///< requests the transport took
    std::uint64_t send_failures = 0;      ///< requests the transport refused
    std::uint64_t answers = 0;            ///< valid answers to a target's request
    std::uint64_t answers_bad_integrity = 0;  ///< an answer whose MESSAGE-INTEGRITY is wrong
    std::uint64_t targets_answered = 0;   ///< targets ended by an answer
    std::uint64_t targets_unanswered = 0;  ///< targets that ran their duration unanswered
};

class NodePuncher {
public:
    /// `secret` keys the requests: the node's first `sfu.token_secrets` entry, the one the
    /// coordinator signs with (docs/sfu.md, "Session tokens").
    NodePuncher(const punch::Clock& clock, punch::DatagramSender& transport,
                std::vector<std::byte> secret, PunchPacing pacing);

    /// Starts one target per address (the first send at the next poll()). An address already
    /// a target of the same username restarts its duration. Returns how many were started.
    std::size_t start(const PunchOrder& order);

    /// Sends what is due and ends targets whose duration is over.
    void poll();

    /// Offers a datagram that arrived at the SFU address. True when it answered one of our
    /// requests (success or error response with a target's transaction ID: counted, and the
    /// target ended unless its MESSAGE-INTEGRITY is wrong); false otherwise (someone else's).
    bool on_datagram(const stun::Address& from, std::span<const std::byte> datagram);

    /// The earliest time poll() has something to do; nullopt when no target is live.
    [[nodiscard]] std::optional<punch::Time> next_deadline() const noexcept;

    [[nodiscard]] std::size_t live_targets() const noexcept { return targets_.size(); }
    [[nodiscard]] const PunchCounters& counters() const noexcept { return counters_; }

private:
    struct Target {
        stun::Address to;
        std::string username;
        std::array<char, stun::sfu_password_size> password{};
        stun::TransactionId id{};
        // 20 header + USERNAME (4 + 104) + MESSAGE-INTEGRITY (24) + FINGERPRINT (8) = 160.
        std::array<std::byte, 160> request{};
        std::size_t request_size = 0;
        punch::Time next_send{0};
        punch::Time ends{0};
    };

    bool build(Target& target);

    const punch::Clock& clock_;
    punch::DatagramSender& transport_;
    std::vector<std::byte> secret_;
    PunchPacing pacing_;
    // A few targets per call, ended within seconds: a vector scanned by the control thread is
    // cheaper than any index at this size.
    std::vector<Target> targets_;
    PunchCounters counters_;
};

}  // namespace control
