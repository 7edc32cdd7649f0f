// The engine's NodeAgent (control/node_agent.h) against punchcoord as a process on 127.0.0.1:
// it registers (the directory lists it as `nodes` shows it to anyone), keeps itself listed
// past the ttl by heartbeats, registers again after the coordinator expired it, and is
// refused with the wrong node secret.
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
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../nat/recording_sender.h"
#include "control/node_agent.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string punchcoord_path;

// punchcoord on 127.0.0.1, an ephemeral port (its log's first line names it), killed by PID
// when the test ends.
class Coordinator {
public:
    explicit Coordinator(std::vector<std::string> flags) {
        int err[2];
        EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(err[1], 2);
            flags.insert(flags.begin(), {punchcoord_path, "--listen", "127.0.0.1:0"});
            std::vector<char*> argv;
            for (std::string& flag : flags) argv.push_back(flag.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(err[1]);
        log_ = err[0];
        std::string text;
        const std::string marker = "listening on 127.0.0.1:";
        for (int i = 0; i < 100 && port_ == 0; ++i) {
            pollfd p{log_, POLLIN, 0};
            if (::poll(&p, 1, 100) != 1) continue;
            char chunk[512];
            const ssize_t n = ::read(log_, chunk, sizeof chunk);
            if (n <= 0) break;
            text.append(chunk, static_cast<std::size_t>(n));
            const std::size_t at = text.find(marker);
            if (at != std::string::npos && text.find(' ', at + marker.size()) != std::string::npos)
                port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + marker.size())));
        }
        // The rest of its log goes unread: non-blocking, so that it never waits on the pipe.
        ::fcntl(log_, F_SETFL, O_NONBLOCK);
        EXPECT_NE(port_, 0) << "punchcoord did not say where it listens: " << text;
    }
    ~Coordinator() {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        ::close(log_);
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }

    // One request on a connection of its own (as an operator's `nodes` would be).
    json request(const json& line) const {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port_);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const timeval timeout{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        std::string reply;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            const std::string text = line.dump() + "\n";
            ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
            char chunk[4096];
            ssize_t n;
            while (reply.find('\n') == std::string::npos &&
                   (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0)
                reply.append(chunk, static_cast<std::size_t>(n));
        }
        ::close(fd);
        return json::parse(reply.substr(0, reply.find('\n')), nullptr, false);
    }
    json nodes() const { return request({{"op", "nodes"}, {"id", 1}, {"role", "sfu"}}); }

private:
    pid_t pid_ = -1;
    int log_ = -1;
    std::uint16_t port_ = 0;
};

// A file holding `secret` (--node-secret-file), removed at the end.
class SecretFile {
public:
    explicit SecretFile(const std::string& secret) {
        char name[] = "/tmp/node_agent_secret_XXXXXX";
        const int fd = ::mkstemp(name);
        path_ = name;
        const std::string line = secret + "\n";
        EXPECT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
        ::close(fd);
    }
    ~SecretFile() { ::unlink(path_.c_str()); }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

control::NodeAgentConfig config_for(const Coordinator& coordinator, const std::string& secret) {
    control::NodeAgentConfig config;
    config.coordinator = "127.0.0.1:" + std::to_string(coordinator.port());
    EXPECT_TRUE(stun::Address::from_string("127.0.0.1", coordinator.port(),
                                           config.coordinator_address));
    EXPECT_TRUE(stun::Address::from_string("198.18.0.2", 3480, config.local));
    stun::Address public_address;
    EXPECT_TRUE(stun::Address::from_string("203.0.113.5", 3480, public_address));
    config.public_address = public_address;
    config.nat_type = "port_restricted";
    config.region = "eu-west";
    config.node_secret = secret;
    config.reconnect_min = 100ms;
    config.reconnect_max = 200ms;
    return config;
}

// Polls the agent (and waits on its socket) until `done`, for at most `limit` of real time.
bool run_until(control::NodeAgent& agent, std::chrono::milliseconds limit,
               const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        agent.poll();
        pollfd p{agent.fd(), agent.events(), 0};
        ::poll(&p, agent.fd() >= 0 ? 1 : 0, 10);
    }
    return done();
}

TEST(NodeAgentProcess, RegistersAndStaysListedByHeartbeats) {
    const SecretFile secret("a node secret");
    const Coordinator coordinator(
        {"--node-ttl-ms", "3000", "--node-secret-file", secret.path()});
    punch::SteadyClock clock;
    punch::testing::RecordingSender sender(clock);
    control::NodeAgent agent(config_for(coordinator, "a node secret"), clock, sender,
                             [] { return 250u; }, [] { return 0; });
    ASSERT_TRUE(run_until(agent, 5s, [&] {
        return agent.state() == control::NodeAgentState::registered;
    }));
    const json listed = coordinator.nodes();
    ASSERT_TRUE(listed.value("ok", false)) << listed.dump();
    ASSERT_EQ(listed["nodes"].size(), 1u) << listed.dump();
    const json& node = listed["nodes"][0];
    EXPECT_EQ(node["node_id"], *agent.node_id());
    EXPECT_EQ(node["role"], "sfu");
    EXPECT_EQ(node["address"], "203.0.113.5:3480");
    EXPECT_EQ(node["nat_type"], "port_restricted");
    EXPECT_EQ(node["region"], "eu-west");
    EXPECT_EQ(node["load"], 250);
    // Past the ttl and more: listed still, by heartbeats (every ttl/3), never expired.
    const std::uint64_t first_id = *agent.node_id();
    ASSERT_TRUE(run_until(agent, 10s, [&] { return agent.counters().heartbeats >= 4; }));
    const json later = coordinator.nodes();
    ASSERT_EQ(later["nodes"].size(), 1u) << later.dump();
    EXPECT_EQ(later["nodes"][0]["node_id"], first_id);
    EXPECT_EQ(later["expired"], 0);
    EXPECT_EQ(agent.counters().expiries, 0u);
    EXPECT_EQ(agent.counters().registrations, 1u);
}

TEST(NodeAgentProcess, RegistersAgainAfterTheCoordinatorExpiredIt) {
    const Coordinator coordinator({"--node-ttl-ms", "1000"});
    // A clock that never moves: no heartbeat is ever due, so the coordinator expires the node.
    punch::ManualClock clock;
    punch::testing::RecordingSender sender(clock);
    control::NodeAgent agent(config_for(coordinator, ""), clock, sender, [] { return 0u; },
                             [] { return 0; });
    ASSERT_TRUE(run_until(agent, 5s, [&] {
        return agent.state() == control::NodeAgentState::registered;
    }));
    const std::uint64_t first_id = *agent.node_id();
    ASSERT_TRUE(run_until(agent, 10s, [&] {
        return agent.counters().registrations == 2 &&
               agent.state() == control::NodeAgentState::registered;
    }));
    EXPECT_EQ(agent.counters().expiries, 1u);
    EXPECT_NE(*agent.node_id(), first_id);
    const json listed = coordinator.nodes();
    ASSERT_EQ(listed["nodes"].size(), 1u) << listed.dump();
    EXPECT_EQ(listed["nodes"][0]["node_id"], *agent.node_id());
    EXPECT_GE(listed["expired"], 1);
}

TEST(NodeAgentProcess, TheWrongSecretIsRefusedAndNotListed) {
    const SecretFile secret("a node secret");
    const Coordinator coordinator({"--node-secret-file", secret.path()});
    punch::SteadyClock clock;
    punch::testing::RecordingSender sender(clock);
    control::NodeAgent agent(config_for(coordinator, "another secret"), clock, sender,
                             [] { return 0u; }, [] { return 0; });
    ASSERT_TRUE(run_until(agent, 5s, [&] { return agent.counters().register_refusals >= 1; }));
    EXPECT_NE(agent.state(), control::NodeAgentState::registered);
    EXPECT_EQ(coordinator.nodes()["nodes"].size(), 0u);
}

}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PATH_TO_PUNCHCOORD\n", argv[0]);
        return 2;
    }
    punchcoord_path = argv[1];
    return RUN_ALL_TESTS();
}
