// The SFU node agent's datagrams as Ethernet frames (control/node_frames.h).
#include "control/node_frames.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "engine/checksum.h"
#include "engine/frame.h"
#include "stun/bytes.h"

namespace control {

std::size_t build_udp_frame(std::span<std::byte> out, const engine::MacAddress& source_mac,
                            const engine::MacAddress& destination_mac, const stun::Address& from,
                            const stun::Address& to,
                            std::span<const std::byte> payload) noexcept {
    if (from.family != to.family) return 0;
    const bool v4 = from.family == stun::AddressFamily::ipv4;
    const std::size_t ip_size = v4 ? engine::ipv4_header_size : engine::ipv6_header_size;
    const std::size_t udp_length = engine::udp_header_size + payload.size();
    const std::size_t total = engine::ethernet_header_size + ip_size + udp_length;
    if (udp_length > 0xFFFF - (v4 ? ip_size : 0) || total > out.size()) return 0;
    std::byte* p = out.data();
    std::memcpy(p, destination_mac.data(), 6);
    std::memcpy(p + 6, source_mac.data(), 6);
    stun::store_be16(p + 12, v4 ? engine::ethertype::ipv4 : engine::ethertype::ipv6);
    std::byte* ip = p + engine::ethernet_header_size;
    std::byte* udp = ip + ip_size;
    std::span<const std::byte> addresses;
    if (v4) {
        std::memset(ip, 0, ip_size);
        ip[0] = std::byte{0x45};  // version 4, 5 words: no options
        stun::store_be16(ip + 2, static_cast<std::uint16_t>(ip_size + udp_length));
        ip[8] = std::byte{64};  // TTL
        ip[9] = std::byte{engine::ip_protocol::udp};
        std::memcpy(ip + 12, from.ip.data(), 4);
        std::memcpy(ip + 16, to.ip.data(), 4);
        stun::store_be16(ip + 10, engine::ipv4_header_checksum({ip, ip_size}));
        addresses = {ip + 12, 8};
    } else {
        std::memset(ip, 0, ip_size);
        ip[0] = std::byte{0x60};  // version 6, traffic class and flow label 0
        stun::store_be16(ip + 4, static_cast<std::uint16_t>(udp_length));
        ip[6] = std::byte{engine::ip_protocol::udp};
        ip[7] = std::byte{64};  // hop limit
        std::memcpy(ip + 8, from.ip.data(), 16);
        std::memcpy(ip + 24, to.ip.data(), 16);
        addresses = {ip + 8, 32};
    }
    stun::store_be16(udp, from.port);
    stun::store_be16(udp + 2, to.port);
    stun::store_be16(udp + 4, static_cast<std::uint16_t>(udp_length));
    stun::store_be16(udp + 6, 0);
    if (!payload.empty())
        std::memcpy(udp + engine::udp_header_size, payload.data(), payload.size());
    std::uint16_t checksum =
        engine::transport_checksum(addresses, engine::ip_protocol::udp, {udp, udp_length});
    // RFC 768: a computed 0 is sent as all ones (0 means "no checksum", which IPv6 forbids).
    if (checksum == 0) checksum = 0xFFFF;
    stun::store_be16(udp + 6, checksum);
    return total;
}

std::optional<UdpDatagram> parse_udp_frame(std::span<const std::byte> frame) noexcept {
    if (frame.size() < engine::ethernet_header_size) return std::nullopt;
    const std::uint16_t type = stun::load_be16(frame.data() + 12);
    const std::byte* ip = frame.data() + engine::ethernet_header_size;
    const std::size_t available = frame.size() - engine::ethernet_header_size;
    UdpDatagram out;
    const std::byte* udp = nullptr;
    std::size_t ip_payload = 0;  // what the IP header says follows it
    if (type == engine::ethertype::ipv4) {
        if (available < engine::ipv4_header_size || (ip[0] >> 4) != std::byte{4})
            return std::nullopt;
        const std::size_t header = static_cast<std::size_t>(ip[0] & std::byte{0x0F}) * 4;
        const std::size_t total = stun::load_be16(ip + 2);
        // A fragment (MF set or an offset) holds part of a datagram at most.
        if (header < engine::ipv4_header_size || total < header || total > available ||
            ip[9] != std::byte{engine::ip_protocol::udp} || (stun::load_be16(ip + 6) & 0x3FFF) != 0)
            return std::nullopt;
        out.from.family = out.to.family = stun::AddressFamily::ipv4;
        std::memcpy(out.from.ip.data(), ip + 12, 4);
        std::memcpy(out.to.ip.data(), ip + 16, 4);
        udp = ip + header;
        ip_payload = total - header;
    } else if (type == engine::ethertype::ipv6) {
        // Extension headers are not followed: the engine's own handlers take UDP right after
        // the fixed header (a fragment header, protocol 44, is not UDP here either).
        if (available < engine::ipv6_header_size || (ip[0] >> 4) != std::byte{6} ||
            ip[6] != std::byte{engine::ip_protocol::udp})
            return std::nullopt;
        ip_payload = stun::load_be16(ip + 4);
        if (ip_payload > available - engine::ipv6_header_size) return std::nullopt;
        out.from.family = out.to.family = stun::AddressFamily::ipv6;
        std::memcpy(out.from.ip.data(), ip + 8, 16);
        std::memcpy(out.to.ip.data(), ip + 24, 16);
        udp = ip + engine::ipv6_header_size;
    } else {
        return std::nullopt;
    }
    if (ip_payload < engine::udp_header_size) return std::nullopt;
    const std::size_t udp_length = stun::load_be16(udp + 4);
    if (udp_length < engine::udp_header_size || udp_length > ip_payload) return std::nullopt;
    out.from.port = stun::load_be16(udp);
    out.to.port = stun::load_be16(udp + 2);
    out.payload = {udp + engine::udp_header_size, udp_length - engine::udp_header_size};
    return out;
}

FrameSender::FrameSender(stun::Address from, engine::MacAddress port_mac, NextHop next_hop,
                         Emit emit)
    : from_(from), port_mac_(port_mac), next_hop_(std::move(next_hop)), emit_(std::move(emit)) {}

bool FrameSender::send_to(const stun::Address& to, std::span<const std::byte> datagram) {
    const engine::MacAddress* mac = next_hop_(to);
    if (mac == nullptr) {
        ++unresolved_;
        return false;
    }
    // A STUN request of the agent's is at most a few hundred bytes; an Ethernet MTU's worth.
    std::array<std::byte, 1514> frame{};
    const std::size_t length = build_udp_frame(frame, port_mac_, *mac, from_, to, datagram);
    if (length == 0 || !emit_(std::span(frame).first(length))) {
        ++refused_;
        return false;
    }
    ++sent_;
    return true;
}

}  // namespace control
