// The client of punchcoord (docs/protocol.md): signaling for the ladder, on the caller's
// EventLoop, without threads.
//
// One TCP connection carrying one JSON object per line each way. Requests get a client-chosen
// id and a callback, called once with the reply, or with an error when the reply does not come
// within the request timeout or the connection ends. What the coordinator pushes (a peer that
// joined, its candidates, a signal, a peer that left) goes to the on_... callbacks. A ping
// goes out every ping_interval so that the coordinator's idle timeout never closes a quiet
// call; one unanswered within the request timeout ends the connection (on_closed), so a dead
// coordinator or path is noticed within ping_interval + request_timeout. Every step is
// bounded by a timer: the connect, each request.
//
//   CoordClient coord(loop, {"203.0.113.10:7000"});
//   coord.on_peer([&](const PeerInfo& p) { ... p.ufrag, p.password, p.candidates ... });
//   coord.connect([&](const std::string& error) {
//       coord.join(JoinRequest{"room-1", "alice", candidates, "full_cone", "eu"},
//                  [&](const JoinReply& r) { ... r.ufrag, r.turn ... });
//   });
//
// Not thread-safe (the loop's thread). The server's name is resolved when connect() is
// called, blocking (resolve_host_port): call it before the loop has anything urgent to do.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "punch/clock.h"
#include "punch/event_loop.h"
#include "stun/address.h"

namespace punch {

struct CoordClientConfig {
    /// "host:port" of punchcoord.
    std::string server;
    Time connect_timeout = std::chrono::seconds(5);
    Time request_timeout = std::chrono::seconds(5);
    /// Below the coordinator's idle timeout (30 s by default; hello says it).
    Time ping_interval = std::chrono::seconds(10);
    /// The longest line accepted from the server; a longer one ends the connection.
    std::size_t max_line_bytes = 64 * 1024;
};

/// A candidate as the coordinator carries it: "host", "srflx", "relay" or "prflx".
struct CoordCandidate {
    std::string type;
    stun::Address address;
};

/// How a request ended: ok, or the coordinator's error (code and message), or a local one
/// (code "timeout", "closed", "bad_reply", "not_connected").
struct CoordStatus {
    bool ok = false;
    std::string code;
    std::string message;
    /// For a "limit" error: the limit's name.
    std::string limit;
};

struct HelloReply {
    CoordStatus status;
    int protocol = 0;
    std::vector<std::string> stun_servers;
    std::vector<std::string> relay_servers;
    std::uint64_t server_time_ms = 0;  ///< Unix time, milliseconds
    std::uint64_t idle_timeout_ms = 0;
    std::size_t max_members_per_room = 0;
    std::size_t max_line_bytes = 0;
    bool turn_credentials = false;
};

struct JoinRequest {
    std::string room;
    std::string name;
    std::vector<CoordCandidate> candidates;
    std::string nat_type;  ///< to_string(NatType): "full_cone", ...; empty: "unknown"
    std::string region;
};

/// TURN REST credentials (username "<expiry>:<room>-<name>"); empty username: none issued.
struct TurnCredentials {
    std::string username;
    std::string password;
    std::uint64_t ttl_s = 0;
    std::uint64_t expires_unix = 0;
};

struct JoinReply {
    CoordStatus status;
    std::string room;
    std::string name;
    /// This member's short-term credentials: PunchCredentials::local_ufrag/local_password.
    std::string ufrag;
    std::string password;
    /// The first member of a room is controlling towards later ones; PeerInfo::controlling
    /// says it per peer.
    bool controlling = false;
    TurnCredentials turn;
    std::vector<std::string> relay_servers;
    std::vector<std::string> stun_servers;
};

/// Another member of a room (the "peer" event): its remote_ufrag and remote_password.
struct PeerInfo {
    std::string room;
    std::string name;
    std::vector<CoordCandidate> candidates;
    std::string nat_type;
    std::string region;
    std::string ufrag;
    std::string password;
    /// Whether this side is controlling towards that peer.
    bool controlling = false;
};

/// One SFU node the coordinator offers (docs/sfu.md, "The coordinator's part"), in the order
/// both members try them.
struct SfuOffer {
    std::uint64_t node_id = 0;
    stun::Address address;  ///< the node's public SFU address (sfu.port)
    std::string nat_type;   ///< to_string(NatType) of the node's own NAT: "none", "full_cone", ...
    std::string region;
    std::uint64_t load = 0;
};

/// A node the coordinator left out, and why ("nat_client_b", "full", ...: its selection's
/// reasons, punch/sfu_select.h).
struct SfuOfferDropped {
    std::uint64_t node_id = 0;
    std::string reason;
};

/// The `sfu` op's answer: this member's session token for the room's SFU session and the
/// candidate nodes. Ok with no candidates (no node serves both members, or the coordinator has
/// no SFU secret) means: go on to the relay.
struct SfuReply {
    CoordStatus status;
    std::string room;
    std::string session;   ///< 16 lowercase hex digits
    std::string username;  ///< "<expiry>:<session>:<participant>" (stun/sfu_token.h)
    std::string password;  ///< 44 characters: the MESSAGE-INTEGRITY key as it is
    std::uint64_t expires_unix = 0;
    /// How many of the first candidates to try at once (at least 1).
    std::uint32_t race = 1;
    std::vector<SfuOffer> candidates;
    std::vector<SfuOfferDropped> dropped;
};

struct OutcomeReport {
    std::string room;
    std::string rung;  ///< "p2p", "sfu", "relay", "failed"
    std::optional<std::uint64_t> time_to_connect_ms;
    std::string local_nat;
    std::string remote_nat;
};

class CoordClient {
public:
    CoordClient(EventLoop& loop, CoordClientConfig config);
    ~CoordClient();
    CoordClient(const CoordClient&) = delete;
    CoordClient& operator=(const CoordClient&) = delete;

    /// Resolves the server, connects (non-blocking, bounded by connect_timeout) and calls
    /// `done` with "" or why it failed ("203.0.113.10:7000: connect: Connection refused",
    /// "...: no answer within 5000 ms").
    void connect(std::function<void(const std::string& error)> done);
    [[nodiscard]] bool connected() const noexcept { return state_ == State::connected; }
    /// Closes the connection (the coordinator treats it as leaving every room); pending
    /// requests get "closed"; on_closed is not called.
    void close();

    void hello(std::function<void(const HelloReply&)> done);
    void join(const JoinRequest& request, std::function<void(const JoinReply&)> done);
    void leave(const std::string& room, std::function<void(const CoordStatus&)> done = {});
    /// New candidates (a relayed address after a TURN allocation, a path change) to the
    /// room's other members.
    void send_candidates(const std::string& room, const std::vector<CoordCandidate>& candidates,
                         std::function<void(const CoordStatus&)> done = {});
    /// An application message to one member (`to`) or every other (empty); `data_json` is a
    /// JSON object as text ("{\"kind\":\"moving_to_relay\"}"), at most 4 KiB.
    void signal(const std::string& room, const std::string& to, const std::string& data_json,
                std::function<void(const CoordStatus&)> done = {});
    /// The room's SFU candidates and this member's token (docs/sfu.md). `rtt_ms`: measured
    /// round trips to nodes by node id (may be empty). A reply that is ok but does not hold
    /// together (a missing or malformed token while candidates are offered, a candidate
    /// without a numeric address, a session that is not the username's) comes back as code
    /// "bad_reply" with the field named; the coordinator's errors as they are ("not_found":
    /// not in the room or no peer yet).
    void sfu(const std::string& room, const std::map<std::uint64_t, double>& rtt_ms,
             std::function<void(const SfuReply&)> done);
    void report(const OutcomeReport& report, std::function<void(const CoordStatus&)> done = {});
    void ping(std::function<void(const CoordStatus&)> done = {});

    void on_peer(std::function<void(const PeerInfo&)> callback) { on_peer_ = std::move(callback); }
    void on_candidates(std::function<void(const std::string& room, const std::string& from,
                                          const std::vector<CoordCandidate>&)>
                           callback) {
        on_candidates_ = std::move(callback);
    }
    /// `data_json`: the signal's object as compact JSON text.
    void on_signal(std::function<void(const std::string& room, const std::string& from,
                                      const std::string& data_json)>
                       callback) {
        on_signal_ = std::move(callback);
    }
    void on_peer_left(std::function<void(const std::string& room, const std::string& name)>
                          callback) {
        on_peer_left_ = std::move(callback);
    }
    /// The connection ended other than by close(): the reason ("the coordinator closed the
    /// connection", "idle_timeout: ...", a socket error).
    void on_closed(std::function<void(const std::string& reason)> callback) {
        on_closed_ = std::move(callback);
    }

    /// Lines received that were neither a reply to a pending request nor a known event.
    [[nodiscard]] std::uint64_t ignored_lines() const noexcept { return ignored_lines_; }

private:
    enum class State : std::uint8_t { idle, connecting, connected, closed };
    // A reply's JSON text, or nothing with a status saying why.
    using ReplyCallback = std::function<void(const CoordStatus&, const std::string& reply_json)>;
    struct Pending {
        ReplyCallback callback;
        TimerId timer = 0;
    };

    void send_request(const std::string& op, std::string fields_json, ReplyCallback callback);
    void on_connect_ready();
    void on_readable();
    void on_writable();
    void flush();
    void handle_line(const std::string& line);
    void fail(const std::string& reason, bool notify);
    void schedule_ping();

    EventLoop& loop_;
    CoordClientConfig config_;
    State state_ = State::idle;
    int fd_ = -1;
    std::string server_text_;
    std::function<void(const std::string&)> connect_done_;
    TimerId connect_timer_ = 0;
    TimerId ping_timer_ = 0;
    std::string input_;
    std::string output_;
    std::uint64_t next_id_ = 1;
    std::map<std::uint64_t, Pending> pending_;
    std::uint64_t ignored_lines_ = 0;
    std::function<void(const PeerInfo&)> on_peer_;
    std::function<void(const std::string&, const std::string&,
                       const std::vector<CoordCandidate>&)>
        on_candidates_;
    std::function<void(const std::string&, const std::string&, const std::string&)> on_signal_;
    std::function<void(const std::string&, const std::string&)> on_peer_left_;
    std::function<void(const std::string&)> on_closed_;
    // False once destroyed: a user callback may destroy the client, and the code that called
    // it holds a copy of this pointer to know whether it may go on.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace punch
