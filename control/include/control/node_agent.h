// The engine's link to punchcoord as an SFU node (design.md §4, docs/sfu.md "A node behind a
// NAT", docs/protocol.md "register, heartbeat, nodes, node_expired"): the control thread's
// client of the coordinator, driven by poll() from the control loop, with no threads.
//
//   discovering  NodeDiscovery learns the public SFU address and the NAT type from the SFU
//                port (skipped when no STUN server is configured: the configured public
//                address, or the local one, with the configured NAT type); a run with no
//                answer is retried after `discovery_retry`
//   connecting   a non-blocking TCP connect, bounded by `connect_timeout`; on failure, or
//                when a connection ends, the next try waits a backoff that doubles from
//                `reconnect_min` to `reconnect_max` (reset by a registration)
//   registering  `register` (role sfu, public address, nat_type, region, load, secret)
//   registered   `heartbeat` with the current load every ttl/3 (the ttl from the reply);
//                `node_expired`, or a heartbeat answered not_found, registers again
// Draining (punchctl drain, set_draining()): the load reported is the protocol's maximum,
// 1000000, at or above any punchcoord's sfu.full_load, so that the coordinator leaves the
// node out of every later candidate list (docs/protocol.md, "sfu": `full`); a heartbeat goes
// at once rather than at the next ttl/3. An undrain reports the real load again, at once.
// While draining, `sfu_punch` orders are dropped (counted as `draining`): the node would answer
// the participant's admission 508.
// A request unanswered for `request_timeout` ends the connection (a dead coordinator, or a
// NAT on the path that forgot the connection) and the agent reconnects.
//
// Events: `sfu_punch` (docs/sfu.md, "The coordinator's part") is validated and handed to
// NodePuncher; a bad one is counted and logged (rate-limited by the log) and dropped; other
// events are ignored, as the protocol asks of clients.
//
// Datagrams: the agent sends through the owner's punch::DatagramSender from the SFU address;
// the owner hands back what arrives at the SFU address for it (STUN responses, which the
// workers do not answer) through on_datagram().
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/node_discovery.h"
#include "control/node_punch.h"
#include "punch/clock.h"
#include "punch/stun_transaction.h"
#include "punch/timer_queue.h"
#include "punch/udp_socket.h"
#include "stun/address.h"

namespace control {

/// What the agent needs; control/node_config.h reads it from `[node]`.
struct NodeAgentConfig {
    std::string coordinator;            ///< "host:port" as configured (for messages)
    stun::Address coordinator_address;  ///< resolved
    /// The SFU address: the engine's IP and sfu.port (a mapped address equal to it: no NAT).
    stun::Address local;
    std::string region;
    std::string node_secret;  ///< punchcoord's node secret ("" when it has none)
    /// Keys the node's own test packets: the first of sfu.token_secrets.
    std::vector<std::byte> token_secret;
    /// An RFC 5780 server's primary address; absent: no discovery.
    std::optional<stun::Address> stun_server;
    /// Without discovery: the address to register (absent: `local`), and its NAT type.
    std::optional<stun::Address> public_address;
    std::string nat_type = "none";
    punch::Time connect_timeout = std::chrono::seconds(5);
    punch::Time reconnect_min = std::chrono::seconds(1);
    punch::Time reconnect_max = std::chrono::seconds(30);
    punch::Time request_timeout = std::chrono::seconds(5);
    /// Each discovery phase's bound (RFC 8489 §6.2.1 schedule from a 500 ms RTO, cut here).
    punch::RetransmissionPolicy discovery_policy{std::chrono::milliseconds(500), 7, 16,
                                                 std::chrono::seconds(3)};
    punch::Time discovery_retry = std::chrono::seconds(30);
    PunchPacing punch;
    /// A line from the coordinator longer than this ends the connection.
    std::size_t max_line_bytes = 64 * 1024;
};

enum class NodeAgentState : std::uint8_t {
    discovering,
    waiting,      ///< for the next connect (backoff) or the next discovery run
    connecting,
    registering,
    registered,
};

[[nodiscard]] std::string_view to_string(NodeAgentState state) noexcept;

/// Why an `sfu_punch` event was dropped. One table, name and help.
#define CONTROL_PUNCH_EVENT_REJECTIONS(X)                                                    \
    X(bad_username, "\"username\" missing or not an SFU token username (stun/sfu_token.h)")  \
    X(expired, "the username's expiry is before the node's clock")                         \
    X(mismatch, "\"session\" or \"participant\" disagrees with the username")               \
    X(bad_addresses, "\"addresses\" missing, empty, too long, or an entry not \"ip:port\"")  \
    X(no_usable_address, "no address of the SFU address's family")                         \
    X(no_secret, "the node has no sfu.token_secrets to key its requests with")             \
    X(draining, "the node drains (punchctl drain): it admits no new leg to open its NAT for")

enum class PunchEventRejection : std::uint8_t {
#define CONTROL_PUNCH_EVENT_ENUM(name, help) name,
    CONTROL_PUNCH_EVENT_REJECTIONS(CONTROL_PUNCH_EVENT_ENUM)
#undef CONTROL_PUNCH_EVENT_ENUM
        count
};

[[nodiscard]] std::string_view to_string(PunchEventRejection rejection) noexcept;
[[nodiscard]] std::string_view help(PunchEventRejection rejection) noexcept;

/// Validates an `sfu_punch` event into `out`. `family` is the SFU address's: an address of
/// the other family cannot be reached from it and is left out (an order with none left is
/// no_usable_address). At most 16 addresses (the coordinator's max_candidates_per_member).
/// Errors: every PunchEventRejection but no_secret and draining (the agent's own state).
[[nodiscard]] std::optional<PunchEventRejection> parse_punch_event(const nlohmann::json& event,
                                                                   std::uint64_t now_unix,
                                                                   stun::AddressFamily family,
                                                                   PunchOrder& out);

struct NodeAgentCounters {
    std::uint64_t connects = 0;           ///< connections established
    std::uint64_t connect_failures = 0;   ///< refused, failed or timed out
    std::uint64_t disconnects = 0;        ///< established connections that ended
    std::uint64_t registrations = 0;      ///< register answered ok
    std::uint64_t register_refusals = 0;  ///< register answered with an error
    std::uint64_t heartbeats = 0;         ///< heartbeat answered ok
    std::uint64_t expiries = 0;           ///< node_expired, or heartbeat not_found
    std::uint64_t request_timeouts = 0;   ///< a request unanswered for request_timeout
    std::uint64_t bad_lines = 0;          ///< not JSON, not an object, or too long
    std::uint64_t punch_events = 0;       ///< sfu_punch events taken
    std::array<std::uint64_t, static_cast<std::size_t>(PunchEventRejection::count)>
        punch_events_rejected{};
    std::uint64_t discovery_runs = 0;
    std::uint64_t datagrams_ignored = 0;  ///< offered datagrams that were nobody's answer
};

class NodeAgent {
public:
    /// `load` gives the figure for register and heartbeat (per-mille of capacity);
    /// `unix_now` the wall clock in seconds (token expiry); both are called from poll().
    NodeAgent(NodeAgentConfig config, const punch::Clock& clock,
              punch::DatagramSender& transport, std::function<std::uint32_t()> load,
              std::function<std::uint64_t()> unix_now);
    NodeAgent(const NodeAgent&) = delete;
    NodeAgent& operator=(const NodeAgent&) = delete;
    ~NodeAgent();

    /// Everything due: timers (discovery, punching, heartbeat, timeouts, backoff) and the
    /// coordinator connection's I/O (non-blocking; the descriptor's readiness is asked with a
    /// zero-timeout poll(2), so the caller may call this on a timer alone or also when
    /// fd() is ready).
    void poll();

    /// The coordinator connection's descriptor, -1 when there is none, and what to wait for
    /// on it (POLLIN, with POLLOUT while connecting or while output waits).
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] short events() const noexcept;
    /// The earliest time poll() has something to do (timers); nullopt when only I/O can wake it.
    [[nodiscard]] std::optional<punch::Time> next_deadline() const;

    /// Offers a datagram that arrived at the SFU address for the agent (a STUN response);
    /// true when the discovery or the puncher took it.
    bool on_datagram(const stun::Address& from, std::span<const std::byte> datagram);

    /// The node drains (punchctl drain) or no longer does: the load reported from now is
    /// `draining_load` or the real one, and punchcoord is told at once when registered (else
    /// by the registration, or right after it).
    void set_draining(bool draining);
    [[nodiscard]] bool draining() const noexcept { return draining_; }
    /// The load a draining node reports: docs/protocol.md's maximum, the top of punchcoord's
    /// sfu.full_load range, so the node counts as full whatever the coordinator's setting.
    static constexpr std::uint32_t draining_load = 1000000;

    [[nodiscard]] NodeAgentState state() const noexcept { return state_; }
    /// After a registration: the coordinator's id for this node (it changes after an expiry).
    [[nodiscard]] std::optional<std::uint64_t> node_id() const noexcept { return node_id_; }
    /// What is registered (or will be): the public address and the NAT type's name.
    [[nodiscard]] const std::optional<stun::Address>& public_address() const noexcept {
        return public_address_;
    }
    [[nodiscard]] const std::string& nat_type() const noexcept { return nat_type_; }
    [[nodiscard]] const std::optional<DiscoveryReport>& discovery() const noexcept {
        return discovery_report_;
    }
    [[nodiscard]] const NodeAgentCounters& counters() const noexcept { return counters_; }
    [[nodiscard]] const PunchCounters& punch_counters() const noexcept {
        return puncher_.counters();
    }
    /// Everything above as JSON (a management command's answer, the exit report).
    [[nodiscard]] nlohmann::json status() const;

private:
    void start_discovery();
    void on_discovered(const DiscoveryReport& report);
    void start_connect();
    void on_connected();
    void close_connection(const std::string& why, bool was_connected);
    void schedule_reconnect();
    void do_io();
    void read_lines();
    void flush();
    void handle_line(std::string_view line);
    void handle_reply(const nlohmann::json& reply);
    void handle_event(const nlohmann::json& event);
    void send_request(const std::string& op, nlohmann::json fields);
    void send_register();
    void send_heartbeat();
    // The figure for register and heartbeat: draining_load while draining, else load_().
    [[nodiscard]] std::uint32_t reported_load() const;

    NodeAgentConfig config_;
    const punch::Clock& clock_;
    std::function<std::uint32_t()> load_;
    std::function<std::uint64_t()> unix_now_;
    punch::TimerQueue timers_;
    NodeDiscovery discovery_;
    NodePuncher puncher_;

    NodeAgentState state_ = NodeAgentState::waiting;
    std::optional<stun::Address> public_address_;
    std::string nat_type_;
    std::optional<DiscoveryReport> discovery_report_;
    std::optional<std::uint64_t> node_id_;
    punch::Time ttl_{0};
    bool draining_ = false;
    bool reported_draining_ = false;  // what the last register or heartbeat said

    int fd_ = -1;
    bool connecting_ = false;
    punch::Time backoff_{0};
    std::string input_;
    std::string output_;
    std::uint64_t next_id_ = 1;
    struct Pending {
        std::uint64_t id;
        std::string op;
        punch::Time deadline;
    };
    std::vector<Pending> pending_;  // in request order (replies come in that order)
    punch::TimerId connect_timer_ = 0;
    punch::TimerId reconnect_timer_ = 0;
    punch::TimerId heartbeat_timer_ = 0;
    punch::TimerId discovery_timer_ = 0;
    NodeAgentCounters counters_;
};

}  // namespace control
