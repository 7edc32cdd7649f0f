// The management socket's commands: paths with help text (design.md §4, as DPDK's telemetry
// names them: "/stats", "/allocations"), each with its arguments declared, so that one
// function validates every request and every error says what to type.
//
// The control thread owns a Registry; the socket server hands it each request line
// (handle_line()) and writes back the reply line. "/help" is built in: it lists the commands,
// or describes one with its arguments. A command's handler receives arguments that are known,
// present when required, of their declared type and inside their range; it throws
// CommandError for what only it can judge (a core that does not exist, an address that does
// not parse). Exceptions are fine here: this is the control thread, not the worker loop
// (style rule 12).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/protocol.h"

namespace control {

enum class ArgumentType : std::uint8_t { string, integer, boolean };

struct ArgumentSpec {
    std::string name;  ///< [a-z_]+; punchctl's option is --name with '_' as '-'
    ArgumentType type = ArgumentType::string;
    std::string help;
    std::string example;  ///< a valid value as punchctl takes it, for error hints
    bool required = false;
    /// integer: the inclusive range; string: the length range in bytes.
    std::int64_t min = 0;
    std::int64_t max = std::numeric_limits<std::int64_t>::max();
};

/// A command's validated arguments: only declared names, each of its type and range.
class Arguments {
public:
    explicit Arguments(nlohmann::json values = nlohmann::json::object())
        : values_(std::move(values)) {}
    [[nodiscard]] bool has(std::string_view name) const { return values_.contains(name); }
    [[nodiscard]] std::optional<std::string> string(std::string_view name) const;
    [[nodiscard]] std::optional<std::int64_t> integer(std::string_view name) const;
    [[nodiscard]] std::optional<bool> boolean(std::string_view name) const;
    [[nodiscard]] const nlohmann::json& json() const noexcept { return values_; }

private:
    nlohmann::json values_;
};

/// What a handler throws for a request it cannot carry out: the code, a message that names
/// the argument or the condition, and a hint, a punchctl command line to type instead (may be
/// empty).
class CommandError : public std::runtime_error {
public:
    CommandError(ErrorCode code, const std::string& message, std::string hint = {})
        : std::runtime_error(message), code_(code), hint_(std::move(hint)) {}
    [[nodiscard]] ErrorCode code() const noexcept { return code_; }
    [[nodiscard]] const std::string& hint() const noexcept { return hint_; }

private:
    ErrorCode code_;
    std::string hint_;
};

using Handler = std::function<nlohmann::json(const Arguments&)>;

struct Command {
    std::string path;  ///< "/name" or "/name/sub": segments of [a-z0-9_-]+
    std::string help;  ///< one line
    std::vector<ArgumentSpec> arguments;
    Handler handler;
};

class Registry {
public:
    /// A registry holding "/help".
    Registry();

    /// Adds `command`. Throws std::invalid_argument for a malformed or duplicate path, an
    /// argument name that is not [a-z_]+ or appears twice, or a missing handler (start-up).
    void add(Command command);

    /// The command at `path`, or null.
    [[nodiscard]] const Command* find(std::string_view path) const;
    /// Commands in path order.
    [[nodiscard]] const std::map<std::string, Command, std::less<>>& commands() const noexcept {
        return commands_;
    }

    /// Parses one request line (without its '\n'), validates it, runs its command and returns
    /// the reply. Never throws: a malformed line, a bad argument, a handler's CommandError or
    /// any other exception all become error replies.
    [[nodiscard]] nlohmann::json handle_line(std::string_view line) const;

    /// Validates `args` (a JSON object) against `command`'s arguments. Throws CommandError:
    /// unknown_argument, missing_argument, bad_argument.
    [[nodiscard]] Arguments validate(const Command& command, const nlohmann::json& args) const;

private:
    [[nodiscard]] nlohmann::json help(const Arguments& arguments) const;
    [[nodiscard]] std::string closest_path(std::string_view path) const;

    std::map<std::string, Command, std::less<>> commands_;
};

/// How an argument is written on punchctl's command line: "--name VALUE" with '_' as '-'
/// ("--name" alone for a boolean).
[[nodiscard]] std::string punchctl_option(const ArgumentSpec& argument);

}  // namespace control
