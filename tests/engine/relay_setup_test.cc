// engine/relay_setup.h: what punchlined builds for the relay from its configuration. A real
// config text parsed by parse_config(), then: the context's relay address and peer policy
// (the port's own addresses refused, the lists applied), the port shares that steering and
// the tables agree on, the tables' share of the allocation quota, and a shard built from it.
#include <gtest/gtest.h>

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>

#include "engine/config.h"
#include "engine/relay_setup.h"
#include "test_support.h"

namespace engine {
namespace {

constexpr std::uint64_t ticks_per_second = 1'000'000'000;

EngineConfig relay_config(unsigned workers) {
    std::string workers_list = "[1";
    for (unsigned w = 2; w <= workers; ++w) workers_list += ", " + std::to_string(w);
    workers_list += "]";
    const std::string text = R"([eal]
args = ["-l", "0-3", "--no-pci", "--vdev=net_null0"]
[engine]
workers = )" + workers_list + R"(
[stun]
port = 3478
alternate_port = 3479
[[port]]
device = "net_null0"
ipv4 = ["198.51.100.2", "198.51.100.3"]
ipv6 = ["2001:db8::2"]
[relay]
enabled = true
realm = "example.org"
ports = "49152-65535"
max_allocations = 10000
users = [{ name = "alice", password = "wonderland" }]
rest_secrets = ["0123456789abcdef0123"]
peer_allow = ["10.1.2.0/24"]
peer_deny = ["203.0.113.0/24"]
)";
    return parse_config(text, "relay_setup_test.toml");
}

NonceKeys keys() {
    NonceKeys k;
    k.current.id = 1;
    k.current.secret.fill(std::byte{7});
    return k;
}

TEST(RelaySetupTest, TheContextRelaysFromThePortsPrimaryAddresses) {
    const EngineConfig config = relay_config(2);
    const auto context =
        make_relay_context(config.relay, config.ports.front(), keys(), ticks_per_second);
    EXPECT_EQ(context->families(), relay_ipv4 | relay_ipv6);
    stun::Address expected = test::address("198.51.100.2");
    expected.port = 50000;
    EXPECT_EQ(context->relayed_address(0, 50000, relay_ipv4), expected);
    expected = test::address("2001:db8::2");
    expected.port = 50000;
    EXPECT_EQ(context->relayed_address(0, 50000, relay_ipv6), expected);
    EXPECT_EQ(context->credentials().realm(), "example.org");
}

TEST(RelaySetupTest, ThePolicyRefusesThePortsOwnAddressesAndAppliesTheLists) {
    const EngineConfig config = relay_config(2);
    const auto context =
        make_relay_context(config.relay, config.ports.front(), keys(), ticks_per_second);
    const PeerPolicy& policy = context->policy();
    // The alternate address too: a peer there is the server itself; and the relayed
    // addresses (the primaries) in an embedding form.
    for (const char* own : {"198.51.100.3", "::ffff:198.51.100.2", "64:ff9b::198.51.100.2"})
        EXPECT_EQ(policy.check(test::address(own)), PeerVerdict::own_address) << own;
    // The relayed addresses themselves: another allocation's, delivered in the engine.
    for (const char* relayed : {"198.51.100.2", "2001:db8::2"})
        EXPECT_EQ(policy.check(test::address(relayed)), PeerVerdict::relayed_address)
            << relayed;
    EXPECT_EQ(policy.check(test::address("203.0.113.7")), PeerVerdict::denied_by_config);
    EXPECT_EQ(policy.check(test::address("10.1.2.3")), PeerVerdict::allowed);
    EXPECT_EQ(policy.check(test::address("10.9.9.9")), PeerVerdict::private_network);
    EXPECT_EQ(policy.check(test::address("192.0.2.10")), PeerVerdict::allowed);
}

TEST(RelaySetupTest, WorkersShareThePortsAsSteeringFindsThem) {
    const EngineConfig config = relay_config(3);
    const RelayPortPartition partition = relay_port_partition(config.relay, 3);
    EXPECT_EQ(partition.first, 49152);
    EXPECT_EQ(partition.per_worker, 16384 / 3);
    std::uint32_t total_capacity = 0;
    for (unsigned w = 0; w < 3; ++w) {
        const RelayTableLimits limits = relay_table_limits(config.relay, w, 3, ticks_per_second, 42);
        const auto last =
            static_cast<std::uint16_t>(limits.first_relay_port + limits.relay_port_count - 1);
        // Every port of a worker's table steers to that worker, and only those.
        EXPECT_EQ(partition.owner_of(limits.first_relay_port, 3), static_cast<int>(w));
        EXPECT_EQ(partition.owner_of(last, 3), static_cast<int>(w));
        EXPECT_NE(partition.owner_of(static_cast<std::uint16_t>(last + 1), 3),
                  static_cast<int>(w));
        EXPECT_EQ(limits.max_permissions, config.relay.max_permissions_per_allocation);
        EXPECT_EQ(limits.max_channels, config.relay.max_channels_per_allocation);
        // relay.peer_entries and relay.reservations unset: one peer entry per allocation,
        // a reservation per sixteen.
        EXPECT_EQ(limits.peer_entries, limits.capacity);
        EXPECT_EQ(limits.reservations, limits.capacity / 16);
        EXPECT_EQ(limits.ticks_per_second, ticks_per_second);
        total_capacity += limits.capacity;
    }
    // The configured total, rounded up to a multiple of the workers.
    EXPECT_EQ(total_capacity, 3 * 3334u);
}

TEST(RelaySetupTest, PeerEntriesAndReservationsAreSharedAmongWorkers) {
    EngineConfig config = relay_config(3);
    config.relay.peer_entries = 30001;
    config.relay.reservations = 2;
    const RelayTableLimits limits = relay_table_limits(config.relay, 2, 3, ticks_per_second, 42);
    EXPECT_EQ(limits.peer_entries, 10001u);
    EXPECT_EQ(limits.reservations, 1u);
    config.relay.reservations = 0;
    config.relay.max_allocations = 3;
    // A sixteenth of one allocation rounds to none: each worker keeps one.
    EXPECT_EQ(relay_table_limits(config.relay, 0, 3, ticks_per_second, 42).reservations, 1u);
}

TEST(RelaySetupTest, AShardIsBuiltFromWhatTheConfigGives) {
    const EngineConfig config = relay_config(2);
    const RateLimit limit = unauthenticated_limit(config.relay, ticks_per_second);
    EXPECT_EQ(limit.tokens_per_second(), config.relay.unauthenticated_requests_per_s);
    EXPECT_EQ(limit.burst(), config.relay.unauthenticated_burst);
    const RelayShard shard(relay_table_limits(config.relay, 1, 2, ticks_per_second, 7), limit,
                           1024, 7);
    EXPECT_EQ(shard.table().capacity(), 5000u);
    EXPECT_EQ(shard.table().size(), 0u);
}

// A live change (control/relay_commands.h) builds a new context from the edited RelayConfig
// with the engine's nonce keys: what the old one issued, the new one accepts (no 438 storm).
TEST(RelaySetupTest, ARebuiltContextTakesTheChangesAndKeepsTheNonces) {
    EngineConfig config = relay_config(1);
    const auto before =
        make_relay_context(config.relay, config.ports.front(), keys(), ticks_per_second);
    const stun::Address client = test::address("198.51.100.77");
    std::array<char, turn_nonce_size> nonce{};
    ASSERT_EQ(make_nonce(before->credentials().nonce_keys(), client, 1'700'000'000, nonce),
              turn_nonce_size);

    config.relay.users.push_back({"bob", "builder"});
    config.relay.users.erase(config.relay.users.begin());  // alice goes
    config.relay.rest_secrets.push_back("a-second-secret-for-rotation");
    config.relay.peer_deny.clear();
    config.relay.nonce_lifetime_s = 900;
    const auto after =
        make_relay_context(config.relay, config.ports.front(), keys(), ticks_per_second);
    EXPECT_EQ(after->credentials().find_user("alice"), nullptr);
    EXPECT_NE(after->credentials().find_user("bob"), nullptr);
    EXPECT_EQ(after->credentials().rest_secret_count(), 2u);
    EXPECT_EQ(after->policy().check(test::address("203.0.113.9")), PeerVerdict::allowed);
    EXPECT_EQ(before->policy().check(test::address("203.0.113.9")),
              PeerVerdict::denied_by_config);
    EXPECT_EQ(check_nonce(after->credentials().nonce_keys(), client,
                          std::string_view(nonce.data(), nonce.size()), 1'700'000'100,
                          after->credentials().nonce_lifetime_s()),
              NonceCheck::ok);
    EXPECT_FALSE(after->drain().draining);
}

TEST(RelaySetupTest, ADrainingContextCarriesTheAlternateServer) {
    EngineConfig config = relay_config(1);
    const auto plain =
        make_relay_context(config.relay, config.ports.front(), keys(), ticks_per_second, true);
    EXPECT_TRUE(plain->drain().draining);
    EXPECT_FALSE(plain->drain().alternate_server);
    stun::Address alternate = test::address("198.51.100.20");
    alternate.port = 3478;
    config.relay.alternate_server = alternate;
    const auto redirecting =
        make_relay_context(config.relay, config.ports.front(), keys(), ticks_per_second, true);
    ASSERT_TRUE(redirecting->drain().alternate_server);
    EXPECT_EQ(*redirecting->drain().alternate_server, alternate);
}

TEST(RelaySetupTest, APortWithNoAddressCannotRelay) {
    const EngineConfig config = relay_config(1);
    PortConfig port = config.ports.front();
    port.ipv4.clear();
    port.ipv6.clear();
    try {
        (void)make_relay_context(config.relay, port, keys(), ticks_per_second);
        FAIL() << "no exception";
    } catch (const std::runtime_error& error) {
        EXPECT_NE(std::string(error.what()).find("net_null0 has no address to relay from"),
                  std::string::npos)
            << error.what();
    }
}

}  // namespace
}  // namespace engine
