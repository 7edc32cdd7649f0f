// The management socket server (design.md §4): a Unix stream socket on the control thread,
// speaking JSON lines (control/protocol.h) to many clients at once.
//
// The control thread never blocks on it. Every socket is non-blocking; the server's sockets
// sit in one epoll set whose descriptor (fd()) the control loop polls beside its signals and
// its tick, and serve() handles what is ready and returns. Each client has a bounded input
// buffer (a line longer than ServerLimits::max_line_bytes is answered line_too_long and
// skipped up to its '\n'; the connection stays) and a bounded output buffer (a client that
// does not read its replies is dropped once more than ServerLimits::max_output_bytes wait
// for it). Workers are never involved: commands read their counters and tables without
// locks (control/engine_commands.h).
//
// Access: the socket file is created mode 0600 (0660 and the configured group's with a
// group) before the server listens, so that nobody connects in between; then every peer's
// credentials (SO_PEERCRED, SO_PEERGROUPS) are checked on accept: root, the engine's own
// user, or a member of the group. A refused peer gets one permission_denied line and is
// disconnected.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "control/registry.h"

namespace control {

struct ServerLimits {
    std::size_t max_clients = 64;
    /// A request line's bytes, without its '\n'.
    std::size_t max_line_bytes = 64 * 1024;
    /// Reply bytes waiting for a client that does not read: past this it is dropped.
    std::size_t max_output_bytes = 8 * 1024 * 1024;
    /// Bytes read from one client per serve(): one busy client cannot starve the others or
    /// hold the control thread.
    std::size_t read_bytes_per_serve = 64 * 1024;
};

struct ServerOptions {
    std::string path;   ///< control.socket
    std::string group;  ///< control.group; empty: none
    ServerLimits limits;
};

/// A start-up failure, naming the setting to change (control.socket or control.group).
class ServerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// What the server has done since start (for /status and tests).
struct ServerCounters {
    std::uint64_t accepted = 0;
    std::uint64_t refused_credentials = 0;
    std::uint64_t refused_too_many = 0;
    std::uint64_t dropped_slow = 0;  ///< output buffer over its bound
    std::uint64_t lines_too_long = 0;
    std::uint64_t requests = 0;
};

class Server {
public:
    /// Creates the socket's folder when missing (mode 0755), replaces a stale socket file,
    /// binds, sets the mode and group, listens. Throws ServerError when the path is taken (a
    /// live socket or another kind of file), the group does not exist, or a system call
    /// fails. `registry` must outlive the server.
    Server(const ServerOptions& options, const Registry& registry);
    /// Disconnects every client and removes the socket file (if it is still this one's).
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// The epoll descriptor: readable when serve() has something to do.
    [[nodiscard]] int fd() const noexcept { return epoll_fd_; }
    /// Handles every ready event without blocking: accepts, reads, answers, writes, drops.
    void serve() noexcept;

    [[nodiscard]] std::size_t client_count() const noexcept { return clients_.size(); }
    [[nodiscard]] const ServerCounters& counters() const noexcept { return counters_; }
    [[nodiscard]] const std::string& path() const noexcept { return options_.path; }

private:
    struct Client {
        int fd = -1;
        std::string input;      // bytes after the last complete line
        bool skipping = false;  // inside a line over max_line_bytes: drop to its '\n'
        std::string output;     // bytes not yet written, from output_offset
        std::size_t output_offset = 0;
        bool read_closed = false;  // the peer shut its side: answer, flush, close
        bool close_after_flush = false;
        bool want_write = false;  // EPOLLOUT registered
        bool gone = false;        // a write failed: the peer is gone
        bool over_bound = false;  // more than max_output_bytes wait for it
    };

    void accept_all() noexcept;
    [[nodiscard]] bool peer_allowed(int fd, std::string& refusal) const;
    void on_client(int fd, std::uint32_t events) noexcept;
    // false: the client was dropped.
    // Each sets client.gone or client.over_bound; on_client() drops such a client. None
    // drops it itself, so that the caller's reference stays valid.
    void read_client(Client& client);
    void take_lines(Client& client);
    void flush(Client& client);
    [[nodiscard]] std::size_t pending(const Client& client) const noexcept {
        return client.output.size() - client.output_offset;
    }
    void update_interest(Client& client);
    void drop(int fd) noexcept;

    ServerOptions options_;
    const Registry& registry_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    std::optional<gid_t> group_;
    uid_t engine_uid_ = 0;
    dev_t socket_device_ = 0;
    ino_t socket_inode_ = 0;
    std::unordered_map<int, Client> clients_;
    ServerCounters counters_;
};

}  // namespace control
