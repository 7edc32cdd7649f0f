// punchcoord's TCP server: the sockets and the line framing around the Coordinator
// (control/coordinator.h), on one thread with one epoll set.
//
// Every socket is non-blocking. A connection has a bounded input (a line longer than
// max_line_bytes is answered too_large and the connection closed: the rest of it cannot be
// framed) and a bounded output (a client that does not read its events is closed once more
// than max_output_bytes wait for it, and counted). Reading is bounded per connection per
// serve(), so one busy client cannot starve the others. A client that ends its side (end of
// stream) leaves at once but still gets the replies to its last lines. A connection the
// coordinator closes gets its last lines, then a half-close (shutdown(SHUT_WR)), and is
// drained for up to linger_ms before close(): closing with unread input would send a reset
// that can destroy the error line before the client reads it.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "control/coordinator.h"

namespace control {

/// A start-up failure, naming the setting (listen).
class CoordServerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct CoordServerCounters {
    std::uint64_t accepted = 0;
    std::uint64_t accept_errors = 0;  ///< EMFILE and the like: the connection was shed
};

class CoordServer {
public:
    /// Binds and listens on `listen` ("ip:port", port 0: any). Throws CoordServerError.
    /// `coordinator` must outlive the server.
    CoordServer(const std::string& listen, Coordinator& coordinator);
    ~CoordServer();
    CoordServer(const CoordServer&) = delete;
    CoordServer& operator=(const CoordServer&) = delete;

    /// The epoll descriptor: readable when serve() has something to do.
    [[nodiscard]] int fd() const noexcept { return epoll_fd_; }
    /// The address bound, its port filled in ("127.0.0.1:41234").
    [[nodiscard]] const std::string& local_address() const noexcept { return local_address_; }

    /// Handles every ready event and the coordinator's due timers without blocking.
    void serve(CoordTime now) noexcept;
    /// When serve() must run again at the latest (monotonic ms), whatever the sockets do.
    [[nodiscard]] std::uint64_t next_deadline(CoordTime now) const;

    [[nodiscard]] std::size_t open_connections() const noexcept { return connections_.size(); }
    [[nodiscard]] const CoordServerCounters& counters() const noexcept { return counters_; }

    /// How long a closed connection is drained before close().
    static constexpr std::uint64_t linger_ms = 2000;
    /// SO_SNDBUF of every connection (the kernel doubles it for its bookkeeping).
    static constexpr std::size_t kernel_send_buffer_bytes = 64 * 1024;
    /// Bytes read from one connection per serve().
    static constexpr std::size_t read_bytes_per_serve = 64 * 1024;

private:
    struct Connection {
        int fd = -1;
        ConnectionId id = 0;
        std::string input;
        std::string output;
        std::size_t output_offset = 0;
        bool closing = false;       // the coordinator is done with it: flush, half-close, drain
        bool half_closed = false;   // shutdown(SHUT_WR) done
        bool gone = false;          // the peer went (or never reads): closed without lingering
        bool peer_closed = false;   // its end of stream came: answer, flush, close
        std::uint64_t drain_until_ms = 0;
        std::uint32_t registered_events = EPOLLIN | EPOLLRDHUP;  // what epoll watches
    };

    void accept_all(CoordTime now);
    void on_event(int fd, std::uint32_t events, CoordTime now);
    void read_input(Connection& connection, CoordTime now, Effects& effects);
    void apply(Effects& effects, CoordTime now);
    // After a connection's output or state changed: flush what the socket takes; a closing
    // one that has sent everything is half-closed; a gone one tells the coordinator (once).
    void settle(Connection& connection, CoordTime now, Effects& more);
    void flush(Connection& connection);
    // Tells the coordinator (the connection leaves its rooms); the socket is flushed and
    // half-closed by apply().
    void begin_close(Connection& connection, CoordTime now, Effects& effects);
    void update_interest(Connection& connection);
    void destroy(int fd);

    Coordinator& coordinator_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    int spare_fd_ = -1;  // given up to accept-and-close when descriptors run out
    std::string local_address_;
    ConnectionId next_id_ = 1;
    std::unordered_map<int, Connection> connections_;
    std::unordered_map<ConnectionId, int> fd_of_;
    std::unordered_set<int> closing_;  // connections the coordinator is done with
    std::uint64_t next_tick_ms_ = 0;   // when the coordinator's timers are next due
    CoordServerCounters counters_;
};

}  // namespace control
