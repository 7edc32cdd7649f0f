// Which worker owns a packet (design.md §3): a pure function of the packet, so that any core
// that receives it hands it to the same owner. No DPDK: tested on plain buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace engine {

/// The relay ports of a port, split among its workers (design.md §3: "traffic to a relay port
/// is owned by the core that the port number encodes"): worker w owns the `per_worker` ports
/// from first + w × per_worker, and allocates its clients' relayed ports there, so that a
/// peer's datagram reaches the core that holds the allocation. per_worker 0: no relay.
struct RelayPortPartition {
    std::uint16_t first = 0;
    std::uint16_t per_worker = 0;

    /// The worker that owns `port`, or -1 when it is not one of the `workers`' relay ports.
    [[nodiscard]] int owner_of(std::uint16_t port, unsigned workers) const noexcept {
        if (per_worker == 0 || port < first) return -1;
        const unsigned worker = (port - first) / per_worker;
        return worker < workers ? static_cast<int>(worker) : -1;
    }
};

/// The owner among `workers` of a UDP packet over IPv4 or IPv6: the worker whose relay ports
/// hold its destination port, else hash(source IP, source port). Returns -1 for anything else
/// (ARP, ICMP, non-UDP, malformed): any core may answer those, since they keep no state.
/// Cost: a few loads and a multiply.
[[nodiscard]] int owner_worker(std::span<const std::byte> frame, unsigned workers,
                               const RelayPortPartition& relay = {}) noexcept;

}  // namespace engine
