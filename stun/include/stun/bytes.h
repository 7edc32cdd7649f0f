// Big-endian loads and stores over byte spans.
//
// Every multi-byte wire field goes through these helpers: no cast on unaligned memory, and the
// caller has checked the length before calling (the helpers do not, they are the inner loop).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace stun {

// One unaligned load or store and a byte swap each (memcpy of a constant size compiles to a
// single move): a field written byte by byte costs a dozen instructions, and the packet path
// writes dozens of fields per packet.
static_assert(std::endian::native == std::endian::little ||
              std::endian::native == std::endian::big);

inline std::uint16_t load_be16(const std::byte* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
    return v;
}

inline std::uint32_t load_be32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    return v;
}

inline std::uint64_t load_be64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
}

inline void store_be16(std::byte* p, std::uint16_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
    std::memcpy(p, &v, 2);
}

inline void store_be32(std::byte* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}

inline void store_be64(std::byte* p, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    std::memcpy(p, &v, 8);
}

/// Rounds a STUN attribute length up to the 32-bit boundary (RFC 8489 §14).
constexpr std::size_t padded4(std::size_t n) noexcept { return (n + 3) & ~std::size_t{3}; }

/// Views a string's bytes; for the text attributes (USERNAME, REALM, ...).
inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace stun
