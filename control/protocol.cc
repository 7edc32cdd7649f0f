// The JSON-line protocol's replies (control/protocol.h).
#include "control/protocol.h"

#include <utility>

namespace control {

bool error_code_from_string(std::string_view name, ErrorCode& out) noexcept {
    for (std::size_t i = 0; i < error_codes.size(); ++i) {
        if (error_codes[i].name == name) {
            out = static_cast<ErrorCode>(i);
            return true;
        }
    }
    return false;
}

nlohmann::json ok_reply(const nlohmann::json& id, nlohmann::json result) {
    return {{"id", id}, {"ok", true}, {"result", std::move(result)}};
}

nlohmann::json error_reply(const nlohmann::json& id, ErrorCode code, std::string_view message,
                           std::string_view hint) {
    nlohmann::json error = {{"code", std::string(to_string(code))},
                            {"message", std::string(message)}};
    if (!hint.empty()) error["hint"] = std::string(hint);
    return {{"id", id}, {"ok", false}, {"error", std::move(error)}};
}

std::string to_line(const nlohmann::json& reply) {
    // error_handler_t::replace: a username is whatever bytes a client sent in USERNAME; the
    // reply must still be written (and valid JSON).
    std::string line = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    return line;
}

std::string punchctl_command(std::string_view path) {
    std::string out = "punchctl";
    for (const char c : path) {
        if (c == '/') {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace control
