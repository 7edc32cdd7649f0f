// The command registry (control/registry.h): request validation and dispatch.
#include "control/registry.h"

#include <algorithm>
#include <exception>
#include <utility>

namespace control {
namespace {

bool valid_path(std::string_view path) {
    if (path.size() < 2 || path.front() != '/' || path.back() == '/') return false;
    char previous = 0;
    for (const char c : path) {
        const bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!word && c != '/') return false;
        if (c == '/' && previous == '/') return false;
        previous = c;
    }
    return true;
}

bool valid_argument_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(),
                                        [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

std::string_view type_name(ArgumentType type) {
    switch (type) {
        case ArgumentType::string:
            return "string";
        case ArgumentType::integer:
            return "integer";
        case ArgumentType::boolean:
            return "boolean";
    }
    return "?";
}

// What the request held, as it was written (cut short: the message is for a terminal). An array
// or an object is only named: dumping one nested thousands deep would recurse as deep.
std::string shown(const nlohmann::json& value) {
    if (value.is_array())
        return value.empty() ? "[]"
                             : "an array of " + std::to_string(value.size()) +
                                   (value.size() == 1 ? " element" : " elements");
    if (value.is_object()) return value.empty() ? "{}" : "an object";
    std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > 64) text = text.substr(0, 64) + "...";
    return text;
}

std::string expectation(const ArgumentSpec& argument) {
    switch (argument.type) {
        case ArgumentType::integer:
            return "an integer " + std::to_string(argument.min) + ".." +
                   std::to_string(argument.max);
        case ArgumentType::boolean:
            return "true or false";
        case ArgumentType::string:
            if (argument.max == std::numeric_limits<std::int64_t>::max()) return "a string";
            return "a string of " + std::to_string(argument.min) + ".." +
                   std::to_string(argument.max) + " bytes";
    }
    return "?";
}

// How deep arrays and objects nest in `line`, outside strings, up to `limit` + 1: parsing,
// copying and destroying nlohmann::json recurse per level, so a line of 64 KiB of '[' would
// overflow the control thread's stack. Counted before anything parses the line.
std::size_t nesting(std::string_view line, std::size_t limit) {
    std::size_t depth = 0;
    std::size_t deepest = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : line) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

// Levenshtein distance, for "did you mean": paths are short.
std::size_t distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = up;
        }
    }
    return row[b.size()];
}

}  // namespace

std::optional<std::string> Arguments::string(std::string_view name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->get<std::string>();
}

std::optional<std::int64_t> Arguments::integer(std::string_view name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->get<std::int64_t>();
}

std::optional<bool> Arguments::boolean(std::string_view name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->get<bool>();
}

std::string punchctl_option(const ArgumentSpec& argument) {
    std::string option = "--" + argument.name;
    std::replace(option.begin(), option.end(), '_', '-');
    if (argument.type != ArgumentType::boolean)
        option += " " + (argument.example.empty() ? std::string("VALUE") : argument.example);
    return option;
}

Registry::Registry() {
    add({"/help",
         "list the commands, or describe one and its arguments",
         {{"command", ArgumentType::string, "the path of the command to describe", "/stats", false,
           1, 256}},
         [this](const Arguments& arguments) { return help(arguments); }});
}

void Registry::add(Command command) {
    if (!valid_path(command.path))
        throw std::invalid_argument("command path \"" + command.path +
                                    "\": expected /segment[/segment...] of [a-z0-9_-]");
    if (commands_.contains(command.path))
        throw std::invalid_argument("command path \"" + command.path + "\" registered twice");
    if (!command.handler)
        throw std::invalid_argument("command " + command.path + " has no handler");
    for (std::size_t i = 0; i < command.arguments.size(); ++i) {
        const ArgumentSpec& argument = command.arguments[i];
        if (!valid_argument_name(argument.name))
            throw std::invalid_argument("command " + command.path + ": argument name \"" +
                                        argument.name + "\" is not [a-z_]+");
        for (std::size_t j = 0; j < i; ++j)
            if (command.arguments[j].name == argument.name)
                throw std::invalid_argument("command " + command.path + ": argument \"" +
                                            argument.name + "\" declared twice");
        if (argument.min > argument.max)
            throw std::invalid_argument("command " + command.path + ": argument \"" +
                                        argument.name + "\" has min > max");
    }
    std::string path = command.path;
    commands_.emplace(std::move(path), std::move(command));
}

const Command* Registry::find(std::string_view path) const {
    const auto it = commands_.find(path);
    return it == commands_.end() ? nullptr : &it->second;
}

std::string Registry::closest_path(std::string_view path) const {
    std::string best;
    std::size_t best_distance = 3;  // more than 2 edits away is no suggestion
    for (const auto& [candidate, command] : commands_) {
        const std::size_t d = distance(path, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    return best;
}

Arguments Registry::validate(const Command& command, const nlohmann::json& args) const {
    const std::string usage = punchctl_command(command.path);
    for (const auto& item : args.items()) {
        // Not a structured binding: clang 14 cannot capture one in the lambda below.
        const std::string& name = item.key();
        const nlohmann::json& value = item.value();
        const auto spec = std::find_if(command.arguments.begin(), command.arguments.end(),
                                       [&](const ArgumentSpec& a) { return a.name == name; });
        if (spec == command.arguments.end()) {
            std::string known;
            for (const ArgumentSpec& a : command.arguments)
                known += (known.empty() ? "" : ", ") + a.name;
            throw CommandError(ErrorCode::unknown_argument,
                               command.path + " takes no argument \"" + name + "\"; " +
                                   (known.empty() ? "it takes none" : "it takes: " + known),
                               "punchctl help" + punchctl_command(command.path).substr(8));
        }
        bool ok = false;
        switch (spec->type) {
            case ArgumentType::integer:
                // A JSON number with a fraction or out of int64 is not an integer argument.
                ok = value.is_number_integer() &&
                     (value.is_number_unsigned()
                          ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(spec->max)
                          : value.get<std::int64_t>() >= spec->min &&
                                value.get<std::int64_t>() <= spec->max);
                if (ok && value.is_number_unsigned())
                    ok = static_cast<std::int64_t>(value.get<std::uint64_t>()) >= spec->min;
                break;
            case ArgumentType::boolean:
                ok = value.is_boolean();
                break;
            case ArgumentType::string:
                ok = value.is_string() &&
                     static_cast<std::int64_t>(value.get_ref<const std::string&>().size()) >=
                         spec->min &&
                     static_cast<std::int64_t>(value.get_ref<const std::string&>().size()) <=
                         spec->max;
                break;
        }
        if (!ok)
            throw CommandError(ErrorCode::bad_argument,
                               "argument \"" + name + "\" of " + command.path + ": expected " +
                                   expectation(*spec) + ", got " + shown(value),
                               usage + " " + punchctl_option(*spec));
    }
    for (const ArgumentSpec& spec : command.arguments)
        if (spec.required && !args.contains(spec.name))
            throw CommandError(
                ErrorCode::missing_argument,
                command.path + " needs argument \"" + spec.name + "\" (" + spec.help + ")",
                usage + " " + punchctl_option(spec));
    return Arguments(args);
}

nlohmann::json Registry::handle_line(std::string_view line) const {
    nlohmann::json id = nullptr;
    try {
        // A request is an object of arguments that are scalars: a few levels are plenty.
        constexpr std::size_t max_nesting = 16;
        if (nesting(line, max_nesting) > max_nesting)
            return error_reply(id, ErrorCode::malformed_request,
                               "arrays and objects nested deeper than " +
                                   std::to_string(max_nesting) +
                                   R"( levels; a request is {"command": "/path", "args": {...}})");
        // allow_exceptions = false: a parse error is a discarded value, not an exception.
        const nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
        if (request.is_discarded())
            return error_reply(id, ErrorCode::malformed_request,
                               "not a JSON object: expected one per line, e.g. "
                               R"({"command": "/status"})");
        if (!request.is_object())
            return error_reply(id, ErrorCode::malformed_request,
                               "expected a JSON object, got " + shown(request) +
                                   R"(; e.g. {"command": "/status"})");
        if (const auto it = request.find("id"); it != request.end()) id = *it;
        for (const auto& [key, value] : request.items())
            if (key != "command" && key != "args" && key != "id")
                return error_reply(id, ErrorCode::malformed_request,
                                   "unknown request key \"" + key +
                                       "\"; a request has \"command\", \"args\" and \"id\"");
        const auto command_it = request.find("command");
        if (command_it == request.end() || !command_it->is_string())
            return error_reply(
                id, ErrorCode::malformed_request,
                std::string(command_it == request.end() ? "no \"command\""
                                                        : "\"command\" is not a string") +
                    R"(; e.g. {"command": "/status"})");
        const std::string& path = command_it->get_ref<const std::string&>();
        const Command* command = find(path);
        if (command == nullptr) {
            const std::string suggestion = closest_path(path);
            return error_reply(
                id, ErrorCode::unknown_command,
                "unknown command " + shown(*command_it) +
                    (suggestion.empty() ? "" : " (did you mean " + suggestion + "?)") +
                    "; /help lists the commands",
                suggestion.empty() ? "punchctl help" : punchctl_command(suggestion));
        }
        nlohmann::json args = nlohmann::json::object();
        if (const auto it = request.find("args"); it != request.end()) {
            if (!it->is_object())
                return error_reply(id, ErrorCode::malformed_request,
                                   "\"args\" must be an object, got " + shown(*it));
            args = *it;
        }
        const Arguments arguments = validate(*command, args);
        return ok_reply(id, command->handler(arguments));
    } catch (const CommandError& error) {
        return error_reply(id, error.code(), error.what(), error.hint());
    } catch (const std::exception& error) {
        return error_reply(id, ErrorCode::internal_error, error.what());
    }
}

nlohmann::json Registry::help(const Arguments& arguments) const {
    auto describe = [](const Command& command) {
        nlohmann::json args = nlohmann::json::array();
        for (const ArgumentSpec& a : command.arguments) {
            nlohmann::json arg = {{"name", a.name},
                                  {"type", std::string(type_name(a.type))},
                                  {"help", a.help},
                                  {"required", a.required},
                                  {"option", punchctl_option(a)}};
            if (a.type == ArgumentType::integer) {
                arg["min"] = a.min;
                arg["max"] = a.max;
            }
            args.push_back(std::move(arg));
        }
        return nlohmann::json{{"path", command.path},
                              {"help", command.help},
                              {"punchctl", punchctl_command(command.path)},
                              {"args", std::move(args)}};
    };
    if (const auto path = arguments.string("command")) {
        const Command* command = find(*path);
        if (command == nullptr) {
            const std::string suggestion = closest_path(*path);
            throw CommandError(
                ErrorCode::bad_argument,
                "argument \"command\" of /help: no command " + shown(*path) +
                    (suggestion.empty() ? "" : " (did you mean " + suggestion + "?)"),
                "punchctl help");
        }
        return {{"commands", nlohmann::json::array({describe(*command)})}};
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [path, command] : commands_) list.push_back(describe(command));
    return {{"commands", std::move(list)}};
}

}  // namespace control
