#include "engine/steer.h"

#include "engine/frame.h"
#include "stun/bytes.h"

namespace engine {

int owner_worker(std::span<const std::byte> frame, unsigned workers,
                 const RelayPortPartition& relay) noexcept {
    if (workers <= 1 || frame.size() < ethernet_header_size) return -1;
    const std::byte* ip = frame.data() + ethernet_header_size;
    const std::size_t available = frame.size() - ethernet_header_size;
    std::uint64_t key = 0;
    std::size_t l4 = 0;
    switch (stun::load_be16(frame.data() + 12)) {
    case ethertype::ipv4: {
        if (available < ipv4_header_size) return -1;
        const std::size_t header_length = (std::to_integer<std::size_t>(ip[0]) & 0xF) * 4;
        if (std::to_integer<std::uint8_t>(ip[9]) != ip_protocol::udp) return -1;
        key = stun::load_be32(ip + 12);
        l4 = header_length;
        break;
    }
    case ethertype::ipv6:
        if (available < ipv6_header_size ||
            std::to_integer<std::uint8_t>(ip[6]) != ip_protocol::udp)
            return -1;
        key = stun::load_be64(ip + 8) ^ stun::load_be64(ip + 16);
        l4 = ipv6_header_size;
        break;
    default:
        return -1;
    }
    if (l4 + 4 > available) return -1;
    if (const int owner = relay.owner_of(stun::load_be16(ip + l4 + 2), workers); owner >= 0)
        return owner;
    key = (key << 16) ^ stun::load_be16(ip + l4);
    // Fibonacci hashing: multiply by 2^64 / golden ratio, keep the high bits.
    key *= 0x9E3779B97F4A7C15ull;
    return static_cast<int>((key >> 32) % workers);
}

}  // namespace engine
