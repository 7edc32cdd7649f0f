// The SFU role (design.md §3, role `sfu`; docs/sfu.md): participants admitted by STUN Binding
// requests carrying the coordinator's session tokens, verified without state on the worker that
// owns the participant's 5-tuple; media from a leg forwarded to the other legs of its session.
//
// Who owns what. An SfuContext is read-only: the control thread builds it from config (the
// secrets, the limits) and hands it to every worker. An SfuShard is one worker's: its leg table
// (engine/sfu_table.h), its unauthenticated-request limiter, its outbox of join and leave
// messages for the control thread, its fan-out scratch and its counters, written by that worker
// alone, with no lock, no syscall and no heap allocation after construction. The membership
// (SfuMembership) is the control thread's, published through RCU: SfuState carries the one the
// worker read when its burst began.
//
// Admission (docs/sfu.md's table, in that order), for a Binding request to the SFU port:
//   1. USERNAME and MESSAGE-INTEGRITY (or -SHA256) present, else 400, unauthenticated.
//   2. stun::check_sfu_username(): malformed → 401 "malformed SFU token", expired → 401
//      "SFU token expired", unauthenticated.
//   3. MESSAGE-INTEGRITY keyed with stun::make_sfu_password() of some secret, else 401
//      "integrity check failed", unauthenticated.
//   4. A leg on this 5-tuple already: the same session and participant is a keepalive (or a
//      retransmission): the success answer again, the silence timer reset; another is 403
//      "address already a leg of another participant".
//   5. The node draining (punchctl drain: SfuContext::draining()), else 508 "SFU node
//      draining": a new leg only; the keepalives of step 4 and the legs' media carry on.
//   6. The participant live from another 5-tuple (this worker's table, or the membership): 403
//      "participant already joined from another address".
//   7. The session's legs (this worker's, and the membership's on other workers) below
//      sfu.max_legs_per_session, else 403 "SFU session full".
//   8. A free slot in the table, else 508 "SFU node out of capacity".
// Unauthenticated answers (400, 401) cost a token of the source IP's bucket first: with it
// empty the request is dropped unanswered (sfu_rate_limited). The answers from step 4 on carry
// the integrity attribute the request was verified with (RFC 8489 §9.2.4), keyed with the same
// password; every answer carries FINGERPRINT when the request did, the success always. No
// answer is longer than its request (no amplification): an error's reason phrase is cut to fit,
// and an answer that cannot fit is not sent (sfu_unanswerable).
//
// Two workers admitting one participant, or the last legs of one session, at once cannot see
// each other's legs: the control thread decides (SfuMembershipBuilder::join()) and has the
// loser removed with an SfuKill.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/config.h"
#include "engine/counters.h"
#include "engine/frame.h"
#include "engine/port_context.h"
#include "engine/rate_limit.h"
#include "engine/reason_table.h"
#include "engine/sfu_table.h"

namespace engine {

// What admission made of a Binding request to the SFU port: X(name, error code, help). The
// names are docs/sfu.md's counters.
#define ENGINE_SFU_OUTCOMES(X)                                                                    \
    X(sfu_admitted, 0, "a new leg: the token verified, the session had room (the ACK sent)")     \
    X(sfu_keepalive, 0, "a Binding request on a leg's own 5-tuple with its own token: consent "  \
                        "or a retransmission, answered again")                                  \
    X(sfu_bad_request, 400, "no USERNAME or no MESSAGE-INTEGRITY(-SHA256)")                      \
    X(sfu_token_malformed, 401, "the USERNAME is not an SFU token (stun/sfu_token.h)")           \
    X(sfu_token_expired, 401, "the token's expiry is before the node's clock")                   \
    X(sfu_token_forged, 401, "MESSAGE-INTEGRITY verifies with none of sfu.token_secrets")        \
    X(sfu_token_replayed, 403, "the participant has a live leg from another 5-tuple (a replayed " \
                               "token); also a leg the control thread removed for it")          \
    X(sfu_address_in_use, 403, "the 5-tuple is a leg of another participant or session")         \
    X(sfu_session_full, 403, "the session has sfu.max_legs_per_session legs; also a leg the "     \
                             "control thread removed for it")                                   \
    X(sfu_capacity, 508, "the worker's leg table (sfu.max_legs) is full")                      \
    X(sfu_draining, 508, "a new leg while the node drains (punchctl drain); its legs carry on")

#define ENGINE_SFU_OUTCOME_ENUMERATOR(name, code, help) ENGINE_REASON_ENUMERATOR(name, help)
#define ENGINE_SFU_OUTCOME_COUNT(name, code, help) ENGINE_REASON_COUNT(name, help)
#define ENGINE_SFU_OUTCOME_INFO(name, code, help) ENGINE_REASON_INFO(name, help)
#define ENGINE_SFU_OUTCOME_CODE(name, code, help) code,

enum class SfuOutcome : std::uint8_t { ENGINE_SFU_OUTCOMES(ENGINE_SFU_OUTCOME_ENUMERATOR) };
inline constexpr std::size_t sfu_outcome_count = 0 ENGINE_SFU_OUTCOMES(ENGINE_SFU_OUTCOME_COUNT);
inline constexpr std::array<ReasonInfo, sfu_outcome_count> sfu_outcomes = {
    {ENGINE_SFU_OUTCOMES(ENGINE_SFU_OUTCOME_INFO)}};
inline constexpr std::array<std::uint16_t, sfu_outcome_count> sfu_outcome_codes = {
    ENGINE_SFU_OUTCOMES(ENGINE_SFU_OUTCOME_CODE)};

constexpr std::string_view to_string(SfuOutcome outcome) noexcept {
    return sfu_outcomes[static_cast<std::size_t>(outcome)].name;
}

/// The limits of the role, from config.
struct SfuLimits {
    std::uint16_t port = SfuConfig::default_port;
    std::uint32_t max_legs_per_session = 8;
    std::uint32_t leg_timeout_s = 15;
    /// The rate of the clock whose ticks SfuState::now_ticks counts.
    std::uint64_t ticks_per_second = 1'000'000'000;

    [[nodiscard]] static SfuLimits from(const SfuConfig& config,
                                        std::uint64_t ticks_per_second) noexcept;
    [[nodiscard]] std::uint64_t leg_timeout_ticks() const noexcept {
        return std::uint64_t{leg_timeout_s} * ticks_per_second;
    }
};

/// What every worker reads and none writes. A change (the drain) is a new context, published
/// through RCU by the control thread (Dataplane::sfu_context), never an edit of this one.
class SfuContext {
public:
    /// `secrets`: sfu.token_secrets, at least one. Throws std::invalid_argument without one.
    /// `draining`: punchctl drain (admission step 5).
    SfuContext(const std::vector<std::string>& secrets, const SfuLimits& limits,
               bool draining = false);
    [[nodiscard]] std::span<const std::vector<std::byte>> secrets() const noexcept {
        return secrets_;
    }
    [[nodiscard]] const SfuLimits& limits() const noexcept { return limits_; }
    /// Whether a new leg is refused (508 "SFU node draining", sfu_draining); the legs
    /// admitted already carry on (docs/sfu.md, "Draining").
    [[nodiscard]] bool draining() const noexcept { return draining_; }
    /// This context with another drain state: the next one to publish.
    [[nodiscard]] SfuContext with_draining(bool draining) const {
        SfuContext next(*this);
        next.draining_ = draining;
        return next;
    }

private:
    std::vector<std::vector<std::byte>> secrets_;
    SfuLimits limits_;
    bool draining_ = false;
};

/// A worker's SFU counters since start-up, written by the owner only, read by the control
/// thread as CoreCounters are (plain 64-bit stores, a value true at some instant).
struct SfuCounters {
    std::array<std::uint64_t, sfu_outcome_count> outcomes{};
    std::uint64_t forwarded_packets = 0;  ///< datagrams sent to subscribers (each copy)
    std::uint64_t forwarded_bytes = 0;    ///< their UDP payload bytes
    std::uint64_t fan_outs = 0;           ///< received datagrams sent to two subscribers or more
    std::uint64_t filtered = 0;           ///< copies not sent: paused or unselected
    std::uint64_t unforwardable = 0;      ///< copies not sent: over the MTU, no headroom
    std::uint64_t legs_expired = 0;       ///< silent for sfu.leg_timeout_s
    std::uint64_t legs_killed = 0;        ///< removed by an SfuKill (operator or control thread)
    std::uint64_t probe_answers = 0;      ///< STUN responses handed to the control thread

    [[nodiscard]] std::uint64_t outcome(SfuOutcome o) const noexcept {
        return outcomes[static_cast<std::size_t>(o)];
    }
    void add(const SfuCounters& other) noexcept {
        for (std::size_t o = 0; o < outcomes.size(); ++o) outcomes[o] += other.outcomes[o];
        forwarded_packets += other.forwarded_packets;
        forwarded_bytes += other.forwarded_bytes;
        fan_outs += other.fan_outs;
        filtered += other.filtered;
        unforwardable += other.unforwardable;
        legs_expired += other.legs_expired;
        legs_killed += other.legs_killed;
        probe_answers += other.probe_answers;
    }
};

/// One copy of a fanned-out datagram: the Ethernet, IP and UDP headers to put before the
/// shared payload (Verdict::fan_out; the worker chains them to it without copying it).
struct SfuDestination {
    static constexpr std::size_t max_header = ethernet_header_size + ipv6_header_size +
                                              udp_header_size;  // 62
    std::array<std::byte, 64> header{};
    std::uint8_t header_length = 0;
};

/// The fan-out scratch: after a verdict of fan_out, the frame itself (rewritten in place) is
/// the last subscriber's copy, and these are the others'. Its payload lies at
/// `payload_offset` from the frame's (new) start, `payload_length` bytes. Valid until the
/// shard's next handled frame.
struct SfuFanOut {
    std::unique_ptr<SfuDestination[]> destinations;
    std::uint32_t count = 0;
    std::uint16_t payload_offset = 0;
    std::uint16_t payload_length = 0;

    [[nodiscard]] std::span<const SfuDestination> copies() const noexcept {
        return {destinations.get(), count};
    }
};

/// One worker's mutable SFU state. alignas(64): per-core state (style rule 10).
class alignas(64) SfuShard {
public:
    static constexpr std::size_t outbox_capacity = 1024;

    /// Allocates everything: the table (`max_legs`), the fan-out scratch
    /// (`max_legs_per_session` - 1 copies), `rate_buckets` token buckets at `unauthenticated`,
    /// the outbox. `worker` is this worker's index (SfuMessage::worker). Throws what SfuTable
    /// and SourceRateLimiter throw (start-up, style rule 12).
    SfuShard(std::uint32_t max_legs, std::uint32_t max_legs_per_session,
             const RateLimit& unauthenticated, std::size_t rate_buckets, std::uint16_t worker,
             std::uint64_t seed);

    [[nodiscard]] SfuTable& table() noexcept { return table_; }
    [[nodiscard]] const SfuTable& table() const noexcept { return table_; }
    [[nodiscard]] SfuCounters& counters() noexcept { return counters_; }
    [[nodiscard]] const SfuCounters& counters() const noexcept { return counters_; }
    [[nodiscard]] SourceRateLimiter& limiter() noexcept { return limiter_; }
    [[nodiscard]] std::uint16_t worker() const noexcept { return worker_; }
    [[nodiscard]] const SfuFanOut& fan_out() const noexcept { return fan_out_; }
    [[nodiscard]] SfuFanOut& fan_out() noexcept { return fan_out_; }
    /// Room for the members a datagram may go to: max_legs_per_session.
    [[nodiscard]] std::span<const SfuPlanDestination*> chosen() noexcept {
        return {chosen_.get(), chosen_capacity_};
    }
    /// As much room for destinations made from the membership's members, for a leg that no
    /// plan names yet (sfu_forward()'s general path).
    [[nodiscard]] std::span<SfuPlanDestination> unplanned() noexcept {
        return {unplanned_.get(), chosen_capacity_};
    }

    /// Queues a message for the control thread; false when the outbox is full.
    bool post(const SfuMessage& message) noexcept;
    /// The oldest queued message (the worker loop moves them to the control ring; tests read
    /// them); false when none.
    bool pop(SfuMessage& out) noexcept;
    /// The oldest queued message without taking it.
    [[nodiscard]] const SfuMessage* peek() const noexcept;
    [[nodiscard]] std::size_t queued() const noexcept { return outbox_count_; }

private:
    SfuTable table_;
    SourceRateLimiter limiter_;
    std::uint16_t worker_;
    SfuFanOut fan_out_;
    std::unique_ptr<const SfuPlanDestination*[]> chosen_;
    std::unique_ptr<SfuPlanDestination[]> unplanned_;
    std::size_t chosen_capacity_;
    std::unique_ptr<SfuMessage[]> outbox_;
    std::size_t outbox_head_ = 0;
    std::size_t outbox_count_ = 0;
    alignas(64) SfuCounters counters_;
};

/// A worker's SFU, as the packet path sees it: the context, the shard, the membership read at
/// the start of the burst (null: none published yet) and the time, read once per burst.
struct SfuState {
    SfuState(const SfuContext& context_in, SfuShard& shard_in,
             const SfuMembership* membership_in, std::uint64_t now_ticks_in,
             std::uint64_t now_s_in) noexcept
        : context(context_in),
          shard(shard_in),
          membership(membership_in),
          now_ticks(now_ticks_in),
          now_s(now_s_in),
          plans(membership_in != nullptr ? membership_in->plans(shard_in.worker())
                                         : std::span<const SfuPlan>{}) {}

    const SfuContext& context;
    SfuShard& shard;
    const SfuMembership* membership;
    std::uint64_t now_ticks;  ///< SfuLimits::ticks_per_second
    std::uint64_t now_s;      ///< Unix seconds, for token expiries
    /// The membership's plans for this worker, by slot: SfuMembership::plan() without its
    /// two vectors' bounds, read once per burst.
    std::span<const SfuPlan> plans;
};

/// What sfu_look_ahead() found of one frame of a burst, for sfu_express_ahead().
struct SfuAhead {
    FiveTuple key;  ///< the frame's 5-tuple (where `express`)
    /// The slot the index names first for `key`, a hint: sfu_express_ahead() takes it only
    /// where the leg there has the key. no_slot: none.
    std::uint32_t slot = SfuTable::no_slot;
    bool express = false;  ///< every check of the express lane (sfu_express_ipv4()) passed
};

/// The SFU's lane for a whole burst (docs/benchmarks.md, "SFU (issue 7)"), before its frames
/// are handled one by one: for each frame, the express lane's checks (sfu_express_ipv4(): a
/// leg's media over IPv4 without options to the port's MAC, an address of its and the SFU
/// port, every header field right), its Ethernet padding trimmed and its 5-tuple's look-up
/// started, in two passes over the burst, so that the burst's index lines, then its records
/// and plans, load together instead of one frame's after another's. ahead[i] (room for
/// frames.size()) says whether frame i passed, and holds its 5-tuple and the slot the index
/// names for it. Writes nothing but the frames' lengths. Cost: the checks and a 5-tuple hash
/// a frame, once for both passes (sfu_express_ahead() repeats neither), and a few loads, every
/// one of which the frame would wait for later.
void sfu_look_ahead(std::span<Frame> frames, const PortContext& port, const SfuState& sfu,
                    std::span<SfuAhead> ahead) noexcept;

/// The express lane for a frame sfu_look_ahead() passed (`ahead.express`): its leg found
/// (the hint taken where the leg there has the key), and the datagram forwarded as
/// sfu_forward() forwards it. Returns the verdict, counted as sfu_express_ipv4()'s.
[[nodiscard]] Verdict sfu_express_ahead(Frame& frame, const PortContext& port,
                                        CoreCounters& counters, SfuState& sfu,
                                        const SfuAhead& ahead) noexcept;

/// The SFU role's answer to a STUN message sent to the SFU port (the admission above), the
/// UDP checksum verified by the caller: transmit (the answer, in place), drop (stun_garbage,
/// stun_not_request, stun_unsupported_method, stun_bad_fingerprint, sfu_rate_limited,
/// sfu_join_backlog, sfu_unanswerable), or to_control (a Binding response: the answer to the
/// node's own probes, docs/sfu.md "A node behind a NAT"). Counts its outcome in the shard.
/// Cost: a parse, a token parse, one HMAC-SHA256 and one MESSAGE-INTEGRITY per secret tried,
/// and one more for the answer. No allocation, no lock, no syscall.
Verdict sfu_answer_stun(Frame& frame, std::size_t ip_offset, std::size_t udp_offset, bool ipv6,
                        const PortContext& port, SfuState& sfu) noexcept;

/// A datagram from a leg that is not STUN (RFC 7983: first byte 4..255, or empty): to every
/// other member of its session per the membership and each subscriber's selection. One copy:
/// the frame rewritten in place (transmit); several: fan_out, the others' headers in the
/// shard's fan-out scratch. Drops: sfu_not_a_leg, sfu_no_subscriber, sfu_filtered,
/// sfu_unforwardable. The UDP checksum is updated (RFC 1624), not verified: a damaged datagram
/// stays damaged for its receiver, as a router leaves it. Counts the copies in `counters`
/// (tx and fan_out_copies, beyond the frame itself, which the caller counts).
/// Cost: a 5-tuple look-up, the leg's forwarding plan (SfuMembership::plan(), two lines, by
/// the slot the look-up gave), per copy beyond the first its destination's line, and 62 bytes
/// of header a copy. A leg no plan names yet (admitted since the last publish) takes the
/// general path: its session found in the membership, its members read.
Verdict sfu_forward(Frame& frame, std::size_t ip_offset, std::size_t udp_offset, bool ipv6,
                    const PortContext& port, CoreCounters& counters, SfuState& sfu) noexcept;

/// The express lane (its cost: docs/benchmarks.md, "SFU (issue 7)") for a leg's media over
/// IPv4 without options: to the port's MAC, one of its IPv4 addresses and the SFU port, not a
/// fragment, the UDP length the IP payload's, the first byte not STUN's. Makes every check the
/// general dispatch makes of such a frame (frame_handler.cc), straight through, trims Ethernet
/// padding, and hands it to sfu_forward() as the general path would: returns true with its
/// verdict in `verdict` (the caller counts it as handle_frame_generally() does). Returns false,
/// having written nothing, for anything else or anything wrong with it: the general dispatch
/// then decides, and names the reason of a drop.
[[nodiscard]] bool sfu_express_ipv4(Frame& frame, const PortContext& port, CoreCounters& counters,
                                    SfuState& sfu, Verdict& verdict) noexcept;

/// Expires silent legs, for the worker loop's idle time: visits up to `max_slots` slots round
/// robin; a leg unheard for sfu.leg_timeout_s is erased and a leave message posted (one the
/// full outbox cannot take waits for the next pass). Returns the legs expired.
std::size_t sweep(SfuShard& shard, const SfuContext& context, std::uint64_t now_ticks,
                  std::size_t max_slots) noexcept;

/// An order to remove one leg (punchctl sfu kill, or the control thread's verdict on a race),
/// sent on the worker's command ring. Trivially copyable.
struct SfuKill {
    enum class Cause : std::uint8_t { operator_kill, replayed, session_full };
    FiveTuple key;
    std::uint32_t slot = SfuTable::no_slot;
    std::uint32_t sequence = 0;
    Cause cause = Cause::operator_kill;
    std::array<std::uint8_t, 3> reserved{};
};
static_assert(std::is_trivially_copyable_v<SfuKill> && sizeof(SfuKill) % 4 == 0,
              "rte_ring's elements are copied as 4-byte words");

/// Removes the leg in `slot` if it still holds `key`, posts its leave (so that the control
/// thread's model follows even when the order crossed a re-admission), and counts it:
/// legs_killed, and a replayed or session_full cause in that outcome too. Returns whether it
/// removed one.
bool kill_leg(SfuShard& shard, const SfuKill& kill) noexcept;

}  // namespace engine
