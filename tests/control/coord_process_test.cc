// punchcoord as a process on 127.0.0.1 (an ephemeral port), with libpunch's CoordClient as its
// client: two members join a room and learn each other; candidates, signals, reports and leaves
// flow; garbage, oversize, half-line, flooding and non-reading clients do not disturb a good
// one; SIGTERM ends it with exit status 0 and its report.
//
// The program's path is the first argument (meson passes build/control/punchcoord).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "punch/coord_client.h"
#include "punch/event_loop.h"

namespace {

std::string punchcoord_path;

// Reads what a pipe holds now (non-blocking).
std::string drain(int fd) {
    std::string out;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
}

// punchcoord started with `flags`; stops it (SIGTERM) when destroyed if not stopped before.
class Punchcoord {
public:
    explicit Punchcoord(std::vector<std::string> flags) {
        int out[2];
        int err[2];
        EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
        EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], 1);
            ::dup2(err[1], 2);
            std::vector<std::string> args = {punchcoord_path, "--listen", "127.0.0.1:0"};
            args.insert(args.end(), flags.begin(), flags.end());
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        ::close(err[1]);
        stdout_fd_ = out[0];
        stderr_fd_ = err[0];
        ::fcntl(stdout_fd_, F_SETFL, O_NONBLOCK);
        // Its first line names the port: "punchcoord: listening on 127.0.0.1:41234 ...".
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
            pollfd p{stderr_fd_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            char buffer[1024];
            const ssize_t n = ::read(stderr_fd_, buffer, sizeof buffer);
            if (n <= 0) break;
            stderr_.append(buffer, static_cast<std::size_t>(n));
            const std::size_t at = stderr_.find("listening on 127.0.0.1:");
            if (at != std::string::npos && stderr_.find(' ', at + 23) != std::string::npos)
                port_ = static_cast<std::uint16_t>(std::stoi(stderr_.substr(at + 23)));
        }
        ::fcntl(stderr_fd_, F_SETFL, O_NONBLOCK);
        EXPECT_NE(port_, 0) << "punchcoord did not say where it listens: " << stderr_;
    }
    ~Punchcoord() {
        if (pid_ > 0) stop();
        ::close(stdout_fd_);
        ::close(stderr_fd_);
    }
    // SIGTERM; returns the exit status (or -1 when it did not exit normally).
    int stop() {
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        stdout_ += drain(stdout_fd_);
        stderr_ += drain(stderr_fd_);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    [[nodiscard]] bool running() const {
        return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0;
    }
    [[nodiscard]] std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] const std::string& out() const { return stdout_; }
    [[nodiscard]] const std::string& err() const { return stderr_; }

private:
    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    int stderr_fd_ = -1;
    std::uint16_t port_ = 0;
    std::string stdout_;
    std::string stderr_;
};

// A raw TCP connection for hostile clients.
// `receive_buffer`: SO_RCVBUF before connect (0: the default), so that a client that does
// not read fills up soon.
int raw_connect(std::uint16_t port, int receive_buffer = 0) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void send_all(int fd, const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<std::size_t>(n);
    }
}

// Reads one line (up to 5 s); "" on end of stream or timeout.
std::string read_line(int fd) {
    std::string line;
    char c;
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) return {};
        if (::recv(fd, &c, 1, 0) != 1) return {};
        if (c == '\n') return line;
        line += c;
    }
}

// True when the server has closed `fd` (end of stream within 5 s, after any lines).
bool closed_by_server(int fd) {
    char buffer[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) return false;
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) return true;
    }
}

// Runs `loop` until `done` or 10 s pass (a guard timer keeps run_until from returning early
// and bounds it).
void run(punch::EventLoop& loop, const std::function<bool()>& done) {
    bool expired = false;
    const punch::TimerId guard = loop.after(std::chrono::seconds(10), [&] { expired = true; });
    loop.run_until([&] { return done() || expired; });
    loop.cancel(guard);
    EXPECT_FALSE(expired) << "not done within 10 s";
}

punch::CoordCandidate candidate(const char* type, const char* ip, std::uint16_t port) {
    punch::CoordCandidate c;
    c.type = type;
    EXPECT_TRUE(stun::Address::from_string(ip, port, c.address));
    return c;
}

// A member: a client, its join reply and what it was told.
struct Member {
    // Pings every second: the hostile test runs the coordinator with a 3 s idle timeout.
    explicit Member(punch::EventLoop& loop, const std::string& server)
        : client(loop, {server, std::chrono::seconds(5), std::chrono::seconds(5),
                        std::chrono::seconds(1)}) {
        client.on_peer([this](const punch::PeerInfo& p) { peers.push_back(p); });
        client.on_candidates([this](const std::string&, const std::string& from,
                                    const std::vector<punch::CoordCandidate>& c) {
            candidates_from = from;
            candidates = c;
        });
        client.on_signal([this](const std::string&, const std::string& from,
                                const std::string& data) { signals.push_back(from + " " + data); });
        client.on_peer_left(
            [this](const std::string&, const std::string& name) { left.push_back(name); });
        client.on_closed([this](const std::string& reason) { closed = reason; });
    }
    punch::CoordClient client;
    std::optional<std::string> connect_error;
    std::optional<punch::JoinReply> joined;
    std::vector<punch::PeerInfo> peers;
    std::string candidates_from;
    std::vector<punch::CoordCandidate> candidates;
    std::vector<std::string> signals;
    std::vector<std::string> left;
    std::optional<std::string> closed;
};

void connect_and_join(punch::EventLoop& loop, Member& m, const punch::JoinRequest& request) {
    m.client.connect([&](const std::string& error) { m.connect_error = error; });
    run(loop, [&] { return m.connect_error.has_value(); });
    ASSERT_EQ(*m.connect_error, "");
    m.client.join(request, [&](const punch::JoinReply& r) { m.joined = r; });
    run(loop, [&] { return m.joined.has_value(); });
    ASSERT_TRUE(m.joined->status.ok) << m.joined->status.code << ": " << m.joined->status.message;
}

TEST(CoordProcessTest, TwoClientsJoinAndLearnEachOther) {
    Punchcoord coordinator({"--stun", "127.0.0.1:3478"});
    punch::SteadyClock clock;
    punch::EventLoop loop(clock);
    Member alice(loop, coordinator.server());
    Member bob(loop, coordinator.server());

    std::optional<punch::HelloReply> hello;
    alice.client.connect([&](const std::string& error) {
        alice.connect_error = error;
        alice.client.hello([&](const punch::HelloReply& r) { hello = r; });
    });
    run(loop, [&] { return hello.has_value(); });
    ASSERT_TRUE(hello->status.ok);
    EXPECT_EQ(hello->protocol, 1);
    EXPECT_EQ(hello->stun_servers, std::vector<std::string>{"127.0.0.1:3478"});
    EXPECT_EQ(hello->max_members_per_room, 2u);

    alice.client.join(
        {"call-1", "alice", {candidate("host", "198.18.0.2", 40000)}, "full_cone", "eu"},
        [&](const punch::JoinReply& r) { alice.joined = r; });
    run(loop, [&] { return alice.joined.has_value(); });
    ASSERT_TRUE(alice.joined->status.ok) << alice.joined->status.message;
    EXPECT_TRUE(alice.joined->controlling);
    connect_and_join(
        loop, bob,
        {"call-1", "bob", {candidate("srflx", "203.0.113.9", 50000)}, "symmetric", "us"});
    EXPECT_FALSE(bob.joined->controlling);
    run(loop, [&] { return alice.peers.size() == 1 && bob.peers.size() == 1; });

    // Each holds the other's credentials: PunchCredentials' remote side.
    EXPECT_EQ(alice.peers[0].name, "bob");
    EXPECT_EQ(alice.peers[0].ufrag, bob.joined->ufrag);
    EXPECT_EQ(alice.peers[0].password, bob.joined->password);
    EXPECT_EQ(alice.peers[0].nat_type, "symmetric");
    EXPECT_TRUE(alice.peers[0].controlling);
    ASSERT_EQ(alice.peers[0].candidates.size(), 1u);
    EXPECT_EQ(alice.peers[0].candidates[0].type, "srflx");
    EXPECT_EQ(alice.peers[0].candidates[0].address,
              candidate("srflx", "203.0.113.9", 50000).address);
    EXPECT_EQ(bob.peers[0].name, "alice");
    EXPECT_EQ(bob.peers[0].ufrag, alice.joined->ufrag);
    EXPECT_EQ(bob.peers[0].password, alice.joined->password);
    EXPECT_FALSE(bob.peers[0].controlling);

    // A relayed candidate after a TURN allocation, a signal, a report.
    std::optional<punch::CoordStatus> sent;
    alice.client.send_candidates("call-1", {candidate("relay", "127.0.0.1", 49152)},
                                 [&](const punch::CoordStatus& s) { sent = s; });
    run(loop, [&] { return sent.has_value() && !bob.candidates.empty(); });
    EXPECT_TRUE(sent->ok);
    EXPECT_EQ(bob.candidates_from, "alice");
    EXPECT_EQ(bob.candidates[0].type, "relay");
    bob.client.signal("call-1", "", R"({"kind":"moving_to_relay"})");
    run(loop, [&] { return !alice.signals.empty(); });
    EXPECT_EQ(alice.signals[0], R"(bob {"kind":"moving_to_relay"})");
    std::optional<punch::CoordStatus> reported;
    alice.client.report({"call-1", "p2p", 140, "full_cone", "symmetric"},
                        [&](const punch::CoordStatus& s) { reported = s; });
    run(loop, [&] { return reported.has_value(); });
    EXPECT_TRUE(reported->ok);

    // An error reply reaches the callback with its code.
    std::optional<punch::CoordStatus> refused;
    bob.client.signal("call-1", "nobody", "{}", [&](const punch::CoordStatus& s) { refused = s; });
    run(loop, [&] { return refused.has_value(); });
    EXPECT_FALSE(refused->ok);
    EXPECT_EQ(refused->code, "not_found");

    // Disconnect = leave.
    bob.client.close();
    run(loop, [&] { return !alice.left.empty(); });
    EXPECT_EQ(alice.left[0], "bob");
    EXPECT_FALSE(alice.closed.has_value());

    alice.client.close();
    EXPECT_EQ(coordinator.stop(), 0) << coordinator.err();
    EXPECT_NE(coordinator.out().find("punchcoord: stopped after"), std::string::npos)
        << coordinator.out();
    EXPECT_NE(coordinator.out().find("rooms: joins 2, created 1"), std::string::npos)
        << coordinator.out();
    EXPECT_NE(coordinator.out().find("reports: received 1"), std::string::npos);
}

TEST(CoordProcessTest, RequestTimesOutAndConnectFailsWithinTheirBounds) {
    punch::SteadyClock clock;
    punch::EventLoop loop(clock);
    // A listener that never accepts nor answers: connect succeeds (the backlog), replies never
    // come.
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(listener, 4), 0);
    socklen_t length = sizeof address;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    punch::CoordClientConfig config{"127.0.0.1:" + std::to_string(ntohs(address.sin_port))};
    config.request_timeout = std::chrono::milliseconds(300);
    punch::CoordClient silent(loop, config);
    std::optional<std::string> connected;
    silent.connect([&](const std::string& e) { connected = e; });
    run(loop, [&] { return connected.has_value(); });
    EXPECT_EQ(*connected, "");
    std::optional<punch::CoordStatus> status;
    silent.ping([&](const punch::CoordStatus& s) { status = s; });
    run(loop, [&] { return status.has_value(); });
    EXPECT_EQ(status->code, "timeout");
    ::close(listener);

    // Nobody listens on the port now: refused.
    punch::CoordClient refused(loop, config);
    std::optional<std::string> error;
    refused.connect([&](const std::string& e) { error = e; });
    run(loop, [&] { return error.has_value(); });
    EXPECT_NE(error->find("Connection refused"), std::string::npos) << *error;
}

// A client that ends its side after its requests (`printf ... | nc -N`) still gets every
// reply, then the end of stream.
TEST(CoordProcessTest, RepliesReachAClientThatClosedItsSide) {
    Punchcoord coordinator({});
    const int fd = raw_connect(coordinator.port());
    send_all(fd, R"({"op":"hello","id":1})" "\n" R"({"op":"nodes","id":2})" "\n"
                 R"({"op":"ping","id":3})" "\n");
    ::shutdown(fd, SHUT_WR);
    for (int id = 1; id <= 3; ++id) {
        const std::string line = read_line(fd);
        ASSERT_FALSE(line.empty()) << "reply " << id;
        EXPECT_EQ(nlohmann::json::parse(line)["id"], id);
    }
    EXPECT_TRUE(closed_by_server(fd));
    ::close(fd);
    EXPECT_EQ(coordinator.stop(), 0);
    EXPECT_NE(coordinator.out().find("open 0"), std::string::npos) << coordinator.out();
}

TEST(CoordProcessTest, HostileClientsDoNotDisturbAGoodOne) {
    Punchcoord coordinator({"--max-output-bytes", "65536", "--idle-timeout-ms", "3000",
                            "--max-connections", "60", "--max-connections-per-address", "60"});
    const std::uint16_t port = coordinator.port();

    // Garbage: answered, connection kept.
    const int garbage = raw_connect(port);
    send_all(garbage, std::string("\x00\xff\xfe garbage\n", 12));
    const auto reply = nlohmann::json::parse(read_line(garbage));
    EXPECT_EQ(reply["error"]["code"], "bad_json");
    send_all(garbage, "{\"op\":\"ping\",\"id\":3}\n");
    EXPECT_EQ(nlohmann::json::parse(read_line(garbage))["pong"], true);

    // An oversize line: an error, then closed.
    const int oversize = raw_connect(port);
    send_all(oversize, std::string(100000, 'x'));
    const std::string too_large = read_line(oversize);
    ASSERT_FALSE(too_large.empty());
    EXPECT_EQ(nlohmann::json::parse(too_large)["error"]["code"], "too_large");
    EXPECT_TRUE(closed_by_server(oversize));

    // Slowloris: half a line, never finished: closed by the idle timeout (3 s here).
    const int slow = raw_connect(port);
    send_all(slow, "{\"op\":\"pi");

    // A member that never reads, flooded with signals by its peer: closed once its output
    // passes 64 KiB; its peer is told it left.
    const int deaf = raw_connect(port, 4096);
    send_all(deaf, R"({"op":"join","room":"flood","name":"deaf","candidates":[]})" "\n");
    punch::SteadyClock clock;
    punch::EventLoop loop(clock);
    Member good(loop, coordinator.server());
    connect_and_join(loop, good, {"flood", "good", {}, "none", ""});
    run(loop, [&] { return !good.peers.empty(); });
    // 64 KiB of output, the kernel's send buffer (64 KiB, doubled) and the deaf side's
    // window: a few hundred KiB. Up to 1000 signals of 4000 bytes send four MiB.
    const std::string blob(4000, 'b');
    for (int i = 0; i < 1000 && good.left.empty(); ++i) {
        std::optional<punch::CoordStatus> s;
        good.client.signal("flood", "deaf", "{\"blob\":\"" + blob + "\"}",
                           [&](const punch::CoordStatus& status) { s = status; });
        run(loop, [&] { return s.has_value(); });
    }
    run(loop, [&] { return !good.left.empty(); });
    EXPECT_EQ(good.left[0], "deaf");

    // A flood of connections beyond max_connections: the surplus is refused with "limit".
    std::vector<int> flood;
    int refused = 0;
    for (int i = 0; i < 100; ++i) {
        const int fd = raw_connect(port);
        if (fd >= 0) flood.push_back(fd);
    }
    // The refused get their line and an end of stream; the accepted get nothing. Polled
    // until 40 refusals are in or 10 s pass.
    std::vector<pollfd> waiting;
    for (const int fd : flood) waiting.push_back({fd, POLLIN, 0});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (refused < 40 && std::chrono::steady_clock::now() < deadline) {
        if (::poll(waiting.data(), waiting.size(), 100) <= 0) continue;
        for (pollfd& p : waiting) {
            if (p.fd < 0 || p.revents == 0) continue;
            const std::string line = read_line(p.fd);
            if (!line.empty() &&
                nlohmann::json::parse(line)["error"]["limit"] == "max_connections")
                ++refused;
            p.fd = -1;  // poll() skips it from now on
        }
    }
    EXPECT_GE(refused, 40) << "100 attempts, at most 60 connections";

    // The good client is still served.
    std::optional<punch::CoordStatus> pong;
    good.client.ping([&](const punch::CoordStatus& s) { pong = s; });
    run(loop, [&] { return pong.has_value(); });
    EXPECT_TRUE(pong->ok);
    for (const int fd : flood) ::close(fd);

    EXPECT_TRUE(closed_by_server(slow)) << "the half line does not keep it open";
    ::close(slow);
    ::close(deaf);
    ::close(oversize);
    ::close(garbage);
    EXPECT_TRUE(coordinator.running());
    EXPECT_EQ(coordinator.stop(), 0);
    EXPECT_NE(coordinator.out().find("closed slow 1"), std::string::npos) << coordinator.out();
    EXPECT_NE(coordinator.out().find("lines too long 1"), std::string::npos) << coordinator.out();
}

}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PUNCHCOORD\n", argv[0]);
        return 2;
    }
    punchcoord_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    return RUN_ALL_TESTS();
}
