// How a packet reaches the worker that owns it (design.md §3): by the NIC, with an rte_flow
// rule, where the port can; in software everywhere else, the worker that received a packet it
// does not own handing it over through an SPSC ring (worker.cc, owner_worker()).
#pragma once

#include <cstdint>
#include <string>

namespace engine {

enum class SteeringMode : std::uint8_t {
    software,  ///< every worker computes owner_worker() and hands off what is not its own
    rules,     ///< the port's rte_flow rules spread UDP by source address and port over the
               ///< workers' queues: the queue a packet arrives on is its owner's
};

/// What the port was given, and why.
struct SteeringResult {
    SteeringMode mode = SteeringMode::software;
    std::string reason;  ///< for the log: the rules installed, or what the PMD refused
};

/// Installs, on a started port, rte_flow rules that steer UDP over IPv4 and IPv6 to `queues`
/// RX queues (0 .. queues-1) by an RSS hash of the source address and source port only, so that
/// one client's packets always reach one queue. Validated first; if the PMD refuses either rule
/// (no vdev here supports rte_flow), none is left installed and the result is software
/// steering with the PMD's reason. One queue needs no steering at all.
SteeringResult install_steering_rules(std::uint16_t port_id, std::uint16_t queues);

/// Removes the rules install_steering_rules() created (before the port stops).
void remove_steering_rules(std::uint16_t port_id) noexcept;

}  // namespace engine
