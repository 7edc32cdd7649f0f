// The mapping lifetime search (nat/lifetime.cc): its rounds as pure decisions, and its trials
// end to end on loopback against a small server written here with the codec, which pretends
// to be a NAT's mapping table: a source port's mapping lives `lifetime` after the last
// request seen from it, and a RESPONSE-PORT answer goes out only to a live one. Nothing
// sleeps; the server's decisions, not the machine's speed, are what the checks rest on.
#include <gtest/gtest.h>

#include <array>
#include <map>

#include "punch/lifetime.h"
#include "stun/attributes.h"
#include "stun/writer.h"

namespace punch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<Time> ms_list(std::initializer_list<int> values) {
    std::vector<Time> out;
    for (int v : values) out.push_back(milliseconds(v));
    return out;
}

TEST(LifetimeSearch, FirstRoundDoublesUpToTheMax) {
    LifetimeSearch s;  // 1 s, max 120 s
    EXPECT_EQ(next_lifetime_round(s, {}),
              ms_list({1000, 2000, 4000, 8000, 16000, 32000, 64000, 120000}));
    s.max = seconds(8);
    EXPECT_EQ(next_lifetime_round(s, {}), ms_list({1000, 2000, 4000, 8000}));
    s.max = s.start;
    EXPECT_EQ(next_lifetime_round(s, {}), ms_list({1000}));
}

TEST(LifetimeSearch, AllAliveUpToTheMaxEnds) {
    LifetimeSearch s;
    s.max = seconds(4);
    const std::vector<LifetimeTrial> trials{
        {seconds(1), true}, {seconds(2), true}, {seconds(4), true}};
    EXPECT_TRUE(next_lifetime_round(s, trials).empty());
    const auto b = lifetime_bounds(trials);
    EXPECT_EQ(b.alive, seconds(4));
    EXPECT_FALSE(b.dead);
}

TEST(LifetimeSearch, SplitsBetweenAliveAndDeadAtTheResolution) {
    LifetimeSearch s;  // resolution 1 s, 4 in parallel
    // 4 s alive, 8 s dead: 5, 6, 7 (a finer split would be below the resolution).
    EXPECT_EQ(next_lifetime_round(s, {{seconds(1), true}, {seconds(4), true}, {seconds(8), false}}),
              ms_list({5000, 6000, 7000}));
    // 16 alive, 32 dead: four evenly spaced waits.
    EXPECT_EQ(next_lifetime_round(s, {{seconds(16), true}, {seconds(32), false}}),
              ms_list({19200, 22400, 25600, 28800}));
    // The first wait already dead: split from zero.
    EXPECT_EQ(next_lifetime_round(s, {{seconds(1), false}}).size(), 0u);  // 1 s: at resolution
    EXPECT_EQ(next_lifetime_round(s, {{seconds(3), false}}), ms_list({1000, 2000}));
}

TEST(LifetimeSearch, EndsWithinTheResolutionOrOnAContradiction) {
    LifetimeSearch s;
    EXPECT_TRUE(next_lifetime_round(s, {{seconds(5), true}, {seconds(6), false}}).empty());
    // Alive longer than dead (a lost answer): nothing more to learn from splitting.
    EXPECT_TRUE(next_lifetime_round(s, {{seconds(8), true}, {seconds(6), false}}).empty());
    const auto b = lifetime_bounds({{seconds(8), true}, {seconds(6), false}, {seconds(9), false}});
    EXPECT_EQ(b.alive, seconds(8));
    EXPECT_EQ(b.dead, seconds(6));
}

TEST(LifetimeSearch, EverySearchEnds) {
    // Whatever the mapping's lifetime, answering each round truthfully ends within the
    // resolution in a handful of rounds.
    LifetimeSearch s;
    s.max = seconds(120);
    for (int lifetime_ms = 500; lifetime_ms <= 130000; lifetime_ms += 777) {
        std::vector<LifetimeTrial> trials;
        int rounds = 0;
        for (auto waits = next_lifetime_round(s, trials); !waits.empty();
             waits = next_lifetime_round(s, trials)) {
            ASSERT_LT(++rounds, 12) << lifetime_ms;
            for (const Time w : waits) trials.push_back({w, w < milliseconds(lifetime_ms)});
        }
        const auto b = lifetime_bounds(trials);
        if (lifetime_ms > 120000) {
            EXPECT_FALSE(b.dead);
            continue;
        }
        ASSERT_TRUE(b.dead) << lifetime_ms;
        EXPECT_GE(*b.dead, milliseconds(lifetime_ms));
        EXPECT_LT(b.alive.value_or(Time{0}), milliseconds(lifetime_ms));
        EXPECT_LE(*b.dead - b.alive.value_or(Time{0}), s.resolution) << lifetime_ms;
    }
}

enum class ServerMode { honours, ignores_response_port, refuses_response_port };

// A STUN server and a pretended NAT mapping table in one: see the file's comment.
class FakeMappingServer {
public:
    FakeMappingServer(EventLoop& loop, Time lifetime, ServerMode mode)
        : loop_(loop), lifetime_(lifetime), mode_(mode) {}
    ~FakeMappingServer() { loop_.unwatch(socket_); }

    bool start() {
        return socket_.open(stun::Address::v4(0x7F000001, 0)).empty() &&
               loop_.watch(socket_, [this] { on_readable(); }).empty();
    }
    [[nodiscard]] stun::Address address() const { return socket_.local_address(); }

    std::map<std::uint16_t, int> plain_requests;  // by source port
    std::map<std::uint16_t, int> targeted;        // RESPONSE-PORT requests, by port named
    std::map<std::uint16_t, Time> last_seen;
    int answered_alive = 0;
    int dropped_dead = 0;

private:
    void on_readable() {
        std::array<std::byte, 1500> buffer;
        stun::Address from;
        for (long n; (n = socket_.receive_from(buffer, from)) >= 0;) {
            stun::Message m;
            const auto d = std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
            if (stun::Message::parse(d, m) != stun::ParseError::ok) continue;
            if (!m.is(stun::Method::binding, stun::MessageClass::request)) continue;
            stun::Address to = from;
            if (const auto a = m.find(stun::attr::response_port)) {
                std::uint16_t port = 0;
                ASSERT_EQ(stun::decode_response_port(*a, port), stun::ParseError::ok);
                ++targeted[port];
                if (mode_ == ServerMode::refuses_response_port) {
                    answer(m, from, from, stun::MessageClass::error_response);
                    continue;
                }
                if (mode_ == ServerMode::honours) {
                    const auto seen = last_seen.find(port);
                    if (seen == last_seen.end() || loop_.now() - seen->second >= lifetime_) {
                        ++dropped_dead;  // the NAT has no mapping for it any more
                        continue;
                    }
                    ++answered_alive;
                    seen->second = loop_.now();  // the answer refreshes it, as conntrack does
                    to.port = port;
                }
            } else {
                ++plain_requests[from.port];
                last_seen[from.port] = loop_.now();
            }
            answer(m, from, to, stun::MessageClass::success_response);
        }
    }

    void answer(const stun::Message& m, const stun::Address& from, const stun::Address& to,
                stun::MessageClass cls) {
        std::array<std::byte, 256> response;
        stun::MessageWriter w(response, stun::Method::binding, cls, m.transaction_id());
        if (cls == stun::MessageClass::error_response)
            w.add_error_code(420, "Unknown Attribute");
        else
            w.add_xor_address(stun::attr::xor_mapped_address, from);
        w.add_fingerprint();
        (void)socket_.send_to(to, w.finish());
    }

    EventLoop& loop_;
    Time lifetime_;
    ServerMode mode_;
    UdpSocket socket_;
};

class LifetimeTest : public ::testing::Test {
protected:
    LifetimeReport measure(FakeMappingServer& server) {
        LifetimeConfig config;
        config.server = server.address();
        config.policy.initial_rto = milliseconds(20);
        config.policy.max_duration = milliseconds(60);
        config.search.start = milliseconds(40);
        config.search.max = milliseconds(400);
        config.search.resolution = milliseconds(20);
        LifetimeReport report;
        EXPECT_EQ(run_lifetime(loop, config, report), "");
        return report;
    }

    // X never spoke again after its one request (it would have refreshed its mapping), and Y
    // named X's ports only, never its own.
    static void expect_trials_made_right(const FakeMappingServer& server) {
        for (const auto& [port, count] : server.plain_requests)
            EXPECT_EQ(count, 1) << "port " << port << " refreshed its mapping while waiting";
        for (const auto& [port, count] : server.targeted) {
            EXPECT_TRUE(server.plain_requests.contains(port)) << port;
            EXPECT_GE(count, 1) << port;  // answered at once, or retransmitted to no avail
        }
    }

    SteadyClock clock;
    EventLoop loop{clock};
};

TEST_F(LifetimeTest, FindsTheLifetimeWithinTheResolution) {
    FakeMappingServer server(loop, milliseconds(150), ServerMode::honours);
    ASSERT_TRUE(server.start());
    const auto r = measure(server);
    EXPECT_EQ(r.error, "");
    ASSERT_TRUE(r.bounds.alive);
    ASSERT_TRUE(r.bounds.dead);
    // Alive means the server saw less than the lifetime idle, and it saw at least the wait.
    EXPECT_LT(*r.bounds.alive, milliseconds(150));
    EXPECT_LT(*r.bounds.alive, *r.bounds.dead);
    EXPECT_LE(*r.bounds.dead - *r.bounds.alive, milliseconds(20));
    EXPECT_GE(r.rounds, 2u);
    EXPECT_GT(server.answered_alive, 0);
    EXPECT_GT(server.dropped_dead, 0);
    int alive = 0;
    for (const auto& t : r.trials) alive += t.alive ? 1 : 0;
    EXPECT_EQ(alive, server.answered_alive);
    expect_trials_made_right(server);
}

TEST_F(LifetimeTest, AliveUpToTheMax) {
    FakeMappingServer server(loop, seconds(30), ServerMode::honours);
    ASSERT_TRUE(server.start());
    const auto r = measure(server);
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.bounds.alive, milliseconds(400));
    EXPECT_FALSE(r.bounds.dead);
    EXPECT_EQ(r.rounds, 1u);
    EXPECT_EQ(r.trials.size(), 5u);  // 40, 80, 160, 320, 400 ms
    expect_trials_made_right(server);
}

TEST_F(LifetimeTest, AServerThatIgnoresResponsePortIsNamed) {
    FakeMappingServer server(loop, seconds(30), ServerMode::ignores_response_port);
    ASSERT_TRUE(server.start());
    const auto r = measure(server);
    EXPECT_NE(r.error.find("does not honour RESPONSE-PORT"), std::string::npos) << r.error;
    EXPECT_TRUE(r.trials.empty());
}

TEST_F(LifetimeTest, AServerThatRefusesResponsePortIsNamed) {
    FakeMappingServer server(loop, seconds(30), ServerMode::refuses_response_port);
    ASSERT_TRUE(server.start());
    const auto r = measure(server);
    EXPECT_NE(r.error.find("420 Unknown Attribute"), std::string::npos) << r.error;
    EXPECT_TRUE(r.trials.empty());
}

TEST_F(LifetimeTest, ABadSearchIsRefused) {
    FakeMappingServer server(loop, seconds(30), ServerMode::honours);
    ASSERT_TRUE(server.start());
    LifetimeConfig config;
    config.server = server.address();
    config.search.start = seconds(2);
    config.search.max = seconds(1);
    LifetimeReport report;
    EXPECT_NE(run_lifetime(loop, config, report), "");
}

}  // namespace
}  // namespace punch
