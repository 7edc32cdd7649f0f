// SFU node selection (design.md §4-§5, patent claim 4): from the two clients' NAT types and each
// node's, keep the nodes that can punch with both clients, and order them by the preset rule.
//
// When two clients cannot punch to each other, a node that can punch to each of them forwards
// between them, so that the public relay carries only the calls no node can serve. A node may
// sit behind a NAT itself (a user's device, an edge box): it serves a call only if
// can_punch(node, A) and can_punch(node, B) (nat_matrix.h). The preset rule then orders the
// survivors:
//   1. nearest first: nodes whose RTT both clients measured, by the sum of the two (media goes
//      A → node → B, so the call's round trip through the node is rtt_A + rtt_B), before the
//      nodes without both measurements (a measured RTT also shows the node answers both now);
//      the latter by region: the region of both clients, then of one, then of neither (an empty
//      region matches nothing);
//   2. then the least loaded;
//   3. then the smaller node id (stable: the same inputs give the same order on every
//      coordinator).
// Nodes not heard from within the ttl and nodes at full load are left out, each with its
// reason. The clients try the nodes in order, the first `race` of them at once; an empty order
// means no node can serve both, and the ladder goes to the relay.
//
// Pure: no I/O, no clock (the caller passes the time), so the coordinator and tests call it the
// same way.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "punch/nat_classify.h"

namespace punch {

/// A candidate node, as the coordinator's directory lists it (control/node_directory.h).
struct SfuNode {
    std::uint64_t id = 0;
    std::string address;  ///< its public "ip:port", passed through to the candidates
    NatType nat_type = NatType::unknown;
    std::string region;
    std::uint32_t load = 0;            ///< the node's own figure: per-mille of capacity
    std::uint64_t last_heard_ms = 0;  ///< monotonic: its registration or last heartbeat
};

/// One of the two clients of the call.
struct SfuClient {
    NatType nat_type = NatType::unknown;
    std::string region;
    /// Round trips this client measured to nodes, in microseconds, by node id (absent: not
    /// measured).
    std::map<std::uint64_t, std::uint32_t> rtt_us;
};

struct SfuSelectConfig {
    /// A node whose load is at or above this is full and left out (1000: the per-mille
    /// convention's 100%).
    std::uint32_t full_load = 1000;
    /// A node not heard from for more than this is left out (the directory's default ttl).
    std::uint64_t ttl_ms = 15000;
    /// How many of the first nodes the clients race at once; the rest are tried one by one.
    std::size_t race = 1;
};

// X(name, help): every reason a node is left out, in one table (style rule 6).
#define PUNCH_SFU_DROP_REASONS(X)                                                              \
    X(expired, "not heard from (registration or heartbeat) for more than the ttl")             \
    X(full, "its load is at or above full_load")                                                \
    X(nat_client_a, "its NAT type cannot punch with client A's (nat_matrix.h)")                \
    X(nat_client_b, "its NAT type cannot punch with client B's (nat_matrix.h)")                \
    X(nat_both, "its NAT type cannot punch with either client's (nat_matrix.h)")             \
    X(nat_member,                                                                              \
      "its NAT type cannot punch with a client after the first two (rooms of more than two; "  \
      "nat_matrix.h)")

enum class SfuDrop : std::uint8_t {
#define PUNCH_SFU_ENUMERATOR(name, help) name,
    PUNCH_SFU_DROP_REASONS(PUNCH_SFU_ENUMERATOR)
#undef PUNCH_SFU_ENUMERATOR
};

struct SfuDropInfo {
    std::string_view name;
    std::string_view help;
};

#define PUNCH_SFU_COUNT(name, help) +1
inline constexpr std::size_t sfu_drop_count = 0 PUNCH_SFU_DROP_REASONS(PUNCH_SFU_COUNT);
#undef PUNCH_SFU_COUNT

#define PUNCH_SFU_INFO(name, help) SfuDropInfo{#name, help},
inline constexpr std::array<SfuDropInfo, sfu_drop_count> sfu_drop_reasons = {
    {PUNCH_SFU_DROP_REASONS(PUNCH_SFU_INFO)}};
#undef PUNCH_SFU_INFO

[[nodiscard]] std::string_view to_string(SfuDrop reason) noexcept;

/// A node kept, with what ranked it.
struct SfuCandidate {
    std::uint64_t id = 0;
    std::string address;
    NatType nat_type = NatType::unknown;
    /// rtt_A + rtt_B (the sum over every client in a room), when every client measured it
    std::optional<std::uint32_t> rtt_us;
    int region_match = 0;  ///< how many of the clients share its region (ranks only the unmeasured)
    std::uint32_t load = 0;
};

struct SfuDropped {
    std::uint64_t id = 0;
    SfuDrop reason = SfuDrop::expired;  ///< the first that applies, in the table's order
};

struct SfuSelection {
    std::vector<SfuCandidate> candidates;  ///< in the order to try them
    /// The same nodes as attempts: the first `race` ids together, then one id per attempt.
    std::vector<std::vector<std::uint64_t>> attempts;
    std::vector<SfuDropped> dropped;  ///< in the input's order
};

/// The nodes that can serve a call between `a` and `b`, in the preset rule's order (header
/// comment), at monotonic time `now_ms`. An empty `candidates`: no node serves both (the relay
/// rung). Every node of `nodes` is either in `candidates` or in `dropped`.
/// Throws std::invalid_argument, naming the field, when config.race or config.full_load is 0.
[[nodiscard]] SfuSelection select_sfu_nodes(const SfuClient& a, const SfuClient& b,
                                            std::span<const SfuNode> nodes,
                                            std::uint64_t now_ms,
                                            const SfuSelectConfig& config = {});

/// The same for a room of two or more clients (the coordinator's rooms may hold more than two
/// members): a node is kept only if it can punch with every client, because each member's leg
/// goes to it. The first two clients are A and B of the drop reasons (nat_client_a,
/// nat_client_b, nat_both, checked first, as above); a node that serves both but not a later
/// client is dropped as nat_member. The preset rule extends as it reads: measured means
/// measured by every client, the RTT is the sum over all of them, and the region rank counts
/// the clients in the node's region. With exactly two clients this is select_sfu_nodes(a, b).
/// Throws std::invalid_argument as above, and when `clients` holds fewer than two.
[[nodiscard]] SfuSelection select_sfu_nodes(std::span<const SfuClient> clients,
                                            std::span<const SfuNode> nodes,
                                            std::uint64_t now_ms,
                                            const SfuSelectConfig& config = {});

}  // namespace punch
