// The ladder's SFU rung for one call leg (design.md §5 step 4; docs/sfu.md, "The client's
// part"): a pure state machine over the coordinator's candidate nodes.
//
// For each node it runs a leg's admission: STUN Binding requests to the node's SFU address
// with USERNAME = the session token's username, MESSAGE-INTEGRITY keyed with the token's
// 44-byte password as it is (RFC 8489 §9.1.1 short-term credentials) and FINGERPRINT,
// retransmitted on RFC 8489 §6.2.1's doubling schedule (capped, so that a hole the node opens
// late is still found) and paced across legs like the punching checks, bounded by `timeout`.
// The node's success response, checked (our transaction, from where it went, MESSAGE-INTEGRITY
// with the token password, FINGERPRINT), is the ACK: the leg is up. An error response (401
// malformed/expired/forged token, 403 replayed/full, 508 out of capacity) ends the leg with its
// code and reason; 401 and 400 cannot be signed (the node doubts our key), so they are taken
// from the node's address on our transaction alone, like the relay client takes them.
//
// A node behind a NAT (docs/sfu.md, "A node behind a NAT") sends its own Binding requests
// towards us (USERNAME = our username, MESSAGE-INTEGRITY with our password). Each is answered
// with a success response to its source (XOR-MAPPED-ADDRESS, the same integrity, FINGERPRINT),
// and that source becomes the node's peer-reflexive address (RFC 8445 §7.3.1.3): admission
// goes there from then on, at once (a triggered request). A request names no node (every node
// shares the token), so its source is matched to a candidate by IP address (an address-
// dependent mapping keeps the node's public IP and changes only the port); two candidates
// behind one IP take it in candidate order.
//
// Racing and agreement: the first `race` candidates are tried at once; when a node is out
// (our leg failed, or the peer said its leg failed), the next untried one starts. Each change
// of our own legs is an event for the caller to signal to the peer ({"kind":"sfu_up" |
// "sfu_failed","node_id":N}); the peer's signals come in through on_peer_leg(). The rung is up
// on the first node in candidate order on which both legs are up, chosen only once every node
// before it is out, so that both sides, which hold the same order, choose the same node. A
// node on which our leg is up and the peer says nothing for `peer_wait` is out (and we say
// sfu_failed). No node left: failed, and the caller goes to the relay.
//
// Once up, a keepalive Binding request goes to the chosen node every `keepalive` (well inside
// the node's sfu.leg_timeout_s, 15 s), on the same credentials: the node's consent refresh.
// Media from the chosen node's registered address, when its target is a peer-reflexive one,
// moves the target back there (latch()).
//
// No sockets and no clock reads: start(now), on_timer(now), on_datagram(from, bytes, now) and
// on_peer_leg() return what to send; next_timer() says when on_timer() wants to run.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "punch/clock.h"
#include "punch/coord_client.h"
#include "punch/punch_session.h"
#include "stun/address.h"
#include "stun/message.h"

namespace punch {

struct SfuRungConfig {
    /// One transmission every `pace` across all legs (as PunchConfig::pace).
    Time pace = std::chrono::milliseconds(20);
    /// RFC 8489 §6.2.1: the first retransmission this long after the request, then doubling...
    Time rto = std::chrono::milliseconds(100);
    /// ...up to this: a hole the node opens late in the window must still be found.
    Time rto_max = std::chrono::milliseconds(400);
    /// A leg not up this long after it started has failed (`punch call --sfu-timeout`).
    Time timeout = std::chrono::seconds(2);
    /// Our leg is up and the peer has not said how its leg went for this long: the node is out.
    Time peer_wait = std::chrono::seconds(3);
    /// Binding requests to the chosen node this often (the node expires a leg after 15 s of
    /// silence; media keeps it too, but a call may be quiet).
    Time keepalive = std::chrono::seconds(5);
    /// Candidates tried at once (the coordinator's `race`; at least 1).
    std::uint32_t race = 1;
};

/// Every datagram on_datagram() refuses, by reason. One table, name and help.
#define PUNCH_SFU_LEG_DROPS(X)                                                                     \
    X(not_stun, "STUN-like (first byte 0..3) but not a well-formed STUN message (RFC 8489 §6.3)") \
    X(bad_fingerprint, "FINGERPRINT missing or wrong (docs/sfu.md: every admission message "   \
                       "carries one)")                                                        \
    X(not_binding, "another method than Binding, or an indication")                            \
    X(unknown_transaction, "a response to no admission or keepalive request of ours")          \
    X(wrong_source, "a response not from the address its request went to (RFC 8489 §6.3.3)")  \
    X(bad_integrity, "a success response without MESSAGE-INTEGRITY, or one that fails the "    \
                     "token password, or a signed error response that fails it")             \
    X(bad_error_code, "an error response whose ERROR-CODE is missing or does not decode")     \
    X(request_no_credentials, "a node's request without USERNAME or MESSAGE-INTEGRITY")      \
    X(request_wrong_username, "a node's request whose USERNAME is not our token's username")  \
    X(request_bad_integrity, "a node's request whose MESSAGE-INTEGRITY fails our password")   \
    X(request_unknown_node, "a valid node request from an IP address of no candidate node")   \
    X(after_done, "arrived before start() or after the rung failed")

enum class SfuLegDrop : std::uint8_t {
#define PUNCH_SFU_LEG_DROP_ENUM(name, help) name,
    PUNCH_SFU_LEG_DROPS(PUNCH_SFU_LEG_DROP_ENUM)
#undef PUNCH_SFU_LEG_DROP_ENUM
        count
};

[[nodiscard]] std::string_view to_string(SfuLegDrop drop) noexcept;
[[nodiscard]] std::string_view help(SfuLegDrop drop) noexcept;

enum class SfuLegState : std::uint8_t {
    untried,    ///< not started yet (behind the race)
    admitting,  ///< Binding requests going out
    up,         ///< the node's ACK came
    failed,     ///< timeout, an error response, or given up (the node is out on the peer's side)
};
enum class SfuPeerLeg : std::uint8_t { unknown, up, failed };

[[nodiscard]] std::string_view to_string(SfuLegState state) noexcept;

/// One candidate node, for the report.
struct SfuLegReport {
    SfuOffer node;
    /// Where admission goes: the node's registered address, or the peer-reflexive one its own
    /// requests came from.
    stun::Address target;
    bool peer_reflexive = false;
    SfuLegState state = SfuLegState::untried;
    SfuPeerLeg peer = SfuPeerLeg::unknown;
    /// "ok", "timeout: no ACK within 2000 ms", "401 SFU token expired", "the peer's leg
    /// failed", "no word from the peer within 3000 ms", "not tried"...
    std::string outcome = "not tried";
    std::optional<Time> started;  ///< when its first request went out
    std::optional<Time> up_after;  ///< from started to the ACK
    std::optional<Time> ended;     ///< when it came up or failed (or stopped)
    std::optional<Time> rtt;       ///< of the last ACK
    std::optional<stun::Address> mapped;  ///< XOR-MAPPED-ADDRESS in the last ACK: us, as seen
    std::uint64_t sent = 0;            ///< requests sent to it (admission and keepalive)
    std::uint64_t node_requests = 0;   ///< the node's own valid requests answered
    std::uint64_t latched = 0;  ///< times media moved the target back to node.address (latch())
    std::uint16_t error_code = 0;      ///< of the error response that ended it
};

/// Our leg on a node changed: signal it to the peer.
struct SfuLegEvent {
    std::uint64_t node_id = 0;
    bool up = false;  ///< sfu_up, or sfu_failed
};

enum class SfuRungState : std::uint8_t { idle, trying, up, failed };

[[nodiscard]] std::string_view to_string(SfuRungState state) noexcept;

class SfuRung {
public:
    /// Throws std::invalid_argument (naming the field) on a username that is not an SFU token
    /// (stun/sfu_token.h), a password that is not 44 characters, a zero pace, rto, rto_max,
    /// timeout, peer_wait, keepalive or race.
    SfuRung(SfuRungConfig config, std::string username, std::string password,
            std::vector<SfuOffer> candidates);

    /// Starts the first `race` legs at `now`. No candidate: failed at once.
    std::vector<Outgoing> start(Time now);
    std::vector<Outgoing> on_timer(Time now);
    /// Whether a datagram from `from` is the rung's: from a candidate's address or its
    /// learnt one, or a Binding request naming our username (a node behind a NAT, from a new
    /// port). The caller's demux asks before handing it to on_datagram().
    [[nodiscard]] bool claims(const stun::Address& from,
                              std::span<const std::byte> datagram) const noexcept;
    std::vector<Outgoing> on_datagram(const stun::Address& from,
                                      std::span<const std::byte> datagram, Time now);
    /// The peer's signal about its leg on `node_id` (unknown ids are ignored).
    std::vector<Outgoing> on_peer_leg(std::uint64_t node_id, bool up, Time now);
    /// Our legs' changes since the last call, to signal to the peer, oldest first.
    [[nodiscard]] std::vector<SfuLegEvent> take_events();
    /// When on_timer() next has something to do; nullopt once failed.
    [[nodiscard]] std::optional<Time> next_timer() const noexcept;

    [[nodiscard]] SfuRungState state() const noexcept { return state_; }
    /// The chosen node, once up.
    [[nodiscard]] const SfuLegReport* chosen() const noexcept;
    /// Where media goes once up: the chosen node's target.
    [[nodiscard]] std::optional<stun::Address> media_address() const noexcept;
    /// Media came from `from`, which is not media_address(): when the rung is up, the chosen
    /// node's target is a peer-reflexive address and `from` is the node's registered one, the
    /// node's NAT now maps the node's traffic there, and the target (media and keepalives)
    /// moves to it (latching, as an SFU latches onto a client's media). Returns whether it
    /// moved. A peer-reflexive mapping can be short-lived (docs/sfu.md, "A node behind a NAT":
    /// Linux's conntrack, when two packets of a new flow race). Nothing else moves the target:
    /// media is not authenticated, and the registered address is the coordinator's word.
    bool latch(const stun::Address& from) noexcept;
    [[nodiscard]] const std::vector<SfuLegReport>& legs() const noexcept { return legs_; }
    [[nodiscard]] std::uint64_t drops(SfuLegDrop drop) const noexcept {
        return drops_[static_cast<std::size_t>(drop)];
    }
    /// Why the rung failed ("" while it has not): each node's outcome.
    [[nodiscard]] std::string failure() const;
    /// One line per node: "3 203.0.113.5:3480 up peer up sent 2 rtt 1 ms: ok".
    [[nodiscard]] std::string report() const;

private:
    struct LegTimers {
        Time next_send{0};
        Time rto{0};
        Time deadline{0};
        Time peer_deadline{0};
    };
    struct Pending {
        stun::TransactionId id;
        std::size_t leg;
        Time sent_at;
    };

    bool out(std::size_t leg) const noexcept;
    void start_leg(std::size_t leg, Time now);
    void fail_leg(std::size_t leg, std::string outcome, bool tell_peer, Time now);
    void refill(Time now);
    void decide(Time now);
    void send_request(std::size_t leg, Time now, std::vector<Outgoing>& out);
    void pace(Time now, std::vector<Outgoing>& out);
    void handle_request(const stun::Address& from, const stun::Message& m, Time now,
                        std::vector<Outgoing>& out);
    void handle_response(const stun::Address& from, const stun::Message& m, Time now);
    void drop(SfuLegDrop reason) noexcept { ++drops_[static_cast<std::size_t>(reason)]; }

    SfuRungConfig config_;
    std::string username_;
    std::string password_;
    std::vector<SfuLegReport> legs_;
    std::vector<LegTimers> timers_;
    std::vector<Pending> pending_;
    std::vector<SfuLegEvent> events_;
    std::array<std::uint64_t, static_cast<std::size_t>(SfuLegDrop::count)> drops_{};
    SfuRungState state_ = SfuRungState::idle;
    Time started_{0};
    Time next_pace_{0};
    Time next_keepalive_{0};
    std::size_t cursor_ = 0;  // round-robin over legs
    std::optional<std::size_t> chosen_;
};

}  // namespace punch
