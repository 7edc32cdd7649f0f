// MediaSession: two sessions wired back to back through an in-test link on a ManualClock.
//
// The link has a delay per direction and, per datagram, a fate the test chooses: lost, delayed
// further (reordering), duplicated, or everything cut. The harness is event-driven: the clock
// jumps to the next delivery or the next session timer, as an EventLoop would wake, so every
// time below is exact.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "punch/clock.h"
#include "punch/media_session.h"
#include "stun/demux.h"

// Counting operator new, for the zero-allocation property (the tests are single-threaded).
namespace {
std::size_t allocations = 0;
void* counted_malloc(std::size_t size) {
    ++allocations;
    return std::malloc(size == 0 ? 1 : size);
}
}  // namespace
// Not inlined: GCC would otherwise pair malloc() with operator delete, or operator new with
// free(), across the inlined bodies and warn (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t size) {
    if (void* p = counted_malloc(size)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace punch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint32_t call = 0x0C0FFEE0;

MediaConfig config(std::uint64_t bitrate = 64'000, std::uint32_t rate = 50) {
    MediaConfig c;
    c.call_id = call;
    c.bitrate_bps = bitrate;
    c.packet_rate = rate;
    return c;
}

// The wire format read independently of the session (docs/ladder.md, "Media channel").
std::uint8_t type_of(const std::vector<std::byte>& f) {
    return std::to_integer<std::uint8_t>(f[3]);
}
std::uint32_t sequence_of(const std::vector<std::byte>& f) {
    std::uint32_t v = 0;
    for (int i = 8; i < 12; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(f[i]);
    return v;
}
bool is_data(const std::vector<std::byte>& f) {
    return type_of(f) == static_cast<std::uint8_t>(MediaType::data);
}

std::uint64_t drops(const MediaReport& r, MediaDrop reason) {
    return r.drops[static_cast<std::size_t>(reason)];
}

struct Sent {
    Time at;
    std::vector<std::byte> bytes;
};

// One direction of the link.
struct Wire {
    Time delay = milliseconds(10);
    bool cut = false;
    // Data frames (by sequence) that are lost, delivered twice, or delayed further.
    std::set<std::uint32_t> lose;
    std::set<std::uint32_t> duplicate;
    std::map<std::uint32_t, Time> extra_delay;
    // Any frame: lost when this says so (byes, pongs, ...).
    std::function<bool(const std::vector<std::byte>&)> lose_if;
    std::vector<Sent> log;  // everything the sender put on the wire, lost or not
};

class Link {
public:
    explicit Link(MediaConfig a, MediaConfig b) : a_(a), b_(b) {}
    explicit Link(MediaConfig c = config()) : Link(c, c) {}

    MediaSession& session(int i) { return i == 0 ? a_ : b_; }
    Wire& wire(int from) { return wires_[from]; }

    void start(std::string_view path = "p2p") {
        send(0, a_.start(clock.now(), path));
        send(1, b_.start(clock.now(), path));
    }

    void send(int from, MediaSession::Frames frames) {
        Wire& w = wires_[from];
        for (const auto f : frames) {
            std::vector<std::byte> bytes(f.begin(), f.end());
            w.log.push_back(Sent{clock.now(), bytes});
            if (w.cut) continue;
            if (w.lose_if && w.lose_if(bytes)) continue;
            Time delay = w.delay;
            if (is_data(bytes)) {
                const auto s = sequence_of(bytes);
                if (w.lose.count(s)) continue;
                if (const auto it = w.extra_delay.find(s); it != w.extra_delay.end())
                    delay += it->second;
                if (w.duplicate.count(s))
                    flight_.emplace(std::pair(clock.now() + delay, order_++),
                                    std::pair(1 - from, bytes));
            }
            flight_.emplace(std::pair(clock.now() + delay, order_++),
                            std::pair(1 - from, std::move(bytes)));
        }
    }

    // Runs every delivery and timer up to `until`, jumping the clock from event to event.
    void run_until(Time until) {
        for (;;) {
            std::optional<Time> next;
            if (!flight_.empty()) next = flight_.begin()->first.first;
            for (int i = 0; i < 2; ++i)
                if (const auto t = session(i).next_timer(); t && (!next || *t < *next)) next = t;
            if (!next || *next > until) break;
            clock.set(std::max(*next, clock.now()));
            const Time now = clock.now();
            while (!flight_.empty() && flight_.begin()->first.first <= now) {
                auto [to, bytes] = std::move(flight_.begin()->second);
                flight_.erase(flight_.begin());
                const auto r = session(to).on_datagram(bytes, now);
                if (r.verdict == MediaVerdict::data)
                    payloads[to].emplace_back(r.payload.begin(), r.payload.end());
                send(to, r.reply);
            }
            for (int i = 0; i < 2; ++i) {
                const auto t = session(i).next_timer();
                if (t && *t <= now) send(i, session(i).on_timer(now));
                if (!died[i] && !session(i).path_alive(now) &&
                    session(i).state() == MediaState::open)
                    died[i] = now;
            }
        }
        clock.set(std::max(until, clock.now()));
    }
    void run_for(Time duration) { run_until(clock.now() + duration); }

    // Data frames on the wire from `from`, lost or not.
    std::vector<Sent> data_log(int from) {
        std::vector<Sent> out;
        for (const auto& s : wires_[from].log)
            if (is_data(s.bytes)) out.push_back(s);
        return out;
    }

    ManualClock clock{Time{seconds(100)}};
    std::array<std::vector<std::vector<std::byte>>, 2> payloads;
    std::array<std::optional<Time>, 2> died;

private:
    MediaSession a_;
    MediaSession b_;
    std::array<Wire, 2> wires_;
    std::map<std::pair<Time, std::uint64_t>, std::pair<int, std::vector<std::byte>>> flight_;
    std::uint64_t order_ = 0;
};

// 10 s at 50 frames/s from A, then the link drains.
void stream_ten_seconds(Link& link, int from = 0) {
    link.send(from, link.session(from).stream_for(seconds(10), link.clock.now()));
    link.run_for(seconds(11));
}

TEST(MediaSession, LossIsCountedFromSequenceGaps) {
    Link link;
    link.wire(0).lose = {5, 17, 18, 100};
    link.start();
    stream_ten_seconds(link);
    const auto b = link.session(1).report();
    EXPECT_EQ(b.data_received, 496u);
    EXPECT_EQ(b.expected, 500u);
    EXPECT_EQ(b.lost, 4u);
    EXPECT_EQ(b.duplicates, 0u);
    EXPECT_EQ(b.reordered, 0u);
    EXPECT_EQ(link.payloads[1].size(), 496u);
    // Keepalives whatever the traffic: every 500 ms, from 0 to 11 s.
    EXPECT_EQ(link.session(0).report().pings_sent, 23u);
    // The sender learns it from the pongs' receive reports, before any bye.
    const auto a = link.session(0).report();
    EXPECT_EQ(a.data_sent, 500u);
    ASSERT_TRUE(a.peer_received);
    EXPECT_EQ(*a.peer_received, 496u);
    EXPECT_EQ(*a.peer_expected, 500u);
    EXPECT_FALSE(a.peer_final);
    EXPECT_NE(to_string(a).find("sent 500, peer received 496, lost 4 (so far)"), std::string::npos)
        << to_string(a);
}

TEST(MediaSession, ReorderIsNotLossAndLateArrivalsUncountIt) {
    Link link;
    // Frames 3, 13, 23, ... held back 30 ms: they arrive after the one or two behind them.
    for (std::uint32_t s = 3; s < 500; s += 10) link.wire(0).extra_delay[s] = milliseconds(30);
    link.start();
    link.send(0, link.session(0).stream_for(seconds(10), link.clock.now()));
    // Frame 4 is sent at +80 ms and arrives at +90; frame 3 (sent +60) arrives at +100.
    link.run_until(link.clock.now() + milliseconds(95));
    EXPECT_EQ(link.session(1).report().lost, 1u);
    link.run_for(seconds(11));
    const auto b = link.session(1).report();
    EXPECT_EQ(b.data_received, 500u);
    EXPECT_EQ(b.lost, 0u);
    EXPECT_EQ(b.reordered, 50u);
    EXPECT_EQ(b.duplicates, 0u);
}

TEST(MediaSession, DuplicatesAreCountedAndNotDelivered) {
    Link link;
    for (std::uint32_t s = 0; s < 500; s += 7) link.wire(0).duplicate.insert(s);
    link.start();
    stream_ten_seconds(link);
    const auto b = link.session(1).report();
    EXPECT_EQ(b.duplicates, 72u);  // 0, 7, ..., 497
    EXPECT_EQ(b.data_received, 500u);
    EXPECT_EQ(b.lost, 0u);
    EXPECT_EQ(b.reordered, 0u);
    EXPECT_EQ(link.payloads[1].size(), 500u);
}

TEST(MediaSession, JitterIsZeroForConstantDelay) {
    Link link;
    link.wire(0).delay = milliseconds(37);
    link.start();
    stream_ten_seconds(link);
    EXPECT_EQ(link.session(1).report().jitter_ms, 0.0);
}

TEST(MediaSession, JitterFollowsTheRfc3550Formula) {
    Link link;
    // Odd frames 15 ms later than even ones (no reordering at 20 ms spacing): every transit
    // differs from the one before by 15 ms, so J_n = J_{n-1} + (15 - J_{n-1}) / 16 from J_1 = 0.
    // One second (50 frames) is far from converged, so the gain 1/16 shows.
    for (std::uint32_t s = 1; s < 50; s += 2) link.wire(0).extra_delay[s] = milliseconds(15);
    link.start();
    link.send(0, link.session(0).stream_for(seconds(1), link.clock.now()));
    link.run_for(seconds(2));
    double expected = 0;
    for (int n = 1; n < 50; ++n) expected += (15.0 - expected) / 16.0;
    const auto b = link.session(1).report();
    EXPECT_EQ(b.data_received, 50u);
    EXPECT_EQ(b.reordered, 0u);
    EXPECT_NEAR(b.jitter_ms, expected, 1e-9);
    EXPECT_LT(b.jitter_ms, 14.5);
}

TEST(MediaSession, JitterAfterFewFramesIsTheRunningEstimate) {
    Link link;
    link.wire(0).extra_delay[1] = milliseconds(8);  // transits 10, 18, 10 ms
    link.start();
    link.send(0, link.session(0).stream_for(milliseconds(60), link.clock.now()));
    link.run_for(seconds(1));
    // D = 8 then 8: J = 0.5, then 0.5 + (8 - 0.5) / 16.
    EXPECT_NEAR(link.session(1).report().jitter_ms, 0.5 + 7.5 / 16, 1e-9);
}

TEST(MediaSession, RttIsTheLinksRoundTrip) {
    Link link;
    link.wire(0).delay = milliseconds(15);
    link.wire(1).delay = milliseconds(25);
    link.start();
    link.run_for(milliseconds(3100));
    for (int i = 0; i < 2; ++i) {
        const auto r = link.session(i).report();
        EXPECT_EQ(r.pings_sent, 7u);  // at 0, 0.5, ..., 3 s
        EXPECT_EQ(r.pongs_received, 7u) << i;
        EXPECT_EQ(r.pings_received, 7u);
        EXPECT_EQ(r.rtt_last, milliseconds(40));
        EXPECT_EQ(r.rtt_min, milliseconds(40));
        EXPECT_EQ(r.srtt, milliseconds(40));
    }
    // RFC 6298 §2.3 from SRTT 40 ms and RTTVAR 20·(3/4)^6 ms: one sample of 80 ms.
    const auto before = link.session(0).report();
    link.wire(1).delay = milliseconds(65);
    link.run_for(milliseconds(500));
    const auto a = link.session(0).report();
    EXPECT_EQ(a.rtt_last, milliseconds(80));
    EXPECT_EQ(a.rtt_min, milliseconds(40));
    EXPECT_EQ(a.srtt, milliseconds(45));
    EXPECT_EQ(a.rttvar, (*before.rttvar * 3 + milliseconds(40)) / 4);
}

TEST(MediaSession, PingsComeEarlyUntilThePathIsHeard) {
    // A path whose first pings are lost (an SFU node not yet forwarding, a relay's permission
    // not yet installed): the next ones come after 50, 100, 200, 400 ms, then every keepalive;
    // once the peer is heard, keepalives count from the last ping.
    Link link;
    const Time start = link.clock.now();
    link.wire(0).delay = link.wire(1).delay = milliseconds(5);
    link.wire(0).lose_if = [&](const std::vector<std::byte>&) {
        return link.clock.now() < start + milliseconds(700);
    };
    link.wire(1).lose_if = link.wire(0).lose_if;
    link.start();
    link.run_for(milliseconds(2000));
    std::vector<Time> pings;
    for (const auto& f : link.wire(0).log)
        if (type_of(f.bytes) == static_cast<std::uint8_t>(MediaType::ping))
            pings.push_back(f.at - start);
    // 0, 50, 150, 350, 750 (heard at 755 ms: its pong), then 1250, 1750.
    const std::vector<Time> expected{milliseconds(0),   milliseconds(50),   milliseconds(150),
                                     milliseconds(350), milliseconds(750),  milliseconds(1250),
                                     milliseconds(1750)};
    EXPECT_EQ(pings, expected);
    // Without it (first_ping_retry 0): one ping a keepalive from the start.
    MediaConfig plain = config();
    plain.first_ping_retry = Time{0};
    Link slow(plain);
    slow.start();
    slow.run_for(milliseconds(1100));
    EXPECT_EQ(slow.session(0).report().pings_sent, 3u);  // 0, 500, 1000
}

TEST(MediaSession, PacingSendsExactlyRateTimesSecondsFramesOfTheBitratesSize) {
    struct Case {
        std::uint64_t bitrate;
        std::uint32_t rate;
        int seconds_;
        std::size_t size;
    };
    for (const Case c : {Case{64'000, 50, 10, 160}, Case{1'000'000, 100, 3, 1250},
                         Case{24'000, 30, 3, 100}, Case{56'000, 7, 2, 1000}}) {
        SCOPED_TRACE(c.rate);
        Link link(config(c.bitrate, c.rate));
        link.start();
        const Time start = link.clock.now();
        link.send(0, link.session(0).stream_for(seconds(c.seconds_), start));
        link.run_for(seconds(c.seconds_ + 2));
        const auto data = link.data_log(0);
        ASSERT_EQ(data.size(), c.rate * static_cast<std::size_t>(c.seconds_));
        std::uint64_t bytes = 0;
        for (std::size_t k = 0; k < data.size(); ++k) {
            ASSERT_EQ(data[k].bytes.size(), c.size);
            // Slot k exactly at k / rate (rounded down to the µs), never a burst.
            ASSERT_EQ(data[k].at - start, Time{static_cast<std::int64_t>(k * 1'000'000 / c.rate)});
            bytes += data[k].bytes.size();
        }
        EXPECT_EQ(bytes * 8 / static_cast<std::uint64_t>(c.seconds_), c.bitrate);
        EXPECT_EQ(link.session(0).report().pacing_skipped, 0u);
        EXPECT_EQ(link.session(1).report().data_received, data.size());
    }
}

TEST(MediaSession, LateWakeUpCatchesUpWithoutFlooding) {
    MediaSession s(config());
    const Time t0{seconds(1)};
    s.start(t0, "p2p");
    ASSERT_EQ(s.stream_for(seconds(10), t0).size(), 1u);
    EXPECT_EQ(s.next_timer(), t0 + milliseconds(20));
    // A wake-up 1 s late: 50 slots due (20 ms ... 1000 ms), and a ping.
    const auto frames = s.on_timer(t0 + seconds(1));
    std::size_t data = 0;
    for (const auto f : frames)
        if (std::to_integer<std::uint8_t>(f[3]) == static_cast<std::uint8_t>(MediaType::data))
            ++data;
    EXPECT_EQ(data, 4u);
    const auto r = s.report();
    EXPECT_EQ(r.pacing_skipped, 46u);
    EXPECT_EQ(r.data_sent, 5u);
    // Back on the original grid, one frame per slot.
    EXPECT_EQ(s.next_timer(), t0 + milliseconds(1020));
    EXPECT_EQ(s.on_timer(t0 + milliseconds(1020)).size(), 1u);
    EXPECT_EQ(s.stream_remaining(), 500u - 52u);
}

TEST(MediaSession, DeadPathIsDetectedInTimeAndRevivedByPathChange) {
    Link link;
    link.start();
    link.send(0, link.session(0).stream_for(seconds(30), link.clock.now()));
    link.send(1, link.session(1).stream_for(seconds(30), link.clock.now()));
    link.run_for(seconds(3));
    EXPECT_TRUE(link.session(0).path_alive(link.clock.now()));
    const Time cut = link.clock.now();
    link.wire(0).cut = link.wire(1).cut = true;
    link.run_for(seconds(4));
    const MediaConfig c = config();
    for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(link.died[i]) << i;
        // The timer wakes the driver at the moment of death, not at the next keepalive.
        EXPECT_LE(*link.died[i], cut + c.dead_after + c.keepalive);
        EXPECT_GT(*link.died[i], cut + c.dead_after - c.keepalive);
        EXPECT_FALSE(link.session(i).path_alive(link.clock.now()));
        EXPECT_EQ(link.session(i).state(), MediaState::open);  // the call goes on
    }
    // The ladder moves the call to the relay: alive at once (the grace), and kept alive by
    // the traffic on the new path past dead_after.
    link.wire(0).cut = link.wire(1).cut = false;
    link.wire(0).delay = link.wire(1).delay = milliseconds(30);
    link.died = {};
    link.send(0, link.session(0).path_changed(link.clock.now(), "relay"));
    link.send(1, link.session(1).path_changed(link.clock.now(), "relay"));
    EXPECT_TRUE(link.session(0).path_alive(link.clock.now()));
    link.run_for(seconds(5));
    for (int i = 0; i < 2; ++i) {
        EXPECT_FALSE(link.died[i]) << i;
        EXPECT_TRUE(link.session(i).path_alive(link.clock.now()));
        const auto r = link.session(i).report();
        EXPECT_EQ(r.path_changes, 1u);
        ASSERT_EQ(r.paths.size(), 2u);
        EXPECT_EQ(r.paths[0].name, "p2p");
        EXPECT_EQ(r.paths[1].name, "relay");
        EXPECT_EQ(r.paths[0].data_sent + r.paths[1].data_sent, r.data_sent);
        EXPECT_EQ(r.paths[0].srtt, milliseconds(20));
        EXPECT_EQ(r.paths[1].srtt, milliseconds(60));
        EXPECT_EQ(r.srtt, milliseconds(60));  // restarted on the new path
        // Frames 0..600, one per 20 ms for 12 s, across the outage: 0..150 got through before
        // the cut (150 was in flight), 151..350 went into it, 351..600 on the relay, where
        // the last two are still in flight (30 ms).
        EXPECT_EQ(r.data_sent, 601u);
        EXPECT_EQ(r.lost, 200u);
        EXPECT_EQ(r.data_received, 399u);
        const auto text = to_string(r);
        EXPECT_NE(text.find("; p2p: sent 351 received 151 rtt 20.0 ms; relay: sent 250 "
                            "received 248 rtt 60.0 ms;"),
                  std::string::npos)
            << text;
    }
}

TEST(MediaSession, PathChangeGraceIsDeadAfter) {
    // 1.7 s, off the keepalive grid: the death must come from its own timer, not from a ping's.
    MediaConfig c = config();
    c.dead_after = milliseconds(1700);
    Link link(c);
    link.start();
    link.run_for(seconds(1));
    link.wire(0).cut = link.wire(1).cut = true;
    link.run_for(seconds(5));
    ASSERT_TRUE(link.died[0]);
    link.died = {};
    const Time change = link.clock.now();
    link.send(0, link.session(0).path_changed(change, "relay"));  // a new path that is dead too
    EXPECT_TRUE(link.session(0).path_alive(change + c.dead_after - Time{1}));
    link.run_for(seconds(5));
    ASSERT_TRUE(link.died[0]);
    EXPECT_EQ(*link.died[0], change + c.dead_after);
}

TEST(MediaSession, PongFromBeforeAPathChangeIsNotTimed) {
    Link link;
    link.wire(0).delay = link.wire(1).delay = milliseconds(100);
    link.start();  // A's ping 0 is on the old path, its pong back at +200 ms
    link.run_for(milliseconds(40));  // before the first early ping (50 ms)
    link.wire(0).delay = link.wire(1).delay = milliseconds(10);
    link.send(0, link.session(0).path_changed(link.clock.now(), "relay"));
    link.run_for(milliseconds(400));
    const auto a = link.session(0).report();
    EXPECT_EQ(a.rtt_last, milliseconds(20));
    EXPECT_EQ(a.srtt, milliseconds(20));
    EXPECT_EQ(a.pongs_received, 1u);
    EXPECT_EQ(drops(a, MediaDrop::unknown_pong), 1u);
}

TEST(MediaSession, ByeMakesEndOfCallLossExact) {
    Link link;
    link.wire(0).lose = {0, 100, 250};  // the first and, below, the last too
    link.wire(1).lose = {7};
    // The first bye is lost: A repeats it.
    bool first_bye = true;
    link.wire(0).lose_if = [&](const std::vector<std::byte>& f) {
        if (type_of(f) != static_cast<std::uint8_t>(MediaType::bye) || !first_bye) return false;
        first_bye = false;
        return true;
    };
    link.start();
    link.send(0, link.session(0).stream_for(seconds(10), link.clock.now()));
    link.send(1, link.session(1).stream_for(seconds(10), link.clock.now()));
    // A hangs up at 5 s, right after its frame 250, while B's stream is still flowing.
    link.run_for(seconds(5));
    // Without the bye, B cannot know that frame 250 existed.
    EXPECT_EQ(link.session(1).report().lost, 2u);
    const Time hang_up = link.clock.now();
    link.send(0, link.session(0).close(hang_up));
    EXPECT_EQ(link.session(0).state(), MediaState::closing);
    EXPECT_EQ(link.session(0).stream_remaining(), 0u);
    // Closed on B's answer (+220 ms), not by running out of attempts (+600 ms).
    link.run_for(milliseconds(250));
    EXPECT_EQ(link.session(0).state(), MediaState::closed);
    EXPECT_EQ(link.session(1).state(), MediaState::closed);
    link.run_for(seconds(2));
    EXPECT_FALSE(link.session(0).next_timer());
    EXPECT_FALSE(link.session(1).next_timer());

    // A: frames 0..250. B: streaming until A's repeated bye reached it at +210 ms, frames
    // 0..260. A's bye repeated at +200 ms counted 259 of B's (260 was in flight); its final
    // one, after B's answer, 260.
    const auto a = link.session(0).report();
    EXPECT_EQ(a.data_sent, 251u);
    EXPECT_EQ(link.data_log(0).back().at, hang_up);  // nothing after the hang-up
    EXPECT_TRUE(a.peer_final);
    EXPECT_EQ(a.peer_received, 248u);
    EXPECT_EQ(a.peer_sent, 261u);
    EXPECT_EQ(a.data_received, 260u);
    EXPECT_EQ(a.lost, 1u);
    const auto b = link.session(1).report();
    EXPECT_EQ(b.data_sent, 261u);
    EXPECT_EQ(b.peer_sent, 251u);
    EXPECT_EQ(b.expected, 251u);
    EXPECT_EQ(b.lost, 3u);
    EXPECT_EQ(b.peer_received, 260u);
    EXPECT_EQ(to_string(a).rfind("sent 251, peer received 248, lost 3; received 260 of 261, "
                                 "lost 1 (0.38%)",
                                 0),
              0u)
        << to_string(a);
    EXPECT_EQ(to_string(b).rfind("sent 261, peer received 260, lost 1; received 248 of 251, "
                                 "lost 3 (1.20%)",
                                 0),
              0u)
        << to_string(b);
    // Byes on the wire: A's lost one, its repeat, its final; B's answer.
    std::size_t byes = 0;
    for (const auto& sent : link.wire(0).log)
        byes += type_of(sent.bytes) == static_cast<std::uint8_t>(MediaType::bye);
    EXPECT_EQ(byes, 3u);

    // A frame numbered past A's announced count is not A's: dropped, the figures stand. A ping
    // after the call is not answered.
    MediaSession stray(config());
    stray.start(Time{0}, "p2p");
    for (int i = 0; i < 251; ++i) stray.wrap(std::vector<std::byte>(4), Time{0});
    const auto f = stray.wrap(std::vector<std::byte>(4), Time{0}).front();  // sequence 251
    EXPECT_EQ(link.session(1).on_datagram(f, link.clock.now()).drop, MediaDrop::after_bye);
    const auto ping = stray.path_changed(Time{0}, "p2p").front();
    const auto answer = link.session(1).on_datagram(ping, link.clock.now());
    EXPECT_EQ(answer.drop, MediaDrop::not_open);
    EXPECT_TRUE(answer.reply.empty());
    EXPECT_EQ(link.session(1).report().lost, 3u);
}

TEST(MediaSession, ByeToAGonePeerGivesUpAfterItsAttempts) {
    Link link;
    link.start();
    link.run_for(seconds(1));
    link.wire(0).cut = true;
    link.send(0, link.session(0).close(link.clock.now()));
    link.run_for(seconds(5));
    const auto a = link.session(0).report();
    EXPECT_EQ(a.state, MediaState::closed);
    EXPECT_FALSE(a.peer_final);
    std::size_t byes = 0;
    for (const auto& s : link.wire(0).log)
        byes += type_of(s.bytes) == static_cast<std::uint8_t>(MediaType::bye);
    EXPECT_EQ(byes, config().bye_attempts);
}

TEST(MediaSession, BridgedPayloadsRoundTrip) {
    Link link(config(0, 0));
    link.start();
    const std::vector<std::byte> rtp = {std::byte{0x80}, std::byte{0x60}, std::byte{0x12},
                                        std::byte{0x34}, std::byte{0xAB}};
    link.send(0, link.session(0).wrap(rtp, link.clock.now()));
    link.run_for(milliseconds(50));
    ASSERT_EQ(link.payloads[1].size(), 1u);
    EXPECT_EQ(link.payloads[1][0], rtp);
    // Too big for one packet on every rung, or not open: refused, nothing sent.
    const std::vector<std::byte> big(media_max_payload + 1);
    EXPECT_TRUE(link.session(0).wrap(big, link.clock.now()).empty());
    EXPECT_EQ(link.session(0).wrap(std::vector<std::byte>(media_max_payload), link.clock.now())
                  .front()
                  .size(),
              media_max_frame);
    MediaSession idle(config());
    EXPECT_TRUE(idle.wrap(rtp, Time{0}).empty());
    EXPECT_EQ(link.session(0).wrap_refused(), 1u);
    EXPECT_TRUE(link.session(0).stream_for(seconds(1), link.clock.now()).empty());
}

std::vector<std::byte> bytes(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (const int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

// A STUN Binding request, a ChannelData message, an RTP packet (PT 96) and media frames.
const auto stun_request = bytes({0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5,
                                 6, 7, 8, 9, 10, 11, 12});
const auto channel_data = bytes({0x40, 0x00, 0x00, 0x04, 0x81, 'P', 'L', 1});
const auto rtp = bytes({0x80, 0x60, 0x00, 0x01, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78, 1, 2});

std::vector<std::byte> media_frame(MediaConfig c = config()) {
    MediaSession s(c);
    s.start(Time{0}, "p2p");
    const auto f = s.wrap(rtp, Time{0});
    return {f.front().begin(), f.front().end()};
}

TEST(MediaSession, IsMediaDemultiplexesTheSharedSocket) {
    const auto media = media_frame();
    EXPECT_TRUE(MediaSession::is_media(media));
    EXPECT_EQ(media[0], std::byte{0x81});
    EXPECT_EQ(stun::classify(media), stun::PacketKind::rtp_rtcp);  // RFC 7983's range
    EXPECT_FALSE(MediaSession::is_media(stun_request));
    EXPECT_EQ(stun::classify(stun_request), stun::PacketKind::stun);
    EXPECT_FALSE(MediaSession::is_media(channel_data));
    EXPECT_EQ(stun::classify(channel_data), stun::PacketKind::turn_channel);
    EXPECT_FALSE(MediaSession::is_media(rtp));
    EXPECT_FALSE(MediaSession::is_media(bytes({0x81, 'P'})));
    EXPECT_FALSE(MediaSession::is_media({}));
    // Every first byte outside 128..191 is refused, whatever follows.
    for (int b = 0; b < 256; ++b) {
        auto f = media;
        f[0] = static_cast<std::byte>(b);
        EXPECT_EQ(MediaSession::is_media(f), b >= 0x80 && b <= 0xBF) << b;
    }
}

TEST(MediaSession, StrayAndGarbageFramesAreDroppedByReason) {
    MediaSession s(config());
    const auto early = s.on_datagram(media_frame(), Time{0});
    EXPECT_EQ(early.drop, MediaDrop::not_open);
    s.start(Time{0}, "p2p");
    auto wrong_version = media_frame();
    wrong_version[0] = std::byte{0x82};
    auto short_frame = media_frame();
    short_frame.resize(media_header_size - 1);
    MediaConfig other = config();
    other.call_id = call + 1;
    auto unknown_type = media_frame();
    unknown_type[3] = std::byte{9};
    auto short_pong = media_frame();
    short_pong[3] = std::byte{static_cast<std::uint8_t>(MediaType::pong)};
    auto forged_pong = short_pong;
    forged_pong.resize(media_pong_size);  // echoes a ping we never sent
    struct Case {
        const char* name;
        std::vector<std::byte> datagram;
        MediaDrop reason;
    };
    const Case cases[] = {
        {"empty", {}, MediaDrop::not_media},
        {"stun", stun_request, MediaDrop::not_media},
        {"channel data", channel_data, MediaDrop::not_media},
        {"rtp", rtp, MediaDrop::not_media},
        {"wrong version", wrong_version, MediaDrop::wrong_version},
        {"short", short_frame, MediaDrop::too_short},
        {"other call", media_frame(other), MediaDrop::wrong_call},
        {"unknown type", unknown_type, MediaDrop::unknown_type},
        {"short pong", short_pong, MediaDrop::too_short},
        {"forged pong", forged_pong, MediaDrop::unknown_pong},
    };
    std::array<std::uint64_t, media_drop_count> expected{};
    expected[static_cast<std::size_t>(MediaDrop::not_open)] = 1;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto r = s.on_datagram(c.datagram, seconds(1));
        EXPECT_EQ(r.verdict, MediaVerdict::dropped);
        EXPECT_EQ(r.drop, c.reason);
        EXPECT_TRUE(r.payload.empty());
        EXPECT_TRUE(r.reply.empty());
        ++expected[static_cast<std::size_t>(c.reason)];
    }
    const auto report = s.report();
    EXPECT_EQ(report.drops, expected);
    EXPECT_EQ(report.data_received, 0u);
    EXPECT_EQ(report.bytes_received, 0u);
    // Garbage keeps no path alive.
    EXPECT_FALSE(s.path_alive(config().dead_after));
    EXPECT_EQ(to_string(MediaDrop::wrong_call), "wrong_call");
    EXPECT_NE(to_string(report).find("drops 11"), std::string::npos) << to_string(report);
}

TEST(MediaSession, FramesOlderThanTheWindowAreDroppedAndStayLost) {
    Link link;
    link.wire(0).extra_delay[0] = seconds(100);  // frame 0 far behind everything
    link.start();
    link.send(0, link.session(0).stream_for(seconds(100), link.clock.now()));  // 5000 frames
    link.run_for(seconds(102));
    const auto b = link.session(1).report();
    EXPECT_EQ(b.data_received, 4999u);
    EXPECT_EQ(drops(b, MediaDrop::too_old), 1u);  // 4999 behind the newest: outside the window
    EXPECT_EQ(b.lost, 1u);
}

TEST(MediaSession, OnlyTheNewestPongsReceiveReportCountsAndHoldIsSubtracted) {
    MediaSession a(config()), b(config());
    a.start(Time{0}, "p2p");
    b.start(Time{0}, "p2p");
    auto copy = [](MediaSession::Frames frames) {
        return std::vector<std::byte>(frames.front().begin(), frames.front().end());
    };
    const auto ping1 = copy(a.on_timer(milliseconds(500)));
    const auto pong1 = copy(b.on_datagram(ping1, milliseconds(510)).reply);
    for (const auto f : a.stream_for(milliseconds(20), milliseconds(520)))
        (void)b.on_datagram(f, milliseconds(530));
    const auto ping2 = copy(a.on_timer(milliseconds(1000)));
    auto pong2 = copy(b.on_datagram(ping2, milliseconds(1010)).reply);
    EXPECT_EQ(a.on_datagram(pong2, milliseconds(1020)).verdict, MediaVerdict::pong);
    EXPECT_EQ(a.on_datagram(pong1, milliseconds(1030)).verdict, MediaVerdict::pong);  // late
    const auto r = a.report();
    EXPECT_EQ(r.peer_received, 1u);  // pong 2's, not the late pong 1's 0
    EXPECT_EQ(r.peer_expected, 1u);
    EXPECT_EQ(r.rtt_last, milliseconds(530));
    EXPECT_EQ(r.rtt_min, milliseconds(20));
    // A responder's hold time comes off the RTT, and one longer than the round trip is a lie.
    const auto ping3 = copy(a.on_timer(milliseconds(1500)));
    auto pong3 = copy(b.on_datagram(ping3, milliseconds(1510)).reply);
    pong3[34] = std::byte{0x10};  // hold 4096 µs
    EXPECT_EQ(a.on_datagram(pong3, milliseconds(1520)).verdict, MediaVerdict::pong);
    EXPECT_EQ(a.report().rtt_last, milliseconds(20) - Time{4096});
    const auto ping4 = copy(a.on_timer(milliseconds(2000)));
    auto pong4 = copy(b.on_datagram(ping4, milliseconds(2010)).reply);
    pong4[33] = std::byte{0x01};  // hold 65.536 ms
    EXPECT_EQ(a.on_datagram(pong4, milliseconds(2020)).drop, MediaDrop::unknown_pong);
    // A bye cut short is not read.
    auto bye = copy(a.close(milliseconds(2100)));
    bye.resize(media_bye_size - 1);
    EXPECT_EQ(b.on_datagram(bye, milliseconds(2110)).drop, MediaDrop::too_short);
    EXPECT_EQ(b.state(), MediaState::open);
}

TEST(MediaSession, MangledFramesAreEachDeliveredOrCountedOnce) {
    // Valid frames of every type with bytes flipped, cut or extended at random (seeded): each
    // datagram is either taken (data, duplicate, ping, pong, bye) or dropped under exactly one
    // reason. A sanitizer build runs this as a small fuzzer.
    MediaSession a(config()), b(config());
    a.start(Time{0}, "p2p");
    b.start(Time{0}, "p2p");
    std::vector<std::vector<std::byte>> seeds;
    auto keep = [&](MediaSession::Frames frames) {
        for (const auto f : frames) seeds.emplace_back(f.begin(), f.end());
    };
    keep(a.stream_for(seconds(1), Time{0}));
    keep(a.on_timer(milliseconds(500)));  // data and a ping
    keep(b.on_datagram(seeds.back(), milliseconds(510)).reply);  // a pong
    keep(b.close(milliseconds(600)));  // a bye
    std::uint64_t state = 0x9E3779B97F4A7C15u;
    auto random = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    std::uint64_t taken = 0, dropped = 0;
    for (int i = 0; i < 20000; ++i) {
        auto d = seeds[random() % seeds.size()];
        switch (random() % 4) {
            case 0: d[random() % d.size()] = static_cast<std::byte>(random()); break;
            case 1: d.resize(random() % (d.size() + 1)); break;
            case 2: d.resize(d.size() + random() % 8, static_cast<std::byte>(random())); break;
            default:
                for (int k = 0; k < 4 && !d.empty(); ++k)
                    d[random() % d.size()] = static_cast<std::byte>(random());
        }
        const auto r = a.on_datagram(d, milliseconds(700) + Time{i});
        if (r.verdict == MediaVerdict::dropped) {
            ++dropped;
            EXPECT_TRUE(r.drop.has_value());
        } else {
            ++taken;
            EXPECT_FALSE(r.drop.has_value());
        }
    }
    const auto report = a.report();
    std::uint64_t counted = 0;
    for (const auto n : report.drops) counted += n;
    EXPECT_EQ(counted, dropped);
    EXPECT_GT(taken, 0u);
    EXPECT_GT(dropped, 0u);
}

TEST(MediaSession, ConfigErrorsNameTheField) {
    auto message = [](MediaConfig c) -> std::string {
        try {
            MediaSession s(c);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    auto with = [](auto change) {
        MediaConfig c = config();
        change(c);
        return c;
    };
    EXPECT_NE(message(with([](MediaConfig& c) { c.packet_rate = 0; })).find("packet_rate is 0"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.bitrate_bps = 0; })).find("bitrate_bps is 0"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.bitrate_bps = 1000; })).find("less than the 20"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.bitrate_bps = 10'000'000; }))
                  .find("25000 bytes per frame, more than 1400"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.keepalive = Time{0}; })).find("keepalive"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.dead_after = Time{-1}; })).find("dead_after"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.bye_attempts = 0; })).find("bye_attempts"),
              std::string::npos);
    EXPECT_NE(message(with([](MediaConfig& c) { c.max_catch_up = 0; })).find("max_catch_up"),
              std::string::npos);
    EXPECT_EQ(message(config(0, 0)), "");
}

TEST(MediaSession, SteadyStateAllocatesNothing) {
    MediaSession a(config()), b(config());
    Time now{0};
    a.start(now, "p2p");
    b.start(now, "p2p");
    a.stream_for(seconds(60), now);
    auto step = [&] {
        now += milliseconds(20);
        for (const auto f : a.on_timer(now)) {
            const auto r = b.on_datagram(f, now);
            for (const auto reply : r.reply) (void)a.on_datagram(reply, now);
        }
        for (const auto f : b.on_timer(now)) {
            const auto r = a.on_datagram(f, now);
            for (const auto reply : r.reply) (void)b.on_datagram(reply, now);
        }
    };
    for (int i = 0; i < 50; ++i) step();  // warm-up
    const std::size_t before = allocations;
    for (int i = 0; i < 1000; ++i) step();
    const std::size_t made = allocations - before;
    EXPECT_EQ(made, 0u);
    EXPECT_EQ(b.report().data_received, 1050u);  // all but the first, not delivered
    EXPECT_GT(a.report().pongs_received, 40u);
}

}  // namespace
}  // namespace punch
