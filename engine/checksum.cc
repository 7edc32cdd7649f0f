#include "engine/checksum.h"

#include "stun/bytes.h"

namespace engine {

std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::byte> bytes) noexcept {
    std::uint64_t wide = sum;
    std::size_t i = 0;
    for (; i + 1 < bytes.size(); i += 2) wide += stun::load_be16(bytes.data() + i);
    if (i < bytes.size()) wide += std::to_integer<std::uint32_t>(bytes[i]) << 8;
    while ((wide >> 32) != 0) wide = (wide & 0xFFFFFFFF) + (wide >> 32);
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
