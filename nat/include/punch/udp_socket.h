// A kernel UDP socket: one per call leg, so that every rung of the ladder shares its NAT mapping
// (design.md §5).
//
// Non-blocking; the event loop tells its owner when datagrams are waiting. Sending goes through
// DatagramSender so that the STUN transactions above it test against a recording fake.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "stun/address.h"

namespace punch {

/// Where a STUN client's datagrams leave. The only thing the transactions need of a socket.
class DatagramSender {
public:
    virtual ~DatagramSender() = default;
    /// False when the datagram could not be handed to the kernel (the caller reports it; UDP
    /// promises nothing past that anyway).
    virtual bool send_to(const stun::Address& to, std::span<const std::byte> datagram) = 0;
};

class UdpSocket final : public DatagramSender {
public:
    UdpSocket() = default;
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;
    UdpSocket(UdpSocket&& other) noexcept;
    UdpSocket& operator=(UdpSocket&& other) noexcept;
    ~UdpSocket() override;

    /// Opens a non-blocking socket of `local`'s family bound to it (port 0: the kernel picks).
    /// Returns "" or what failed, with errno's text ("bind 0.0.0.0:3478: Address in use").
    [[nodiscard]] std::string open(const stun::Address& local);

    bool send_to(const stun::Address& to, std::span<const std::byte> datagram) override;

    /// Reads one waiting datagram into `buffer`; its length, or -1 when none is waiting (or on
    /// an error, which a UDP receiver skips: e.g. ECONNREFUSED from an ICMP port unreachable,
    /// natlab.md pitfall 5). A datagram longer than `buffer` is cut (and useless to STUN).
    [[nodiscard]] long receive_from(std::span<std::byte> buffer, stun::Address& from);

    /// The address the socket is bound to, its port filled in by the kernel.
    [[nodiscard]] stun::Address local_address() const;

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
    void close() noexcept;

private:
    int fd_ = -1;
};

/// The source address the kernel would choose to reach `destination` (a connected UDP socket's
/// getsockname(); nothing is sent), port 0; false when there is no route.
[[nodiscard]] bool route_source(const stun::Address& destination, stun::Address& source);

/// "203.0.113.2:3478", "[2001:db8::1]:3478" or "stun.example.org:3478" to addresses, resolved
/// with getaddrinfo (blocking: call it before the loop runs). Returns "" or why it failed,
/// naming the text ("stun.example.org:3478: Name or service not known").
[[nodiscard]] std::string resolve_host_port(const std::string& text, stun::Address& out);

}  // namespace punch
