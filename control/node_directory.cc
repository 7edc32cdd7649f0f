// The coordinator's directory of nodes (control/node_directory.h).
#include "control/node_directory.h"

#include <algorithm>

namespace control {

std::string_view to_string(NodeRole role) noexcept {
    switch (role) {
        case NodeRole::stun: return "stun";
        case NodeRole::relay: return "relay";
        case NodeRole::sfu: return "sfu";
    }
    return "?";
}

bool node_role_from_string(std::string_view text, NodeRole& out) noexcept {
    for (const NodeRole role : {NodeRole::stun, NodeRole::relay, NodeRole::sfu}) {
        if (to_string(role) == text) {
            out = role;
            return true;
        }
    }
    return false;
}

NodeDirectory::RegisterResult NodeDirectory::register_node(ConnectionId connection,
                                                           const NodeInfo& info,
                                                           std::uint64_t now_ms,
                                                           std::uint64_t& node_id) {
    const auto it = by_connection_.find(connection);
    if (it != by_connection_.end()) {
        it->second.info = info;
        it->second.last_heard_ms = now_ms;
        node_id = it->second.node_id;
        return RegisterResult::updated;
    }
    if (by_connection_.size() >= capacity_) return RegisterResult::full;
    NodeEntry entry;
    entry.node_id = next_node_id_++;
    entry.connection = connection;
    entry.info = info;
    entry.registered_ms = now_ms;
    entry.last_heard_ms = now_ms;
    node_id = entry.node_id;
    by_connection_.emplace(connection, std::move(entry));
    return RegisterResult::added;
}

bool NodeDirectory::heartbeat(ConnectionId connection, std::uint32_t load, std::uint64_t now_ms) {
    const auto it = by_connection_.find(connection);
    if (it == by_connection_.end()) return false;
    it->second.info.load = load;
    it->second.last_heard_ms = now_ms;
    return true;
}

bool NodeDirectory::remove(ConnectionId connection) {
    return by_connection_.erase(connection) != 0;
}

std::vector<ConnectionId> NodeDirectory::expire(std::uint64_t now_ms) {
    std::vector<ConnectionId> gone;
    for (auto it = by_connection_.begin(); it != by_connection_.end();) {
        // Heard at t: listed through t + ttl, gone after.
        if (now_ms > it->second.last_heard_ms + ttl_ms_) {
            gone.push_back(it->first);
            it = by_connection_.erase(it);
            ++expired_;
        } else {
            ++it;
        }
    }
    return gone;
}

std::optional<std::uint64_t> NodeDirectory::next_expiry() const {
    std::optional<std::uint64_t> earliest;
    for (const auto& [connection, entry] : by_connection_) {
        const std::uint64_t at = entry.last_heard_ms + ttl_ms_ + 1;
        if (!earliest || at < *earliest) earliest = at;
    }
    return earliest;
}

std::vector<const NodeEntry*> NodeDirectory::list(std::optional<NodeRole> role) const {
    std::vector<const NodeEntry*> out;
    for (const auto& [connection, entry] : by_connection_)
        if (!role || entry.info.role == *role) out.push_back(&entry);
    std::sort(out.begin(), out.end(),
              [](const NodeEntry* a, const NodeEntry* b) { return a->node_id < b->node_id; });
    return out;
}

const NodeEntry* NodeDirectory::find(ConnectionId connection) const {
    const auto it = by_connection_.find(connection);
    return it == by_connection_.end() ? nullptr : &it->second;
}

}  // namespace control
