// What a reload of the configuration file would change in a running engine, and whether the
// engine can take it live (design.md §4: "reload ... publishes a new snapshot through RCU").
//
// Live: what the relay's read-only context is built from (engine/relay_setup.h): the
// credentials (realm, users, REST secrets, nonce lifetime), the peer policy's lists, the
// lifetimes and quotas it checks per request, the per-allocation bandwidth cap, and the
// alternate server of a drain. A new RelayContext carries them to the workers.
//
// Restart: everything that sized or placed something at start-up: the EAL arguments, the
// workers and their queues, the mbuf pool, the ports and their addresses, the STUN role's
// listeners and templates, the neighbour cache, the relay's tables (max_allocations,
// peer_entries, reservations, the per-allocation permission and channel arrays), its ports
// (shared out among the workers), its unauthenticated-request limiters, whether it runs at
// all, and the management socket itself.
#pragma once

#include <string>
#include <vector>

#include "engine/config.h"

namespace engine {

/// The keys whose values differ between two configurations, by dotted name as the file
/// writes them ("relay.users", "engine.workers", "port[0].ipv4"), in EngineConfig's order.
struct ConfigChanges {
    std::vector<std::string> live;     ///< a new RelayContext applies them
    std::vector<std::string> restart;  ///< only a restart applies them

    [[nodiscard]] bool empty() const noexcept { return live.empty() && restart.empty(); }
};

/// Compares `running` with `next` key by key. Lists (users, secrets, peer lists) compare as
/// sets: their order means nothing to the engine. A relay disabled in both compares equal
/// whatever its other keys say, as config.cc ignores them then.
[[nodiscard]] ConfigChanges diff_config(const EngineConfig& running, const EngineConfig& next);

}  // namespace engine
