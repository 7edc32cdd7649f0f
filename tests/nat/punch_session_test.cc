// PunchSession: two sessions back to back through an in-test network of NATs on a ManualClock.
//
// The NAT model is the RFC 4787 vocabulary natlab.md builds with nftables: mapping endpoint-
// independent (one public port per internal endpoint) or address-and-port-dependent (symmetric:
// a new port per destination), filtering none / address / address-and-port. Each side learns
// its server-reflexive address by sending to a "STUN server" first, as `punch probe` does, so a
// symmetric side's srflx port is not the one its NAT later uses toward the peer.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "punch/clock.h"
#include "punch/event_loop.h"
#include "punch/udp_socket.h"
#include "punch/punch_session.h"
#include "stun/constants.h"
#include "stun/writer.h"

namespace punch {
namespace {

using std::chrono::milliseconds;

stun::Address v4(std::uint32_t ip, std::uint16_t port) { return stun::Address::v4(ip, port); }

std::uint32_t ip_of(const stun::Address& a) {
    return (std::to_integer<std::uint32_t>(a.ip[0]) << 24) |
           (std::to_integer<std::uint32_t>(a.ip[1]) << 16) |
           (std::to_integer<std::uint32_t>(a.ip[2]) << 8) | std::to_integer<std::uint32_t>(a.ip[3]);
}

enum class Mapping { endpoint_independent, symmetric };
enum class Filtering { none, address, port };

struct Nat {
    Mapping mapping;
    Filtering filtering;
    std::uint32_t public_ip;
    stun::Address inside;  // the one host behind it
    std::uint16_t next_port = 40000;
    // public port -> destinations sent to from it
    std::map<std::uint16_t, std::vector<stun::Address>> sent_to;
    // destination (symmetric) or none (EIM) -> public port
    std::vector<std::pair<stun::Address, std::uint16_t>> ports;

    stun::Address outbound(const stun::Address& to) {
        const stun::Address key = mapping == Mapping::symmetric ? to : stun::Address{};
        std::uint16_t port = 0;
        for (const auto& [k, p] : ports)
            if (k == key) port = p;
        if (port == 0) {
            port = next_port++;
            ports.emplace_back(key, port);
        }
        sent_to[port].push_back(to);
        return v4(public_ip, port);
    }
    bool inbound(const stun::Address& from, std::uint16_t port) const {
        const auto it = sent_to.find(port);
        if (it == sent_to.end()) return false;
        if (filtering == Filtering::none) return true;
        for (const auto& d : it->second) {
            if (filtering == Filtering::address && ip_of(d) == ip_of(from)) return true;
            if (filtering == Filtering::port && d == from) return true;
        }
        return false;
    }
};

const stun::Address stun_server = v4(0xC6336401, 3478);  // 198.51.100.1
constexpr Time latency = milliseconds(10);

struct Side {
    Nat nat;
    std::optional<PunchSession> session;
};

struct InFlight {
    Time at;
    int to_side;
    stun::Address from;  // as the receiver sees it
    std::vector<std::byte> bytes;
};

// Two hosts, each behind its own NAT; the public internet between them with `latency`.
class Net {
public:
    Net(Mapping ma, Filtering fa, Mapping mb, Filtering fb)
        : sides_{Side{Nat{ma, fa, 0xCB007101, v4(0x0A000002, 5000), 40000, {}, {}}, {}},
                 Side{Nat{mb, fb, 0xCB007102, v4(0x0A000002, 5000), 40000, {}, {}}, {}}} {}

    // Host and srflx of side i, as the coordinator would hand them to the other side.
    std::vector<stun::Address> candidates(int i) {
        return {sides_[i].nat.inside, sides_[i].nat.outbound(stun_server)};
    }
    void make(PunchConfig a, PunchConfig b, PunchCredentials ca, PunchCredentials cb) {
        auto cand_a = candidates(0);
        auto cand_b = candidates(1);
        a.controlling = true;
        sides_[0].session.emplace(a, ca, cand_b);
        sides_[1].session.emplace(b, cb, cand_a);
    }
    PunchSession& session(int i) { return *sides_[i].session; }

    void send(int from_side, const std::vector<Outgoing>& out) {
        for (const auto& o : out) {
            ++sent_;
            const auto src = sides_[from_side].nat.outbound(o.to);
            // Only the other NAT's public address is routable; the host candidates are both
            // 10.0.0.2 in different private networks, and the internet drops them.
            const int to = 1 - from_side;
            if (ip_of(o.to) != sides_[to].nat.public_ip) continue;
            if (!sides_[to].nat.inbound(src, o.to.port)) continue;
            if (drop_all_to_ && *drop_all_to_ == to) continue;
            flight_.push_back(InFlight{clock_.now() + latency, to, src, o.bytes});
        }
    }
    // A third party on the internet sending to side i's public mapping (no NAT in its way).
    void inject(int to, const stun::Address& from, std::vector<std::byte> bytes) {
        flight_.push_back(InFlight{clock_.now() + latency, to, from, std::move(bytes)});
    }

    void start() {
        send(0, session(0).start(clock_.now()));
        send(1, session(1).start(clock_.now()));
    }
    // Millisecond steps until both are done or `until`.
    void run(Time until) {
        while (clock_.now() < until) {
            clock_.advance(milliseconds(1));
            const Time now = clock_.now();
            while (!flight_.empty() && flight_.front().at <= now) {
                auto f = std::move(flight_.front());
                flight_.pop_front();
                send(f.to_side, session(f.to_side).on_datagram(f.from, f.bytes, now));
            }
            for (int i = 0; i < 2; ++i) {
                const auto due = session(i).next_timer();
                if (due && *due <= now) send(i, session(i).on_timer(now));
            }
            if (!session(0).next_timer() && !session(1).next_timer() && flight_.empty()) return;
        }
    }
    ManualClock clock_;
    std::array<Side, 2> sides_;
    std::deque<InFlight> flight_;
    std::optional<int> drop_all_to_;
    int sent_ = 0;
};

PunchCredentials creds_a() {
    return {"ufA1", "passwordA-22chars-long", "ufB1", "passwordB-22chars-long"};
}
PunchCredentials creds_b() {
    return {"ufB1", "passwordB-22chars-long", "ufA1", "passwordA-22chars-long"};
}

void expect_agreed(Net& net) {
    ASSERT_EQ(net.session(0).state(), PunchState::connected) << net.session(0).report();
    ASSERT_EQ(net.session(1).state(), PunchState::connected) << net.session(1).report();
    // Each side's selected address is where the other side's NAT maps it toward the peer:
    // the same pair, seen from both ends.
    const auto a = *net.session(0).selected();
    const auto b = *net.session(1).selected();
    EXPECT_EQ(ip_of(a), net.sides_[1].nat.public_ip);
    EXPECT_EQ(ip_of(b), net.sides_[0].nat.public_ip);
    bool b_to_a = false, a_to_b = false;
    for (const auto& [dst, port] : net.sides_[1].nat.ports)
        if (port == a.port) b_to_a = true;
    for (const auto& [dst, port] : net.sides_[0].nat.ports)
        if (port == b.port) a_to_b = true;
    EXPECT_TRUE(b_to_a && a_to_b);
    // And that port of each NAT has sent to the other's selected address.
    bool consistent = false;
    for (const auto& d : net.sides_[0].nat.sent_to[b.port])
        if (d == a) consistent = true;
    EXPECT_TRUE(consistent) << "A's selected address is not where A's NAT port " << b.port
                            << " sends";
}

Net connect(Mapping ma, Filtering fa, Mapping mb, Filtering fb, bool prflx = true) {
    Net net(ma, fa, mb, fb);
    PunchConfig c;
    c.peer_reflexive = prflx;
    net.make(c, c, creds_a(), creds_b());
    net.start();
    net.run(milliseconds(5000));
    return net;
}

TEST(PunchSession, EndpointIndependentPairsConnectAndAgree) {
    for (auto fa : {Filtering::none, Filtering::address, Filtering::port})
        for (auto fb : {Filtering::none, Filtering::address, Filtering::port}) {
            SCOPED_TRACE(static_cast<int>(fa) * 3 + static_cast<int>(fb));
            auto net =
                connect(Mapping::endpoint_independent, fa, Mapping::endpoint_independent, fb);
            expect_agreed(net);
            // Within the preset time, and both on the srflx pair (no prflx needed with EIM).
            EXPECT_LT(net.clock_.now(), milliseconds(3000));
            EXPECT_FALSE(net.session(0).pairs()[1].peer_reflexive);
        }
}

TEST(PunchSession, SymmetricToFullConeConnectsThroughPeerReflexive) {
    for (bool symmetric_controls : {true, false}) {
        auto net = symmetric_controls
                       ? connect(Mapping::symmetric, Filtering::port, Mapping::endpoint_independent,
                                 Filtering::none)
                       : connect(Mapping::endpoint_independent, Filtering::none, Mapping::symmetric,
                                 Filtering::port);
        expect_agreed(net);
        // The full-cone side reaches the symmetric side only at an address it learnt from a
        // request: the symmetric NAT's port toward it, not the srflx from the STUN server.
        const int cone = symmetric_controls ? 1 : 0;
        const auto sel = *net.session(cone).selected();
        const auto& pairs = net.session(cone).pairs();
        const auto it = std::find_if(pairs.begin(), pairs.end(),
                                     [&](const PairReport& p) { return p.remote == sel; });
        ASSERT_NE(it, pairs.end());
        EXPECT_TRUE(it->peer_reflexive);
    }
}

TEST(PunchSession, SymmetricToFullConeFailsWithoutPeerReflexive) {
    auto net = connect(Mapping::symmetric, Filtering::port, Mapping::endpoint_independent,
                       Filtering::none, false);
    EXPECT_EQ(net.session(0).state(), PunchState::failed);
    EXPECT_EQ(net.session(1).state(), PunchState::failed);
    EXPECT_GT(net.session(1).drops().unknown_source, 0u);
}

void expect_fails_at_preset_time(Mapping ma, Filtering fa, Mapping mb, Filtering fb) {
    Net net(ma, fa, mb, fb);
    PunchConfig c;
    c.timeout = milliseconds(2500);
    net.make(c, c, creds_a(), creds_b());
    net.start();
    net.run(milliseconds(2499));
    EXPECT_EQ(net.session(0).state(), PunchState::checking);
    net.run(milliseconds(2500));
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(net.session(i).state(), PunchState::failed);
        EXPECT_FALSE(net.session(i).selected());
        const auto& pairs = net.session(i).pairs();
        ASSERT_EQ(pairs.size(), 2u);  // host and srflx; nothing learnt
        for (const auto& p : pairs) {
            EXPECT_EQ(p.acked, 0u);
            // 2500 ms / 100 ms retransmit: 25 requests each.
            EXPECT_EQ(p.sent, 25u);
        }
        EXPECT_NE(net.session(i).report().find("sent 25 received 0 acked 0 rtt -"),
                  std::string::npos)
            << net.session(i).report();
    }
}

TEST(PunchSession, SymmetricToSymmetricFailsAtPresetTime) {
    expect_fails_at_preset_time(Mapping::symmetric, Filtering::port, Mapping::symmetric,
                                Filtering::port);
}

TEST(PunchSession, SymmetricToPortRestrictedFailsAtPresetTime) {
    expect_fails_at_preset_time(Mapping::symmetric, Filtering::port,
                                Mapping::endpoint_independent, Filtering::port);
}

TEST(PunchSession, ReportHasRttOfAcks) {
    auto net = connect(Mapping::endpoint_independent, Filtering::none,
                       Mapping::endpoint_independent, Filtering::none);
    expect_agreed(net);
    const auto& srflx = net.session(0).pairs()[1];
    EXPECT_GT(srflx.acked, 0u);
    ASSERT_TRUE(srflx.rtt);
    EXPECT_EQ(*srflx.rtt, 2 * latency);
    ASSERT_TRUE(srflx.mapped);
    EXPECT_EQ(ip_of(*srflx.mapped), net.sides_[0].nat.public_ip);
}

TEST(PunchSession, WrongCredentialsNeverConnect) {
    for (int which = 0; which < 2; ++which) {
        Net net(Mapping::endpoint_independent, Filtering::none, Mapping::endpoint_independent,
                Filtering::none);
        PunchConfig c;
        auto cb = creds_b();
        if (which == 0) {
            // B holds other passwords than the coordinator gave A: MESSAGE-INTEGRITY fails
            // both ways.
            cb.remote_password = "not-the-password-of-A";
            cb.local_password = "not-the-password-of-B";
        } else {
            cb.local_ufrag = "ufX9";  // USERNAME fails both ways
        }
        net.make(c, c, creds_a(), cb);
        net.start();
        net.run(milliseconds(5000));
        EXPECT_EQ(net.session(0).state(), PunchState::failed);
        EXPECT_EQ(net.session(1).state(), PunchState::failed);
        for (int i = 0; i < 2; ++i) {
            const auto& d = net.session(i).drops();
            EXPECT_GT(which == 0 ? d.request_bad_integrity : d.request_wrong_username, 0u);
            EXPECT_GT(net.session(i).rejected(), 0u);
            for (const auto& p : net.session(i).pairs()) EXPECT_EQ(p.acked, 0u);
        }
    }
}

std::vector<std::byte> forged_request(const std::string& username, const std::string& password,
                                      bool use_candidate) {
    std::array<std::byte, 12> id{};
    id[0] = std::byte{7};
    std::array<std::byte, 512> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request, id);
    w.add_text(stun::attr::username, username);
    if (use_candidate) w.add_flag(stun::attr::use_candidate);
    w.add_message_integrity(std::as_bytes(std::span<const char>(password.data(), password.size())));
    w.add_fingerprint();
    const auto b = w.finish();
    return {b.begin(), b.end()};
}

TEST(PunchSession, ThirdPartyIsRefused) {
    Net net(Mapping::endpoint_independent, Filtering::none, Mapping::symmetric, Filtering::port);
    PunchConfig c;
    net.make(c, c, creds_a(), creds_b());
    // B (controlled) is a symmetric peer that cannot be reached, so only the attacker talks.
    net.drop_all_to_ = 1;
    net.start();
    const auto attacker = v4(0xC0000263, 666);
    const auto b_public = v4(net.sides_[1].nat.public_ip, 40000);
    // Right USERNAME, guessed password, USE-CANDIDATE: would select the attacker if accepted.
    net.inject(1, attacker, forged_request("ufB1:ufA1", "guess", true));
    // No MESSAGE-INTEGRITY at all.
    std::array<std::byte, 12> id{};
    std::array<std::byte, 512> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request, id);
    w.add_fingerprint();
    const auto bare = w.finish();
    net.inject(1, attacker, {bare.begin(), bare.end()});
    // A success response to nothing, and garbage.
    stun::MessageWriter r(buffer, stun::Method::binding, stun::MessageClass::success_response, id);
    r.add_xor_address(stun::attr::xor_mapped_address, b_public);
    r.add_fingerprint();
    const auto resp = r.finish();
    net.inject(1, attacker, {resp.begin(), resp.end()});
    net.inject(1, attacker, std::vector<std::byte>(40, std::byte{0x55}));
    net.run(milliseconds(5000));
    const auto& s = net.session(1);
    EXPECT_EQ(s.state(), PunchState::failed);
    EXPECT_EQ(s.drops().request_bad_integrity, 1u);
    EXPECT_EQ(s.drops().request_no_credentials, 1u);
    EXPECT_EQ(s.drops().unknown_transaction, 1u);
    EXPECT_EQ(s.drops().not_stun, 1u);
    EXPECT_EQ(s.rejected(), 2u);
    for (const auto& p : s.pairs()) EXPECT_FALSE(p.remote == attacker);
}

TEST(PunchSession, ForgedResponseToOurRequestIsRefused) {
    // A third party that sees our request (on path) answers it without the peer's password.
    PunchConfig c;
    PunchSession s(c, creds_a(), {v4(0xCB007102, 40000)});
    const auto out = s.start(Time{0});
    ASSERT_EQ(out.size(), 1u);
    stun::Message req;
    ASSERT_EQ(stun::Message::parse(out[0].bytes, req), stun::ParseError::ok);
    std::array<std::byte, 512> buffer{};
    stun::MessageWriter r(buffer, stun::Method::binding, stun::MessageClass::success_response,
                          req.transaction_id());
    r.add_xor_address(stun::attr::xor_mapped_address, v4(1, 1));
    const std::string guess = "guess";
    r.add_message_integrity(std::as_bytes(std::span<const char>(guess.data(), guess.size())));
    r.add_fingerprint();
    const auto resp = r.finish();
    (void)s.on_datagram(v4(0xCB007102, 40000), resp, milliseconds(5));
    (void)s.on_datagram(v4(0xC0000263, 666), resp, milliseconds(5));
    EXPECT_EQ(s.drops().response_bad_integrity, 1u);
    EXPECT_EQ(s.drops().response_wrong_source, 1u);
    EXPECT_EQ(s.pairs()[0].acked, 0u);
    EXPECT_EQ(s.state(), PunchState::checking);
}

TEST(PunchSession, PacingAndRetransmissionFollowTheConfiguration) {
    PunchConfig c;
    c.pace = milliseconds(30);
    c.retransmit = milliseconds(200);
    c.timeout = milliseconds(1000);
    const std::vector<stun::Address> peers = {v4(0x0A000002, 1), v4(0xCB007102, 2),
                                              v4(0xCB007102, 3)};
    PunchSession s(c, creds_a(), peers);
    std::vector<std::pair<Time, std::uint16_t>> sends;
    auto record = [&](Time now, const std::vector<Outgoing>& out) {
        for (const auto& o : out) sends.emplace_back(now, o.to.port);
    };
    record(Time{0}, s.start(Time{0}));
    // Drive it only at the times it asks for: exactly when next_timer() says.
    while (auto due = s.next_timer()) record(*due, s.on_timer(*due));
    EXPECT_EQ(s.state(), PunchState::failed);
    std::vector<std::pair<Time, std::uint16_t>> want;
    // Three pairs 30 ms apart, each again 200 ms after its last: 0/30/60, 200/230/260, ...
    for (int round = 0; round < 5; ++round)
        for (std::uint16_t p = 1; p <= 3; ++p)
            want.emplace_back(milliseconds(200 * round + 30 * (p - 1)), p);
    EXPECT_EQ(sends, want);
}

TEST(PunchSession, PacingHoldsWhenPairsOutnumberTheRetransmitInterval) {
    PunchConfig c;
    c.pace = milliseconds(50);
    c.retransmit = milliseconds(60);
    c.timeout = milliseconds(300);
    PunchSession s(c, creds_a(), {v4(0xCB007102, 1), v4(0xCB007102, 2), v4(0xCB007102, 3)});
    std::vector<std::pair<Time, std::uint16_t>> sends;
    for (const auto& o : s.start(Time{0})) sends.emplace_back(Time{0}, o.to.port);
    while (auto due = s.next_timer())
        for (const auto& o : s.on_timer(*due)) sends.emplace_back(*due, o.to.port);
    // Never two within 50 ms, and round-robin: 1 2 3 1 2 3.
    const std::vector<std::pair<Time, std::uint16_t>> want = {
        {milliseconds(0), 1},   {milliseconds(50), 2},  {milliseconds(100), 3},
        {milliseconds(150), 1}, {milliseconds(200), 2}, {milliseconds(250), 3}};
    EXPECT_EQ(sends, want);
}

TEST(PunchSession, RequestsCarryShortTermCredentials) {
    PunchConfig c;
    PunchSession s(c, creds_a(), {v4(0xCB007102, 1)});
    const auto out = s.start(Time{0});
    ASSERT_EQ(out.size(), 1u);
    stun::Message m;
    ASSERT_EQ(stun::Message::parse(out[0].bytes, m), stun::ParseError::ok);
    const auto u = m.find(stun::attr::username);
    ASSERT_TRUE(u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(u->value.data()), u->value.size()),
              "ufB1:ufA1");
    EXPECT_TRUE(m.message_integrity());
    EXPECT_TRUE(m.fingerprint());
    EXPECT_FALSE(m.find(stun::attr::use_candidate));
}

// PunchDriver: two sessions on real sockets on loopback, one EventLoop (no NAT: the host
// candidates work, and the first ACK nominates them).
TEST(PunchDriver, TwoSessionsOnLoopbackConnect) {
    SteadyClock clock;
    EventLoop loop(clock);
    UdpSocket a, b;
    ASSERT_EQ(a.open(v4(0x7F000001, 0)), "");
    ASSERT_EQ(b.open(v4(0x7F000001, 0)), "");
    PunchConfig ca;
    ca.controlling = true;
    PunchSession sa(ca, creds_a(), {b.local_address()});
    PunchSession sb(PunchConfig{}, creds_b(), {a.local_address()});
    PunchDriver da(loop, a, sa), db(loop, b, sb);
    int done = 0;
    ASSERT_EQ(da.start([&] { ++done; }), "");
    ASSERT_EQ(db.start([&] { ++done; }), "");
    loop.run_until([&] { return done == 2; });
    EXPECT_EQ(done, 2);
    ASSERT_EQ(sa.state(), PunchState::connected) << sa.report();
    ASSERT_EQ(sb.state(), PunchState::connected) << sb.report();
    EXPECT_EQ(*sa.selected(), b.local_address());
    EXPECT_EQ(*sb.selected(), a.local_address());
    EXPECT_EQ(da.send_failures() + db.send_failures(), 0u);
}

TEST(PunchSession, BadConfigurationIsRefusedByName) {
    auto bad = creds_a();
    bad.local_ufrag = "a:b";
    try {
        PunchSession s(PunchConfig{}, bad, {});
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("local_ufrag"), std::string::npos);
    }
    PunchConfig c;
    c.pace = Time{0};
    EXPECT_THROW(PunchSession(c, creds_a(), {}), std::invalid_argument);
}

}  // namespace
}  // namespace punch
