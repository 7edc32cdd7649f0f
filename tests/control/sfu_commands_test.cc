// Tests for control/sfu_commands.cc: /sfu/sessions, /sfu/kill, /sfu/pause, /sfu/resume and
// /sfu/select over real SFU shards (legs inserted into their tables), a real membership builder
// fed the workers' join messages, and a fake command ring whose orders the test hands to
// engine::kill_leg as the worker would; through the Registry, as the socket runs them.
#include "control/sfu_commands.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "control/registry.h"
#include "engine/rate_limit.h"
#include "stun/address.h"

namespace control {
namespace {

using nlohmann::json;

stun::Address address(const char* ip, std::uint16_t port) {
    stun::Address a;
    EXPECT_TRUE(stun::Address::from_string(ip, port, a)) << ip;
    return a;
}

constexpr std::uint64_t session_a = 0xa1;
constexpr std::uint64_t session_b = 0xb2;

class SfuCommandsTest : public testing::Test {
protected:
    void SetUp() override {
        const auto rate = engine::RateLimit::make(1, 3, 10);
        for (std::uint16_t w = 0; w < 2; ++w)
            shards_.push_back(std::make_unique<engine::SfuShard>(16, 4, *rate, 16, w, 7 + w));
        builder_ = std::make_unique<engine::SfuMembershipBuilder>(4);
        for (unsigned w = 0; w < 2; ++w) view_.cores.push_back({w + 1, &counters_[w], nullptr});
        view_.now_ms = [] { return std::uint64_t{1000}; };
        SfuControl control;
        for (const auto& shard : shards_) control.shards.push_back(shard.get());
        control.builder = builder_.get();
        control.publish = [this] { ++publications_; };
        control.send_kill = [this](std::size_t worker, const engine::SfuKill& kill) {
            if (ring_full_) return false;
            orders_.emplace_back(worker, kill);
            return true;
        };
        control.now_ticks = [this] { return now_ticks_; };
        control.ticks_per_second = 10;
        commands_ = std::make_unique<SfuCommands>(view_, std::move(control));
        commands_->register_in(registry_);

        join(0, session_a, "alice", address("198.51.100.1", 40000));
        join(1, session_a, "bob", address("198.51.100.2", 40000));
        join(0, session_a, "carol", address("198.51.100.3", 40000));
        join(1, session_b, "dave", address("2001:db8::10", 5000));
    }

    // A leg admitted by worker `w` at tick 0 and its join applied to the model.
    void join(std::uint16_t w, std::uint64_t session, const char* name,
              const stun::Address& client) {
        const stun::Address server = client.family == stun::AddressFamily::ipv4
                                         ? address("203.0.113.2", 3480)
                                         : address("2001:db8::2", 3480);
        engine::SfuMessage m;
        m.key = *engine::FiveTuple::make(client, server);
        m.session = session;
        m.participant = engine::SfuParticipant::from(name);
        m.worker = w;
        m.slot = shards_[w]->table().insert(m.key, session, m.participant, {}, 0);
        ASSERT_NE(m.slot, engine::SfuTable::no_slot);
        ASSERT_EQ(builder_->join(m), engine::SfuMembershipBuilder::JoinResult::joined);
    }

    // What the workers do with the orders sent: engine::kill_leg, then the leave they post
    // applied to the model, as apply_sfu_messages() does.
    std::size_t carry_out() {
        std::size_t killed = 0;
        for (const auto& [worker, kill] : orders_) {
            killed += engine::kill_leg(*shards_[worker], kill) ? 1 : 0;
            engine::SfuMessage leave;
            while (shards_[worker]->pop(leave)) (void)builder_->leave(leave);
        }
        orders_.clear();
        return killed;
    }

    const engine::SfuMember* member(std::uint64_t session, std::string_view name) const {
        const auto it = builder_->sessions().find(session);
        if (it == builder_->sessions().end()) return nullptr;
        for (const engine::SfuMember& m : it->second.members)
            if (m.participant.view() == name) return &m;
        return nullptr;
    }

    json run(const json& request) { return registry_.handle_line(request.dump()); }
    json result(const std::string& command, const json& args = json::object()) {
        const json r = run({{"command", command}, {"args", args}});
        EXPECT_EQ(r["ok"], true) << r.dump();
        return r["result"];
    }
    std::string error(const std::string& command, const json& args = json::object()) {
        const json r = run({{"command", command}, {"args", args}});
        EXPECT_EQ(r["ok"], false) << r.dump();
        message = r["error"].value("message", "");
        hint = r["error"].value("hint", "");
        return r["error"].value("code", "");
    }

    std::vector<std::unique_ptr<engine::SfuShard>> shards_;
    std::unique_ptr<engine::SfuMembershipBuilder> builder_;
    std::array<engine::CoreCounters, 2> counters_{};
    EngineView view_;
    std::unique_ptr<SfuCommands> commands_;
    Registry registry_;
    std::vector<std::pair<std::size_t, engine::SfuKill>> orders_;
    bool ring_full_ = false;
    int publications_ = 0;
    std::uint64_t now_ticks_ = 0;
    std::string message, hint;
};

TEST_F(SfuCommandsTest, SessionsListEveryLegWithItsWorkerAddressesAndCounters) {
    const std::uint32_t slot = shards_[0]->table().find_participant(session_a, "alice");
    shards_[0]->table().at(slot).heard(20, 100);
    shards_[0]->table().at(slot).heard(30, 60);
    shards_[0]->table().at(slot).count_forwarded(2, 60);
    now_ticks_ = 55;
    const json r = result("/sfu/sessions");
    EXPECT_EQ(r["legs"], 4);
    ASSERT_EQ(r["sessions"].size(), 2u);
    EXPECT_EQ(r["sessions"][0]["session"], "00000000000000a1");
    EXPECT_EQ(r["sessions"][1]["session"], "00000000000000b2");
    const json& legs = r["sessions"][0]["legs"];
    ASSERT_EQ(legs.size(), 3u);
    // Worker 0's legs first (lcore 1), then worker 1's (lcore 2).
    EXPECT_EQ(legs[0]["participant"], "alice");
    EXPECT_EQ(legs[0]["client"], "198.51.100.1:40000");
    EXPECT_EQ(legs[0]["server"], "203.0.113.2:3480");
    EXPECT_EQ(legs[0]["lcore"], 1);
    EXPECT_EQ(legs[0]["member"], true);
    EXPECT_DOUBLE_EQ(legs[0]["idle_s"].get<double>(), 2.5);
    EXPECT_EQ(legs[0]["rx_packets"], 2);
    EXPECT_EQ(legs[0]["rx_bytes"], 160);
    EXPECT_EQ(legs[0]["forwarded_packets"], 2);
    EXPECT_EQ(legs[0]["forwarded_bytes"], 120);
    EXPECT_EQ(legs[1]["participant"], "carol");
    EXPECT_EQ(legs[2]["participant"], "bob");
    EXPECT_EQ(legs[2]["lcore"], 2);
    EXPECT_EQ(r["sessions"][1]["legs"][0]["client"], "[2001:db8::10]:5000");

    const json one = result("/sfu/sessions", {{"session", "B2"}});
    ASSERT_EQ(one["sessions"].size(), 1u);
    EXPECT_EQ(one["sessions"][0]["legs"][0]["participant"], "dave");
}

TEST_F(SfuCommandsTest, EachSessionHasItsLegsSummedAndEachLegItsAge) {
    // Alice and bob of session a1 carry traffic; carol is silent. Erin joins b2 at tick 35.
    const std::uint32_t alice = shards_[0]->table().find_participant(session_a, "alice");
    const std::uint32_t bob = shards_[1]->table().find_participant(session_a, "bob");
    shards_[0]->table().at(alice).heard(20, 100);
    shards_[0]->table().at(alice).count_forwarded(2, 100);
    shards_[0]->table().at(alice).count_filtered(1);
    shards_[1]->table().at(bob).heard(30, 40);
    shards_[1]->table().at(bob).count_forwarded(1, 40);
    const engine::FiveTuple erin =
        *engine::FiveTuple::make(address("198.51.100.9", 40000), address("203.0.113.2", 3480));
    ASSERT_NE(shards_[0]->table().insert(erin, session_b, engine::SfuParticipant::from("erin"),
                                         {}, 35),
              engine::SfuTable::no_slot);
    now_ticks_ = 55;
    const json r = result("/sfu/sessions");
    ASSERT_EQ(r["sessions"].size(), 2u);
    EXPECT_EQ(r["sessions"][0]["summary"],
              (json{{"legs", 3},
                    {"participants", {"alice", "carol", "bob"}},
                    {"age_s", 5.5},
                    {"rx_packets", 2},
                    {"rx_bytes", 140},
                    {"forwarded_packets", 3},
                    {"forwarded_bytes", 240},
                    {"filtered", 1}}));
    const json& b2 = r["sessions"][1];
    EXPECT_EQ(b2["summary"]["legs"], 2);
    EXPECT_EQ(b2["summary"]["participants"], (json{"erin", "dave"}));
    EXPECT_DOUBLE_EQ(b2["summary"]["age_s"].get<double>(), 5.5) << "its oldest leg's";
    EXPECT_EQ(b2["summary"]["rx_packets"], 0);
    // Each leg's age: since its admission, whatever it heard since.
    EXPECT_DOUBLE_EQ(r["sessions"][0]["legs"][0]["age_s"].get<double>(), 5.5);
    EXPECT_DOUBLE_EQ(r["sessions"][0]["legs"][0]["idle_s"].get<double>(), 3.5);
    EXPECT_EQ(b2["legs"][0]["participant"], "erin");
    EXPECT_DOUBLE_EQ(b2["legs"][0]["age_s"].get<double>(), 2.0);
}

TEST_F(SfuCommandsTest, DrainPublishesOnceAndCountsTheLegsLeftPerWorker) {
    std::vector<bool> published;
    SfuControl control;
    for (const auto& shard : shards_) control.shards.push_back(shard.get());
    control.builder = builder_.get();
    control.publish_draining = [&](bool draining) { published.push_back(draining); };
    SfuCommands commands(view_, std::move(control));
    EXPECT_TRUE(commands.enabled());
    EXPECT_EQ(commands.drain_progress(),
              (json{{"draining", false},
                    {"legs", 4},
                    {"cores", {{{"lcore", 1}, {"legs", 2}}, {{"lcore", 2}, {"legs", 2}}}}}));
    EXPECT_TRUE(commands.set_draining(true));
    EXPECT_FALSE(commands.set_draining(true)) << "the same state: nothing published";
    EXPECT_EQ(published, (std::vector<bool>{true}));
    EXPECT_TRUE(commands.drain_progress()["draining"]);
    EXPECT_TRUE(commands.set_draining(false));
    EXPECT_EQ(published, (std::vector<bool>{true, false}));
    // Without the role there is nothing to drain: never published.
    SfuCommands none(view_, SfuControl{});
    EXPECT_FALSE(none.enabled());
    EXPECT_FALSE(none.set_draining(true));
}

TEST_F(SfuCommandsTest, ALegWhoseJoinIsNotAppliedYetIsListedAsNoMember) {
    // Admitted by worker 1, its join message still on the ring: in the table, not the model.
    const engine::FiveTuple key =
        *engine::FiveTuple::make(address("198.51.100.9", 40000), address("203.0.113.2", 3480));
    ASSERT_NE(shards_[1]->table().insert(key, session_b, engine::SfuParticipant::from("erin"), {},
                                         0),
              engine::SfuTable::no_slot);
    const json legs = result("/sfu/sessions", {{"session", "b2"}})["sessions"][0]["legs"];
    ASSERT_EQ(legs.size(), 2u);
    EXPECT_EQ(legs[0]["participant"], "dave");
    EXPECT_EQ(legs[0]["member"], true);
    EXPECT_EQ(legs[1]["participant"], "erin");
    EXPECT_EQ(legs[1]["member"], false);
    // Not a member: nothing to pause for it, but a kill reaches its worker.
    EXPECT_EQ(error("/sfu/pause",
                    {{"session", "b2"}, {"subscriber", "erin"}, {"publisher", "dave"}}),
              "not_found");
    EXPECT_EQ(result("/sfu/kill", {{"session", "b2"}, {"participant", "erin"}})["sent"].size(), 1u);
    EXPECT_EQ(carry_out(), 1u);
    EXPECT_EQ(shards_[1]->table().find(key), engine::SfuTable::no_slot);
}

TEST_F(SfuCommandsTest, SessionsRefuseAMalformedOrUnknownSession) {
    EXPECT_EQ(error("/sfu/sessions", {{"session", "xyz"}}), "bad_argument");
    EXPECT_NE(message.find("expected 1 to 16 hex digits"), std::string::npos) << message;
    EXPECT_EQ(error("/sfu/sessions", {{"session", "c3"}}), "not_found");
    EXPECT_NE(message.find("00000000000000c3"), std::string::npos) << message;
    EXPECT_EQ(hint, "punchctl sfu");
}

TEST_F(SfuCommandsTest, KillASessionSendsEachLegToItsOwnerWhichRemovesIt) {
    const json r = result("/sfu/kill", {{"session", "a1"}});
    EXPECT_EQ(r["sent"].size(), 3u);
    EXPECT_TRUE(r["unsent"].empty());
    ASSERT_EQ(orders_.size(), 3u);
    for (const auto& [worker, kill] : orders_) {
        EXPECT_EQ(kill.cause, engine::SfuKill::Cause::operator_kill);
        EXPECT_TRUE(shards_[worker]->table().at(kill.slot).has_key(kill.key));
    }
    EXPECT_EQ(carry_out(), 3u);
    EXPECT_EQ(shards_[0]->table().size(), 0u);
    EXPECT_EQ(shards_[1]->table().size(), 1u);  // dave, of session b2
    EXPECT_EQ(shards_[0]->counters().legs_killed, 2u);
    EXPECT_EQ(builder_->sessions().count(session_a), 0u);
    EXPECT_EQ(error("/sfu/kill", {{"session", "a1"}}), "not_found");
}

TEST_F(SfuCommandsTest, KillOneLegLeavesTheOthers) {
    const json r = result("/sfu/kill", {{"session", "a1"}, {"participant", "bob"}});
    ASSERT_EQ(r["sent"].size(), 1u);
    EXPECT_EQ(r["sent"][0]["lcore"], 2);
    EXPECT_EQ(r["sent"][0]["client"], "198.51.100.2:40000");
    EXPECT_EQ(carry_out(), 1u);
    EXPECT_EQ(member(session_a, "bob"), nullptr);
    EXPECT_NE(member(session_a, "alice"), nullptr);
    EXPECT_EQ(result("/sfu/sessions", {{"session", "a1"}})["legs"], 2);
}

TEST_F(SfuCommandsTest, KillNamesWhatToTypeForAnUnknownParticipantAndAFullRing) {
    EXPECT_EQ(error("/sfu/kill", {{"session", "a1"}, {"participant", "zoe"}}), "not_found");
    EXPECT_NE(message.find("its participants: alice, carol, bob"), std::string::npos) << message;
    EXPECT_EQ(hint, "punchctl sfu kill --session 00000000000000a1 --participant alice");
    EXPECT_EQ(error("/sfu/kill", {{"session", "zz"}}), "bad_argument");
    EXPECT_EQ(error("/sfu/kill"), "missing_argument");
    EXPECT_TRUE(orders_.empty());
    ring_full_ = true;
    EXPECT_EQ(error("/sfu/kill", {{"session", "a1"}}), "refused");
    EXPECT_EQ(shards_[0]->table().size(), 2u);
}

TEST_F(SfuCommandsTest, PauseAndResumeChangeTheSubscribersSelectionAndPublish) {
    const json args = {{"session", "a1"}, {"subscriber", "bob"}, {"publisher", "alice"}};
    json r = result("/sfu/pause", args);
    EXPECT_EQ(r["changed"], true);
    EXPECT_EQ(r["paused"], json::array({"alice"}));
    EXPECT_EQ(publications_, 1);
    const engine::SfuMember* bob = member(session_a, "bob");
    EXPECT_FALSE(bob->selection.allows(engine::SfuParticipant::from("alice"), std::nullopt));
    EXPECT_TRUE(bob->selection.allows(engine::SfuParticipant::from("carol"), std::nullopt));
    const json listed = result("/sfu/sessions", {{"session", "a1"}});
    EXPECT_EQ(listed["sessions"][0]["legs"][2]["paused"], json::array({"alice"}));
    // Again: nothing to publish.
    EXPECT_EQ(result("/sfu/pause", args)["changed"], false);
    EXPECT_EQ(publications_, 1);
    r = result("/sfu/resume", args);
    EXPECT_EQ(r["changed"], true);
    EXPECT_TRUE(r["paused"].empty());
    EXPECT_EQ(publications_, 2);
    EXPECT_TRUE(member(session_a, "bob")->selection.allows(engine::SfuParticipant::from("alice"),
                                                           std::nullopt));
}

TEST_F(SfuCommandsTest, PauseRefusesUnknownMembersAndOneParticipantTwice) {
    EXPECT_EQ(error("/sfu/pause",
                    {{"session", "a1"}, {"subscriber", "zoe"}, {"publisher", "alice"}}),
              "not_found");
    EXPECT_NE(message.find("argument \"subscriber\""), std::string::npos) << message;
    EXPECT_NE(message.find("alice, bob, carol"), std::string::npos) << message;
    EXPECT_EQ(error("/sfu/resume",
                    {{"session", "a1"}, {"subscriber", "bob"}, {"publisher", "dave"}}),
              "not_found");
    EXPECT_NE(message.find("argument \"publisher\""), std::string::npos) << message;
    EXPECT_EQ(error("/sfu/pause",
                    {{"session", "c3"}, {"subscriber", "bob"}, {"publisher", "alice"}}),
              "not_found");
    EXPECT_EQ(error("/sfu/pause", {{"session", "a1"}, {"subscriber", "bob"}, {"publisher", "bob"}}),
              "bad_argument");
    EXPECT_EQ(error("/sfu/pause", {{"session", "a1"}, {"subscriber", "bob"}}), "missing_argument");
    EXPECT_EQ(publications_, 0);
}

TEST_F(SfuCommandsTest, SelectSetsAndClearsTheSsrcAllowList) {
    json r = result("/sfu/select", {{"session", "a1"}, {"subscriber", "carol"},
                                    {"ssrcs", "1234,0x10,1234"}});
    EXPECT_EQ(r["ssrcs"], json::array({1234, 16}));
    EXPECT_EQ(publications_, 1);
    const auto alice = engine::SfuParticipant::from("alice");
    EXPECT_TRUE(member(session_a, "carol")->selection.allows(alice, 16u));
    EXPECT_FALSE(member(session_a, "carol")->selection.allows(alice, 17u));
    EXPECT_EQ(result("/sfu/sessions", {{"session", "a1"}})["sessions"][0]["legs"][1]["ssrcs"],
              json::array({1234, 16}));
    r = result("/sfu/select", {{"session", "a1"}, {"subscriber", "carol"}, {"ssrcs", ""}});
    EXPECT_TRUE(r["ssrcs"].empty());
    EXPECT_TRUE(member(session_a, "carol")->selection.allows(alice, 17u));
    EXPECT_EQ(publications_, 2);
}

TEST_F(SfuCommandsTest, SelectRefusesMalformedSsrcsAndUnknownSubscribers) {
    for (const char* bad : {"x", "1,", ",1", "4294967296", "-1", "0x", "1;2"}) {
        EXPECT_EQ(error("/sfu/select",
                        {{"session", "a1"}, {"subscriber", "carol"}, {"ssrcs", bad}}),
                  "bad_argument")
            << bad;
        EXPECT_NE(message.find("argument \"ssrcs\""), std::string::npos) << message;
    }
    EXPECT_EQ(error("/sfu/select", {{"session", "a1"}, {"subscriber", "dave"}, {"ssrcs", "1"}}),
              "not_found");
    EXPECT_EQ(publications_, 0);
}

TEST(SfuCommandsWithoutSfu, EveryCommandSaysTheRoleIsNotRunning) {
    EngineView view;
    view.now_ms = [] { return std::uint64_t{0}; };
    SfuCommands commands(view, SfuControl{});
    Registry registry;
    commands.register_in(registry);
    const std::vector<std::pair<std::string, json>> requests = {
        {"/sfu/sessions", json::object()},
        {"/sfu/kill", {{"session", "a1"}}},
        {"/sfu/pause", {{"session", "a1"}, {"subscriber", "b"}, {"publisher", "c"}}},
        {"/sfu/resume", {{"session", "a1"}, {"subscriber", "b"}, {"publisher", "c"}}},
        {"/sfu/select", {{"session", "a1"}, {"subscriber", "b"}, {"ssrcs", ""}}}};
    for (const auto& [command, a] : requests) {
        const json r = registry.handle_line(json{{"command", command}, {"args", a}}.dump());
        EXPECT_EQ(r["error"]["code"], "not_available") << command << r.dump();
        EXPECT_NE(r["error"]["message"].get<std::string>().find(command), std::string::npos);
    }
}

}  // namespace
}  // namespace control
