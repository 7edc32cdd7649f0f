// The TURN client of the ladder's relay rung (design.md §5 rung 5): RFC 8656 over UDP.
//
// One TurnClient serves one call leg. It shares the leg's socket with punching and the media
// channel (one NAT mapping for every rung): the socket's owner reads it and offers every
// datagram to on_datagram(), which keeps what came from the TURN server; the client only sends,
// through DatagramSender. Every request follows RFC 8489 §6.2.1's retransmission schedule on the
// caller's EventLoop, so a test drives the whole protocol with a ManualClock and a recording
// sender.
//
// What it does:
//   allocate()   Allocate (REQUESTED-TRANSPORT UDP, LIFETIME); the server's 401 gives REALM and
//                NONCE, the request is repeated with the long-term credential (RFC 8489 §9.2);
//                a 438 (stale nonce) is retried with the new NONCE, at most
//                max_stale_nonce_retries times in a row, during refreshes too
//   add_peer()   CreatePermission for the peer, then ChannelBind when config.use_channels
//   send()       ChannelData on the peer's channel, else a Send indication
//   on_datagram  responses, Data indications and ChannelData from the server; data for a peer
//                goes to the on_data callback, what cannot be used is counted by TurnDrop
//   refreshes    the allocation before it expires, permissions every 4 minutes (they last 5,
//                RFC 8656 §9), channels every 9 (they last 10, §12); a refresh that fails is
//                reported to on_failure() so that the call can fall back
//   release()    Refresh with LIFETIME 0 (§8), best effort
//
// Credentials: the long-term mechanism with MD5 or, when the server offers it through
// PASSWORD-ALGORITHMS (RFC 8489 §9.2.5), SHA-256. TURN REST credentials (username
// "<expiry>:<user>", password base64(HMAC-SHA1(secret, username)), stun/rest.h) are long-term
// credentials to the client: the coordinator computes them, TurnConfig carries them.
//
// Responses are matched by transaction ID and must come from the server's address. Once the key
// is known (from the second Allocate on), every response must carry a MESSAGE-INTEGRITY or
// MESSAGE-INTEGRITY-SHA256 that verifies with it (RFC 8489 §9.2.5), except a 401 or 438, which
// a server cannot sign (the credentials or the nonce they name are what it refuses).
//
// Not thread-safe: everything runs on the loop's thread. No callback may destroy the client.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "punch/clock.h"
#include "punch/event_loop.h"
#include "punch/stun_transaction.h"
#include "punch/udp_socket.h"
#include "stun/address.h"
#include "stun/constants.h"
#include "stun/message.h"

namespace punch {

struct TurnConfig {
    stun::Address server;
    /// Long-term credentials, or TURN REST ones ("<expiry>:<user>" and the base64 HMAC).
    std::string username;
    std::string password;
    /// RFC 8489 §6.2.1 retransmissions, for every request.
    RetransmissionPolicy policy;
    /// Asked for in Allocate and every Refresh; the server may grant less (RFC 8656 §7.2).
    std::chrono::seconds lifetime{600};
    /// ChannelBind per peer and ChannelData (4 bytes of overhead); else Send and Data
    /// indications (36 bytes for an IPv4 peer).
    bool use_channels = true;
};

/// 438 answers retried in a row for one request before its failure is reported.
inline constexpr unsigned max_stale_nonce_retries = 3;

/// What allocate() found.
struct TurnAllocation {
    /// success; error_response (error_code, error_reason: 401 for wrong credentials, 437, 486,
    /// 508, ...); timeout (no valid answer within the schedule); send_failed (the first request
    /// could not be handed to the kernel).
    TransactionStatus status = TransactionStatus::timeout;
    std::uint16_t error_code = 0;
    std::string error_reason;
    stun::Address relayed;  ///< XOR-RELAYED-ADDRESS (the first, RFC 8656 §7.3)
    stun::Address mapped;   ///< XOR-MAPPED-ADDRESS: the leg's server-reflexive address
    std::chrono::seconds lifetime{0};  ///< LIFETIME granted
    Time elapsed{0};        ///< from allocate() to the answer, the 401 round trip included
};

enum class TurnState : std::uint8_t {
    idle,        ///< allocate() not called
    allocating,  ///< Allocate in flight
    allocated,   ///< an allocation is held: add_peer() and send() work
    failed,      ///< Allocate failed, or a refresh of the allocation did
    released,    ///< release() called
};

[[nodiscard]] std::string_view to_string(TurnState state) noexcept;

/// Every datagram from the server the client could not use, and every send() refused, by
/// reason. One table, name and help.
#define PUNCH_TURN_DROPS(X)                                                                    \
    X(malformed, "from the server, STUN-like but not a well-formed STUN message (RFC 8489 §6.3)") \
    X(not_turn, "from the server, neither STUN nor ChannelData (RFC 7983 first byte)")         \
    X(unknown_transaction, "a TURN response whose transaction ID matches no pending request")  \
    X(wrong_method, "a response of another method than its request's")                        \
    X(bad_fingerprint, "FINGERPRINT present and wrong (RFC 8489 §7.3)")                        \
    X(unauthenticated_success,                                                                 \
      "a success response to a request sent without credentials: it cannot be verified")       \
    X(missing_integrity,                                                                       \
      "a response to an authenticated request without MESSAGE-INTEGRITY(-SHA256), not a 401 " \
      "or 438 (RFC 8489 §9.2.5)")                                                              \
    X(bad_integrity, "MESSAGE-INTEGRITY(-SHA256) does not verify with the long-term key")      \
    X(unknown_comprehension_required,                                                          \
      "an unknown comprehension-required attribute (RFC 8489 §6.3.3, §6.3.4)")                  \
    X(bad_error_code, "an error response whose ERROR-CODE is missing or does not decode")     \
    X(bad_attribute,                                                                           \
      "a success response whose XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS or LIFETIME is "      \
      "missing or does not decode (RFC 8656 §7.3, §8.3)")                                      \
    X(unexpected_message, "a request, or an indication other than Data, from the server")     \
    X(bad_data_indication,                                                                     \
      "a Data indication without a decodable XOR-PEER-ADDRESS or DATA (RFC 8656 §11.4)")     \
    X(no_allocation, "a Data indication or ChannelData while no allocation is held")          \
    X(unknown_peer, "a Data indication from an IP address no added peer holds a permission "   \
                    "for (RFC 8656 §9: permissions are per IP address)")                     \
    X(bad_channel_data,                                                                        \
      "ChannelData shorter than its length field or on a channel outside 0x4000-0x7FFF "      \
      "(RFC 8656 §12.5)")                                                                      \
    X(unknown_channel, "ChannelData on a channel this client did not bind")                    \
    X(send_not_allocated, "send() while no allocation is held")                               \
    X(send_no_permission, "send() to a peer that was not added, or whose permission failed")  \
    X(send_too_large, "send() of more data than one ChannelData or Send indication carries")  \
    X(send_failed, "the socket refused the datagram (send_to false)")

enum class TurnDrop : std::uint8_t {
#define PUNCH_TURN_DROP_ENUM(name, help) name,
    PUNCH_TURN_DROPS(PUNCH_TURN_DROP_ENUM)
#undef PUNCH_TURN_DROP_ENUM
        count
};

[[nodiscard]] std::string_view to_string(TurnDrop drop) noexcept;
[[nodiscard]] std::string_view help(TurnDrop drop) noexcept;

/// What went right, for the report.
struct TurnCounters {
    std::uint64_t requests_sent = 0;        ///< first sends of a request
    std::uint64_t retransmissions = 0;      ///< later sends of one
    std::uint64_t stale_nonce_retries = 0;  ///< requests repeated after a 438
    std::uint64_t allocation_refreshes = 0;  ///< Refresh successes (release's excluded)
    std::uint64_t permission_refreshes = 0;  ///< CreatePermission successes after the first
    std::uint64_t channel_refreshes = 0;     ///< ChannelBind successes after the first
    std::uint64_t channel_data_sent = 0;
    std::uint64_t send_indications_sent = 0;
    std::uint64_t channel_data_received = 0;
    std::uint64_t data_indications_received = 0;
};

class TurnClient {
public:
    using AllocateCallback = std::function<void(const TurnAllocation&)>;
    /// "" on success, else what failed: "CreatePermission 198.51.100.7:3480: 403 Forbidden".
    using ResultCallback = std::function<void(const std::string& error)>;
    using DataCallback =
        std::function<void(const stun::Address& peer, std::span<const std::byte> data)>;

    /// The loop and the socket must outlive the client. Throws std::invalid_argument on an
    /// empty username or password, a zero lifetime or a server with port 0 (naming the field).
    TurnClient(EventLoop& loop, DatagramSender& socket, TurnConfig config);
    TurnClient(const TurnClient&) = delete;
    TurnClient& operator=(const TurnClient&) = delete;
    /// Cancels every timer and pending request; sends nothing (call release() first).
    ~TurnClient();

    /// Allocates. `done` runs exactly once, from on_datagram() or a timer, never from here.
    /// Throws std::logic_error unless the state is idle (one allocation per client).
    void allocate(AllocateCallback done);

    /// CreatePermission for `peer` (and ChannelBind, with use_channels); `done` runs once, ""
    /// when send() can reach the peer, else the method, the peer and the error code and reason
    /// or "timeout". Never from here. Adding a peer twice answers "" at once (from a timer) if
    /// it is ready, else waits for the first request. Not allocated: "not allocated".
    void add_peer(const stun::Address& peer, ResultCallback done);

    /// `data` to `peer` through the relay: ChannelData when its channel is bound, else a Send
    /// indication when its permission is. False, counted under a TurnDrop, when neither, when
    /// not allocated, when too large, or when the socket refuses. Builds in one buffer the
    /// client owns: no allocation. Cost: a hash lookup and a copy of the data.
    bool send(const stun::Address& peer, std::span<const std::byte> data);

    /// Offers a datagram the leg's socket received. True when it came from the server and the
    /// client took it (responses, Data indications, ChannelData, and what it dropped); false
    /// for everything else, which is the owner's: datagrams from other addresses, and STUN
    /// Binding messages from the server (the leg's own STUN transactions may use the same
    /// server for keepalives or discovery).
    bool on_datagram(const stun::Address& from, std::span<const std::byte> datagram);

    /// Where data from peers goes. The span views the datagram; copy what must outlive the call.
    void on_data(DataCallback callback) { on_data_ = std::move(callback); }

    /// Runs for every refresh that fails, with what failed ("Refresh: 437 Allocation Mismatch",
    /// "CreatePermission 198.51.100.7:3480: timeout"). A failed allocation refresh also moves
    /// the state to failed; a peer's failure makes send() to that peer fail.
    void on_failure(ResultCallback callback) { on_failure_ = std::move(callback); }

    /// Refresh with LIFETIME 0 (RFC 8656 §8), best effort: every timer stops at once, the
    /// request is retransmitted while the loop runs, and `done` (optional) says how it ended
    /// ("" or the error). Nothing is sent unless an allocation is held ("not allocated"). An
    /// allocate() in flight ends with status timeout, "released before the answer"; an
    /// add_peer() in flight with "released".
    void release(ResultCallback done = {});

    [[nodiscard]] TurnState state() const noexcept { return state_; }
    [[nodiscard]] const stun::Address& relayed() const noexcept { return relayed_; }
    [[nodiscard]] const stun::Address& mapped() const noexcept { return mapped_; }
    [[nodiscard]] std::chrono::seconds lifetime() const noexcept { return lifetime_; }
    /// The long-term key's hash once a 401 has been answered: SHA-256 when the server offered
    /// it first in PASSWORD-ALGORITHMS, else MD5 (RFC 8489 §9.2.2, §9.2.5).
    [[nodiscard]] stun::PasswordAlgorithm password_algorithm() const noexcept {
        return algorithm_ == static_cast<std::uint16_t>(stun::PasswordAlgorithm::sha256)
                   ? stun::PasswordAlgorithm::sha256
                   : stun::PasswordAlgorithm::md5;
    }
    [[nodiscard]] const TurnCounters& counters() const noexcept { return counters_; }
    [[nodiscard]] std::uint64_t drops(TurnDrop why) const noexcept {
        return drops_[static_cast<std::size_t>(why)];
    }
    /// The channel bound (or being bound) to `peer`; 0 when none.
    [[nodiscard]] std::uint16_t channel_of(const stun::Address& peer) const noexcept;
    [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }

private:
    enum class Kind : std::uint8_t { allocate, refresh, release, permission, channel_bind };
    struct Peer {
        stun::Address address;
        std::uint16_t channel = 0;
        bool permitted = false;
        bool bound = false;
        bool ready = false;    // add_peer() answered ""
        bool failed = false;   // add_peer() answered an error, or a refresh failed
        TimerId permission_timer = 0;
        TimerId channel_timer = 0;
        std::vector<ResultCallback> waiting;
    };
    struct Request {
        Kind kind = Kind::allocate;
        std::size_t peer = 0;     // index into peers_ (permission, channel_bind)
        bool refreshing = false;  // a permission or channel refresh, not add_peer()'s
        bool authenticated = false;
        unsigned stale_retries = 0;
        std::vector<std::byte> bytes;
        Time started{0};
        std::size_t next_send = 0;
        unsigned sends = 0;
        TimerId timer = 0;
    };
    struct AddressHash {
        std::size_t operator()(const stun::Address& a) const noexcept;
    };
    struct IdHash {
        std::size_t operator()(const stun::TransactionId& id) const noexcept;
    };
    /// A request's outcome: success, or the error text ("403 Forbidden", "timeout").
    struct Outcome {
        bool ok = false;
        TransactionStatus status = TransactionStatus::timeout;
        std::uint16_t code = 0;
        std::string reason;
        [[nodiscard]] std::string text() const;
    };

    /// Runs `callback` from a timer due now, so that it never runs inside the caller's call.
    void defer(std::function<void()> callback);
    static stun::Method method_of(Kind kind) noexcept;
    void start(Kind kind, std::size_t peer, bool refreshing, unsigned stale_retries);
    void on_timer(const stun::TransactionId& id);
    void arm(const stun::TransactionId& id, Request& r);
    bool handle_stun(std::span<const std::byte> datagram);
    void handle_response(const stun::Message& m, Request request);
    void handle_data_indication(const stun::Message& m);
    /// A permission is held for `address`'s IP (any port).
    [[nodiscard]] bool permitted_ip(const stun::Address& address) const noexcept;
    void handle_channel_data(std::span<const std::byte> datagram);
    void finish(const Request& request, const Outcome& outcome, const stun::Message* m);
    void allocated(const stun::Message& m);
    void allocation_failed(const Outcome& outcome);
    void peer_step(const Request& request, const Outcome& outcome);
    void peer_answer(std::size_t peer, const std::string& error);
    void schedule_refresh();
    void report_failure(const std::string& what);
    /// Takes REALM, NONCE and PASSWORD-ALGORITHMS from a 401 or 438; false when unusable.
    bool learn_auth(const stun::Message& m);
    [[nodiscard]] std::string describe(const Request& request) const;
    bool drop(TurnDrop why) {
        ++drops_[static_cast<std::size_t>(why)];
        return false;
    }

    EventLoop& loop_;
    DatagramSender& socket_;
    TurnConfig config_;
    RetransmissionSchedule schedule_;
    TurnState state_ = TurnState::idle;

    // The long-term credential, once a 401 has named the realm.
    std::string realm_;
    std::string nonce_;
    std::vector<std::byte> password_algorithms_;  // PASSWORD-ALGORITHMS to echo, raw
    std::uint16_t algorithm_ = 0;                 // chosen PASSWORD-ALGORITHM; 0: none sent
    std::vector<std::byte> key_;                  // empty until the realm is known

    AllocateCallback allocate_done_;
    Time allocate_started_{0};
    ResultCallback release_done_;
    ResultCallback on_failure_;
    DataCallback on_data_;
    stun::Address relayed_;
    stun::Address mapped_;
    std::chrono::seconds lifetime_{0};
    TimerId refresh_timer_ = 0;
    std::unordered_set<TimerId> deferred_;

    std::vector<Peer> peers_;
    std::unordered_map<stun::Address, std::size_t, AddressHash> peer_index_;
    std::unordered_map<std::uint16_t, std::size_t> channel_index_;
    std::uint16_t next_channel_;
    std::unordered_map<stun::TransactionId, Request, IdHash> pending_;

    std::vector<std::byte> send_buffer_;  // sized once: send() never allocates
    TurnCounters counters_;
    std::array<std::uint64_t, static_cast<std::size_t>(TurnDrop::count)> drops_{};
};

}  // namespace punch
