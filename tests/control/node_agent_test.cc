// The engine's side of punchcoord as an SFU node (control/node_agent.h, node_discovery.h,
// node_punch.h, node_config.h), on an injected clock with a recording transport: the punch
// requests byte for byte, the discovery's order and classification against a scripted RFC 5780
// server, the sfu_punch validation table, and the coordinator protocol against a scripted
// coordinator on a loopback TCP socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../nat/recording_sender.h"
#include "control/node_agent.h"
#include "control/node_config.h"
#include "control/node_discovery.h"
#include "control/node_punch.h"
#include "engine/config.h"
#include "stun/constants.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using punch::ManualClock;
using punch::testing::RecordingSender;

stun::Address address(const char* ip, std::uint16_t port) {
    stun::Address out;
    EXPECT_TRUE(stun::Address::from_string(ip, port, out)) << ip;
    return out;
}

std::vector<std::byte> bytes(std::string_view text) {
    const auto view = std::as_bytes(std::span(text));
    return {view.begin(), view.end()};
}

const std::string secret_text = "a node secret of 32 bytes, or so";
const std::uint64_t now_unix = 1795527642;
const std::string username = "1795531242:00c0ffee12345678:alice";

std::string password_of(const std::string& secret, const std::string& user) {
    std::array<char, stun::sfu_password_size> out{};
    stun::make_sfu_password(std::as_bytes(std::span(secret)), user, out);
    return {out.begin(), out.end()};
}

// A Binding response to `request` (its transaction ID), with XOR-MAPPED-ADDRESS `mapped`,
// OTHER-ADDRESS when given, integrity keyed with `key` when not empty, and FINGERPRINT.
std::vector<std::byte> binding_response(std::span<const std::byte> request,
                                        const stun::Address& mapped,
                                        std::optional<stun::Address> other = std::nullopt,
                                        std::string_view key = {}) {
    stun::Message message;
    EXPECT_EQ(stun::Message::parse(request, message), stun::ParseError::ok);
    std::vector<std::byte> out(256);
    stun::MessageWriter writer(out, stun::Method::binding, stun::MessageClass::success_response,
                               message.transaction_id());
    writer.add_xor_address(stun::attr::xor_mapped_address, mapped);
    if (other) writer.add_address(stun::attr::other_address, *other);
    if (!key.empty()) writer.add_message_integrity(std::as_bytes(std::span(key)));
    writer.add_fingerprint();
    out.resize(writer.finish().size());
    return out;
}

std::uint32_t change_flags(std::span<const std::byte> request) {
    stun::Message message;
    EXPECT_EQ(stun::Message::parse(request, message), stun::ParseError::ok);
    const auto attribute = message.find(stun::attr::change_request);
    if (!attribute || attribute->value.size() != 4) return 0;
    return std::to_integer<std::uint32_t>(attribute->value[3]);
}

// --- NodePuncher ---------------------------------------------------------------------------

// A puncher on a manual clock, every 50 ms for 2 s, towards two addresses of one participant.
class NodePunch : public ::testing::Test {
protected:
    ManualClock clock;
    RecordingSender sender{clock};
    control::NodePuncher puncher{clock, sender, bytes(secret_text), {50ms, 2s, 16}};
    const stun::Address a = address("198.51.100.9", 6000);
    const stun::Address b = address("203.0.113.9", 50000);
};

TEST_F(NodePunch, SendsSignedBindingRequestsPacedUntilTheDuration) {
    EXPECT_EQ(puncher.start({username, {a, b}}), 2u);
    puncher.poll();
    ASSERT_EQ(sender.sent.size(), 2u);
    const std::string password = password_of(secret_text, username);
    for (const auto& sent : sender.sent) {
        stun::Message message;
        ASSERT_EQ(stun::Message::parse(sent.datagram, message), stun::ParseError::ok);
        EXPECT_TRUE(message.is(stun::Method::binding, stun::MessageClass::request));
        const auto user = message.find(stun::attr::username);
        ASSERT_TRUE(user);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(user->value.data()),
                              user->value.size()),
                  username);
        EXPECT_EQ(stun::verify_message_integrity(message, std::as_bytes(std::span(password))),
                  stun::IntegrityResult::ok);
        EXPECT_EQ(stun::verify_fingerprint(message), stun::IntegrityResult::ok);
    }
    EXPECT_EQ(sender.sent[0].to, a);
    EXPECT_EQ(sender.sent[1].to, b);
    // Every 50 ms: 40 sends each in 2 s, then the targets end unanswered.
    for (int i = 0; i < 60; ++i) {
        clock.advance(50ms);
        puncher.poll();
    }
    EXPECT_EQ(sender.sent.size(), 80u);
    EXPECT_EQ(puncher.counters().requests_sent, 80u);
    EXPECT_EQ(puncher.counters().targets_unanswered, 2u);
    EXPECT_EQ(puncher.live_targets(), 0u);
    EXPECT_FALSE(puncher.next_deadline());
}

TEST_F(NodePunch, AnAnswerEndsItsTargetAndAWrongKeyDoesNot) {
    puncher.start({username, {a, b}});
    puncher.poll();
    ASSERT_EQ(sender.sent.size(), 2u);
    const stun::Address mapped = address("203.0.113.5", 3480);
    // The answer to a's request, keyed with another password: discarded (RFC 8489 §9.1.4).
    EXPECT_TRUE(puncher.on_datagram(
        a, binding_response(sender.sent[0].datagram, mapped, std::nullopt,
                            password_of("another secret of 32 bytes, or so", username))));
    EXPECT_EQ(puncher.counters().answers_bad_integrity, 1u);
    EXPECT_EQ(puncher.live_targets(), 2u);
    // The right key, from another port than the request went to (peer-reflexive): counted.
    EXPECT_TRUE(puncher.on_datagram(
        address("198.51.100.9", 6001),
        binding_response(sender.sent[0].datagram, mapped, std::nullopt,
                         password_of(secret_text, username))));
    EXPECT_EQ(puncher.counters().answers, 1u);
    EXPECT_EQ(puncher.counters().targets_answered, 1u);
    EXPECT_EQ(puncher.live_targets(), 1u);
    // Someone else's response, and a request: not ours.
    std::vector<std::byte> stranger = sender.sent[1].datagram;
    stranger[8] ^= std::byte{1};
    EXPECT_FALSE(puncher.on_datagram(b, binding_response(stranger, mapped)));
    EXPECT_FALSE(puncher.on_datagram(b, sender.sent[1].datagram));
    clock.advance(50ms);
    puncher.poll();
    ASSERT_EQ(sender.sent.size(), 3u);
    EXPECT_EQ(sender.sent[2].to, b);
}

TEST(NodePunchLimit, RefusesTargetsPastTheLimitAndRestartsARepeatedOne) {
    ManualClock clock;
    RecordingSender sender(clock);
    control::NodePuncher puncher(clock, sender, bytes(secret_text), {50ms, 2s, 2});
    const stun::Address a = address("198.51.100.9", 6000);
    EXPECT_EQ(puncher.start({username, {a, address("198.51.100.9", 6001),
                                        address("198.51.100.9", 6002)}}),
              2u);
    EXPECT_EQ(puncher.counters().targets_refused, 1u);
    clock.advance(1500ms);
    EXPECT_EQ(puncher.start({username, {a}}), 1u);  // restarted: 2 s from now
    clock.advance(1000ms);
    puncher.poll();
    EXPECT_EQ(puncher.live_targets(), 1u);
    EXPECT_EQ(puncher.counters().targets_unanswered, 1u);
}

// --- sfu_punch validation -------------------------------------------------------------------

TEST(NodeAgentPunchEvent, ValidatesEveryField) {
    const json good = {{"event", "sfu_punch"},
                       {"session", "00c0ffee12345678"},
                       {"participant", "alice"},
                       {"username", username},
                       {"addresses", {"198.51.100.9:6000", "[2001:db8::9]:6000"}}};
    control::PunchOrder order;
    ASSERT_FALSE(
        control::parse_punch_event(good, now_unix, stun::AddressFamily::ipv4, order));
    EXPECT_EQ(order.username, username);
    ASSERT_EQ(order.addresses.size(), 1u);  // the IPv6 one cannot be reached from IPv4
    EXPECT_EQ(order.addresses[0], address("198.51.100.9", 6000));

    using R = control::PunchEventRejection;
    struct Case {
        const char* name;
        std::function<void(json&)> change;
        R expected;
    };
    const std::vector<Case> cases = {
        {"NoUsername", [](json& e) { e.erase("username"); }, R::bad_username},
        {"UsernameNotString", [](json& e) { e["username"] = 5; }, R::bad_username},
        {"UsernameMalformed", [](json& e) { e["username"] = "alice"; }, R::bad_username},
        {"UsernameBadSession",
         [](json& e) { e["username"] = "1795531242:00C0FFEE12345678:alice"; }, R::bad_username},
        {"Expired", [](json& e) { e["username"] = "1795527641:00c0ffee12345678:alice"; },
         R::expired},
        {"SessionMismatch", [](json& e) { e["session"] = "00c0ffee12345679"; }, R::mismatch},
        {"SessionNotString", [](json& e) { e["session"] = 1; }, R::mismatch},
        {"ParticipantMismatch", [](json& e) { e["participant"] = "bob"; }, R::mismatch},
        {"NoAddresses", [](json& e) { e.erase("addresses"); }, R::bad_addresses},
        {"AddressesNotArray", [](json& e) { e["addresses"] = "198.51.100.9:6000"; },
         R::bad_addresses},
        {"AddressesEmpty", [](json& e) { e["addresses"] = json::array(); }, R::bad_addresses},
        {"AddressNotString", [](json& e) { e["addresses"] = {1}; }, R::bad_addresses},
        {"AddressNoPort", [](json& e) { e["addresses"] = {"198.51.100.9"}; }, R::bad_addresses},
        {"AddressPortZero", [](json& e) { e["addresses"] = {"198.51.100.9:0"}; },
         R::bad_addresses},
        {"AddressName", [](json& e) { e["addresses"] = {"example.org:6000"}; },
         R::bad_addresses},
        {"AddressIpv6Unbracketed", [](json& e) { e["addresses"] = {"2001:db8::9:6000"}; },
         R::bad_addresses},
        {"TooManyAddresses",
         [](json& e) { e["addresses"] = std::vector<std::string>(17, "198.51.100.9:6000"); },
         R::bad_addresses},
        {"OnlyIpv6", [](json& e) { e["addresses"] = {"[2001:db8::9]:6000"}; },
         R::no_usable_address},
    };
    for (const Case& c : cases) {
        json event = good;
        c.change(event);
        control::PunchOrder ignored;
        const auto rejection =
            control::parse_punch_event(event, now_unix, stun::AddressFamily::ipv4, ignored);
        ASSERT_TRUE(rejection) << c.name;
        EXPECT_EQ(*rejection, c.expected)
            << c.name << ": " << control::to_string(*rejection);
    }
}

// --- NodeDiscovery against a scripted RFC 5780 server ---------------------------------------

// The server: primary 203.0.113.2:3478, alternate 203.0.113.3:3479. The NAT in front of the
// node maps as `mapping` says and lets in what `filtering` says.
struct ScriptedNat {
    punch::MappingBehavior mapping = punch::MappingBehavior::endpoint_independent;
    punch::FilteringBehavior filtering = punch::FilteringBehavior::address_and_port_dependent;
    bool answer = true;
};

const stun::Address primary = address("203.0.113.2", 3478);
const stun::Address alternate = address("203.0.113.3", 3479);
const stun::Address node_local = address("198.18.0.2", 3480);

struct DiscoveryRun {
    control::DiscoveryReport report;
    bool done = false;
    std::vector<std::pair<stun::Address, std::uint32_t>> requests;  // to, CHANGE-REQUEST
};

DiscoveryRun run_discovery(const ScriptedNat& nat, stun::Address local = node_local) {
    ManualClock clock;
    punch::TimerQueue timers;
    RecordingSender sender(clock);
    control::NodeDiscovery discovery(clock, timers, sender, local,
                                     {100ms, 7, 16, 1s});
    DiscoveryRun run;
    EXPECT_TRUE(discovery.start(primary, [&](const control::DiscoveryReport& r) {
        run.report = r;
        run.done = true;
    }));
    std::size_t seen = 0;
    for (int step = 0; step < 400 && !run.done; ++step) {
        timers.run_due(clock.now());
        for (; seen < sender.sent.size(); ++seen) {
            const auto& sent = sender.sent[seen];
            const std::uint32_t flags = change_flags(sent.datagram);
            run.requests.push_back({sent.to, flags});
            if (!nat.answer) continue;
            // What the NAT maps this request to.
            stun::Address mapped = local == node_local ? address("203.0.113.50", 40000) : local;
            if (nat.mapping == punch::MappingBehavior::address_and_port_dependent ||
                (nat.mapping == punch::MappingBehavior::address_dependent &&
                 sent.to.ip != primary.ip))
                mapped.port = static_cast<std::uint16_t>(40000 + sent.to.port % 100 +
                                                         (sent.to.ip == primary.ip ? 0 : 50));
            // Where the answer comes from, and whether the filter lets it in.
            stun::Address from = sent.to;
            if (flags & stun::change_ip) from.ip = alternate.ip;
            if (flags & stun::change_port) from.port = alternate.port;
            const bool let_in =
                from == sent.to ||
                nat.filtering == punch::FilteringBehavior::endpoint_independent ||
                (nat.filtering == punch::FilteringBehavior::address_dependent &&
                 from.ip == sent.to.ip);
            if (!let_in) continue;
            // Only the first send of each transaction is answered: enough.
            discovery.on_datagram(from, binding_response(sent.datagram, mapped, alternate));
        }
        clock.advance(10ms);
    }
    return run;
}

TEST(NodeDiscovery, FilteringTestsAllGoToThePrimaryBeforeAnyMappingTest) {
    const DiscoveryRun run = run_discovery({});
    ASSERT_TRUE(run.done);
    // Test I, then filtering II and III (retransmitted: unanswered behind APDF), all to the
    // primary; only then the two mapping tests to the alternate IP.
    std::size_t first_alternate = run.requests.size();
    for (std::size_t i = 0; i < run.requests.size(); ++i)
        if (run.requests[i].first.ip == alternate.ip) {
            first_alternate = i;
            break;
        }
    ASSERT_LT(first_alternate, run.requests.size());
    bool saw_change_ip = false;
    bool saw_change_port = false;
    for (std::size_t i = 0; i < first_alternate; ++i) {
        EXPECT_EQ(run.requests[i].first, primary) << i;
        saw_change_ip |= run.requests[i].second == (stun::change_ip | stun::change_port);
        saw_change_port |= run.requests[i].second == stun::change_port;
    }
    EXPECT_TRUE(saw_change_ip);
    EXPECT_TRUE(saw_change_port);
    for (std::size_t i = first_alternate; i < run.requests.size(); ++i) {
        EXPECT_EQ(run.requests[i].first.ip, alternate.ip) << i;
        EXPECT_EQ(run.requests[i].second, 0u) << i;
    }
    ASSERT_TRUE(run.report.public_address);
    EXPECT_EQ(*run.report.public_address, address("203.0.113.50", 40000));
    EXPECT_EQ(run.report.classification.type, punch::NatType::port_restricted);
}

TEST(NodeDiscovery, ClassifiesEachNatType) {
    using M = punch::MappingBehavior;
    using F = punch::FilteringBehavior;
    struct Case {
        const char* name;
        ScriptedNat nat;
        punch::NatType expected;
    };
    const std::vector<Case> cases = {
        {"FullCone", {M::endpoint_independent, F::endpoint_independent}, punch::NatType::full_cone},
        {"AddressRestricted", {M::endpoint_independent, F::address_dependent},
         punch::NatType::address_restricted},
        {"PortRestricted", {M::endpoint_independent, F::address_and_port_dependent},
         punch::NatType::port_restricted},
        {"SymmetricAddress", {M::address_dependent, F::address_and_port_dependent},
         punch::NatType::symmetric},
        {"SymmetricPort", {M::address_and_port_dependent, F::address_and_port_dependent},
         punch::NatType::symmetric},
        {"Blocked", {M::endpoint_independent, F::endpoint_independent, false},
         punch::NatType::blocked},
    };
    for (const Case& c : cases) {
        const DiscoveryRun run = run_discovery(c.nat);
        ASSERT_TRUE(run.done) << c.name;
        EXPECT_EQ(run.report.classification.type, c.expected)
            << c.name << ": " << punch::to_string(run.report.classification.type);
        EXPECT_EQ(run.report.public_address.has_value(), c.nat.answer) << c.name;
    }
}

TEST(NodeDiscovery, NoNatSkipsTheMappingTests) {
    // The mapped address is the node's own: no mapping tests go to the alternate address.
    const DiscoveryRun run = run_discovery(
        {punch::MappingBehavior::endpoint_independent,
         punch::FilteringBehavior::endpoint_independent},
        address("203.0.113.50", 3480));
    ASSERT_TRUE(run.done);
    for (const auto& [to, flags] : run.requests) EXPECT_EQ(to, primary);
    EXPECT_EQ(run.report.classification.type, punch::NatType::none);
}

// --- [node] ---------------------------------------------------------------------------------

TEST(NodeConfig, ReadsEveryKey) {
    const auto config = control::parse_node_config(R"(
[node]
coordinator = "203.0.113.10:7000"
region = "eu-west"
secret = "node secret"
stun_server = "203.0.113.2:3478"
connect_timeout_ms = 2000
reconnect_min_ms = 500
reconnect_max_ms = 8000
request_timeout_ms = 3000
discovery_timeout_ms = 4000
discovery_retry_ms = 10000
punch_interval_ms = 20
punch_duration_ms = 3000
max_punch_targets = 64
)",
                                                   "test.toml");
    ASSERT_TRUE(config);
    EXPECT_EQ(config->coordinator_address, address("203.0.113.10", 7000));
    EXPECT_EQ(config->region, "eu-west");
    EXPECT_EQ(config->node_secret, "node secret");
    ASSERT_TRUE(config->stun_server);
    EXPECT_EQ(*config->stun_server, primary);
    EXPECT_EQ(config->connect_timeout, 2000ms);
    EXPECT_EQ(config->reconnect_min, 500ms);
    EXPECT_EQ(config->reconnect_max, 8000ms);
    EXPECT_EQ(config->request_timeout, 3000ms);
    EXPECT_EQ(config->discovery_policy.max_duration, 4000ms);
    EXPECT_EQ(config->discovery_retry, 10000ms);
    EXPECT_EQ(config->punch.interval, 20ms);
    EXPECT_EQ(config->punch.duration, 3000ms);
    EXPECT_EQ(config->punch.max_targets, 64u);
    EXPECT_FALSE(control::parse_node_config("[stun]\nport = 3478\n", "test.toml"));
}

TEST(NodeConfig, RefusesBadKeysNamingThem) {
    struct Case {
        const char* name;
        const char* text;
        const char* key;
        const char* says;
    };
    const std::vector<Case> cases = {
        {"NotATable", "node = 1\n", "node", "table"},
        {"NoCoordinator", "[node]\nregion = \"eu\"\n", "node.coordinator", "missing"},
        {"BadCoordinator", "[node]\ncoordinator = \"203.0.113.10\"\n", "node.coordinator",
         "host:port"},
        {"Unknown", "[node]\ncoordinator = \"203.0.113.10:7000\"\nport = 1\n", "node.port",
         "unknown key"},
        {"BadRegion", "[node]\ncoordinator = \"203.0.113.10:7000\"\nregion = \"EU West\"\n",
         "node.region", "a-z"},
        {"EmptySecret", "[node]\ncoordinator = \"203.0.113.10:7000\"\nsecret = \"\"\n",
         "node.secret", "non-empty"},
        {"BothAddresses",
         "[node]\ncoordinator = \"203.0.113.10:7000\"\nstun_server = \"203.0.113.2:3478\"\n"
         "public_address = \"203.0.113.5:3480\"\n",
         "node.public_address", "not both"},
        {"NatTypeWithStun",
         "[node]\ncoordinator = \"203.0.113.10:7000\"\nstun_server = \"203.0.113.2:3478\"\n"
         "nat_type = \"none\"\n",
         "node.nat_type", "discovered"},
        {"BadNatType", "[node]\ncoordinator = \"203.0.113.10:7000\"\nnat_type = \"cone\"\n",
         "node.nat_type", "port_restricted"},
        {"IntervalTooShort",
         "[node]\ncoordinator = \"203.0.113.10:7000\"\npunch_interval_ms = 1\n",
         "node.punch_interval_ms", "10..1000"},
        {"BackoffInverted",
         "[node]\ncoordinator = \"203.0.113.10:7000\"\nreconnect_min_ms = 5000\n"
         "reconnect_max_ms = 1000\n",
         "node.reconnect_max_ms", "reconnect_min_ms"},
    };
    for (const Case& c : cases) {
        try {
            (void)control::parse_node_config(c.text, "test.toml");
            ADD_FAILURE() << c.name << ": accepted";
        } catch (const engine::ConfigError& error) {
            EXPECT_EQ(error.key(), c.key) << c.name << ": " << error.what();
            EXPECT_NE(std::string(error.what()).find(c.says), std::string::npos)
                << c.name << ": " << error.what();
            EXPECT_NE(std::string(error.what()).find("test.toml"), std::string::npos) << c.name;
        }
    }
}

// --- NodeAgent against a scripted coordinator on loopback -----------------------------------

// A listening TCP socket on 127.0.0.1 playing punchcoord line by line.
class ScriptedCoordinator {
public:
    ScriptedCoordinator() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(listener_, 4), 0);
        socklen_t length = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &length);
        port_ = ntohs(a.sin_port);
    }
    ~ScriptedCoordinator() {
        if (connection_ >= 0) ::close(connection_);
        ::close(listener_);
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    bool accept(control::NodeAgent& agent) {
        for (int i = 0; i < 200; ++i) {
            agent.poll();
            pollfd p{listener_, POLLIN, 0};
            if (::poll(&p, 1, 10) == 1) {
                if (connection_ >= 0) ::close(connection_);
                connection_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                buffer_.clear();
                return connection_ >= 0;
            }
        }
        return false;
    }
    // The next line the agent sends, polling the agent meanwhile.
    std::optional<json> line(control::NodeAgent& agent) {
        for (int i = 0; i < 200; ++i) {
            const std::size_t end = buffer_.find('\n');
            if (end != std::string::npos) {
                const std::string text = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                return json::parse(text);
            }
            agent.poll();
            pollfd p{connection_, POLLIN, 0};
            if (::poll(&p, 1, 10) == 1) {
                char chunk[4096];
                const ssize_t n = ::recv(connection_, chunk, sizeof chunk, 0);
                if (n <= 0) return std::nullopt;
                buffer_.append(chunk, static_cast<std::size_t>(n));
            }
        }
        return std::nullopt;
    }
    void send(const std::string& text) {
        ASSERT_EQ(::send(connection_, text.data(), text.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(text.size()));
    }
    void reply(const json& request, json fields) {
        fields["id"] = request["id"];
        fields["op"] = request["op"];
        send(fields.dump() + "\n");
    }
    // Whether the agent has sent nothing that was not read yet (polled for a moment).
    bool quiet(control::NodeAgent& agent) {
        if (!buffer_.empty()) return false;
        agent.poll();
        pollfd p{connection_, POLLIN, 0};
        return ::poll(&p, 1, 50) == 0;
    }
    void hang_up() {
        ::close(connection_);
        connection_ = -1;
    }
    // Polls the agent until `done` or ~2 s.
    static bool until(control::NodeAgent& agent, const std::function<bool()>& done) {
        for (int i = 0; i < 200 && !done(); ++i) {
            agent.poll();
            pollfd p{agent.fd(), agent.events(), 0};
            ::poll(&p, agent.fd() >= 0 ? 1 : 0, 10);
        }
        return done();
    }

private:
    int listener_ = -1;
    int connection_ = -1;
    std::uint16_t port_ = 0;
    std::string buffer_;
};

control::NodeAgentConfig agent_config(std::uint16_t port) {
    control::NodeAgentConfig config;
    config.coordinator = "127.0.0.1:" + std::to_string(port);
    config.coordinator_address = address("127.0.0.1", port);
    config.local = node_local;
    config.public_address = address("203.0.113.5", 3480);
    config.region = "eu-west";
    config.node_secret = "node secret";
    config.token_secret = bytes(secret_text);
    return config;
}

TEST(NodeAgent, RegistersHeartbeatsAndRegistersAgainAfterExpiry) {
    ScriptedCoordinator coordinator;
    ManualClock clock;
    RecordingSender sender(clock);
    std::uint32_t load = 120;
    control::NodeAgent agent(agent_config(coordinator.port()), clock, sender,
                             [&] { return load; }, [] { return now_unix; });
    ASSERT_TRUE(coordinator.accept(agent));
    auto request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "register");
    EXPECT_EQ((*request)["role"], "sfu");
    EXPECT_EQ((*request)["address"], "203.0.113.5:3480");
    EXPECT_EQ((*request)["nat_type"], "none");
    EXPECT_EQ((*request)["region"], "eu-west");
    EXPECT_EQ((*request)["load"], 120);
    EXPECT_EQ((*request)["secret"], "node secret");
    coordinator.reply(*request, {{"ok", true}, {"node_id", 3}, {"ttl_ms", 3000}});
    ASSERT_TRUE(ScriptedCoordinator::until(
        agent, [&] { return agent.state() == control::NodeAgentState::registered; }));
    EXPECT_EQ(agent.node_id(), 3u);

    // ttl/3 = 1 s later, a heartbeat with the current load; none before.
    load = 300;
    clock.advance(999ms);
    agent.poll();
    clock.advance(1ms);
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "heartbeat");
    EXPECT_EQ((*request)["load"], 300);
    coordinator.reply(*request, {{"ok", true}, {"ttl_ms", 3000}});
    ASSERT_TRUE(
        ScriptedCoordinator::until(agent, [&] { return agent.counters().heartbeats == 1; }));

    // Hostile or unknown lines: counted, nothing breaks.
    coordinator.send("not json\n[1,2]\n{\"event\": \"unknown\"}\n" + std::string(40, '[') + "\n");
    ASSERT_TRUE(ScriptedCoordinator::until(agent, [&] { return agent.counters().bad_lines == 3; }));
    EXPECT_EQ(agent.state(), control::NodeAgentState::registered);

    // Expired: register again at once.
    coordinator.send(R"({"event": "node_expired", "message": "no heartbeat"})"
                     "\n");
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "register");
    EXPECT_EQ(agent.counters().expiries, 1u);
    coordinator.reply(*request, {{"ok", true}, {"node_id", 4}, {"ttl_ms", 3000}});
    ASSERT_TRUE(ScriptedCoordinator::until(agent, [&] { return agent.node_id() == 4u; }));

    // A heartbeat answered not_found: register again too.
    clock.advance(1s);
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "heartbeat");
    coordinator.reply(*request, {{"ok", false},
                                 {"error", {{"code", "not_found"}, {"message", "expired"}}}});
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "register");
    EXPECT_EQ(agent.counters().expiries, 2u);
}

TEST(NodeAgent, DrainingReportsFullLoadAtOnceAndUndrainTheRealLoad) {
    ScriptedCoordinator coordinator;
    ManualClock clock;
    RecordingSender sender(clock);
    control::NodeAgent agent(agent_config(coordinator.port()), clock, sender,
                             [] { return 120u; }, [] { return now_unix; });
    ASSERT_TRUE(coordinator.accept(agent));
    auto request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["load"], 120);
    // Drained while the register is on its way: a heartbeat follows the registration at once.
    agent.set_draining(true);
    EXPECT_TRUE(coordinator.quiet(agent)) << "not registered yet: nothing to send";
    coordinator.reply(*request, {{"ok", true}, {"node_id", 3}, {"ttl_ms", 3000}});
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "heartbeat");
    EXPECT_EQ((*request)["load"], control::NodeAgent::draining_load);
    coordinator.reply(*request, {{"ok", true}, {"ttl_ms", 3000}});
    ASSERT_TRUE(
        ScriptedCoordinator::until(agent, [&] { return agent.counters().heartbeats == 1; }));
    EXPECT_TRUE(agent.status()["draining"]);
    // The periodic heartbeat says it again; the same state again sends nothing.
    agent.set_draining(true);
    EXPECT_TRUE(coordinator.quiet(agent));
    clock.advance(1s);
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["load"], control::NodeAgent::draining_load);
    coordinator.reply(*request, {{"ok", true}, {"ttl_ms", 3000}});
    ASSERT_TRUE(
        ScriptedCoordinator::until(agent, [&] { return agent.counters().heartbeats == 2; }));
    // Undrained while registered: the real load at once, not a ttl/3 later.
    agent.set_draining(false);
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "heartbeat");
    EXPECT_EQ((*request)["load"], 120);
    EXPECT_FALSE(agent.status()["draining"]);
    // A register after an expiry carries the state too.
    agent.set_draining(true);
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["load"], control::NodeAgent::draining_load);
    coordinator.send(R"({"event": "node_expired", "message": "no heartbeat"})"
                     "\n");
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "register");
    EXPECT_EQ((*request)["load"], control::NodeAgent::draining_load);
}

// An agent with the default configuration, connected to a scripted coordinator, its register
// request read.
class NodeAgentConnected : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(coordinator.accept(agent));
        request = coordinator.line(agent);
        ASSERT_TRUE(request);
    }
    ScriptedCoordinator coordinator;
    ManualClock clock;
    RecordingSender sender{clock};
    control::NodeAgent agent{agent_config(coordinator.port()), clock, sender,
                             [] { return 0u; }, [] { return now_unix; }};
    std::optional<json> request;
};

TEST_F(NodeAgentConnected, ReadsOnlyWellTypedReplyFields) {
    // "ok" as a string is not ok: refused, reconnect.
    coordinator.reply(*request, {{"ok", "true"}, {"node_id", 1}});
    ASSERT_TRUE(ScriptedCoordinator::until(agent, [&] { return agent.fd() == -1; }));
    EXPECT_EQ(agent.counters().register_refusals, 1u);
    clock.advance(1s);
    ASSERT_TRUE(coordinator.accept(agent));
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    // A negative ttl is no ttl: the default 15 s, a heartbeat 5 s later and not before.
    coordinator.reply(*request, {{"ok", true}, {"node_id", -1}, {"ttl_ms", -5}});
    ASSERT_TRUE(ScriptedCoordinator::until(
        agent, [&] { return agent.state() == control::NodeAgentState::registered; }));
    EXPECT_EQ(agent.node_id(), 0u);
    clock.advance(4999ms);
    EXPECT_TRUE(coordinator.quiet(agent));
    clock.advance(1ms);
    request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "heartbeat");
}

TEST_F(NodeAgentConnected, PunchesOnOrderAndCountsBadOrders) {
    coordinator.reply(*request, {{"ok", true}, {"node_id", 1}, {"ttl_ms", 15000}});
    const json order = {{"event", "sfu_punch"},
                        {"session", "00c0ffee12345678"},
                        {"participant", "alice"},
                        {"username", username},
                        {"addresses", {"198.51.100.9:6000"}}};
    json expired = order;
    expired["username"] = "1:00c0ffee12345678:alice";
    coordinator.send(expired.dump() + "\n" + order.dump() + "\n");
    ASSERT_TRUE(ScriptedCoordinator::until(agent, [&] { return !sender.sent.empty(); }));
    EXPECT_EQ(agent.counters().punch_events, 1u);
    EXPECT_EQ(agent.counters().punch_events_rejected[static_cast<std::size_t>(
                  control::PunchEventRejection::expired)],
              1u);
    EXPECT_EQ(sender.sent[0].to, address("198.51.100.9", 6000));
    // The answer, handed back by the owner, ends the target.
    EXPECT_TRUE(agent.on_datagram(
        address("198.51.100.9", 6000),
        binding_response(sender.sent[0].datagram, address("203.0.113.5", 3480), std::nullopt,
                         password_of(secret_text, username))));
    EXPECT_EQ(agent.punch_counters().targets_answered, 1u);
    EXPECT_FALSE(agent.on_datagram(address("198.51.100.9", 6000), bytes("media")));
    EXPECT_EQ(agent.counters().datagrams_ignored, 1u);
    EXPECT_EQ(agent.status()["punch"]["answers"], 1);
}

// An order the coordinator gave before it heard of a drain opens nothing: the node would answer
// the participant's admission 508. Undrained, the same order punches again.
TEST_F(NodeAgentConnected, ADrainingNodeDropsPunchOrders) {
    coordinator.reply(*request, {{"ok", true}, {"node_id", 1}, {"ttl_ms", 15000}});
    ASSERT_TRUE(ScriptedCoordinator::until(
        agent, [&] { return agent.state() == control::NodeAgentState::registered; }));
    const json order = {{"event", "sfu_punch"},
                        {"session", "00c0ffee12345678"},
                        {"participant", "alice"},
                        {"username", username},
                        {"addresses", {"198.51.100.9:6000"}}};
    const auto draining = static_cast<std::size_t>(control::PunchEventRejection::draining);
    agent.set_draining(true);
    request = coordinator.line(agent);  // the heartbeat with the full load
    ASSERT_TRUE(request);
    coordinator.send(order.dump() + "\n");
    ASSERT_TRUE(ScriptedCoordinator::until(
        agent, [&] { return agent.counters().punch_events_rejected[draining] == 1; }));
    EXPECT_EQ(agent.counters().punch_events, 0u);
    clock.advance(100ms);
    agent.poll();
    EXPECT_TRUE(sender.sent.empty());
    EXPECT_EQ(agent.status()["counters"]["punch_events_rejected"]["draining"], 1);
    agent.set_draining(false);
    coordinator.send(order.dump() + "\n");
    ASSERT_TRUE(ScriptedCoordinator::until(agent, [&] { return !sender.sent.empty(); }));
    EXPECT_EQ(agent.counters().punch_events, 1u);
    EXPECT_EQ(sender.sent[0].to, address("198.51.100.9", 6000));
}

TEST(NodeAgent, ReconnectsWithBackoffAfterATimeoutOrAHangUp) {
    ScriptedCoordinator coordinator;
    ManualClock clock;
    RecordingSender sender(clock);
    control::NodeAgentConfig config = agent_config(coordinator.port());
    config.reconnect_min = 1s;
    config.reconnect_max = 4s;
    config.request_timeout = 5s;
    control::NodeAgent agent(config, clock, sender, [] { return 0u; }, [] { return now_unix; });
    ASSERT_TRUE(coordinator.accept(agent));
    ASSERT_TRUE(coordinator.line(agent));
    // No reply within request_timeout: the connection ends, the next try 1 s later.
    clock.advance(5s);
    agent.poll();
    EXPECT_EQ(agent.counters().request_timeouts, 1u);
    EXPECT_EQ(agent.state(), control::NodeAgentState::waiting);
    EXPECT_EQ(agent.fd(), -1);
    clock.advance(999ms);
    agent.poll();
    EXPECT_EQ(agent.fd(), -1);
    clock.advance(1ms);
    ASSERT_TRUE(coordinator.accept(agent));
    ASSERT_TRUE(coordinator.line(agent));
    // A hang-up: the next try 2 s later (doubled).
    coordinator.hang_up();
    ASSERT_TRUE(ScriptedCoordinator::until(agent, [&] { return agent.fd() == -1; }));
    EXPECT_EQ(agent.counters().disconnects, 2u);
    clock.advance(1999ms);
    agent.poll();
    EXPECT_EQ(agent.fd(), -1);
    clock.advance(1ms);
    ASSERT_TRUE(coordinator.accept(agent));
    auto request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["op"], "register");
}

TEST(NodeAgent, DiscoversBeforeItRegisters) {
    ScriptedCoordinator coordinator;
    ManualClock clock;
    RecordingSender sender(clock);
    control::NodeAgentConfig config = agent_config(coordinator.port());
    config.public_address.reset();
    config.stun_server = primary;
    config.discovery_policy = {100ms, 7, 16, 1s};
    control::NodeAgent agent(config, clock, sender, [] { return 0u; }, [] { return now_unix; });
    agent.poll();
    ASSERT_EQ(sender.sent.size(), 1u);
    EXPECT_EQ(agent.state(), control::NodeAgentState::discovering);
    EXPECT_EQ(agent.fd(), -1);  // nothing to register yet
    // A full cone: every test answered from where the NAT lets anything in.
    std::size_t seen = 0;
    const stun::Address mapped = address("203.0.113.50", 40000);
    for (int i = 0; i < 10 && agent.state() == control::NodeAgentState::discovering; ++i) {
        for (; seen < sender.sent.size(); ++seen) {
            const auto& sent = sender.sent[seen];
            stun::Address from = sent.to;
            const std::uint32_t flags = change_flags(sent.datagram);
            if (flags & stun::change_ip) from.ip = alternate.ip;
            if (flags & stun::change_port) from.port = alternate.port;
            EXPECT_TRUE(
                agent.on_datagram(from, binding_response(sent.datagram, mapped, alternate)));
        }
        clock.advance(10ms);
        agent.poll();
    }
    ASSERT_TRUE(coordinator.accept(agent));
    auto request = coordinator.line(agent);
    ASSERT_TRUE(request);
    EXPECT_EQ((*request)["address"], "203.0.113.50:40000");
    EXPECT_EQ((*request)["nat_type"], "full_cone");
    EXPECT_EQ(agent.status()["discovery"]["filtering"], "endpoint_independent");
}

}  // namespace
