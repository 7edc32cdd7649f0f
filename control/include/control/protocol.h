// The management socket's wire protocol (design.md §4): one JSON object per line, each way.
//
//   request:  {"command": "/stats", "args": {"window": 5}, "id": 7}
//   reply:    {"id": 7, "ok": true, "result": {...}}
//             {"id": 7, "ok": false, "error": {"code": "bad_argument", "message": "...",
//                                              "hint": "punchctl stats --window 5"}}
//
// "args" and "id" are optional; "id" (any JSON value) is echoed so that a client may pipeline
// requests. Replies come in the order of the requests. A line is at most
// ServerLimits::max_line_bytes long; the reply to one that is not a request is an error with
// a null id, and the connection stays open. All error codes live in one table with help text
// (style rule 6): punchctl maps them to its exit codes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace control {

// X(name, help)
#define CONTROL_ERROR_CODES(X)                                                       \
    X(malformed_request,                                                             \
      "the line is not a JSON object with a string \"command\" (and, if "            \
      "present, an object \"args\")")                                                \
    X(line_too_long, "the line exceeds the engine's limit on a request's length")    \
    X(unknown_command, "no command has this path (\"/help\" lists them)")            \
    X(unknown_argument, "the command takes no argument of this name")                \
    X(missing_argument, "a required argument is absent")                             \
    X(bad_argument, "an argument has the wrong type or is out of its range")         \
    X(not_available, "the command needs a role or feature this engine does not run") \
    X(not_found, "the allocation, user or other object named is not there")          \
    X(permission_denied,                                                             \
      "the peer's credentials are neither root, the engine's user, nor a "           \
      "member of control.group")                                                     \
    X(too_many_clients, "the engine serves as many clients as it allows at once")    \
    X(refused,                                                                       \
      "the engine keeps what runs: the change conflicts with its state (a name "     \
      "taken, the last credential), needs a restart, or the file has an error")      \
    X(internal_error, "the engine failed to carry the command out (a bug: please report it)")

enum class ErrorCode : std::uint8_t {
#define CONTROL_ERROR_ENUMERATOR(name, help) name,
    CONTROL_ERROR_CODES(CONTROL_ERROR_ENUMERATOR)
#undef CONTROL_ERROR_ENUMERATOR
};

struct ErrorInfo {
    std::string_view name;
    std::string_view help;
};

inline constexpr std::array error_codes = {
#define CONTROL_ERROR_INFO(name, help) ErrorInfo{#name, help},
    CONTROL_ERROR_CODES(CONTROL_ERROR_INFO)
#undef CONTROL_ERROR_INFO
};

[[nodiscard]] constexpr std::string_view to_string(ErrorCode code) noexcept {
    return error_codes[static_cast<std::size_t>(code)].name;
}

/// The error code named `name`; false when there is none (a newer engine's code).
[[nodiscard]] bool error_code_from_string(std::string_view name, ErrorCode& out) noexcept;

/// {"id": id, "ok": true, "result": result}
[[nodiscard]] nlohmann::json ok_reply(const nlohmann::json& id, nlohmann::json result);

/// {"id": id, "ok": false, "error": {"code", "message"[, "hint"]}}: `hint` (left out when
/// empty) is what to type instead, as a punchctl command line.
[[nodiscard]] nlohmann::json error_reply(const nlohmann::json& id, ErrorCode code,
                                         std::string_view message, std::string_view hint = {});

/// A reply as one line: compact JSON and '\n'. Strings that are not valid UTF-8 (a
/// username from the wire) are written with U+FFFD in place of the bad bytes, never refused.
[[nodiscard]] std::string to_line(const nlohmann::json& reply);

/// The punchctl command line of a command path: "/stats" → "punchctl stats",
/// "/allocations" → "punchctl allocations" (subcommands are the path's segments).
[[nodiscard]] std::string punchctl_command(std::string_view path);

}  // namespace control
