// One call leg down the ladder (design.md §5): discovery, signalling, punching, relay fallback
// and the media channel, on one kernel UDP socket and the caller's event loop.
//
//   1. connect to the coordinator; `hello` names the STUN and relay servers
//   2. probe from the leg's socket (the reflexive address is the one the peer will see; the
//      NAT type goes to the coordinator)
//   3. join the room with host and server-reflexive candidates; wait for the peer
//   4. punch (PunchSession) for the preset time; connected: the P2P rung
//   5. failed: the SFU rung (SfuRung, docs/sfu.md). Both sides ask the coordinator for the
//      room's SFU candidates and a session token (`sfu`), admit a leg on each node in order
//      (the first `race` at once) and tell each other through the coordinator how each leg
//      went (signal {"kind":"sfu_up"|"sfu_failed","node_id":N}); the rung is up on the first
//      node where both legs are, and media goes to that node. No node serves both: the relay
//   6. the relay rung. The controlling side allocates on the relay (TURN REST
//      credentials from the join), permits the peer's public address and sends its relayed
//      address through the coordinator; the other side sends its media to that relayed address
//      from the same socket, which opens its own NAT towards the relay. One allocation a call:
//      a relay→relay pair would go from the relay to its own address, which a safe relay
//      refuses (RFC 8656 §21.1 and punchlined's peer policy)
//   7. media (MediaSession) on whichever path: pings from the moment the path is up, the
//      stream from the moment the peer answers on it (no data frame reaches a side that is not
//      ready, so a call loses nothing to its own start); keepalives; when the path dies
//      (nothing heard for MediaConfig::dead_after) on the P2P or the SFU rung, both sides move
//      to the relay (each notices, and the first to notice tells the other through the coordinator)
//      and the call goes on
//   8. at the end: bye (exact loss), the outcome report to the coordinator, the allocation
//      released
//
// The socket's datagrams are told apart by where they come from and by their first byte
// (RFC 7983): from the relay server → the TURN client; media frames (0x80-0xBF) → the media
// session; STUN from an SFU candidate node, or a Binding request naming our SFU username (a
// node behind a NAT, from a new port) → the SFU rung; other STUN → the punch session (which
// goes on answering the peer's checks).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "punch/clock.h"
#include "punch/coord_client.h"
#include "punch/event_loop.h"
#include "punch/media_session.h"
#include "punch/nat_classify.h"
#include "punch/probe.h"
#include "punch/punch_session.h"
#include "punch/sfu_rung.h"
#include "punch/turn_client.h"
#include "punch/udp_socket.h"

namespace punch {

enum class Rung : std::uint8_t { none, p2p, sfu, relay };
std::string_view to_string(Rung rung) noexcept;

/// p2p: fail rather than leave it; sfu: skip punching, fail rather than take the relay;
/// relay: skip punching and the SFU rung.
enum class ForceRung : std::uint8_t { none, p2p, sfu, relay };

struct CallConfig {
    std::string coordinator;  ///< "host:port" of punchcoord
    std::string room;
    std::string name;
    std::string region;
    /// When not empty, these instead of the coordinator's (hello) STUN servers.
    std::vector<ProbeServer> stun_servers;
    /// The probe's transactions (discovery, RFC 5780 tests): short, the call waits for them.
    RetransmissionPolicy probe_policy{std::chrono::milliseconds(100), 5, 4,
                                      std::chrono::milliseconds(1500)};
    /// The peer must join within this time after us.
    Time peer_wait = std::chrono::seconds(30);
    PunchConfig punch;  ///< punch.timeout is the preset time; `controlling` comes from the join
    /// The SFU rung: sfu.timeout bounds each leg's admission (`--sfu-timeout`); `race` comes
    /// from the coordinator.
    SfuRungConfig sfu;
    /// The relay rung's bound: allocation, permission and the first media frame through it.
    Time relay_timeout = std::chrono::seconds(5);
    RetransmissionPolicy turn_policy{std::chrono::milliseconds(200), 5, 4,
                                     std::chrono::seconds(3)};
    ForceRung force = ForceRung::none;
    MediaConfig media;
    /// Media runs this long after the path is up, then bye.
    Time duration = std::chrono::seconds(10);
    /// How long to wait for the peer's bye after ours.
    Time bye_wait = std::chrono::seconds(1);
};

/// One step of the ladder with its timing (from the call's start).
struct CallStep {
    /// "coordinator", "probe", "join", "peer", "punch", "sfu", "sfu node N" (one per candidate
    /// tried), "relay", "media"
    std::string name;
    std::string outcome;  ///< "ok", or what went wrong
    Time started{0};
    Time elapsed{0};
};

struct CallReport {
    bool connected = false;
    Rung rung = Rung::none;   ///< the rung the call ended on
    Rung first_rung = Rung::none;
    std::string error;        ///< why the call failed ("" when it did not)
    /// From the peer's candidates arriving to the first media frame from the peer (a ping,
    /// on the rung the call took): "time to first media packet".
    std::optional<Time> time_to_connect;
    std::vector<CallStep> steps;
    bool controlling = false;
    stun::Address local;      ///< host candidate
    stun::Address reflexive;  ///< server-reflexive candidate
    std::optional<stun::Address> relayed;
    std::optional<stun::Address> remote;  ///< where our media went last
    NatType local_nat = NatType::unknown;
    std::string remote_nat;
    std::string peer_name;
    /// The SFU rung, when it was tried: the session, each candidate with its outcome (the chosen
    /// one is `sfu_node`), and what the rung dropped by reason (indexed by SfuLegDrop).
    std::string sfu_session;
    std::optional<std::uint64_t> sfu_node;
    std::vector<SfuLegReport> sfu_legs;
    std::vector<SfuOfferDropped> sfu_dropped;  ///< the coordinator's, with its reasons
    std::string sfu_report;  ///< SfuRung::report()
    std::array<std::uint64_t, static_cast<std::size_t>(SfuLegDrop::count)> sfu_drops{};
    unsigned fallbacks = 0;   ///< P2P or SFU → relay moves mid-call
    /// The media gap of the move to the relay: from the last frame on the P2P or SFU path to the
    /// first through the relay (the liveness bound, MediaConfig::dead_after, plus the relay's
    /// setup).
    std::optional<Time> fallback_time;
    MediaReport media;
    std::string punch_report;  ///< PunchSession::report()
    /// Datagrams the leg's socket got that no part of the call could use: media frames from an
    /// address that is not the path's, what is neither STUN, ChannelData nor media, and an SFU
    /// node's STUN after the call left the SFU rung.
    std::uint64_t stray_media = 0;
    std::uint64_t stray_other = 0;
    /// The TURN client's, when this side allocated: what went right, and what it dropped by
    /// reason (indexed by TurnDrop).
    std::optional<TurnCounters> turn;
    std::array<std::uint64_t, static_cast<std::size_t>(TurnDrop::count)> turn_drops{};
};

class Call {
public:
    Call(EventLoop& loop, CallConfig config);
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;
    ~Call();

    /// Starts the call: runs the loop itself through the steps every call needs before it can
    /// wait for anything else (coordinator, probe, join; each bounded), then returns, and the
    /// rest happens as the caller runs the loop. `done` runs once with the report, when the call
    /// has ended (failed, or media ran for `duration`). Returns "" or why it could not start
    /// (the coordinator unreachable or refusing, no STUN server answering, the socket).
    [[nodiscard]] std::string start(std::function<void(const CallReport&)> done);
    /// Ends the media phase now (bye, report), e.g. on Ctrl-C.
    void hang_up();

    /// Bridge mode: payloads to carry instead of synthetic media (punch bridge). Returns false
    /// when no path is up yet (the payload is dropped, counted).
    bool send_payload(std::span<const std::byte> payload);
    /// Payloads the peer sent with send_payload().
    void on_payload(std::function<void(std::span<const std::byte>)> callback);

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace punch
