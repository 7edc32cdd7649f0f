// The Prometheus endpoint's HTTP server (control/metrics_server.h). Control thread only; every
// system call on a client is non-blocking.
#include "control/metrics_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <system_error>
#include <vector>

#include "control/log.h"
#include "control/metrics.h"
#include "control/socket_address.h"

namespace control {
namespace {

std::string error_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

std::string address_text(const stun::Address& address) {
    std::array<char, 48> text{};
    return {text.data(), address.format(text)};
}

// RFC 9110 §5.6.2: a method is a token.
bool is_token(std::string_view text) {
    static constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               specials.find(c) != std::string_view::npos;
    });
}

std::string response(unsigned code, std::string_view reason, std::string_view content_type,
                     std::string_view extra_headers, std::size_t content_length,
                     std::string_view body) {
    std::string out = "HTTP/1.1 " + std::to_string(code) + " " + std::string(reason) + "\r\n";
    out.append("Content-Type: ").append(content_type).append("\r\n");
    out.append("Content-Length: ").append(std::to_string(content_length)).append("\r\n");
    out.append(extra_headers);
    out.append("Connection: close\r\n\r\n");
    out.append(body);
    return out;
}

}  // namespace

HttpParse parse_http_request(std::string_view buffer, std::size_t max_bytes,
                             HttpRequest& out) noexcept {
    // The head ends at the first empty line: CRLF CRLF, or LF LF from a lenient client.
    std::size_t end = std::string_view::npos;
    for (std::size_t i = buffer.find('\n'); i != std::string_view::npos;
         i = buffer.find('\n', i + 1)) {
        const std::size_t next = i + 1;
        if (next < buffer.size() && buffer[next] == '\n') {
            end = next + 1;
            break;
        }
        if (next + 1 < buffer.size() && buffer[next] == '\r' && buffer[next + 1] == '\n') {
            end = next + 2;
            break;
        }
    }
    if (end == std::string_view::npos)
        return buffer.size() >= max_bytes ? HttpParse::too_large : HttpParse::incomplete;
    if (end > max_bytes) return HttpParse::too_large;

    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    std::string_view head = buffer.substr(0, end);
    while (head.starts_with("\r\n") || head.starts_with("\n"))
        head.remove_prefix(head.front() == '\r' ? 2 : 1);
    std::string_view line = head.substr(0, head.find('\n'));
    if (line.ends_with('\r')) line.remove_suffix(1);
    // RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
    const std::size_t first = line.find(' ');
    const std::size_t second =
        first == std::string_view::npos ? std::string_view::npos : line.find(' ', first + 1);
    if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos)
        return HttpParse::malformed;
    const std::string_view method = line.substr(0, first);
    std::string_view target = line.substr(first + 1, second - first - 1);
    const std::string_view version = line.substr(second + 1);
    if (!is_token(method) || (version != "HTTP/1.1" && version != "HTTP/1.0"))
        return HttpParse::malformed;
    // §3.2.2: absolute-form, as a client talking to a proxy sends it.
    for (const std::string_view scheme : {"http://", "https://"}) {
        if (!target.starts_with(scheme)) continue;
        target.remove_prefix(scheme.size());
        const std::size_t slash = target.find('/');
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    if (target.empty() || (target.front() != '/' && target != "*")) return HttpParse::malformed;
    out.method = method;
    out.path = target.substr(0, target.find_first_of("?#"));
    out.version = version;
    return HttpParse::complete;
}

std::string http_status(unsigned code, std::string_view reason, std::string_view text) {
    const std::string body = std::string(text) + "\n";
    return response(code, reason, "text/plain; charset=utf-8", {}, body.size(), body);
}

std::string http_answer(const HttpRequest& request, const std::function<std::string()>& body) {
    if (request.path != "/metrics")
        return http_status(404, "Not Found",
                           "punchlined serves its metrics at /metrics, nothing else");
    // RFC 9110 §9.1: a general-purpose server supports GET and HEAD; the rest get 405 with
    // the methods that are allowed (§15.5.6).
    const bool head = request.method == "HEAD";
    if (request.method != "GET" && !head) {
        const std::string body_text = "/metrics takes GET (or HEAD), not " +
                                      std::string(request.method) + "\n";
        return response(405, "Method Not Allowed", "text/plain; charset=utf-8",
                        "Allow: GET, HEAD\r\n", body_text.size(), body_text);
    }
    const std::string text = body();
    return response(200, "OK", exposition_content_type, {}, text.size(),
                    head ? std::string_view{} : std::string_view(text));
}

MetricsServer::MetricsServer(const stun::Address& listen, const MetricsServerLimits& limits,
                             std::function<std::string()> body,
                             std::function<std::uint64_t()> now_ms)
    : limits_(limits), body_(std::move(body)), now_ms_(std::move(now_ms)), address_(listen) {
    const std::string setting = "metrics.listen \"" + address_text(listen) + "\": ";
    sockaddr_storage storage{};
    const socklen_t length = to_sockaddr(listen, storage);
    listen_fd_ = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw MetricsServerError(setting + "socket(): " + error_text(errno));
    auto fail = [&](const std::string& what) {
        const int error = errno;
        ::close(listen_fd_);
        listen_fd_ = -1;
        if (epoll_fd_ >= 0) ::close(epoll_fd_);
        epoll_fd_ = -1;
        throw MetricsServerError(setting + what + ": " + error_text(error));
    };
    const int one = 1;
    // A restarted engine rebinds at once, without waiting out its predecessor's TIME_WAIT.
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // "[::]:9641" is IPv6 alone; an IPv4 address of its own is another listen.
    if (listen.family == stun::AddressFamily::ipv6)
        ::setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&storage), length) != 0)
        fail(errno == EADDRINUSE ? "bind() (another process listens there: another "
                                   "punchlined, or an exporter? choose another port)"
             : errno == EADDRNOTAVAIL ? "bind() (no interface of this host has the address)"
                                      : "bind()");
    if (::listen(listen_fd_, 64) != 0) fail("listen()");
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0)
        fail("getsockname()");
    address_.port = ntohs(bound.ss_family == AF_INET
                              ? reinterpret_cast<const sockaddr_in*>(&bound)->sin_port
                              : reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail("epoll_create1()");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listen_fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &event) != 0) fail("epoll_ctl()");
}

MetricsServer::~MetricsServer() {
    for (auto& [fd, client] : clients_) ::close(fd);
    clients_.clear();
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

void MetricsServer::serve() noexcept {
    std::array<epoll_event, 64> events{};
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
    for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
            accept_all();
            continue;
        }
        const auto it = clients_.find(fd);
        if (it == clients_.end()) continue;
        bool keep = false;
        try {
            keep = on_client(it->second, events[i].events);
        } catch (...) {  // std::bad_alloc on this client's buffers: it goes, the engine stays
        }
        if (!keep) drop(fd);
    }
}

void MetricsServer::expire() noexcept {
    const std::uint64_t now = now_ms_();
    std::vector<int> late;
    try {
        for (const auto& [fd, client] : clients_)
            if (now >= client.deadline_ms) late.push_back(fd);
    } catch (...) {
    }
    for (const int fd : late) {
        ++counters_.timed_out;
        drop(fd);
    }
    try {
        if (!late.empty() && log_enabled(engine::LogLevel::debug))
            log_debug("metrics: dropped " + std::to_string(late.size()) + " client(s) at their " +
                      std::to_string(limits_.timeout_ms) + " ms deadline");
    } catch (...) {  // std::bad_alloc: the line is lost
    }
}

void MetricsServer::accept_all() noexcept {
    // Bounded: a flood of connections waits in the backlog for the next serve().
    for (int accepted = 0; accepted < 64; ++accepted) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or a peer gone before we took it
        try {
            if (clients_.size() >= limits_.max_clients) {
                ++counters_.refused_too_many;
                log_warn("metrics: refused a connection: " + std::to_string(limits_.max_clients) +
                         " clients already");
                // Best effort into the fresh socket's empty buffer: a surplus peer is not
                // worth one of ours.
                const std::string busy = http_status(
                    503, "Service Unavailable",
                    "punchlined serves " + std::to_string(limits_.max_clients) +
                        " metrics clients at once already; try again later");
                [[maybe_unused]] const ssize_t n =
                    ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
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
            client.deadline_ms = now_ms_() + limits_.timeout_ms;
            ++counters_.accepted;
        } catch (...) {  // std::bad_alloc: this peer goes, the engine stays
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
            clients_.erase(fd);
            ::close(fd);
        }
    }
}

bool MetricsServer::on_client(Client& client, std::uint32_t events) {
    if ((events & EPOLLERR) != 0) return false;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0 && !client.peer_closed) {
        if (client.phase == Phase::reading) {
            if (!read_request(client)) return false;
        } else if (!discard_input(client)) {
            if (client.phase == Phase::lingering) return false;  // its close: done
            // Closed its side while its answer is still going out: read no more (an ended
            // stream stays readable, and the control loop would spin on it).
            client.peer_closed = true;
            set_interest(client);
        }
    }
    if (client.phase == Phase::writing && !flush(client)) return false;
    return true;
}

void MetricsServer::set_interest(Client& client) noexcept {
    epoll_event event{};
    event.events = (client.peer_closed ? 0u : EPOLLIN | EPOLLRDHUP) |
                   (client.phase == Phase::writing ? EPOLLOUT : 0u);
    event.data.fd = client.fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, client.fd, &event);
}

bool MetricsServer::read_request(Client& client) {
    std::array<char, 4096> buffer;
    std::size_t total = 0;
    while (total < limits_.read_bytes_per_serve) {
        // Never more than the bound allows in, plus one byte to see that it is exceeded.
        const std::size_t room = limits_.max_request_bytes + 1 - client.input.size();
        const ssize_t n =
            ::recv(client.fd, buffer.data(), std::min(buffer.size(), room), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        if (n == 0) {
            // The peer closed before its request was whole: nothing to answer.
            if (client.input.empty()) return false;
            // A head cut short gets its 400 (the peer may still read).
            client.peer_closed = true;
            ++counters_.bad_requests;
            answer(client, http_status(400, "Bad Request",
                                       "the request ended before its blank line"));
            return true;
        }
        total += static_cast<std::size_t>(n);
        client.input.append(buffer.data(), static_cast<std::size_t>(n));
        HttpRequest request;
        switch (parse_http_request(client.input, limits_.max_request_bytes, request)) {
            case HttpParse::incomplete: continue;
            case HttpParse::complete:
                try {
                    answer(client, http_answer(request, body_));
                } catch (...) {  // the body could not be built (memory): 500, and go on
                    answer(client, http_status(500, "Internal Server Error",
                                               "the metrics could not be built"));
                    return true;
                }
                if (client.output.starts_with("HTTP/1.1 200")) ++counters_.scrapes;
                return true;
            case HttpParse::too_large:
                ++counters_.bad_requests;
                answer(client, http_status(431, "Request Header Fields Too Large",
                                           "a request head may hold " +
                                               std::to_string(limits_.max_request_bytes) +
                                               " bytes"));
                return true;
            case HttpParse::malformed:
                ++counters_.bad_requests;
                answer(client, http_status(400, "Bad Request",
                                           "expected \"GET /metrics HTTP/1.1\""));
                return true;
        }
    }
    return true;
}

void MetricsServer::answer(Client& client, std::string response) {
    ++counters_.answered;
    client.output = std::move(response);
    client.output_offset = 0;
    client.input.clear();
    client.input.shrink_to_fit();
    client.phase = Phase::writing;
    set_interest(client);
}

bool MetricsServer::flush(Client& client) {
    while (client.output_offset < client.output.size()) {
        const ssize_t n =
            ::send(client.fd, client.output.data() + client.output_offset,
                   client.output.size() - client.output_offset, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            client.output_offset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        // Its socket buffer is full: EPOLLOUT (set_interest) says when there is room.
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
        return false;  // EPIPE, ECONNRESET: the peer is gone
    }
    // All out. A peer that has closed its side has nothing left to send: close. Otherwise
    // closing now could reset the connection (a close with unread input sends RST, which may
    // destroy the answer in flight): shut our side, and close once the peer has closed its
    // own, or at the deadline.
    if (client.peer_closed) return false;
    client.output.clear();
    client.output.shrink_to_fit();
    ::shutdown(client.fd, SHUT_WR);
    client.phase = Phase::lingering;
    set_interest(client);
    return discard_input(client);
}

// Reads and forgets what the peer sends after its request. false: it has closed (or failed).
bool MetricsServer::discard_input(Client& client) {
    std::array<char, 4096> buffer;
    std::size_t total = 0;
    while (total < limits_.read_bytes_per_serve) {
        const ssize_t n = ::recv(client.fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            total += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

void MetricsServer::drop(int fd) noexcept {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    clients_.erase(fd);
}

}  // namespace control
