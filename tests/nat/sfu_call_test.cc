// Two punch::Calls down the ladder to the SFU rung, end to end on loopback, before the engine's
// sfu role exists: everything else in this file is test-only.
//
//   TestCoordinator  a scripted punchcoord (docs/protocol.md's hello, join, peer, candidates,
//                    signal, report, and docs/sfu.md's sfu op with real tokens from
//                    stun/sfu_token.h); it can spoil the peers' candidates so that punching
//                    fails, as between two symmetric NATs
//   StunResponder    a Binding responder for the calls' probes
//   TestSfu          a test-only SFU node: admits a Binding request whose USERNAME is a valid,
//                    unexpired token and whose MESSAGE-INTEGRITY verifies with the password it
//                    derives from the shared secret (docs/sfu.md's checks, in its order, with
//                    its answers), and forwards every non-STUN datagram of a leg to the other
//                    legs of its session
//
// All of them and both calls share one EventLoop on a SteadyClock (the calls' media runs on
// real time); each test is bounded by a guard timer, never by a timing threshold.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "punch/call.h"
#include "punch/event_loop.h"
#include "punch/udp_socket.h"
#include "stun/attributes.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace punch {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

const std::string secret = "a shared secret of the test's coordinator and nodes";

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

std::string text(const stun::Address& a) {
    std::array<char, 48> t{};
    return std::string(t.data(), a.format(t));
}

stun::Address loopback(std::uint16_t port) { return stun::Address::v4(0x7F000001, port); }

bool open_loopback(UdpSocket& socket) {
    return socket.open(loopback(0)).empty();
}

// ---------------------------------------------------------------------------------------------

class StunResponder {
public:
    explicit StunResponder(EventLoop& loop) : loop_(loop) {
        EXPECT_TRUE(open_loopback(socket_));
        EXPECT_EQ(loop_.watch(socket_, [this] { readable(); }), "");
    }
    ~StunResponder() { loop_.unwatch(socket_); }
    [[nodiscard]] stun::Address address() const { return socket_.local_address(); }

private:
    void readable() {
        std::array<std::byte, 1500> buffer{};
        stun::Address from;
        for (long n; (n = socket_.receive_from(buffer, from)) >= 0;) {
            stun::Message m;
            if (stun::Message::parse(std::span(buffer).first(static_cast<std::size_t>(n)), m) !=
                    stun::ParseError::ok ||
                m.message_class() != stun::MessageClass::request)
                continue;
            std::array<std::byte, 512> out{};
            stun::MessageWriter w(out, stun::Method::binding,
                                  stun::MessageClass::success_response, m.transaction_id());
            w.add_xor_address(stun::attr::xor_mapped_address, from);
            w.add_fingerprint();
            socket_.send_to(from, w.finish());
        }
    }
    EventLoop& loop_;
    UdpSocket socket_;
};

// ---------------------------------------------------------------------------------------------

class TestSfu {
public:
    explicit TestSfu(EventLoop& loop) : loop_(loop) {
        EXPECT_TRUE(open_loopback(socket_));
        EXPECT_EQ(loop_.watch(socket_, [this] { readable(); }), "");
    }
    ~TestSfu() { loop_.unwatch(socket_); }
    [[nodiscard]] stun::Address address() const { return socket_.local_address(); }

    /// Participants answered 403 "SFU session full" (a node that cannot take that leg).
    std::set<std::string> refuse;
    /// False: the node goes dark (drops everything, as one that crashed).
    bool alive = true;
    std::uint64_t admitted = 0;
    std::uint64_t refused = 0;
    std::uint64_t forwarded = 0;
    std::uint64_t not_a_leg = 0;

private:
    void answer(const stun::Address& to, const stun::Message& m, std::uint16_t code,
                std::string_view reason, std::span<const std::byte> key) {
        std::array<std::byte, 512> out{};
        stun::MessageWriter w(out, stun::Method::binding,
                              code == 0 ? stun::MessageClass::success_response
                                        : stun::MessageClass::error_response,
                              m.transaction_id());
        if (code == 0) w.add_xor_address(stun::attr::xor_mapped_address, to);
        else w.add_error_code(code, reason);
        if (!key.empty()) w.add_message_integrity(key);
        w.add_fingerprint();
        socket_.send_to(to, w.finish());
    }

    // docs/sfu.md, "Admission": the checks in the table's order, with its answers.
    void admit(const stun::Address& from, const stun::Message& m) {
        const auto username = m.find(stun::attr::username);
        std::string_view name;
        if (!username || !m.message_integrity() ||
            stun::decode_text(*username, name) != stun::ParseError::ok) {
            answer(from, m, 400, "missing USERNAME or MESSAGE-INTEGRITY", {});
            return;
        }
        stun::SfuUsername token;
        const auto checked =
            stun::check_sfu_username(name, static_cast<std::uint64_t>(std::time(nullptr)), token);
        if (checked != stun::SfuTokenError::ok) {
            answer(from, m, 401,
                   checked == stun::SfuTokenError::expired ? "SFU token expired"
                                                           : "malformed SFU token",
                   {});
            return;
        }
        std::array<char, stun::sfu_password_size> password{};
        stun::make_sfu_password(bytes_of(secret), name, password);
        const auto key = std::as_bytes(std::span<const char>(password));
        if (stun::verify_message_integrity(m, key) != stun::IntegrityResult::ok) {
            answer(from, m, 401, "integrity check failed", {});
            return;
        }
        const std::string leg = std::to_string(token.session) + "/" +
                                std::string(token.participant);
        if (const auto it = legs_.find(leg); it != legs_.end() && !(it->second == from)) {
            answer(from, m, 403, "participant already joined from another address", key);
            return;
        }
        if (refuse.count(std::string(token.participant)) != 0) {
            ++refused;
            answer(from, m, 403, "SFU session full", key);
            return;
        }
        if (legs_.emplace(leg, from).second) ++admitted;
        sessions_[from] = token.session;
        answer(from, m, 0, {}, key);
    }

    void readable() {
        std::array<std::byte, 2048> buffer{};
        stun::Address from;
        for (long n; (n = socket_.receive_from(buffer, from)) >= 0;) {
            const auto d = std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
            if (!alive) continue;
            if (!d.empty() && static_cast<std::uint8_t>(d[0]) < 4) {
                stun::Message m;
                if (stun::Message::parse(d, m) == stun::ParseError::ok &&
                    m.message_class() == stun::MessageClass::request)
                    admit(from, m);
                continue;
            }
            // docs/sfu.md, "Forwarding": to every other leg of the session.
            const auto session = sessions_.find(from);
            if (session == sessions_.end()) {
                ++not_a_leg;
                continue;
            }
            for (const auto& [to, s] : sessions_)
                if (s == session->second && !(to == from)) {
                    socket_.send_to(to, d);
                    ++forwarded;
                }
        }
    }

    EventLoop& loop_;
    UdpSocket socket_;
    std::map<std::string, stun::Address> legs_;  // "session/participant" -> its 5-tuple
    struct Less {
        bool operator()(const stun::Address& a, const stun::Address& b) const {
            return text(a) < text(b);
        }
    };
    std::map<stun::Address, std::uint64_t, Less> sessions_;
};

// ---------------------------------------------------------------------------------------------

class TestCoordinator {
public:
    explicit TestCoordinator(EventLoop& loop) : loop_(loop) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(listener_, 4), 0);
        socklen_t length = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &length);
        port_ = ntohs(a.sin_port);
        EXPECT_EQ(loop_.watch_fd(listener_, [this] { accept(); }), "");
    }
    ~TestCoordinator() {
        for (auto& c : connections_)
            if (c->fd >= 0) {
                loop_.unwatch_fd(c->fd);
                ::close(c->fd);
            }
        loop_.unwatch_fd(listener_);
        ::close(listener_);
    }
    [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

    /// The sfu op's candidates and dropped, as the coordinator sends them.
    json sfu_candidates = json::array();
    json sfu_dropped = json::array();
    std::uint32_t race = 1;
    /// The peers get an unreachable candidate instead of theirs: punching fails.
    bool spoil_candidates = false;
    std::vector<std::string> reported_rungs;
    std::vector<json> signals;  // every signal's data, in order

private:
    struct Connection {
        int fd = -1;
        std::string input;
        std::string name;
        std::string ufrag;
        std::string password;
        json candidates;
        bool first = false;
    };

    void accept() {
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        // As punchcoord: events must not wait for Nagle's algorithm.
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        Connection* raw = c.get();
        connections_.push_back(std::move(c));
        EXPECT_EQ(loop_.watch_fd(fd, [this, raw] { readable(*raw); }), "");
    }

    void send(Connection& c, const json& message) {
        if (c.fd < 0) return;
        const std::string line = message.dump() + "\n";
        // Loopback, a few hundred bytes: the socket buffer takes it whole.
        EXPECT_EQ(::send(c.fd, line.data(), line.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(line.size()));
    }

    Connection* other(const Connection& c) {
        for (auto& o : connections_)
            if (o.get() != &c && !o->name.empty() && o->fd >= 0) return o.get();
        return nullptr;
    }

    void readable(Connection& c) {
        std::array<char, 4096> buffer{};
        const ssize_t n = ::recv(c.fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) {
            loop_.unwatch_fd(c.fd);
            ::close(c.fd);
            c.fd = -1;
            return;
        }
        c.input.append(buffer.data(), static_cast<std::size_t>(n));
        for (std::size_t end; (end = c.input.find('\n')) != std::string::npos;) {
            const json request = json::parse(c.input.substr(0, end));
            c.input.erase(0, end + 1);
            handle(c, request);
        }
    }

    json peer_event(const Connection& about, bool controlling) const {
        json candidates = about.candidates;
        if (spoil_candidates)
            candidates = json::array({{{"type", "srflx"}, {"address", "192.0.2.1:9"}}});
        return {{"event", "peer"},         {"room", "call-1"},
                {"name", about.name},      {"candidates", candidates},
                {"nat_type", "symmetric"}, {"ufrag", about.ufrag},
                {"password", about.password}, {"controlling", controlling}};
    }

    void handle(Connection& c, const json& r) {
        const std::string op = r.value("op", "");
        json reply = {{"id", r["id"]}, {"op", op}, {"ok", true}};
        if (op == "hello") {
            reply["protocol"] = 1;
            reply["stun"] = json::array();
            reply["relay"] = json::array();
            send(c, reply);
        } else if (op == "join") {
            c.name = r.value("name", "");
            c.ufrag = "u" + c.name;
            c.password = "password-of-" + c.name;
            c.candidates = r.value("candidates", json::array());
            Connection* peer = other(c);
            c.first = peer == nullptr;
            reply.update({{"room", "call-1"}, {"name", c.name}, {"ufrag", c.ufrag},
                          {"password", c.password}, {"controlling", c.first}});
            send(c, reply);
            if (peer) {
                send(*peer, peer_event(c, peer->first));
                send(c, peer_event(*peer, c.first));
            }
        } else if (op == "signal" || op == "candidates") {
            send(c, reply);
            if (op == "signal") signals.push_back(r["data"]);
            if (Connection* peer = other(c)) {
                json event = {{"event", op}, {"room", "call-1"}, {"from", c.name}};
                if (op == "signal") event["data"] = r["data"];
                else event["candidates"] = r["candidates"];
                send(*peer, event);
            }
        } else if (op == "sfu") {
            // docs/sfu.md, "The coordinator's part": one session for the room, one token each.
            const std::uint64_t expiry = static_cast<std::uint64_t>(std::time(nullptr)) + 3600;
            std::array<char, stun::sfu_username_max> name{};
            std::size_t written = 0;
            EXPECT_EQ(stun::make_sfu_username({expiry, 0x00c0ffee12345678, c.name}, name,
                                              written),
                      stun::SfuTokenError::ok);
            const std::string username(name.data(), written);
            std::array<char, stun::sfu_password_size> password{};
            stun::make_sfu_password(bytes_of(secret), username, password);
            reply.update({{"room", "call-1"},
                          {"session", "00c0ffee12345678"},
                          {"username", username},
                          {"password", std::string(password.data(), password.size())},
                          {"expires_unix", expiry},
                          {"race", race},
                          {"candidates", sfu_candidates},
                          {"dropped", sfu_dropped}});
            send(c, reply);
        } else {
            if (op == "report") reported_rungs.push_back(r.value("rung", ""));
            send(c, reply);
        }
    }

    EventLoop& loop_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::vector<std::unique_ptr<Connection>> connections_;
};

// ---------------------------------------------------------------------------------------------

json node(std::uint64_t id, const stun::Address& address) {
    return {{"node_id", id},    {"address", text(address)}, {"nat_type", "none"},
            {"region", "test"}, {"load", 0}};
}

class SfuCallTest : public ::testing::Test {
protected:
    CallConfig config(const std::string& name, ForceRung force = ForceRung::none) {
        CallConfig c;
        c.coordinator = coordinator_.address();
        c.room = "call-1";
        c.name = name;
        c.stun_servers = {{text(stun_.address()), stun_.address()}};
        c.force = force;
        c.punch.timeout = milliseconds(300);
        c.duration = milliseconds(1000);
        c.bye_wait = milliseconds(300);
        c.media.packet_rate = 50;
        return c;
    }
    // Starts both calls and runs the loop until both reported (bounded: a hung call fails the
    // test, it does not time it).
    void run(CallConfig a, CallConfig b, const std::function<bool()>& when = {},
             const std::function<void()>& act = {}) {
        Call alice(loop_, std::move(a));
        Call bob(loop_, std::move(b));
        ASSERT_EQ(alice.start([&](const CallReport& r) { alice_ = r; }), "");
        ASSERT_EQ(bob.start([&](const CallReport& r) { bob_ = r; }), "");
        if (when) {
            // What the test does to the path, once `when` holds.
            loop_.run_until([&] { return (alice_ && bob_) || when(); });
            act();
        }
        bool expired = false;
        const TimerId guard = loop_.after(std::chrono::seconds(30), [&] { expired = true; });
        loop_.run_until([&] { return (alice_ && bob_) || expired; });
        loop_.cancel(guard);
        ASSERT_FALSE(expired) << "the calls did not end within 30 s";
        // The outcome reports are queued; let the coordinator read them.
        for (int i = 0; i < 20 && coordinator_.reported_rungs.size() < 2; ++i)
            loop_.run_once(milliseconds(10));
    }
    static const CallStep* step(const CallReport& r, const std::string& name) {
        for (const auto& s : r.steps)
            if (s.name == name) return &s;
        return nullptr;
    }

    SteadyClock clock_;
    EventLoop loop_{clock_};
    StunResponder stun_{loop_};
    TestCoordinator coordinator_{loop_};
    std::optional<CallReport> alice_;
    std::optional<CallReport> bob_;
};

TEST_F(SfuCallTest, ForcedSfuCarriesMediaBothWaysThroughTheNode) {
    TestSfu sfu(loop_);
    coordinator_.sfu_candidates = json::array({node(3, sfu.address())});
    // Only alice is forced: her sfu_start moves bob off punching.
    run(config("alice", ForceRung::sfu), config("bob"));
    for (const CallReport* r : {&*alice_, &*bob_}) {
        SCOPED_TRACE(r->peer_name == "bob" ? "alice" : "bob");
        EXPECT_TRUE(r->connected) << r->error;
        EXPECT_EQ(r->error, "");
        EXPECT_EQ(r->rung, Rung::sfu);
        EXPECT_EQ(r->first_rung, Rung::sfu);
        EXPECT_EQ(r->sfu_node, 3u);
        EXPECT_EQ(r->remote, sfu.address());
        EXPECT_EQ(r->sfu_session, "00c0ffee12345678");
        ASSERT_EQ(r->sfu_legs.size(), 1u);
        EXPECT_EQ(r->sfu_legs[0].outcome, "ok");
        ASSERT_NE(step(*r, "sfu node 3"), nullptr);
        EXPECT_EQ(step(*r, "sfu node 3")->outcome, "ok");
        ASSERT_NE(step(*r, "sfu"), nullptr);
        EXPECT_EQ(step(*r, "sfu")->outcome, "ok: node 3");
        EXPECT_GT(r->media.data_received, 0u);
        EXPECT_EQ(r->media.lost, 0u);
    }
    EXPECT_EQ(step(*alice_, "punch"), nullptr);  // forced: no punching
    ASSERT_NE(step(*bob_, "punch"), nullptr);
    EXPECT_EQ(step(*bob_, "punch")->outcome.rfind("abandoned", 0), 0u);
    EXPECT_EQ(sfu.admitted, 2u);
    EXPECT_GT(sfu.forwarded, 0u);
    EXPECT_EQ(coordinator_.reported_rungs, (std::vector<std::string>{"sfu", "sfu"}));
}

TEST_F(SfuCallTest, PunchingFailsAndANodeWhereOneLegFailsIsSkipped) {
    TestSfu full(loop_);
    full.refuse = {"bob"};
    TestSfu good(loop_);
    coordinator_.spoil_candidates = true;
    coordinator_.sfu_candidates = json::array({node(1, full.address()), node(2, good.address())});
    run(config("alice"), config("bob"));
    for (const CallReport* r : {&*alice_, &*bob_}) {
        EXPECT_TRUE(r->connected) << r->error;
        EXPECT_EQ(r->rung, Rung::sfu);
        EXPECT_EQ(r->sfu_node, 2u);
        EXPECT_EQ(r->remote, good.address());
        EXPECT_EQ(step(*r, "punch")->outcome, "no ACK within the preset time");
        ASSERT_EQ(r->sfu_legs.size(), 2u);
        EXPECT_EQ(r->sfu_legs[1].outcome, "ok");
        EXPECT_GT(r->media.data_received, 0u);
    }
    // Node 1: bob's leg refused, alice's up but skipped.
    EXPECT_EQ(bob_->sfu_legs[0].outcome, "403 SFU session full");
    EXPECT_EQ(bob_->sfu_legs[0].error_code, 403u);
    // (Up before bob's word came, or stopped by it: the order is the machine's.)
    EXPECT_EQ(alice_->sfu_legs[0].peer, SfuPeerLeg::failed);
    EXPECT_EQ(alice_->sfu_legs[0].state, SfuLegState::failed);
    EXPECT_NE(alice_->sfu_legs[0].outcome.find("the peer's leg failed"), std::string::npos);
    ASSERT_NE(step(*bob_, "sfu node 1"), nullptr);
    EXPECT_EQ(step(*bob_, "sfu node 1")->outcome, "403 SFU session full");
    EXPECT_EQ(full.forwarded, 0u);
    EXPECT_GT(good.forwarded, 0u);
    // Each side said how each of its legs went.
    EXPECT_NE(std::find(coordinator_.signals.begin(), coordinator_.signals.end(),
                        json({{"kind", "sfu_failed"}, {"node_id", 1}})),
              coordinator_.signals.end());
}

TEST_F(SfuCallTest, WhenTheNodeGoesDarkMidCallTheLadderGoesOnToTheRelay) {
    TestSfu sfu(loop_);
    coordinator_.sfu_candidates = json::array({node(3, sfu.address())});
    CallConfig a = config("alice");
    CallConfig b = config("bob");
    for (CallConfig* c : {&a, &b}) {
        c->duration = std::chrono::seconds(5);
        c->media.dead_after = milliseconds(500);
    }
    coordinator_.spoil_candidates = true;
    // Media flows through the node both ways (streams, not only pings), then it goes dark.
    run(a, b, [&] { return sfu.forwarded >= 40; }, [&] { sfu.alive = false; });
    for (const CallReport* r : {&*alice_, &*bob_}) {
        EXPECT_EQ(r->first_rung, Rung::sfu);
        // The relay rung was next; this coordinator names no relay server.
        EXPECT_NE(r->error.find("the SFU path died (nothing heard for 500 ms)"),
                  std::string::npos)
            << r->error;
        EXPECT_NE(r->error.find("named no relay server"), std::string::npos) << r->error;
    }
}

TEST_F(SfuCallTest, NoNodeServesBothAndTheLadderGoesOnToTheRelay) {
    coordinator_.spoil_candidates = true;
    coordinator_.sfu_dropped = json::array({{{"node_id", 4}, {"reason", "nat_client_b"}}});
    run(config("alice"), config("bob"));
    for (const CallReport* r : {&*alice_, &*bob_}) {
        EXPECT_FALSE(r->connected);
        ASSERT_NE(step(*r, "sfu"), nullptr);
        EXPECT_EQ(step(*r, "sfu")->outcome, "no SFU node serves both (node 4: nat_client_b)");
        // The relay rung was next; this coordinator names no relay server.
        EXPECT_NE(r->error.find("named no relay server"), std::string::npos) << r->error;
        ASSERT_EQ(r->sfu_dropped.size(), 1u);
        EXPECT_EQ(r->sfu_dropped[0].reason, "nat_client_b");
    }
}

TEST_F(SfuCallTest, ForcedSfuWithNoNodeFailsRatherThanTakeTheRelay) {
    run(config("alice", ForceRung::sfu), config("bob", ForceRung::sfu));
    for (const CallReport* r : {&*alice_, &*bob_}) {
        EXPECT_FALSE(r->connected);
        EXPECT_NE(r->error.find("--force sfu forbids the relay"), std::string::npos) << r->error;
    }
}

}  // namespace
}  // namespace punch
