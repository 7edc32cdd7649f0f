// The control thread's log (design.md §3: a worker never logs): the engine's events with a
// level, to stderr or to syslog(3), as [log] in the configuration says (engine/config.h).
//
// On stderr a line is "punchlined: MESSAGE" at info, "punchlined: LEVEL: MESSAGE" at the
// other levels (error, warning, debug), written with one write(2) so that lines never
// interleave. With syslog, the message alone goes to facility daemon under the ident
// "punchlined" with the pid, at LOG_ERR, LOG_WARNING, LOG_INFO or LOG_DEBUG; syslogd adds the
// time and the host.
//
// What clients can cause (connections refused, requests answered with an error) must not let
// them flood the log or hold the control thread in write(2): lines below error are limited to
// max_lines_per_second; past it they are counted, and the next line that passes is preceded
// by a warning giving how many were suppressed. Errors always pass.
//
// Not thread-safe: the control thread alone logs (and main() before the workers start).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "engine/config.h"

namespace control {

/// Lines below error per second, beyond which they are suppressed (and counted).
inline constexpr unsigned max_log_lines_per_second = 20;

/// The program's name in every line and syslog's ident ("punchlined" unless set; punchcoord
/// sets its own). Before configure_log().
void set_log_ident(std::string_view ident);

/// Applies [log]: the level below which lines are left out, and the target (syslog is
/// opened here, once).
void configure_log(const engine::LogConfig& config);

/// Whether a line at `level` would be written now (to skip building a costly message).
[[nodiscard]] bool log_enabled(engine::LogLevel level) noexcept;

/// Writes `message` at `level`, if the level and the rate allow.
void log(engine::LogLevel level, std::string_view message) noexcept;

inline void log_error(std::string_view message) noexcept {
    log(engine::LogLevel::error, message);
}
inline void log_warn(std::string_view message) noexcept { log(engine::LogLevel::warn, message); }
inline void log_info(std::string_view message) noexcept { log(engine::LogLevel::info, message); }
inline void log_debug(std::string_view message) noexcept {
    log(engine::LogLevel::debug, message);
}

/// For tests: lines go to `sink` (level, the line as stderr would show it, without its line
/// feed) instead of the target, and `clock_ms` replaces CLOCK_MONOTONIC for the rate limit.
/// Empty functions restore both.
void set_log_sink(std::function<void(engine::LogLevel, std::string_view)> sink,
                  std::function<std::uint64_t()> clock_ms);

}  // namespace control
