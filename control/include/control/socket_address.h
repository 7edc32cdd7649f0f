// stun::Address, the codec's form of an IP address and port, as the socket calls take it.
// Shared by the control thread's sockets (the metrics endpoint, the node agent's coordinator
// connection) and their test tools.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "stun/address.h"

namespace control {

/// Fills `out` with `address` (AF_INET or AF_INET6, the port in network order); returns the
/// length to pass with it to bind(2), connect(2) or sendto(2).
[[nodiscard]] inline socklen_t to_sockaddr(const stun::Address& address,
                                           sockaddr_storage& out) noexcept {
    out = {};
    if (address.family == stun::AddressFamily::ipv4) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(address.port);
        std::memcpy(&v4->sin_addr, address.ip.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(address.port);
    std::memcpy(&v6->sin6_addr, address.ip.data(), 16);
    return sizeof(sockaddr_in6);
}

}  // namespace control
