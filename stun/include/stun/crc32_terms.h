// CRC-32 (the FINGERPRINT's, RFC 8489 §14.7: ISO-HDLC, reflected polynomial 0xEDB88320) of a
// message known as a sum of fields, without reading its bytes back from memory.
//
// CRC-32 is affine over GF(2): the raw CRC (initial value 0, no final XOR) of a message is the
// XOR of the raw CRCs of its parts, each part placed at its offset with zeros elsewhere, and a
// part of w bytes followed by d bytes contributes V(x)·x^(8d+32) mod P, where V is the part's
// polynomial. A server that writes a response field by field already holds every field in a
// register; Crc32Terms multiplies each by the power of x its distance from the message's end
// calls for (one carry-less multiply, PCLMULQDQ) and reduces the sum once, so the CRC of the
// response costs a few multiplies, independent of the message's length, and never waits for
// the stores that just wrote the message (a table-driven CRC over those bytes does: its wide
// loads cannot be forwarded from the narrower stores).
//
// The full CRC of a message M of n bytes is
//     crc32(M) = raw(M with its first 4 bytes XOR 0xFF) XOR 0xFFFFFFFF,
// so a caller adds the raw CRC of its constant layout (crc32_raw(), computed once, with the
// 0xFF bytes and zeros where the fields go) and then the fields.
//
// Crc32Terms needs PCLMULQDQ: call it only where crc32_terms_supported() says so. Its methods
// carry a target attribute, so that only the functions that use them need one too.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#if defined(__x86_64__)
#include <emmintrin.h>
#include <wmmintrin.h>
#define STUN_CRC32_TERMS 1
#define STUN_CRC32_TARGET [[gnu::target("pclmul")]]
#else
#define STUN_CRC32_TERMS 0
#define STUN_CRC32_TARGET
#endif

namespace stun {

namespace crc32_detail {

inline constexpr std::uint32_t polynomial = 0xEDB88320;  // reflected 0x04C11DB7

// A polynomial of degree < 32 held reflected: bit k is the coefficient of x^(31-k).
// Times x: every coefficient moves one bit down; x^32 reduces to the polynomial.
constexpr std::uint32_t times_x(std::uint32_t r) noexcept {
    return (r >> 1) ^ ((r & 1) != 0 ? polynomial : 0);
}

// table[b]: the raw CRC of byte b, for crc32_raw() (constants, computed once).
constexpr std::array<std::uint32_t, 256> make_table() noexcept {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t r = b;
        for (int i = 0; i < 8; ++i) r = times_x(r);
        t[b] = r;
    }
    return t;
}

// Barrett reduction's constant (Crc32Terms::raw): mu = floor(x^96 / P), of degree 64, without
// its x^64 term, held reflected in 64 bits (bit j: the coefficient of x^(63-j)). Long division
// of x^96 by P (x^32 + 0x04C11DB7, not reflected), a quotient bit per dividend bit.
constexpr std::uint64_t make_barrett_mu() noexcept {
    constexpr std::uint64_t p = 0x104C11DB7ull;
    std::uint64_t remainder = 0;
    std::uint64_t mu = 0;
    for (int i = 96; i >= 0; --i) {
        remainder = (remainder << 1) | (i == 96 ? 1u : 0u);
        if ((remainder >> 32) & 1) {
            remainder ^= p;
            if (i < 64) mu |= std::uint64_t{1} << (63 - i);  // x^i, reflected
        }
    }
    return mu;
}

}  // namespace crc32_detail

/// The farthest distance from the message's end (in bytes) that Crc32Terms places a field at.
inline constexpr std::size_t crc32_terms_max_distance = 1024;

namespace crc32_detail {

inline constexpr auto table = make_table();
inline constexpr std::uint64_t barrett_mu = make_barrett_mu();
static_assert(barrett_mu == 0x5A72D812FB808B20ull);  // as computed independently

// powers[d] = x^(8d + 31) mod P, reflected: the multiplier of a field d bytes from the end
// (the carry-less product's representation adds the last factor x; see Crc32Terms::add).
constexpr std::array<std::uint32_t, crc32_terms_max_distance> make_powers() noexcept {
    std::array<std::uint32_t, crc32_terms_max_distance> t{};
    t[0] = 1;  // x^31
    for (std::size_t d = 1; d < t.size(); ++d) {
        std::uint32_t r = t[d - 1];
        for (int i = 0; i < 8; ++i) r = times_x(r);
        t[d] = r;
    }
    return t;
}
inline constexpr auto powers = make_powers();

}  // namespace crc32_detail

/// The raw CRC-32 of `bytes` continued from `raw` (0: a fresh message): no initial or final
/// XOR. Byte at a time; for constants computed once, and for tests.
constexpr std::uint32_t crc32_raw(std::span<const std::byte> bytes,
                                  std::uint32_t raw = 0) noexcept {
    for (const std::byte b : bytes) {
        const std::uint32_t index = (raw ^ std::to_integer<std::uint32_t>(b)) & 0xFF;
        raw = (raw >> 8) ^ crc32_detail::table[index];
    }
    return raw;
}

/// Whether this CPU runs Crc32Terms (x86-64 with PCLMULQDQ). Cheap: read once at start-up.
[[nodiscard]] bool crc32_terms_supported() noexcept;

#if STUN_CRC32_TERMS

/// A sum of message fields, each placed by its distance from the end of the message, reduced
/// to the raw CRC of the message they make up (with zeros wherever no field was added).
class Crc32Terms {
public:
    /// Adds a field of `width` bytes (1..8), `distance` bytes before the message's end
    /// (< crc32_terms_max_distance). `bytes` holds the field as it lies in the message, loaded
    /// little-endian: its first byte in bits 0-7.
    STUN_CRC32_TARGET void add(std::uint64_t bytes, unsigned width,
                               std::size_t distance) noexcept {
        add_aligned(bytes << (64 - 8 * width), crc32_detail::powers[distance]);
    }
    /// Adds the same field at two places (e.g. an address reported twice): one multiply.
    STUN_CRC32_TARGET void add_twice(std::uint64_t bytes, unsigned width, std::size_t distance1,
                                     std::size_t distance2) noexcept {
        add_aligned(bytes << (64 - 8 * width),
                    crc32_detail::powers[distance1] ^ crc32_detail::powers[distance2]);
    }
    /// Adds a message part whose raw CRC is `raw`, followed by `following` bytes (0, or at
    /// least 4).
    STUN_CRC32_TARGET void add_raw(std::uint32_t raw, std::size_t following) noexcept {
        // A raw CRC is a polynomial of degree < 32, reflected: as a 4-byte field it is placed
        // 4 bytes closer to the end than the part it stands for.
        if (following == 0) {
            reduced_ ^= raw;
        } else {
            add(raw, 4, following - 4);
        }
    }
    /// The raw CRC of the sum.
    STUN_CRC32_TARGET [[nodiscard]] std::uint32_t raw() const noexcept {
        // Bits 64-95 of the sum are x^31 .. x^0, already reduced. Bits 0-63 are x^95 .. x^32:
        // L(x)·x^32 for the 64-bit L they hold reflected, reduced by Barrett (two multiplies,
        // no table): the quotient's low 32 bits are q = L mod x^32 + (L·mu)/x^64 mod x^32, and
        // the remainder is q·P mod x^32. A reflected n-bit by m-bit product holds x^k at bit
        // n + m - 2 - k, hence the shifts by 31.
        const auto low = static_cast<std::uint64_t>(_mm_cvtsi128_si64(sum_));
        const auto high =
            static_cast<std::uint32_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(sum_, sum_)));
        const auto t1 = static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_clmulepi64_si128(
            sum_, _mm_cvtsi64_si128(static_cast<long long>(crc32_detail::barrett_mu)), 0x00)));
        const auto q = static_cast<std::uint32_t>(low >> 32) ^ static_cast<std::uint32_t>(t1 >> 31);
        const auto t2 = static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_clmulepi64_si128(
            _mm_cvtsi32_si128(static_cast<int>(q)),
            _mm_cvtsi32_si128(static_cast<int>(crc32_detail::polynomial)), 0x00)));
        return reduced_ ^ high ^ static_cast<std::uint32_t>(t2 >> 31);
    }

private:
    // `aligned` holds the field in its high bytes: bit m is the coefficient of x^(63-m) of the
    // field's polynomial V. `multiplier` (bit l: x^(31-l)) is x^(8d+31). Their carry-less
    // product has bit s = x^(94-s); read as bit s = x^(95-s), it is V·x^(8d+32), the field's
    // contribution before reduction, in bits 0-94 of a 96-bit sum.
    STUN_CRC32_TARGET void add_aligned(std::uint64_t aligned, std::uint32_t multiplier) noexcept {
        const __m128i product =
            _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(aligned)),
                                 _mm_cvtsi32_si128(static_cast<int>(multiplier)), 0x00);
        sum_ = _mm_xor_si128(sum_, product);
    }

    __m128i sum_ = _mm_setzero_si128();
    std::uint32_t reduced_ = 0;  // parts that need no multiply
};

#endif

}  // namespace stun
