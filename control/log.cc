// The control thread's log (control/log.h).
#include "control/log.h"

#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace control {
namespace {

struct LogState {
    engine::LogConfig config;
    std::string ident = "punchlined";
    bool syslog_open = false;
    std::function<void(engine::LogLevel, std::string_view)> sink;
    std::function<std::uint64_t()> clock_ms;
    // The rate limit: lines below error in the current one-second window.
    std::uint64_t window_start_ms = 0;
    unsigned lines_in_window = 0;
    std::uint64_t suppressed = 0;
};

LogState& state() {
    static LogState instance;
    return instance;
}

std::uint64_t monotonic_ms() noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000 +
           static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
}

int syslog_priority(engine::LogLevel level) noexcept {
    switch (level) {
        case engine::LogLevel::error: return LOG_ERR;
        case engine::LogLevel::warn: return LOG_WARNING;
        case engine::LogLevel::info: return LOG_INFO;
        case engine::LogLevel::debug: return LOG_DEBUG;
    }
    return LOG_INFO;
}

std::string prefix(const LogState& s, engine::LogLevel level) {
    switch (level) {
        case engine::LogLevel::error: return s.ident + ": error: ";
        case engine::LogLevel::warn: return s.ident + ": warning: ";
        case engine::LogLevel::info: return s.ident + ": ";
        case engine::LogLevel::debug: return s.ident + ": debug: ";
    }
    return s.ident + ": ";
}

void write_line(LogState& s, engine::LogLevel level, std::string_view message) noexcept {
    try {
        std::string line(prefix(s, level));
        line.append(message);
        if (s.sink) {
            s.sink(level, line);
            return;
        }
        if (s.config.target == engine::LogTarget::syslog) {
            const std::string text(message);
            ::syslog(syslog_priority(level), "%s", text.c_str());
            return;
        }
        line.push_back('\n');
        // One write for the whole line; a short write (a pipe nearly full) is finished.
        std::size_t written = 0;
        while (written < line.size()) {
            const ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
            if (n > 0) {
                written += static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                return;  // stderr closed or failing: nothing better to do with a log line
            }
        }
    } catch (...) {  // std::bad_alloc: the line is lost, the engine stays
    }
}

}  // namespace

void configure_log(const engine::LogConfig& config) {
    LogState& s = state();
    s.config = config;
    if (config.target == engine::LogTarget::syslog && !s.syslog_open) {
        // LOG_NDELAY: connect now, before the workers start and while /dev/log is reachable.
        // openlog keeps the pointer: the ident string lives in the state, never changed after.
        ::openlog(s.ident.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
        s.syslog_open = true;
    }
}

bool log_enabled(engine::LogLevel level) noexcept {
    return static_cast<unsigned>(level) <= static_cast<unsigned>(state().config.level);
}

void log(engine::LogLevel level, std::string_view message) noexcept {
    if (!log_enabled(level)) return;
    LogState& s = state();
    if (level != engine::LogLevel::error) {
        const std::uint64_t now = s.clock_ms ? s.clock_ms() : monotonic_ms();
        if (now >= s.window_start_ms + 1000) {
            s.window_start_ms = now;
            s.lines_in_window = 0;
        }
        if (s.lines_in_window >= max_log_lines_per_second) {
            ++s.suppressed;
            return;
        }
        ++s.lines_in_window;
    }
    if (s.suppressed != 0) {
        const std::uint64_t suppressed = s.suppressed;
        s.suppressed = 0;
        try {
            write_line(s, engine::LogLevel::warn,
                       std::to_string(suppressed) + " log line(s) suppressed: more than " +
                           std::to_string(max_log_lines_per_second) + " a second");
        } catch (...) {
        }
    }
    write_line(s, level, message);
}

void set_log_ident(std::string_view ident) { state().ident = ident; }

void set_log_sink(std::function<void(engine::LogLevel, std::string_view)> sink,
                  std::function<std::uint64_t()> clock_ms) {
    LogState& s = state();
    s.sink = std::move(sink);
    s.clock_ms = std::move(clock_ms);
    s.window_start_ms = 0;
    s.lines_in_window = 0;
    s.suppressed = 0;
}

}  // namespace control
