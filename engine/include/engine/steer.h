// Which worker owns a packet (design.md §3): a pure function of the packet, so that any core
// that receives it hands it to the same owner. No DPDK: tested on plain buffers.
#pragma once

#include <cstddef>
#include <span>

namespace engine {

/// The owner among `workers` of a UDP packet over IPv4 or IPv6: hash(source IP, source port).
/// Returns -1 for anything else (ARP, ICMP, non-UDP, malformed): any core may answer those,
/// since they keep no state. Cost: a few loads and a multiply.
[[nodiscard]] int owner_worker(std::span<const std::byte> frame, unsigned workers) noexcept;

}  // namespace engine
