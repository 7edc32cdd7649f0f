// Tests for control/relay_commands.cc: users, secrets, peer policy, drain and reload through the
// Registry, as the socket runs them, over a real relay shard and a recording publisher (what
// punchlined does with RCU is its own; here: what is published, when, and that a refused change
// publishes nothing).
#include "control/relay_commands.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/registry.h"
#include "engine/rate_limit.h"
#include "engine/relay_table.h"
#include "stun/address.h"

namespace control {
namespace {

using nlohmann::json;

const std::string file_head = R"([eal]
args = ["-l", "0-1", "--no-pci", "--vdev=net_null0"]
[engine]
workers = [1]
[[port]]
device = "net_null0"
ipv4 = ["203.0.113.2", "203.0.113.3"]
[relay]
enabled = true
realm = "example.org"
)";

const std::string file_credentials = R"(users = [{ name = "alice", password = "wonderland" }]
rest_secrets = ["0123456789abcdef0123"]
)";

class RelayCommandsTest : public testing::Test {
protected:
    void SetUp() override {
        file_ = file_head + file_credentials;
        config_ = engine::parse_config(file_, "engine.toml");
        const auto rate = engine::RateLimit::make(1, 3, 10);
        engine::RelayTableLimits limits;
        limits.capacity = 8;
        limits.first_relay_port = 50000;
        limits.relay_port_count = 100;
        limits.peer_entries = 16;
        limits.reservations = 1;
        limits.ticks_per_second = 10;
        limits.seed = 3;
        shard_ = std::make_unique<engine::RelayShard>(limits, *rate, 16, 5);
        view_.config = &config_;
        view_.cores.push_back({1, &counters_, shard_.get()});
        view_.now_ms = [this] { return now_ms_; };
        view_.start_ms = 1000;
        RelayControl control;
        control.publish = [this](const engine::RelayConfig& relay, bool draining) {
            if (refuse_) throw std::runtime_error("relay: the credentials cannot be built");
            published_.push_back({relay, draining});
        };
        control.load = [this] { return engine::parse_config(file_, "engine.toml"); };
        control.config_path = "engine.toml";
        commands_ = std::make_unique<RelayCommands>(view_, config_, control);
        commands_->register_in(registry_);
    }

    void insert(const char* user, std::uint16_t port) {
        stun::Address client, server;
        ASSERT_TRUE(stun::Address::from_string("203.0.113.10", port, client));
        ASSERT_TRUE(stun::Address::from_string("203.0.113.2", 3478, server));
        engine::RelayTable::NewAllocation a;
        a.key = *engine::FiveTuple::make(client, server);
        a.username = user;
        a.integrity_key = key_;
        a.families = engine::relay_ipv4;
        a.expiry = 6000;
        ASSERT_EQ(shard_->table().insert(a).status, engine::RelayTable::InsertStatus::inserted);
    }

    json run(const json& request) { return registry_.handle_line(request.dump()); }
    json result(const std::string& command, const json& args = json::object()) {
        const json r = run({{"command", command}, {"args", args}});
        EXPECT_EQ(r["ok"], true) << r.dump();
        return r["result"];
    }
    // The error's code; its message and hint in `message` and `hint`.
    std::string error(const std::string& command, const json& args = json::object()) {
        const json r = run({{"command", command}, {"args", args}});
        EXPECT_EQ(r["ok"], false) << r.dump();
        message = r["error"].value("message", "");
        hint = r["error"].value("hint", "");
        return r["error"].value("code", "");
    }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const engine::RelayUser& u : config_.relay.users) out.push_back(u.name);
        return out;
    }

    struct Publication {
        engine::RelayConfig relay;
        bool draining;
    };

    std::string file_;
    engine::EngineConfig config_;
    engine::CoreCounters counters_{};
    std::unique_ptr<engine::RelayShard> shard_;
    EngineView view_;
    std::uint64_t now_ms_ = 1000;
    bool refuse_ = false;
    std::vector<Publication> published_;
    Registry registry_;
    std::unique_ptr<RelayCommands> commands_;
    std::array<std::byte, 16> key_{};
    std::string message, hint;
};

TEST_F(RelayCommandsTest, UsersAreListedByNameWithTheirAllocationsNeverTheirPasswords) {
    insert("alice", 40000);
    insert("alice", 40001);
    const json r = result("/users");
    EXPECT_EQ(r["users"], (json::array({{{"name", "alice"}, {"allocations", 2}}})));
    EXPECT_EQ(r["rest_secrets"], 1);
    EXPECT_EQ(r.dump().find("wonderland"), std::string::npos);
}

TEST_F(RelayCommandsTest, AddAndRemoveAUserPublishEachTime) {
    const json added = result("/users/add", {{"name", "carol"}, {"password", "c-secret"}});
    EXPECT_EQ(added["added"], "carol");
    EXPECT_EQ(added.dump().find("c-secret"), std::string::npos);
    ASSERT_EQ(published_.size(), 1u);
    EXPECT_EQ(published_[0].relay.users.size(), 2u);
    EXPECT_EQ(published_[0].relay.users[1].password, "c-secret");
    EXPECT_EQ(names(), (std::vector<std::string>{"alice", "carol"}));
    result("/users/remove", {{"name", "alice"}});
    ASSERT_EQ(published_.size(), 2u);
    EXPECT_EQ(names(), (std::vector<std::string>{"carol"}));
    EXPECT_EQ(commands_->publications(), 2u);
}

TEST_F(RelayCommandsTest, UserErrorsSayWhatToTypeAndChangeNothing) {
    EXPECT_EQ(error("/users/add", {{"name", "alice"}, {"password", "x"}}), "refused");
    EXPECT_NE(message.find("user \"alice\" exists"), std::string::npos) << message;
    EXPECT_EQ(hint, "punchctl users remove --name alice");
    EXPECT_EQ(error("/users/remove", {{"name", "mallory"}}), "refused");
    EXPECT_EQ(message, "no user \"mallory\"; the users: alice");
    EXPECT_EQ(error("/users/add", {{"name", "dave"}, {"password", std::string("a\x07") + "b"}}),
              "bad_argument");
    EXPECT_NE(message.find("got a string of 3 bytes (prohibited_character)"), std::string::npos)
        << message;
    EXPECT_EQ(error("/users/add", {{"name", "dave"}}), "missing_argument");
    EXPECT_TRUE(published_.empty());
    EXPECT_EQ(names(), (std::vector<std::string>{"alice"}));
}

TEST_F(RelayCommandsTest, TheLastCredentialIsNotTakenAway) {
    // alice and one secret: either may go, not both.
    const json secrets = result("/secrets");
    const std::int64_t id = secrets["secrets"][0]["id"];
    result("/secrets/retire", {{"id", id}});
    EXPECT_EQ(error("/users/remove", {{"name", "alice"}}), "refused");
    EXPECT_NE(message.find("would leave the relay without credentials"), std::string::npos);
    EXPECT_EQ(names(), (std::vector<std::string>{"alice"}));
    EXPECT_EQ(published_.size(), 1u);
}

TEST_F(RelayCommandsTest, SecretsRotateByIdAndAgeNeverShown) {
    now_ms_ = 61000;
    json r = result("/secrets");
    ASSERT_EQ(r["secrets"].size(), 1u);
    EXPECT_EQ(r["secrets"][0]["id"], 1);
    EXPECT_DOUBLE_EQ(r["secrets"][0]["age_s"].get<double>(), 60.0);
    EXPECT_EQ(r["secrets"][0]["origin"], "file");
    const json added = result("/secrets/add", {{"secret", "the-next-secret-0001"}});
    EXPECT_EQ(added["id"], 2);
    // Two accepted at once while clients move to the new one; then the old retires.
    EXPECT_EQ(published_.back().relay.rest_secrets.size(), 2u);
    result("/secrets/retire", {{"id", 1}});
    EXPECT_EQ(published_.back().relay.rest_secrets,
              (std::vector<std::string>{"the-next-secret-0001"}));
    now_ms_ = 71000;
    r = result("/secrets");
    EXPECT_EQ(r["secrets"], (json::array({{{"id", 2}, {"age_s", 10.0}, {"origin", "punchctl"}}})));
    EXPECT_EQ(r.dump().find("the-next"), std::string::npos);
}

TEST_F(RelayCommandsTest, SecretErrors) {
    EXPECT_EQ(error("/secrets/add", {{"secret", "short"}}), "bad_argument");
    EXPECT_NE(message.find("at least 16 bytes, got a string of 5 bytes"), std::string::npos);
    EXPECT_EQ(error("/secrets/add", {{"secret", "0123456789abcdef0123"}}), "refused");
    EXPECT_EQ(message, "this secret is accepted already, as id 1");
    EXPECT_EQ(error("/secrets/retire", {{"id", 7}}), "refused");
    EXPECT_EQ(message, "no secret has id 7; the ids: 1");
    EXPECT_EQ(hint, "punchctl secrets");
    EXPECT_TRUE(published_.empty());
}

TEST_F(RelayCommandsTest, PeerPolicyShowsDefaultsAndListsAndChangesThem) {
    json r = result("/peer-policy");
    EXPECT_EQ(r["own_addresses"], (json{"203.0.113.2", "203.0.113.3"}));
    EXPECT_EQ(r["allow"], json::array());
    EXPECT_EQ(r["defaults"][0], (json{{"range", "0.0.0.0/8"},
                                       {"reason", "unspecified"},
                                       {"help", "0.0.0.0/8 or ::, which Linux delivers to the "
                                                "host itself"}}));
    EXPECT_EQ(r["defaults"].back()["range"], "2001::/32");
    r = result("/peer-policy/add", {{"list", "deny"}, {"cidr", "198.51.100.0/24"}});
    EXPECT_EQ(r["deny"], (json{"198.51.100.0/24"}));
    result("/peer-policy/add", {{"list", "allow"}, {"cidr", "10.1.2.0/24"}});
    ASSERT_EQ(published_.size(), 2u);
    EXPECT_EQ(published_.back().relay.peer_allow.size(), 1u);
    result("/peer-policy/remove", {{"list", "deny"}, {"cidr", "198.51.100.0/24"}});
    EXPECT_TRUE(config_.relay.peer_deny.empty());
}

TEST_F(RelayCommandsTest, PeerPolicyErrors) {
    EXPECT_EQ(error("/peer-policy/add", {{"list", "deny"}, {"cidr", "10.0.0.1/8"}}),
              "bad_argument");
    EXPECT_EQ(message, "argument \"cidr\" of /peer-policy/add: expected an address or a prefix "
                       "like \"10.0.0.0/8\" or \"fc00::/7\", got \"10.0.0.1/8\" (host_bits_set)");
    EXPECT_EQ(hint, "punchctl peer-policy add --list deny --cidr 203.0.113.0/24");
    EXPECT_EQ(error("/peer-policy/add", {{"list", "block"}, {"cidr", "10.0.0.0/8"}}),
              "bad_argument");
    EXPECT_EQ(error("/peer-policy/remove", {{"list", "allow"}, {"cidr", "10.0.0.0/8"}}),
              "refused");
    EXPECT_EQ(message, "10.0.0.0/8 is not in the allow list; it holds: none");
    result("/peer-policy/add", {{"list", "allow"}, {"cidr", "10.0.0.0/8"}});
    EXPECT_EQ(error("/peer-policy/add", {{"list", "allow"}, {"cidr", "10.0.0.0/8"}}), "refused");
    EXPECT_EQ(published_.size(), 1u);
}

TEST_F(RelayCommandsTest, DrainPublishesOnceAndReportsWhatIsLeft) {
    insert("alice", 40000);
    json r = result("/drain");
    EXPECT_EQ(r["draining"], true);
    EXPECT_EQ(r["changed"], true);
    EXPECT_EQ(r["allocations"], 1);
    EXPECT_EQ(r["cores"], (json::array({{{"lcore", 1}, {"allocations", 1}}})));
    EXPECT_EQ(r["alternate_server"], nullptr);
    ASSERT_EQ(published_.size(), 1u);
    EXPECT_TRUE(published_[0].draining);
    // Again: the progress, nothing published. Other changes keep the drain.
    EXPECT_EQ(result("/drain")["changed"], false);
    result("/users/add", {{"name", "carol"}, {"password", "c-secret"}});
    EXPECT_TRUE(published_.back().draining);
    EXPECT_TRUE(commands_->drain_progress()["draining"]);
    r = result("/undrain");
    EXPECT_EQ(r["draining"], false);
    EXPECT_FALSE(published_.back().draining);
    EXPECT_EQ(published_.size(), 3u);
}

TEST_F(RelayCommandsTest, ARefusedPublicationChangesNothing) {
    refuse_ = true;
    EXPECT_EQ(error("/users/add", {{"name", "carol"}, {"password", "c-secret"}}), "refused");
    EXPECT_EQ(message, "relay: the credentials cannot be built; nothing changed");
    EXPECT_EQ(error("/drain"), "refused");
    EXPECT_FALSE(commands_->draining());
    EXPECT_EQ(names(), (std::vector<std::string>{"alice"}));
}

TEST_F(RelayCommandsTest, ReloadAppliesTheFilesLiveKeysAndSaysWhatChanged) {
    result("/users/add", {{"name", "carol"}, {"password", "c-secret"}});  // in memory only
    result("/secrets/add", {{"secret", "the-next-secret-0001"}});
    file_ = file_head + R"(users = [{ name = "alice", password = "new-pw" },
         { name = "bob", password = "b" }]
rest_secrets = ["0123456789abcdef0123", "from-the-file-0000002"]
peer_deny = ["198.51.100.0/24"]
alternate_server = "198.51.100.20:3478"
)";
    const json r = result("/reload");
    EXPECT_EQ(r["changed"], (json{"relay.users", "relay.rest_secrets", "relay.peer_deny",
                                  "relay.alternate_server"}));
    EXPECT_EQ(r["users"]["added"], (json{"bob"}));
    EXPECT_EQ(r["users"]["removed"], (json{"carol"}));
    EXPECT_EQ(r["users"]["password_changed"], (json{"alice"}));
    // The file's first secret keeps its id (1); punchctl's (2) is retired; the new one is 3.
    EXPECT_EQ(r["rest_secrets"]["retired"], (json{2}));
    EXPECT_EQ(r["rest_secrets"]["added"], (json{3}));
    EXPECT_EQ(r.dump().find("new-pw"), std::string::npos);
    EXPECT_EQ(names(), (std::vector<std::string>{"alice", "bob"}));
    EXPECT_EQ(published_.back().relay.peer_deny.size(), 1u);
    EXPECT_TRUE(published_.back().relay.alternate_server);
    const json secrets = result("/secrets");
    EXPECT_EQ(secrets["secrets"][0]["id"], 1);
    EXPECT_EQ(secrets["secrets"][1]["origin"], "file");
    // The same file again: nothing to publish.
    const std::size_t before = published_.size();
    EXPECT_EQ(result("/reload")["changed"], json::array());
    EXPECT_EQ(published_.size(), before);
}

TEST_F(RelayCommandsTest, ReloadRefusesAFileErrorAndKeysThatNeedARestart) {
    file_ = file_head + "users = [{ name = \"alice\" }]\n";
    EXPECT_EQ(error("/reload"), "refused");
    EXPECT_EQ(message, "engine.toml: relay.users[0].password (line 11): missing; expected the "
                       "password of user \"alice\"; the running configuration stays");
    EXPECT_EQ(hint, "punchlined --check --config engine.toml");
    file_ = file_head + file_credentials + "max_allocations = 20000\nnonce_lifetime_s = 60\n";
    EXPECT_EQ(error("/reload"), "refused");
    EXPECT_EQ(message.rfind("engine.toml changes relay.max_allocations, which only a restart "
                            "applies; nothing changed",
                            0),
              0u)
        << message;
    EXPECT_TRUE(published_.empty());
    EXPECT_EQ(config_.relay.nonce_lifetime_s, 600u);
}

// The SFU role beside the relay (control/sfu_commands.h): one worker's shard holding one leg,
// its drain publications recorded as the relay's are.
class DrainWithSfuTest : public RelayCommandsTest {
protected:
    void SetUp() override {
        RelayCommandsTest::SetUp();
        const auto rate = engine::RateLimit::make(1, 3, 10);
        sfu_shard_ = std::make_unique<engine::SfuShard>(8, 4, *rate, 16, 0, 9);
        builder_ = std::make_unique<engine::SfuMembershipBuilder>(4);
        SfuControl control;
        control.shards.push_back(sfu_shard_.get());
        control.builder = builder_.get();
        control.publish = [] {};
        control.now_ticks = [] { return std::uint64_t{100}; };
        control.ticks_per_second = 10;
        control.publish_draining = [this](bool draining) {
            if (refuse_sfu_) throw std::runtime_error("out of memory");
            sfu_published_.push_back(draining);
        };
        sfu_ = std::make_unique<SfuCommands>(view_, std::move(control));
        commands_->cover_sfu(*sfu_);
        stun::Address client, server;
        ASSERT_TRUE(stun::Address::from_string("198.51.100.7", 6000, client));
        ASSERT_TRUE(stun::Address::from_string("203.0.113.2", 3480, server));
        ASSERT_NE(sfu_shard_->table().insert(*engine::FiveTuple::make(client, server), 0xa1,
                                            engine::SfuParticipant::from("alice"), {}, 100),
                  engine::SfuTable::no_slot);
    }
    std::unique_ptr<engine::SfuShard> sfu_shard_;
    std::unique_ptr<engine::SfuMembershipBuilder> builder_;
    std::unique_ptr<SfuCommands> sfu_;
    std::vector<bool> sfu_published_;
    bool refuse_sfu_ = false;
};

TEST_F(DrainWithSfuTest, DrainCoversTheSfuLegsAndAReloadKeepsIt) {
    insert("bob", 40000);
    json r = result("/drain");
    EXPECT_EQ(r["draining"], true);
    EXPECT_EQ(r["changed"], true);
    EXPECT_EQ(r["relay"], true);
    EXPECT_EQ(r["allocations"], 1);
    EXPECT_EQ(r["sfu"], (json{{"draining", true},
                              {"legs", 1},
                              {"cores", json::array({{{"lcore", 1}, {"legs", 1}}})}}));
    EXPECT_EQ(sfu_published_, (std::vector<bool>{true}));
    ASSERT_EQ(published_.size(), 1u);
    EXPECT_TRUE(published_[0].draining);
    EXPECT_TRUE(sfu_->draining());
    // Again: the progress, nothing published; a reload republishes the relay's drain, and the
    // SFU's context (its keys need a restart) is not touched.
    EXPECT_EQ(result("/drain")["changed"], false);
    file_ += "alternate_server = \"198.51.100.20:3478\"\n";
    (void)result("/reload");
    EXPECT_TRUE(published_.back().draining);
    EXPECT_EQ(sfu_published_.size(), 1u);
    EXPECT_TRUE(commands_->drain_progress()["sfu"]["draining"]);
    r = result("/undrain");
    EXPECT_EQ(r["draining"], false);
    EXPECT_EQ(r["sfu"]["draining"], false);
    EXPECT_EQ(r["sfu"]["legs"], 1) << "an undrain removes nothing";
    EXPECT_EQ(sfu_published_, (std::vector<bool>{true, false}));
    EXPECT_FALSE(published_.back().draining);
}

TEST_F(DrainWithSfuTest, AnSfuOnlyEngineDrains) {
    config_.relay.enabled = false;
    EXPECT_EQ(error("/users"), "not_available");
    const json r = result("/drain");
    EXPECT_EQ(r["draining"], true);
    EXPECT_EQ(r["relay"], false);
    EXPECT_EQ(r["sfu"]["legs"], 1);
    EXPECT_TRUE(published_.empty()) << "no relay to publish";
    EXPECT_EQ(sfu_published_, (std::vector<bool>{true}));
    EXPECT_EQ(result("/undrain")["draining"], false);
    EXPECT_EQ(sfu_published_, (std::vector<bool>{true, false}));
}

TEST_F(DrainWithSfuTest, ARefusedSfuPublicationTakesTheRelaysBack) {
    refuse_sfu_ = true;
    EXPECT_EQ(error("/drain"), "refused");
    EXPECT_EQ(message, "sfu: out of memory; nothing changed");
    EXPECT_FALSE(commands_->draining());
    EXPECT_FALSE(sfu_->draining());
    ASSERT_EQ(published_.size(), 2u);
    EXPECT_FALSE(published_.back().draining) << "the relay's drain taken back";
}

TEST_F(RelayCommandsTest, WithoutARelayTheCommandsAreNotAvailable) {
    config_.relay.enabled = false;
    for (const char* command : {"/users", "/secrets", "/peer-policy", "/drain", "/undrain"})
        EXPECT_EQ(error(command), "not_available") << command;
}

}  // namespace
}  // namespace control
