// node_discovery_tool --stun IP:PORT [--port N] [--timeout-ms MS]: an SFU node's NAT
// self-discovery (control/node_discovery.h) over a kernel UDP socket instead of the engine's
// SFU port, printing what it found as one JSON object. A test tool (natlab's
// node_discovery_test.sh runs it behind each NAT type), not installed.
//
// The socket is bound to the address the kernel routes towards the server from (found with a
// connected probe socket), not to 0.0.0.0: "no NAT" is a mapped address equal to the local
// one, which a wildcard bind could never show. Exit 0 with a public address, 1 without, 2 on
// a bad argument or a socket that cannot be opened.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "control/node_discovery.h"
#include "control/socket_address.h"
#include "punch/clock.h"
#include "punch/timer_queue.h"
#include "punch/udp_socket.h"

namespace {

std::string text(const stun::Address& address) {
    std::array<char, 48> out{};
    return std::string(out.data(), address.format(out));
}

// The source address the kernel picks towards `server`, port 0.
bool route_source(const stun::Address& server, stun::Address& out) {
    if (server.family != stun::AddressFamily::ipv4) return false;
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_storage to{};
    const socklen_t to_length = control::to_sockaddr(server, to);
    sockaddr_in local{};
    socklen_t length = sizeof local;
    const bool ok = fd >= 0 &&
                    ::connect(fd, reinterpret_cast<const sockaddr*>(&to), to_length) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0;
    if (fd >= 0) ::close(fd);
    if (!ok) return false;
    char ip[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &local.sin_addr, ip, sizeof ip);
    return stun::Address::from_string(ip, 0, out);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"node_discovery_tool: an SFU node's RFC 5780 self-discovery from one port"};
    std::string server_text;
    unsigned port = 0;
    unsigned timeout_ms = 2000;
    app.add_option("--stun", server_text, "the RFC 5780 server's primary IP:PORT")->required();
    app.add_option("--port", port, "the local port (default: the kernel picks)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--timeout-ms", timeout_ms, "each phase's bound")
        ->check(CLI::Range(500, 39500));
    CLI11_PARSE(app, argc, argv);

    stun::Address server;
    if (const std::string error = punch::resolve_host_port(server_text, server); !error.empty()) {
        std::fprintf(stderr, "node_discovery_tool: --stun %s\n", error.c_str());
        return 2;
    }
    stun::Address local;
    if (!route_source(server, local)) {
        std::fprintf(stderr, "node_discovery_tool: no IPv4 route to %s\n", server_text.c_str());
        return 2;
    }
    local.port = static_cast<std::uint16_t>(port);
    punch::UdpSocket socket;
    if (const std::string error = socket.open(local); !error.empty()) {
        std::fprintf(stderr, "node_discovery_tool: %s\n", error.c_str());
        return 2;
    }
    local = socket.local_address();

    punch::SteadyClock clock;
    punch::TimerQueue timers;
    punch::RetransmissionPolicy policy;
    policy.max_duration = std::chrono::milliseconds(timeout_ms);
    control::NodeDiscovery discovery(clock, timers, socket, local, policy);
    std::optional<control::DiscoveryReport> report;
    if (!discovery.start(server, [&](const control::DiscoveryReport& r) { report = r; })) {
        std::fprintf(stderr, "node_discovery_tool: no random transaction ID\n");
        return 2;
    }
    while (!report) {
        timers.run_due(clock.now());
        if (report) break;
        pollfd ready{socket.fd(), POLLIN, 0};
        ::poll(&ready, 1, 10);
        std::array<std::byte, 1500> buffer{};
        stun::Address from;
        long n;
        while ((n = socket.receive_from(buffer, from)) >= 0)
            (void)discovery.on_datagram(from, std::span(buffer).first(static_cast<std::size_t>(n)));
    }
    const punch::Classification& c = report->classification;
    const nlohmann::json out = {
        {"local", text(local)},
        {"public_address",
         report->public_address ? nlohmann::json(text(*report->public_address)) : nullptr},
        {"nat_type", std::string(punch::to_string(c.type))},
        {"mapping", std::string(punch::to_string(c.mapping))},
        {"filtering", std::string(punch::to_string(c.filtering))},
        {"filtering2", std::string(punch::to_string(report->tests.filtering2.outcome))},
        {"filtering3", std::string(punch::to_string(report->tests.filtering3.outcome))},
        {"mapping2", std::string(punch::to_string(report->tests.mapping2.outcome))},
        {"mapping3", std::string(punch::to_string(report->tests.mapping3.outcome))},
        {"elapsed_ms",
         std::chrono::duration_cast<std::chrono::milliseconds>(report->elapsed).count()}};
    std::printf("%s\n", out.dump().c_str());
    return report->public_address ? 0 : 1;
}
