// Transport addresses as STUN carries them (RFC 8489 §14.1, §14.2).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace stun {

/// RFC 8489 §14.1: the family byte of an address attribute.
enum class AddressFamily : std::uint8_t { ipv4 = 0x01, ipv6 = 0x02 };

/// An IPv4 or IPv6 address and a port, in network byte order for the address.
struct Address {
    AddressFamily family = AddressFamily::ipv4;
    std::uint16_t port = 0;
    /// IPv4 uses the first 4 bytes; the rest stay zero.
    std::array<std::byte, 16> ip{};

    /// `host_order_ip` as in 0xC0000201 for 192.0.2.1.
    static Address v4(std::uint32_t host_order_ip, std::uint16_t port) noexcept;
    static Address v6(std::span<const std::byte, 16> ip, std::uint16_t port) noexcept;
    /// Parses "192.0.2.1" or "2001:db8::1" (no port); false when it is neither.
    static bool from_string(std::string_view text, std::uint16_t port, Address& out) noexcept;

    [[nodiscard]] std::size_t ip_size() const noexcept {
        return family == AddressFamily::ipv4 ? 4 : 16;
    }
    [[nodiscard]] std::span<const std::byte> ip_bytes() const noexcept {
        return std::span<const std::byte>(ip).first(ip_size());
    }

    /// "192.0.2.1:3478" or "[2001:db8::1]:3478" into `out`; returns the characters written
    /// (at most 48, which always fits an IPv6 address with its port).
    std::size_t format(std::span<char, 48> out) const noexcept;

    /// Family, port and all 16 address bytes: two 8-byte compares where the defaulted
    /// operator compares std::byte arrays byte by byte (the relay asks per datagram).
    friend bool operator==(const Address& a, const Address& b) noexcept {
        std::uint64_t x[2], y[2];
        std::memcpy(x, a.ip.data(), 16);
        std::memcpy(y, b.ip.data(), 16);
        return a.family == b.family && a.port == b.port && ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
    }
};

}  // namespace stun
