// `[node]` in punchlined's configuration (control/node_config.h).
#include "control/node_config.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

#include <toml++/toml.h>

#include "engine/config.h"
#include "punch/nat_classify.h"

namespace control {
namespace {

constexpr std::string_view table_name = "node";

// The names punchcoord accepts for nat_type (docs/protocol.md), as punch::NatType writes them.
constexpr std::array nat_type_names = {"none",          "full_cone", "address_restricted",
                                       "port_restricted", "symmetric", "unknown", "blocked"};

class NodeTable {
public:
    explicit NodeTable(const toml::table& table) : table_(table) {}

    [[noreturn]] void refuse(std::string_view key, const toml::node* node,
                             const std::string& expected) const {
        throw engine::ConfigError("node." + std::string(key),
                                  node == nullptr ? 0 : node->source().begin.line, expected);
    }

    const toml::node* find(std::string_view key) const { return table_.get(key); }

    std::optional<std::string> text(std::string_view key, const std::string& expected) const {
        const toml::node* node = find(key);
        if (node == nullptr) return std::nullopt;
        const auto* value = node->as_string();
        if (value == nullptr || value->get().empty()) refuse(key, node, expected);
        return value->get();
    }

    // An address "host:port" (IPv6 in brackets), resolved now.
    std::optional<stun::Address> address(std::string_view key, std::string_view example) const {
        const std::string expected =
            "expected \"host:port\", e.g. \"" + std::string(example) + "\"";
        const std::optional<std::string> value = text(key, expected);
        if (!value) return std::nullopt;
        stun::Address out;
        if (const std::string error = punch::resolve_host_port(*value, out); !error.empty())
            refuse(key, find(key), expected + " (" + error + ")");
        return out;
    }

    // Milliseconds in [min, max], as a punch::Time.
    void duration_ms(std::string_view key, std::int64_t min, std::int64_t max,
                     punch::Time& out) const {
        const toml::node* node = find(key);
        if (node == nullptr) return;
        const auto* value = node->as_integer();
        if (value == nullptr || value->get() < min || value->get() > max)
            refuse(key, node,
                   "expected an integer " + std::to_string(min) + ".." + std::to_string(max) +
                       " (milliseconds)");
        out = std::chrono::milliseconds(value->get());
    }

    void reject_unknown(std::initializer_list<std::string_view> known) const {
        for (const auto& [key, node] : table_) {
            if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
            std::string list;
            for (const std::string_view k : known)
                list += (list.empty() ? "" : ", ") + std::string(k);
            throw engine::ConfigError("node." + std::string(key.str()), key.source().begin.line,
                                      "unknown key; known keys here: " + list);
        }
    }

private:
    const toml::table& table_;
};

bool valid_region(std::string_view region) {
    return region.size() <= 32 && std::all_of(region.begin(), region.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                      c == '.';
           });
}

}  // namespace

std::optional<NodeAgentConfig> parse_node_config(std::string_view toml_text,
                                                 std::string_view source_name) {
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& error) {
        throw engine::ConfigError("file", error.source().begin.line,
                                  std::string(error.description()), std::string(source_name));
    }
    const toml::node* node = root.get(table_name);
    if (node == nullptr) return std::nullopt;
    try {
        const toml::table* table = node->as_table();
        if (table == nullptr)
            throw engine::ConfigError("node", node->source().begin.line,
                                      "expected a table [node]");
        const NodeTable t(*table);
        t.reject_unknown({"coordinator", "region", "secret", "stun_server", "public_address",
                          "nat_type", "connect_timeout_ms", "reconnect_min_ms",
                          "reconnect_max_ms", "request_timeout_ms", "discovery_timeout_ms",
                          "discovery_retry_ms", "punch_interval_ms", "punch_duration_ms",
                          "max_punch_targets"});
        NodeAgentConfig config;
        const auto coordinator = t.address("coordinator", "203.0.113.10:7000");
        if (!coordinator)
            t.refuse("coordinator", nullptr,
                     "missing: [node] needs the coordinator's \"host:port\", e.g. coordinator = "
                     "\"203.0.113.10:7000\" (or remove [node] to run without one)");
        config.coordinator = *t.text("coordinator", "");
        config.coordinator_address = *coordinator;
        if (const auto region = t.text("region", "expected a region name, e.g. \"eu-west\"")) {
            if (!valid_region(*region))
                t.refuse("region", t.find("region"),
                         "expected up to 32 characters of a-z 0-9 _ - . (e.g. \"eu-west\"), got "
                         "\"" + region->substr(0, 40) + "\"");
            config.region = *region;
        }
        // Never quoted back: messages end up in logs.
        if (const auto secret = t.text("secret", "expected punchcoord's node secret, a "
                                                 "non-empty string"))
            config.node_secret = *secret;
        config.stun_server = t.address("stun_server", "203.0.113.2:3478");
        config.public_address = t.address("public_address", "203.0.113.5:3480");
        if (config.stun_server && config.public_address)
            t.refuse("public_address", t.find("public_address"),
                     "set either stun_server (the address is discovered) or public_address "
                     "(it is given), not both");
        if (const auto nat = t.text("nat_type", "expected a NAT type name")) {
            if (config.stun_server)
                t.refuse("nat_type", t.find("nat_type"),
                         "stun_server is set: the NAT type is discovered; remove nat_type");
            if (std::find(nat_type_names.begin(), nat_type_names.end(), *nat) ==
                nat_type_names.end())
                t.refuse("nat_type", t.find("nat_type"),
                         "expected one of none, full_cone, address_restricted, port_restricted, "
                         "symmetric, unknown, blocked");
            config.nat_type = *nat;
        }
        t.duration_ms("connect_timeout_ms", 100, 60000, config.connect_timeout);
        t.duration_ms("reconnect_min_ms", 100, 600000, config.reconnect_min);
        t.duration_ms("reconnect_max_ms", 100, 3600000, config.reconnect_max);
        if (config.reconnect_max < config.reconnect_min)
            t.refuse("reconnect_max_ms", t.find("reconnect_max_ms"),
                     "expected at least reconnect_min_ms (" +
                         std::to_string(config.reconnect_min.count() / 1000) + ")");
        t.duration_ms("request_timeout_ms", 100, 60000, config.request_timeout);
        t.duration_ms("discovery_timeout_ms", 500, 39500, config.discovery_policy.max_duration);
        t.duration_ms("discovery_retry_ms", 1000, 3600000, config.discovery_retry);
        t.duration_ms("punch_interval_ms", 10, 1000, config.punch.interval);
        t.duration_ms("punch_duration_ms", 100, 60000, config.punch.duration);
        if (const toml::node* targets = t.find("max_punch_targets")) {
            const auto* value = targets->as_integer();
            if (value == nullptr || value->get() < 1 || value->get() > 65536)
                t.refuse("max_punch_targets", targets, "expected an integer 1..65536");
            config.punch.max_targets = static_cast<std::size_t>(value->get());
        }
        return config;
    } catch (const engine::ConfigError& error) {
        throw error.in(std::string(source_name));
    }
}

}  // namespace control
