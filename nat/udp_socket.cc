#include "punch/udp_socket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace punch {

namespace {

// stun::Address to and from the kernel's sockaddr; the address bytes are already in network
// order in both.
socklen_t to_sockaddr(const stun::Address& a, sockaddr_storage& out) {
    std::memset(&out, 0, sizeof out);
    if (a.family == stun::AddressFamily::ipv4) {
        auto& v4 = reinterpret_cast<sockaddr_in&>(out);
        v4.sin_family = AF_INET;
        v4.sin_port = htons(a.port);
        std::memcpy(&v4.sin_addr, a.ip.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto& v6 = reinterpret_cast<sockaddr_in6&>(out);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(a.port);
    std::memcpy(&v6.sin6_addr, a.ip.data(), 16);
    return sizeof(sockaddr_in6);
}

bool from_sockaddr(const sockaddr* in, stun::Address& out) {
    out = stun::Address{};
    if (in->sa_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(in);
        out.family = stun::AddressFamily::ipv4;
        out.port = ntohs(v4->sin_port);
        std::memcpy(out.ip.data(), &v4->sin_addr, 4);
        return true;
    }
    if (in->sa_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(in);
        out.family = stun::AddressFamily::ipv6;
        out.port = ntohs(v6->sin6_port);
        std::memcpy(out.ip.data(), &v6->sin6_addr, 16);
        return true;
    }
    return false;
}

std::string text(const stun::Address& a) {
    char buffer[48];
    return {buffer, a.format(buffer)};
}

int family_of(const stun::Address& a) {
    return a.family == stun::AddressFamily::ipv4 ? AF_INET : AF_INET6;
}

}  // namespace

UdpSocket::UdpSocket(UdpSocket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

UdpSocket& UdpSocket::operator=(UdpSocket&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

UdpSocket::~UdpSocket() { close(); }

void UdpSocket::close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

std::string UdpSocket::open(const stun::Address& local) {
    close();
    fd_ = ::socket(family_of(local), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    sockaddr_storage address;
    const socklen_t length = to_sockaddr(local, address);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) {
        const int error = errno;
        close();
        return "bind " + text(local) + ": " + std::strerror(error);
    }
    return {};
}

bool UdpSocket::send_to(const stun::Address& to, std::span<const std::byte> datagram) {
    sockaddr_storage address;
    const socklen_t length = to_sockaddr(to, address);
    const ssize_t sent = ::sendto(fd_, datagram.data(), datagram.size(), MSG_NOSIGNAL,
                                  reinterpret_cast<sockaddr*>(&address), length);
    return sent == static_cast<ssize_t>(datagram.size());
}

long UdpSocket::receive_from(std::span<std::byte> buffer, stun::Address& from) {
    for (;;) {
        sockaddr_storage address;
        socklen_t length = sizeof address;
        const ssize_t got = ::recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                       reinterpret_cast<sockaddr*>(&address), &length);
        if (got >= 0) {
            if (!from_sockaddr(reinterpret_cast<sockaddr*>(&address), from)) continue;
            return static_cast<long>(got);
        }
        // An ICMP error queued on the socket (ECONNREFUSED and the like) is reported once by
        // recvfrom and then gone: skip it and read on. Only "nothing waiting" ends the read.
        if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
        if (errno == EINTR) continue;
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
        return -1;
    }
}

stun::Address UdpSocket::local_address() const {
    sockaddr_storage address;
    socklen_t length = sizeof address;
    stun::Address out;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0)
        from_sockaddr(reinterpret_cast<sockaddr*>(&address), out);
    return out;
}

bool route_source(const stun::Address& destination, stun::Address& source) {
    const int fd = ::socket(family_of(destination), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_storage address;
    const socklen_t length = to_sockaddr(destination, address);
    bool ok = false;
    // connect() on UDP only picks the route and the source address; nothing goes on the wire.
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0) {
        socklen_t local_length = sizeof address;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &local_length) == 0)
            ok = from_sockaddr(reinterpret_cast<sockaddr*>(&address), source);
    }
    ::close(fd);
    source.port = 0;
    return ok;
}

std::string resolve_host_port(const std::string& text, stun::Address& out) {
    // "[v6]:port", "v4:port" or "name:port": the port after the last colon, brackets around an
    // IPv6 literal (a bare IPv6 address has colons of its own).
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return "\"" + text + "\": expected [IPv6]:PORT, like [2001:db8::1]:3478";
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon)
            return "\"" + text + "\": expected HOST:PORT, like 203.0.113.2:3478 or "
                   "stun.example.org:3478 (an IPv6 address in brackets)";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    char* end = nullptr;
    const unsigned long number = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || number == 0 || number > 65535)
        return "\"" + text + "\": the port must be a number from 1 to 65535, got \"" + port + "\"";
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    const int error = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (error != 0) return "\"" + text + "\": " + ::gai_strerror(error);
    // The first answer, in getaddrinfo's order (RFC 6724 preference).
    const bool ok = from_sockaddr(found->ai_addr, out);
    ::freeaddrinfo(found);
    if (!ok) return "\"" + text + "\": no IPv4 or IPv6 address";
    out.port = static_cast<std::uint16_t>(number);
    return {};
}

}  // namespace punch
