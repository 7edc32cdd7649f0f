// The management socket server (control/server.h). Control thread only; every system call on
// a client is non-blocking.
#include "control/server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

#include "control/log.h"
#include "control/protocol.h"

// Linux 4.13: the peer's supplementary groups. Older C libraries lack the name.
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

namespace control {
namespace {

std::string error_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

sockaddr_un socket_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    // config.cc bounds the path to 107 bytes: sun_path keeps its NUL.
    std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof address.sun_path - 1));
    return address;
}

// A line written at once to a fresh socket (whose buffer is empty), best effort: a refused
// or surplus peer is not worth a buffer.
void write_and_forget(int fd, const std::string& line) {
    [[maybe_unused]] const ssize_t n =
        ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

Server::Server(const ServerOptions& options, const Registry& registry)
    : options_(options), registry_(registry), engine_uid_(::geteuid()) {
    const std::string& path = options_.path;
    const std::string setting = "control.socket \"" + path + "\": ";
    if (path.size() < 2 || path.front() != '/' || path.size() >= sizeof(sockaddr_un::sun_path))
        throw ServerError(setting + "expected an absolute path of at most 107 bytes");
    if (!options_.group.empty()) {
        group buffer_group{};
        std::vector<char> buffer(16384);
        group* found = nullptr;
        const int rc = ::getgrnam_r(options_.group.c_str(), &buffer_group, buffer.data(),
                                    buffer.size(), &found);
        if (rc != 0 || found == nullptr)
            throw ServerError("control.group \"" + options_.group +
                              "\": no such group on this system (getent group " + options_.group +
                              "; groupadd " + options_.group + ")");
        group_ = found->gr_gid;
    }

    // The folder: made when missing (one level, as /run/punchline under /run).
    const std::string folder = path.substr(0, std::max<std::size_t>(path.rfind('/'), 1));
    struct stat status {};
    if (::stat(folder.c_str(), &status) != 0) {
        if (errno != ENOENT || ::mkdir(folder.c_str(), 0755) != 0)
            throw ServerError(setting + "cannot create its folder " + folder + ": " +
                              error_text(errno));
    } else if (!S_ISDIR(status.st_mode)) {
        throw ServerError(setting + folder + " is not a folder");
    }

    // A file already there: a live socket is another engine's; a dead one is replaced.
    const sockaddr_un address = socket_address(path);
    if (::lstat(path.c_str(), &status) == 0) {
        if (!S_ISSOCK(status.st_mode))
            throw ServerError(setting +
                              "exists and is not a socket; remove it or choose "
                              "another control.socket");
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (probe < 0) throw ServerError(setting + "socket(): " + error_text(errno));
        const int rc =
            ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
        const int error = errno;
        ::close(probe);
        if (rc == 0 || error == EAGAIN)
            throw ServerError(setting +
                              "another process listens on it (another punchlined?); "
                              "stop it, or give this engine its own control.socket");
        if (error != ECONNREFUSED && error != ENOENT)
            throw ServerError(setting +
                              "cannot tell whether it is in use: connect(): " + error_text(error));
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            throw ServerError(setting + "cannot remove the stale socket: " + error_text(errno));
    }

    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw ServerError(setting + "socket(): " + error_text(errno));
    auto fail = [&](const std::string& what) {
        const int error = errno;
        ::close(listen_fd_);
        listen_fd_ = -1;
        throw ServerError(setting + what + ": " + error_text(error));
    };
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        fail("bind()");
    // Mode and group before listen(): until then a connect() is refused, so nobody gets in
    // while the file still has the umask's mode.
    if (group_ && ::chown(path.c_str(), static_cast<uid_t>(-1), *group_) != 0) {
        ::unlink(path.c_str());
        fail("chown() to control.group \"" + options_.group + "\"");
    }
    if (::chmod(path.c_str(), group_ ? 0660 : 0600) != 0) {
        ::unlink(path.c_str());
        fail("chmod()");
    }
    if (::stat(path.c_str(), &status) != 0) {
        ::unlink(path.c_str());
        fail("stat()");
    }
    socket_device_ = status.st_dev;
    socket_inode_ = status.st_ino;
    if (::listen(listen_fd_, 64) != 0) {
        ::unlink(path.c_str());
        fail("listen()");
    }
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
        ::unlink(path.c_str());
        fail("epoll_create1()");
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listen_fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event) != 0) {
        ::close(epoll_fd_);
        ::unlink(path.c_str());
        fail("epoll_ctl()");
    }
}

Server::~Server() {
    for (auto& [fd, client] : clients_) ::close(fd);
    clients_.clear();
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    // Only our own file: a successor engine may have replaced it already.
    struct stat status {};
    if (::lstat(options_.path.c_str(), &status) == 0 && status.st_dev == socket_device_ &&
        status.st_ino == socket_inode_)
        ::unlink(options_.path.c_str());
}

bool Server::peer_allowed(int fd, std::string& refusal) const {
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        refusal =
            "the engine could not read the peer's credentials (SO_PEERCRED): " + error_text(errno);
        return false;
    }
    if (credentials.uid == 0 || credentials.uid == engine_uid_) return true;
    if (group_) {
        if (credentials.gid == *group_) return true;
        std::array<gid_t, 256> groups{};
        socklen_t groups_length = sizeof groups;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &groups_length) == 0) {
            const std::size_t count = groups_length / sizeof(gid_t);
            if (std::find(groups.begin(), groups.begin() + count, *group_) !=
                groups.begin() + count)
                return true;
        }
    }
    refusal = "uid " + std::to_string(credentials.uid) + " may not use this socket: only root, " +
              "the engine's user (uid " + std::to_string(engine_uid_) + ")" +
              (group_ ? " and members of control.group \"" + options_.group + "\""
                      : std::string(" (set control.group to admit a group)")) +
              " may";
    return false;
}

void Server::serve() noexcept {
    std::array<epoll_event, 64> events{};
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
    for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
            accept_all();
        } else {
            on_client(fd, events[i].events);
        }
    }
}

void Server::accept_all() noexcept {
    // Bounded: a flood of connections waits in the backlog for the next serve().
    for (int accepted = 0; accepted < 64; ++accepted) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or a peer gone before we took it
        try {
            std::string refusal;
            if (!peer_allowed(fd, refusal)) {
                ++counters_.refused_credentials;
                log_warn("management socket: refused a connection: " + refusal);
                write_and_forget(
                    fd, to_line(error_reply(nullptr, ErrorCode::permission_denied, refusal)));
                ::close(fd);
                continue;
            }
            if (clients_.size() >= options_.limits.max_clients) {
                ++counters_.refused_too_many;
                log_warn("management socket: refused a connection: " +
                         std::to_string(options_.limits.max_clients) + " clients already");
                write_and_forget(
                    fd, to_line(error_reply(nullptr, ErrorCode::too_many_clients,
                                            "the engine serves " +
                                                std::to_string(options_.limits.max_clients) +
                                                " clients at once already; try again later")));
                ::close(fd);
                continue;
            }
            epoll_event event{};
            event.events = EPOLLIN | EPOLLRDHUP;
            event.data.fd = fd;
            if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
                ::close(fd);
                continue;
            }
            Client& client = clients_[fd];
            client.fd = fd;
            ++counters_.accepted;
        } catch (...) {  // std::bad_alloc: this peer goes, the engine stays
            ::close(fd);
        }
    }
}

void Server::on_client(int fd, std::uint32_t events) noexcept {
    const auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    Client& client = it->second;
    try {
        if ((events & EPOLLERR) != 0) {
            drop(fd);
            return;
        }
        if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0 && !client.read_closed)
            read_client(client);
        if (!client.gone && !client.over_bound) flush(client);
        if (client.gone) {
            drop(fd);
            return;
        }
        // A client that does not read its replies: its buffer is full, it goes.
        if (client.over_bound || pending(client) > options_.limits.max_output_bytes) {
            ++counters_.dropped_slow;
            log_warn("management socket: dropped a client that does not read its replies (" +
                     std::to_string(pending(client)) + " bytes waiting)");
            drop(fd);
            return;
        }
        if (pending(client) == 0 && (client.read_closed || client.close_after_flush)) {
            drop(fd);
            return;
        }
        update_interest(client);
    } catch (...) {  // std::bad_alloc on this client's buffers: it goes, the engine stays
        drop(fd);
    }
}

void Server::read_client(Client& client) {
    std::array<char, 16384> buffer;
    std::size_t total = 0;
    while (total < options_.limits.read_bytes_per_serve) {
        const ssize_t n = ::recv(client.fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            total += static_cast<std::size_t>(n);
            client.input.append(buffer.data(), static_cast<std::size_t>(n));
            take_lines(client);
            if (client.gone || client.over_bound) return;
            continue;
        }
        if (n == 0) {
            client.read_closed = true;
            return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) client.gone = true;
        return;
    }
}

void Server::take_lines(Client& client) {
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = client.input.find('\n', start);
        if (end == std::string::npos) break;
        if (client.skipping) {  // the end of an over-long line: answered already
            client.skipping = false;
            start = end + 1;
            continue;
        }
        std::string_view line(client.input.data() + start, end - start);
        start = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > options_.limits.max_line_bytes) {
            ++counters_.lines_too_long;
            client.output += to_line(error_reply(
                nullptr, ErrorCode::line_too_long,
                "a request line may hold " + std::to_string(options_.limits.max_line_bytes) +
                    " bytes; this one held " + std::to_string(line.size())));
        } else if (line.find_first_not_of(" \t") != std::string_view::npos) {  // not blank
            ++counters_.requests;
            client.output += to_line(registry_.handle_line(line));
        }
        // Past the bound: what the socket takes now, and if that is not enough the client
        // has stopped reading (its socket buffer is full too): it goes, with the rest of
        // its requests unanswered.
        if (pending(client) > options_.limits.max_output_bytes) {
            flush(client);
            if (client.gone) return;
            if (pending(client) > options_.limits.max_output_bytes) {
                client.over_bound = true;
                return;
            }
        }
    }
    client.input.erase(0, start);
    if (client.skipping) {
        client.input.clear();
    } else if (client.input.size() > options_.limits.max_line_bytes) {
        // A line that has not ended and is over the bound already: answered now, its rest
        // skipped up to its '\n'.
        ++counters_.lines_too_long;
        client.output += to_line(error_reply(nullptr, ErrorCode::line_too_long,
                                             "a request line may hold " +
                                                 std::to_string(options_.limits.max_line_bytes) +
                                                 " bytes; this one held more before its end"));
        client.input.clear();
        client.skipping = true;
    }
}

void Server::flush(Client& client) {
    while (client.output_offset < client.output.size()) {
        const ssize_t n =
            ::send(client.fd, client.output.data() + client.output_offset,
                   client.output.size() - client.output_offset, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            client.output_offset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        client.gone = true;  // EPIPE, ECONNRESET: the peer is gone
        return;
    }
    if (client.output_offset == client.output.size()) {
        client.output.clear();
        client.output_offset = 0;
    } else if (client.output_offset > 1024 * 1024) {
        client.output.erase(0, client.output_offset);
        client.output_offset = 0;
    }
}

void Server::update_interest(Client& client) {
    const bool pending = client.output_offset < client.output.size();
    if (pending == client.want_write && !client.read_closed) return;
    epoll_event event{};
    event.events = (client.read_closed ? 0u : EPOLLIN | EPOLLRDHUP) | (pending ? EPOLLOUT : 0u);
    event.data.fd = client.fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, client.fd, &event);
    client.want_write = pending;
}

void Server::drop(int fd) noexcept {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    clients_.erase(fd);
}

}  // namespace control
