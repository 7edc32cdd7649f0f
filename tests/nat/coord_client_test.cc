// CoordClient (punch/coord_client.h) against a scripted server in the test: a loopback TCP
// listener whose lines the test writes by hand, so that framing, matching by id, events,
// timeouts and the end of the connection are each exercised exactly. Also the EventLoop's
// descriptor watches it stands on.
#include "punch/coord_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "punch/event_loop.h"

namespace punch {
namespace {

using nlohmann::json;

class ScriptedServer {
public:
    ScriptedServer() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        EXPECT_EQ(::listen(listener_, 4), 0);
        socklen_t length = sizeof address;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
    }
    ~ScriptedServer() {
        if (connection_ >= 0) ::close(connection_);
        ::close(listener_);
    }
    [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    void accept() { connection_ = ::accept(listener_, nullptr, nullptr); }
    // The next request line the client sent (the loop must have flushed it).
    json request() {
        std::string line;
        char c;
        while (::recv(connection_, &c, 1, 0) == 1 && c != '\n') line += c;
        return json::parse(line);
    }
    // Whether a byte waits (loopback delivers a send() before it returns).
    bool has_data() {
        pollfd p{connection_, POLLIN, 0};
        return ::poll(&p, 1, 0) > 0;
    }
    void write(const std::string& bytes) {
        ASSERT_EQ(::send(connection_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bytes.size()));
    }
    void close() {
        ::close(connection_);
        connection_ = -1;
    }

private:
    int listener_ = -1;
    int connection_ = -1;
    std::uint16_t port_ = 0;
};

class CoordClientTest : public ::testing::Test {
protected:
    void run_until(const std::function<bool()>& done) {
        bool expired = false;
        const TimerId guard = loop_.after(std::chrono::seconds(5), [&] { expired = true; });
        loop_.run_until([&] { return done() || expired; });
        loop_.cancel(guard);
        ASSERT_FALSE(expired) << "not done within 5 s";
    }
    // Connects `client` to the server; the server side accepted.
    void connect(CoordClient& client) {
        std::optional<std::string> error;
        client.connect([&](const std::string& e) { error = e; });
        server_.accept();
        run_until([&] { return error.has_value(); });
        ASSERT_EQ(*error, "");
    }

    SteadyClock clock_;
    EventLoop loop_{clock_};
    ScriptedServer server_;
};

TEST_F(CoordClientTest, RepliesMatchTheirRequestsByIdInAnyOrder) {
    CoordClient client(loop_, {server_.address()});
    connect(client);
    std::optional<JoinReply> joined;
    std::optional<HelloReply> hello;
    client.join({"r", "alice", {}, "full_cone", "eu"}, [&](const JoinReply& r) { joined = r; });
    client.hello([&](const HelloReply& r) { hello = r; });
    loop_.run_once(Time{0});  // flushes both
    const json join_request = server_.request();
    const json hello_request = server_.request();
    EXPECT_EQ(join_request["op"], "join");
    EXPECT_EQ(join_request["room"], "r");
    EXPECT_EQ(join_request["name"], "alice");
    EXPECT_EQ(join_request["nat_type"], "full_cone");
    EXPECT_EQ(join_request["candidates"], json::array());
    EXPECT_EQ(hello_request["op"], "hello");
    // The hello answered first, in two pieces cut mid-line.
    const std::string hello_reply =
        json{{"id", hello_request["id"]}, {"ok", true}, {"protocol", 1},
             {"stun", {"203.0.113.2:3478"}}, {"relay", json::array()}, {"time_ms", 5},
             {"limits", {{"max_members_per_room", 2}}}}
            .dump() +
        "\n";
    server_.write(hello_reply.substr(0, 10));
    loop_.run_once(std::chrono::milliseconds(50));
    EXPECT_FALSE(hello.has_value());
    server_.write(hello_reply.substr(10));
    run_until([&] { return hello.has_value(); });
    EXPECT_TRUE(hello->status.ok);
    EXPECT_EQ(hello->stun_servers, std::vector<std::string>{"203.0.113.2:3478"});
    EXPECT_EQ(hello->max_members_per_room, 2u);
    EXPECT_FALSE(joined.has_value());
    server_.write(json{{"id", join_request["id"]},
                       {"ok", true},
                       {"ufrag", "abcd1234"},
                       {"password", "p"},
                       {"controlling", true},
                       {"turn", {{"username", "9:r-alice"}, {"password", "x"}, {"ttl_s", 600}}}}
                      .dump() +
                  "\n");
    run_until([&] { return joined.has_value(); });
    EXPECT_EQ(joined->ufrag, "abcd1234");
    EXPECT_TRUE(joined->controlling);
    EXPECT_EQ(joined->turn.username, "9:r-alice");
    EXPECT_EQ(joined->turn.ttl_s, 600u);
}

TEST_F(CoordClientTest, EventsGoToTheirCallbacksAndErrorsCarryTheirCode) {
    CoordClient client(loop_, {server_.address()});
    std::optional<PeerInfo> peer;
    std::vector<CoordCandidate> candidates;
    std::string signal;
    std::string left;
    client.on_peer([&](const PeerInfo& p) { peer = p; });
    client.on_candidates([&](const std::string&, const std::string&,
                             const std::vector<CoordCandidate>& c) { candidates = c; });
    client.on_signal([&](const std::string&, const std::string& from, const std::string& data) {
        signal = from + data;
    });
    client.on_peer_left([&](const std::string&, const std::string& name) { left = name; });
    connect(client);
    server_.write(R"({"event":"peer","room":"r","name":"bob","nat_type":"symmetric",)"
                  R"("ufrag":"u2","password":"p2","controlling":false,"candidates":[)"
                  R"({"type":"srflx","address":"203.0.113.9:5000"},)"
                  R"({"type":"host","address":"[2001:db8::1]:6000"}]})"
                  "\n"
                  R"({"event":"candidates","room":"r","from":"bob","candidates":[)"
                  R"({"type":"relay","address":"203.0.113.4:49152"}]})"
                  "\n"
                  R"({"event":"signal","room":"r","from":"bob","data":{"k":1}})"
                  "\n"
                  R"({"event":"peer_left","room":"r","name":"bob"})"
                  "\n"
                  R"({"event":"from_the_future"})"
                  "\n");
    run_until([&] { return !left.empty(); });
    ASSERT_TRUE(peer.has_value());
    EXPECT_EQ(peer->name, "bob");
    EXPECT_EQ(peer->ufrag, "u2");
    EXPECT_EQ(peer->password, "p2");
    ASSERT_EQ(peer->candidates.size(), 2u);
    stun::Address expected;
    ASSERT_TRUE(stun::Address::from_string("2001:db8::1", 6000, expected));
    EXPECT_EQ(peer->candidates[1].address, expected);
    ASSERT_EQ(candidates.size(), 1u);
    EXPECT_EQ(candidates[0].type, "relay");
    EXPECT_EQ(signal, R"(bob{"k":1})");
    EXPECT_EQ(left, "bob");
    EXPECT_EQ(client.ignored_lines(), 1u);

    std::optional<CoordStatus> status;
    client.leave("r", [&](const CoordStatus& s) { status = s; });
    loop_.run_once(Time{0});
    const json request = server_.request();
    server_.write(json{{"id", request["id"]},
                       {"ok", false},
                       {"error", {{"code", "limit"}, {"message", "m"}, {"limit", "max_rooms"}}}}
                      .dump() +
                  "\n");
    run_until([&] { return status.has_value(); });
    EXPECT_FALSE(status->ok);
    EXPECT_EQ(status->code, "limit");
    EXPECT_EQ(status->limit, "max_rooms");
}

TEST_F(CoordClientTest, TimeoutAndServerCloseEndPendingRequests) {
    CoordClientConfig config{server_.address()};
    config.request_timeout = std::chrono::milliseconds(100);
    CoordClient client(loop_, config);
    std::optional<std::string> closed;
    client.on_closed([&](const std::string& reason) { closed = reason; });
    connect(client);
    std::optional<CoordStatus> first;
    client.ping([&](const CoordStatus& s) { first = s; });
    run_until([&] { return first.has_value(); });
    EXPECT_EQ(first->code, "timeout");
    std::optional<CoordStatus> second;
    client.ping([&](const CoordStatus& s) { second = s; });
    loop_.run_once(Time{0});
    // Both read first: closing with unread input would reset the connection.
    EXPECT_EQ(server_.request()["op"], "ping");
    EXPECT_EQ(server_.request()["op"], "ping");
    server_.close();
    run_until([&] { return second.has_value() && closed.has_value(); });
    EXPECT_EQ(second->code, "closed");
    EXPECT_EQ(*closed, "the coordinator closed the connection");
    EXPECT_FALSE(client.connected());
    std::optional<CoordStatus> after;
    client.ping([&](const CoordStatus& s) { after = s; });
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->code, "not_connected");
}

TEST_F(CoordClientTest, AnOversizeLineFromTheServerEndsTheConnection) {
    CoordClientConfig config{server_.address()};
    config.max_line_bytes = 1000;
    CoordClient client(loop_, config);
    std::optional<std::string> closed;
    client.on_closed([&](const std::string& reason) { closed = reason; });
    connect(client);
    server_.write(std::string(5000, 'x'));
    run_until([&] { return closed.has_value(); });
    EXPECT_NE(closed->find("longer than 1000 bytes"), std::string::npos) << *closed;
}

TEST_F(CoordClientTest, IdleClosingEventSaysWhy) {
    CoordClient client(loop_, {server_.address()});
    std::optional<std::string> closed;
    client.on_closed([&](const std::string& reason) { closed = reason; });
    connect(client);
    server_.write(R"({"event":"closing","code":"idle_timeout","message":"nothing for 30000 ms"})"
                  "\n");
    run_until([&] { return closed.has_value(); });
    EXPECT_EQ(*closed, "idle_timeout: nothing for 30000 ms");
}

// On a ManualClock: the pings follow the interval exactly, whatever the machine's load.
TEST(CoordClientPingTest, PingsGoOutEveryInterval) {
    ScriptedServer server;
    ManualClock clock;
    EventLoop loop(clock);
    CoordClientConfig config{server.address()};
    config.ping_interval = std::chrono::seconds(10);
    config.request_timeout = std::chrono::seconds(60);  // unanswered pings: the next test
    CoordClient client(loop, config);
    std::optional<std::string> error;
    client.connect([&](const std::string& e) { error = e; });
    server.accept();
    while (!error) loop.run_once(std::chrono::milliseconds(100));
    ASSERT_EQ(*error, "");
    clock.advance(std::chrono::milliseconds(9999));
    loop.run_once(Time{0});
    EXPECT_FALSE(server.has_data()) << "no ping before the interval";
    clock.advance(std::chrono::milliseconds(1));
    loop.run_once(Time{0});
    EXPECT_EQ(server.request()["op"], "ping");
    clock.advance(std::chrono::seconds(10));
    loop.run_once(Time{0});
    EXPECT_EQ(server.request()["op"], "ping");
}

// A ping left unanswered ends the connection: a dead coordinator is noticed.
TEST(CoordClientPingTest, AnUnansweredPingEndsTheConnection) {
    ScriptedServer server;
    ManualClock clock;
    EventLoop loop(clock);
    CoordClientConfig config{server.address()};
    config.ping_interval = std::chrono::seconds(10);
    config.request_timeout = std::chrono::seconds(5);
    CoordClient client(loop, config);
    std::optional<std::string> closed;
    client.on_closed([&](const std::string& reason) { closed = reason; });
    std::optional<std::string> error;
    client.connect([&](const std::string& e) { error = e; });
    server.accept();
    while (!error) loop.run_once(std::chrono::milliseconds(100));
    clock.advance(std::chrono::seconds(10));
    loop.run_once(Time{0});
    const json ping = server.request();
    ASSERT_EQ(ping["op"], "ping");
    // Answered: the connection stays.
    server.write(json{{"id", ping["id"]}, {"ok", true}, {"pong", true}}.dump() + "\n");
    loop.run_once(std::chrono::seconds(1));  // the reply is there: epoll returns at once
    clock.advance(std::chrono::seconds(5));
    loop.run_once(std::chrono::milliseconds(50));
    EXPECT_FALSE(closed.has_value());
    EXPECT_TRUE(client.connected());
    // The next one is not answered.
    clock.advance(std::chrono::seconds(5));
    loop.run_once(Time{0});
    EXPECT_EQ(server.request()["op"], "ping");
    clock.advance(std::chrono::seconds(5));
    loop.run_once(Time{0});
    ASSERT_TRUE(closed.has_value());
    EXPECT_EQ(*closed, "the coordinator did not answer a ping within 5000 ms");
    EXPECT_FALSE(client.connected());
}

TEST(EventLoopFdTest, WritableCallbackRunsOnlyWhileSet) {
    SteadyClock clock;
    EventLoop loop(clock);
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), 0);
    int readable = 0;
    int writable = 0;
    ASSERT_EQ(loop.watch_fd(pair[0], [&] {
        char c;
        while (::recv(pair[0], &c, 1, 0) == 1) ++readable;
    }),
              "");
    loop.run_once(Time{0});
    EXPECT_EQ(writable, 0) << "no writable callback set";
    ASSERT_EQ(loop.set_writable(pair[0], [&] { ++writable; }), "");
    loop.run_once(Time{0});
    EXPECT_EQ(writable, 1);
    ASSERT_EQ(loop.set_writable(pair[0], {}), "");
    ASSERT_EQ(::send(pair[1], "ab", 2, 0), 2);
    loop.run_once(std::chrono::milliseconds(100));
    EXPECT_EQ(writable, 1);
    EXPECT_EQ(readable, 2);
    loop.unwatch_fd(pair[0]);
    ASSERT_EQ(::send(pair[1], "c", 1, 0), 1);
    loop.run_once(Time{0});
    EXPECT_EQ(readable, 2) << "unwatched";
    EXPECT_NE(loop.set_writable(pair[0], [] {}), "");
    ::close(pair[0]);
    ::close(pair[1]);
}

// The `sfu` op (docs/sfu.md, "The coordinator's part"): the request's fields, a full reply
// typed, then the coordinator's error and replies that do not hold together, each named.
class CoordClientSfuTest : public CoordClientTest {
protected:
    // Sends one sfu request; the server answers `reply` (its id filled in) and the client's
    // typed reply comes back.
    SfuReply ask(CoordClient& client, json reply, json* request = nullptr) {
        std::optional<SfuReply> answer;
        client.sfu("call-1", {{3, 12.5}}, [&](const SfuReply& r) { answer = r; });
        loop_.run_once(Time{0});
        const json sent = server_.request();
        if (request) *request = sent;
        reply["id"] = sent["id"];
        server_.write(reply.dump() + "\n");
        run_until([&] { return answer.has_value(); });
        return answer.value_or(SfuReply{});
    }
    static json good() {
        return {{"op", "sfu"},
                {"ok", true},
                {"room", "call-1"},
                {"session", "00c0ffee12345678"},
                {"username", "1795531242:00c0ffee12345678:alice"},
                {"password", std::string(44, 'A')},
                {"expires_unix", 1795531242},
                {"race", 2},
                {"candidates",
                 {{{"node_id", 3}, {"address", "203.0.113.5:3480"}, {"nat_type", "none"},
                   {"region", "eu-west"}, {"load", 10}},
                  {{"node_id", 7}, {"address", "[2001:db8::7]:3480"}, {"nat_type", "full_cone"},
                   {"region", "us-east"}, {"load", 0}}}},
                {"dropped", {{{"node_id", 4}, {"reason", "nat_client_b"}}}}};
    }
};

TEST_F(CoordClientSfuTest, TheReplyIsTyped) {
    CoordClient client(loop_, {server_.address()});
    connect(client);
    json request;
    const SfuReply r = ask(client, good(), &request);
    EXPECT_EQ(request["op"], "sfu");
    EXPECT_EQ(request["room"], "call-1");
    EXPECT_EQ(request["rtt_ms"], json({{"3", 12.5}}));
    ASSERT_TRUE(r.status.ok) << r.status.message;
    EXPECT_EQ(r.session, "00c0ffee12345678");
    EXPECT_EQ(r.username, "1795531242:00c0ffee12345678:alice");
    EXPECT_EQ(r.password.size(), 44u);
    EXPECT_EQ(r.expires_unix, 1795531242u);
    EXPECT_EQ(r.race, 2u);
    ASSERT_EQ(r.candidates.size(), 2u);
    EXPECT_EQ(r.candidates[0].node_id, 3u);
    stun::Address node;
    ASSERT_TRUE(stun::Address::from_string("203.0.113.5", 3480, node));
    EXPECT_EQ(r.candidates[0].address, node);
    EXPECT_EQ(r.candidates[0].nat_type, "none");
    EXPECT_EQ(r.candidates[0].region, "eu-west");
    EXPECT_EQ(r.candidates[0].load, 10u);
    EXPECT_EQ(r.candidates[1].node_id, 7u);
    EXPECT_EQ(r.candidates[1].address.family, stun::AddressFamily::ipv6);
    ASSERT_EQ(r.dropped.size(), 1u);
    EXPECT_EQ(r.dropped[0].node_id, 4u);
    EXPECT_EQ(r.dropped[0].reason, "nat_client_b");
}

TEST_F(CoordClientSfuTest, NoCandidatesIsOkWithoutAToken) {
    CoordClient client(loop_, {server_.address()});
    connect(client);
    const SfuReply r = ask(client, {{"op", "sfu"}, {"ok", true}, {"room", "call-1"},
                                    {"candidates", json::array()},
                                    {"dropped", {{{"node_id", 4}, {"reason", "full"}}}}});
    ASSERT_TRUE(r.status.ok) << r.status.message;
    EXPECT_TRUE(r.candidates.empty());
    EXPECT_EQ(r.race, 1u);
    ASSERT_EQ(r.dropped.size(), 1u);
    EXPECT_EQ(r.dropped[0].reason, "full");
}

TEST_F(CoordClientSfuTest, TheCoordinatorsErrorComesAsItIs) {
    CoordClient client(loop_, {server_.address()});
    connect(client);
    const SfuReply r =
        ask(client, {{"op", "sfu"}, {"ok", false},
                     {"error", {{"code", "not_found"}, {"message", "no other member yet"}}}});
    EXPECT_FALSE(r.status.ok);
    EXPECT_EQ(r.status.code, "not_found");
    EXPECT_EQ(r.status.message, "no other member yet");
    EXPECT_TRUE(r.candidates.empty());
}

TEST_F(CoordClientSfuTest, MalformedRepliesAreBadReplyNamingTheField) {
    struct Case {
        const char* name;
        std::function<void(json&)> spoil;
        const char* names;  // in the message
    };
    const Case cases[] = {
        {"UsernameNotAToken", [](json& r) { r["username"] = "alice"; }, "username"},
        {"UsernameMissing", [](json& r) { r.erase("username"); }, "username"},
        {"PasswordShort", [](json& r) { r["password"] = "short"; }, "password is 5"},
        {"SessionNotTheUsernames", [](json& r) { r["session"] = "0123456789abcdef"; },
         "session"},
        {"RaceZero", [](json& r) { r["race"] = 0; }, "race"},
        {"CandidateAddressAName",
         [](json& r) { r["candidates"][0]["address"] = "node.example:3480"; },
         "candidate node 3: address"},
        {"CandidateWithoutNodeId", [](json& r) { r["candidates"][1].erase("node_id"); },
         "node_id"},
        {"CandidatesNotAnArray", [](json& r) { r["candidates"] = "3"; }, "candidates"},
        {"ExpiryNegative", [](json& r) { r["expires_unix"] = -1; }, "expires_unix"},
    };
    CoordClient client(loop_, {server_.address()});
    connect(client);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        json reply = good();
        c.spoil(reply);
        const SfuReply r = ask(client, reply);
        EXPECT_FALSE(r.status.ok);
        EXPECT_EQ(r.status.code, "bad_reply");
        EXPECT_NE(r.status.message.find(c.names), std::string::npos) << r.status.message;
        EXPECT_TRUE(r.candidates.empty());
    }
    // And the client is still usable: the good reply after them.
    EXPECT_TRUE(ask(client, good()).status.ok);
}

}  // namespace
}  // namespace punch
