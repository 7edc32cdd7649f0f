// What punchlined builds for the relay role from its configuration, on the control thread at
// start-up (design.md §3, role `relay`): the read-only RelayContext of a port, and each
// worker's share of the relay ports and of the allocation table. The packet path reads what
// these make; nothing here runs per packet. Errors throw (start-up, style rule 12), with the
// setting to change named.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/config.h"
#include "engine/rate_limit.h"
#include "engine/relay_role.h"
#include "engine/relay_table.h"
#include "engine/steer.h"
#include "engine/turn_nonce.h"

namespace engine {

/// The relay's context on `port`: the credentials (realm, users, REST secrets, `nonce_keys`,
/// the nonce lifetime), the peer policy (the configured allow and deny lists, and every
/// address the port owns refused, peer_policy.h), the relay address (the port's primary IPv4
/// and IPv6 addresses: the relayed addresses of its allocations) and the lifetimes and
/// quotas on a clock of `ticks_per_second`, and whether the engine is `draining` (with
/// relay.alternate_server, RelayDrain). Throws std::runtime_error, naming what to change,
/// when the credentials cannot be built or the port has no address to relay from.
///
/// The control thread calls it again for every live change (control/relay_commands.h) with
/// the same `nonce_keys`: a nonce issued before the change verifies after it, so that no
/// client is answered 438 because the users or the policy changed.
[[nodiscard]] std::unique_ptr<const RelayContext> make_relay_context(
    const RelayConfig& relay, const PortConfig& port, const NonceKeys& nonce_keys,
    std::uint64_t ticks_per_second, bool draining = false);

/// How the relay ports split among `workers` (config.cc checked there is one each): equal
/// consecutive shares from relay.ports' first, the remainder unused, so that steering finds
/// a port's worker by a division (steer.h).
[[nodiscard]] RelayPortPartition relay_port_partition(const RelayConfig& relay,
                                                      unsigned workers) noexcept;

/// Worker `worker`'s allocation table: its share of the relay ports, its share of
/// relay.max_allocations, relay.peer_entries and relay.reservations (each total divided among
/// the workers, rounded up, so that the configured total is what the engine holds at most,
/// give or take a worker's rounding), the permission and channel limits, the clock's
/// `ticks_per_second`, and `seed` (random in punchlined).
[[nodiscard]] RelayTableLimits relay_table_limits(const RelayConfig& relay, unsigned worker,
                                                  unsigned workers,
                                                  std::uint64_t ticks_per_second,
                                                  std::uint64_t seed) noexcept;

/// The limit on requests without valid credentials per source IP, on a clock of
/// `ticks_per_second`. Throws std::runtime_error when RateLimit cannot hold it (config.cc's
/// ranges keep it within).
[[nodiscard]] RateLimit unauthenticated_limit(const RelayConfig& relay,
                                              std::uint64_t ticks_per_second);

}  // namespace engine
