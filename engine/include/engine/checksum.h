// Internet checksums (RFC 1071) and their incremental update (RFC 1624), on plain buffers so
// that the packet handlers build and test without DPDK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace engine {

/// Ones' complement sum of `bytes` (as big-endian 16-bit words, odd tail padded with zero)
/// added to `sum`, folded to 16 bits (0..0xFFFF) so that it can be passed back in.
[[nodiscard]] std::uint32_t checksum_add(std::uint32_t sum,
                                         std::span<const std::byte> bytes) noexcept;

/// Folds a 32-bit sum to 16 bits and complements it: the value to store.
[[nodiscard]] std::uint16_t checksum_finish(std::uint32_t sum) noexcept;

/// IPv4 header checksum of `header` (its checksum field is included as it stands: to compute,
/// zero it first; to verify, the result is 0).
[[nodiscard]] std::uint16_t ipv4_header_checksum(std::span<const std::byte> header) noexcept;

/// UDP/ICMPv6 checksum with the pseudo-header (RFC 768, RFC 8200 §8.1). `segment` is the
/// transport header and payload, its checksum field included as it stands. `addresses` is the
/// source and destination address, contiguous in the IP header (8 or 32 bytes).
[[nodiscard]] std::uint16_t transport_checksum(std::span<const std::byte> addresses,
                                               std::uint8_t protocol,
                                               std::span<const std::byte> segment) noexcept;

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 16-bit field changing from m to m'.
[[nodiscard]] std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                              std::uint16_t new_value) noexcept;

}  // namespace engine
