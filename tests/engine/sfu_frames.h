// Frames for the SFU role's tests (sfu_role_test.cc, golden_ring_test.cc): whole Ethernet +
// IPv4/IPv6 + UDP frames with both checksums computed whole (RFC 768, RFC 1071), independently
// of the engine, which updates them incrementally (RFC 1624).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "engine/checksum.h"
#include "engine/neighbour.h"
#include "stun/address.h"
#include "stun/bytes.h"
#include "test_support.h"

namespace engine::test {

inline stun::Address at(std::string_view ip, std::uint16_t port) {
    stun::Address a = address(ip);
    a.port = port;
    return a;
}

/// 02:00:00:00:00:<last>.
inline MacAddress mac(std::uint8_t last) {
    return {std::byte{0x02}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
            std::byte{last}};
}

// An Ethernet + IPv4/IPv6 + UDP frame from `from` to `to` carrying `payload`: DF, TTL 64, IPv4
// identification `id`, TOS/traffic class `tos`, both checksums computed whole.
inline std::vector<std::byte> build_udp_frame(const MacAddress& source_mac,
                                              const MacAddress& destination_mac,
                                              const stun::Address& from, const stun::Address& to,
                                              std::span<const std::byte> payload,
                                              std::uint16_t id = 0x1234, std::uint8_t tos = 0) {
    const bool ipv6 = from.family == stun::AddressFamily::ipv6;
    const std::size_t ip_header = ipv6 ? 40 : 20;
    const std::size_t udp_length = 8 + payload.size();
    std::vector<std::byte> f(14 + ip_header + udp_length);
    std::memcpy(f.data(), destination_mac.data(), 6);
    std::memcpy(f.data() + 6, source_mac.data(), 6);
    stun::store_be16(f.data() + 12, ipv6 ? 0x86DD : 0x0800);
    std::byte* h = f.data() + 14;
    const std::size_t ip_size = ipv6 ? 16 : 4;
    std::byte* addresses = h + (ipv6 ? 8 : 12);
    if (ipv6) {
        stun::store_be32(h, 0x60000000u | std::uint32_t{tos} << 20);
        stun::store_be16(h + 4, static_cast<std::uint16_t>(udp_length));
        h[6] = std::byte{17};
        h[7] = std::byte{64};
    } else {
        h[0] = std::byte{0x45};
        h[1] = std::byte{tos};
        stun::store_be16(h + 2, static_cast<std::uint16_t>(20 + udp_length));
        stun::store_be16(h + 4, id);
        stun::store_be16(h + 6, 0x4000);
        h[8] = std::byte{64};
        h[9] = std::byte{17};
    }
    std::memcpy(addresses, from.ip.data(), ip_size);
    std::memcpy(addresses + ip_size, to.ip.data(), ip_size);
    if (!ipv6) stun::store_be16(h + 10, ipv4_header_checksum({h, 20}));
    std::byte* u = h + ip_header;
    stun::store_be16(u, from.port);
    stun::store_be16(u + 2, to.port);
    stun::store_be16(u + 4, static_cast<std::uint16_t>(udp_length));
    std::memcpy(u + 8, payload.data(), payload.size());
    const std::uint16_t sum =
        transport_checksum({addresses, 2 * ip_size}, 17, {u, udp_length});
    stun::store_be16(u + 6, sum == 0 ? 0xFFFF : sum);
    return f;
}

}  // namespace engine::test
