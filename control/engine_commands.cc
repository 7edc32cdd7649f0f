// /status, /stats, /allocations (control/engine_commands.h).
#include "control/engine_commands.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string_view>

#include "engine/relay_table.h"
#include "stun/address.h"

namespace control {
namespace {

// A username's keyed hash as the listing shows it: 16 hexadecimal digits.
std::string fmt_hash(std::uint64_t hash) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
    return text;
}

std::string address_text(const stun::Address& address) {
    std::array<char, 48> text{};
    return {text.data(), address.format(text)};
}

std::string ip_text(const stun::Address& address) {
    std::string text = address_text(address);
    text.erase(text.rfind(':'));
    if (!text.empty() && text.front() == '[') text = text.substr(1, text.size() - 2);
    return text;
}

bool parse_number(std::string_view digits, std::uint64_t max, std::uint64_t& out) {
    if (digits.empty() || digits.size() > 10) return false;
    const char* end = digits.data() + digits.size();
    return std::from_chars(digits.data(), end, out).ptr == end && out <= max;
}

// "203.0.113.10", "203.0.113.10:50000", "2001:db8::1", "[2001:db8::1]:50000".
struct ClientFilter {
    stun::Address ip;
    std::optional<std::uint16_t> port;
};

std::optional<ClientFilter> parse_client(std::string_view text) {
    ClientFilter filter;
    std::string_view ip = text;
    std::string_view port;
    if (text.starts_with('[')) {
        const std::size_t close = text.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        ip = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (port.empty()) return std::nullopt;
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        ip = text.substr(0, text.find(':'));
        port = text.substr(text.find(':') + 1);
        if (port.empty()) return std::nullopt;
    }
    if (!stun::Address::from_string(ip, 0, filter.ip)) return std::nullopt;
    if (text.starts_with('[') && filter.ip.family != stun::AddressFamily::ipv6) return std::nullopt;
    if (!port.empty()) {
        std::uint64_t number = 0;
        if (!parse_number(port, 65535, number) || number == 0) return std::nullopt;
        filter.port = static_cast<std::uint16_t>(number);
    }
    return filter;
}

const std::string client_expected =
    "an IP address or IP:port, e.g. 203.0.113.10, 203.0.113.10:50000 or [2001:db8::1]:50000";
const std::string cursor_expected = "LCORE:SLOT as a reply's \"next\" gave it, e.g. 1:37";

}  // namespace

EngineCommands::EngineCommands(const EngineView& view)
    : view_(view), history_(view.now_ms(), current()) {}

std::vector<engine::CoreCounters> EngineCommands::current() const {
    std::vector<engine::CoreCounters> counters;
    counters.reserve(view_.cores.size());
    // Plain reads of counters a worker is writing (engine/counters.h: each a value it had).
    for (const CoreView& core : view_.cores) counters.push_back(*core.counters);
    return counters;
}

void EngineCommands::tick() {
    const std::uint64_t now = view_.now_ms();
    if (history_.due(now)) history_.tick(now, current());
}

void EngineCommands::register_in(Registry& registry) {
    registry.add({"/status",
                  "the engine: version, uptime, cores, roles, ports and their links",
                  {},
                  [this](const Arguments&) { return status(); }});
    registry.add({"/stats",
                  "per core and in all: rx/tx packets, bytes and rates, handoffs, drops by reason, "
                  "relay table occupancy",
                  {{"window", ArgumentType::integer,
                    "seconds over which rates are computed (the history's age when younger)", "10",
                    false, 1, StatsHistory::max_window_s}},
                  [this](const Arguments& arguments) { return stats(arguments); }});
    registry.add({"/allocations",
                  "the relay's TURN allocations with their counters, filtered and paged",
                  {{"user", ArgumentType::string, "only this username", "alice", false, 1,
                    static_cast<std::int64_t>(engine::max_username_length)},
                   {"client", ArgumentType::string, "only this client address: IP or IP:port",
                    "203.0.113.10:50000", false, 1, 64},
                   {"core", ArgumentType::integer,
                    "only the allocations of the worker on this lcore", "1", false, 0, 1023},
                   {"limit", ArgumentType::integer, "at most this many in the reply (default 100)",
                    "50", false, 1, max_page},
                   {"after", ArgumentType::string,
                    "continue after this position: the \"next\" of the previous page", "1:37",
                    false, 3, 24}},
                  [this](const Arguments& arguments) { return allocations(arguments); }});
}

nlohmann::json EngineCommands::status() const {
    const engine::EngineConfig& config = *view_.config;
    const std::uint64_t now = view_.now_ms();
    nlohmann::json workers = nlohmann::json::array();
    for (const CoreView& core : view_.cores) workers.push_back(core.lcore);
    nlohmann::json ports = nlohmann::json::array();
    const std::vector<PortView> links = view_.ports ? view_.ports() : std::vector<PortView>{};
    for (const engine::PortConfig& port : config.ports) {
        nlohmann::json ipv4 = nlohmann::json::array();
        nlohmann::json ipv6 = nlohmann::json::array();
        for (const stun::Address& a : port.ipv4) ipv4.push_back(ip_text(a));
        for (const stun::Address& a : port.ipv6) ipv6.push_back(ip_text(a));
        nlohmann::json entry = {{"device", port.device}, {"ipv4", ipv4}, {"ipv6", ipv6}};
        const auto link = std::find_if(links.begin(), links.end(),
                                       [&](const PortView& p) { return p.device == port.device; });
        if (link != links.end()) {
            entry["id"] = link->id;
            entry["mac"] = link->mac;
            entry["link"] = {{"up", link->link_up},
                             {"speed_mbps", link->speed_mbps},
                             {"duplex", link->full_duplex ? "full" : "half"}};
            entry["queues"] = link->queues;
            entry["steering"] = link->steer_in_software ? "software" : "rules";
        }
        ports.push_back(std::move(entry));
    }
    nlohmann::json roles = nlohmann::json::array();
    if (config.stun.enabled) roles.push_back("stun");
    if (config.relay.enabled) roles.push_back("relay");
    nlohmann::json out = {
        {"version", view_.version},
        {"pid", static_cast<long>(::getpid())},
        {"uptime_s", static_cast<double>(now - std::min(now, view_.start_ms)) / 1000.0},
        {"cores", {{"main", view_.main_lcore}, {"workers", std::move(workers)}}},
        {"roles", std::move(roles)},
        {"stun",
         {{"enabled", config.stun.enabled},
          {"port", config.stun.port},
          {"alternate_port", config.stun.alternate_port}}},
        {"relay",
         {{"enabled", config.relay.enabled},
          {"realm", config.relay.realm},
          {"ports", std::to_string(config.relay.port_first) + "-" +
                        std::to_string(config.relay.port_last)}}},
        {"ports", std::move(ports)},
    };
    if (view_.control_status) out["control"] = view_.control_status();
    if (view_.relay_drain && config.relay.enabled) out["relay"]["drain"] = view_.relay_drain();
    return out;
}

nlohmann::json EngineCommands::stats(const Arguments& arguments) const {
    return to_json(report(static_cast<unsigned>(arguments.integer("window").value_or(5))));
}

StatsReport EngineCommands::report(unsigned window_s) const {
    std::vector<unsigned> lcores;
    std::vector<TableOccupancy> tables;
    for (const CoreView& core : view_.cores) {
        lcores.push_back(core.lcore);
        TableOccupancy table;
        if (core.relay != nullptr) {
            const engine::RelayTable& relay_table = core.relay->table();
            const auto summary = relay_table.list([](const engine::AllocationSnapshot&) {});
            table = {true, summary.listed, relay_table.capacity(), summary.skipped};
        }
        tables.push_back(table);
    }
    const std::vector<engine::CoreCounters> counters = current();
    return make_report(view_.now_ms(), counters, lcores, tables, history_, window_s);
}

MetricsInput EngineCommands::metrics() const {
    MetricsInput input;
    input.version = view_.version;
    const std::uint64_t now = view_.now_ms();
    input.uptime_s = static_cast<double>(now - std::min(now, view_.start_ms)) / 1000.0;
    input.start_time_s = static_cast<double>(view_.start_unix_ms) / 1000.0;
    input.cycles_per_second = view_.cycles_per_second;
    // The rates are /stats's business; the shortest window is the cheapest.
    input.stats = report(1);
    // Plain reads of counters the workers are writing, as current()'s (engine/counters.h).
    if (std::any_of(view_.cores.begin(), view_.cores.end(),
                    [](const CoreView& c) { return c.relay != nullptr; }))
        for (const CoreView& core : view_.cores)
            input.relay.push_back(core.relay != nullptr ? core.relay->counters()
                                                        : engine::RelayCounters{});
    return input;
}

nlohmann::json EngineCommands::allocations(const Arguments& arguments) const {
    const bool relay = std::any_of(view_.cores.begin(), view_.cores.end(),
                                   [](const CoreView& c) { return c.relay != nullptr; });
    if (!relay)
        throw CommandError(ErrorCode::not_available,
                           "this engine does not relay ([relay] enabled = false in its "
                           "configuration): it has no allocations",
                           "punchctl status");
    std::string workers;
    for (const CoreView& core : view_.cores)
        workers += (workers.empty() ? "" : ", ") + std::to_string(core.lcore);
    auto core_index = [&](std::uint64_t lcore) -> std::optional<std::size_t> {
        for (std::size_t i = 0; i < view_.cores.size(); ++i)
            if (view_.cores[i].lcore == lcore) return i;
        return std::nullopt;
    };

    const std::optional<std::string> user = arguments.string("user");
    std::optional<ClientFilter> client;
    if (const auto text = arguments.string("client")) {
        client = parse_client(*text);
        if (!client)
            throw CommandError(ErrorCode::bad_argument,
                               "argument \"client\" of /allocations: expected " + client_expected +
                                   ", got \"" + *text + "\"",
                               "punchctl allocations --client 203.0.113.10:50000");
    }
    std::optional<std::size_t> only_core;
    if (const auto lcore = arguments.integer("core")) {
        only_core = core_index(static_cast<std::uint64_t>(*lcore));
        if (!only_core)
            throw CommandError(
                ErrorCode::bad_argument,
                "argument \"core\" of /allocations: no worker runs on lcore " +
                    std::to_string(*lcore) + "; the workers' lcores: " + workers,
                "punchctl allocations --core " + std::to_string(view_.cores.front().lcore));
    }
    const auto limit = static_cast<std::size_t>(arguments.integer("limit").value_or(100));
    // The position after which this page starts: (core index, slot).
    std::size_t after_core = 0;
    std::optional<std::uint32_t> after_slot;
    if (const auto text = arguments.string("after")) {
        const std::size_t colon = text->find(':');
        std::uint64_t lcore = 0;
        std::uint64_t slot = 0;
        std::optional<std::size_t> index;
        if (colon != std::string::npos &&
            parse_number(std::string_view(*text).substr(0, colon), 1023, lcore) &&
            parse_number(std::string_view(*text).substr(colon + 1), 0xFFFFFFFE, slot))
            index = core_index(lcore);
        if (!index)
            throw CommandError(ErrorCode::bad_argument,
                               "argument \"after\" of /allocations: expected " + cursor_expected +
                                   " (the workers' lcores: " + workers + "), got \"" + *text + "\"",
                               "punchctl allocations --limit 100");
        after_core = *index;
        after_slot = static_cast<std::uint32_t>(slot);
    }

    const std::uint64_t now = view_.relay_now();
    const std::uint64_t tps = std::max<std::uint64_t>(view_.relay_ticks_per_second, 1);
    const engine::PortConfig* port =
        view_.config->ports.empty() ? nullptr : &view_.config->ports.front();
    nlohmann::json page = nlohmann::json::array();
    std::size_t matched = 0;
    std::size_t skipped = 0;
    std::optional<std::string> next;
    std::string last_position;
    for (std::size_t c = 0; c < view_.cores.size(); ++c) {
        const CoreView& core = view_.cores[c];
        if (core.relay == nullptr || (only_core && *only_core != c)) continue;
        // The table keeps a keyed hash of each username, not its text (relay_table.h): a
        // name given is matched by its hash, and the configured long-term users' names are
        // known by theirs; a TURN REST username shows as its hash.
        const engine::RelayTable& table = core.relay->table();
        const std::optional<std::uint64_t> user_hash =
            user ? std::optional<std::uint64_t>(table.username_hash(*user)) : std::nullopt;
        std::vector<std::pair<std::uint64_t, const std::string*>> known;
        for (const engine::RelayUser& u : view_.config->relay.users)
            known.emplace_back(table.username_hash(u.name), &u.name);
        const auto summary = table.list([&](const engine::AllocationSnapshot& a) {
            if (user && (a.username_hash != *user_hash || a.username_length != user->size()))
                return;
            const std::string* name = user ? &*user : nullptr;
            for (const auto& [hash, known_name] : known)
                if (name == nullptr && hash == a.username_hash &&
                    known_name->size() == a.username_length)
                    name = known_name;
            if (client) {
                const stun::Address address = a.key.client();
                if (address.family != client->ip.family || address.ip != client->ip.ip) return;
                if (client->port && address.port != *client->port) return;
            }
            ++matched;
            const bool after_cursor =
                !after_slot || c > after_core || (c == after_core && a.slot > *after_slot);
            if (!after_cursor) return;
            if (page.size() == limit) {
                // One more beyond the page: the next page starts after the page's last.
                if (!next) next = last_position;
                return;
            }
            nlohmann::json families = nlohmann::json::array();
            nlohmann::json relayed = nlohmann::json::array();
            // The relayed addresses: the port's primary address of each family
            // (engine/relay_setup.h), on the allocation's relay port.
            auto add_family = [&](std::uint8_t family, const char* name,
                                  const std::vector<stun::Address>* addresses) {
                if ((a.families & family) == 0) return;
                families.push_back(name);
                if (addresses == nullptr || addresses->empty()) return;
                stun::Address relayed_address = addresses->front();
                relayed_address.port = a.relay_port;
                relayed.push_back(address_text(relayed_address));
            };
            add_family(engine::relay_ipv4, "ipv4", port != nullptr ? &port->ipv4 : nullptr);
            add_family(engine::relay_ipv6, "ipv6", port != nullptr ? &port->ipv6 : nullptr);
            const std::uint64_t expiry = std::max(a.expiry_ipv4, a.expiry_ipv6);
            page.push_back({
                {"lcore", core.lcore},
                {"slot", a.slot},
                {"user", name != nullptr ? nlohmann::json(*name) : nlohmann::json(nullptr)},
                {"user_hash", fmt_hash(a.username_hash)},
                {"client", address_text(a.key.client())},
                {"server", address_text(a.key.server())},
                {"relay_port", a.relay_port},
                {"families", std::move(families)},
                {"relayed", std::move(relayed)},
                {"expires_in_s", expiry > now ? (expiry - now) / tps : 0},
                {"permissions", a.permission_count},
                {"channels", a.channel_count},
                {"to_peer",
                 {{"packets", a.counters.to_peer_packets}, {"bytes", a.counters.to_peer_bytes}}},
                {"to_client",
                 {{"packets", a.counters.to_client_packets},
                  {"bytes", a.counters.to_client_bytes}}},
            });
            last_position = std::to_string(core.lcore) + ":" + std::to_string(a.slot);
        });
        skipped += summary.skipped;
    }
    return {{"allocations", std::move(page)},
            {"matched", matched},
            {"skipped", skipped},
            {"next", next ? nlohmann::json(*next) : nlohmann::json(nullptr)}};
}

}  // namespace control
