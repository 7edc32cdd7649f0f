// libFuzzer target: punchcoord's protocol (control/coordinator.h), the lines a client may send.
// Seeds: tests/fuzz/corpus/coordinator/ (tests/fuzz/make_corpus.py), one request per line.
//
// The input is split at '\n' into lines; each line's first byte picks what happens: which of
// three connections sends the rest of the line, or (rarely) a connection closing and
// reopening, or time passing by a few seconds with the coordinator's timers run. Rooms of
// three, small limits, so that joins, peers, leaves, limits and expiry are reached quickly.
//
// Besides "no sanitizer report", the target traps (__builtin_trap) when:
//   1. a line from an open connection does not get exactly one reply, to that connection, or
//      a blank line gets one;
//   2. anything the coordinator sends is not one line of valid JSON (one '\n', at the end);
//   3. a reply lacks "ok", a refusal lacks an error code from COORD_ERROR_CODES, or an event
//      carries an "id";
//   4. the coordinator sends to a connection that is not open, or counts rooms or nodes that
//      no open connection could hold.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/coordinator.h"

namespace {

void check(bool invariant) {
    if (!invariant) __builtin_trap();
}

constexpr control::ConnectionId connection_count = 3;

control::CoordinatorConfig fuzz_config() {
    control::CoordinatorConfig config;
    config.stun_servers = {"203.0.113.2:3478"};
    config.relay_servers = {"203.0.113.4:3478"};
    config.rest_secret = "fuzz";
    config.sfu.token_secret = "fuzz-sfu-secret-16";
    config.sfu.max_candidates = 2;
    config.node_ttl_ms = 2000;
    config.idle_timeout_ms = 5000;
    control::CoordLimits& limits = config.limits;
    limits.max_rooms = 4;
    limits.max_members_per_room = 3;
    limits.max_rooms_per_connection = 2;
    limits.max_candidates_per_member = 4;
    limits.max_reports = 8;
    limits.max_reports_per_connection = 4;
    limits.max_nodes = 2;
    limits.max_line_bytes = 4096;
    limits.max_signal_bytes = 512;
    return config;
}

// A counter in place of a random generator: the run is reproducible from its input alone.
bool counting_random(std::span<std::byte> out) {
    static std::uint8_t next = 0;
    for (std::byte& b : out) b = static_cast<std::byte>(next++);
    return true;
}

bool known_code(const std::string& code) {
    for (const auto& info : control::coord_error_codes)
        if (info.name == code) return true;
    return false;
}

// Checks every message of `effects`; returns how many replies went to `from`.
std::size_t check_effects(const control::Effects& effects, control::ConnectionId from,
                          const std::array<bool, connection_count + 1>& open) {
    std::size_t replies = 0;
    for (const auto& message : effects.messages) {
        check(message.to >= 1 && message.to <= connection_count && open[message.to]);
        check(!message.line.empty() && message.line.back() == '\n' &&
              message.line.find('\n') == message.line.size() - 1);
        const auto parsed = nlohmann::json::parse(message.line, nullptr, false);
        check(!parsed.is_discarded() && parsed.is_object());
        if (parsed.contains("event")) {
            check(!parsed.contains("id"));
            continue;
        }
        check(parsed.contains("ok") && parsed["ok"].is_boolean());
        if (!parsed["ok"].get<bool>()) {
            check(parsed.contains("error") && parsed["error"].is_object());
            const auto& code = parsed["error"]["code"];
            check(code.is_string() && known_code(code.get<std::string>()));
        }
        if (message.to == from) ++replies;
    }
    return replies;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    control::Coordinator coordinator(fuzz_config(), counting_random);
    std::array<bool, connection_count + 1> open{};
    control::CoordTime now{1000, 1'800'000'000'000};
    for (control::ConnectionId id = 1; id <= connection_count; ++id) {
        control::Effects effects;
        check(coordinator.open(id, "198.51.100.7", now, effects));
        open[id] = true;
    }
    std::string_view input(reinterpret_cast<const char*>(data), size);
    while (!input.empty()) {
        const std::size_t end = input.find('\n');
        std::string_view line = input.substr(0, end);
        input = end == std::string_view::npos ? std::string_view{} : input.substr(end + 1);
        if (line.empty()) continue;
        const auto selector = static_cast<std::uint8_t>(line.front());
        line.remove_prefix(1);
        control::Effects effects;
        if (selector == 0xFE) {  // time passes; idle connections and silent nodes go
            now.monotonic_ms += 1000 + line.size() * 500;
            now.unix_ms += 1000 + line.size() * 500;
            coordinator.tick(now, effects);
            check_effects(effects, 0, open);
            for (const control::ConnectionId id : effects.close) {
                control::Effects closed;
                coordinator.closed(id, now, closed);
                open[id] = false;
                check_effects(closed, 0, open);
            }
            continue;
        }
        const control::ConnectionId id = selector % connection_count + 1;
        if (selector == 0xFF || !open[id]) {  // close it, or reopen a closed one
            if (open[id]) {
                open[id] = false;
                coordinator.closed(id, now, effects);
                check_effects(effects, 0, open);
            } else {
                check(coordinator.open(id, "198.51.100.7", now, effects));
                open[id] = true;
            }
            continue;
        }
        coordinator.handle_line(id, line, now, effects);
        const std::size_t replies = check_effects(effects, id, open);
        std::string_view trimmed = line;
        if (!trimmed.empty() && trimmed.back() == '\r') trimmed.remove_suffix(1);
        const bool blank = trimmed.find_first_not_of(" \t") == std::string_view::npos;
        check(replies == (blank ? 0u : 1u));
    }
    std::size_t still_open = 0;
    for (const bool o : open) still_open += o ? 1 : 0;
    check(coordinator.connection_count() == still_open);
    check(coordinator.room_count() <= still_open * 2);  // max_rooms_per_connection
    check(coordinator.nodes().size() <= still_open);
    return 0;
}
