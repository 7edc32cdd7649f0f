// The Prometheus endpoint (design.md §4): a small HTTP/1.1 server on a TCP address that
// answers GET /metrics with the exposition of control/metrics.h, on the control thread.
//
// Like the management socket (control/server.h) it never makes the control thread wait: every
// socket is non-blocking and sits in one epoll set whose descriptor (fd()) the control loop
// polls; serve() handles what is ready and returns. It is bounded in every way a client could
// use against it: at most MetricsServerLimits::max_clients at once (one more is answered 503
// and closed), a request head of at most max_request_bytes (431), and the whole exchange —
// request, answer, close — within timeout_ms of the accept, after which the client is dropped
// (expire(), each control tick). A client that sends nothing, or never reads the answer, costs
// one descriptor and its buffers until then. One request per connection: every answer says
// Connection: close, which HTTP/1.1 allows (RFC 9112 §9.6) and Prometheus expects of a
// scrape target no less than keep-alive.
//
// Nothing here touches a worker: the body comes from EngineCommands::metrics(), which reads
// their counters as /stats does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "stun/address.h"

namespace control {

/// How far a request head has come (parse_http_request).
enum class HttpParse : std::uint8_t {
    incomplete,  ///< no blank line yet, and within the size bound: read more
    complete,    ///< a request line and headers ending in a blank line
    too_large,   ///< over the bound before its blank line: 431
    malformed,   ///< not "METHOD TARGET HTTP/1.x": 400
};

/// A request head's request line (RFC 9112 §3), as views into the parsed buffer.
struct HttpRequest {
    std::string_view method;
    std::string_view path;  ///< the target's path: no query, no scheme or authority
    std::string_view version;
};

/// Parses the head at the start of `buffer`. `max_bytes` bounds the head, its blank line
/// included. Accepts a bare LF for CRLF (RFC 9112 §2.2) and an absolute-form target
/// ("http://host/metrics", §3.2.2); header fields are read past, not interpreted (the
/// answer needs none of them).
[[nodiscard]] HttpParse parse_http_request(std::string_view buffer, std::size_t max_bytes,
                                           HttpRequest& out) noexcept;

/// The whole answer to a complete request: 200 with `body()` for GET /metrics (HEAD: its
/// headers alone), 405 with Allow for another method on /metrics, 404 for another path.
/// Each with Content-Type, Content-Length and Connection: close.
[[nodiscard]] std::string http_answer(const HttpRequest& request,
                                      const std::function<std::string()>& body);

/// An answer with a status and a short text body (400, 431, 500, 503).
[[nodiscard]] std::string http_status(unsigned code, std::string_view reason,
                                      std::string_view text);

struct MetricsServerLimits {
    std::size_t max_clients = 16;
    std::size_t max_request_bytes = 8192;
    /// From the accept to the close: request read, answer written, peer's close seen.
    std::uint64_t timeout_ms = 10000;
    /// Bytes read from one client per serve(), so that one client cannot hold the thread.
    std::size_t read_bytes_per_serve = 16384;
};

/// A start-up failure naming metrics.listen.
class MetricsServerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// What the endpoint has done since start (for /status and tests).
struct MetricsServerCounters {
    std::uint64_t accepted = 0;
    std::uint64_t refused_too_many = 0;  ///< answered 503: max_clients were connected
    std::uint64_t answered = 0;          ///< answers queued (any status)
    std::uint64_t scrapes = 0;           ///< of those, 200s to GET /metrics
    std::uint64_t bad_requests = 0;      ///< 400 and 431
    std::uint64_t timed_out = 0;         ///< dropped at their deadline
};

class MetricsServer {
public:
    /// Binds and listens on `listen` (port 0: one the system chooses). `body` makes the
    /// exposition, `now_ms` is the control thread's clock. Throws MetricsServerError when
    /// the address cannot be had (in use, not this host's).
    MetricsServer(const stun::Address& listen, const MetricsServerLimits& limits,
                  std::function<std::string()> body, std::function<std::uint64_t()> now_ms);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    /// The epoll descriptor: readable when serve() has something to do.
    [[nodiscard]] int fd() const noexcept { return epoll_fd_; }
    /// Handles every ready event without blocking.
    void serve() noexcept;
    /// Drops the clients whose deadline has passed. Cost: a walk over at most max_clients.
    void expire() noexcept;

    /// The address it listens on, with the port the system chose for port 0.
    [[nodiscard]] const stun::Address& address() const noexcept { return address_; }
    [[nodiscard]] std::size_t client_count() const noexcept { return clients_.size(); }
    [[nodiscard]] const MetricsServerCounters& counters() const noexcept { return counters_; }

private:
    enum class Phase : std::uint8_t {
        reading,    // the request head is not whole yet
        writing,    // the answer is queued; the request's bytes are done with
        lingering,  // the answer is out and our side shut: wait for the peer's close
    };
    struct Client {
        int fd = -1;
        std::uint64_t deadline_ms = 0;
        Phase phase = Phase::reading;
        std::string input;
        std::string output;
        std::size_t output_offset = 0;
        bool peer_closed = false;  // it shut its side: nothing more to read
    };

    void accept_all() noexcept;
    // Each returns false when the client is to be dropped.
    bool on_client(Client& client, std::uint32_t events);
    bool read_request(Client& client);
    bool discard_input(Client& client);
    bool flush(Client& client);
    void answer(Client& client, std::string response);
    void set_interest(Client& client) noexcept;
    void drop(int fd) noexcept;

    MetricsServerLimits limits_;
    std::function<std::string()> body_;
    std::function<std::uint64_t()> now_ms_;
    stun::Address address_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    std::unordered_map<int, Client> clients_;
    MetricsServerCounters counters_;
};

}  // namespace control
