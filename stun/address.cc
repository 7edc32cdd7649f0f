#include "stun/address.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

#include "stun/bytes.h"

namespace stun {

Address Address::v4(std::uint32_t host_order_ip, std::uint16_t port) noexcept {
    Address a;
    a.family = AddressFamily::ipv4;
    a.port = port;
    store_be32(a.ip.data(), host_order_ip);
    return a;
}

Address Address::v6(std::span<const std::byte, 16> ip, std::uint16_t port) noexcept {
    Address a;
    a.family = AddressFamily::ipv6;
    a.port = port;
    std::memcpy(a.ip.data(), ip.data(), ip.size());
    return a;
}

bool Address::from_string(std::string_view text, std::uint16_t port, Address& out) noexcept {
    char buffer[INET6_ADDRSTRLEN];
    if (text.empty() || text.size() >= sizeof buffer) return false;
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    Address a;
    a.port = port;
    if (inet_pton(AF_INET, buffer, a.ip.data()) == 1) {
        a.family = AddressFamily::ipv4;
    } else if (inet_pton(AF_INET6, buffer, a.ip.data()) == 1) {
        a.family = AddressFamily::ipv6;
    } else {
        return false;
    }
    out = a;
    return true;
}

std::size_t Address::format(std::span<char, 48> out) const noexcept {
    char ip_text[INET6_ADDRSTRLEN];
    const bool v6 = family == AddressFamily::ipv6;
    if (inet_ntop(v6 ? AF_INET6 : AF_INET, ip.data(), ip_text, sizeof ip_text) == nullptr)
        ip_text[0] = '\0';
    const int n = std::snprintf(out.data(), out.size(), v6 ? "[%s]:%u" : "%s:%u", ip_text,
                                static_cast<unsigned>(port));
    return n < 0 ? 0 : static_cast<std::size_t>(n);
}

}  // namespace stun
