// /status, /stats, /allocations, /allocations/kill (control/engine_commands.h).
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

// "LCORE:SLOT" → its numbers; false when it is not two numbers in range.
bool parse_position(std::string_view text, std::uint64_t& lcore, std::uint64_t& slot) {
    const std::size_t colon = text.find(':');
    return colon != std::string_view::npos && parse_number(text.substr(0, colon), 1023, lcore) &&
           parse_number(text.substr(colon + 1), 0xFFFFFFFE, slot);
}

const std::string client_expected =
    "an IP address or IP:port, e.g. 203.0.113.10, 203.0.113.10:50000 or [2001:db8::1]:50000";
const std::string cursor_expected = "LCORE:SLOT as a reply's \"next\" gave it, e.g. 1:37";
const std::string id_expected =
    "LCORE:SLOT as punchctl allocations shows it (its \"id\"), e.g. 1:37";

std::string lcore_list(const std::vector<CoreView>& cores) {
    std::string workers;
    for (const CoreView& core : cores)
        workers += (workers.empty() ? "" : ", ") + std::to_string(core.lcore);
    return workers;
}

std::optional<std::size_t> core_index(const std::vector<CoreView>& cores, std::uint64_t lcore) {
    for (std::size_t i = 0; i < cores.size(); ++i)
        if (cores[i].lcore == lcore) return i;
    return std::nullopt;
}

void require_relay(const std::vector<CoreView>& cores) {
    if (std::none_of(cores.begin(), cores.end(),
                     [](const CoreView& c) { return c.relay != nullptr; }))
        throw CommandError(ErrorCode::not_available,
                           "this engine does not relay ([relay] enabled = false in its "
                           "configuration): it has no allocations",
                           "punchctl status");
}

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
    registry.add({"/allocations/kill",
                  "delete one allocation (by id or client) or all of a user's; the workers do it "
                  "and say how many went",
                  {{"id", ArgumentType::string,
                    "the allocation LCORE:SLOT, as punchctl allocations shows it", "1:37", false,
                    3, 24},
                   {"client", ArgumentType::string,
                    "the allocation of this client transport address IP:port",
                    "203.0.113.10:50000", false, 1, 64},
                   {"user", ArgumentType::string, "every allocation of this username", "alice",
                    false, 1, static_cast<std::int64_t>(engine::max_username_length)},
                   {"core", ArgumentType::integer,
                    "with client or user: only on the worker on this lcore", "1", false, 0,
                    1023}},
                  [this](const Arguments& arguments) { return kill(arguments); }});
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
    if (config.sfu.enabled()) roles.push_back("sfu");
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
        {"sfu", {{"enabled", config.sfu.enabled()}, {"port", config.sfu.port}}},
        {"ports", std::move(ports)},
    };
    if (view_.control_status) out["control"] = view_.control_status();
    if (view_.relay_drain && config.relay.enabled) out["relay"]["drain"] = view_.relay_drain();
    if (view_.sfu_drain && config.sfu.enabled()) out["sfu"]["drain"] = view_.sfu_drain();
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
    // The legs as /stats counts the allocations: through the table's seqlock listing, never
    // its size, which is the worker's plain variable.
    if (std::any_of(view_.cores.begin(), view_.cores.end(),
                    [](const CoreView& c) { return c.sfu != nullptr; }))
        for (const CoreView& core : view_.cores) {
            SfuCoreMetrics sfu;
            if (core.sfu != nullptr) {
                const engine::SfuTable& table = core.sfu->table();
                sfu.counters = core.sfu->counters();
                sfu.legs = table.list([](const engine::SfuLegSnapshot&) {}).listed;
                sfu.leg_capacity = table.capacity();
            }
            input.sfu.push_back(sfu);
        }
    return input;
}

nlohmann::json EngineCommands::allocations(const Arguments& arguments) const {
    require_relay(view_.cores);
    const std::string workers = lcore_list(view_.cores);

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
        only_core = core_index(view_.cores, static_cast<std::uint64_t>(*lcore));
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
        std::uint64_t lcore = 0;
        std::uint64_t slot = 0;
        std::optional<std::size_t> index;
        if (parse_position(*text, lcore, slot)) index = core_index(view_.cores, lcore);
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
                {"id", std::to_string(core.lcore) + ":" + std::to_string(a.slot)},
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

nlohmann::json EngineCommands::kill(const Arguments& arguments) {
    require_relay(view_.cores);
    if (!view_.send_kill || !view_.kill_done)
        throw CommandError(ErrorCode::not_available,
                           "this engine's workers take no orders (no command rings)",
                           "punchctl status");
    const std::string workers = lcore_list(view_.cores);
    const std::optional<std::string> id = arguments.string("id");
    const std::optional<std::string> client_text = arguments.string("client");
    const std::optional<std::string> user = arguments.string("user");
    const int given = (id ? 1 : 0) + (client_text ? 1 : 0) + (user ? 1 : 0);
    if (given == 0)
        throw CommandError(ErrorCode::missing_argument,
                           "/allocations/kill needs what to kill: \"id\" (LCORE:SLOT as "
                           "punchctl allocations shows it), \"client\" (IP:port) or \"user\"",
                           "punchctl allocations kill --id 1:37");
    if (given > 1)
        throw CommandError(ErrorCode::bad_argument,
                           "/allocations/kill takes one of \"id\", \"client\" and \"user\", "
                           "not several",
                           "punchctl allocations kill --user alice");
    std::optional<std::size_t> only_core;
    if (const auto lcore = arguments.integer("core")) {
        if (id)
            throw CommandError(ErrorCode::bad_argument,
                               "argument \"core\" of /allocations/kill goes with \"client\" or "
                               "\"user\": an id names its lcore already",
                               "punchctl allocations kill --id " + *id);
        only_core = core_index(view_.cores, static_cast<std::uint64_t>(*lcore));
        if (!only_core)
            throw CommandError(
                ErrorCode::bad_argument,
                "argument \"core\" of /allocations/kill: no worker runs on lcore " +
                    std::to_string(*lcore) + "; the workers' lcores: " + workers,
                "punchctl allocations kill --core " +
                    std::to_string(view_.cores.front().lcore) + " --user alice");
    }

    // The orders, per worker (an index into the view's cores), found without writing
    // anything: the listing's seqlock reads (engine/relay_table.h).
    std::vector<std::vector<engine::RelayKill>> orders(view_.cores.size());
    auto kill_of = [](const engine::AllocationSnapshot& a) {
        engine::RelayKill kill;
        kill.target = engine::RelayKill::Target::allocation;
        kill.slot = a.slot;
        kill.key = a.key;
        return kill;
    };
    std::string nothing;  // what to say when nothing was killed
    std::string nothing_hint = "punchctl allocations";
    if (id) {
        std::uint64_t lcore = 0;
        std::uint64_t slot = 0;
        std::optional<std::size_t> index;
        if (parse_position(*id, lcore, slot)) index = core_index(view_.cores, lcore);
        if (!index || view_.cores[*index].relay == nullptr)
            throw CommandError(ErrorCode::bad_argument,
                               "argument \"id\" of /allocations/kill: expected " + id_expected +
                                   " (the workers' lcores: " + workers + "), got \"" + *id + "\"",
                               "punchctl allocations");
        const engine::RelayTable& table = view_.cores[*index].relay->table();
        engine::AllocationSnapshot a;
        if (slot >= table.capacity() ||
            table.snapshot(static_cast<std::uint32_t>(slot), a) !=
                engine::RelayTable::SnapshotStatus::live)
            throw CommandError(ErrorCode::not_found,
                               "no allocation " + *id + " (it has gone, or never was)",
                               "punchctl allocations");
        orders[*index].push_back(kill_of(a));
        nothing = "no allocation " + *id + " any more: it went before the worker got the order";
    } else if (client_text) {
        const std::optional<ClientFilter> client = parse_client(*client_text);
        if (!client || !client->port)
            throw CommandError(ErrorCode::bad_argument,
                               "argument \"client\" of /allocations/kill: expected a client's "
                               "IP:port, e.g. 203.0.113.10:50000 or [2001:db8::1]:50000, got \"" +
                                   *client_text + "\"",
                               "punchctl allocations --client " +
                                   (client ? ip_text(client->ip) : std::string("203.0.113.10")));
        for (std::size_t c = 0; c < view_.cores.size(); ++c) {
            if (view_.cores[c].relay == nullptr || (only_core && *only_core != c)) continue;
            // A client address may hold an allocation on each of the server's addresses.
            view_.cores[c].relay->table().list([&](const engine::AllocationSnapshot& a) {
                const stun::Address address = a.key.client();
                if (address.family == client->ip.family && address.ip == client->ip.ip &&
                    address.port == *client->port)
                    orders[c].push_back(kill_of(a));
            });
        }
        nothing = "no allocation of client " + *client_text +
                  (only_core ? " on lcore " + std::to_string(view_.cores[*only_core].lcore)
                             : std::string());
        nothing_hint = "punchctl allocations --client " + ip_text(client->ip);
        if (std::all_of(orders.begin(), orders.end(), [](const auto& o) { return o.empty(); }))
            throw CommandError(ErrorCode::not_found, nothing, nothing_hint);
    } else {
        // Each worker's table hashes names with its own key (relay_table.h): one order each,
        // which the worker carries out over its whole table, a few slots an iteration.
        for (std::size_t c = 0; c < view_.cores.size(); ++c) {
            if (view_.cores[c].relay == nullptr || (only_core && *only_core != c)) continue;
            engine::RelayKill kill;
            kill.target = engine::RelayKill::Target::user;
            kill.username_hash = view_.cores[c].relay->table().username_hash(*user);
            kill.username_length = static_cast<std::uint16_t>(user->size());
            orders[c].push_back(kill);
        }
        nothing = "user \"" + *user + "\" holds no allocation" +
                  (only_core ? " on lcore " + std::to_string(view_.cores[*only_core].lcore)
                             : std::string()) +
                  " (names are matched by their keyed hash, as punchctl allocations --user does)";
    }

    // Each worker takes one order at a time: the next is sent once the last is acknowledged,
    // so that each acknowledgement's count is its own order's (CommandAck). The control
    // thread waits at most kill_wait_ms; a worker still at it then is named in the reply, and
    // carries on.
    kill_sequence_.resize(view_.cores.size(), 0);
    struct Progress {
        std::size_t next = 0;  // the next order to send
        std::optional<std::uint32_t> waiting;  // the sequence sent and not yet acknowledged
        std::uint64_t killed = 0;
        bool refused = false;  // the ring was full
    };
    std::vector<Progress> progress(view_.cores.size());
    const std::uint64_t deadline = view_.now_ms() + view_.kill_wait_ms;
    for (;;) {
        bool busy = false;
        for (std::size_t c = 0; c < orders.size(); ++c) {
            Progress& p = progress[c];
            if (p.waiting) {
                const std::uint64_t done = view_.kill_done(c);
                if (static_cast<std::uint32_t>(done >> 32) != *p.waiting) {
                    busy = true;
                    continue;
                }
                p.killed += static_cast<std::uint32_t>(done);
                p.waiting.reset();
            }
            if (p.refused || p.next == orders[c].size()) continue;
            engine::RelayKill kill = orders[c][p.next];
            // 0 is the acknowledgement's value before any order: never a sequence.
            if (++kill_sequence_[c] == 0) ++kill_sequence_[c];
            kill.sequence = kill_sequence_[c];
            if (!view_.send_kill(c, kill)) {
                p.refused = true;
                continue;
            }
            ++p.next;
            p.waiting = kill.sequence;
            busy = true;
        }
        if (!busy || view_.now_ms() >= deadline) break;
        if (view_.pause) view_.pause();
    }

    std::uint64_t killed = 0;
    nlohmann::json cores = nlohmann::json::array();
    nlohmann::json unfinished = nlohmann::json::array();
    for (std::size_t c = 0; c < orders.size(); ++c) {
        if (orders[c].empty()) continue;
        const Progress& p = progress[c];
        const bool finished = !p.waiting && (p.next == orders[c].size());
        killed += p.killed;
        // "working": the wait ended first, and the worker carries on; "ring_full": orders
        // were left unsent (a worker that has not taken the last 64: stuck, or stopped).
        cores.push_back({{"lcore", view_.cores[c].lcore},
                         {"killed", p.killed},
                         {"state", finished ? "done" : p.refused ? "ring_full" : "working"}});
        if (!finished) unfinished.push_back(view_.cores[c].lcore);
    }
    if (killed == 0 && unfinished.empty())
        throw CommandError(ErrorCode::not_found, nothing, nothing_hint);
    return {{"killed", killed}, {"cores", std::move(cores)}, {"unfinished", std::move(unfinished)}};
}

}  // namespace control
