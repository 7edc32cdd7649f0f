#include "engine/checksum.h"

#include "stun/bytes.h"

namespace engine {

std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::byte> bytes) noexcept {
    // Big-endian 32-bit words into a 64-bit accumulator: 2^16 = 1 modulo 2^16 - 1, so a word
    // hi * 2^16 + lo adds the same as hi + lo (RFC 1071 §2(C)), and the fold at the end
    // absorbs the carries. Four bytes per step instead of two; no overflow below 2^32 words.
    std::uint64_t wide = sum;
    const std::byte* p = bytes.data();
    std::size_t n = bytes.size();
    for (; n >= 4; p += 4, n -= 4) wide += stun::load_be32(p);
    if (n >= 2) {
        wide += stun::load_be16(p);
        p += 2;
        n -= 2;
    }
    if (n != 0) wide += std::to_integer<std::uint32_t>(p[0]) << 8;
    while ((wide >> 16) != 0) wide = (wide & 0xFFFF) + (wide >> 16);
    return static_cast<std::uint32_t>(wide);
}

std::uint16_t checksum_finish(std::uint32_t sum) noexcept {
    while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

std::uint16_t ipv4_header_checksum(std::span<const std::byte> header) noexcept {
    return checksum_finish(checksum_add(0, header));
}

std::uint16_t transport_checksum(std::span<const std::byte> addresses, std::uint8_t protocol,
                                 std::span<const std::byte> segment) noexcept {
    std::uint32_t sum = checksum_add(0, addresses);
    sum += protocol;
    sum += static_cast<std::uint32_t>(segment.size() & 0xFFFF);
    sum += static_cast<std::uint32_t>(segment.size() >> 16);
    return checksum_finish(checksum_add(sum, segment));
}

std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                std::uint16_t new_value) noexcept {
    std::uint32_t sum = static_cast<std::uint16_t>(~checksum);
    sum += static_cast<std::uint16_t>(~old_value);
    sum += new_value;
    return checksum_finish(sum);
}

}  // namespace engine
