// The call's media channel (design.md §5 step 6): a pure, clock-injected state machine above
// whichever rung carries the call (a punched UDP path, a TURN client's ChannelData, later an SFU).
//
// It frames what the call sends — synthetic audio/video-like traffic at a bitrate and packet
// rate, or a bridged payload (`punch bridge`'s RTP) — keeps the path alive with pings answered
// by pongs (RTT, and a NAT mapping refreshed well inside Linux's 30 s UDP conntrack timeout),
// says whether the path is alive (the ladder's cue to fall back), and measures the call the way
// RFC 3550 §6.4.1 does: loss from sequence gaps, interarrival jitter, plus duplicates, reordering
// and an end-of-call `bye` exchange that makes the loss exact ("sent 1500, peer received 1500").
//
// No sockets, no clock reads, no threads, like PunchSession: start(), on_timer(now),
// on_datagram(bytes, now), stream_for(), wrap(), path_changed() and close() return the frames to
// send on the current path; next_timer() says when on_timer() wants to run. The frames are views
// into buffers the session reuses (no heap allocation per frame once running): send them before
// the next call into the session.
//
// Wire format (docs/ladder.md, "Media channel"), all fields big-endian:
//
//    0               1               2               3
//   +---------------+---------------+---------------+---------------+
//   | 0x80|version  |      'P'      |      'L'      |     type      |
//   +---------------+---------------+---------------+---------------+
//   |                            call id                            |
//   +---------------------------------------------------------------+
//   |                 sequence (one counter per type)               |
//   +---------------------------------------------------------------+
//   |           send timestamp, µs on the sender's clock            |
//   |                           (64 bits)                           |
//   +---------------------------------------------------------------+
//   data: the payload; ping: nothing; pong: 24 bytes; bye: 12 bytes (below)
//
// The first byte, 0x81 for version 1, is in RFC 7983 §7's 128..191 range, so one socket carries
// STUN (0..3), TURN ChannelData (64..79) and media; "PL" then tells media from RTP (as RTP it
// would be payload type 80, which RFC 3551 leaves unassigned).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "punch/clock.h"

namespace punch {

/// Frame types (the header's fourth byte).
enum class MediaType : std::uint8_t { data = 1, ping = 2, pong = 3, bye = 4 };

inline constexpr std::uint8_t media_version = 1;
inline constexpr std::size_t media_header_size = 20;
/// Pong: echoed ping sequence (4), echoed ping timestamp (8), hold time µs (4), then a receive
/// report of the responder: data frames received unique (4) and expected (4), as in RFC 3550
/// §6.4.1's receiver report.
inline constexpr std::size_t media_pong_size = media_header_size + 24;
/// Bye: data frames sent (4), data frames received unique (4), flags (4; bit 0: an answer to
/// the peer's bye, which is not answered again).
inline constexpr std::size_t media_bye_size = media_header_size + 12;
/// The largest frame: 1500-byte MTU less IPv6 (40), UDP (8) and ChannelData (4) headers, rounded
/// down, so that a frame fits one packet on every rung.
inline constexpr std::size_t media_max_frame = 1400;
inline constexpr std::size_t media_max_payload = media_max_frame - media_header_size;

// X(name, help): every reason on_datagram() refuses a datagram, in one table (style rule 6).
#define PUNCH_MEDIA_DROP_REASONS(X)                                                              \
    X(not_media, "first byte outside 128..191 or no \"PL\" after it: not a media frame "          \
                 "(STUN, ChannelData or RTP belong to another handler; is_media() is false)")    \
    X(too_short, "a media frame shorter than its type's fixed fields")                            \
    X(wrong_version, "a media frame of another version than media_version")                       \
    X(wrong_call, "a media frame with another call id: a stray packet from another call")         \
    X(unknown_type, "a media frame whose type is not data, ping, pong or bye")                    \
    X(unknown_pong, "a pong echoing no recent ping of ours (or with a hold longer than the "      \
                    "round trip): no RTT taken from it")                                          \
    X(too_old, "a data frame older than the receive window (4096 frames behind the newest): "     \
               "cannot tell a late arrival from a duplicate; it stays counted as lost")           \
    X(after_bye, "a data frame numbered at or past the count the peer's bye announced")           \
    X(not_open, "any frame before start(); after the call, a ping, or data when no bye of the "   \
                "peer said how many to expect")

enum class MediaDrop : std::uint8_t {
#define PUNCH_MEDIA_ENUMERATOR(name, help) name,
    PUNCH_MEDIA_DROP_REASONS(PUNCH_MEDIA_ENUMERATOR)
#undef PUNCH_MEDIA_ENUMERATOR
};

struct MediaDropInfo {
    std::string_view name;
    std::string_view help;
};

#define PUNCH_MEDIA_COUNT(name, help) +1
inline constexpr std::size_t media_drop_count = 0 PUNCH_MEDIA_DROP_REASONS(PUNCH_MEDIA_COUNT);
#undef PUNCH_MEDIA_COUNT

#define PUNCH_MEDIA_INFO(name, help) MediaDropInfo{#name, help},
inline constexpr std::array<MediaDropInfo, media_drop_count> media_drop_reasons = {
    {PUNCH_MEDIA_DROP_REASONS(PUNCH_MEDIA_INFO)}};
#undef PUNCH_MEDIA_INFO

std::string_view to_string(MediaDrop reason) noexcept;

struct MediaConfig {
    /// From the coordinator, the same on both sides: frames of other calls are dropped.
    std::uint32_t call_id = 0;
    /// Synthetic traffic for stream_for(): the frame (header included) is bitrate_bps / 8 /
    /// packet_rate bytes, rounded down. Both 0: no synthetic traffic (a bridge only wraps).
    std::uint64_t bitrate_bps = 64'000;
    std::uint32_t packet_rate = 50;
    /// A ping this often whatever the traffic: RTT, liveness, and the NAT mapping refreshed well
    /// inside Linux's 30 s UDP conntrack timeout (design.md §5).
    Time keepalive = std::chrono::milliseconds(500);
    /// Until the peer is heard on a new path (start, path_changed), pings come sooner: after
    /// this, then twice as long each time, up to `keepalive`. A path's first pings may be lost
    /// while it settles (an SFU node publishing the other leg, a relay's permission), and the
    /// peer should not wait a whole keepalive for the next. 0: every ping at `keepalive`.
    Time first_ping_retry = std::chrono::milliseconds(50);
    /// The path is dead when nothing valid came from the peer for this long.
    Time dead_after = std::chrono::seconds(2);
    /// After a late wake-up, at most this many overdue data frames go out at once; the slots
    /// before them are skipped (MediaReport::pacing_skipped), so the stream never bursts.
    std::uint32_t max_catch_up = 4;
    /// close(): the bye is repeated this often, at most bye_attempts times, until the peer's
    /// bye arrives.
    Time bye_interval = std::chrono::milliseconds(200);
    std::uint32_t bye_attempts = 3;
};

enum class MediaState : std::uint8_t {
    idle,     ///< before start()
    open,     ///< pings, data
    closing,  ///< our bye sent, waiting for the peer's
    closed,   ///< byes exchanged, or the peer's arrived, or our attempts ran out
};

std::string_view to_string(MediaState state) noexcept;

/// What on_datagram() made of a datagram.
enum class MediaVerdict : std::uint8_t { data, duplicate, ping, pong, bye, dropped };

/// Per path (start() and each path_changed() begin one): for "p2p: ... relay: ...".
struct MediaPathReport {
    std::string name;
    Time since{0};
    std::uint64_t data_sent = 0;
    std::uint64_t data_received = 0;  ///< unique
    std::uint64_t bytes_sent = 0;     ///< whole frames, every type
    std::uint64_t bytes_received = 0;
    std::uint64_t pings_sent = 0;
    std::uint64_t pongs_received = 0;
    std::optional<Time> rtt_min;
    std::optional<Time> srtt;
};

struct MediaReport {
    MediaState state = MediaState::idle;
    // Outbound: us → peer.
    std::uint64_t data_sent = 0;
    std::uint64_t bytes_sent = 0;  ///< whole frames, every type
    std::uint64_t pacing_skipped = 0;
    /// The peer's count of our data frames: from its bye (exact, peer_final) or its last pong
    /// (so far); with peer_expected, the highest sequence it had seen + 1.
    std::optional<std::uint64_t> peer_received;
    std::optional<std::uint64_t> peer_expected;
    bool peer_final = false;
    // Inbound: peer → us (RFC 3550 §6.4.1).
    std::uint64_t data_received = 0;  ///< unique
    std::uint64_t bytes_received = 0;
    /// The peer's bye count when it came (exact), else the highest sequence seen + 1.
    std::uint64_t expected = 0;
    std::uint64_t lost = 0;  ///< expected - data_received: late arrivals un-count their loss
    std::uint64_t duplicates = 0;
    std::uint64_t reordered = 0;  ///< arrived after a higher sequence
    std::optional<std::uint64_t> peer_sent;  ///< from the peer's bye
    double jitter_ms = 0;                    ///< RFC 3550 §6.4.1 interarrival jitter
    // Round trip, from pongs (RFC 6298 §2 smoothing), on the current path.
    std::uint64_t pings_sent = 0;
    std::uint64_t pongs_received = 0;
    std::uint64_t pings_received = 0;
    std::optional<Time> rtt_last;
    std::optional<Time> rtt_min;
    std::optional<Time> srtt;
    std::optional<Time> rttvar;
    std::uint64_t path_changes = 0;
    std::vector<MediaPathReport> paths;
    std::array<std::uint64_t, media_drop_count> drops{};
};

/// One line: "sent 1500, peer received 1500, lost 0; received 1500 of 1500, lost 0 (0.00%),
/// duplicates 0, reordered 0, jitter 0.00 ms; rtt 20.0 ms (min 20.0, srtt 20.0); p2p: sent 500
/// received 500 rtt 20.0 ms; relay: ...; drops 0". "peer received" is "-" until a pong or bye
/// tells it, "(so far)" until the bye.
std::string to_string(const MediaReport& report);

class MediaSession {
public:
    /// The frames to send, views into the session's buffers: valid until the next call.
    using Frames = std::span<const std::span<const std::byte>>;

    struct Received {
        MediaVerdict verdict = MediaVerdict::dropped;
        std::optional<MediaDrop> drop;
        /// Data: the payload, a view into the datagram given (synthetic or bridged).
        std::span<const std::byte> payload;
        /// A pong for a ping, our bye for the peer's: send on the path it came from.
        Frames reply;
    };

    /// Throws std::invalid_argument naming the field: bitrate_bps or packet_rate 0 but not
    /// both, a frame smaller than the header or larger than media_max_frame, keepalive,
    /// dead_after or bye_interval not > 0, bye_attempts or max_catch_up 0.
    explicit MediaSession(MediaConfig config);

    /// RFC 7983 §7 demultiplexing plus the "PL" mark: true for any frame of this channel
    /// (of any version or call), false for STUN, ChannelData, RTP and the rest. Three loads.
    [[nodiscard]] static bool is_media(std::span<const std::byte> datagram) noexcept;

    /// Opens the channel on its first path, named for the report ("p2p", "relay"): a ping now,
    /// then one every keepalive; the path counts as alive for dead_after from now.
    Frames start(Time now, std::string_view path);
    /// Synthetic data from now for `duration`: frame k at now + k / packet_rate exactly, so N s
    /// at rate R is exactly R·N frames. Returns the first; an empty list unless open, with a
    /// zero duration or without synthetic traffic configured. Replaces a stream in progress.
    Frames stream_for(Time duration, Time now);
    /// A bridged payload as one data frame; an empty list unless open or when the payload
    /// exceeds media_max_payload (counted in wrap_refused()).
    Frames wrap(std::span<const std::byte> payload, Time now);
    /// Ends the call: the synthetic stream stops, a bye goes out now and is repeated until the
    /// peer's bye comes or bye_attempts are spent.
    Frames close(Time now);

    Frames on_timer(Time now);
    Received on_datagram(std::span<const std::byte> datagram, Time now);
    /// When on_timer() next has something to do — the next data frame, ping or bye, or the
    /// moment the path would die — so that a driver checking path_alive() after each on_timer()
    /// learns of the death on time. nullopt when idle or closed.
    [[nodiscard]] std::optional<Time> next_timer() const noexcept;

    /// Something valid came from the peer within dead_after (counted from start() or the last
    /// path_changed() when nothing came since). False when idle or closed.
    [[nodiscard]] bool path_alive(Time now) const noexcept;
    /// The ladder moved the call to another path: liveness starts over with a grace of
    /// dead_after, the smoothed RTT restarts (a new path has its own), the counters go on, and
    /// a new per-path report begins. Returns a ping for the new path, at once.
    Frames path_changed(Time now, std::string_view path);

    [[nodiscard]] MediaState state() const noexcept { return state_; }
    /// Synthetic frames still to send (0 when no stream is running).
    [[nodiscard]] std::uint64_t stream_remaining() const noexcept;
    [[nodiscard]] std::size_t synthetic_frame_size() const noexcept { return frame_size_; }
    [[nodiscard]] std::uint64_t wrap_refused() const noexcept { return wrap_refused_; }
    [[nodiscard]] MediaReport report() const;

private:
    struct SentPing {
        std::uint32_t sequence = 0;
        std::int64_t at = 0;
        bool used = false;
    };

    void begin_frames() noexcept;
    Frames end_frames() noexcept;
    std::byte* frame(MediaType type, std::size_t size, Time now) noexcept;
    void send_data(std::span<const std::byte> payload, Time now) noexcept;
    void send_ping(Time now) noexcept;
    void schedule_first_pings(Time now) noexcept;
    void send_bye(Time now, bool answer) noexcept;
    Received drop(MediaDrop reason) noexcept;
    void receive_data(std::uint32_t sequence, std::int64_t sent_at, Time now,
                      Received& result) noexcept;
    void receive_pong(std::span<const std::byte> d, Time now, Received& result) noexcept;
    void receive_bye(std::span<const std::byte> d, Time now, Received& result) noexcept;
    MediaPathReport& path() noexcept { return report_.paths.back(); }
    [[nodiscard]] Time stream_slot(std::uint64_t k) const noexcept;

    MediaConfig config_;
    std::size_t frame_size_ = 0;  // synthetic, header included
    MediaState state_ = MediaState::idle;
    MediaReport report_;

    // Out: one buffer of frames and their views, cleared (not freed) on every call.
    std::vector<std::byte> out_;
    std::vector<std::size_t> out_ends_;
    std::vector<std::span<const std::byte>> out_frames_;
    std::vector<std::byte> synthetic_payload_;
    std::array<std::uint32_t, 4> next_sequence_{};  // per type, indexed type - 1

    // Timers.
    Time next_ping_{0};
    Time ping_backoff_{0};  ///< the next early ping's interval; 0 once the path is heard
    Time last_ping_at_{0};
    Time stream_start_{0};
    std::uint64_t stream_next_ = 0;  // next frame index in the stream
    std::uint64_t stream_count_ = 0;
    Time next_bye_{0};
    std::uint32_t byes_sent_ = 0;

    // Liveness.
    Time last_alive_{0};  // the last valid frame, or the start of the path's grace
    Time last_now_{0};    // the latest `now` given: next_timer() leaves out a death already past

    // RTT.
    std::array<SentPing, 16> recent_pings_{};
    std::uint32_t last_pong_sequence_ = 0;
    bool pong_seen_ = false;

    // Receive window (RFC 3550 §A.1's role; a bitmap for duplicates), jitter (§A.8).
    static constexpr std::uint64_t window = 4096;
    std::array<std::uint64_t, window / 64> seen_{};
    std::uint64_t highest_ = 0;  // highest data sequence received
    bool any_data_ = false;
    double last_transit_ = 0;  // µs
    double jitter_us_ = 0;

    std::uint64_t wrap_refused_ = 0;
};

}  // namespace punch
