// punchcoord's protocol state machine (control/coordinator.h; the wire is docs/protocol.md).
//
// A request is parsed whole and checked field by field before anything changes: a refused
// request leaves no trace but its error reply. Refusals travel as a Refusal exception from the
// field readers to handle_line(), which turns it into the error reply (control plane: style
// rule 12 allows exceptions here; nothing below a worker loop runs this code).
#include "control/coordinator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "punch/nat_matrix.h"
#include "stun/address.h"
#include "stun/rest.h"
#include "stun/sfu_token.h"

namespace control {
namespace {

using nlohmann::json;

struct Refusal {
    CoordError code;
    std::string message;
    std::string limit;  // for CoordError::limit: the limit's name
};

[[noreturn]] void refuse(CoordError code, std::string message, std::string limit = {}) {
    throw Refusal{code, std::move(message), std::move(limit)};
}

[[noreturn]] void refuse_limit(std::string_view name, std::size_t value, std::string what) {
    refuse(CoordError::limit, std::string(name) + " (" + std::to_string(value) + ") reached: " +
                                  std::move(what),
           std::string(name));
}

// Characters of room and member names: unreserved URI characters, so that a name is safe in a
// TURN REST username ("<expiry>:<room>-<name>"), a log line and a URL without escaping.
bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '~' || c == '-';
}

// NAT types and regions: short lower-case tokens (punch::NatType's names, "eu-west").
bool token_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

// RFC 8445 §5.3: ice-char = ALPHA / DIGIT / "+" / "/". A ufrag never holds ':', the separator
// of the short-term USERNAME "remote:local".
constexpr std::string_view ice_chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// What a client sent where something else was expected, short enough for a reply.
std::string describe(const json& value) {
    switch (value.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
        case json::value_t::string: {
            const auto& text = value.get_ref<const std::string&>();
            if (text.size() > 40) return "a string of " + std::to_string(text.size()) + " bytes";
            return coord_line(value).substr(0, coord_line(value).size() - 1);
        }
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float: return value.dump();
        case json::value_t::object: return "an object";
        case json::value_t::array: return "an array";
        default: return "a value of another type";
    }
}

// "192.0.2.1:3478" or "[2001:db8::1]:3478": numeric only (a candidate is an address, not a
// name for the peer to resolve).
bool parse_ip_port(std::string_view text, stun::Address& out) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() ||
            text[close + 1] != ':')
            return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (host.find(':') == std::string_view::npos) return false;
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) return false;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return false;  // IPv6 needs brackets
    }
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (error != std::errc{} || end != port.data() + port.size() || port.empty() || value == 0 ||
        value > 65535)
        return false;
    return stun::Address::from_string(host, static_cast<std::uint16_t>(value), out);
}

constexpr std::string_view candidate_example =
    R"([{"type": "srflx", "address": "203.0.113.7:40000"}])";

}  // namespace

// The line being answered: its object, its id and op, and the reply under construction.
class Coordinator::Request {
public:
    ConnectionId connection = 0;
    json body;
    json id;  // null when absent
    std::string op;
    json reply = json::object();

    [[nodiscard]] const json* field(std::string_view name) const {
        const auto it = body.find(name);
        return it == body.end() ? nullptr : &*it;
    }

    // A name-like string: `length` bytes at most, of `allowed` characters; absent → refused
    // when `required`, else "".
    std::string text(std::string_view name, bool required, std::size_t min_length,
                     std::size_t max_length, bool (*allowed)(char), std::string_view rule) const {
        const json* value = field(name);
        if (value == nullptr) {
            if (required)
                refuse(CoordError::bad_request,
                       "\"" + std::string(name) + "\" is missing; expected " + std::string(rule));
            return {};
        }
        if (!value->is_string())
            refuse(CoordError::bad_request, "\"" + std::string(name) + "\" must be " +
                                                std::string(rule) + ", got " + describe(*value));
        const auto& text = value->get_ref<const std::string&>();
        if (text.size() < min_length || text.size() > max_length ||
            !std::all_of(text.begin(), text.end(), allowed))
            refuse(CoordError::bad_request, "\"" + std::string(name) + "\" must be " +
                                                std::string(rule) + ", got " + describe(*value));
        return text;
    }

    std::string room() const {
        return text("room", true, 1, 64, name_char,
                    "a room name of 1 to 64 characters A-Z a-z 0-9 . _ ~ -");
    }
    std::string member_name(std::string_view key, bool required) const {
        return text(key, required, 1, 64, name_char,
                    "a member name of 1 to 64 characters A-Z a-z 0-9 . _ ~ -");
    }
    std::string nat_type(std::string_view key) const {
        return text(key, false, 1, 32, token_char,
                    "a NAT type such as \"none\", \"full_cone\", \"address_restricted\", "
                    "\"port_restricted\", \"symmetric\" or \"unknown\" (1 to 32 characters "
                    "a-z 0-9 _ - .)");
    }
    std::string region() const {
        return text("region", false, 0, 32, token_char,
                    "a region of at most 32 characters a-z 0-9 _ - . (e.g. \"eu-west\")");
    }

    // An integer in [min, max]; absent → `fallback` unless required.
    std::optional<std::uint64_t> integer(std::string_view name, bool required, std::uint64_t min,
                                         std::uint64_t max, std::string_view unit) const {
        const json* value = field(name);
        if (value == nullptr) {
            if (required)
                refuse(CoordError::bad_request, "\"" + std::string(name) +
                                                    "\" is missing; expected an integer " +
                                                    std::to_string(min) + ".." +
                                                    std::to_string(max) + std::string(unit));
            return std::nullopt;
        }
        // Negative integers are number_integer; floats, huge numbers (parsed as floats) and
        // everything else are refused alike.
        if (!value->is_number_unsigned() || value->get<std::uint64_t>() < min ||
            value->get<std::uint64_t>() > max)
            refuse(CoordError::bad_request, "\"" + std::string(name) + "\" must be an integer " +
                                                std::to_string(min) + ".." + std::to_string(max) +
                                                std::string(unit) + ", got " + describe(*value));
        return value->get<std::uint64_t>();
    }

    // "rtt_ms": {"<node id>": milliseconds, ...}, the member's measured round trips to SFU
    // nodes (sfu_select.h's "nearest first"), as microseconds by node id. Node ids not in the
    // directory are allowed (a node may have gone since it was measured) and match nothing.
    std::map<std::uint64_t, std::uint32_t> rtt_ms(std::size_t limit) const {
        std::map<std::uint64_t, std::uint32_t> out;
        const json* value = field("rtt_ms");
        if (value == nullptr) return out;
        if (!value->is_object())
            refuse(CoordError::bad_request,
                   R"("rtt_ms" must be an object of node ids to milliseconds like {"3": 12.5}, )"
                   "got " +
                       describe(*value));
        if (value->size() > limit)
            refuse_limit("max_nodes", limit,
                         "\"rtt_ms\" holds " + std::to_string(value->size()) +
                             " round trips, more than the directory can list; send one per "
                             "node you measured");
        for (auto it = value->begin(); it != value->end(); ++it) {
            const std::string& key = it.key();
            std::uint64_t node_id = 0;
            const auto [end, error] =
                std::from_chars(key.data(), key.data() + key.size(), node_id);
            if (key.empty() || error != std::errc{} || end != key.data() + key.size() ||
                node_id == 0)
                refuse(CoordError::bad_request,
                       R"("rtt_ms" keys must be node ids in decimal ("3", as "nodes" lists )"
                       "them), got " +
                           describe(json(key)));
            const json& ms = it.value();
            // A minute bounds any round trip a call could live with; more is a unit mistake
            // (seconds or microseconds sent as milliseconds).
            if (!ms.is_number() || !(ms.get<double>() >= 0.0 && ms.get<double>() <= 60000.0))
                refuse(CoordError::bad_request, "rtt_ms[\"" + key +
                                                    "\"] must be a number of milliseconds "
                                                    "0..60000 (e.g. 12.5), got " +
                                                    describe(ms));
            out[node_id] = static_cast<std::uint32_t>(std::llround(ms.get<double>() * 1000.0));
        }
        return out;
    }

    std::vector<Candidate> candidates(bool required, std::size_t limit) const {
        const json* value = field("candidates");
        if (value == nullptr) {
            if (required)
                refuse(CoordError::bad_request,
                       "\"candidates\" is missing; expected an array like " +
                           std::string(candidate_example) + " (it may be empty)");
            return {};
        }
        if (!value->is_array())
            refuse(CoordError::bad_request, "\"candidates\" must be an array like " +
                                                std::string(candidate_example) + ", got " +
                                                describe(*value));
        if (value->size() > limit)
            refuse_limit("max_candidates_per_member", limit,
                         "this request holds " + std::to_string(value->size()) +
                             " candidates; send the best ones");
        std::vector<Candidate> out;
        for (std::size_t i = 0; i < value->size(); ++i) {
            const json& element = (*value)[i];
            const std::string where = "candidates[" + std::to_string(i) + "]";
            if (!element.is_object())
                refuse(CoordError::bad_request,
                       where + " must be an object like " +
                           std::string(candidate_example.substr(1, candidate_example.size() - 2)) +
                           ", got " + describe(element));
            const auto type = element.find("type");
            if (type == element.end() || !type->is_string() ||
                (*type != "host" && *type != "srflx" && *type != "relay" && *type != "prflx"))
                refuse(CoordError::bad_request,
                       where + ".type must be \"host\", \"srflx\", \"relay\" or \"prflx\", got " +
                           (type == element.end() ? std::string("nothing") : describe(*type)));
            const auto address = element.find("address");
            stun::Address parsed;
            if (address == element.end() || !address->is_string() ||
                !parse_ip_port(address->get_ref<const std::string&>(), parsed))
                refuse(CoordError::bad_request,
                       where + ".address must be \"ip:port\" (\"203.0.113.7:40000\", "
                               "\"[2001:db8::7]:40000\"), got " +
                           (address == element.end() ? std::string("nothing")
                                                     : describe(*address)));
            std::array<char, 48> text{};
            const std::size_t length = parsed.format(text);
            out.push_back({type->get<std::string>(), std::string(text.data(), length)});
        }
        return out;
    }
};

Coordinator::Coordinator(CoordinatorConfig config,
                         std::function<bool(std::span<std::byte>)> random)
    : config_(std::move(config)),
      random_(std::move(random)),
      nodes_(config_.limits.max_nodes, config_.node_ttl_ms),
      outcomes_(config_.limits.max_reports) {}

std::string coord_line(const json& message) {
    // error_handler_t::replace: what a client sent is echoed in messages; a reply must still
    // be valid JSON and UTF-8.
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
    line += '\n';
    return line;
}

std::size_t json_nesting_depth(std::string_view text, std::size_t limit) noexcept {
    std::size_t depth = 0;
    std::size_t deepest = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

void Coordinator::push(ConnectionId to, const json& event, Effects& out) {
    ++counters_.events;
    out.messages.push_back({to, coord_line(event)});
}

bool Coordinator::open(ConnectionId connection, std::string_view peer_address, CoordTime now,
                       Effects& out) {
    const CoordLimits& limits = config_.limits;
    std::string refusal;
    std::string limit;
    if (connections_.size() >= limits.max_connections) {
        limit = "max_connections";
        refusal = "max_connections (" + std::to_string(limits.max_connections) +
                  ") reached: the coordinator serves that many clients at once; try again later";
    } else if (connections_per_address_[std::string(peer_address)] >=
               limits.max_connections_per_address) {
        limit = "max_connections_per_address";
        refusal = "max_connections_per_address (" +
                  std::to_string(limits.max_connections_per_address) + ") reached: " +
                  std::string(peer_address) + " has that many connections open; close some";
    }
    if (!refusal.empty()) {
        if (connections_per_address_[std::string(peer_address)] == 0)
            connections_per_address_.erase(std::string(peer_address));
        ++counters_.connections_refused;
        out.messages.push_back(
            {connection,
             coord_line({{"id", nullptr},
                         {"ok", false},
                         {"error", {{"code", "limit"}, {"message", refusal}, {"limit", limit}}}})});
        out.close.push_back(connection);
        return false;
    }
    ++connections_per_address_[std::string(peer_address)];
    Connection& state = connections_[connection];
    state.peer_address = peer_address;
    state.last_line_ms = now.monotonic_ms;
    ++counters_.connections_accepted;
    return true;
}

void Coordinator::line_too_long(ConnectionId connection, Effects& out) {
    ++counters_.lines_too_long;
    out.messages.push_back(
        {connection,
         coord_line({{"id", nullptr},
                     {"ok", false},
                     {"error",
                      {{"code", "too_large"},
                       {"message", "a line may hold " +
                                       std::to_string(config_.limits.max_line_bytes) +
                                       " bytes before its '\\n'; this one held more, and the "
                                       "connection is closed (the rest of it cannot be "
                                       "framed)"}}}})});
    out.close.push_back(connection);
}

void Coordinator::handle_line(ConnectionId connection, std::string_view line, CoordTime now,
                              Effects& out) {
    const auto it = connections_.find(connection);
    if (it == connections_.end()) return;
    // Any line counts as a sign of life, a bad one too: the idle timeout is for the silent.
    it->second.last_line_ms = now.monotonic_ms;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank: keepalive
    ++counters_.requests;

    Request request;
    request.connection = connection;
    // Where this request's events start: its reply goes in front of them, and a refusal
    // takes back any it queued.
    const std::size_t first_event = out.messages.size();
    try {
        if (line.size() > config_.limits.max_line_bytes)
            refuse(CoordError::too_large,
                   "a line may hold " + std::to_string(config_.limits.max_line_bytes) +
                       " bytes; this one held " + std::to_string(line.size()));
        if (json_nesting_depth(line, config_.limits.max_json_depth) >
            config_.limits.max_json_depth)
            refuse(CoordError::bad_json, "the line nests objects and arrays deeper than " +
                                             std::to_string(config_.limits.max_json_depth) +
                                             " levels; no request needs that");
        try {
            request.body = json::parse(line);
        } catch (const json::exception& error) {  // parse_error; out_of_range: 1e999
            // nlohmann's text names the byte and what it found ("syntax error while parsing
            // value - invalid literal; last read: 'g'"; "ill-formed UTF-8 byte").
            std::string what = error.what();
            if (const std::size_t at = what.find("] "); at != std::string::npos)
                what.erase(0, at + 2);
            refuse(CoordError::bad_json,
                   "the line is not valid JSON in UTF-8 (" + what +
                       "); send one object per line, e.g. " R"({"op": "ping", "id": 1})");
        }
        if (!request.body.is_object())
            refuse(CoordError::bad_request, "a request is a JSON object with a string \"op\", "
                                            "e.g. " R"({"op": "ping", "id": 1})" ", got " +
                                                describe(request.body));
        if (const json* id = request.field("id")) {
            // Echoed in the reply: kept small, so that a reply never outgrows its request.
            if (!(id->is_number_integer() ||
                  (id->is_string() && id->get_ref<const std::string&>().size() <= 64)))
                refuse(CoordError::bad_request,
                       "\"id\" must be an integer or a string of at most 64 bytes, got " +
                           describe(*id));
            request.id = *id;
        }
        const json* op = request.field("op");
        if (op == nullptr || !op->is_string())
            refuse(CoordError::bad_request,
                   std::string("\"op\" ") + (op == nullptr ? "is missing" : "must be a string") +
                       "; expected one of hello, join, leave, candidates, signal, sfu, report, "
                       "outcomes, register, heartbeat, nodes, ping");
        request.op = op->get<std::string>();
        dispatch(request, now, out);
        json reply = {{"id", request.id}, {"ok", true}};
        if (!request.op.empty()) reply["op"] = request.op;
        reply.update(request.reply);
        // The reply goes before the events this request caused (a joiner reads its own
        // credentials before its peers').
        out.messages.insert(out.messages.begin() + static_cast<std::ptrdiff_t>(first_event),
                            {connection, coord_line(reply)});
    } catch (const Refusal& refusal) {
        out.messages.resize(first_event);
        ++counters_.errors;
        json error = {{"code", std::string(to_string(refusal.code))},
                      {"message", refusal.message}};
        if (!refusal.limit.empty()) error["limit"] = refusal.limit;
        json reply = {{"id", request.id}, {"ok", false}};
        if (!request.op.empty()) reply["op"] = request.op;
        reply["error"] = std::move(error);
        out.messages.push_back({connection, coord_line(reply)});
    } catch (const std::exception& e) {  // std::bad_alloc, a json type error: a bug
        out.messages.resize(first_event);
        ++counters_.errors;
        out.messages.push_back(
            {connection,
             coord_line({{"id", request.id},
                         {"ok", false},
                         {"error",
                          {{"code", "internal_error"},
                           {"message", std::string("the coordinator failed: ") + e.what()}}}})});
    }
}

void Coordinator::dispatch(Request& request, CoordTime now, Effects& out) {
    const std::string& op = request.op;
    if (op == "ping") {
        request.reply["pong"] = true;
        request.reply["time_ms"] = now.unix_ms;
    } else if (op == "hello") {
        op_hello(request, now);
    } else if (op == "join") {
        op_join(request, now, out);
    } else if (op == "leave") {
        op_leave(request, out);
    } else if (op == "candidates") {
        op_candidates(request, out);
    } else if (op == "signal") {
        op_signal(request, out);
    } else if (op == "sfu") {
        op_sfu(request, now, out);
    } else if (op == "report") {
        op_report(request, now);
    } else if (op == "outcomes") {
        op_outcomes(request);
    } else if (op == "register") {
        op_register(request, now);
    } else if (op == "heartbeat") {
        op_heartbeat(request, now);
    } else if (op == "nodes") {
        op_nodes(request, now);
    } else {
        refuse(CoordError::unknown_op,
               "no operation is called " + describe(json(op)) +
                   "; expected one of hello, join, leave, candidates, signal, sfu, report, "
                   "outcomes, register, heartbeat, nodes, ping");
    }
}

void Coordinator::op_hello(Request& request, CoordTime now) {
    const CoordLimits& limits = config_.limits;
    request.reply["protocol"] = coord_protocol_version;
    request.reply["server"] = "punchcoord";
    request.reply["time_ms"] = now.unix_ms;
    request.reply["stun"] = config_.stun_servers;
    request.reply["relay"] = config_.relay_servers;
    request.reply["turn_credentials"] = !config_.rest_secret.empty();
    request.reply["sfu_tokens"] = !config_.sfu.token_secret.empty();
    request.reply["idle_timeout_ms"] = config_.idle_timeout_ms;
    request.reply["limits"] = {
        {"max_line_bytes", limits.max_line_bytes},
        {"max_members_per_room", limits.max_members_per_room},
        {"max_rooms_per_connection", limits.max_rooms_per_connection},
        {"max_candidates_per_member", limits.max_candidates_per_member},
        {"max_signal_bytes", limits.max_signal_bytes},
        {"max_json_depth", limits.max_json_depth},
    };
}

std::string Coordinator::random_text(std::size_t length) {
    // 64 characters: a byte's low six bits pick one without bias.
    std::string bytes(length, '\0');
    if (!random_(std::as_writable_bytes(std::span(bytes.data(), bytes.size()))))
        refuse(CoordError::internal_error,
               "the random generator failed; credentials cannot be issued");
    for (char& c : bytes) c = ice_chars[static_cast<unsigned char>(c) & 63u];
    return bytes;
}

json Coordinator::turn_credentials(const std::string& room, const std::string& name,
                                   CoordTime now) const {
    if (config_.rest_secret.empty()) return nullptr;
    // The TURN REST scheme (stun/rest.h; coturn's use-auth-secret, punchlined's
    // relay.rest_secrets): valid through <expiry>, in Unix seconds.
    const std::uint64_t expiry = now.unix_ms / 1000 + config_.rest_ttl_s;
    std::array<char, 200> username{};  // 20 digits, ':', 64 + '-' + 64
    std::size_t length = 0;
    if (stun::make_rest_username(expiry, room + "-" + name, username, length) !=
        stun::RestError::ok)
        refuse(CoordError::internal_error, "the TURN username did not fit its buffer");
    std::array<char, stun::rest_password_size> password{};
    stun::make_rest_password(std::as_bytes(std::span(config_.rest_secret)),
                             std::string_view(username.data(), length), password);
    return {{"username", std::string(username.data(), length)},
            {"password", std::string(password.data(), password.size())},
            {"ttl_s", config_.rest_ttl_s},
            {"expires_unix", expiry},
            {"servers", config_.relay_servers}};
}

void Coordinator::op_join(Request& request, CoordTime now, Effects& out) {
    const CoordLimits& limits = config_.limits;
    const std::string room_name = request.room();
    const std::string name = request.member_name("name", true);
    std::vector<Candidate> candidates =
        request.candidates(true, limits.max_candidates_per_member);
    const std::string nat_type = request.nat_type("nat_type");
    const std::string region = request.region();

    Connection& connection = connections_.at(request.connection);
    if (connection.rooms.count(room_name) != 0)
        refuse(CoordError::conflict, "this connection is in room \"" + room_name +
                                         "\" already; leave it first, or open another "
                                         "connection for a second member");
    if (connection.rooms.size() >= limits.max_rooms_per_connection)
        refuse_limit("max_rooms_per_connection", limits.max_rooms_per_connection,
                     "this connection is in that many rooms; leave one first");
    const auto existing = rooms_.find(room_name);
    if (existing == rooms_.end()) {
        if (rooms_.size() >= limits.max_rooms)
            refuse_limit("max_rooms", limits.max_rooms,
                         "the coordinator holds that many rooms; try again later");
    } else {
        const auto& members = existing->second.members;
        if (std::any_of(members.begin(), members.end(),
                        [&](const Member& m) { return m.name == name; }))
            refuse(CoordError::conflict, "\"" + name + "\" is taken in room \"" + room_name +
                                             "\"; join under another name");
        if (members.size() >= limits.max_members_per_room)
            refuse_limit("max_members_per_room", limits.max_members_per_room,
                         "room \"" + room_name + "\" is full");
    }

    Member member;
    member.connection = request.connection;
    member.name = name;
    member.candidates = std::move(candidates);
    member.nat_type = nat_type.empty() ? "unknown" : nat_type;
    member.region = region;
    member.ufrag = random_text(8);
    member.password = random_text(24);  // RFC 8445 §5.3: at least 128 bits (22 characters)
    member.joined_order = next_join_order_++;
    const json turn = turn_credentials(room_name, name, now);

    if (existing == rooms_.end()) ++counters_.rooms_created;
    Room& room = rooms_[room_name];
    connection.rooms.insert(room_name);
    ++counters_.joins;

    request.reply["room"] = room_name;
    request.reply["name"] = name;
    request.reply["ufrag"] = member.ufrag;
    request.reply["password"] = member.password;
    // The first member is controlling (RFC 8445 §6.1.1 lets the agents agree on roles; the
    // coordinator decides for them): towards every later member. peer events repeat it per pair.
    request.reply["controlling"] = room.members.empty();
    request.reply["members"] = room.members.size() + 1;
    request.reply["turn"] = turn;
    request.reply["stun"] = config_.stun_servers;
    request.reply["relay"] = config_.relay_servers;

    auto peer_event = [&](const Member& about, bool receiver_controlling) {
        json candidates_json = json::array();
        for (const Candidate& c : about.candidates)
            candidates_json.push_back({{"type", c.type}, {"address", c.address}});
        return json{{"event", "peer"},
                    {"room", room_name},
                    {"name", about.name},
                    {"candidates", std::move(candidates_json)},
                    {"nat_type", about.nat_type},
                    {"region", about.region},
                    {"ufrag", about.ufrag},
                    {"password", about.password},
                    {"controlling", receiver_controlling}};
    };
    for (const Member& other : room.members) {
        // Each side learns the other's credentials: its remote_ufrag and remote_password.
        push(other.connection, peer_event(member, true), out);
        push(request.connection, peer_event(other, false), out);
    }
    room.members.push_back(std::move(member));
}

void Coordinator::leave_room(ConnectionId connection, const std::string& room_name,
                             Effects& out) {
    const auto room = rooms_.find(room_name);
    if (room == rooms_.end()) return;
    auto& members = room->second.members;
    const auto it = std::find_if(members.begin(), members.end(),
                                 [&](const Member& m) { return m.connection == connection; });
    if (it == members.end()) return;
    const std::string name = it->name;
    members.erase(it);
    if (room->second.sfu) {
        // A later member of the same name is another participant: its nodes are told again.
        auto& punched = room->second.sfu->punched;
        std::erase_if(punched, [&](const auto& entry) { return entry.first == name; });
    }
    for (const Member& other : members)
        push(other.connection, {{"event", "peer_left"}, {"room", room_name}, {"name", name}}, out);
    if (members.empty()) rooms_.erase(room);
    const auto state = connections_.find(connection);
    if (state != connections_.end()) state->second.rooms.erase(room_name);
}

void Coordinator::op_leave(Request& request, Effects& out) {
    const std::string room_name = request.room();
    if (connections_.at(request.connection).rooms.count(room_name) == 0)
        refuse(CoordError::not_found,
               "this connection is not in room \"" + room_name + "\"; nothing to leave");
    leave_room(request.connection, room_name, out);
    request.reply["room"] = room_name;
}

void Coordinator::op_candidates(Request& request, Effects& out) {
    const std::string room_name = request.room();
    std::vector<Candidate> added =
        request.candidates(true, config_.limits.max_candidates_per_member);
    if (connections_.at(request.connection).rooms.count(room_name) == 0)
        refuse(CoordError::not_found, "this connection is not in room \"" + room_name +
                                          "\"; join it before sending candidates");
    Room& room = rooms_.at(room_name);
    Member& self = *std::find_if(room.members.begin(), room.members.end(), [&](const Member& m) {
        return m.connection == request.connection;
    });
    // Every candidate the request named goes out, repeated ones too (a path change may send an
    // address again on purpose); each is kept once, so that a member who joins later learns
    // them in its peer event.
    json sent = json::array();
    std::vector<Candidate> fresh;
    for (Candidate& c : added) {
        sent.push_back({{"type", c.type}, {"address", c.address}});
        const bool known =
            std::any_of(self.candidates.begin(), self.candidates.end(), [&](const Candidate& k) {
                return k.type == c.type && k.address == c.address;
            }) ||
            std::any_of(fresh.begin(), fresh.end(), [&](const Candidate& k) {
                return k.type == c.type && k.address == c.address;
            });
        if (!known) fresh.push_back(std::move(c));
    }
    if (self.candidates.size() + fresh.size() > config_.limits.max_candidates_per_member)
        refuse_limit("max_candidates_per_member", config_.limits.max_candidates_per_member,
                     "this member would hold " +
                         std::to_string(self.candidates.size() + fresh.size()) + " candidates");
    self.candidates.insert(self.candidates.end(), fresh.begin(), fresh.end());
    std::size_t delivered = 0;
    for (const Member& other : room.members) {
        if (other.connection == request.connection) continue;
        push(other.connection,
             {{"event", "candidates"}, {"room", room_name}, {"from", self.name}, {"candidates",
                                                                                  sent}},
             out);
        ++delivered;
    }
    request.reply["room"] = room_name;
    request.reply["delivered"] = delivered;
    request.reply["stored"] = self.candidates.size();
}

void Coordinator::op_signal(Request& request, Effects& out) {
    const std::string room_name = request.room();
    const std::string to = request.member_name("to", false);
    const json* data = request.field("data");
    if (data == nullptr || !data->is_object())
        refuse(CoordError::bad_request,
               std::string("\"data\" ") +
                   (data == nullptr ? "is missing" : "must be an object, got " + describe(*data)) +
                   "; expected an object such as {\"kind\": \"moving_to_relay\"}");
    const std::size_t size = coord_line(*data).size() - 1;
    if (size > config_.limits.max_signal_bytes)
        refuse(CoordError::too_large, "\"data\" may take " +
                                          std::to_string(config_.limits.max_signal_bytes) +
                                          " bytes as compact JSON; this one takes " +
                                          std::to_string(size));
    if (connections_.at(request.connection).rooms.count(room_name) == 0)
        refuse(CoordError::not_found, "this connection is not in room \"" + room_name +
                                          "\"; join it before signaling");
    const Room& room = rooms_.at(room_name);
    const Member& self = *std::find_if(
        room.members.begin(), room.members.end(),
        [&](const Member& m) { return m.connection == request.connection; });
    if (!to.empty() && (to == self.name || std::none_of(room.members.begin(), room.members.end(),
                                                        [&](const Member& m) {
                                                            return m.name == to;
                                                        })))
        refuse(CoordError::not_found, "room \"" + room_name + "\" has no other member \"" + to +
                                          "\"; leave \"to\" out to reach every other member");
    std::size_t delivered = 0;
    for (const Member& other : room.members) {
        if (other.connection == request.connection || (!to.empty() && other.name != to)) continue;
        push(other.connection,
             {{"event", "signal"}, {"room", room_name}, {"from", self.name}, {"data", *data}},
             out);
        ++delivered;
    }
    request.reply["room"] = room_name;
    request.reply["delivered"] = delivered;
}

std::uint64_t Coordinator::random_u64() {
    std::array<std::byte, 8> bytes{};
    if (!random_(bytes))
        refuse(CoordError::internal_error,
               "the random generator failed; no SFU session can be begun");
    std::uint64_t value = 0;
    for (const std::byte b : bytes) value = (value << 8) | std::to_integer<std::uint64_t>(b);
    return value;
}

namespace {

punch::SfuNode sfu_node(const NodeEntry& entry) {
    // An unrecognised NAT name counts as unknown, the conservative reading (nat_matrix.h).
    return {entry.node_id,
            entry.info.address,
            punch::nat_type_from_string(entry.info.nat_type).value_or(punch::NatType::unknown),
            entry.info.region,
            entry.info.load,
            entry.last_heard_ms};
}

// The token's session: 16 lowercase hex digits (stun/sfu_token.h).
std::string session_hex(std::uint64_t session) {
    std::array<char, 17> text{};
    std::snprintf(text.data(), text.size(), "%016llx", static_cast<unsigned long long>(session));
    return std::string(text.data(), 16);
}

}  // namespace

std::vector<punch::SfuClient> Coordinator::sfu_clients(
    const Room& room, ConnectionId asking,
    const std::map<std::uint64_t, std::uint32_t>& rtt_us) const {
    // Every member, in join order: the first two are the selection's clients A and B.
    std::vector<punch::SfuClient> clients;
    for (const Member& m : room.members)
        clients.push_back(
            {punch::nat_type_from_string(m.nat_type).value_or(punch::NatType::unknown), m.region,
             m.connection == asking ? rtt_us : std::map<std::uint64_t, std::uint32_t>{}});
    return clients;
}

punch::SfuSelectConfig Coordinator::sfu_select_config() const {
    return {config_.sfu.full_load, nodes_.ttl_ms(), config_.sfu.race};
}

void Coordinator::begin_sfu_session(Room& room, std::uint64_t id, const Member& asking,
                                    const std::map<std::uint64_t, std::uint32_t>& rtt_us,
                                    CoordTime now) {
    SfuSession session;
    session.id = id;
    // Only the asking member's round trips are known now (each member sends its own with its
    // request); the order is fixed here all the same, so that every member tries the same
    // nodes in the same order (docs/sfu.md).
    std::vector<punch::SfuNode> nodes;
    for (const NodeEntry* entry : nodes_.list(NodeRole::sfu)) nodes.push_back(sfu_node(*entry));
    const punch::SfuSelection selection =
        punch::select_sfu_nodes(sfu_clients(room, asking.connection, rtt_us), nodes,
                                now.monotonic_ms, sfu_select_config());
    for (const punch::SfuCandidate& c : selection.candidates) {
        if (session.order.size() == config_.sfu.max_candidates) break;
        session.order.push_back(c.id);
    }
    session.dropped = selection.dropped;
    room.sfu = std::move(session);
    ++counters_.sfu_sessions;
}

void Coordinator::op_sfu(Request& request, CoordTime now, Effects& out) {
    const std::string room_name = request.room();
    const std::map<std::uint64_t, std::uint32_t> rtt_us =
        request.rtt_ms(config_.limits.max_nodes);
    Connection& connection = connections_.at(request.connection);
    if (connection.rooms.count(room_name) == 0)
        refuse(CoordError::not_found, "this connection is not in room \"" + room_name +
                                          "\"; join it before asking for SFU nodes");
    Room& room = rooms_.at(room_name);
    if (room.members.size() < 2)
        refuse(CoordError::not_found,
               "room \"" + room_name +
                   "\" has no other member yet; ask for SFU nodes once a peer has joined (its "
                   "peer event)");
    if (connection.sfu_requests >= config_.limits.max_sfu_requests_per_connection)
        refuse_limit("max_sfu_requests_per_connection",
                     config_.limits.max_sfu_requests_per_connection,
                     "this connection has asked for SFU nodes that many times; reconnect to ask "
                     "again");
    const Member& self =
        *std::find_if(room.members.begin(), room.members.end(),
                      [&](const Member& m) { return m.connection == request.connection; });
    request.reply["room"] = room_name;
    request.reply["race"] = config_.sfu.race;
    json candidates = json::array();
    json dropped = json::array();
    auto say_why = [&](std::string_view reason, std::string message) {
        request.reply["reason"] = reason;
        request.reply["message"] = std::move(message);
    };

    if (config_.sfu.token_secret.empty()) {
        request.reply["candidates"] = std::move(candidates);
        request.reply["dropped"] = std::move(dropped);
        say_why("no_token_secret",
                "the coordinator has no sfu.token_secret, so it signs no SFU tokens; go on to "
                "the relay");
        ++connection.sfu_requests;
        ++counters_.sfu_requests;
        return;
    }

    // The token: the coordinator's clock plus the ttl; valid on every node sharing the secret
    // (docs/sfu.md, "Session tokens"). Made before the session is begun, so that a failure
    // leaves no session behind; the session id needs the random source first.
    const bool new_session = !room.sfu;
    const std::uint64_t session_id = new_session ? random_u64() : room.sfu->id;
    const std::uint64_t expiry = now.unix_ms / 1000 + config_.sfu.token_ttl_s;
    std::array<char, stun::sfu_username_max> username_text{};
    std::size_t username_length = 0;
    if (stun::make_sfu_username({expiry, session_id, self.name}, username_text,
                                username_length) != stun::SfuTokenError::ok)
        refuse(CoordError::internal_error,
               "the SFU username for \"" + self.name + "\" could not be made");
    const std::string username(username_text.data(), username_length);
    std::array<char, stun::sfu_password_size> password{};
    stun::make_sfu_password(std::as_bytes(std::span(config_.sfu.token_secret)), username,
                            password);

    if (new_session) begin_sfu_session(room, session_id, self, rtt_us, now);
    SfuSession& session = *room.sfu;
    const std::string session_text = session_hex(session.id);

    // The order is the session's; each node in it is checked again against the directory and
    // the room as they are now: a node gone (expired or disconnected), full, or unable to punch
    // with a member who joined since is dropped from this reply with its reason.
    std::map<std::uint64_t, const NodeEntry*> listed;
    for (const NodeEntry* entry : nodes_.list(NodeRole::sfu)) listed[entry->node_id] = entry;
    std::vector<punch::SfuNode> still_listed;
    for (const std::uint64_t id : session.order)
        if (const auto it = listed.find(id); it != listed.end())
            still_listed.push_back(sfu_node(*it->second));
    const punch::SfuSelection recheck = punch::select_sfu_nodes(
        sfu_clients(room, request.connection, {}), still_listed, now.monotonic_ms,
        sfu_select_config());
    for (const punch::SfuDropped& d : session.dropped)
        dropped.push_back({{"node_id", d.id}, {"reason", std::string(punch::to_string(d.reason))}});

    std::vector<const NodeEntry*> serving;
    for (const std::uint64_t id : session.order) {
        const auto it = listed.find(id);
        std::optional<punch::SfuDrop> reason;
        if (it == listed.end()) {
            reason = punch::SfuDrop::expired;
        } else {
            for (const punch::SfuDropped& d : recheck.dropped)
                if (d.id == id) reason = d.reason;
        }
        if (reason) {
            dropped.push_back(
                {{"node_id", id}, {"reason", std::string(punch::to_string(*reason))}});
            continue;
        }
        const NodeEntry& node = *it->second;
        serving.push_back(&node);
        candidates.push_back({{"node_id", node.node_id},
                              {"address", node.info.address},
                              {"nat_type", node.info.nat_type},
                              {"region", node.info.region},
                              {"load", node.info.load}});
    }
    if (candidates.empty()) {
        if (session.order.empty() && session.dropped.empty())
            say_why("no_nodes", "no SFU node was registered when this session began; go on to "
                                "the relay");
        else if (session.order.empty())
            say_why("no_node_serves_all",
                    "no registered SFU node can punch with every member of the room (see "
                    "dropped); go on to the relay");
        else
            say_why("candidates_gone",
                    "every node selected for this session has gone or can no longer serve it "
                    "(see dropped); go on to the relay");
    }

    request.reply["session"] = session_text;
    request.reply["username"] = username;
    request.reply["password"] = std::string(password.data(), password.size());
    request.reply["expires_unix"] = expiry;
    request.reply["candidates"] = std::move(candidates);
    request.reply["dropped"] = std::move(dropped);

    // docs/sfu.md, "A node behind a NAT": each candidate node sends its own test packets to the
    // member's addresses so that its NAT opens towards them. Relayed addresses are left out
    // (the node reaches the member directly or not at all); once per (session, member, node),
    // so that asking again costs the nodes nothing.
    json addresses = json::array();
    for (const Candidate& c : self.candidates)
        if (c.type != "relay") addresses.push_back(c.address);
    if (!addresses.empty()) {
        for (const NodeEntry* node : serving) {
            if (!session.punched.insert({self.name, node->node_id}).second) continue;
            push(node->connection,
                 {{"event", "sfu_punch"},
                  {"session", session_text},
                  {"participant", self.name},
                  {"username", username},
                  {"addresses", addresses}},
                 out);
            ++counters_.sfu_punches;
        }
    }
    ++connection.sfu_requests;
    ++counters_.sfu_requests;
}

void Coordinator::op_report(Request& request, CoordTime now) {
    OutcomeReport report;
    report.room = request.room();
    const json* rung = request.field("rung");
    if (rung == nullptr || !rung->is_string() ||
        !rung_from_string(rung->get_ref<const std::string&>(), report.rung))
        refuse(CoordError::bad_request,
               "\"rung\" must be \"p2p\", \"sfu\", \"relay\" or \"failed\", got " +
                   (rung == nullptr ? std::string("nothing") : describe(*rung)));
    // A connected call says how long it took; a failed one may say how long it tried.
    report.time_to_connect_ms = request.integer("time_to_connect_ms", report.rung != Rung::failed,
                                                0, 3600000, " (milliseconds)");
    report.local_nat = request.nat_type("local_nat");
    report.remote_nat = request.nat_type("remote_nat");
    if (report.local_nat.empty()) report.local_nat = "unknown";
    if (report.remote_nat.empty()) report.remote_nat = "unknown";
    Connection& connection = connections_.at(request.connection);
    if (connection.reports >= config_.limits.max_reports_per_connection)
        refuse_limit("max_reports_per_connection", config_.limits.max_reports_per_connection,
                     "this connection has reported that many outcomes; reconnect to report more");
    ++connection.reports;
    if (const auto room = rooms_.find(report.room); room != rooms_.end()) {
        for (const Member& m : room->second.members)
            if (m.connection == request.connection) report.reporter = m.name;
    }
    report.received_unix_ms = now.unix_ms;
    outcomes_.add(std::move(report));
    request.reply["stored"] = outcomes_.size();
}

void Coordinator::op_outcomes(Request& request) {
    request.reply.update(outcomes_.aggregate());
}

void Coordinator::op_register(Request& request, CoordTime now) {
    NodeInfo info;
    const json* role = request.field("role");
    if (role == nullptr || !role->is_string() ||
        !node_role_from_string(role->get_ref<const std::string&>(), info.role))
        refuse(CoordError::bad_request,
               "\"role\" must be \"stun\", \"relay\" or \"sfu\", got " +
                   (role == nullptr ? std::string("nothing") : describe(*role)));
    const json* address = request.field("address");
    stun::Address parsed;
    if (address == nullptr || !address->is_string() ||
        !parse_ip_port(address->get_ref<const std::string&>(), parsed))
        refuse(CoordError::bad_request,
               "\"address\" must be the node's public \"ip:port\" (\"203.0.113.2:3478\"), got " +
                   (address == nullptr ? std::string("nothing") : describe(*address)));
    std::array<char, 48> text{};
    info.address.assign(text.data(), parsed.format(text));
    info.nat_type = request.nat_type("nat_type");
    if (info.nat_type.empty()) info.nat_type = "none";
    info.region = request.region();
    info.load = static_cast<std::uint32_t>(
        request.integer("load", false, 0, 1000000, " (per-mille of capacity)").value_or(0));
    if (!config_.node_secret.empty()) {
        const json* secret = request.field("secret");
        if (secret == nullptr || !secret->is_string() ||
            secret->get_ref<const std::string&>() != config_.node_secret)
            refuse(CoordError::unauthorized,
                   std::string("register needs \"secret\": the coordinator's node secret") +
                       (secret == nullptr ? " (absent)" : " (this one does not match)"));
    }
    std::uint64_t node_id = 0;
    if (nodes_.register_node(request.connection, info, now.monotonic_ms, node_id) ==
        NodeDirectory::RegisterResult::full)
        refuse_limit("max_nodes", nodes_.capacity(),
                     "the directory lists that many nodes; try again later");
    request.reply["node_id"] = node_id;
    request.reply["ttl_ms"] = nodes_.ttl_ms();
}

void Coordinator::op_heartbeat(Request& request, CoordTime now) {
    const auto* entry = nodes_.find(request.connection);
    const std::uint32_t load = static_cast<std::uint32_t>(
        request.integer("load", false, 0, 1000000, " (per-mille of capacity)")
            .value_or(entry != nullptr ? entry->info.load : 0));
    if (!nodes_.heartbeat(request.connection, load, now.monotonic_ms))
        refuse(CoordError::not_found,
               "this connection has no node in the directory (never registered, or expired "
               "after its ttl); send register again");
    request.reply["ttl_ms"] = nodes_.ttl_ms();
}

void Coordinator::op_nodes(Request& request, CoordTime now) {
    std::optional<NodeRole> role;
    if (const json* filter = request.field("role")) {
        NodeRole parsed{};
        if (!filter->is_string() ||
            !node_role_from_string(filter->get_ref<const std::string&>(), parsed))
            refuse(CoordError::bad_request,
                   "\"role\" must be \"stun\", \"relay\" or \"sfu\" (or absent for all), got " +
                       describe(*filter));
        role = parsed;
    }
    json list = json::array();
    for (const NodeEntry* node : nodes_.list(role))
        list.push_back({{"node_id", node->node_id},
                        {"role", std::string(to_string(node->info.role))},
                        {"address", node->info.address},
                        {"nat_type", node->info.nat_type},
                        {"region", node->info.region},
                        {"load", node->info.load},
                        {"age_ms", now.monotonic_ms - node->registered_ms},
                        {"last_heard_ms", now.monotonic_ms - node->last_heard_ms}});
    request.reply["nodes"] = std::move(list);
    request.reply["ttl_ms"] = nodes_.ttl_ms();
    request.reply["expired"] = nodes_.expired_count();
}

void Coordinator::closed(ConnectionId connection, CoordTime /*now*/, Effects& out) {
    const auto it = connections_.find(connection);
    if (it == connections_.end()) return;
    const std::set<std::string> rooms = it->second.rooms;
    for (const std::string& room : rooms) leave_room(connection, room, out);
    nodes_.remove(connection);
    const auto count = connections_per_address_.find(it->second.peer_address);
    if (count != connections_per_address_.end() && --count->second == 0)
        connections_per_address_.erase(count);
    connections_.erase(connection);
}

void Coordinator::tick(CoordTime now, Effects& out) {
    for (const ConnectionId connection : nodes_.expire(now.monotonic_ms))
        push(connection,
             {{"event", "node_expired"},
              {"message", "no heartbeat for more than " + std::to_string(nodes_.ttl_ms()) +
                              " ms; the node is out of the directory until it registers again"}},
             out);
    for (auto& [connection, state] : connections_) {
        if (now.monotonic_ms <= state.last_line_ms + config_.idle_timeout_ms) continue;
        // Once: a connection already told waits for the server to close it.
        if (std::find(out.close.begin(), out.close.end(), connection) != out.close.end())
            continue;
        ++counters_.connections_idle;
        push(connection,
             {{"event", "closing"},
              {"code", "idle_timeout"},
              {"message", "nothing received for " + std::to_string(config_.idle_timeout_ms) +
                              " ms; send {\"op\": \"ping\"} more often than that"}},
             out);
        out.close.push_back(connection);
        state.last_line_ms = UINT64_MAX - config_.idle_timeout_ms;  // not again
    }
}

std::optional<std::uint64_t> Coordinator::next_deadline() const {
    std::optional<std::uint64_t> earliest = nodes_.next_expiry();
    for (const auto& [connection, state] : connections_) {
        if (state.last_line_ms >= UINT64_MAX - config_.idle_timeout_ms) continue;
        const std::uint64_t at = state.last_line_ms + config_.idle_timeout_ms + 1;
        if (!earliest || at < *earliest) earliest = at;
    }
    return earliest;
}

}  // namespace control
