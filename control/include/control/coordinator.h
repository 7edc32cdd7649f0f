// punchcoord's protocol (docs/protocol.md) as a pure state machine: rooms and signaling, the node
// directory, credential issue, SFU node selection and session tokens (docs/sfu.md) and outcome
// reports (design.md §4).
//
// The server (control/coord_server.h) owns the sockets and frames lines; everything a line means
// happens here. Each call takes the connection it concerns and the time, and appends what must
// be sent (to that connection and to others) and which connections must be closed to an
// Effects, so that unit tests drive rooms, events, limits, expiry and hostile input without a
// socket or a clock. Not thread-safe: the coordinator runs on one thread.
//
// Wire format: one JSON object per line each way, UTF-8, at most `max_line_bytes` a line.
//   request  {"op": "join", "id": 7, ...}
//   reply    {"id": 7, "op": "join", "ok": true, ...}
//            {"id": 7, "op": "join", "ok": false,
//             "error": {"code": "limit", "message": "...", "limit": "max_rooms"}}
//   event    {"event": "peer", "room": "r1", ...}                     (pushed; no id)
// Error codes live in one table with help text (COORD_ERROR_CODES), like the management
// socket's (control/protocol.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/node_directory.h"
#include "control/outcomes.h"
#include "punch/sfu_select.h"

namespace control {

/// The protocol's version, in hello's reply; raised when a change breaks old clients.
inline constexpr int coord_protocol_version = 1;

// X(name, help)
#define COORD_ERROR_CODES(X)                                                                 \
    X(bad_json, "the line is not valid JSON in UTF-8, or nests deeper than the limit")       \
    X(bad_request,                                                                           \
      "the line is not a JSON object with a string \"op\", or a field is missing, of the "   \
      "wrong type, or out of its range (the message names it)")                              \
    X(unknown_op, "no operation has this name (hello lists them)")                          \
    X(too_large, "the line, or a signal's data, is larger than the coordinator accepts")     \
    X(limit, "a configured limit is reached; \"limit\" names it (e.g. max_rooms)")           \
    X(not_found, "the room, member or node named is not there")                              \
    X(conflict, "the name is taken in the room, or this connection is in it already")       \
    X(unauthorized, "register needs the node secret the coordinator is configured with")     \
    X(internal_error, "the coordinator failed to carry the request out (a bug: report it)")

enum class CoordError : std::uint8_t {
#define COORD_ERROR_ENUMERATOR(name, help) name,
    COORD_ERROR_CODES(COORD_ERROR_ENUMERATOR)
#undef COORD_ERROR_ENUMERATOR
};

struct CoordErrorInfo {
    std::string_view name;
    std::string_view help;
};

inline constexpr std::array coord_error_codes = {
#define COORD_ERROR_INFO(name, help) CoordErrorInfo{#name, help},
    COORD_ERROR_CODES(COORD_ERROR_INFO)
#undef COORD_ERROR_INFO
};

[[nodiscard]] constexpr std::string_view to_string(CoordError code) noexcept {
    return coord_error_codes[static_cast<std::size_t>(code)].name;
}

/// Every bound the coordinator enforces; the names are the config keys ([limits] in the TOML
/// file, --max-... flags) and what a `limit` error's "limit" field says.
struct CoordLimits {
    std::size_t max_connections = 1000;
    std::size_t max_connections_per_address = 64;
    std::size_t max_rooms = 10000;
    std::size_t max_members_per_room = 2;
    std::size_t max_rooms_per_connection = 4;
    std::size_t max_line_bytes = 16 * 1024;
    std::size_t max_candidates_per_member = 16;
    std::size_t max_signal_bytes = 4 * 1024;
    std::size_t max_reports = 10000;
    std::size_t max_reports_per_connection = 256;
    std::size_t max_nodes = 1000;
    /// sfu requests one connection may make: each is cheap after the session's first (one
    /// HMAC, a reply of at most sfu.max_candidates nodes and the dropped list), but its reply
    /// is larger than its line.
    std::size_t max_sfu_requests_per_connection = 256;
    /// Nesting of objects and arrays in a line: a deeper one is refused before it is parsed.
    std::size_t max_json_depth = 16;
    /// Reply and event bytes waiting for a client that does not read: past this it is closed.
    std::size_t max_output_bytes = 1024 * 1024;
};

/// The SFU rung (docs/sfu.md, "The coordinator's part"): how the `sfu` op selects nodes and
/// signs session tokens.
struct CoordSfuConfig {
    /// The secret session tokens are signed with (the nodes' sfu.token_secrets holds it);
    /// empty: `sfu` answers with no candidates and the clients go on to the relay.
    std::string token_secret;
    std::uint64_t token_ttl_s = 3600;
    /// How many of the first candidates clients try at once.
    std::size_t race = 1;
    /// A node at or above this load is left out (per-mille: 1000 is full).
    std::uint32_t full_load = 1000;
    /// How many of the ordered nodes a session keeps and hands out (each gets a sfu_punch per
    /// member): the clients try them one by one, so a long tail only costs events.
    std::size_t max_candidates = 8;
};

struct CoordinatorConfig {
    std::vector<std::string> stun_servers;   ///< "host:port", as hello and join give them
    std::vector<std::string> relay_servers;  ///< TURN servers, "host:port"
    /// TURN REST shared secret (the engines' relay.rest_secrets, coturn's static-auth-secret);
    /// empty: join issues no TURN credentials.
    std::string rest_secret;
    std::uint64_t rest_ttl_s = 3600;
    /// Nodes must send it in register; empty: any connection may register.
    std::string node_secret;
    std::uint64_t idle_timeout_ms = 30000;
    std::uint64_t node_ttl_ms = 15000;
    CoordSfuConfig sfu;
    CoordLimits limits;
};

/// The time of a call: monotonic for timeouts and expiry, Unix for credentials and reports.
struct CoordTime {
    std::uint64_t monotonic_ms = 0;
    std::uint64_t unix_ms = 0;
};

/// What a call asks the server to do.
struct Effects {
    struct Message {
        ConnectionId to;
        std::string line;  ///< one JSON object and '\n'
    };
    std::vector<Message> messages;
    /// Close after what is queued for it has been sent.
    std::vector<ConnectionId> close;
};

struct CoordCounters {
    std::uint64_t connections_accepted = 0;
    std::uint64_t connections_refused = 0;  ///< max_connections or max_connections_per_address
    std::uint64_t connections_idle = 0;     ///< closed by the idle timeout
    std::uint64_t connections_slow = 0;     ///< closed: output over max_output_bytes
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;  ///< requests answered with an error
    std::uint64_t lines_too_long = 0;
    std::uint64_t joins = 0;
    std::uint64_t rooms_created = 0;
    std::uint64_t events = 0;  ///< pushed lines
    std::uint64_t sfu_requests = 0;  ///< sfu requests answered ok
    std::uint64_t sfu_sessions = 0;  ///< SFU sessions begun (one per room that asked)
    std::uint64_t sfu_punches = 0;   ///< sfu_punch events sent to nodes
};

class Coordinator {
public:
    /// `random` fills its argument with cryptographically random bytes (false on failure);
    /// credentials are drawn from it.
    Coordinator(CoordinatorConfig config, std::function<bool(std::span<std::byte>)> random);

    /// A connection from `peer_address` (its IP, for the per-address limit) was accepted.
    /// False when a limit refuses it: the effects then hold its error line and its close.
    bool open(ConnectionId connection, std::string_view peer_address, CoordTime now,
              Effects& out);
    /// One line, without its '\n' (a trailing '\r' is tolerated).
    void handle_line(ConnectionId connection, std::string_view line, CoordTime now,
                     Effects& out);
    /// The connection sent more than max_line_bytes without a '\n': an error, then closed.
    void line_too_long(ConnectionId connection, Effects& out);
    /// The server closed the connection because its output grew past max_output_bytes.
    void note_slow(ConnectionId /*connection*/) noexcept { ++counters_.connections_slow; }
    /// The connection is gone (closed by either side): it leaves its rooms (the others get
    /// peer_left) and its node leaves the directory.
    void closed(ConnectionId connection, CoordTime now, Effects& out);
    /// Closes idle connections and expires nodes; call at next_deadline() at the latest.
    void tick(CoordTime now, Effects& out);
    [[nodiscard]] std::optional<std::uint64_t> next_deadline() const;

    [[nodiscard]] const CoordCounters& counters() const noexcept { return counters_; }
    [[nodiscard]] std::size_t connection_count() const noexcept { return connections_.size(); }
    [[nodiscard]] std::size_t room_count() const noexcept { return rooms_.size(); }
    [[nodiscard]] const NodeDirectory& nodes() const noexcept { return nodes_; }
    [[nodiscard]] const OutcomeStore& outcomes() const noexcept { return outcomes_; }
    [[nodiscard]] const CoordinatorConfig& config() const noexcept { return config_; }

private:
    struct Candidate {
        std::string type;
        std::string address;
    };
    struct Member {
        ConnectionId connection = 0;
        std::string name;
        std::vector<Candidate> candidates;
        std::string nat_type;
        std::string region;
        std::string ufrag;
        std::string password;
        std::uint64_t joined_order = 0;  ///< earlier members are controlling towards later
    };
    /// The room's SFU session (docs/sfu.md): begun by the first `sfu` request, ended with the
    /// room. Its nodes are selected once, so that every member tries them in the same order.
    struct SfuSession {
        std::uint64_t id = 0;  ///< random: the token's session, the same for every member
        std::vector<std::uint64_t> order;           ///< node ids, best first
        std::vector<punch::SfuDropped> dropped;     ///< left out at selection, and why
        /// (member, node) pairs the node was sent a sfu_punch for: once each.
        std::set<std::pair<std::string, std::uint64_t>> punched;
    };
    struct Room {
        std::vector<Member> members;  ///< in join order
        std::optional<SfuSession> sfu;
    };
    struct Connection {
        std::string peer_address;
        std::uint64_t last_line_ms = 0;
        std::set<std::string> rooms;
        std::size_t reports = 0;
        std::size_t sfu_requests = 0;
    };
    class Request;  // the parsed line and the reply being built (coordinator.cc)

    void dispatch(Request& request, CoordTime now, Effects& out);
    void op_hello(Request& request, CoordTime now);
    void op_join(Request& request, CoordTime now, Effects& out);
    void op_leave(Request& request, Effects& out);
    void op_candidates(Request& request, Effects& out);
    void op_signal(Request& request, Effects& out);
    void op_report(Request& request, CoordTime now);
    void op_outcomes(Request& request);
    void op_register(Request& request, CoordTime now);
    void op_heartbeat(Request& request, CoordTime now);
    void op_nodes(Request& request, CoordTime now);
    void op_sfu(Request& request, CoordTime now, Effects& out);

    void leave_room(ConnectionId connection, const std::string& room_name, Effects& out);
    [[nodiscard]] std::string random_text(std::size_t length);
    nlohmann::json turn_credentials(const std::string& room, const std::string& name,
                                    CoordTime now) const;
    [[nodiscard]] std::uint64_t random_u64();
    /// The room's members as select_sfu_nodes() takes them, `asking` with its round trips.
    [[nodiscard]] std::vector<punch::SfuClient> sfu_clients(
        const Room& room, ConnectionId asking,
        const std::map<std::uint64_t, std::uint32_t>& rtt_us) const;
    [[nodiscard]] punch::SfuSelectConfig sfu_select_config() const;
    void begin_sfu_session(Room& room, std::uint64_t id, const Member& asking,
                           const std::map<std::uint64_t, std::uint32_t>& rtt_us, CoordTime now);
    void push(ConnectionId to, const nlohmann::json& event, Effects& out);

    CoordinatorConfig config_;
    std::function<bool(std::span<std::byte>)> random_;
    std::unordered_map<ConnectionId, Connection> connections_;
    std::unordered_map<std::string, std::size_t> connections_per_address_;
    std::map<std::string, Room> rooms_;
    std::uint64_t next_join_order_ = 1;
    NodeDirectory nodes_;
    OutcomeStore outcomes_;
    CoordCounters counters_;
};

/// The depth of the deepest nesting of objects and arrays in `text`, counted outside strings,
/// stopping once it passes `limit` (so that a hostile line costs one pass). Not a validator:
/// the JSON parser still judges the line.
[[nodiscard]] std::size_t json_nesting_depth(std::string_view text, std::size_t limit) noexcept;

/// A reply or event as one line: compact JSON and '\n'; invalid UTF-8 replaced by U+FFFD.
[[nodiscard]] std::string coord_line(const nlohmann::json& message);

}  // namespace control
