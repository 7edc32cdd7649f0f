// Tests for control/engine_commands.cc: /status, /stats and /allocations over an EngineView of
// fake counters and real relay shards (allocations inserted into their tables), on injected
// clocks; through the Registry, as the socket runs them.
#include "control/engine_commands.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "control/registry.h"
#include "engine/rate_limit.h"
#include "engine/relay_table.h"
#include "engine/sfu_role.h"
#include "stun/address.h"

namespace control {
namespace {

using nlohmann::json;

stun::Address address(const char* ip, std::uint16_t port) {
    stun::Address a;
    EXPECT_TRUE(stun::Address::from_string(ip, port, a)) << ip;
    return a;
}

constexpr std::array<std::byte, 16> md5_key{};

class EngineCommandsTest : public testing::Test {
protected:
    void SetUp() override {
        config_.ports.push_back({});
        config_.ports[0].device = "net_ring0";
        config_.ports[0].ipv4 = {address("203.0.113.2", 0), address("203.0.113.3", 0)};
        config_.ports[0].ipv6 = {address("2001:db8::2", 0)};
        config_.relay.enabled = true;
        // Long-term users, whose names the listing knows from their hashes.
        config_.relay.users = {{"alice", "alice-password"}, {"bob", "bob-password"}};
        const auto rate = engine::RateLimit::make(1, 3, 10);
        for (unsigned w = 0; w < 2; ++w) {
            engine::RelayTableLimits limits;
            limits.capacity = 8;
            limits.first_relay_port = static_cast<std::uint16_t>(50000 + 100 * w);
            limits.relay_port_count = 100;
            limits.peer_entries = 16;
            limits.reservations = 1;
            limits.ticks_per_second = 10;
            limits.seed = 3 + w;
            shards_.push_back(std::make_unique<engine::RelayShard>(limits, *rate, 16, 5 + w));
        }
        view_.version = "9.9.9";
        view_.config = &config_;
        view_.main_lcore = 0;
        for (unsigned w = 0; w < 2; ++w)
            view_.cores.push_back({w + 1, &counters_[w], shards_[w].get()});
        view_.ports = [] {
            return std::vector<PortView>{
                {"net_ring0", 0, "02:00:00:00:00:02", true, 10000, true, 2, true}};
        };
        view_.now_ms = [this] { return now_ms_; };
        view_.start_ms = 1000;
        view_.relay_now = [this] { return relay_now_; };
        view_.relay_ticks_per_second = 10;

        insert(0, "alice", address("203.0.113.10", 40000), engine::relay_ipv4);
        insert(0, "alice", address("203.0.113.10", 40001), engine::relay_ipv4);
        insert(0, "bob", address("203.0.113.11", 40000), engine::relay_ipv4);
        // A TURN REST username, which no configuration names: listed by its hash.
        insert(1, rest_user, address("2001:db8::10", 5000),
               engine::relay_ipv4 | engine::relay_ipv6);
    }

    void insert(unsigned worker, const char* user, const stun::Address& client,
                std::uint8_t families) {
        const stun::Address server = client.family == stun::AddressFamily::ipv4
                                         ? address("203.0.113.2", 3478)
                                         : address("2001:db8::2", 3478);
        engine::RelayTable::NewAllocation a;
        a.key = *engine::FiveTuple::make(client, server);
        a.username = user;
        a.integrity_key = md5_key;
        a.families = families;
        a.expiry = relay_now_ + 600;  // 60 s at 10 ticks a second
        ASSERT_EQ(shards_[worker]->table().insert(a).status,
                  engine::RelayTable::InsertStatus::inserted);
    }

    // The workers' side of /allocations/kill: orders queue per worker and are carried out
    // on the shard, as engine/worker.cc does, when the control thread looks for the
    // acknowledgement (unless the worker is "stuck"); the wait's pause moves the clock.
    void enable_kill() {
        queued_.resize(2);
        acks_.assign(2, 0);
        view_.send_kill = [this](std::size_t core, const engine::RelayKill& kill) {
            if (queued_[core].size() == ring_size_) return false;
            queued_[core].push_back(kill);
            return true;
        };
        view_.kill_done = [this](std::size_t core) {
            if (!stuck_[core]) {
                for (const engine::RelayKill& kill : queued_[core]) {
                    std::uint64_t killed = 0;
                    if (kill.target == engine::RelayKill::Target::allocation) {
                        killed = engine::kill_allocation(*shards_[core], kill.slot, kill.key);
                    } else {
                        std::uint32_t cursor = 0;
                        killed = engine::kill_user_allocations(*shards_[core], kill.username_hash,
                                                               kill.username_length, cursor, 1000)
                                     .killed;
                    }
                    acks_[core] = std::uint64_t{kill.sequence} << 32 | killed;
                }
                queued_[core].clear();
            }
            return acks_[core];
        };
        view_.pause = [this] { now_ms_ += 10; };
        view_.kill_wait_ms = 250;
    }
    std::vector<std::vector<engine::RelayKill>> queued_;
    std::vector<std::uint64_t> acks_;
    std::array<bool, 2> stuck_{};
    std::size_t ring_size_ = 64;

    // Runs a request line through a registry holding the commands.
    json run(const std::string& line) {
        if (!commands_) {
            commands_ = std::make_unique<EngineCommands>(view_);
            commands_->register_in(registry_);
        }
        return registry_.handle_line(line);
    }
    json result(const std::string& line) {
        const json r = run(line);
        EXPECT_EQ(r["ok"], true) << r.dump();
        return r["result"];
    }
    // The names listed; "#" for one the engine knows by its hash only.
    std::vector<std::string> users(const json& page) {
        std::vector<std::string> out;
        for (const json& a : page["allocations"])
            out.push_back(a["user"].is_string() ? a["user"].get<std::string>() : "#");
        return out;
    }
    static constexpr const char* rest_user = "1800000000:carol";

    engine::EngineConfig config_;
    std::array<engine::CoreCounters, 2> counters_{};
    std::vector<std::unique_ptr<engine::RelayShard>> shards_;
    EngineView view_;
    std::uint64_t now_ms_ = 1000;
    std::uint64_t relay_now_ = 1000;
    Registry registry_;
    std::unique_ptr<EngineCommands> commands_;
};

TEST_F(EngineCommandsTest, StatusDescribesTheEngine) {
    now_ms_ = 62500;
    const json r = result(R"({"command": "/status"})");
    EXPECT_EQ(r["version"], "9.9.9");
    EXPECT_DOUBLE_EQ(r["uptime_s"].get<double>(), 61.5);
    EXPECT_EQ(r["cores"]["main"], 0);
    EXPECT_EQ(r["cores"]["workers"], (json{1, 2}));
    EXPECT_EQ(r["roles"], (json{"stun", "relay"}));
    EXPECT_EQ(r["stun"]["port"], 3478);
    EXPECT_EQ(r["relay"]["ports"], "49152-65535");
    ASSERT_EQ(r["ports"].size(), 1u);
    const json& port = r["ports"][0];
    EXPECT_EQ(port["device"], "net_ring0");
    EXPECT_EQ(port["ipv4"], (json{"203.0.113.2", "203.0.113.3"}));
    EXPECT_EQ(port["ipv6"], (json{"2001:db8::2"}));
    EXPECT_EQ(port["link"]["up"], true);
    EXPECT_EQ(port["link"]["speed_mbps"], 10000);
    EXPECT_EQ(port["mac"], "02:00:00:00:00:02");
    EXPECT_EQ(port["steering"], "software");
    EXPECT_FALSE(r.contains("control"));
}

TEST_F(EngineCommandsTest, StatsRatesFromTheTicksHistory) {
    now_ms_ = 1000;
    run(R"({"command": "/help"})");  // makes the commands: first sample at 1000 ms, all zero
    counters_[0].rx_packets = 3000;
    counters_[0].rx_bytes = 30000;
    counters_[1].rx_packets = 1000;
    counters_[1].drops[static_cast<std::size_t>(engine::DropReason::no_service)] = 1000;
    now_ms_ = 3000;
    commands_->tick();  // a sample at 3000 ms
    now_ms_ = 4000;
    const json r = result(R"({"command": "/stats", "args": {"window": 10}})");
    // The window asked for is older than the history: its whole age, 3 s.
    EXPECT_DOUBLE_EQ(r["window_s"].get<double>(), 3.0);
    EXPECT_DOUBLE_EQ(r["cores"][0]["rx"]["pps"].get<double>(), 1000.0);
    EXPECT_DOUBLE_EQ(r["cores"][0]["rx"]["bps"].get<double>(), 80000.0);
    EXPECT_EQ(r["cores"][0]["allocations"]["count"], 3);
    EXPECT_EQ(r["cores"][0]["allocations"]["capacity"], 8);
    EXPECT_EQ(r["cores"][1]["allocations"]["count"], 1);
    EXPECT_EQ(r["total"]["rx"]["packets"], 4000);
    EXPECT_EQ(r["total"]["allocations"]["count"], 4);
    EXPECT_EQ(r["total"]["drops"][0]["reason"], "no_service");
    // A window of one second: the sample at 3000 ms is its baseline; nothing changed since.
    const json recent = result(R"({"command": "/stats", "args": {"window": 1}})");
    EXPECT_DOUBLE_EQ(recent["window_s"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(recent["total"]["rx"]["pps"].get<double>(), 0.0);
}

TEST_F(EngineCommandsTest, AllocationsListsEachWithItsFields) {
    relay_now_ = 1100;  // 10 s later: 50 s left
    const json r = result(R"({"command": "/allocations"})");
    EXPECT_EQ(r["matched"], 4);
    EXPECT_EQ(r["skipped"], 0);
    EXPECT_TRUE(r["next"].is_null());
    EXPECT_EQ(users(r), (std::vector<std::string>{"alice", "alice", "bob", "#"}));
    const json& first = r["allocations"][0];
    EXPECT_EQ(first["lcore"], 1);
    EXPECT_EQ(first["client"], "203.0.113.10:40000");
    EXPECT_EQ(first["server"], "203.0.113.2:3478");
    EXPECT_EQ(first["families"], (json{"ipv4"}));
    const std::string relayed = first["relayed"][0];
    EXPECT_EQ(relayed, "203.0.113.2:" + first["relay_port"].dump());
    EXPECT_EQ(first["expires_in_s"], 50);
    EXPECT_EQ(first["permissions"], 0);
    EXPECT_EQ(first["to_peer"]["packets"], 0);
    const json& carol = r["allocations"][3];
    EXPECT_EQ(carol["lcore"], 2);
    EXPECT_EQ(carol["client"], "[2001:db8::10]:5000");
    EXPECT_EQ(carol["families"], (json{"ipv4", "ipv6"}));
    EXPECT_EQ(carol["relayed"].size(), 2u);
    EXPECT_EQ(carol["user_hash"].get<std::string>().size(), 16u);
    EXPECT_NE(carol["user_hash"], first["user_hash"]);
    // Asked for by name, the REST username is matched by its hash and shown.
    EXPECT_EQ(users(result(R"({"command": "/allocations", "args": {"user": "1800000000:carol"}})")),
              (std::vector<std::string>{rest_user}));
}

TEST_F(EngineCommandsTest, AllocationsFilterByUserClientAndCore) {
    EXPECT_EQ(users(result(R"({"command": "/allocations", "args": {"user": "alice"}})")),
              (std::vector<std::string>{"alice", "alice"}));
    EXPECT_EQ(result(R"({"command": "/allocations", "args": {"user": "nobody"}})")["matched"], 0);
    EXPECT_EQ(users(result(R"({"command": "/allocations", "args": {"client": "203.0.113.10"}})")),
              (std::vector<std::string>{"alice", "alice"}));
    const json one =
        result(R"({"command": "/allocations", "args": {"client": "203.0.113.10:40001"}})");
    ASSERT_EQ(one["allocations"].size(), 1u);
    EXPECT_EQ(one["allocations"][0]["client"], "203.0.113.10:40001");
    EXPECT_EQ(
        users(result(R"({"command": "/allocations", "args": {"client": "[2001:db8::10]:5000"}})")),
        (std::vector<std::string>{"#"}));
    EXPECT_EQ(users(result(R"({"command": "/allocations", "args": {"client": "2001:db8::10"}})")),
              (std::vector<std::string>{"#"}));
    EXPECT_EQ(users(result(R"({"command": "/allocations", "args": {"core": 2}})")),
              (std::vector<std::string>{"#"}));
    EXPECT_EQ(users(result(R"({"command": "/allocations", "args": {"core": 1, "user": "bob"}})")),
              (std::vector<std::string>{"bob"}));
}

TEST_F(EngineCommandsTest, AllocationsPageWithLimitAndAfter) {
    const json first = result(R"({"command": "/allocations", "args": {"limit": 3}})");
    EXPECT_EQ(users(first), (std::vector<std::string>{"alice", "alice", "bob"}));
    EXPECT_EQ(first["matched"], 4);
    ASSERT_TRUE(first["next"].is_string());
    EXPECT_EQ(first["next"], "1:" + first["allocations"][2]["slot"].dump());
    const json second = result(R"({"command": "/allocations", "args": {"limit": 3, "after": )" +
                               first["next"].dump() + "}}");
    EXPECT_EQ(users(second), (std::vector<std::string>{"#"}));
    EXPECT_TRUE(second["next"].is_null());
    // A page that ends exactly at the last match has no next page.
    const json exact = result(R"({"command": "/allocations", "args": {"limit": 4}})");
    EXPECT_TRUE(exact["next"].is_null());
    // Filters apply on every page.
    const json alice =
        result(R"({"command": "/allocations", "args": {"user": "alice", "limit": 1}})");
    const json alice2 =
        result(R"({"command": "/allocations", "args": {"user": "alice", "limit": 1, "after": )" +
               alice["next"].dump() + "}}");
    EXPECT_EQ(alice2["allocations"][0]["client"], "203.0.113.10:40001");
    EXPECT_TRUE(alice2["next"].is_null());
}

struct AllocationsError {
    std::string name;
    std::string args;
    std::string code;
    std::string message;
    std::string hint;
};

void PrintTo(const AllocationsError& c, std::ostream* out) { *out << c.name; }

class EngineCommandsError : public EngineCommandsTest,
                            public testing::WithParamInterface<AllocationsError> {};

TEST_P(EngineCommandsError, AnswersTheCodeMessageAndHint) {
    const AllocationsError& c = GetParam();
    const json r = run(R"({"command": "/allocations", "args": )" + c.args + "}");
    ASSERT_EQ(r["ok"], false) << r.dump();
    EXPECT_EQ(r["error"]["code"], c.code);
    const std::string message = r["error"]["message"];
    EXPECT_NE(message.find(c.message), std::string::npos) << message;
    EXPECT_EQ(r["error"]["hint"], c.hint);
}

const std::string client_message =
    R"(argument "client" of /allocations: expected an IP address or IP:port, e.g. 203.0.113.10, )"
    R"(203.0.113.10:50000 or [2001:db8::1]:50000, got )";
const std::string client_hint = "punchctl allocations --client 203.0.113.10:50000";
const std::string after_hint = "punchctl allocations --limit 100";

INSTANTIATE_TEST_SUITE_P(
    Allocations, EngineCommandsError,
    testing::Values(
        AllocationsError{"ClientNotAnAddress", R"({"client": "relay.example"})", "bad_argument",
                         client_message + R"("relay.example")", client_hint},
        AllocationsError{"ClientShortIpv4", R"({"client": "203.0.113"})", "bad_argument",
                         client_message, client_hint},
        AllocationsError{"ClientPortZero", R"({"client": "203.0.113.10:0"})", "bad_argument",
                         client_message, client_hint},
        AllocationsError{"ClientPortTooHigh", R"({"client": "203.0.113.10:65536"})", "bad_argument",
                         client_message, client_hint},
        AllocationsError{"ClientPortEmpty", R"({"client": "203.0.113.10:"})", "bad_argument",
                         client_message, client_hint},
        AllocationsError{"ClientIpv6WithoutBrackets", R"({"client": "2001:db8::10:5000:1:2:3:4"})",
                         "bad_argument", client_message, client_hint},
        AllocationsError{"ClientBracketsWithoutPort", R"({"client": "[2001:db8::10]"})",
                         "bad_argument", client_message, client_hint},
        AllocationsError{"ClientBracketedIpv4", R"({"client": "[203.0.113.10]:5000"})",
                         "bad_argument", client_message, client_hint},
        AllocationsError{
            "CoreNotAWorker", R"({"core": 0})", "bad_argument",
            R"(argument "core" of /allocations: no worker runs on lcore 0; the workers' lcores: 1, 2)",
            "punchctl allocations --core 1"},
        AllocationsError{"CoreOutOfRange", R"({"core": 1024})", "bad_argument",
                         "expected an integer 0..1023, got 1024", "punchctl allocations --core 1"},
        AllocationsError{"LimitZero", R"({"limit": 0})", "bad_argument",
                         "expected an integer 1..1000, got 0", "punchctl allocations --limit 50"},
        AllocationsError{"LimitAboveAPage", R"({"limit": 1001})", "bad_argument", "got 1001",
                         "punchctl allocations --limit 50"},
        AllocationsError{"UserEmpty", R"({"user": ""})", "bad_argument",
                         "expected a string of 1..512 bytes", "punchctl allocations --user alice"},
        AllocationsError{
            "AfterWithoutColon", R"({"after": "137"})", "bad_argument",
            R"(argument "after" of /allocations: expected LCORE:SLOT as a reply's "next" gave it, e.g. 1:37 (the workers' lcores: 1, 2), got "137")",
            after_hint},
        AllocationsError{"AfterUnknownLcore", R"({"after": "7:3"})", "bad_argument", R"(got "7:3")",
                         after_hint},
        AllocationsError{"AfterNotNumbers", R"({"after": "a:b"})", "bad_argument", R"(got "a:b")",
                         after_hint},
        AllocationsError{"AfterNegative", R"({"after": "1:-3"})", "bad_argument", R"(got "1:-3")",
                         after_hint},
        AllocationsError{
            "UnknownFilter", R"({"peer": "198.51.100.1"})", "unknown_argument",
            R"(/allocations takes no argument "peer"; it takes: user, client, core, limit, after)",
            "punchctl help allocations"}),
    [](const testing::TestParamInfo<AllocationsError>& info) { return info.param.name; });

TEST_F(EngineCommandsTest, KillOneById) {
    enable_kill();
    const json listed =
        result(R"({"command": "/allocations", "args": {"client": "203.0.113.11"}})");
    ASSERT_EQ(listed["allocations"].size(), 1u);
    const std::string id = listed["allocations"][0]["id"];
    EXPECT_EQ(id, "1:" + listed["allocations"][0]["slot"].dump());
    const json killed =
        result(R"({"command": "/allocations/kill", "args": {"id": ")" + id + R"("}})");
    EXPECT_EQ(killed["killed"], 1);
    EXPECT_EQ(killed["cores"], json::parse(R"([{"lcore": 1, "killed": 1, "state": "done"}])"));
    EXPECT_EQ(killed["unfinished"], json::array());
    EXPECT_EQ(users(result(R"({"command": "/allocations"})")),
              (std::vector<std::string>{"alice", "alice", "#"}));
    EXPECT_EQ(shards_[0]->counters().killed, 1u);
    // Gone: the same id again names nothing.
    const json again = run(R"({"command": "/allocations/kill", "args": {"id": ")" + id + R"("}})");
    EXPECT_EQ(again["error"]["code"], "not_found");
    EXPECT_EQ(again["error"]["message"], "no allocation " + id + " (it has gone, or never was)");
    EXPECT_EQ(again["error"]["hint"], "punchctl allocations");
}

TEST_F(EngineCommandsTest, KillByClientAddressOnEveryWorker) {
    enable_kill();
    const json killed = result(
        R"({"command": "/allocations/kill", "args": {"client": "[2001:db8::10]:5000"}})");
    EXPECT_EQ(killed["killed"], 1);
    EXPECT_EQ(killed["cores"][0]["lcore"], 2);
    EXPECT_EQ(shards_[1]->table().size(), 0u);
    EXPECT_EQ(shards_[0]->table().size(), 3u);
    const json none =
        run(R"({"command": "/allocations/kill", "args": {"client": "203.0.113.10:40009"}})");
    EXPECT_EQ(none["error"]["code"], "not_found");
    EXPECT_EQ(none["error"]["message"], "no allocation of client 203.0.113.10:40009");
    EXPECT_EQ(none["error"]["hint"], "punchctl allocations --client 203.0.113.10");
}

TEST_F(EngineCommandsTest, KillEveryAllocationOfAUser) {
    enable_kill();
    const json killed =
        result(R"({"command": "/allocations/kill", "args": {"user": "alice"}})");
    EXPECT_EQ(killed["killed"], 2);
    EXPECT_EQ(killed["cores"],
              json::parse(R"([{"lcore": 1, "killed": 2, "state": "done"},
                              {"lcore": 2, "killed": 0, "state": "done"}])"));
    EXPECT_EQ(users(result(R"({"command": "/allocations"})")),
              (std::vector<std::string>{"bob", "#"}));
    // A TURN REST name, known to the table by its hash only, on the worker named.
    EXPECT_EQ(result(R"({"command": "/allocations/kill", "args": {"user": ")" +
                     std::string(rest_user) + R"(", "core": 2}})")["killed"],
              1);
    const json none = run(R"({"command": "/allocations/kill", "args": {"user": "alice"}})");
    EXPECT_EQ(none["error"]["code"], "not_found");
    EXPECT_NE(none["error"]["message"].get<std::string>().find(
                  R"(user "alice" holds no allocation (names are matched by their keyed hash)"),
              std::string::npos);
}

TEST_F(EngineCommandsTest, KillWaitsABoundedTimeForAStuckWorker) {
    enable_kill();
    stuck_[0] = true;
    const std::uint64_t before = now_ms_;
    const json r = result(R"({"command": "/allocations/kill", "args": {"user": "alice"}})");
    // The wait ended at kill_wait_ms of the control thread's clock, not before, not much after.
    EXPECT_GE(now_ms_ - before, 250u);
    EXPECT_LE(now_ms_ - before, 260u);
    EXPECT_EQ(r["killed"], 0);
    EXPECT_EQ(r["unfinished"], json::array({1}));
    EXPECT_EQ(r["cores"][0]["state"], "working");
    EXPECT_EQ(shards_[0]->table().size(), 3u);
    // The order stays queued: the worker carries it out when it comes back, and the next
    // request's count is its own order's.
    stuck_[0] = false;
    const json next = result(R"({"command": "/allocations/kill", "args": {"user": "bob"}})");
    EXPECT_EQ(next["killed"], 1);
    EXPECT_EQ(shards_[0]->table().size(), 0u);
    // A full ring: the order is not sent, and the reply says so.
    stuck_[0] = true;
    ring_size_ = 0;
    const json full =
        result(R"({"command": "/allocations/kill", "args": {"user": "bob", "core": 1}})");
    EXPECT_EQ(full["cores"][0]["state"], "ring_full");
    EXPECT_EQ(full["unfinished"], json::array({1}));
}

TEST_F(EngineCommandsTest, KillErrorsNameTheArgument) {
    enable_kill();
    struct Case {
        std::string args, code, message, hint;
    };
    const std::vector<Case> cases = {
        {"{}", "missing_argument", R"(/allocations/kill needs what to kill: "id")",
         "punchctl allocations kill --id 1:37"},
        {R"({"id": "1:0", "user": "alice"})", "bad_argument", "takes one of",
         "punchctl allocations kill --user alice"},
        {R"({"id": "1-37"})", "bad_argument",
         R"(argument "id" of /allocations/kill: expected LCORE:SLOT as punchctl allocations )"
         R"(shows it)",
         "punchctl allocations"},
        {R"({"id": "7:0"})", "bad_argument", "(the workers' lcores: 1, 2)", "punchctl allocations"},
        {R"({"id": "1:99999"})", "not_found", "no allocation 1:99999", "punchctl allocations"},
        {R"({"id": "1:0", "core": 1})", "bad_argument", "an id names its lcore already",
         "punchctl allocations kill --id 1:0"},
        {R"({"client": "203.0.113.10"})", "bad_argument", "expected a client's IP:port",
         "punchctl allocations --client 203.0.113.10"},
        {R"({"user": "alice", "core": 5})", "bad_argument", "no worker runs on lcore 5",
         "punchctl allocations kill --core 1 --user alice"},
    };
    for (const Case& c : cases) {
        const json r = run(R"({"command": "/allocations/kill", "args": )" + c.args + "}");
        ASSERT_EQ(r["ok"], false) << c.args;
        EXPECT_EQ(r["error"]["code"], c.code) << c.args;
        EXPECT_NE(r["error"]["message"].get<std::string>().find(c.message), std::string::npos)
            << r["error"]["message"];
        EXPECT_EQ(r["error"]["hint"], c.hint) << c.args;
    }
    EXPECT_EQ(shards_[0]->table().size() + shards_[1]->table().size(), 4u);
    // Without the workers' command rings (an engine that does not relay has none).
    view_.send_kill = nullptr;
    const json r = run(R"({"command": "/allocations/kill", "args": {"user": "alice"}})");
    EXPECT_EQ(r["error"]["code"], "not_available");
}

TEST_F(EngineCommandsTest, AllocationsWithoutARelayIsNotAvailable) {
    for (CoreView& core : view_.cores) core.relay = nullptr;
    const json r = run(R"({"command": "/allocations"})");
    EXPECT_EQ(r["error"]["code"], "not_available");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("[relay] enabled = false"),
              std::string::npos);
    EXPECT_EQ(r["error"]["hint"], "punchctl status");
    // /stats still answers, without a table.
    EXPECT_TRUE(result(R"({"command": "/stats"})")["total"]["allocations"].is_null());
}

TEST_F(EngineCommandsTest, StatsWindowOutsideItsRange) {
    const json r = run(R"({"command": "/stats", "args": {"window": 301}})");
    EXPECT_EQ(r["error"]["code"], "bad_argument");
    EXPECT_EQ(r["error"]["hint"], "punchctl stats --window 10");
}

TEST_F(EngineCommandsTest, MetricsShowWhatStatsShows) {
    run(R"({"command": "/help"})");
    counters_[0].rx_packets = 3000;
    counters_[0].tx_packets = 2990;
    counters_[1].rx_packets = 1000;
    counters_[1].drops[static_cast<std::size_t>(engine::DropReason::no_service)] = 10;
    shards_[1]->counters().to_peer_packets = 77;
    now_ms_ = 62500;
    view_.start_unix_ms = 1790000000000;
    view_.cycles_per_second = 2000;
    const MetricsInput m = commands_->metrics();
    const json stats = result(R"({"command": "/stats"})");
    EXPECT_EQ(m.version, "9.9.9");
    EXPECT_DOUBLE_EQ(m.uptime_s, 61.5);
    EXPECT_DOUBLE_EQ(m.start_time_s, 1790000000.0);
    EXPECT_EQ(m.cycles_per_second, 2000u);
    ASSERT_EQ(m.stats.cores.size(), 2u);
    for (std::size_t c = 0; c < 2; ++c) {
        EXPECT_EQ(m.stats.cores[c].lcore, stats["cores"][c]["lcore"]);
        EXPECT_EQ(m.stats.cores[c].counters.rx_packets, stats["cores"][c]["rx"]["packets"]);
        EXPECT_EQ(m.stats.cores[c].counters.dropped(), stats["cores"][c]["dropped"]["packets"]);
        EXPECT_EQ(m.stats.cores[c].table.allocations, stats["cores"][c]["allocations"]["count"]);
    }
    ASSERT_EQ(m.relay.size(), 2u);
    EXPECT_EQ(m.relay[1].to_peer_packets, 77u);
    const std::string text = exposition(m);
    EXPECT_NE(text.find("punchline_rx_packets_total{core=\"1\"} 3000\n"), std::string::npos);
    EXPECT_NE(text.find("punchline_dropped_packets_total{core=\"2\",reason=\"no_service\"} 10\n"),
              std::string::npos);
    EXPECT_NE(text.find("punchline_relay_allocations{core=\"1\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("punchline_relay_packets_total{core=\"2\",direction=\"to_peer\"} 77\n"),
              std::string::npos);
    // Without a relay: no relay counters.
    for (CoreView& core : view_.cores) core.relay = nullptr;
    EXPECT_TRUE(commands_->metrics().relay.empty());
}

TEST_F(EngineCommandsTest, MetricsReadTheSfuShards) {
    run(R"({"command": "/help"})");
    // Without an SFU role: nothing of it.
    EXPECT_TRUE(commands_->metrics().sfu.empty());
    // The second worker alone has a shard: the first's entry is zero, the vector stays
    // parallel to the cores.
    const auto rate = engine::RateLimit::make(1, 3, 10);
    engine::SfuShard shard(16, 4, *rate, 16, 1, 11);
    for (const char* name : {"alice", "bob"}) {
        const std::uint16_t port = name[0] == 'a' ? 40000 : 40001;
        const auto key = engine::FiveTuple::make(address("198.51.100.1", port),
                                                 address("203.0.113.2", 3480));
        ASSERT_TRUE(key);
        ASSERT_NE(shard.table().insert(*key, 0xa1, engine::SfuParticipant::from(name), {}, 0),
                  engine::SfuTable::no_slot);
    }
    shard.counters().forwarded_packets = 21;
    shard.counters().legs_killed = 1;
    shard.counters().outcomes[static_cast<std::size_t>(engine::SfuOutcome::sfu_admitted)] = 2;
    view_.cores[1].sfu = &shard;
    const MetricsInput m = commands_->metrics();
    ASSERT_EQ(m.sfu.size(), 2u);
    EXPECT_EQ(m.sfu[0].legs, 0u);
    EXPECT_EQ(m.sfu[0].leg_capacity, 0u);
    EXPECT_EQ(m.sfu[0].counters.forwarded_packets, 0u);
    EXPECT_EQ(m.sfu[1].legs, 2u);
    EXPECT_EQ(m.sfu[1].leg_capacity, shard.table().capacity());
    EXPECT_EQ(m.sfu[1].counters.forwarded_packets, 21u);
    EXPECT_EQ(m.sfu[1].counters.legs_killed, 1u);
    const std::string text = exposition(m);
    EXPECT_NE(text.find("punchline_sfu_legs{core=\"2\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("punchline_sfu_forwarded_packets_total{core=\"2\"} 21\n"),
              std::string::npos);
    EXPECT_NE(
        text.find("punchline_sfu_admissions_total{core=\"2\",outcome=\"sfu_admitted\"} 2\n"),
        std::string::npos);
    view_.cores[1].sfu = nullptr;
}

}  // namespace
}  // namespace control
