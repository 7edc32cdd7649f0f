// Internet checksums (RFC 1071) and their incremental update (RFC 1624), on plain buffers so
// that the packet handlers build and test without DPDK.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace engine {

/// Ones' complement sum of `bytes` (as big-endian 16-bit words, odd tail padded with zero)
/// added to `sum`, folded to 16 bits (0..0xFFFF) so that it can be passed back in. Inline, so
/// that a header of a fixed size (20 bytes of IPv4) is summed in a few unrolled loads.
[[nodiscard]] inline std::uint32_t checksum_add(std::uint32_t sum,
                                                std::span<const std::byte> bytes) noexcept;

/// Folds a ones' complement sum kept in 64 bits to 16 bits (0..0xFFFF), in end-around carries.
[[nodiscard]] inline std::uint32_t checksum_fold(std::uint64_t sum) noexcept;

/// Folds a 32-bit sum to 16 bits and complements it: the value to store.
[[nodiscard]] inline std::uint16_t checksum_finish(std::uint32_t sum) noexcept;

/// IPv4 header checksum of `header` (its checksum field is included as it stands: to compute,
/// zero it first; to verify, the result is 0).
[[nodiscard]] inline std::uint16_t ipv4_header_checksum(
    std::span<const std::byte> header) noexcept;

/// UDP/ICMPv6 checksum with the pseudo-header (RFC 768, RFC 8200 §8.1). `segment` is the
/// transport header and payload, its checksum field included as it stands. `addresses` is the
/// source and destination address, contiguous in the IP header (8 or 32 bytes).
[[nodiscard]] inline std::uint16_t transport_checksum(std::span<const std::byte> addresses,
                                                      std::uint8_t protocol,
                                                      std::span<const std::byte> segment) noexcept;

/// The ones' complement sum of `N` bytes (a multiple of 4) as 32-bit words in the CPU's order,
/// not folded: a few unrolled loads. A sum of a datagram loaded so folds to the byte-swapped
/// big-endian one (RFC 1071 §2(B)), so `checksum_fold(...) == 0xFFFF` (all ones) verifies as
/// the big-endian sum does; a big-endian 16-bit word adds to it byte-swapped.
template <std::size_t N>
[[nodiscard]] std::uint64_t checksum_native_sum(const std::byte* p) noexcept;

/// The ones' complement sum of `n` bytes as checksum_native_sum() takes them (words in the
/// CPU's order, not folded), for a length known only at run time: a load and an add per 8
/// bytes. An odd last byte is the high half of a big-endian word padded with zero, as RFC 1071
/// pads. `p` lies an even number of bytes past the start of what is summed.
[[nodiscard]] inline std::uint64_t checksum_native_sum_n(const std::byte* p,
                                                         std::size_t n) noexcept;

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 16-bit field changing from m to m'.
[[nodiscard]] std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                              std::uint16_t new_value) noexcept;

// The inline definitions: the packet handlers call these on every packet.

inline std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::byte> bytes) noexcept {
    // RFC 1071 §2(B): the sum is independent of byte order, so the words are added as the CPU
    // loads them and the 16-bit result is swapped once at the end.
    auto folded = checksum_fold(checksum_native_sum_n(bytes.data(), bytes.size()));
    if constexpr (std::endian::native == std::endian::little)
        folded = ((folded & 0xFF) << 8) | (folded >> 8);
    return checksum_fold(std::uint64_t{sum} + folded);
}

inline std::uint64_t checksum_native_sum_n(const std::byte* p, std::size_t n) noexcept {
    // 64-bit words added with their carries counted (an add from memory and an add-with-carry
    // each, about a cycle per 8 bytes in L1), four to a loop iteration; the last 0-7 bytes as
    // 32-, 16- and 8-bit words. Written so that g++ and clang find the add-with-carry (an
    // unsigned __int128 accumulator goes through the stack).
    static_assert(std::endian::native == std::endian::little ||
                  std::endian::native == std::endian::big);
    const auto load = [](const std::byte* at) noexcept {
        std::uint64_t word;
        std::memcpy(&word, at, 8);
        return word;
    };
    std::uint64_t sum = 0;
    std::uint64_t carries = 0;
    for (; n >= 32; p += 32, n -= 32) {
        const std::uint64_t a = load(p), b = load(p + 8), c = load(p + 16), d = load(p + 24);
        sum += a;
        carries += sum < a;
        sum += b;
        carries += sum < b;
        sum += c;
        carries += sum < c;
        sum += d;
        carries += sum < d;
    }
    for (; n >= 8; p += 8, n -= 8) {
        const std::uint64_t a = load(p);
        sum += a;
        carries += sum < a;
    }
    std::uint64_t rest = 0;
    if (n >= 4) {
        std::uint32_t word;
        std::memcpy(&word, p, 4);
        rest += word;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        std::uint16_t word;
        std::memcpy(&word, p, 2);
        rest += word;
        p += 2;
        n -= 2;
    }
    // An odd last byte is the high half of a big-endian word padded with zero.
    if (n != 0)
        rest += std::to_integer<std::uint32_t>(p[0])
                << (std::endian::native == std::endian::little ? 0 : 8);
    // 2^64 is 1 modulo 2^64 - 1, a multiple of 2^16 - 1 (RFC 1071 §2(C)): the carries add
    // back as they are, the 64-bit part as its two 32-bit halves (no overflow below 2^31
    // carries).
    return (sum & 0xFFFFFFFF) + (sum >> 32) + carries + rest;
}

template <std::size_t N>
std::uint64_t checksum_native_sum(const std::byte* p) noexcept {
    static_assert(N % 4 == 0);
    // 64-bit words added with their carries (an add and an add-with-carry each): the sum
    // modulo 2^64 - 1, a multiple of 2^16 - 1, so it folds to the same 16 bits (RFC 1071
    // §2(C)). The carries are added back once, and a 32-bit tail on its own.
    __extension__ using wide = unsigned __int128;
    wide sum = 0;
    for (std::size_t i = 0; i + 8 <= N; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        sum += word;
    }
    std::uint64_t folded = static_cast<std::uint64_t>(sum);
    const auto carries = static_cast<std::uint64_t>(sum >> 64);
    // Without a carry out of 64 bits: carries < 2^3, and the 32-bit halves take them.
    std::uint64_t result = (folded & 0xFFFFFFFF) + (folded >> 32) + carries;
    if constexpr (N % 8 != 0) {
        std::uint32_t word;
        std::memcpy(&word, p + N - 4, 4);
        result += word;
    }
    return result;
}

inline std::uint32_t checksum_fold(std::uint64_t sum) noexcept {
    // End-around carries as add-with-carry, no loop: a loop's trip count depends on the data,
    // and its mispredicted exit cost more than the packet's whole checksum.
    std::uint32_t half;
    half = static_cast<std::uint32_t>(sum) + static_cast<std::uint32_t>(sum >> 32) +
           (__builtin_add_overflow(static_cast<std::uint32_t>(sum),
                                   static_cast<std::uint32_t>(sum >> 32), &half)
                ? 1u
                : 0u);
    std::uint16_t quarter;
    quarter = static_cast<std::uint16_t>(
        static_cast<std::uint16_t>(half) + static_cast<std::uint16_t>(half >> 16) +
        (__builtin_add_overflow(static_cast<std::uint16_t>(half),
                                static_cast<std::uint16_t>(half >> 16), &quarter)
             ? 1u
             : 0u));
    return quarter;
}

inline std::uint16_t checksum_finish(std::uint32_t sum) noexcept {
    return static_cast<std::uint16_t>(~checksum_fold(sum));
}

inline std::uint16_t ipv4_header_checksum(std::span<const std::byte> header) noexcept {
    return checksum_finish(checksum_add(0, header));
}

inline std::uint16_t transport_checksum(std::span<const std::byte> addresses, std::uint8_t protocol,
                                 std::span<const std::byte> segment) noexcept {
    std::uint32_t sum = checksum_add(0, addresses);
    sum += protocol;
    sum += static_cast<std::uint32_t>(segment.size() & 0xFFFF);
    sum += static_cast<std::uint32_t>(segment.size() >> 16);
    return checksum_finish(checksum_add(sum, segment));
}

}  // namespace engine
