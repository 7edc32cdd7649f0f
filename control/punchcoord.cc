// punchcoord: the coordinator (design.md §2, §4; the protocol is docs/protocol.md).
//
//   punchcoord [--config FILE] [--listen IP:PORT] [--stun HOST:PORT ...] [--relay HOST:PORT ...]
//              [--rest-secret-file FILE] [--rest-ttl S] [--max-... N] [--check]
//
// Flags override the file's keys. One thread: a poll() on the server's epoll set and a
// signalfd, woken at the latest when the coordinator's next timer (an idle connection, a
// node's expiry) is due. SIGINT or SIGTERM: a short report on stdout (scripts parse it), exit 0.
#include <signal.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "control/coord_config.h"
#include "control/coord_server.h"
#include "control/coordinator.h"
#include "control/log.h"
#include "stun/crypto.h"

namespace {

std::uint64_t clock_ms(clockid_t clock) {
    timespec now{};
    clock_gettime(clock, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000 +
           static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
}

control::CoordTime now() {
    return {clock_ms(CLOCK_MONOTONIC), clock_ms(CLOCK_REALTIME)};
}

// Every connection holds a descriptor: the soft limit up to the hard one (a default of 1024
// would shed connections below limits.max_connections).
void raise_open_files(std::size_t wanted) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t target = std::min<rlim_t>(limit.rlim_max, static_cast<rlim_t>(wanted) + 64);
    if (limit.rlim_cur < target) {
        limit.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < wanted + 16)
        control::log_warn("the open-files limit (" + std::to_string(limit.rlim_cur) +
                          ") is below limits.max_connections (" + std::to_string(wanted) +
                          "): connections past it are shed; raise it (ulimit -n)");
}

void print_report(const control::Coordinator& coordinator, const control::CoordServer& server,
                  std::uint64_t seconds) {
    const control::CoordCounters& c = coordinator.counters();
    std::printf(
        "punchcoord: stopped after %llu s\n"
        "connections: accepted %llu, refused %llu, closed idle %llu, closed slow %llu, "
        "lines too long %llu, open %zu\n"
        "requests: %llu, errors %llu, events pushed %llu\n"
        "rooms: joins %llu, created %llu, open %zu\n"
        "reports: received %llu, kept %zu\n"
        "nodes: listed %zu, expired %llu\n"
        "sfu: requests %llu, sessions %llu, punches sent %llu\n",
        static_cast<unsigned long long>(seconds),
        static_cast<unsigned long long>(c.connections_accepted),
        static_cast<unsigned long long>(c.connections_refused),
        static_cast<unsigned long long>(c.connections_idle),
        static_cast<unsigned long long>(c.connections_slow),
        static_cast<unsigned long long>(c.lines_too_long), server.open_connections(),
        static_cast<unsigned long long>(c.requests), static_cast<unsigned long long>(c.errors),
        static_cast<unsigned long long>(c.events), static_cast<unsigned long long>(c.joins),
        static_cast<unsigned long long>(c.rooms_created), coordinator.room_count(),
        static_cast<unsigned long long>(coordinator.outcomes().received()),
        coordinator.outcomes().size(), coordinator.nodes().size(),
        static_cast<unsigned long long>(coordinator.nodes().expired_count()),
        static_cast<unsigned long long>(c.sfu_requests),
        static_cast<unsigned long long>(c.sfu_sessions),
        static_cast<unsigned long long>(c.sfu_punches));
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    control::set_log_ident("punchcoord");
    CLI::App app{"punchcoord: the punchline coordinator (rooms, signaling, node directory, "
                 "credentials, outcome reports)"};
    std::string config_path;
    std::optional<std::string> listen;
    std::vector<std::string> stun_servers;
    std::vector<std::string> relay_servers;
    std::optional<std::string> rest_secret_file;
    std::optional<std::string> node_secret_file;
    std::optional<std::uint64_t> rest_ttl;
    std::optional<std::uint64_t> idle_timeout_ms;
    std::optional<std::uint64_t> node_ttl_ms;
    std::optional<std::string> log_level;
    bool check_only = false;
    app.add_option("--config", config_path, "the TOML configuration file (flags override it)")
        ->check(CLI::ExistingFile);
    app.add_option("--listen", listen, "IP:PORT to listen on (TCP; default 0.0.0.0:7000)");
    app.add_option("--stun", stun_servers, "a STUN server HOST:PORT for clients (repeatable)");
    app.add_option("--relay", relay_servers, "a TURN server HOST:PORT for clients (repeatable)");
    app.add_option("--rest-secret-file", rest_secret_file,
                   "file whose first line is the TURN REST shared secret (the relays' "
                   "relay.rest_secrets)");
    app.add_option("--rest-ttl", rest_ttl, "lifetime of issued TURN credentials, seconds")
        ->check(CLI::Range(60, 7 * 86400));
    app.add_option("--node-secret-file", node_secret_file,
                   "file whose first line is the secret nodes must send in register");
    app.add_option("--idle-timeout-ms", idle_timeout_ms,
                   "close a connection silent this long (default 30000)")
        ->check(CLI::Range(1000, 3600000));
    app.add_option("--node-ttl-ms", node_ttl_ms,
                   "drop a node not heard from this long (default 15000)")
        ->check(CLI::Range(1000, 3600000));
    app.add_option("--log-level", log_level, "error, warn, info or debug")
        ->check(CLI::IsMember({"error", "warn", "info", "debug"}));
    app.add_flag("--check", check_only, "validate the configuration and exit");
    // --max-rooms N and the like, one per [limits] key.
    std::vector<std::pair<std::string, std::optional<std::size_t>>> limit_values = {
        {"max_connections", {}},           {"max_connections_per_address", {}},
        {"max_rooms", {}},                 {"max_members_per_room", {}},
        {"max_rooms_per_connection", {}},  {"max_line_bytes", {}},
        {"max_candidates_per_member", {}}, {"max_signal_bytes", {}},
        {"max_reports", {}},               {"max_reports_per_connection", {}},
        {"max_nodes", {}},                 {"max_json_depth", {}},
        {"max_output_bytes", {}},          {"max_sfu_requests_per_connection", {}},
    };
    for (auto& [name, value] : limit_values) {
        std::string flag = "--" + name;
        for (char& c : flag)
            if (c == '_') c = '-';
        app.add_option(flag, value, "limits." + name + " (see docs/operations.md)");
    }
    CLI11_PARSE(app, argc, argv);

    control::CoordConfig config;
    try {
        if (!config_path.empty()) control::load_coord_config(config_path, config);
        control::CoordinatorConfig& c = config.coordinator;
        if (listen) {
            if (!control::valid_listen_address(*listen))
                throw engine::ConfigError(
                    "--listen", 0,
                    "expected IP:PORT with a numeric IP, e.g. 0.0.0.0:7000 or [::]:7000, got " +
                        *listen);
            config.listen = *listen;
        }
        if (!stun_servers.empty()) c.stun_servers = stun_servers;
        if (!relay_servers.empty()) c.relay_servers = relay_servers;
        if (rest_secret_file)
            c.rest_secret = control::read_secret_file(*rest_secret_file, "--rest-secret-file");
        if (node_secret_file)
            c.node_secret = control::read_secret_file(*node_secret_file, "--node-secret-file");
        if (rest_ttl) c.rest_ttl_s = *rest_ttl;
        if (idle_timeout_ms) c.idle_timeout_ms = *idle_timeout_ms;
        if (node_ttl_ms) c.node_ttl_ms = *node_ttl_ms;
        if (log_level) {
            const std::string& l = *log_level;
            config.log.level = l == "error"  ? engine::LogLevel::error
                               : l == "warn" ? engine::LogLevel::warn
                               : l == "info" ? engine::LogLevel::info
                                             : engine::LogLevel::debug;
        }
        // The flags go through the file's parser, one at a time, so that their ranges are the
        // keys' ranges; an error names the flag.
        for (const auto& [name, value] : limit_values) {
            if (!value) continue;
            control::CoordConfig with_flag = config;
            try {
                control::parse_coord_config(
                    "[limits]\n" + name + " = " + std::to_string(*value) + "\n", "", with_flag);
            } catch (const engine::ConfigError& error) {
                std::string flag = "--" + name;
                for (char& c : flag)
                    if (c == '_') c = '-';
                throw engine::ConfigError(flag, 0, error.expected());
            }
            config.coordinator.limits = with_flag.coordinator.limits;
        }
        control::validate_coord_config(config);
    } catch (const engine::ConfigError& error) {
        control::log_error(error.what());
        return 1;
    }
    if (check_only) {
        std::printf("punchcoord: the configuration is valid\n");
        return 0;
    }
    control::configure_log(config.log);

    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGINT, SIGTERM}) sigaddset(&signals, s);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);  // send() uses MSG_NOSIGNAL; belt and braces
    const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) {
        control::log_error(std::string("signalfd(): ") + std::strerror(errno));
        return 1;
    }
    raise_open_files(config.coordinator.limits.max_connections);

    control::Coordinator coordinator(config.coordinator, [](std::span<std::byte> out) {
        return stun::random_bytes(out);
    });
    std::unique_ptr<control::CoordServer> server;
    try {
        server = std::make_unique<control::CoordServer>(config.listen, coordinator);
    } catch (const control::CoordServerError& error) {
        control::log_error(error.what());
        return 1;
    }
    const control::CoordinatorConfig& c = config.coordinator;
    control::log_info("listening on " + server->local_address() + " (TCP, JSON lines); " +
                      std::to_string(c.stun_servers.size()) + " STUN and " +
                      std::to_string(c.relay_servers.size()) + " relay server(s), TURN " +
                      (c.rest_secret.empty() ? "credentials off (no REST secret)"
                                             : "REST credentials for " +
                                                   std::to_string(c.rest_ttl_s) + " s") +
                      ", SFU " +
                      (c.sfu.token_secret.empty()
                           ? "tokens off (no sfu.token_secret)"
                           : "tokens for " + std::to_string(c.sfu.token_ttl_s) + " s"));
    const std::uint64_t started = clock_ms(CLOCK_MONOTONIC);

    for (bool running = true; running;) {
        const control::CoordTime t = now();
        const std::uint64_t deadline = server->next_deadline(t);
        const int timeout =
            deadline > t.monotonic_ms ? static_cast<int>(deadline - t.monotonic_ms) : 0;
        pollfd ready[2] = {{signal_fd, POLLIN, 0}, {server->fd(), POLLIN, 0}};
        if (poll(ready, 2, timeout) < 0 && errno != EINTR) {
            control::log_error(std::string("poll(): ") + std::strerror(errno));
            return 1;
        }
        server->serve(now());
        signalfd_siginfo received{};
        while (read(signal_fd, &received, sizeof received) ==
               static_cast<ssize_t>(sizeof received))
            running = false;
    }
    print_report(coordinator, *server, (clock_ms(CLOCK_MONOTONIC) - started) / 1000);
    server.reset();
    close(signal_fd);
    return 0;
}
