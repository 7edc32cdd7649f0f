// turn_client_tool: libpunch's TurnClient against a real TURN server, for
// tests/nat/turn_client_interop_test.sh. A test tool, not shipped.
//
//   turn_client_tool --server HOST:PORT (--username U --password P | --rest-secret S
//                    [--rest-user U]) --peer HOST:PORT [--count N] [--rate PPS] [--size BYTES]
//                    [--send-indications] [--timeout S]
//
// Allocates (401, then the long-term credential), adds the peer (CreatePermission, and
// ChannelBind unless --send-indications), sends N numbered datagrams to the peer through the
// relay at PPS a second, expects an echo server there (turnutils_peer) to send each back, waits
// for the echoes, releases, and prints one line per step:
//
//   allocate: success relayed 203.0.113.2:49152 mapped 203.0.113.10:40000 lifetime 600 s 1.2 ms
//     key sha256                       (the long-term key's hash, RFC 8489 §9.2.2)
//   peer 198.51.100.7:3480: ready channel 0x4000
//   echo: sent 200 received 200 lost 0 duplicated 0 corrupted 0 via channel_data
//   release: ok
//   drops: none
//
// or the failure ("allocate: error_response 401 Unauthenticated", "peer 127.0.0.1:3480:
// CreatePermission 127.0.0.1:3480: 403 Forbidden"). Exit status: 0 every echo came back;
// 1 a step failed or an echo was lost; 2 a usage error.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "punch/event_loop.h"
#include "punch/turn_client.h"
#include "punch/udp_socket.h"
#include "stun/bytes.h"
#include "stun/rest.h"

namespace {

std::string text(const stun::Address& a) {
    char buffer[48];
    return {buffer, a.format(buffer)};
}

// Payload i: the 8-byte sequence number, then bytes derived from it, so that a corrupted
// echo is told from a good one.
void fill(std::vector<std::byte>& payload, std::uint64_t sequence) {
    stun::store_be64(payload.data(), sequence);
    for (std::size_t i = 8; i < payload.size(); ++i)
        payload[i] = static_cast<std::byte>((sequence * 31 + i) & 0xFF);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"libpunch's TURN client against a real server (a test tool)"};
    std::string server_text, peer_text, username, password, rest_secret, rest_user = "punch";
    unsigned count = 100, rate = 100, size = 160;
    double timeout_s = 3;
    bool send_indications = false;
    app.add_option("--server", server_text, "the TURN server, HOST:PORT")->required();
    app.add_option("--peer", peer_text, "the echo peer, HOST:PORT")->required();
    app.add_option("--username", username, "long-term credential: the username");
    app.add_option("--password", password, "long-term credential: the password");
    app.add_option("--rest-secret", rest_secret,
                   "TURN REST: the shared secret (username \"<now+1h>:<rest-user>\")");
    app.add_option("--rest-user", rest_user, "TURN REST: the user part of the username");
    app.add_option("--count", count, "datagrams to send through the relay")->check(
        CLI::Range(1u, 100000u));
    app.add_option("--rate", rate, "datagrams a second")->check(CLI::Range(1u, 100000u));
    app.add_option("--size", size, "bytes a datagram (8..1400)")->check(CLI::Range(8u, 1400u));
    app.add_option("--timeout", timeout_s, "each request's bound, seconds (RFC 8489 schedule)")
        ->check(CLI::Range(0.1, 39.5));
    app.add_flag("--send-indications", send_indications,
                 "no ChannelBind: Send and Data indications");
    CLI11_PARSE(app, argc, argv);

    punch::TurnConfig config;
    stun::Address peer;
    if (const auto e = punch::resolve_host_port(server_text, config.server); !e.empty()) {
        std::fprintf(stderr, "turn_client_tool: --server %s\n", e.c_str());
        return 2;
    }
    if (const auto e = punch::resolve_host_port(peer_text, peer); !e.empty()) {
        std::fprintf(stderr, "turn_client_tool: --peer %s\n", e.c_str());
        return 2;
    }
    if (!rest_secret.empty()) {
        // TURN REST: valid for an hour from now (wall time: the server compares it with its own).
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        char name[600];
        std::size_t written = 0;
        if (stun::make_rest_username(static_cast<std::uint64_t>(now) + 3600, rest_user, name,
                                     written) != stun::RestError::ok) {
            std::fprintf(stderr, "turn_client_tool: --rest-user too long\n");
            return 2;
        }
        config.username.assign(name, written);
        std::array<char, stun::rest_password_size> secret_password;
        stun::make_rest_password(stun::as_bytes(rest_secret), config.username, secret_password);
        config.password.assign(secret_password.data(), secret_password.size());
    } else {
        config.username = username;
        config.password = password;
    }
    if (config.username.empty() || config.password.empty()) {
        std::fprintf(stderr,
                     "turn_client_tool: give --username and --password, or --rest-secret\n");
        return 2;
    }
    config.use_channels = !send_indications;
    config.policy.max_duration =
        std::chrono::duration_cast<punch::Time>(std::chrono::duration<double>(timeout_s));

    punch::SteadyClock clock;
    punch::EventLoop loop(clock);
    punch::UdpSocket socket;
    stun::Address local;
    if (!punch::route_source(config.server, local)) {
        std::fprintf(stderr, "turn_client_tool: no route to %s\n", server_text.c_str());
        return 1;
    }
    local.port = 0;
    if (const auto e = socket.open(local); !e.empty()) {
        std::fprintf(stderr, "turn_client_tool: %s\n", e.c_str());
        return 1;
    }
    punch::TurnClient client(loop, socket, config);

    std::vector<unsigned> echoes(count, 0);
    std::uint64_t corrupted = 0, stray = 0, sent = 0;
    std::vector<std::byte> expected(size);
    client.on_data([&](const stun::Address& from, std::span<const std::byte> data) {
        if (!(from == peer) || data.size() != size) {
            ++corrupted;
            return;
        }
        const std::uint64_t sequence = stun::load_be64(data.data());
        if (sequence >= count) {
            ++corrupted;
            return;
        }
        fill(expected, sequence);
        if (std::memcmp(expected.data(), data.data(), size) != 0) {
            ++corrupted;
            return;
        }
        ++echoes[sequence];
    });
    client.on_failure([](const std::string& what) { std::printf("failure: %s\n", what.c_str()); });
    std::array<std::byte, 2048> buffer;
    // The socket's owner: everything read goes to the client, which keeps the server's.
    auto readable = [&] {
        stun::Address from;
        long n;
        while ((n = socket.receive_from(buffer, from)) >= 0) {
            const auto datagram = std::span(buffer).first(static_cast<std::size_t>(n));
            if (!client.on_datagram(from, datagram)) ++stray;
        }
    };
    if (const auto e = loop.watch(socket, readable); !e.empty()) {
        std::fprintf(stderr, "turn_client_tool: %s\n", e.c_str());
        return 1;
    }

    bool done = false;
    int status = 0;
    std::vector<std::byte> payload(size);
    std::uint64_t received = 0;
    auto all_back = [&] {
        received = 0;
        for (const unsigned e : echoes) received += e > 0;
        return received == count;
    };
    auto finish = [&](int exit_status) {
        status = exit_status;
        client.release([&](const std::string& error) {
            std::printf("release: %s\n", error.empty() ? "ok" : error.c_str());
            done = true;
        });
    };
    auto report_echoes = [&] {
        std::uint64_t duplicated = 0;
        for (const unsigned e : echoes) duplicated += e > 1 ? e - 1 : 0;
        all_back();
        std::printf("echo: sent %" PRIu64 " received %" PRIu64 " lost %" PRIu64
                    " duplicated %" PRIu64 " corrupted %" PRIu64 " via %s\n",
                    sent, received, count - received, duplicated, corrupted,
                    send_indications ? "send_indications" : "channel_data");
        finish(received == count && duplicated == 0 && corrupted == 0 ? 0 : 1);
    };
    const punch::Time interval = std::chrono::microseconds(1'000'000 / rate);
    // Every echo back, or two seconds after the last send: judged.
    punch::Time deadline{0};
    std::function<void()> wait_echoes = [&] {
        if (all_back() || loop.now() >= deadline) {
            report_echoes();
            return;
        }
        loop.after(std::chrono::milliseconds(10), wait_echoes);
    };
    std::function<void()> send_next = [&] {
        if (sent < count) {
            fill(payload, sent);
            if (!client.send(peer, payload)) std::printf("send %" PRIu64 " refused\n", sent);
            ++sent;
            loop.after(interval, send_next);
            return;
        }
        deadline = loop.now() + std::chrono::seconds(2);
        wait_echoes();
    };
    client.allocate([&](const punch::TurnAllocation& a) {
        if (a.status != punch::TransactionStatus::success) {
            std::printf("allocate: %s %u %s\n", std::string(punch::to_string(a.status)).c_str(),
                        a.error_code, a.error_reason.c_str());
            status = 1;
            done = true;
            return;
        }
        std::printf("allocate: success relayed %s mapped %s lifetime %lld s %.1f ms key %s\n",
                    text(a.relayed).c_str(), text(a.mapped).c_str(),
                    static_cast<long long>(a.lifetime.count()),
                    static_cast<double>(a.elapsed.count()) / 1000.0,
                    client.password_algorithm() == stun::PasswordAlgorithm::sha256 ? "sha256"
                                                                                    : "md5");
        client.add_peer(peer, [&](const std::string& error) {
            if (!error.empty()) {
                std::printf("peer %s: %s\n", text(peer).c_str(), error.c_str());
                finish(1);
                return;
            }
            const auto channel = client.channel_of(peer);
            std::printf("peer %s: ready channel 0x%04x\n", text(peer).c_str(), channel);
            send_next();
        });
    });
    // Every step is bounded by a timer, so run_until returns; the guard is for a bug.
    loop.run_until([&] { return done; });
    std::string drops;
    for (std::size_t i = 0; i < static_cast<std::size_t>(punch::TurnDrop::count); ++i) {
        const auto why = static_cast<punch::TurnDrop>(i);
        if (client.drops(why) != 0)
            drops += " " + std::string(punch::to_string(why)) + " " +
                     std::to_string(client.drops(why));
    }
    std::printf("drops:%s\n", drops.empty() ? " none" : drops.c_str());
    std::printf("counters: requests %" PRIu64 " retransmissions %" PRIu64
                " stale_nonce_retries %" PRIu64 " stray %" PRIu64 "\n",
                client.counters().requests_sent, client.counters().retransmissions,
                client.counters().stale_nonce_retries, stray);
    if (!done) {
        std::printf("stopped: no timer left before the end (a bug)\n");
        return 1;
    }
    return status;
}
