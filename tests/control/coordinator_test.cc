// The coordinator's protocol (control/coordinator.h) driven line by line, without sockets, on
// an injected time: rooms, peer events, credentials, candidates and signals, reports, the node
// directory's expiry, every limit, and a table of hostile lines.
#include "control/coordinator.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace control {
namespace {

using nlohmann::json;

constexpr std::uint64_t unix_start_ms = 1'800'000'000'000;

// A deterministic "random" source: credentials still come out of it through the same path.
bool counting_random(std::span<std::byte> out) {
    static std::mt19937 generator(7);
    for (std::byte& b : out) b = static_cast<std::byte>(generator());
    return true;
}

class CoordinatorTest : public ::testing::Test {
protected:
    explicit CoordinatorTest(CoordinatorConfig config = base_config())
        : coordinator_(std::move(config), counting_random) {}

    static CoordinatorConfig base_config() {
        CoordinatorConfig config;
        config.stun_servers = {"203.0.113.2:3478", "198.51.100.2:3478"};
        config.relay_servers = {"203.0.113.4:3478"};
        config.rest_secret = "north-sea-secret";
        config.rest_ttl_s = 600;
        return config;
    }

    CoordTime now() const { return {monotonic_ms_, unix_start_ms + monotonic_ms_}; }
    void advance(std::uint64_t ms) { monotonic_ms_ += ms; }

    bool open(ConnectionId id, const std::string& address = "198.51.100.7") {
        Effects effects;
        const bool accepted = coordinator_.open(id, address, now(), effects);
        last_ = effects;
        return accepted;
    }
    // Sends a line; returns everything the call produced.
    Effects send(ConnectionId id, const std::string& line) {
        Effects effects;
        coordinator_.handle_line(id, line, now(), effects);
        last_ = effects;
        return effects;
    }
    Effects send(ConnectionId id, const json& request) { return send(id, request.dump()); }
    // The lines the last call sent to `id`, parsed.
    std::vector<json> to(ConnectionId id, const Effects& effects) const {
        std::vector<json> out;
        for (const auto& m : effects.messages) {
            if (m.to != id) continue;
            EXPECT_FALSE(m.line.empty());
            EXPECT_EQ(m.line.back(), '\n');
            EXPECT_EQ(m.line.find('\n'), m.line.size() - 1) << "one line per message";
            out.push_back(json::parse(m.line));
        }
        return out;
    }
    // The one reply to a request from `id`.
    json reply(ConnectionId id, const json& request) {
        const Effects effects = send(id, request);
        const auto lines = to(id, effects);
        EXPECT_GE(lines.size(), 1u);
        return lines.empty() ? json() : lines.front();
    }
    json join(ConnectionId id, const std::string& room, const std::string& name,
              const std::string& nat = "full_cone") {
        return reply(id, {{"op", "join"},
                          {"id", 1},
                          {"room", room},
                          {"name", name},
                          {"candidates",
                           {{{"type", "host"}, {"address", "198.18.0.2:40000"}},
                            {{"type", "srflx"}, {"address", "203.0.113.9:50000"}}}},
                          {"nat_type", nat},
                          {"region", "eu-west"}});
    }
    static std::string code(const json& r) {
        return r.contains("error") ? r["error"]["code"].get<std::string>() : "ok";
    }

    Coordinator coordinator_;
    std::uint64_t monotonic_ms_ = 1000;
    Effects last_;
};

bool ice_text(const std::string& text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
    });
}

TEST_F(CoordinatorTest, HelloListsServersVersionTimeAndLimits) {
    ASSERT_TRUE(open(1));
    const json r = reply(1, {{"op", "hello"}, {"id", "h1"}});
    EXPECT_EQ(r["id"], "h1");
    EXPECT_EQ(r["ok"], true);
    EXPECT_EQ(r["protocol"], coord_protocol_version);
    EXPECT_EQ(r["stun"], json({"203.0.113.2:3478", "198.51.100.2:3478"}));
    EXPECT_EQ(r["relay"], json({"203.0.113.4:3478"}));
    EXPECT_EQ(r["time_ms"], unix_start_ms + 1000);
    EXPECT_EQ(r["limits"]["max_line_bytes"], 16384);
    EXPECT_EQ(r["limits"]["max_members_per_room"], 2);
    EXPECT_EQ(r["idle_timeout_ms"], 30000);
}

TEST_F(CoordinatorTest, SecondJoinPushesEachSideThePeerWithCredentials) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    const json alice = join(1, "call-1", "alice", "full_cone");
    ASSERT_EQ(alice["ok"], true) << alice;
    EXPECT_EQ(alice["controlling"], true);
    EXPECT_EQ(alice["ufrag"].get<std::string>().size(), 8u);
    EXPECT_EQ(alice["password"].get<std::string>().size(), 24u);
    EXPECT_TRUE(ice_text(alice["ufrag"])) << alice["ufrag"];
    EXPECT_TRUE(ice_text(alice["password"]));
    EXPECT_TRUE(to(2, last_).empty());
    EXPECT_EQ(to(1, last_).size(), 1u) << "alone: no peer event yet";

    const Effects effects = send(2, json{{"op", "join"},
                                         {"id", 2},
                                         {"room", "call-1"},
                                         {"name", "bob"},
                                         {"candidates",
                                          {{{"type", "srflx"}, {"address", "198.51.100.9:6000"}},
                                           {{"type", "host"}, {"address", "[2001:db8::5]:6001"}}}},
                                         {"nat_type", "symmetric"},
                                         {"region", "us-east"}});
    const auto bob_lines = to(2, effects);
    ASSERT_EQ(bob_lines.size(), 2u);
    const json& bob = bob_lines[0];
    ASSERT_EQ(bob["ok"], true) << bob;
    EXPECT_EQ(bob["controlling"], false);
    EXPECT_EQ(bob["members"], 2);
    EXPECT_NE(bob["ufrag"], alice["ufrag"]);
    // Bob's event is about alice: her credentials are his remote ones.
    const json& about_alice = bob_lines[1];
    EXPECT_EQ(about_alice["event"], "peer");
    EXPECT_FALSE(about_alice.contains("id"));
    EXPECT_EQ(about_alice["room"], "call-1");
    EXPECT_EQ(about_alice["name"], "alice");
    EXPECT_EQ(about_alice["ufrag"], alice["ufrag"]);
    EXPECT_EQ(about_alice["password"], alice["password"]);
    EXPECT_EQ(about_alice["nat_type"], "full_cone");
    EXPECT_EQ(about_alice["region"], "eu-west");
    EXPECT_EQ(about_alice["controlling"], false);
    EXPECT_EQ(about_alice["candidates"],
              json::parse(R"([{"type":"host","address":"198.18.0.2:40000"},)"
                          R"({"type":"srflx","address":"203.0.113.9:50000"}])"));
    const auto alice_lines = to(1, effects);
    ASSERT_EQ(alice_lines.size(), 1u);
    const json& about_bob = alice_lines[0];
    EXPECT_EQ(about_bob["event"], "peer");
    EXPECT_EQ(about_bob["name"], "bob");
    EXPECT_EQ(about_bob["ufrag"], bob["ufrag"]);
    EXPECT_EQ(about_bob["password"], bob["password"]);
    EXPECT_EQ(about_bob["nat_type"], "symmetric");
    EXPECT_EQ(about_bob["controlling"], true);
    EXPECT_EQ(about_bob["candidates"][1]["address"], "[2001:db8::5]:6001");
}

// The password a TURN server derives from the username (coturn's use-auth-secret; punchlined's
// relay.rest_secrets): computed here with OpenSSL's own HMAC, not the codec's.
std::string openssl_rest_password(const std::string& secret, const std::string& username) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(username.data()), username.size(), digest,
         &length);
    unsigned char base64[64] = {};
    const int written = EVP_EncodeBlock(base64, digest, static_cast<int>(length));
    return std::string(reinterpret_cast<char*>(base64), static_cast<std::size_t>(written));
}

TEST_F(CoordinatorTest, TurnRestCredentialsAreTheHmacOfTheUsername) {
    ASSERT_TRUE(open(1));
    const json r = join(1, "call-7", "carol");
    ASSERT_TRUE(r["turn"].is_object()) << r;
    const std::string username = r["turn"]["username"];
    const std::uint64_t expiry = (unix_start_ms + 1000) / 1000 + 600;
    EXPECT_EQ(username, std::to_string(expiry) + ":call-7-carol");
    EXPECT_EQ(r["turn"]["expires_unix"], expiry);
    EXPECT_EQ(r["turn"]["ttl_s"], 600);
    EXPECT_EQ(r["turn"]["password"], openssl_rest_password("north-sea-secret", username));
    EXPECT_NE(r["turn"]["password"], openssl_rest_password("another-secret", username));
    EXPECT_EQ(r["turn"]["servers"], json({"203.0.113.4:3478"}));
}

class CoordinatorWithoutSecretTest : public CoordinatorTest {
protected:
    CoordinatorWithoutSecretTest() : CoordinatorTest(CoordinatorConfig{}) {}
};

TEST_F(CoordinatorWithoutSecretTest, JoinIssuesNoTurnCredentials) {
    ASSERT_TRUE(open(1));
    const json r = join(1, "room", "dave");
    EXPECT_EQ(r["ok"], true);
    EXPECT_TRUE(r["turn"].is_null());
    EXPECT_EQ(reply(1, {{"op", "hello"}})["turn_credentials"], false);
}

TEST_F(CoordinatorTest, LeaveAndDisconnectTellThePeer) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "a");
    join(2, "r", "b");
    EXPECT_EQ(coordinator_.room_count(), 1u);
    Effects effects = send(2, json{{"op", "leave"}, {"id", 9}, {"room", "r"}});
    ASSERT_EQ(to(2, effects).size(), 1u);
    EXPECT_EQ(to(2, effects)[0]["ok"], true);
    ASSERT_EQ(to(1, effects).size(), 1u);
    EXPECT_EQ(to(1, effects)[0], json({{"event", "peer_left"}, {"room", "r"}, {"name", "b"}}));
    EXPECT_EQ(code(reply(2, {{"op", "leave"}, {"room", "r"}})), "not_found");
    // b's name is free again; then a disconnect is a leave.
    EXPECT_EQ(join(2, "r", "b")["ok"], true);
    Effects closed;
    coordinator_.closed(1, now(), closed);
    ASSERT_EQ(to(2, closed).size(), 1u);
    EXPECT_EQ(to(2, closed)[0]["event"], "peer_left");
    EXPECT_EQ(to(2, closed)[0]["name"], "a");
    coordinator_.closed(2, now(), closed);
    EXPECT_EQ(coordinator_.room_count(), 0u) << "an empty room goes";
    EXPECT_EQ(coordinator_.connection_count(), 0u);
}

TEST_F(CoordinatorTest, NameTakenAndDoubleJoinAreConflicts) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "a");
    EXPECT_EQ(code(join(2, "r", "a")), "conflict");
    EXPECT_EQ(code(join(1, "r", "z")), "conflict");
}

TEST_F(CoordinatorTest, CandidatesGoToTheOthersAndStayForLaterJoiners) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "a");
    // Before anyone else is there: stored, delivered to nobody.
    const json relay_candidate = {{{"type", "relay"}, {"address", "203.0.113.4:49152"}}};
    json r = reply(1, {{"op", "candidates"}, {"room", "r"}, {"candidates", relay_candidate}});
    EXPECT_EQ(r["delivered"], 0);
    EXPECT_EQ(r["stored"], 3);
    Effects effects = send(2, json{{"op", "join"},
                                   {"room", "r"},
                                   {"name", "b"},
                                   {"candidates", json::array()}});
    const json about_a = to(2, effects).at(1);
    EXPECT_EQ(about_a["candidates"].size(), 3u);
    EXPECT_EQ(about_a["candidates"][2]["type"], "relay");
    // Now with b there: pushed.
    effects = send(2, json{{"op", "candidates"},
                           {"id", 4},
                           {"room", "r"},
                           {"candidates", {{{"type", "prflx"}, {"address", "198.51.100.3:1"}}}}});
    EXPECT_EQ(to(2, effects).at(0)["delivered"], 1);
    const auto pushed = to(1, effects);
    ASSERT_EQ(pushed.size(), 1u);
    EXPECT_EQ(pushed[0]["event"], "candidates");
    EXPECT_EQ(pushed[0]["from"], "b");
    EXPECT_EQ(pushed[0]["candidates"][0]["address"], "198.51.100.3:1");
    EXPECT_EQ(code(reply(
                  1, {{"op", "candidates"}, {"room", "elsewhere"}, {"candidates", json::array()}})),
              "not_found");
}

TEST_F(CoordinatorTest, SignalReachesEveryOtherMemberOrTheOneNamed) {
    CoordinatorConfig config = base_config();
    config.limits.max_members_per_room = 3;
    Coordinator three(config, counting_random);
    Effects ignored;
    for (ConnectionId id : {1, 2, 3}) ASSERT_TRUE(three.open(id, "198.51.100.7", now(), ignored));
    for (auto [id, name] : {std::pair{1, "a"}, {2, "b"}, {3, "c"}})
        three.handle_line(
            id,
            json{{"op", "join"}, {"room", "r"}, {"name", name}, {"candidates", json::array()}}
                .dump(),
            now(), ignored);
    Effects effects;
    three.handle_line(1, R"({"op":"signal","room":"r","data":{"kind":"moving_to_relay"}})", now(),
                      effects);
    EXPECT_EQ(to(1, effects).at(0)["delivered"], 2);
    for (ConnectionId id : {2, 3}) {
        ASSERT_EQ(to(id, effects).size(), 1u);
        EXPECT_EQ(to(id, effects)[0],
                  json({{"event", "signal"},
                        {"room", "r"},
                        {"from", "a"},
                        {"data", {{"kind", "moving_to_relay"}}}}));
    }
    effects = {};
    three.handle_line(1, R"({"op":"signal","room":"r","to":"c","data":{}})", now(), effects);
    EXPECT_TRUE(to(2, effects).empty());
    EXPECT_EQ(to(3, effects).size(), 1u);
    effects = {};
    three.handle_line(1, R"({"op":"signal","room":"r","to":"zed","data":{}})", now(), effects);
    EXPECT_EQ(to(1, effects).at(0)["error"]["code"], "not_found");
    effects = {};
    three.handle_line(1, R"({"op":"signal","room":"r","to":"a","data":{}})", now(), effects);
    EXPECT_EQ(to(1, effects).at(0)["error"]["code"], "not_found") << "not to oneself";
    effects = {};
    const std::string big(5000, 'x');
    three.handle_line(1, json{{"op", "signal"}, {"room", "r"}, {"data", {{"blob", big}}}}.dump(),
                      now(), effects);
    EXPECT_EQ(to(1, effects).at(0)["error"]["code"], "too_large");
    EXPECT_TRUE(to(2, effects).empty());
}

TEST_F(CoordinatorTest, ReportsAggregatePerUnorderedNatPairAndRung) {
    ASSERT_TRUE(open(1));
    auto report = [&](const std::string& rung, std::optional<int> ms, const std::string& local,
                      const std::string& remote) {
        json r = {{"op", "report"}, {"room", "r"}, {"rung", rung}, {"local_nat", local},
                  {"remote_nat", remote}};
        if (ms) r["time_to_connect_ms"] = *ms;
        return reply(1, r);
    };
    EXPECT_EQ(report("p2p", 120, "full_cone", "symmetric")["ok"], true);
    report("p2p", 300, "symmetric", "full_cone");  // the same pair, seen from the other side
    report("p2p", 180, "full_cone", "symmetric");
    report("relay", 900, "symmetric", "full_cone");
    report("failed", std::nullopt, "full_cone", "symmetric");
    report("p2p", 50, "none", "none");
    EXPECT_EQ(code(report("p2p", std::nullopt, "none", "none")), "bad_request")
        << "a connected call says how long it took";
    EXPECT_EQ(code(report("teleport", 1, "none", "none")), "bad_request");

    const json out = reply(1, {{"op", "outcomes"}});
    EXPECT_EQ(out["reports"], 6);
    EXPECT_EQ(out["rungs"]["p2p"]["count"], 4);
    EXPECT_EQ(out["rungs"]["p2p"]["time_to_connect_ms"],
              json({{"min", 50}, {"median", 150}, {"max", 300}}));
    ASSERT_EQ(out["pairs"].size(), 2u);
    const json& cone_symmetric = out["pairs"][0];
    EXPECT_EQ(cone_symmetric["nat"], json({"full_cone", "symmetric"}));
    EXPECT_EQ(cone_symmetric["count"], 5);
    EXPECT_EQ(cone_symmetric["success"], 4);
    EXPECT_EQ(cone_symmetric["rungs"]["p2p"]["count"], 3);
    EXPECT_EQ(cone_symmetric["rungs"]["p2p"]["time_to_connect_ms"],
              json({{"min", 120}, {"median", 180}, {"max", 300}}));
    EXPECT_EQ(cone_symmetric["rungs"]["relay"]["time_to_connect_ms"]["median"], 900);
    EXPECT_EQ(cone_symmetric["rungs"]["failed"], json({{"count", 1}}));
    EXPECT_EQ(out["pairs"][1]["nat"], json({"none", "none"}));
}

TEST(OutcomeStoreTest, KeepsTheLastReportsAndCountsTheForgotten) {
    OutcomeStore store(3);
    for (std::uint64_t ms : {10, 20, 30, 40, 50})
        store.add({"r", "a", Rung::p2p, ms, "none", "none", 0});
    const json out = store.aggregate();
    EXPECT_EQ(out["reports"], 3);
    EXPECT_EQ(out["received"], 5);
    EXPECT_EQ(out["forgotten"], 2);
    EXPECT_EQ(out["rungs"]["p2p"]["time_to_connect_ms"],
              json({{"min", 30}, {"median", 40}, {"max", 50}}));
}

TEST_F(CoordinatorTest, NodesRegisterHeartbeatAndExpire) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    ASSERT_TRUE(open(3));
    json r = reply(1, {{"op", "register"},
                       {"role", "relay"},
                       {"address", "203.0.113.4:3478"},
                       {"nat_type", "none"},
                       {"region", "eu-west"},
                       {"load", 120}});
    ASSERT_EQ(r["ok"], true) << r;
    EXPECT_EQ(r["ttl_ms"], 15000);
    EXPECT_EQ(reply(2, {{"op", "register"}, {"role", "sfu"}, {"address", "198.51.100.8:5000"},
                        {"nat_type", "full_cone"}})["ok"],
              true);
    json nodes = reply(3, {{"op", "nodes"}});
    ASSERT_EQ(nodes["nodes"].size(), 2u);
    EXPECT_EQ(nodes["nodes"][0]["role"], "relay");
    EXPECT_EQ(nodes["nodes"][0]["load"], 120);
    EXPECT_EQ(reply(3, {{"op", "nodes"}, {"role", "sfu"}})["nodes"].size(), 1u);

    // Node 1 beats at 10 s and 20 s; node 2 is silent. At 15 s + 1 ms node 2 goes.
    advance(10000);
    EXPECT_EQ(reply(1, {{"op", "heartbeat"}, {"load", 500}})["ok"], true);
    advance(5000);
    Effects effects;
    coordinator_.tick(now(), effects);
    EXPECT_EQ(coordinator_.nodes().size(), 2u) << "at exactly the ttl it is still listed";
    advance(1);
    effects = {};
    coordinator_.tick(now(), effects);
    EXPECT_EQ(coordinator_.nodes().size(), 1u);
    ASSERT_EQ(to(2, effects).size(), 1u);
    EXPECT_EQ(to(2, effects)[0]["event"], "node_expired");
    EXPECT_EQ(code(reply(2, {{"op", "heartbeat"}})), "not_found");
    nodes = reply(3, {{"op", "nodes"}});
    ASSERT_EQ(nodes["nodes"].size(), 1u);
    EXPECT_EQ(nodes["nodes"][0]["load"], 500);
    EXPECT_EQ(nodes["expired"], 1);
    // A disconnect removes at once.
    coordinator_.closed(1, now(), effects);
    EXPECT_EQ(coordinator_.nodes().size(), 0u);
}

class CoordinatorNodeSecretTest : public CoordinatorTest {
protected:
    static CoordinatorConfig with_secret() {
        CoordinatorConfig config = base_config();
        config.node_secret = "let-me-in";
        return config;
    }
    CoordinatorNodeSecretTest() : CoordinatorTest(with_secret()) {}
};

TEST_F(CoordinatorNodeSecretTest, RegisterNeedsTheSecret) {
    ASSERT_TRUE(open(1));
    const json request = {{"op", "register"}, {"role", "stun"}, {"address", "203.0.113.2:3478"}};
    EXPECT_EQ(code(reply(1, request)), "unauthorized");
    json wrong = request;
    wrong["secret"] = "guess";
    EXPECT_EQ(code(reply(1, wrong)), "unauthorized");
    json right = request;
    right["secret"] = "let-me-in";
    EXPECT_EQ(code(reply(1, right)), "ok");
}

TEST_F(CoordinatorTest, IdleConnectionsAreClosedAndPingsKeepThemOpen) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    EXPECT_EQ(coordinator_.next_deadline(), 1000u + 30000 + 1);
    advance(20000);
    const json pong = reply(1, {{"op", "ping"}, {"id", 5}});
    EXPECT_EQ(pong["pong"], true);
    EXPECT_EQ(pong["id"], 5);
    advance(10001);
    Effects effects;
    coordinator_.tick(now(), effects);
    ASSERT_EQ(effects.close, std::vector<ConnectionId>{2});
    ASSERT_EQ(to(2, effects).size(), 1u);
    EXPECT_EQ(to(2, effects)[0]["event"], "closing");
    EXPECT_EQ(to(2, effects)[0]["code"], "idle_timeout");
    EXPECT_EQ(coordinator_.counters().connections_idle, 1u);
}

// Every limit, each hit once, each named in the error.
class CoordinatorLimitsTest : public CoordinatorTest {
protected:
    static CoordinatorConfig small() {
        CoordinatorConfig config = base_config();
        CoordLimits& l = config.limits;
        l.max_connections = 4;
        l.max_connections_per_address = 3;
        l.max_rooms = 2;
        l.max_members_per_room = 2;
        l.max_rooms_per_connection = 1;
        l.max_candidates_per_member = 3;
        l.max_reports_per_connection = 2;
        l.max_nodes = 1;
        return config;
    }
    CoordinatorLimitsTest() : CoordinatorTest(small()) {}
    static std::string limit_of(const json& r) {
        EXPECT_EQ(r["error"]["code"], "limit") << r;
        return r["error"].value("limit", "");
    }
};

TEST_F(CoordinatorLimitsTest, EachLimitIsNamed) {
    ASSERT_TRUE(open(1, "198.51.100.1"));
    ASSERT_TRUE(open(2, "198.51.100.1"));
    ASSERT_TRUE(open(3, "198.51.100.1"));
    EXPECT_FALSE(open(4, "198.51.100.1"));
    ASSERT_EQ(last_.close, std::vector<ConnectionId>{4});
    EXPECT_EQ(limit_of(json::parse(last_.messages.at(0).line)), "max_connections_per_address");
    ASSERT_TRUE(open(5, "198.51.100.2"));
    EXPECT_FALSE(open(6, "198.51.100.3"));
    EXPECT_EQ(limit_of(json::parse(last_.messages.at(0).line)), "max_connections");

    EXPECT_EQ(join(1, "r1", "a")["ok"], true);
    EXPECT_EQ(limit_of(join(1, "r2", "a")), "max_rooms_per_connection");
    EXPECT_EQ(join(2, "r1", "b")["ok"], true);
    EXPECT_EQ(limit_of(join(3, "r1", "c")), "max_members_per_room");
    EXPECT_EQ(join(3, "r2", "c")["ok"], true);
    EXPECT_EQ(limit_of(join(5, "r3", "e")), "max_rooms");

    // Two candidates at join; two more would make four.
    const json two = {{{"type", "relay"}, {"address", "203.0.113.4:1"}},
                      {{"type", "relay"}, {"address", "203.0.113.4:2"}}};
    EXPECT_EQ(limit_of(reply(1, {{"op", "candidates"}, {"room", "r1"}, {"candidates", two}})),
              "max_candidates_per_member");
    const json four = {two[0], two[1], two[0], two[1]};
    EXPECT_EQ(
        limit_of(reply(5, {{"op", "join"}, {"room", "r2"}, {"name", "e"}, {"candidates", four}})),
        "max_candidates_per_member");

    const json report = {{"op", "report"}, {"room", "r1"}, {"rung", "failed"}};
    EXPECT_EQ(reply(1, report)["ok"], true);
    EXPECT_EQ(reply(1, report)["ok"], true);
    EXPECT_EQ(limit_of(reply(1, report)), "max_reports_per_connection");

    const json node = {{"op", "register"}, {"role", "stun"}, {"address", "203.0.113.2:3478"}};
    EXPECT_EQ(reply(2, node)["ok"], true);
    EXPECT_EQ(reply(2, node)["ok"], true) << "registering again updates";
    EXPECT_EQ(limit_of(reply(3, node)), "max_nodes");

    // A connection that leaves frees its address's share.
    Effects effects;
    coordinator_.closed(1, now(), effects);
    EXPECT_TRUE(open(7, "198.51.100.1"));
}

TEST_F(CoordinatorTest, OversizeLineIsAnErrorThenAClose) {
    ASSERT_TRUE(open(1));
    Effects effects;
    coordinator_.line_too_long(1, effects);
    ASSERT_EQ(to(1, effects).size(), 1u);
    EXPECT_EQ(to(1, effects)[0]["error"]["code"], "too_large");
    EXPECT_EQ(effects.close, std::vector<ConnectionId>{1});
    // A whole line over the bound (the server frames up to the bound, so only a test sends it).
    const json r = reply(1, std::string(20000, ' ') + R"({"op":"ping"})");
    EXPECT_EQ(code(r), "too_large");
}

struct HostileCase {
    const char* name;
    std::string line;
    const char* code;
};

// Dozens of bad lines, each with its error; after every one the connection still answers.
TEST_F(CoordinatorTest, HostileLinesGetTheirErrorAndTheConnectionStays) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(2, "busy", "x");
    const std::string deep_array = std::string(100, '[') + std::string(100, ']');
    const std::string deep_object = [] {
        std::string s;
        for (int i = 0; i < 50; ++i) s += R"({"a":)";
        s += "1";
        for (int i = 0; i < 50; ++i) s += "}";
        return s;
    }();
    const std::vector<HostileCase> cases = {
        {"NotJson", "hello", "bad_json"},
        {"TruncatedObject", R"({"op":"ping")", "bad_json"},
        {"TrailingGarbage", R"({"op":"ping"} x)", "bad_json"},
        {"BinaryGarbage", std::string("\x00\x01\x02\xff\xfe", 5), "bad_json"},
        {"InvalidUtf8InString", "{\"op\":\"ping\",\"x\":\"\xc3\x28\"}", "bad_json"},
        {"LoneSurrogateEscape", R"({"op":"ping","x":"\ud800"})", "bad_json"},
        {"DeepArray", deep_array, "bad_json"},
        {"DeepObject", deep_object, "bad_json"},
        {"ArrayNotObject", "[1,2,3]", "bad_request"},
        {"StringNotObject", R"("ping")", "bad_request"},
        {"NumberNotObject", "42", "bad_request"},
        {"Null", "null", "bad_request"},
        {"MissingOp", R"({"id":1})", "bad_request"},
        {"OpNotString", R"({"op":7})", "bad_request"},
        {"OpNull", R"({"op":null})", "bad_request"},
        {"UnknownOp", R"({"op":"teleport"})", "unknown_op"},
        {"UnknownOpCase", R"({"op":"JOIN"})", "unknown_op"},
        {"IdObject", R"({"op":"ping","id":{"a":1}})", "bad_request"},
        {"IdLongString", "{\"op\":\"ping\",\"id\":\"" + std::string(100, 'i') + "\"}",
         "bad_request"},
        {"IdFloat", R"({"op":"ping","id":1.5})", "bad_request"},
        {"JoinNoRoom", R"({"op":"join","name":"a","candidates":[]})", "bad_request"},
        {"JoinRoomNumber", R"({"op":"join","room":5,"name":"a","candidates":[]})",
         "bad_request"},
        {"JoinRoomEmpty", R"({"op":"join","room":"","name":"a","candidates":[]})",
         "bad_request"},
        {"JoinRoomTooLong",
         "{\"op\":\"join\",\"room\":\"" + std::string(65, 'r') +
             "\",\"name\":\"a\",\"candidates\":[]}",
         "bad_request"},
        {"JoinRoomSlash", R"({"op":"join","room":"a/b","name":"a","candidates":[]})",
         "bad_request"},
        {"JoinRoomColon", R"({"op":"join","room":"a:b","name":"a","candidates":[]})",
         "bad_request"},
        {"JoinNameSpace", R"({"op":"join","room":"r","name":"a b","candidates":[]})",
         "bad_request"},
        {"JoinNoName", R"({"op":"join","room":"r","candidates":[]})", "bad_request"},
        {"JoinNoCandidates", R"({"op":"join","room":"r","name":"a"})", "bad_request"},
        {"JoinCandidatesObject", R"({"op":"join","room":"r","name":"a","candidates":{}})",
         "bad_request"},
        {"CandidateNotObject", R"({"op":"join","room":"r","name":"a","candidates":["1.2.3.4:5"]})",
         "bad_request"},
        {"CandidateBadType",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"magic","address":"1.2.3.4:5"}]})",
         "bad_request"},
        {"CandidateNoPort",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"host","address":"1.2.3.4"}]})",
         "bad_request"},
        {"CandidatePortZero",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"host","address":"1.2.3.4:0"}]})",
         "bad_request"},
        {"CandidatePortHuge",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"host","address":"1.2.3.4:65536"}]})",
         "bad_request"},
        {"CandidateHostName",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"host","address":"example.org:5"}]})",
         "bad_request"},
        {"CandidateIpv6NoBrackets",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"host","address":"2001:db8::1:5"}]})",
         "bad_request"},
        {"CandidateAddressNumber",
         R"({"op":"join","room":"r","name":"a","candidates":[{"type":"host","address":5}]})",
         "bad_request"},
        {"NatTypeUpperCase",
         R"({"op":"join","room":"r","name":"a","candidates":[],"nat_type":"SYMMETRIC"})",
         "bad_request"},
        {"NatTypeNumber", R"({"op":"join","room":"r","name":"a","candidates":[],"nat_type":1})",
         "bad_request"},
        {"RegionTooLong",
         "{\"op\":\"join\",\"room\":\"r\",\"name\":\"a\",\"candidates\":[],\"region\":\"" +
             std::string(33, 'e') + "\"}",
         "bad_request"},
        {"RoomFull", R"({"op":"join","room":"busy","name":"x","candidates":[]})", "conflict"},
        {"LeaveNotMember", R"({"op":"leave","room":"busy"})", "not_found"},
        {"CandidatesNotMember", R"({"op":"candidates","room":"busy","candidates":[]})",
         "not_found"},
        {"SignalNoData", R"({"op":"signal","room":"busy"})", "bad_request"},
        {"SignalDataString", R"({"op":"signal","room":"busy","data":"hi"})", "bad_request"},
        {"SignalNotMember", R"({"op":"signal","room":"busy","data":{}})", "not_found"},
        {"ReportNoRung", R"({"op":"report","room":"r"})", "bad_request"},
        {"ReportNegativeTime",
         R"({"op":"report","room":"r","rung":"p2p","time_to_connect_ms":-5})", "bad_request"},
        {"ReportHugeTime",
         R"({"op":"report","room":"r","rung":"p2p","time_to_connect_ms":1e308})", "bad_request"},
        {"ReportHugeInteger",
         R"({"op":"report","room":"r","rung":"p2p","time_to_connect_ms":123456789012345678901234567890})",
         "bad_request"},
        {"ReportOverflowFloat",
         R"({"op":"report","room":"r","rung":"p2p","time_to_connect_ms":1e999})", "bad_json"},
        {"ReportTimeString",
         R"({"op":"report","room":"r","rung":"p2p","time_to_connect_ms":"fast"})", "bad_request"},
        {"ReportTimeFloat", R"({"op":"report","room":"r","rung":"p2p","time_to_connect_ms":1.5})",
         "bad_request"},
        {"RegisterBadRole", R"({"op":"register","role":"king","address":"1.2.3.4:5"})",
         "bad_request"},
        {"RegisterNoAddress", R"({"op":"register","role":"sfu"})", "bad_request"},
        {"RegisterLoadNegative",
         R"({"op":"register","role":"sfu","address":"1.2.3.4:5","load":-1})", "bad_request"},
        {"RegisterLoadHuge",
         R"({"op":"register","role":"sfu","address":"1.2.3.4:5","load":99999999999})",
         "bad_request"},
        {"HeartbeatUnregistered", R"({"op":"heartbeat"})", "not_found"},
        {"NodesBadRole", R"({"op":"nodes","role":5})", "bad_request"},
        {"SfuNoRoom", R"({"op":"sfu"})", "bad_request"},
        {"SfuRoomNumber", R"({"op":"sfu","room":7})", "bad_request"},
        {"SfuUnknownRoom", R"({"op":"sfu","room":"nowhere"})", "not_found"},
        {"SfuOthersRoom", R"({"op":"sfu","room":"busy"})", "not_found"},
        {"SfuRttArray", R"({"op":"sfu","room":"busy","rtt_ms":[1,2]})", "bad_request"},
        {"SfuRttString", R"({"op":"sfu","room":"busy","rtt_ms":"3:12"})", "bad_request"},
        {"SfuRttKeyWord", R"({"op":"sfu","room":"busy","rtt_ms":{"node":1}})", "bad_request"},
        {"SfuRttKeyZero", R"({"op":"sfu","room":"busy","rtt_ms":{"0":1}})", "bad_request"},
        {"SfuRttKeyNegative", R"({"op":"sfu","room":"busy","rtt_ms":{"-3":1}})", "bad_request"},
        {"SfuRttKeyHuge", R"({"op":"sfu","room":"busy","rtt_ms":{"99999999999999999999999":1}})",
         "bad_request"},
        {"SfuRttKeySpace", R"({"op":"sfu","room":"busy","rtt_ms":{" 3":1}})", "bad_request"},
        {"SfuRttNegative", R"({"op":"sfu","room":"busy","rtt_ms":{"3":-1}})", "bad_request"},
        {"SfuRttOverAMinute", R"({"op":"sfu","room":"busy","rtt_ms":{"3":60000.5}})",
         "bad_request"},
        {"SfuRttTextValue", R"({"op":"sfu","room":"busy","rtt_ms":{"3":"12"}})", "bad_request"},
        {"SfuRttBoolValue", R"({"op":"sfu","room":"busy","rtt_ms":{"3":true}})", "bad_request"},
        {"SfuRttNullValue", R"({"op":"sfu","room":"busy","rtt_ms":{"3":null}})", "bad_request"},
        {"SfuRttObjectValue", R"({"op":"sfu","room":"busy","rtt_ms":{"3":{"ms":1}}})",
         "bad_request"},
    };
    for (const HostileCase& c : cases) {
        const Effects effects = send(1, c.line);
        const auto lines = to(1, effects);
        ASSERT_EQ(lines.size(), 1u) << c.name;
        EXPECT_EQ(lines[0]["ok"], false) << c.name;
        EXPECT_EQ(code(lines[0]), c.code) << c.name << ": " << lines[0];
        EXPECT_FALSE(lines[0]["error"]["message"].get<std::string>().empty()) << c.name;
        EXPECT_TRUE(effects.close.empty()) << c.name;
        EXPECT_TRUE(to(2, effects).empty()) << c.name << ": nothing reaches the others";
        EXPECT_EQ(reply(1, {{"op", "ping"}})["ok"], true) << c.name << ": still usable";
    }
    EXPECT_EQ(coordinator_.room_count(), 1u) << "no refused join left a room behind";
}

TEST_F(CoordinatorTest, ErrorRepliesEchoTheIdAndOp) {
    ASSERT_TRUE(open(1));
    const json r = reply(1, {{"op", "join"}, {"id", "j-1"}, {"room", 5}});
    EXPECT_EQ(r["id"], "j-1");
    EXPECT_EQ(r["op"], "join");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("\"room\""), std::string::npos)
        << "names the field: " << r;
}

TEST_F(CoordinatorTest, RandomBytesNeverCrashAndAlwaysGetOneReply) {
    ASSERT_TRUE(open(1));
    std::mt19937 generator(2026);
    const std::string alphabet = "{}[]\":,0123456789.-+eE \\ntrufalsopjinm\x80\xff";
    for (int i = 0; i < 20000; ++i) {
        std::string line(generator() % 200, ' ');
        for (char& c : line) {
            c = (generator() % 4 == 0) ? static_cast<char>(generator())
                                       : alphabet[generator() % alphabet.size()];
            if (c == '\n') c = ' ';
        }
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank: no reply
        if (!line.empty() && line.back() == '\r') continue;
        const auto lines = to(1, send(1, line));
        ASSERT_EQ(lines.size(), 1u) << "line " << i;
    }
}

// The SFU rung's part (docs/sfu.md, "The coordinator's part"): node selection fixed per
// session, tokens, sfu_punch to the nodes, what is dropped and why.
std::string openssl_sfu_password(const std::string& secret, const std::string& username) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(username.data()), username.size(), digest,
         &length);
    unsigned char base64[64] = {};
    const int written = EVP_EncodeBlock(base64, digest, static_cast<int>(length));
    return std::string(reinterpret_cast<char*>(base64), static_cast<std::size_t>(written));
}

constexpr const char* sfu_secret = "sfu-secret-of-sixteen-or-more";

class CoordinatorSfuTest : public CoordinatorTest {
protected:
    static CoordinatorConfig with_sfu() {
        CoordinatorConfig config = base_config();
        config.sfu.token_secret = sfu_secret;
        config.sfu.token_ttl_s = 900;
        config.sfu.race = 2;
        config.limits.max_members_per_room = 3;
        return config;
    }
    CoordinatorSfuTest() : CoordinatorTest(with_sfu()) {}
    explicit CoordinatorSfuTest(CoordinatorConfig config) : CoordinatorTest(std::move(config)) {}

    // Registers an SFU node on its own connection; returns its node id.
    std::uint64_t node(ConnectionId connection, const std::string& nat,
                       const std::string& region = "eu-west", int load = 10,
                       const std::string& role = "sfu") {
        EXPECT_TRUE(open(connection, "192.0.2." + std::to_string(connection)));
        const json r = reply(connection, {{"op", "register"},
                                          {"role", role},
                                          {"address", "203.0.113." + std::to_string(connection) +
                                                          ":3480"},
                                          {"nat_type", nat},
                                          {"region", region},
                                          {"load", load}});
        EXPECT_EQ(r["ok"], true) << r;
        return r.value("node_id", std::uint64_t{0});
    }
    json sfu(ConnectionId id, const std::string& room, json rtt = nullptr) {
        json request = {{"op", "sfu"}, {"id", 9}, {"room", room}};
        if (!rtt.is_null()) request["rtt_ms"] = std::move(rtt);
        return reply(id, request);
    }
    static std::vector<std::uint64_t> candidate_ids(const json& r) {
        std::vector<std::uint64_t> out;
        for (const json& c : r["candidates"]) out.push_back(c["node_id"]);
        return out;
    }
    static std::vector<std::pair<std::uint64_t, std::string>> drops(const json& r) {
        std::vector<std::pair<std::uint64_t, std::string>> out;
        for (const json& d : r["dropped"]) out.emplace_back(d["node_id"], d["reason"]);
        return out;
    }
    // The sfu_punch events the last call sent to `connection`.
    std::vector<json> punches(ConnectionId connection) const {
        std::vector<json> out;
        for (const json& line : to(connection, last_))
            if (line.value("event", "") == "sfu_punch") out.push_back(line);
        return out;
    }
    std::size_t punch_count() const {
        std::size_t n = 0;
        for (const auto& m : last_.messages)
            if (m.line.find("\"sfu_punch\"") != std::string::npos) ++n;
        return n;
    }
};

using Ids = std::vector<std::uint64_t>;
using Drops = std::vector<std::pair<std::uint64_t, std::string>>;

TEST_F(CoordinatorSfuTest, BothMembersGetOneSessionOneOrderAndTheirOwnTokens) {
    // Node 21: no NAT, loaded; node 22: port-restricted (cannot take bob's symmetric NAT's
    // unknown port); node 23: full cone, idle; node 24: a relay, not an SFU node.
    const std::uint64_t open_node = node(21, "none", "eu-west", 300);
    const std::uint64_t restricted = node(22, "port_restricted");
    const std::uint64_t cone = node(23, "full_cone", "eu-west", 20);
    node(24, "none", "eu-west", 0, "relay");
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "call-1", "alice", "full_cone");
    join(2, "call-1", "bob", "symmetric");

    const json alice = sfu(1, "call-1");
    ASSERT_EQ(alice["ok"], true) << alice;
    EXPECT_EQ(alice["op"], "sfu");
    EXPECT_EQ(alice["room"], "call-1");
    EXPECT_EQ(alice["race"], 2);
    // Both in the nodes' region; the lighter first.
    EXPECT_EQ(candidate_ids(alice), (Ids{cone, open_node}));
    EXPECT_EQ(drops(alice), (Drops{{restricted, "nat_client_b"}}));
    EXPECT_EQ(alice["candidates"][0],
              json({{"node_id", cone}, {"address", "203.0.113.23:3480"}, {"nat_type", "full_cone"},
                    {"region", "eu-west"}, {"load", 20}}));
    EXPECT_FALSE(alice.contains("reason"));

    const std::string session = alice["session"];
    ASSERT_EQ(session.size(), 16u);
    EXPECT_EQ(session.find_first_not_of("0123456789abcdef"), std::string::npos) << session;
    const std::uint64_t expiry = (unix_start_ms + 1000) / 1000 + 900;
    EXPECT_EQ(alice["expires_unix"], expiry);
    EXPECT_EQ(alice["username"], std::to_string(expiry) + ":" + session + ":alice");
    EXPECT_EQ(alice["password"], openssl_sfu_password(sfu_secret, alice["username"]));
    EXPECT_NE(alice["password"], openssl_sfu_password("another-secret-16b", alice["username"]));

    // Bob, later and with a measurement of his own: the same session and order.
    advance(3000);
    const json bob = sfu(2, "call-1", {{std::to_string(open_node), 1.5}});
    ASSERT_EQ(bob["ok"], true) << bob;
    EXPECT_EQ(bob["session"], session);
    EXPECT_EQ(candidate_ids(bob), candidate_ids(alice));
    EXPECT_EQ(drops(bob), drops(alice));
    EXPECT_EQ(bob["username"], std::to_string(expiry + 3) + ":" + session + ":bob");
    EXPECT_EQ(bob["password"], openssl_sfu_password(sfu_secret, bob["username"]));
    EXPECT_EQ(coordinator_.counters().sfu_sessions, 1u);
    EXPECT_EQ(coordinator_.counters().sfu_requests, 2u);
    EXPECT_EQ(reply(1, {{"op", "hello"}})["sfu_tokens"], true);

    // The call's outcome on the SFU rung is counted like the others.
    const json report = {{"op", "report"}, {"room", "call-1"}, {"rung", "sfu"},
                         {"time_to_connect_ms", 850}, {"local_nat", "full_cone"},
                         {"remote_nat", "symmetric"}};
    EXPECT_EQ(reply(1, report)["ok"], true);
    json from_bob = report;
    from_bob["time_to_connect_ms"] = 910;
    from_bob["local_nat"] = "symmetric";
    from_bob["remote_nat"] = "full_cone";
    EXPECT_EQ(reply(2, from_bob)["ok"], true);
    const json out = reply(1, {{"op", "outcomes"}});
    EXPECT_EQ(out["rungs"]["sfu"]["count"], 2);
    EXPECT_EQ(out["rungs"]["sfu"]["time_to_connect_ms"],
              json({{"min", 850}, {"median", 880}, {"max", 910}}));
    ASSERT_EQ(out["pairs"].size(), 1u);
    EXPECT_EQ(out["pairs"][0]["nat"], json({"full_cone", "symmetric"}));
    EXPECT_EQ(out["pairs"][0]["success"], 2);
    EXPECT_EQ(out["pairs"][0]["rungs"]["sfu"]["count"], 2);
}

TEST_F(CoordinatorSfuTest, EachCandidateNodeIsToldOncePerMember) {
    const std::uint64_t a = node(21, "none");
    const std::uint64_t b = node(22, "full_cone");
    node(23, "symmetric");  // serves nobody here: never told
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "call-1", "alice", "symmetric");
    // Bob's relayed candidate is left out of what the nodes are told.
    ASSERT_EQ(reply(2, {{"op", "join"},
                        {"room", "call-1"},
                        {"name", "bob"},
                        {"nat_type", "port_restricted"},
                        {"candidates",
                         {{{"type", "srflx"}, {"address", "198.51.100.9:6000"}},
                          {{"type", "relay"}, {"address", "203.0.113.4:49152"}},
                          {{"type", "host"}, {"address", "[2001:db8::5]:6001"}}}}})["ok"],
              true);

    const json alice = sfu(1, "call-1");
    ASSERT_EQ(candidate_ids(alice), (Ids{a, b}));
    ASSERT_EQ(punches(21).size(), 1u);
    ASSERT_EQ(punches(22).size(), 1u);
    EXPECT_TRUE(punches(23).empty());
    EXPECT_TRUE(punches(2).empty()) << "the peer is not told";
    const json punch = punches(21)[0];
    EXPECT_EQ(punch, json({{"event", "sfu_punch"},
                           {"session", alice["session"]},
                           {"participant", "alice"},
                           {"username", alice["username"]},
                           {"addresses", {"198.18.0.2:40000", "203.0.113.9:50000"}}}));
    // The reply comes first on the asker's connection; the node's event is a separate line.
    ASSERT_FALSE(last_.messages.empty());
    EXPECT_EQ(last_.messages[0].to, 1u);

    // Asking again: the same answer, the nodes are not told again.
    EXPECT_EQ(candidate_ids(sfu(1, "call-1")), (Ids{a, b}));
    EXPECT_EQ(punch_count(), 0u);

    const json bob = sfu(2, "call-1");
    ASSERT_EQ(punches(21).size(), 1u);
    EXPECT_EQ(punches(21)[0]["participant"], "bob");
    EXPECT_EQ(punches(21)[0]["username"], bob["username"]);
    EXPECT_EQ(punches(21)[0]["addresses"], json({"198.51.100.9:6000", "[2001:db8::5]:6001"}));
    EXPECT_EQ(punches(22).size(), 1u);
    EXPECT_EQ(coordinator_.counters().sfu_punches, 4u);

    // Bob leaves and another "bob" joins: another participant, whose nodes are told again;
    // the room lives on, and so does its session.
    send(2, json{{"op", "leave"}, {"room", "call-1"}});
    ASSERT_TRUE(open(3));
    join(3, "call-1", "bob", "port_restricted");
    const json again = sfu(3, "call-1");
    EXPECT_EQ(again["session"], alice["session"]);
    EXPECT_EQ(punches(21).size(), 1u);
    EXPECT_EQ(punches(22).size(), 1u);
}

TEST_F(CoordinatorSfuTest, AMemberWithoutDirectAddressesTellsNoNode) {
    node(21, "none");
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    ASSERT_EQ(reply(2, {{"op", "join"},
                        {"room", "r"},
                        {"name", "bob"},
                        {"candidates", {{{"type", "relay"}, {"address", "203.0.113.4:1"}}}}})["ok"],
              true);
    EXPECT_EQ(candidate_ids(sfu(2, "r")).size(), 1u);
    EXPECT_EQ(punch_count(), 0u) << "nothing to send test packets to";
    // Once it learns a reflexive address, asking again tells the node.
    reply(2, {{"op", "candidates"},
              {"room", "r"},
              {"candidates", {{{"type", "srflx"}, {"address", "198.51.100.9:6000"}}}}});
    sfu(2, "r");
    ASSERT_EQ(punches(21).size(), 1u);
    EXPECT_EQ(punches(21)[0]["addresses"], json({"198.51.100.9:6000"}));
}

TEST_F(CoordinatorSfuTest, ANodeGoneSinceIsDroppedFromLaterReplies) {
    const std::uint64_t a = node(21, "none", "eu-west", 10);
    const std::uint64_t b = node(22, "none", "eu-west", 20);
    const std::uint64_t c = node(23, "none", "eu-west", 30);
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    join(2, "r", "bob");
    EXPECT_EQ(candidate_ids(sfu(1, "r")), (Ids{a, b, c}));

    // Node a disconnects; node c stops its heartbeats (b and the rest keep theirs).
    Effects effects;
    coordinator_.closed(21, now(), effects);
    advance(10000);
    EXPECT_EQ(reply(22, {{"op", "heartbeat"}})["ok"], true);
    advance(5001);
    const json bob = sfu(2, "r");
    EXPECT_EQ(candidate_ids(bob), (Ids{b}));
    EXPECT_EQ(drops(bob), (Drops{{a, "expired"}, {c, "expired"}})) << "c: past its ttl, not yet "
                                                                      "ticked out";
    // A node that filled up since is left out too, and one that re-registered as symmetric.
    EXPECT_EQ(reply(22, {{"op", "heartbeat"}, {"load", 1000}})["ok"], true);
    EXPECT_EQ(drops(sfu(2, "r")), (Drops{{a, "expired"}, {b, "full"}, {c, "expired"}}));
    EXPECT_EQ(reply(22, {{"op", "register"}, {"role", "sfu"}, {"address", "203.0.113.22:3480"},
                         {"nat_type", "blocked"}})["ok"],
              true);
    const json none_left = sfu(2, "r");
    EXPECT_EQ(drops(none_left), (Drops{{a, "expired"}, {b, "nat_both"}, {c, "expired"}}));
    EXPECT_TRUE(none_left["candidates"].empty());
    EXPECT_EQ(none_left.value("reason", ""), "candidates_gone");
    EXPECT_TRUE(none_left["username"].is_string()) << "the token is still issued";
    // A new node does not join a session whose order is fixed.
    node(25, "none");
    EXPECT_TRUE(sfu(1, "r")["candidates"].empty());
}

TEST_F(CoordinatorSfuTest, ARoomOfThreeNeedsANodeThatPunchesWithEach) {
    const std::uint64_t open_node = node(21, "none");
    const std::uint64_t restricted = node(22, "port_restricted");
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    ASSERT_TRUE(open(3));
    join(1, "room", "alice", "full_cone");
    join(2, "room", "bob", "none");
    join(3, "room", "carol", "symmetric");
    const json r = sfu(2, "room");
    EXPECT_EQ(candidate_ids(r), (Ids{open_node}));
    EXPECT_EQ(drops(r), (Drops{{restricted, "nat_member"}}));
    EXPECT_EQ(punches(21).size(), 1u);
    EXPECT_TRUE(punches(22).empty());
}

TEST_F(CoordinatorSfuTest, AMemberWhoJoinsLaterDropsTheNodesItCannotReach) {
    const std::uint64_t open_node = node(21, "none");
    const std::uint64_t restricted = node(22, "port_restricted");
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    ASSERT_TRUE(open(3));
    join(1, "room", "alice", "full_cone");
    join(2, "room", "bob", "none");
    const json before = sfu(1, "room");
    EXPECT_EQ(candidate_ids(before), (Ids{open_node, restricted}));
    join(3, "room", "carol", "symmetric");
    const json carol = sfu(3, "room");
    EXPECT_EQ(carol["session"], before["session"]);
    EXPECT_EQ(candidate_ids(carol), (Ids{open_node}));
    EXPECT_EQ(drops(carol), (Drops{{restricted, "nat_member"}}));
    EXPECT_TRUE(punches(22).empty()) << "not told about a member it cannot reach";
    EXPECT_EQ(candidate_ids(sfu(1, "room")), (Ids{open_node})) << "for everyone now";
}

TEST_F(CoordinatorSfuTest, NoNodeOrNoneThatServesEveryoneGivesNoCandidatesAndWhy) {
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "empty", "alice", "symmetric");
    join(2, "empty", "bob", "symmetric");
    const json nothing = sfu(1, "empty");
    ASSERT_EQ(nothing["ok"], true) << nothing;
    EXPECT_TRUE(nothing["candidates"].empty());
    EXPECT_TRUE(nothing["dropped"].empty());
    EXPECT_EQ(nothing.value("reason", ""), "no_nodes");
    EXPECT_FALSE(nothing.value("message", "").empty());

    const std::uint64_t restricted = node(21, "port_restricted");
    const std::uint64_t symmetric = node(22, "symmetric");
    ASSERT_TRUE(open(3));
    ASSERT_TRUE(open(4));
    join(3, "hard", "carol", "symmetric");
    join(4, "hard", "dave", "symmetric");
    const json none_serves = sfu(4, "hard");
    EXPECT_TRUE(none_serves["candidates"].empty());
    EXPECT_EQ(drops(none_serves), (Drops{{restricted, "nat_both"}, {symmetric, "nat_both"}}));
    EXPECT_EQ(none_serves.value("reason", ""), "no_node_serves_all");
    EXPECT_EQ(punch_count(), 0u);
}

TEST_F(CoordinatorSfuTest, NotInTheRoomOrAloneIsNotFound) {
    node(21, "none");
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    json r = sfu(1, "r");
    EXPECT_EQ(code(r), "not_found");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("no other member"),
              std::string::npos)
        << r;
    r = sfu(2, "r");
    EXPECT_EQ(code(r), "not_found");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("join it"), std::string::npos) << r;
    EXPECT_EQ(code(sfu(2, "elsewhere")), "not_found");
    EXPECT_EQ(coordinator_.counters().sfu_sessions, 0u) << "a refused request begins nothing";
    EXPECT_EQ(punch_count(), 0u);
}

TEST_F(CoordinatorSfuTest, ASessionLastsAsLongAsItsRoom) {
    node(21, "none");
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    join(2, "r", "bob");
    const std::string first = sfu(1, "r")["session"];
    send(1, json{{"op", "leave"}, {"room", "r"}});
    join(1, "r", "alice");
    EXPECT_EQ(sfu(1, "r")["session"], first) << "bob kept the room: the same instance";
    send(1, json{{"op", "leave"}, {"room", "r"}});
    send(2, json{{"op", "leave"}, {"room", "r"}});
    join(1, "r", "alice");
    join(2, "r", "bob");
    const json second = sfu(2, "r");
    EXPECT_NE(second["session"], first) << "an emptied room is gone; its name begins anew";
    EXPECT_EQ(punches(21).size(), 1u);
}

TEST_F(CoordinatorSfuTest, RttsAreReadAndAMeasurementOfOneMemberAloneDoesNotReorder) {
    // sfu_select.h ranks by RTT only the nodes every member measured; the session's order is
    // fixed when its first request arrives, with that member's measurements alone.
    const std::uint64_t a = node(21, "none", "eu-west", 10);
    const std::uint64_t b = node(22, "none", "eu-west", 20);
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    join(2, "r", "bob");
    const json r = sfu(1, "r", {{std::to_string(b), 0.5}, {std::to_string(a), 59999.9},
                                {"987654", 3}});
    ASSERT_EQ(r["ok"], true) << r;
    EXPECT_EQ(candidate_ids(r), (Ids{a, b}));
}

// A draining engine (punchctl drain; control/node_agent.h) reports the load 1000000, the top of
// the range, so that even a coordinator whose sfu.full_load is that top leaves it out.
class CoordinatorSfuDrainTest : public CoordinatorSfuTest {
protected:
    static CoordinatorConfig full_at_the_top() {
        CoordinatorConfig config = with_sfu();
        config.sfu.full_load = 1000000;
        return config;
    }
    CoordinatorSfuDrainTest() : CoordinatorSfuTest(full_at_the_top()) {}
};

TEST_F(CoordinatorSfuDrainTest, ADrainingNodeIsLeftOutUntilItUndrains) {
    const std::uint64_t a = node(21, "none", "eu-west", 10);
    const std::uint64_t b = node(22, "none", "eu-west", 20);
    // A room of two members on connections `first` and `first` + 1; the first one's request.
    auto call = [&](ConnectionId first, const std::string& room) {
        EXPECT_TRUE(open(first));
        EXPECT_TRUE(open(first + 1));
        join(first, room, "caller");
        join(first + 1, room, "callee");
        return sfu(first, room);
    };
    EXPECT_EQ(candidate_ids(call(1, "r")), (Ids{a, b}));
    // Node a drains: its heartbeat carries NodeAgent::draining_load, 1000000.
    EXPECT_EQ(reply(21, {{"op", "heartbeat"}, {"load", 1000000}})["ok"], true);
    const json r = sfu(2, "r");
    EXPECT_EQ(candidate_ids(r), (Ids{b}));
    EXPECT_EQ(drops(r), (Drops{{a, "full"}}));
    // A new room's session never gets it.
    EXPECT_EQ(candidate_ids(call(3, "s")), (Ids{b}));
    // Undrained: its real load again, and it serves once more.
    EXPECT_EQ(reply(21, {{"op", "heartbeat"}, {"load", 10}})["ok"], true);
    EXPECT_EQ(candidate_ids(call(5, "t")), (Ids{a, b}));
}

class CoordinatorSfuLimitsTest : public CoordinatorSfuTest {
protected:
    static CoordinatorConfig small() {
        CoordinatorConfig config = with_sfu();
        config.limits.max_sfu_requests_per_connection = 2;
        config.limits.max_nodes = 3;
        config.sfu.max_candidates = 2;
        return config;
    }
    CoordinatorSfuLimitsTest() : CoordinatorSfuTest(small()) {}
};

TEST_F(CoordinatorSfuLimitsTest, RepeatsRttMapsAndCandidatesAreBounded) {
    const std::uint64_t a = node(21, "none", "eu-west", 10);
    const std::uint64_t b = node(22, "none", "eu-west", 20);
    node(23, "none", "eu-west", 30);
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    join(2, "r", "bob");
    // An rtt_ms of more entries than the directory can list is refused before anything else.
    json many = json::object();
    for (int i = 1; i <= 4; ++i) many[std::to_string(i)] = 1;
    json r = sfu(1, "r", many);
    EXPECT_EQ(code(r), "limit");
    EXPECT_EQ(r["error"]["limit"], "max_nodes");
    EXPECT_EQ(coordinator_.counters().sfu_sessions, 0u);

    r = sfu(1, "r");
    EXPECT_EQ(candidate_ids(r), (Ids{a, b})) << "sfu.max_candidates keeps the best two";
    EXPECT_EQ(punch_count(), 2u);
    EXPECT_EQ(sfu(1, "r")["ok"], true);
    r = sfu(1, "r");
    EXPECT_EQ(code(r), "limit");
    EXPECT_EQ(r["error"]["limit"], "max_sfu_requests_per_connection");
    EXPECT_EQ(sfu(2, "r")["ok"], true) << "per connection";
}

TEST_F(CoordinatorTest, WithoutATokenSecretSfuSaysSoAndOffersNothing) {
    ASSERT_TRUE(open(3));
    ASSERT_EQ(
        reply(3, {{"op", "register"}, {"role", "sfu"}, {"address", "203.0.113.5:3480"}})["ok"],
        true);
    ASSERT_TRUE(open(1));
    ASSERT_TRUE(open(2));
    join(1, "r", "alice");
    join(2, "r", "bob");
    const json r = reply(1, {{"op", "sfu"}, {"room", "r"}});
    ASSERT_EQ(r["ok"], true) << r;
    EXPECT_TRUE(r["candidates"].empty());
    EXPECT_TRUE(r["dropped"].empty());
    EXPECT_EQ(r.value("reason", ""), "no_token_secret");
    EXPECT_NE(r.value("message", "").find("sfu.token_secret"), std::string::npos);
    EXPECT_FALSE(r.contains("username"));
    EXPECT_FALSE(r.contains("session"));
    EXPECT_EQ(to(3, last_).size(), 0u) << "no node is told";
    EXPECT_EQ(reply(1, {{"op", "hello"}})["sfu_tokens"], false);
}

TEST(JsonNestingDepthTest, CountsOutsideStringsOnly) {
    EXPECT_EQ(json_nesting_depth(R"({"a":[1,{"b":2}]})", 10), 3u);
    EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[[[{{{{"})", 10), 1u);
    EXPECT_EQ(json_nesting_depth(R"({"a":"\"[[[["})", 10), 1u);
    EXPECT_EQ(json_nesting_depth("plain", 10), 0u);
    EXPECT_EQ(json_nesting_depth(std::string(1000, '['), 5), 6u) << "stops past the limit";
}

}  // namespace
}  // namespace control
