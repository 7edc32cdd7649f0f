// Tests for control/metrics_server.cc: the request parser (table cases), the answers, and the
// server over real TCP sockets on 127.0.0.1 and ::1, port 0 — a partial request, an oversized
// one, wrong method and path, too many clients, a client that never finishes (dropped at its
// deadline, on an injected clock). The server is driven as the control loop drives it:
// serve() whenever its epoll descriptor is readable, expire() on a tick, on this one thread.
// Waits poll for a condition with a generous bound (a liveness bound, not a timing threshold).
#include "control/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

namespace control {
namespace {

// ---------------------------------------------------------------- the parser

struct ParseCase {
    const char* name;
    std::string input;
    HttpParse expected;
    const char* method = "";
    const char* path = "";
};

class HttpParseTest : public testing::TestWithParam<ParseCase> {};

TEST_P(HttpParseTest, Classifies) {
    const ParseCase& c = GetParam();
    HttpRequest request;
    EXPECT_EQ(parse_http_request(c.input, 256, request), c.expected);
    if (c.expected == HttpParse::complete) {
        EXPECT_EQ(request.method, c.method);
        EXPECT_EQ(request.path, c.path);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HttpParseTest,
    testing::Values(
        ParseCase{"Get", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", HttpParse::complete, "GET",
                  "/metrics"},
        ParseCase{"Http10NoHeaders", "GET /metrics HTTP/1.0\r\n\r\n", HttpParse::complete, "GET",
                  "/metrics"},
        ParseCase{"BareLineFeeds", "GET /metrics HTTP/1.1\nHost: x\n\n", HttpParse::complete,
                  "GET", "/metrics"},
        ParseCase{"QueryLeftOut", "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", HttpParse::complete,
                  "GET", "/metrics"},
        ParseCase{"AbsoluteForm", "GET http://198.18.0.2:9641/metrics HTTP/1.1\r\n\r\n",
                  HttpParse::complete, "GET", "/metrics"},
        ParseCase{"LeadingEmptyLine", "\r\nGET /metrics HTTP/1.1\r\n\r\n", HttpParse::complete,
                  "GET", "/metrics"},
        ParseCase{"OtherMethod", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                  HttpParse::complete, "POST", "/metrics"},
        ParseCase{"OtherPath", "GET / HTTP/1.1\r\n\r\n", HttpParse::complete, "GET", "/"},
        ParseCase{"Empty", "", HttpParse::incomplete},
        ParseCase{"LineNotEnded", "GET /metr", HttpParse::incomplete},
        ParseCase{"HeadersNotEnded", "GET /metrics HTTP/1.1\r\nHost: x\r\n", HttpParse::incomplete},
        ParseCase{"OverTheBound", "GET /metrics HTTP/1.1\r\nX: " + std::string(300, 'a'),
                  HttpParse::too_large},
        ParseCase{"EndsPastTheBound",
                  "GET /metrics HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n",
                  HttpParse::too_large},
        ParseCase{"NoVersion", "GET /metrics\r\n\r\n", HttpParse::malformed},
        ParseCase{"Http2", "GET /metrics HTTP/2.0\r\n\r\n", HttpParse::malformed},
        ParseCase{"TwoSpaces", "GET  /metrics HTTP/1.1\r\n\r\n", HttpParse::malformed},
        ParseCase{"MethodNotAToken", "G(T /metrics HTTP/1.1\r\n\r\n", HttpParse::malformed},
        ParseCase{"RelativeTarget", "GET metrics HTTP/1.1\r\n\r\n", HttpParse::malformed},
        ParseCase{"NotHttp", "\x16\x03\x01\x02\xfc\x03\x03\n\n",
                  HttpParse::malformed}),
    [](const testing::TestParamInfo<ParseCase>& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- the answers

std::string status_line(const std::string& response) {
    return response.substr(0, response.find("\r\n"));
}

TEST(HttpAnswer, GetMetricsIsTheBodyWithItsLength) {
    const std::string r = http_answer({"GET", "/metrics", "HTTP/1.1"}, [] { return "a 1\n"; });
    EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
    EXPECT_NE(r.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
              std::string::npos);
    EXPECT_NE(r.find("\r\nContent-Length: 4\r\n"), std::string::npos);
    EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos);
    EXPECT_TRUE(r.ends_with("\r\n\r\na 1\n"));
}

TEST(HttpAnswer, HeadIsTheHeadersAlone) {
    const std::string r = http_answer({"HEAD", "/metrics", "HTTP/1.1"}, [] { return "a 1\n"; });
    EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
    EXPECT_NE(r.find("\r\nContent-Length: 4\r\n"), std::string::npos);
    EXPECT_TRUE(r.ends_with("\r\n\r\n"));
}

TEST(HttpAnswer, OtherMethodIs405WithAllow) {
    bool built = false;
    const std::string r = http_answer({"POST", "/metrics", "HTTP/1.1"}, [&] {
        built = true;
        return "";
    });
    EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
    EXPECT_NE(r.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
    EXPECT_FALSE(built);
}

TEST(HttpAnswer, OtherPathIs404) {
    EXPECT_EQ(status_line(http_answer({"GET", "/", "HTTP/1.1"}, [] { return ""; })),
              "HTTP/1.1 404 Not Found");
    EXPECT_EQ(status_line(http_answer({"DELETE", "/x", "HTTP/1.1"}, [] { return ""; })),
              "HTTP/1.1 404 Not Found");
}

// ---------------------------------------------------------------- the server on sockets

stun::Address loopback(const char* ip) {
    stun::Address a;
    EXPECT_TRUE(stun::Address::from_string(ip, 0, a));
    return a;
}

class MetricsServerTest : public testing::Test {
protected:
    void start(const char* ip = "127.0.0.1", MetricsServerLimits limits = {}) {
        limits_ = limits;
        server_ = std::make_unique<MetricsServer>(
            loopback(ip), limits,
            [this] {
                ++bodies_;
                return std::string("punchline_test_total 42\n");
            },
            [this] { return now_ms_; });
        ASSERT_NE(server_->address().port, 0);
    }

    int connect_client() {
        const stun::Address& a = server_->address();
        sockaddr_storage storage{};
        socklen_t length;
        if (a.family == stun::AddressFamily::ipv4) {
            auto* in = reinterpret_cast<sockaddr_in*>(&storage);
            in->sin_family = AF_INET;
            in->sin_port = htons(a.port);
            std::memcpy(&in->sin_addr, a.ip.data(), 4);
            length = sizeof(sockaddr_in);
        } else {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(a.port);
            std::memcpy(&in6->sin6_addr, a.ip.data(), 16);
            length = sizeof(sockaddr_in6);
        }
        const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        EXPECT_GE(fd, 0);
        // Each send() its own segment: a request in pieces arrives in pieces.
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&storage), length), 0);
        return fd;
    }

    // Serves until `done` holds (at most 5 s: a liveness bound).
    bool serve_until(const std::function<bool()>& done) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done()) {
            if (std::chrono::steady_clock::now() > end) return false;
            pollfd p{server_->fd(), POLLIN, 0};
            if (::poll(&p, 1, 10) > 0) server_->serve();
        }
        return true;
    }

    // Everything the server sends until it closes, serving meanwhile.
    std::string read_all(int fd) {
        std::string out;
        bool closed = false;
        serve_until([&] {
            char buffer[4096];
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n > 0) out.append(buffer, static_cast<std::size_t>(n));
            if (n == 0) closed = true;
            return closed;
        });
        EXPECT_TRUE(closed) << "the server did not close; got: " << out;
        return out;
    }

    std::string exchange(const std::string& request) {
        const int fd = connect_client();
        EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(request.size()));
        std::string answer = read_all(fd);
        ::close(fd);
        return answer;
    }

    MetricsServerLimits limits_;
    std::unique_ptr<MetricsServer> server_;
    std::uint64_t now_ms_ = 1000;
    int bodies_ = 0;
};

TEST_F(MetricsServerTest, AnswersAScrape) {
    start();
    const std::string r = exchange("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
    EXPECT_TRUE(r.ends_with("\r\n\r\npunchline_test_total 42\n")) << r;
    EXPECT_EQ(server_->counters().scrapes, 1u);
    EXPECT_TRUE(serve_until([&] { return server_->client_count() == 0; }));
}

TEST_F(MetricsServerTest, AnswersOnIpv6) {
    start("::1");
    EXPECT_EQ(status_line(exchange("GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST_F(MetricsServerTest, ARequestInPiecesIsAnsweredOnceWhole) {
    start();
    const int fd = connect_client();
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (std::size_t i = 0; i + 1 < request.size(); ++i) {
        ASSERT_EQ(::send(fd, &request[i], 1, MSG_NOSIGNAL), 1);
        ASSERT_TRUE(serve_until([&] { return server_->client_count() == 1; }));
        pollfd p{server_->fd(), POLLIN, 0};
        if (::poll(&p, 1, 1) > 0) server_->serve();
    }
    EXPECT_EQ(bodies_, 0);  // nothing answered before the blank line
    ASSERT_EQ(::send(fd, &request.back(), 1, MSG_NOSIGNAL), 1);
    EXPECT_EQ(status_line(read_all(fd)), "HTTP/1.1 200 OK");
    EXPECT_EQ(bodies_, 1);
    ::close(fd);
}

TEST_F(MetricsServerTest, WrongMethodAndPath) {
    start();
    EXPECT_EQ(status_line(exchange("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")),
              "HTTP/1.1 405 Method Not Allowed");
    EXPECT_EQ(status_line(exchange("GET /stats HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
    EXPECT_EQ(status_line(exchange("GET /metrics SPDY/3\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(bodies_, 0);
    EXPECT_EQ(server_->counters().answered, 3u);
    EXPECT_EQ(server_->counters().bad_requests, 1u);
}

TEST_F(MetricsServerTest, AnOversizedRequestIs431AndClosed) {
    MetricsServerLimits limits;
    limits.max_request_bytes = 1024;
    start("127.0.0.1", limits);
    const std::string r =
        exchange("GET /metrics HTTP/1.1\r\nCookie: " + std::string(4000, 'c') + "\r\n\r\n");
    EXPECT_EQ(status_line(r), "HTTP/1.1 431 Request Header Fields Too Large");
    EXPECT_EQ(bodies_, 0);
    EXPECT_EQ(server_->counters().bad_requests, 1u);
}

TEST_F(MetricsServerTest, AHalfRequestThenCloseIs400) {
    start();
    const int fd = connect_client();
    ASSERT_EQ(::send(fd, "GET /met", 8, MSG_NOSIGNAL), 8);
    ::shutdown(fd, SHUT_WR);
    EXPECT_EQ(status_line(read_all(fd)), "HTTP/1.1 400 Bad Request");
    ::close(fd);
    EXPECT_TRUE(serve_until([&] { return server_->client_count() == 0; }));
}

TEST_F(MetricsServerTest, ASilentClientIsDroppedAtItsDeadline) {
    MetricsServerLimits limits;
    limits.timeout_ms = 2000;
    start("127.0.0.1", limits);
    const int fd = connect_client();
    ASSERT_EQ(::send(fd, "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 23);
    ASSERT_TRUE(serve_until([&] { return server_->client_count() == 1; }));
    now_ms_ += 1999;
    server_->expire();
    EXPECT_EQ(server_->client_count(), 1u);
    // Meanwhile another client is answered: the silent one holds nothing up.
    EXPECT_EQ(status_line(exchange("GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
    ASSERT_TRUE(serve_until([&] { return server_->client_count() == 1; }));
    now_ms_ += 1;
    server_->expire();
    EXPECT_EQ(server_->client_count(), 0u);
    EXPECT_EQ(server_->counters().timed_out, 1u);
    char byte;
    EXPECT_EQ(::recv(fd, &byte, 1, 0), 0);  // closed, unanswered
    ::close(fd);
}

TEST_F(MetricsServerTest, OneClientPastTheLimitIs503) {
    MetricsServerLimits limits;
    limits.max_clients = 2;
    start("127.0.0.1", limits);
    const int first = connect_client();
    const int second = connect_client();
    ASSERT_TRUE(serve_until([&] { return server_->client_count() == 2; }));
    const int third = connect_client();
    EXPECT_EQ(status_line(read_all(third)), "HTTP/1.1 503 Service Unavailable");
    EXPECT_EQ(server_->counters().refused_too_many, 1u);
    ::close(third);
    ::close(first);
    ::close(second);
    EXPECT_TRUE(serve_until([&] { return server_->client_count() == 0; }));
    // Room again.
    EXPECT_EQ(status_line(exchange("GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST_F(MetricsServerTest, AnAddressInUseNamesTheSetting) {
    start();
    stun::Address taken = server_->address();
    try {
        MetricsServer second(taken, {}, [] { return std::string(); }, [] { return 0; });
        FAIL() << "bound twice";
    } catch (const MetricsServerError& error) {
        const std::string what = error.what();
        EXPECT_NE(what.find("metrics.listen \"127.0.0.1:" + std::to_string(taken.port) +
                            "\": bind() (another process listens there"),
                  std::string::npos)
            << what;
    }
}

}  // namespace
}  // namespace control
