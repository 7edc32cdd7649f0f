// The TURN relay role at the STUN-message level (design.md §3, role `relay`; RFC 8656 over
// UDP): Allocate, Refresh, CreatePermission and ChannelBind requests answered, and Send
// indications turned into a datagram for the data path. Ethernet, IP and UDP framing are the
// caller's: it hands over a parsed message, its bytes and the 5-tuple it came on, and gets a
// TurnAnswer back.
//
// Who owns what. A RelayContext is read-only: the control thread builds it from config (the
// credentials, the peer policy, the relay addresses, the lifetimes and quotas) and publishes
// it to every worker (RCU, design.md §3). A RelayShard is one worker's: its session table
// (engine/relay_table.h), its unauthenticated-request limiter and its per-user allocation
// counts, written by that worker alone, with no lock, no syscall and no heap allocation after
// construction. The table of a shard is changed only through this file's functions (handle_turn
// and sweep), which keep the per-user counts in step with it: never call RelayTable::insert,
// erase or sweep on it directly.
//
// Order of the checks for a request (RFC 8489 §6.3, §9.2.4; RFC 8656 §5):
//   1. Method: Allocate, Refresh, CreatePermission, ChannelBind; anything else is dropped
//      (Binding belongs to the STUN role, which the caller demultiplexes to).
//   2. Long-term credentials, authenticate(). A request that fails them costs a token of the
//      client IP's bucket first: with the bucket empty it is dropped unanswered; else it is
//      answered 400, 401 or 438 by write_auth_error().
//   3. The allocation of the 5-tuple, if any (an expired one is removed now: RFC 8656 §6, "the
//      allocation ... is deleted" when its time-to-expiry reaches zero).
//   4. A retransmission (the transaction ID and method of the last request its user had
//      answered on the allocation) gets that answer again, rebuilt byte for byte (§5; RFC 8489
//      §6.3.1).
//   5. Unknown comprehension-required attributes: 420 with UNKNOWN-ATTRIBUTES (RFC 8489
//      §6.3.1.1, after the authentication checks as it says).
//   6. The method's own checks (relay_role.cc cites each), first among them the allocation:
//      Allocate on a 5-tuple that has one gets 437 (§7.2), the others 437 without one, and 441
//      on one that another username made (§5). A new Allocate while the engine drains
//      (RelayDrain) gets 300 Try Alternate or 508 before its attributes are looked at.
// Every response after step 2 carries the integrity attribute the request was verified with
// (RFC 8489 §9.2.4), and FINGERPRINT when the request had one (§7.3).
//
// The per-user quota (RelayConfig::max_allocations_per_user, 486) is counted per worker:
// steering spreads one user's 5-tuples over the workers by source address and port, so a user
// may hold up to the quota on each worker. Counting globally would need a shared counter
// written by every worker on every Allocate; per worker is exact for the common case of one
// client host, and bounds the whole by workers × quota. A user is its whole USERNAME: each TURN
// REST username ("<expiry>:<user>") counts on its own, as the RFC's "username" would.
//
// Port reservations (RFC 8656 §7.2, EVEN-PORT's R bit and RESERVATION-TOKEN) are per worker
// too: the reserved port is one of the worker's relay ports, held in its table, and the token
// is known to that worker alone. A client's later Allocate with the token is honoured when
// steering brings its 5-tuple to the same worker (always, with one worker); on another, the
// token names nothing there and the answer is 508, as for an unknown token. A client makes
// the pair from two sockets (coturn's turnutils_uclient: RTP's, then RTCP's), so the second
// Allocate comes from another source port, which steering may give to another worker: with
// several workers, such a pair succeeds when both 5-tuples hash to one worker.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/config.h"
#include "engine/peer_policy.h"
#include "engine/rate_limit.h"
#include "engine/reason_table.h"
#include "engine/relay_table.h"
#include "engine/turn_auth.h"
#include "stun/address.h"
#include "stun/message.h"

namespace engine {

// What became of a TURN message: X(name, error code of the response or 0, help). Success
// outcomes first, then errors answered (each with its RFC 8656 section), then drops.
#define ENGINE_TURN_OUTCOMES(X)                                                                   \
    X(allocated, 0, "Allocate succeeded: a relayed address and LIFETIME (RFC 8656 §7.2)")          \
    X(refreshed, 0, "Refresh succeeded: the allocation's lifetime reset (§8.2)")                  \
    X(deleted, 0, "Refresh with LIFETIME 0: the allocation, or one family of it, deleted (§8.2)") \
    X(permission_installed, 0, "CreatePermission succeeded: permissions installed or "            \
                               "refreshed (§10.2)")                                              \
    X(channel_bound, 0, "ChannelBind succeeded: the channel and its permission installed or "     \
                        "refreshed (§12.2)")                                                     \
    X(retransmission, 0, "a retransmitted request answered again from the allocation's last "     \
                         "answer (§5)")                                                          \
    X(forwarded, 0, "a Send indication's DATA handed to the data path for its peer (§11.2)")      \
    X(auth_failed, 0, "authenticate() refused the request: answered 400, 401 or 438 as its "      \
                      "AuthVerdict says (RFC 8489 §9.2.4)")                                      \
    X(unknown_attribute, 420, "an unknown comprehension-required attribute (RFC 8489 §6.3.1.1)")  \
    X(username_too_long, 400, "an authenticated USERNAME longer than the table stores (512 "     \
                              "bytes)")                                                          \
    X(wrong_credentials, 441, "the allocation was made by another username (§5)")                 \
    X(allocation_exists, 437, "Allocate on a 5-tuple that has an allocation, not a "              \
                              "retransmission (§7.2)")                                           \
    X(no_allocation, 437, "Refresh, CreatePermission or ChannelBind on a 5-tuple without an "     \
                          "allocation, or with an expired one (§8.2, §10.2, §12.2)")             \
    X(missing_transport, 400, "Allocate without a well-formed REQUESTED-TRANSPORT (§7.2)")        \
    X(unsupported_transport, 442, "REQUESTED-TRANSPORT other than UDP (§7.2)")                    \
    X(bad_family_attribute, 400, "REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY "         \
                                 "malformed, both present, ADDITIONAL-ADDRESS-FAMILY not IPv6, " \
                                 "or with EVEN-PORT's R bit (§7.2)")                             \
    X(token_with_family_or_even_port, 400, "RESERVATION-TOKEN with EVEN-PORT, "                   \
                                           "REQUESTED-ADDRESS-FAMILY or "                        \
                                           "ADDITIONAL-ADDRESS-FAMILY (§7.2)")                   \
    X(bad_allocate_attribute, 400, "EVEN-PORT, RESERVATION-TOKEN, DONT-FRAGMENT or LIFETIME "     \
                                   "malformed (§7.2)")                                           \
    X(family_not_supported, 440, "the relayed address family asked for is not one the server "    \
                                 "has (§7.2)")                                                   \
    X(unknown_reservation, 508, "RESERVATION-TOKEN names no live reservation of this worker: "    \
                                "never made, claimed already, expired (30 s), or made on "      \
                                "another worker (§7.2)")                                         \
    X(even_port_unavailable, 508, "EVEN-PORT with no even relay port free, or with the R bit "    \
                                  "and no even port whose next port is free too (§7.2)")        \
    X(reservations_full, 508, "EVEN-PORT with the R bit while the worker holds as many "          \
                              "reservations as relay.reservations gives it (§7.2)")              \
    X(user_quota_reached, 486, "the username has max_allocations_per_user allocations on this "   \
                               "worker (§7.2)")                                                  \
    X(table_full, 508, "the worker's allocation table is full (§7.2)")                            \
    X(no_relay_port, 508, "every relay port of the worker is taken (§7.2)")                       \
    X(draining_redirected, 300, "a new Allocate while the engine drains, sent to "                \
                                "relay.alternate_server with ALTERNATE-SERVER (RFC 8489 §10, "   \
                                "§14.15)")                                                       \
    X(draining_refused, 508, "a new Allocate while the engine drains, without an alternate "      \
                             "server of the client's family (§7.2)")                             \
    X(bad_refresh_attribute, 400, "LIFETIME or REQUESTED-ADDRESS-FAMILY malformed in a Refresh "  \
                                  "(§8.2)")                                                      \
    X(refresh_family_mismatch, 443, "Refresh for an address family the allocation does not "      \
                                    "have (§8.2)")                                               \
    X(missing_peer_address, 400, "CreatePermission or ChannelBind without a well-formed "         \
                                 "XOR-PEER-ADDRESS (§10.2, §12.2)")                              \
    X(peer_family_mismatch, 443, "a peer address of a family the allocation has no relayed "      \
                                 "address of (§10.2, §12.2)")                                    \
    X(peer_forbidden, 403, "the peer address policy refuses a peer (§10.2, §12.2, §21)")          \
    X(too_many_peers, 508, "more XOR-PEER-ADDRESS attributes than a request may install (§10.2)") \
    X(permission_quota, 508, "the allocation has max_permissions live permissions (§10.2)")       \
    X(bad_channel_number, 400, "CHANNEL-NUMBER missing, malformed, or outside 0x4000-0x7FFF "     \
                               "(§12.2)")                                                        \
    X(channel_number_in_use, 400, "the channel number is bound to another peer (§12.2)")          \
    X(channel_peer_in_use, 400, "the peer is bound to another channel number (§12.2)")            \
    X(channel_quota, 508, "the allocation has max_channels live channels (§12.2)")                \
    X(peer_entries_full, 508, "the worker's peer entries (relay.peer_entries) are all in use: "   \
                              "no room for a new permission or channel (§10.2, §12.2)")          \
    /* Dropped, unanswered: */                                                                   \
    X(rate_limited, 0, "an unauthenticated or failing request from a source IP whose token "      \
                       "bucket is empty: dropped, not answered")                                 \
    X(not_turn, 0, "a response, a Data indication or a method other than the four TURN "          \
                   "requests and Send (RFC 8489 §6.3: discarded)")                               \
    X(send_missing_peer_address, 0, "Send indication without a well-formed XOR-PEER-ADDRESS "     \
                                    "(§11.2: discarded)")                                        \
    X(send_unknown_attribute, 0, "Send indication with an unknown comprehension-required "        \
                                 "attribute (RFC 8489 §6.3.2: discarded)")                       \
    X(send_missing_data, 0, "Send indication without DATA (§11.2: discarded)")                    \
    X(send_no_allocation, 0, "Send indication on a 5-tuple without a live allocation (§11.2)")    \
    X(send_no_permission, 0, "Send indication to a peer without a live permission (§11.2)")       \
    X(response_too_large, 0, "the response did not fit the caller's buffer")

#define ENGINE_TURN_OUTCOME_ENUMERATOR(name, code, help) ENGINE_REASON_ENUMERATOR(name, help)
#define ENGINE_TURN_OUTCOME_COUNT(name, code, help) ENGINE_REASON_COUNT(name, help)
#define ENGINE_TURN_OUTCOME_INFO(name, code, help) ENGINE_REASON_INFO(name, help)
#define ENGINE_TURN_OUTCOME_CODE(name, code, help) code,

enum class TurnOutcome : std::uint8_t { ENGINE_TURN_OUTCOMES(ENGINE_TURN_OUTCOME_ENUMERATOR) };

inline constexpr std::size_t turn_outcome_count =
    0 ENGINE_TURN_OUTCOMES(ENGINE_TURN_OUTCOME_COUNT);

/// Each outcome's name and help, indexed by TurnOutcome: the counter labels.
inline constexpr std::array<ReasonInfo, turn_outcome_count> turn_outcomes = {
    {ENGINE_TURN_OUTCOMES(ENGINE_TURN_OUTCOME_INFO)}};

/// The ERROR-CODE each outcome answers with; 0 for a success, a drop, or auth_failed (whose
/// code is its AuthVerdict's).
inline constexpr std::array<std::uint16_t, turn_outcome_count> turn_outcome_codes = {
    ENGINE_TURN_OUTCOMES(ENGINE_TURN_OUTCOME_CODE)};

/// "allocated", "rate_limited", ...
constexpr std::string_view to_string(TurnOutcome outcome) noexcept {
    return turn_outcomes[static_cast<std::size_t>(outcome)].name;
}

/// What the caller does with the message handle_turn() was given.
enum class TurnAction : std::uint8_t {
    respond,  ///< send the response_length bytes written to `out` back on the 5-tuple
    drop,     ///< count `outcome` and discard the datagram
    forward,  ///< send `payload` from the allocation's relayed address to `peer`
};

struct TurnAnswer {
    TurnAction action = TurnAction::drop;
    TurnOutcome outcome = TurnOutcome::not_turn;
    /// The error code of the response sent (0 for a success or no response).
    std::uint16_t error_code = 0;
    /// For outcome auth_failed: why (ok otherwise).
    AuthVerdict auth = AuthVerdict::ok;
    /// respond: the response's size at the start of `out`.
    std::size_t response_length = 0;
    /// forward: the allocation's slot in the shard's table (for its counters and bandwidth
    /// bucket, which the data path charges when it sends), the peer, and the DATA payload, a
    /// view into the request's bytes.
    std::uint32_t slot = RelayTable::no_slot;
    stun::Address peer;
    std::span<const std::byte> payload;
};

/// One relay address index of the server (Allocation::relay_address()): its IPv4 and IPv6
/// address (ports ignored), each present when `families` has its bit.
struct RelayAddress {
    stun::Address ipv4;
    stun::Address ipv6;
    std::uint8_t families = relay_ipv4;  ///< relay_ipv4 | relay_ipv6
};

/// The lifetimes and quotas of the relay, in seconds and counts.
struct RelayLimits {
    std::uint32_t default_lifetime_s = RelayConfig::default_allocation_lifetime_s;
    std::uint32_t max_lifetime_s = 3600;
    std::uint32_t permission_lifetime_s = RelayConfig::permission_lifetime_s;
    std::uint32_t channel_lifetime_s = RelayConfig::channel_lifetime_s;
    std::uint32_t max_allocations_per_user = 10;
    /// How long a port reserved by EVEN-PORT's R bit is held for its RESERVATION-TOKEN (RFC
    /// 8656 §7.2: "for about 30 seconds").
    std::uint32_t reservation_lifetime_s = 30;
    /// Every worker's relay ports, first_relay_port..last_relay_port (config's relay.ports):
    /// a datagram relayed to a relayed address on one of them is delivered in the engine
    /// (hairpin, relay_path.cc); to one on any other port, dropped (relay_own_port).
    std::uint16_t first_relay_port = 49152;
    std::uint16_t last_relay_port = 65535;
    /// Each allocation's bandwidth cap: bytes of relayed data (both directions together) per
    /// second, on the clock below; nullopt: unlimited. The data path drops what its bucket
    /// cannot pay for (relay_bandwidth).
    std::optional<RateLimit> bandwidth;
    /// The rate of the clock whose ticks handle_turn() gets as now_ticks.
    std::uint64_t ticks_per_second = 1'000'000'000;

    /// The limits `config` gives, on a clock of `ticks_per_second` (a bandwidth cap config.cc
    /// let through that the clock cannot keep is left off: relay_setup refuses it first).
    [[nodiscard]] static RelayLimits from(const RelayConfig& config,
                                          std::uint64_t ticks_per_second) noexcept;
};

/// Whether the engine drains (punchctl drain): new Allocates are refused, with 300 Try
/// Alternate and ALTERNATE-SERVER where an alternate of the client's family is configured,
/// else 508; every other request, and the data of existing allocations, carry on.
struct RelayDrain {
    bool draining = false;
    std::optional<stun::Address> alternate_server;  ///< relay.alternate_server
};

/// What every worker reads and none writes. Built by the control thread (allocates); a change
/// (users, secrets, peer policy, drain, reload) is a new one published in its place.
class RelayContext {
public:
    /// `addresses`: indexed by relay address index, at least one, all of the same families
    /// (so that a family is the server's or not, whichever index an allocation gets). Throws
    /// std::invalid_argument otherwise, or for a default lifetime of 0 or above the maximum.
    RelayContext(Credentials credentials, PeerPolicy policy, std::vector<RelayAddress> addresses,
                 const RelayLimits& limits, RelayDrain drain = {});

    [[nodiscard]] const Credentials& credentials() const noexcept { return credentials_; }
    [[nodiscard]] const PeerPolicy& policy() const noexcept { return policy_; }
    [[nodiscard]] const RelayLimits& limits() const noexcept { return limits_; }
    [[nodiscard]] const RelayDrain& drain() const noexcept { return drain_; }
    /// relay_ipv4 | relay_ipv6: the families the server relays.
    [[nodiscard]] std::uint8_t families() const noexcept { return addresses_.front().families; }
    /// Relay address `index`; the first for an index the server does not have.
    [[nodiscard]] const RelayAddress& address(std::uint8_t index) const noexcept {
        return addresses_[index < addresses_.size() ? index : 0];
    }
    /// The relayed transport address of `port` on relay address `index`, of `family`.
    [[nodiscard]] stun::Address relayed_address(std::uint8_t index, std::uint16_t port,
                                                std::uint8_t family) const noexcept;
    /// Whether `peer`'s IP (its port ignored) is one of the relayed addresses, in its own
    /// family. Cost: a compare per relay address.
    [[nodiscard]] bool is_relayed_ip(const stun::Address& peer) const noexcept;
    /// is_relayed_ip() for the IPv4 address at `ip` (4 bytes, network order), inline: the
    /// relay's express lane asks per packet.
    [[nodiscard]] bool is_relayed_ipv4(const std::byte* ip) const noexcept {
        if ((families() & relay_ipv4) == 0) return false;
        std::uint32_t a;
        std::memcpy(&a, ip, 4);
        for (const RelayAddress& address : addresses_) {
            std::uint32_t b;
            std::memcpy(&b, address.ipv4.ip.data(), 4);
            if (a == b) return true;
        }
        return false;
    }
    /// Whether `port` is one of the relay ports (RelayLimits).
    [[nodiscard]] bool is_relay_port(std::uint16_t port) const noexcept {
        return port >= limits_.first_relay_port && port <= limits_.last_relay_port;
    }

private:
    Credentials credentials_;
    PeerPolicy policy_;
    std::vector<RelayAddress> addresses_;
    RelayLimits limits_;
    RelayDrain drain_;
};

/// A worker's relay counters since start-up: what handle_turn() made of each message (its
/// TurnOutcome, and for auth_failed its AuthVerdict), and the datagrams relayed. Written by the
/// owner worker only; the control thread reads them for reports as it reads CoreCounters
/// (plain 64-bit stores, a value true at some instant).
struct RelayCounters {
    std::array<std::uint64_t, turn_outcome_count> outcomes{};
    std::array<std::uint64_t, auth_verdict_count> auth_failures{};
    std::uint64_t to_peer_packets = 0;
    std::uint64_t to_peer_bytes = 0;
    std::uint64_t to_client_packets = 0;
    std::uint64_t to_client_bytes = 0;
    /// Allocations deleted by the operator (punchctl allocations kill: kill_allocation(),
    /// kill_user_allocations()), not by their client or their lifetime.
    std::uint64_t killed = 0;

    [[nodiscard]] std::uint64_t outcome(TurnOutcome o) const noexcept {
        return outcomes[static_cast<std::size_t>(o)];
    }
    /// Adds every counter of `other` (a worker's, into a total): the exit report's and the
    /// metrics' one sum, as CoreCounters::add() is.
    void add(const RelayCounters& other) noexcept {
        for (std::size_t o = 0; o < outcomes.size(); ++o) outcomes[o] += other.outcomes[o];
        for (std::size_t a = 0; a < auth_failures.size(); ++a)
            auth_failures[a] += other.auth_failures[a];
        to_peer_packets += other.to_peer_packets;
        to_peer_bytes += other.to_peer_bytes;
        to_client_packets += other.to_client_packets;
        to_client_bytes += other.to_client_bytes;
        killed += other.killed;
    }
};

/// One worker's mutable relay state. alignas(64): per-core state (style rule 10).
class alignas(64) RelayShard {
public:
    /// Allocates everything: the table (`table_limits`), `rate_buckets` token buckets for
    /// unauthenticated requests at `unauthenticated`, and the per-user counts (twice the
    /// table's capacity, a power of two). `seed` seeds the limiter's and the counts' hashes
    /// (random in production, fixed in tests); the table has its own in `table_limits`.
    /// Throws what RelayTable and SourceRateLimiter throw (start-up, style rule 12).
    RelayShard(const RelayTableLimits& table_limits, const RateLimit& unauthenticated,
               std::size_t rate_buckets, std::uint64_t seed);

    /// The table, to look allocations up (ChannelData, peer datagrams) and list them. Change
    /// it only through handle_turn() and sweep() (header comment).
    [[nodiscard]] RelayTable& table() noexcept { return table_; }
    [[nodiscard]] const RelayTable& table() const noexcept { return table_; }
    /// Allocations this worker holds for `username`.
    [[nodiscard]] std::uint32_t allocations_of(std::string_view username) const noexcept;
    /// Whether `port` is one of this worker's relay ports (its table's share).
    [[nodiscard]] bool owns_relay_port(std::uint16_t port) const noexcept {
        return port >= table_limits_.first_relay_port &&
               static_cast<std::uint32_t>(port - table_limits_.first_relay_port) <
                   table_limits_.relay_port_count;
    }

    /// A transaction ID for a Data indication (RFC 8656 §11.4): a seeded 64-bit mix of a
    /// counter, so that two are never alike on this worker and nobody outside can guess the
    /// next; not a secret (an indication has no integrity to protect).
    [[nodiscard]] stun::TransactionId next_indication_id() noexcept;
    /// A RESERVATION-TOKEN (RFC 8656 §7.2): the first 8 bytes of HMAC-SHA256 over a
    /// counter, keyed from the seed, so that holding every token this worker gave out does not
    /// tell the next one (a client who could guess it could take another's reserved port).
    /// Never 0. Cost: one HMAC, on an Allocate with EVEN-PORT's R bit.
    [[nodiscard]] std::uint64_t next_reservation_token() noexcept;

    /// The worker's relay counters: handle_turn() counts outcomes, the data path relayed
    /// datagrams.
    [[nodiscard]] RelayCounters& counters() noexcept { return counters_; }
    [[nodiscard]] const RelayCounters& counters() const noexcept { return counters_; }

private:
    friend struct RelayShardAccess;

    struct UserCount {
        std::uint64_t hash = 0;  // 0: empty
        std::uint32_t count = 0;
    };

    [[nodiscard]] std::uint64_t user_hash(std::string_view username) const noexcept;
    [[nodiscard]] std::size_t find_user(std::uint64_t hash) const noexcept;
    void add_user(std::uint64_t hash, std::uint32_t slot) noexcept;
    void erase_slot(std::uint32_t slot) noexcept;

    RelayTable table_;
    SourceRateLimiter limiter_;
    RelayTableLimits table_limits_;
    std::uint64_t seed_;
    std::uint64_t indications_ = 0;
    std::uint64_t reservations_made_ = 0;
    std::array<std::byte, 32> reservation_key_{};
    // Open addressing, linear probing, erased by backward shift; at most half full, since
    // no more users than allocations are counted.
    std::unique_ptr<UserCount[]> users_;
    std::size_t users_mask_;
    // The hash of each slot's username (0: a free slot), to uncount it when the slot goes.
    std::unique_ptr<std::uint64_t[]> slot_user_;
    std::uint32_t sweep_cursor_ = 0;
    alignas(64) RelayCounters counters_;
};

/// Handles one TURN message from the client of `five_tuple` (the header comment gives the
/// order of the checks; relay_role.cc cites the RFC for each). `request` is `raw_request`
/// parsed (stun::Message::parse); `now_ticks` is the shard's clock (RelayLimits::
/// ticks_per_second), `now_s` Unix seconds (nonces, REST usernames). A response is written to
/// `out`, which may be `raw_request`'s own buffer: everything is read from the request before
/// the first byte is written.
///
/// Returns respond (a success, or an error with one of 300, 400, 401, 403, 420, 437, 438, 440,
/// 441, 442, 443, 486, 508), forward (a Send indication with a permission), or drop (rate_limited,
/// not_turn, send_*, response_too_large), the outcome naming which. Counts the outcome (and an
/// auth_failed's AuthVerdict) in shard.counters().
///
/// Cost: a request costs authenticate() (two HMACs), a table look-up and a response with one
/// HMAC; a Send indication a look-up and a permission scan. No allocation, no lock, no syscall.
[[nodiscard]] TurnAnswer handle_turn(const RelayContext& context, RelayShard& shard,
                                     const stun::Message& request,
                                     std::span<const std::byte> raw_request,
                                     const FiveTuple& five_tuple, std::uint64_t now_ticks,
                                     std::uint64_t now_s, std::span<std::byte> out) noexcept;

/// RelayTable::sweep()'s work, for the worker loop's idle time, keeping the per-user counts:
/// visits up to `max_slots` slots round robin, drops the relayed addresses whose expiry is at
/// or before `now_ticks`, erases allocations left with none, and removes expired permissions
/// and channels from the others; then as many reservation records, releasing the expired
/// (RelayTable::expire_reservations()). Returns how many allocations it erased.
std::size_t sweep(RelayShard& shard, std::uint64_t now_ticks, std::size_t max_slots) noexcept;

/// The operator's order to delete allocations of one worker (punchctl allocations kill). The
/// control thread, which must never write a worker's table, sends it on the worker's command
/// ring (Dataplane::command_rings, engine/worker.h); the worker carries it out with the two
/// functions below and acknowledges `sequence` (Dataplane::command_acks). Trivially copyable:
/// the ring holds it by value.
struct RelayKill {
    enum class Target : std::uint8_t {
        allocation,  ///< the allocation in `slot`, if it still holds `key`
        user,        ///< every allocation whose username has `username_hash` and length
    };
    FiveTuple key;
    std::uint64_t username_hash = 0;  ///< RelayTable::username_hash() of the name
    std::uint32_t slot = RelayTable::no_slot;
    std::uint32_t sequence = 0;  ///< the control thread's number for it, echoed when done
    std::uint16_t username_length = 0;
    Target target = Target::allocation;
};
static_assert(std::is_trivially_copyable_v<RelayKill> && sizeof(RelayKill) % 4 == 0,
              "rte_ring's elements are copied as 4-byte words");

/// Deletes the allocation in `slot` if it holds `key` (a slot freed and taken again since
/// the control thread read it holds another 5-tuple, which stays), keeping the per-user
/// counts, and counts it in RelayCounters::killed. Returns whether it deleted one. RFC 8656
/// has no message for it: the client learns when its next request gets 437 or its peers'
/// data stops. Cost: a slot's key compare and an erase.
bool kill_allocation(RelayShard& shard, std::uint32_t slot, const FiveTuple& key) noexcept;

struct KillProgress {
    std::size_t killed = 0;  ///< allocations deleted by this call
    bool done = false;       ///< the walk has passed the table's last used slot
};

/// A user's allocations, in bounded steps for the worker loop: visits up to `max_slots`
/// slots from `cursor` (0 to begin), deletes those whose username has `username_hash`
/// (RelayTable::username_hash()) and `username_length`, as kill_allocation() does, and
/// advances `cursor`. Done once the cursor reaches RelayTable::slots_used(); an allocation
/// the user makes meanwhile in a slot already visited stays. Cost: a record's shape and
/// username words per slot visited.
KillProgress kill_user_allocations(RelayShard& shard, std::uint64_t username_hash,
                                   std::size_t username_length, std::uint32_t& cursor,
                                   std::size_t max_slots) noexcept;

}  // namespace engine
