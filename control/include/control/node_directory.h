// The coordinator's directory of nodes (design.md §4): STUN servers, relays and (issue 7) SFU
// nodes that announce themselves with their role, public address, NAT type, region and load,
// and stay listed while their heartbeats arrive.
//
// One node per coordinator connection: the connection is the node's identity, so a node that
// disconnects leaves the directory at once, and one that goes silent (a hung process, a cut
// path where the TCP connection has not yet failed) leaves it when its ttl runs out. Pure:
// every call takes the time, so expiry is tested on an injected clock. Not thread-safe (the
// coordinator's one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace control {

/// Which connection a node came over (the server's numbering).
using ConnectionId = std::uint64_t;

enum class NodeRole : std::uint8_t { stun, relay, sfu };

[[nodiscard]] std::string_view to_string(NodeRole role) noexcept;
/// "stun", "relay" or "sfu"; false for anything else.
[[nodiscard]] bool node_role_from_string(std::string_view text, NodeRole& out) noexcept;

struct NodeInfo {
    NodeRole role = NodeRole::stun;
    std::string address;   ///< "ip:port", as the node announced it (checked by the caller)
    std::string nat_type;  ///< punch::NatType's names: "none", "full_cone", ...
    std::string region;
    std::uint32_t load = 0;  ///< the node's own figure, 0..1000000 (per-mille of capacity)
};

struct NodeEntry {
    std::uint64_t node_id = 0;  ///< stable while registered; never reused
    ConnectionId connection = 0;
    NodeInfo info;
    std::uint64_t registered_ms = 0;  ///< monotonic
    std::uint64_t last_heard_ms = 0;  ///< monotonic: the registration or the last heartbeat
};

class NodeDirectory {
public:
    /// `ttl_ms`: a node not heard from for longer is removed by expire().
    NodeDirectory(std::size_t capacity, std::uint64_t ttl_ms) noexcept
        : capacity_(capacity), ttl_ms_(ttl_ms) {}

    enum class RegisterResult : std::uint8_t { added, updated, full };
    /// Lists the connection's node, or replaces what it announced (a node whose address or
    /// load changed registers again). `full`: capacity nodes are listed already.
    RegisterResult register_node(ConnectionId connection, const NodeInfo& info,
                                 std::uint64_t now_ms, std::uint64_t& node_id);

    /// Refreshes the connection's node and its load; false when it has none (never
    /// registered, or expired already).
    bool heartbeat(ConnectionId connection, std::uint32_t load, std::uint64_t now_ms);

    /// Forgets the connection's node (it left or disconnected); false when it had none.
    bool remove(ConnectionId connection);

    /// Removes every node not heard from for more than the ttl; returns their connections
    /// (the coordinator tells them).
    std::vector<ConnectionId> expire(std::uint64_t now_ms);

    /// The earliest time a node may expire; nullopt when none is listed.
    [[nodiscard]] std::optional<std::uint64_t> next_expiry() const;

    /// Nodes in registration order, optionally of one role.
    [[nodiscard]] std::vector<const NodeEntry*> list(std::optional<NodeRole> role = {}) const;

    [[nodiscard]] const NodeEntry* find(ConnectionId connection) const;
    [[nodiscard]] std::size_t size() const noexcept { return by_connection_.size(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::uint64_t ttl_ms() const noexcept { return ttl_ms_; }
    [[nodiscard]] std::uint64_t expired_count() const noexcept { return expired_; }

private:
    std::size_t capacity_;
    std::uint64_t ttl_ms_;
    std::uint64_t next_node_id_ = 1;
    std::uint64_t expired_ = 0;
    std::map<ConnectionId, NodeEntry> by_connection_;
};

}  // namespace control
