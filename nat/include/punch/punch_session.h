// UDP hole punching for one call leg (design.md §5 rung 3): a pure state machine.
//
// Each side sends STUN Binding requests ("test packets") to every candidate of the peer, paced,
// and answers every valid request with a success response (the ACK) sent to the address the
// request came from: when that address is not a known candidate it becomes a new,
// peer-reflexive one (RFC 8445 §7.3.1.3), which is what lets a symmetric NAT's fresh per-
// destination port through (natlab.md). Requests carry short-term credentials (RFC 8445 §7.2.2:
// USERNAME "remote_ufrag:local_ufrag", MESSAGE-INTEGRITY with the remote password, FINGERPRINT).
//
// Agreement: the coordinator makes one side controlling (the caller). The controlling side,
// on its first ACK, repeats a request with USE-CANDIDATE on that pair; its ACK makes both sides
// connected on the same pair (RFC 8445 §8.1.1, regular nomination cut to one pair). Every
// request received also triggers a request back to its source (RFC 8445 §7.3.1.4), so that when
// only one direction got through first, the other side's ACK follows at once.
//
// No sockets and no clock reads: on_timer(now) and on_datagram(from, bytes, now) return what to
// send; next_timer() says when on_timer wants to run. PunchDriver puts it on an EventLoop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "punch/clock.h"
#include "punch/event_loop.h"
#include "punch/udp_socket.h"
#include "stun/address.h"
#include "stun/message.h"

namespace punch {

struct PunchCredentials {
    std::string local_ufrag;
    std::string local_password;
    std::string remote_ufrag;
    std::string remote_password;
};

struct PunchConfig {
    /// One transmission every `pace` across all pairs (RFC 8445 §14.2's Ta: 50 ms default,
    /// 5 ms minimum; test packets are few here, so 20 ms).
    Time pace = std::chrono::milliseconds(20);
    /// A pair's next request this long after its last (fixed, no backoff: a hole opened by the
    /// peer late in the window must still be found before `timeout`).
    Time retransmit = std::chrono::milliseconds(100);
    /// The preset time: not connected this long after start() means failed.
    Time timeout = std::chrono::seconds(3);
    /// The caller's side: it nominates (see the file comment).
    bool controlling = false;
    /// Answer requests from unknown addresses and add them as peer-reflexive candidates. Off
    /// only to show what breaks without it: such requests are dropped (unknown_source).
    bool peer_reflexive = true;
};

struct Outgoing {
    stun::Address to;
    std::vector<std::byte> bytes;
};

/// Every datagram on_datagram() refuses, by reason.
struct PunchDrops {
    std::uint64_t not_stun = 0;                ///< not a parseable STUN message
    std::uint64_t not_binding = 0;             ///< another method, or an indication
    std::uint64_t bad_fingerprint = 0;         ///< FINGERPRINT missing or wrong (RFC 8445 §7.2.2)
    std::uint64_t request_no_credentials = 0;  ///< USERNAME or MESSAGE-INTEGRITY missing: 400
    std::uint64_t request_wrong_username = 0;  ///< not "local_ufrag:remote_ufrag": 401
    std::uint64_t request_bad_integrity = 0;   ///< MESSAGE-INTEGRITY fails the local password: 401
    std::uint64_t unknown_source = 0;          ///< request from a new address, peer_reflexive off
    std::uint64_t unknown_transaction = 0;     ///< response to no request of ours
    std::uint64_t response_bad_integrity = 0;  ///< response not signed with the remote password
    /// Response not from where its request went (RFC 8445 §7.2.5.2.1: non-symmetric).
    std::uint64_t response_wrong_source = 0;
    std::uint64_t error_response = 0;          ///< error responses are unauthenticated: ignored
    std::uint64_t after_done = 0;              ///< arrived before start() or after failure
};

struct PairReport {
    stun::Address remote;
    bool peer_reflexive = false;  ///< learnt from a request, not from the coordinator
    std::uint64_t sent = 0;       ///< requests sent to it
    std::uint64_t received = 0;   ///< valid requests received from it
    std::uint64_t acked = 0;      ///< valid success responses received from it
    std::optional<Time> rtt;      ///< of the last ACK (each transmission has its own ID)
    std::optional<stun::Address> mapped;  ///< XOR-MAPPED-ADDRESS in the last ACK: us, as seen
};

enum class PunchState : std::uint8_t { idle, checking, connected, failed };

std::string_view to_string(PunchState state) noexcept;

class PunchSession {
public:
    /// `remote_candidates`: the peer's host and server-reflexive addresses from the coordinator,
    /// in the order to try them. Throws std::invalid_argument on an empty ufrag or password,
    /// a ufrag with ':' or a zero pace/retransmit/timeout (naming the field).
    PunchSession(PunchConfig config, PunchCredentials credentials,
                 std::vector<stun::Address> remote_candidates);

    /// Starts the window at `now`: the first request goes out now.
    std::vector<Outgoing> start(Time now);
    std::vector<Outgoing> on_timer(Time now);
    std::vector<Outgoing> on_datagram(const stun::Address& from,
                                      std::span<const std::byte> datagram, Time now);
    /// When on_timer() next has something to do; nullopt once connected or failed.
    [[nodiscard]] std::optional<Time> next_timer() const noexcept;

    [[nodiscard]] PunchState state() const noexcept { return state_; }
    /// The agreed remote address once connected.
    [[nodiscard]] std::optional<stun::Address> selected() const noexcept;
    [[nodiscard]] const std::vector<PairReport>& pairs() const noexcept { return pairs_; }
    [[nodiscard]] const PunchDrops& drops() const noexcept { return drops_; }
    /// Requests answered with 400 or 401.
    [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_; }
    /// One line per pair: "203.0.113.7:4000 candidate sent 30 received 0 acked 0 rtt -" (or
    /// "prflx" for a peer-reflexive one; the RTT in ms).
    [[nodiscard]] std::string report() const;

private:
    struct PairTimers {
        Time next_send{0};
        bool nominating = false;
    };
    struct Pending {
        stun::TransactionId id;
        std::size_t pair;
        Time sent_at;
        bool nomination;
    };

    std::size_t pair_of(const stun::Address& remote) const noexcept;
    std::size_t add_pair(const stun::Address& remote, bool peer_reflexive, Time now);
    void send_request(std::size_t pair, Time now, std::vector<Outgoing>& out);
    void handle_request(const stun::Address& from, const stun::Message& m, Time now,
                        std::vector<Outgoing>& out);
    void handle_response(const stun::Address& from, const stun::Message& m, Time now);
    void reject(const stun::Address& from, const stun::Message& m, std::uint16_t code,
                std::vector<Outgoing>& out);
    void pace(Time now, std::vector<Outgoing>& out);

    PunchConfig config_;
    PunchCredentials credentials_;
    std::vector<PairReport> pairs_;
    std::vector<PairTimers> timers_;
    std::vector<Pending> pending_;
    PunchDrops drops_;
    std::uint64_t rejected_ = 0;
    PunchState state_ = PunchState::idle;
    Time deadline_{0};
    Time next_pace_{0};
    std::size_t cursor_ = 0;  // round-robin over pairs
    std::optional<std::size_t> nominated_;
    std::optional<std::size_t> selected_;
};

/// Runs a PunchSession on an EventLoop with one UdpSocket (the call leg's, already open):
/// datagrams in, datagrams out, one timer at next_timer(). `done` runs once, when the session
/// is connected or failed; after it the socket stays watched, so the peer's retransmitted
/// nomination is still answered, until the driver is destroyed. The session, socket and loop
/// must outlive the driver.
class PunchDriver {
public:
    PunchDriver(EventLoop& loop, UdpSocket& socket, PunchSession& session);
    PunchDriver(const PunchDriver&) = delete;
    PunchDriver& operator=(const PunchDriver&) = delete;
    ~PunchDriver();
    /// Returns "" or why the socket could not be watched.
    [[nodiscard]] std::string start(std::function<void()> done);
    /// Datagrams the kernel refused (send_to false).
    [[nodiscard]] std::uint64_t send_failures() const noexcept { return send_failures_; }

private:
    void flush(const std::vector<Outgoing>& out);
    void rearm();
    void readable();
    void check_done();

    EventLoop& loop_;
    UdpSocket& socket_;
    PunchSession& session_;
    std::function<void()> done_;
    std::optional<TimerId> timer_;
    bool watching_ = false;
    std::uint64_t send_failures_ = 0;
};

}  // namespace punch
