// punchcoord's configuration (control/coord_config.h). Start-up code: exceptions are fine
// here (style rule 12).
#include "control/coord_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <initializer_list>
#include <system_error>
#include <utility>

#include <toml++/toml.h>

#include "stun/address.h"

namespace control {
namespace {

using engine::ConfigError;

[[noreturn]] void fail(const std::string& key, unsigned line, const std::string& what) {
    throw ConfigError(key, line, what);
}

unsigned line_of(const toml::node& node) { return node.source().begin.line; }

std::string got(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string: {
            const std::string& text = node.as_string()->get();
            return ", got \"" + text.substr(0, 64) + (text.size() > 64 ? "\"..." : "\"");
        }
        case toml::node_type::integer: return ", got " + std::to_string(node.as_integer()->get());
        case toml::node_type::boolean:
            return node.as_boolean()->get() ? ", got true" : ", got false";
        case toml::node_type::table: return ", got a table";
        case toml::node_type::array: return ", got an array";
        default: return ", got a value of another type";
    }
}

std::string join(std::initializer_list<std::string_view> words) {
    std::string out;
    for (const std::string_view word : words) {
        if (!out.empty()) out += ", ";
        out += word;
    }
    return out;
}

void reject_unknown_keys(const toml::table& table, const std::string& prefix,
                         std::initializer_list<std::string_view> known) {
    const toml::key* first_unknown = nullptr;
    for (const auto& [key, node] : table) {
        if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
        if (first_unknown == nullptr ||
            key.source().begin.line < first_unknown->source().begin.line)
            first_unknown = &key;
    }
    if (first_unknown != nullptr)
        fail(prefix + std::string(first_unknown->str()), first_unknown->source().begin.line,
             "unknown key; known keys here: " + join(known));
}

const toml::table* optional_table(const toml::table& root, std::string_view name) {
    const toml::node* node = root.get(name);
    if (node == nullptr) return nullptr;
    if (node->as_table() == nullptr)
        fail(std::string(name), line_of(*node),
             "expected a table [" + std::string(name) + "]" + got(*node));
    return node->as_table();
}

std::uint64_t read_integer(const toml::node& node, const std::string& key, std::int64_t min,
                           std::int64_t max, std::string_view note = {}) {
    const toml::value<std::int64_t>* value = node.as_integer();
    if (value == nullptr || value->get() < min || value->get() > max)
        fail(key, line_of(node),
             "expected an integer " + std::to_string(min) + ".." + std::to_string(max) +
                 std::string(note) + got(node));
    return static_cast<std::uint64_t>(value->get());
}

const std::string& read_string(const toml::node& node, const std::string& key,
                               std::string_view expected) {
    if (node.as_string() == nullptr) fail(key, line_of(node), std::string(expected) + got(node));
    return node.as_string()->get();
}

// "host:port" server lists: what clients are told; a name is fine (they resolve it).
std::vector<std::string> read_servers(const toml::node& node, const std::string& key) {
    const std::string expected =
        R"(expected an array of "host:port" strings, e.g. ["203.0.113.2:3478"])";
    const toml::array* array = node.as_array();
    if (array == nullptr) fail(key, line_of(node), expected + got(node));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string element_key = key + "[" + std::to_string(i) + "]";
        const std::string& text = read_string(element, element_key, expected);
        const std::size_t colon = text.rfind(':');
        unsigned port = 0;
        if (colon == std::string::npos || colon == 0 ||
            std::from_chars(text.data() + colon + 1, text.data() + text.size(), port).ec !=
                std::errc{} ||
            port == 0 || port > 65535)
            fail(element_key, line_of(element),
                 R"(expected "host:port" with a port 1..65535, e.g. "203.0.113.2:3478")" +
                     got(element));
        out.push_back(text);
    }
    return out;
}

std::string read_file(const std::string& path, const std::string& key) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    auto cannot = [&](int error) {
        fail(key, 0,
             "cannot read " + path + ": " +
                 std::error_code(error, std::generic_category()).message());
    };
    if (fd < 0) cannot(errno);
    std::string text;
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            const int error = errno;
            ::close(fd);
            cannot(error);
        }
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > 1024 * 1024) {
            ::close(fd);
            fail(key, 0, path + " is larger than 1 MiB; expected a small file");
        }
    }
    ::close(fd);
    return text;
}

void read_limits(const toml::table& root, CoordLimits& limits) {
    const toml::table* table = optional_table(root, "limits");
    if (table == nullptr) return;
    reject_unknown_keys(*table, "limits.",
                        {"max_connections", "max_connections_per_address", "max_rooms",
                         "max_members_per_room", "max_rooms_per_connection", "max_line_bytes",
                         "max_candidates_per_member", "max_signal_bytes", "max_reports",
                         "max_reports_per_connection", "max_nodes", "max_json_depth",
                         "max_output_bytes", "max_sfu_requests_per_connection"});
    auto read = [&](std::string_view name, std::size_t& value, std::int64_t min,
                    std::int64_t max) {
        if (const toml::node* node = table->get(name))
            value = read_integer(*node, "limits." + std::string(name), min, max);
    };
    read("max_connections", limits.max_connections, 1, 1000000);
    read("max_connections_per_address", limits.max_connections_per_address, 1, 1000000);
    read("max_rooms", limits.max_rooms, 1, 10000000);
    read("max_members_per_room", limits.max_members_per_room, 2, 1000);
    read("max_rooms_per_connection", limits.max_rooms_per_connection, 1, 1000);
    read("max_line_bytes", limits.max_line_bytes, 1024, 1024 * 1024);
    read("max_candidates_per_member", limits.max_candidates_per_member, 1, 256);
    read("max_signal_bytes", limits.max_signal_bytes, 64, 512 * 1024);
    read("max_reports", limits.max_reports, 0, 10000000);
    read("max_reports_per_connection", limits.max_reports_per_connection, 1, 10000000);
    read("max_nodes", limits.max_nodes, 1, 1000000);
    read("max_json_depth", limits.max_json_depth, 4, 256);
    read("max_output_bytes", limits.max_output_bytes, 64 * 1024, 1024 * 1024 * 1024);
    read("max_sfu_requests_per_connection", limits.max_sfu_requests_per_connection, 1, 10000000);
}

// [sfu]: the SFU rung's tokens and selection (docs/sfu.md, "Configuration").
void read_sfu(const toml::table& root, CoordSfuConfig& sfu) {
    const toml::table* table = optional_table(root, "sfu");
    if (table == nullptr) return;
    reject_unknown_keys(*table, "sfu.",
                        {"token_secret", "token_secret_file", "token_ttl_s", "race", "full_load",
                         "max_candidates"});
    const toml::node* inline_secret = table->get("token_secret");
    const toml::node* file = table->get("token_secret_file");
    if (inline_secret != nullptr && file != nullptr)
        fail("sfu.token_secret_file", line_of(*file),
             "expected token_secret or token_secret_file, not both");
    // As the nodes' sfu.token_secrets and the relays' rest secrets: 16 bytes at least, so
    // that the HMAC key is not guessable. The value stays out of messages: they end up in
    // logs.
    auto check_length = [](const std::string& secret, const std::string& key, unsigned line) {
        if (secret.size() < 16)
            fail(key, line,
                 "expected a secret of at least 16 bytes (the nodes' sfu.token_secrets entry), "
                 "got " + std::to_string(secret.size()) + " bytes");
    };
    if (inline_secret != nullptr) {
        if (inline_secret->as_string() == nullptr)
            fail("sfu.token_secret", line_of(*inline_secret),
                 "expected a string of at least 16 bytes (the nodes' sfu.token_secrets entry)" +
                     got(*inline_secret));
        check_length(inline_secret->as_string()->get(), "sfu.token_secret",
                     line_of(*inline_secret));
        sfu.token_secret = inline_secret->as_string()->get();
    }
    if (file != nullptr) {
        const std::string secret = read_secret_file(
            read_string(*file, "sfu.token_secret_file", "expected a file's path"),
            "sfu.token_secret_file");
        check_length(secret, "sfu.token_secret_file", line_of(*file));
        sfu.token_secret = secret;
    }
    if (const toml::node* ttl = table->get("token_ttl_s"))
        sfu.token_ttl_s = read_integer(*ttl, "sfu.token_ttl_s", 60, 7 * 86400, " (seconds)");
    if (const toml::node* race = table->get("race"))
        sfu.race = read_integer(*race, "sfu.race", 1, 64, " (candidates raced at once)");
    if (const toml::node* full = table->get("full_load"))
        sfu.full_load = static_cast<std::uint32_t>(
            read_integer(*full, "sfu.full_load", 1, 1000000, " (per-mille: 1000 is full)"));
    if (const toml::node* max = table->get("max_candidates"))
        sfu.max_candidates =
            read_integer(*max, "sfu.max_candidates", 1, 64, " (nodes per session)");
}

void read_log(const toml::table& root, engine::LogConfig& log) {
    const toml::table* table = optional_table(root, "log");
    if (table == nullptr) return;
    reject_unknown_keys(*table, "log.", {"level", "target"});
    if (const toml::node* level = table->get("level")) {
        const std::string expected = "expected one of error, warn, info, debug";
        const std::string& text = read_string(*level, "log.level", expected);
        if (text == "error") {
            log.level = engine::LogLevel::error;
        } else if (text == "warn") {
            log.level = engine::LogLevel::warn;
        } else if (text == "info") {
            log.level = engine::LogLevel::info;
        } else if (text == "debug") {
            log.level = engine::LogLevel::debug;
        } else {
            fail("log.level", line_of(*level), expected + got(*level));
        }
    }
    if (const toml::node* target = table->get("target")) {
        const std::string expected = "expected one of stderr, syslog";
        const std::string& text = read_string(*target, "log.target", expected);
        if (text == "stderr") {
            log.target = engine::LogTarget::stderr_stream;
        } else if (text == "syslog") {
            log.target = engine::LogTarget::syslog;
        } else {
            fail("log.target", line_of(*target), expected + got(*target));
        }
    }
}

void parse_unnamed(std::string_view toml_text, std::string_view source_name,
                   CoordConfig& config) {
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& error) {
        fail("", error.source().begin.line, std::string(error.description()));
    }
    reject_unknown_keys(root, "",
                        {"listen", "stun", "relay", "idle_timeout_ms", "turn", "nodes", "sfu",
                         "limits", "log"});
    CoordinatorConfig& coordinator = config.coordinator;
    if (const toml::node* listen = root.get("listen")) {
        const std::string expected =
            R"(expected "ip:port" with a numeric IP, e.g. "0.0.0.0:7000" or "[::]:7000")";
        const std::string& text = read_string(*listen, "listen", expected);
        if (!valid_listen_address(text)) fail("listen", line_of(*listen), expected + got(*listen));
        config.listen = text;
    }
    if (const toml::node* stun = root.get("stun"))
        coordinator.stun_servers = read_servers(*stun, "stun");
    if (const toml::node* relay = root.get("relay"))
        coordinator.relay_servers = read_servers(*relay, "relay");
    if (const toml::node* idle = root.get("idle_timeout_ms"))
        coordinator.idle_timeout_ms =
            read_integer(*idle, "idle_timeout_ms", 1000, 3600000, " (milliseconds)");
    if (const toml::table* turn = optional_table(root, "turn")) {
        reject_unknown_keys(*turn, "turn.", {"rest_secret", "rest_secret_file", "rest_ttl_s"});
        const toml::node* inline_secret = turn->get("rest_secret");
        const toml::node* file = turn->get("rest_secret_file");
        if (inline_secret != nullptr && file != nullptr)
            fail("turn.rest_secret_file", line_of(*file),
                 "expected rest_secret or rest_secret_file, not both");
        if (inline_secret != nullptr) {
            // The value stays out of messages: they end up in logs.
            if (inline_secret->as_string() == nullptr ||
                inline_secret->as_string()->get().empty())
                fail("turn.rest_secret", line_of(*inline_secret),
                     "expected a non-empty string (the relays' relay.rest_secrets entry)");
            coordinator.rest_secret = inline_secret->as_string()->get();
        }
        if (file != nullptr)
            coordinator.rest_secret = read_secret_file(
                read_string(*file, "turn.rest_secret_file", "expected a file's path"),
                "turn.rest_secret_file");
        if (const toml::node* ttl = turn->get("rest_ttl_s"))
            coordinator.rest_ttl_s =
                read_integer(*ttl, "turn.rest_ttl_s", 60, 7 * 86400, " (seconds)");
    }
    if (const toml::table* nodes = optional_table(root, "nodes")) {
        reject_unknown_keys(*nodes, "nodes.", {"ttl_ms", "secret"});
        if (const toml::node* ttl = nodes->get("ttl_ms"))
            coordinator.node_ttl_ms =
                read_integer(*ttl, "nodes.ttl_ms", 1000, 3600000, " (milliseconds)");
        if (const toml::node* secret = nodes->get("secret"))
            coordinator.node_secret =
                read_string(*secret, "nodes.secret", "expected a string (empty: none)");
    }
    read_sfu(root, coordinator.sfu);
    read_limits(root, coordinator.limits);
    read_log(root, config.log);
}

}  // namespace

bool valid_listen_address(std::string_view text) noexcept {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find("]:");
        if (close == std::string_view::npos) return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const std::size_t colon = text.find(':');
        if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos)
            return false;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || error != std::errc{} || end != port.data() + port.size() || value > 65535)
        return false;
    stun::Address address;
    return stun::Address::from_string(host, 0, address);
}

std::string read_secret_file(const std::string& path, const std::string& key) {
    std::string text = read_file(path, key);
    text = text.substr(0, text.find('\n'));
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
        text.pop_back();
    if (text.empty())
        fail(key, 0, path + ": expected the shared secret on its first line, found it empty");
    return text;
}

void parse_coord_config(std::string_view toml_text, std::string_view source_name,
                        CoordConfig& config) {
    try {
        parse_unnamed(toml_text, source_name, config);
    } catch (const ConfigError& error) {
        throw error.in(std::string(source_name));
    }
}

void load_coord_config(const std::string& path, CoordConfig& config) {
    parse_coord_config(read_file(path, "file"), path, config);
}

void validate_coord_config(const CoordConfig& config) {
    const CoordLimits& limits = config.coordinator.limits;
    // A signal's data travels inside a line with its envelope: it must fit.
    if (limits.max_signal_bytes + 512 > limits.max_line_bytes)
        fail("limits.max_signal_bytes", 0,
             "expected at most limits.max_line_bytes - 512 (" +
                 std::to_string(limits.max_line_bytes - 512) + "), got " +
                 std::to_string(limits.max_signal_bytes));
    if (limits.max_connections_per_address > limits.max_connections)
        fail("limits.max_connections_per_address", 0,
             "expected at most limits.max_connections (" +
                 std::to_string(limits.max_connections) + "), got " +
                 std::to_string(limits.max_connections_per_address));
    const CoordSfuConfig& sfu = config.coordinator.sfu;
    if (sfu.race > sfu.max_candidates)
        fail("sfu.race", 0,
             "expected at most sfu.max_candidates (" + std::to_string(sfu.max_candidates) +
                 "): a session hands out no more nodes to race, got " + std::to_string(sfu.race));
    if (!config.coordinator.rest_secret.empty() && config.coordinator.relay_servers.empty())
        fail("relay", 0,
             "expected at least one relay server: a TURN REST secret is configured, but join "
             "would hand out credentials for no server (--relay HOST:PORT)");
}

}  // namespace control
