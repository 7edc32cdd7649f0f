// punchcoord's TCP server (control/coord_server.h). One thread; every call on a socket is
// non-blocking.
#include "control/coord_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <system_error>

#include "control/log.h"
#include "stun/address.h"

namespace control {
namespace {

std::string error_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

// "ip:port" into a sockaddr; the caller validated the text (valid_listen_address).
bool to_sockaddr(const std::string& text, sockaddr_storage& out, socklen_t& length) {
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find("]:");
        if (close == std::string::npos) return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string::npos) return false;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    char* end = nullptr;
    const unsigned long number = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || number > 65535) return false;
    std::memset(&out, 0, sizeof out);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<std::uint16_t>(number));
        length = sizeof(sockaddr_in);
        return true;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<std::uint16_t>(number));
        length = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

// The peer's IP and the address as text ("203.0.113.7", "203.0.113.7:40000"). Built into
// fresh strings: GCC 12's -Wrestrict misfires on short literals assigned to existing ones.
struct PeerText {
    std::string ip;
    std::string full;
};

PeerText describe_peer(const sockaddr_storage& address) {
    char text[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
        ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
        std::string ip(text);
        return {ip, ip + ':' + std::to_string(ntohs(v4->sin_port))};
    }
    if (address.ss_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
        ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
        std::string ip(text);
        return {ip, '[' + ip + "]:" + std::to_string(ntohs(v6->sin6_port))};
    }
    return {std::string(1, '?'), std::string(1, '?')};
}

}  // namespace

CoordServer::CoordServer(const std::string& listen, Coordinator& coordinator)
    : coordinator_(coordinator) {
    const std::string setting = "listen \"" + listen + "\": ";
    sockaddr_storage address{};
    socklen_t length = 0;
    if (!to_sockaddr(listen, address, length))
        throw CoordServerError(setting + R"(expected "ip:port", e.g. "0.0.0.0:7000")");
    listen_fd_ = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw CoordServerError(setting + "socket(): " + error_text(errno));
    auto fail = [&](const std::string& what) {
        const int error = errno;
        ::close(listen_fd_);
        listen_fd_ = -1;
        if (epoll_fd_ >= 0) ::close(epoll_fd_);
        epoll_fd_ = -1;
        throw CoordServerError(setting + what + ": " + error_text(error));
    };
    const int one = 1;
    // A restarted coordinator binds at once, past the old connections' TIME_WAIT.
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), length) != 0)
        fail("bind()");
    if (::listen(listen_fd_, 512) != 0) fail("listen()");
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_length);
    local_address_ = describe_peer(bound).full;
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail("epoll_create1()");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listen_fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event) != 0) fail("epoll_ctl()");
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

CoordServer::~CoordServer() {
    for (auto& [fd, connection] : connections_) ::close(fd);
    if (spare_fd_ >= 0) ::close(spare_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

void CoordServer::serve(CoordTime now) noexcept {
    try {
        std::array<epoll_event, 64> events{};
        const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == listen_fd_) {
                accept_all(now);
            } else {
                on_event(fd, events[static_cast<std::size_t>(i)].events, now);
            }
        }
        // The coordinator's timers walk every connection: run them when one is due, not on
        // every event (at least once a second, so that a deadline set since is not missed
        // by more than that).
        if (now.monotonic_ms >= next_tick_ms_) {
            Effects effects;
            coordinator_.tick(now, effects);
            apply(effects, now);
            next_tick_ms_ = std::min(coordinator_.next_deadline().value_or(UINT64_MAX),
                                     now.monotonic_ms + 1000);
        }
        // Gone, or drained long enough after the half-close: closed.
        std::vector<int> done;
        for (const int fd : closing_) {
            const Connection& connection = connections_.at(fd);
            if (connection.gone || now.monotonic_ms >= connection.drain_until_ms)
                done.push_back(fd);
        }
        for (const int fd : done) destroy(fd);
    } catch (const std::exception& e) {  // std::bad_alloc: this round is lost, the server stays
        log_error(std::string("serve: ") + e.what());
    }
}

std::uint64_t CoordServer::next_deadline(CoordTime now) const {
    std::uint64_t deadline = std::min(now.monotonic_ms + 1000, next_tick_ms_);
    for (const int fd : closing_)
        deadline = std::min(deadline, connections_.at(fd).drain_until_ms);
    return deadline;
}

void CoordServer::accept_all(CoordTime now) {
    // Bounded: a flood of connections waits in the backlog for the next serve().
    for (int accepted = 0; accepted < 64; ++accepted) {
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &length,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                // Out of descriptors: the pending connection would keep the listener readable
                // and the loop spinning. Give up the spare, take it and close it at once.
                ++counters_.accept_errors;
                log_warn("accept: " + error_text(errno) +
                         "; shedding a connection (raise the open-files limit or lower "
                         "limits.max_connections)");
                if (spare_fd_ >= 0) {
                    ::close(spare_fd_);
                    const int shed = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                    if (shed >= 0) ::close(shed);
                    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
            }
            return;  // EAGAIN, or a peer gone before we took it
        }
        const auto [ip, full] = describe_peer(peer);
        const ConnectionId id = next_id_++;
        Effects effects;
        if (!coordinator_.open(id, ip, now, effects)) {
            // Refused by a limit: its one line, best effort, and gone (no buffer for it).
            for (const auto& message : effects.messages)
                [[maybe_unused]] const ssize_t n = ::send(
                    fd, message.line.data(), message.line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            log_debug("refused a connection from " + full + ": a limit");
            continue;
        }
        const int one = 1;
        // Events are small and must not wait for Nagle's algorithm.
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        // A fixed kernel send buffer (no autotuning up to tcp_wmem's 4 MiB): what a client
        // that does not read can pin is this plus limits.max_output_bytes.
        const int send_buffer = static_cast<int>(kernel_send_buffer_bytes);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
        epoll_event event{};
        event.events = EPOLLIN | EPOLLRDHUP;
        event.data.fd = fd;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
            Effects ignored;
            coordinator_.closed(id, now, ignored);
            ::close(fd);
            continue;
        }
        Connection& connection = connections_[fd];
        connection.fd = fd;
        connection.id = id;
        fd_of_[id] = fd;
        ++counters_.accepted;
        log_debug("connection " + std::to_string(id) + " from " + full);
    }
}

void CoordServer::on_event(int fd, std::uint32_t events, CoordTime now) {
    const auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Effects effects;
    if ((events & EPOLLERR) != 0) {
        it->second.gone = true;
    } else if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0) {
        read_input(it->second, now, effects);
    }
    apply(effects, now);
    // Writable, or gone: flush, half-close or tell the coordinator (apply() leaves nothing
    // destroyed, so the connection is still there).
    Effects more;
    settle(connections_.at(fd), now, more);
    apply(more, now);
}

void CoordServer::read_input(Connection& connection, CoordTime now, Effects& effects) {
    const std::size_t max_line = coordinator_.config().limits.max_line_bytes;
    std::array<char, 16384> buffer;
    std::size_t total = 0;
    while (total < read_bytes_per_serve) {
        const ssize_t n = ::recv(connection.fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n == 0) {
            // End of stream: the client has said all it will (`printf ... | nc -N`). It
            // leaves now; the replies to its last lines still go out, then it is closed.
            connection.peer_closed = true;
            if (!connection.closing) begin_close(connection, now, effects);
            return;
        }
        if (n < 0) {  // ECONNRESET and the like: closed at the end of serve()
            connection.gone = true;
            if (!connection.closing) begin_close(connection, now, effects);
            return;
        }
        total += static_cast<std::size_t>(n);
        if (connection.closing) continue;  // draining: read and forget
        connection.input.append(buffer.data(), static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (;;) {
            const std::size_t end = connection.input.find('\n', start);
            if (end == std::string::npos) break;
            coordinator_.handle_line(
                connection.id, std::string_view(connection.input).substr(start, end - start),
                now, effects);
            start = end + 1;
        }
        connection.input.erase(0, start);
        if (connection.input.size() > max_line) {
            coordinator_.line_too_long(connection.id, effects);
            connection.input.clear();
            return;  // apply() closes it
        }
    }
}

void CoordServer::apply(Effects& effects, CoordTime now) {
    const std::size_t bound = coordinator_.config().limits.max_output_bytes;
    // Messages first (a refusal's line before its close), then closes; a close can cause
    // more messages (peer_left to the others), handled in the next round. Only the
    // connections touched are settled: the cost is the effects', not the connection count's.
    while (!effects.messages.empty() || !effects.close.empty()) {
        Effects more;
        std::vector<int> touched;
        for (auto& message : effects.messages) {
            const auto fd = fd_of_.find(message.to);
            if (fd == fd_of_.end()) continue;
            Connection& connection = connections_.at(fd->second);
            // A closing connection still gets what was queued before it closed (the replies
            // to its last lines); the coordinator sends it nothing after.
            if (connection.gone || connection.half_closed) continue;
            connection.output += message.line;
            touched.push_back(fd->second);
            if (connection.output.size() - connection.output_offset > bound) {
                flush(connection);
                if (connection.output.size() - connection.output_offset > bound) {
                    coordinator_.note_slow(connection.id);
                    log_info("closed connection " + std::to_string(connection.id) +
                             ": it does not read (" +
                             std::to_string(connection.output.size() - connection.output_offset) +
                             " bytes waiting, limits.max_output_bytes " + std::to_string(bound) +
                             ")");
                    // No last line: it would not be read either.
                    connection.output.clear();
                    connection.output_offset = 0;
                    connection.gone = true;
                    begin_close(connection, now, more);
                }
            }
        }
        for (const ConnectionId id : effects.close) {
            const auto fd = fd_of_.find(id);
            if (fd == fd_of_.end()) continue;
            Connection& connection = connections_.at(fd->second);
            if (!connection.closing) begin_close(connection, now, more);
            touched.push_back(fd->second);
        }
        for (const int fd : touched) settle(connections_.at(fd), now, more);
        effects = std::move(more);
    }
}

void CoordServer::settle(Connection& connection, CoordTime now, Effects& more) {
    if (!connection.gone && connection.output_offset < connection.output.size())
        flush(connection);
    if (connection.gone) {
        if (!connection.closing) begin_close(connection, now, more);
        return;
    }
    if (connection.closing && connection.output_offset >= connection.output.size()) {
        // All sent. A client that ended its side has nothing left to drain.
        if (connection.peer_closed) {
            connection.gone = true;
            return;
        }
    }
    if (connection.closing && !connection.half_closed &&
        connection.output_offset >= connection.output.size()) {
        ::shutdown(connection.fd, SHUT_WR);
        connection.half_closed = true;
        connection.drain_until_ms = now.monotonic_ms + linger_ms;
    }
    update_interest(connection);
}

void CoordServer::begin_close(Connection& connection, CoordTime now, Effects& effects) {
    connection.closing = true;
    closing_.insert(connection.fd);
    // Bounds the flush too: a client that reads nothing is not waited for.
    connection.drain_until_ms = now.monotonic_ms + linger_ms;
    connection.input.clear();
    coordinator_.closed(connection.id, now, effects);
}

void CoordServer::flush(Connection& connection) {
    while (connection.output_offset < connection.output.size()) {
        const ssize_t n = ::send(connection.fd, connection.output.data() + connection.output_offset,
                                 connection.output.size() - connection.output_offset,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            connection.output_offset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        // EPIPE, ECONNRESET: the peer is gone; nothing more will be sent.
        connection.output.clear();
        connection.output_offset = 0;
        connection.gone = true;
        return;
    }
    if (connection.output_offset == connection.output.size()) {
        connection.output.clear();
        connection.output_offset = 0;
    } else if (connection.output_offset > 64 * 1024) {
        connection.output.erase(0, connection.output_offset);
        connection.output_offset = 0;
    }
}

void CoordServer::update_interest(Connection& connection) {
    const bool pending = connection.output_offset < connection.output.size();
    // After the client's end of stream, readable stays true (level-triggered): not asked for,
    // or the loop would spin while the last replies wait for the socket.
    const std::uint32_t wanted = (connection.peer_closed ? 0u : EPOLLIN | EPOLLRDHUP) |
                                 (pending ? EPOLLOUT : 0u);
    if (wanted == connection.registered_events) return;
    epoll_event event{};
    event.events = wanted;
    event.data.fd = connection.fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, connection.fd, &event);
    connection.registered_events = wanted;
}

void CoordServer::destroy(int fd) {
    const auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    closing_.erase(fd);
    fd_of_.erase(it->second.id);
    connections_.erase(it);
}

}  // namespace control
