// Tests for engine/config.cc: the default file, defaults for absent keys, and one named case per
// validation error, each checking the key, the line and the message.
#include "engine/config.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "test_support.h"
#include "stun/address.h"

namespace engine {
namespace {

using test::address;

// The error parse_config throws for `text`; a test failure when it parses.
std::optional<ConfigError> error_of(const std::string& text) {
    try {
        parse_config(text, "test.toml");
    } catch (const ConfigError& error) {
        return error;
    }
    ADD_FAILURE() << "parsed without an error:\n" << text;
    return std::nullopt;
}

// Two lines: the smallest valid [eal].
const std::string eal = "[eal]\nargs = [\"--no-pci\"]\n";
// Three lines: the smallest valid [[port]].
const std::string port = "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.0.2\"]\n";

// engine/punchlined.toml. __FILE__ is the path meson gave the compiler: relative to the build
// directory ("../tests/engine/config_test.cc") or absolute. The test runs with the build
// directory as its working directory under `meson test`, but by hand from anywhere, so a relative
// path is tried from the working directory and from each directory above the executable (the
// build directory is one of them).
std::filesystem::path default_config_path() {
    namespace fs = std::filesystem;
    const fs::path repository = fs::path(__FILE__).parent_path() / ".." / "..";
    const fs::path wanted = repository / "engine" / "punchlined.toml";
    if (wanted.is_absolute()) return wanted;
    std::vector<fs::path> bases = {fs::current_path()};
    std::error_code error;
    for (fs::path dir = fs::read_symlink("/proc/self/exe", error).parent_path();
         !error && !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
        bases.push_back(dir);
    for (const fs::path& base : bases)
        if (fs::exists(base / wanted)) return base / wanted;
    return wanted;
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

TEST(ParseConfig, DefaultFileParsesToTheDemoConfig) {
    const std::filesystem::path path = default_config_path();
    ASSERT_TRUE(std::filesystem::exists(path)) << "cannot find the default config at " << path;
    const EngineConfig config = parse_config(read_text(path), "punchlined.toml");

    EXPECT_EQ(config.eal_args,
              (std::vector<std::string>{"-l", "0-1", "--no-pci", "--no-huge", "-m", "256",
                                        "--no-shconf", "--no-telemetry",
                                        "--log-level=lib.eal:error",
                                        "--vdev=net_tap0,iface=punch0"}));
    EXPECT_EQ(config.workers, std::vector<unsigned>{1});
    EXPECT_EQ(config.mbufs, 16383u);
    EXPECT_EQ(config.burst, 32u);
    EXPECT_TRUE(config.stun.enabled);
    EXPECT_EQ(config.stun.port, 3478);
    EXPECT_EQ(config.stun.alternate_port, 3479);
    EXPECT_EQ(config.stun.software, "punchline");
    ASSERT_EQ(config.ports.size(), 1u);
    const PortConfig& tap = config.ports[0];
    EXPECT_EQ(tap.device, "net_tap0");
    EXPECT_EQ(tap.ipv4, (std::vector{address("198.18.0.2"), address("198.18.0.3")}));
    EXPECT_EQ(tap.ipv6, (std::vector{address("2001:db8::2"), address("2001:db8::3")}));
    EXPECT_EQ(tap.gateway4, address("198.18.0.1"));
    EXPECT_EQ(tap.gateway6, address("2001:db8::1"));
    EXPECT_EQ(tap.prefix4, 24);
    EXPECT_EQ(tap.prefix6, 64);
    EXPECT_EQ(tap.rx_checksum, RxChecksum::verify);
    EXPECT_EQ(config.neighbour.reachable_ms, 30000u);
    EXPECT_EQ(config.neighbour.retransmit_ms, 1000u);
    EXPECT_EQ(config.neighbour.max_probes, 3u);
    EXPECT_EQ(config.neighbour.failed_retry_ms, 10000u);
    EXPECT_EQ(config.neighbour.capacity, 64u);
    // The file shows [relay] with its defaults: disabled, so the demo runs the STUN role alone.
    EXPECT_FALSE(config.relay.enabled);
    EXPECT_EQ(config.relay.realm, "punchline");
    EXPECT_EQ(config.relay.port_first, 49152);
    EXPECT_EQ(config.relay.port_last, 65535);
    EXPECT_TRUE(config.relay.users.empty());
    EXPECT_TRUE(config.relay.rest_secrets.empty());
    EXPECT_EQ(config.relay.bandwidth_burst_bytes, 0u);
    EXPECT_TRUE(config.relay.peer_allow.empty());
    EXPECT_TRUE(config.relay.peer_deny.empty());
}

TEST(LoadConfig, ReadsTheDefaultFile) {
    const EngineConfig config = load_config(default_config_path().string());
    ASSERT_EQ(config.ports.size(), 1u);
    EXPECT_EQ(config.ports[0].device, "net_tap0");
}

TEST(LoadConfig, MissingFileIsAnErrorOnKeyFile) {
    const std::string path = "/nonexistent/punchlined.toml";
    try {
        load_config(path);
        FAIL() << "loaded a missing file";
    } catch (const ConfigError& error) {
        EXPECT_EQ(error.key(), "file");
        EXPECT_EQ(error.line(), 0u);
        EXPECT_STREQ(error.what(),
                     "file: cannot read /nonexistent/punchlined.toml: No such file or directory");
    }
}

TEST(LoadConfig, DirectoryIsAnErrorOnKeyFile) {
    try {
        load_config("/");
        FAIL() << "loaded a directory";
    } catch (const ConfigError& error) {
        EXPECT_EQ(error.key(), "file");
        EXPECT_STREQ(error.what(), "file: cannot read /: Is a directory");
    }
}

TEST(ParseConfig, AbsentOptionalKeysTakeTheirDefaults) {
    const EngineConfig config = parse_config(eal + port, "test.toml");
    const EngineConfig defaults;
    const PortConfig port_defaults;
    EXPECT_EQ(config.eal_args, std::vector<std::string>{"--no-pci"});
    EXPECT_EQ(config.workers, defaults.workers);
    EXPECT_EQ(config.mbufs, defaults.mbufs);
    EXPECT_EQ(config.burst, defaults.burst);
    EXPECT_EQ(config.steering, Steering::automatic);
    EXPECT_EQ(config.stun.enabled, defaults.stun.enabled);
    EXPECT_EQ(config.stun.port, defaults.stun.port);
    EXPECT_EQ(config.stun.alternate_port, defaults.stun.alternate_port);
    EXPECT_EQ(config.stun.software, defaults.stun.software);
    EXPECT_EQ(config.neighbour.reachable_ms, defaults.neighbour.reachable_ms);
    EXPECT_EQ(config.neighbour.retransmit_ms, defaults.neighbour.retransmit_ms);
    EXPECT_EQ(config.neighbour.max_probes, defaults.neighbour.max_probes);
    EXPECT_EQ(config.neighbour.failed_retry_ms, defaults.neighbour.failed_retry_ms);
    EXPECT_EQ(config.neighbour.capacity, defaults.neighbour.capacity);
    EXPECT_FALSE(config.relay.enabled) << "no [relay]: no relay";
    ASSERT_EQ(config.ports.size(), 1u);
    const PortConfig& ring = config.ports[0];
    EXPECT_EQ(ring.device, "net_ring0");
    EXPECT_EQ(ring.ipv4, std::vector{address("198.18.0.2")});
    EXPECT_TRUE(ring.ipv6.empty());
    EXPECT_EQ(ring.gateway4, std::nullopt);
    EXPECT_EQ(ring.gateway6, std::nullopt);
    EXPECT_EQ(ring.prefix4, port_defaults.prefix4);
    EXPECT_EQ(ring.prefix6, port_defaults.prefix6);
    EXPECT_EQ(ring.rx_checksum, port_defaults.rx_checksum);
}

TEST(ParseConfig, AlternateServerIsAnAddressAndPortOfEitherFamily) {
    EXPECT_FALSE(parse_config(eal + port, "test.toml").relay.alternate_server);
    stun::Address expected = address("198.51.100.20");
    expected.port = 3478;
    EXPECT_EQ(parse_config("[relay]\nalternate_server = \"198.51.100.20:3478\"\n" + eal + port,
                           "test.toml")
                  .relay.alternate_server,
              expected);
    expected = address("2001:db8::20");
    expected.port = 5349;
    EXPECT_EQ(parse_config("[relay]\nalternate_server = \"[2001:db8::20]:5349\"\n" + eal + port,
                           "test.toml")
                  .relay.alternate_server,
              expected);
}

TEST(ParseConfig, ControlDefaultsToTheRunSocketWithoutAGroup) {
    const EngineConfig config = parse_config(eal + port, "test.toml");
    EXPECT_EQ(config.control.socket, "/run/punchline/punchlined.sock");
    EXPECT_EQ(config.control.group, "");
}

TEST(ParseConfig, ControlSectionRoundTrips) {
    const std::string longest = "/" + std::string(106, 's');
    const EngineConfig config = parse_config(
        "[control]\nsocket = \"" + longest + "\"\ngroup = \"punch_line-2.ops\"\n" + eal + port,
        "test.toml");
    EXPECT_EQ(config.control.socket, longest);
    EXPECT_EQ(config.control.group, "punch_line-2.ops");
}

TEST(ParseConfig, MetricsOffAndLogInfoOnStderrByDefault) {
    const EngineConfig config = parse_config(eal + port, "test.toml");
    EXPECT_FALSE(config.metrics.listen);
    EXPECT_EQ(config.log.level, LogLevel::info);
    EXPECT_EQ(config.log.target, LogTarget::stderr_stream);
}

TEST(ParseConfig, MetricsAndLogSectionsRoundTrip) {
    const EngineConfig v4 = parse_config(
        "[metrics]\nlisten = \"127.0.0.1:9641\"\n[log]\nlevel = \"debug\"\ntarget = \"syslog\"\n" +
            eal + port,
        "test.toml");
    ASSERT_TRUE(v4.metrics.listen);
    stun::Address expected = address("127.0.0.1");
    expected.port = 9641;
    EXPECT_EQ(*v4.metrics.listen, expected);
    EXPECT_EQ(v4.log.level, LogLevel::debug);
    EXPECT_EQ(v4.log.target, LogTarget::syslog);
    const EngineConfig v6 =
        parse_config("[metrics]\nlisten = \"[::]:0\"\n[log]\nlevel = \"error\"\n" + eal + port,
                     "test.toml");
    ASSERT_TRUE(v6.metrics.listen);
    EXPECT_EQ(*v6.metrics.listen, address("::"));
    EXPECT_EQ(v6.log.level, LogLevel::error);
    const EngineConfig none = parse_config("[metrics]\n" + eal + port, "test.toml");
    EXPECT_FALSE(none.metrics.listen) << "[metrics] without listen: off";
}

TEST(ParseConfig, EmptyTablesTakeTheirDefaults) {
    const EngineConfig config =
        parse_config("[engine]\n[stun]\n[neighbour]\n[relay]\n" + eal + port, "test.toml");
    EXPECT_EQ(config.workers, EngineConfig{}.workers);
    EXPECT_EQ(config.stun.port, StunConfig{}.port);
    EXPECT_EQ(config.neighbour.capacity, NeighbourConfig{}.capacity);
    EXPECT_EQ(config.relay.realm, RelayConfig{}.realm);
}

TEST(ParseConfig, ReadsEveryKeyAtItsLimits) {
    const EngineConfig config = parse_config(
        "[engine]\nworkers = [0, 1023]\nmbufs = 1048575\nburst = 512\nsteering = \"software\"\n"
        "[stun]\nenabled = false\nport = 65535\nalternate_port = 0\nsoftware = \"" +
            std::string(509, 's') + "\"\n" +
            "[neighbour]\nreachable_ms = 3600000\nretransmit_ms = 60000\nmax_probes = 20\n"
            "failed_retry_ms = 3600000\ncapacity = 4096\n" + eal +
            "[[port]]\ndevice = \"net_af_packet0\"\n"
            "ipv6 = [\"2001:db8::2\"]\nprefix6 = 128\n"
            "prefix4 = 32\nrx_checksum = \"trust\"\n",
        "test.toml");
    EXPECT_EQ(config.workers, (std::vector<unsigned>{0, 1023}));
    EXPECT_EQ(config.mbufs, 1048575u);
    EXPECT_EQ(config.burst, 512u);
    EXPECT_EQ(config.steering, Steering::software);
    EXPECT_FALSE(config.stun.enabled);
    EXPECT_EQ(config.stun.port, 65535);
    EXPECT_EQ(config.stun.alternate_port, 0) << "0 turns the alternate port off";
    EXPECT_EQ(config.stun.software.size(), 509u);
    EXPECT_EQ(config.neighbour.reachable_ms, 3600000u);
    EXPECT_EQ(config.neighbour.retransmit_ms, 60000u);
    EXPECT_EQ(config.neighbour.max_probes, 20u);
    EXPECT_EQ(config.neighbour.failed_retry_ms, 3600000u);
    EXPECT_EQ(config.neighbour.capacity, 4096u);
    ASSERT_EQ(config.ports.size(), 1u);
    EXPECT_TRUE(config.ports[0].ipv4.empty()) << "an IPv6-only port";
    EXPECT_EQ(config.ports[0].prefix6, 128);
    EXPECT_EQ(config.ports[0].prefix4, 32);
    EXPECT_EQ(config.ports[0].rx_checksum, RxChecksum::trust);
}

TEST(ParseConfig, NeighbourKeysAtTheirLowerLimits) {
    const EngineConfig config = parse_config(
        "[neighbour]\nreachable_ms = 100\nretransmit_ms = 100\nmax_probes = 1\n"
        "failed_retry_ms = 100\ncapacity = 2\n" + eal + port,
        "test.toml");
    EXPECT_EQ(config.neighbour.reachable_ms, 100u);
    EXPECT_EQ(config.neighbour.retransmit_ms, 100u);
    EXPECT_EQ(config.neighbour.max_probes, 1u);
    EXPECT_EQ(config.neighbour.failed_retry_ms, 100u);
    EXPECT_EQ(config.neighbour.capacity, 2u);
}

TEST(ParseConfig, EmptySoftwareLeavesTheAttributeOut) {
    const EngineConfig config = parse_config("[stun]\nsoftware = \"\"\n" + eal + port, "test.toml");
    EXPECT_EQ(config.stun.software, "");
}

TEST(ParseConfig, GatewaysOnLinkUnderShortPrefixes) {
    const EngineConfig config = parse_config(
        eal +
            "[[port]]\ndevice = \"net_tap0\"\n"
            "ipv4 = [\"198.18.0.2\"]\nprefix4 = 15\ngateway4 = \"198.19.255.254\"\n"
            "ipv6 = [\"2001:db8::2\"]\nprefix6 = 32\ngateway6 = \"2001:db8:ffff::1\"\n",
        "test.toml");
    EXPECT_EQ(config.ports[0].gateway4, address("198.19.255.254"));
    EXPECT_EQ(config.ports[0].gateway6, address("2001:db8:ffff::1"));
}

TEST(ParseConfig, SeveralPortsInFileOrder) {
    const EngineConfig config = parse_config(
        eal + port +
            "[[port]]\ndevice = \"net_ring1\"\nipv4 = [\"198.18.1.2\", \"198.18.1.3\"]\n",
        "test.toml");
    ASSERT_EQ(config.ports.size(), 2u);
    EXPECT_EQ(config.ports[0].device, "net_ring0");
    EXPECT_EQ(config.ports[1].device, "net_ring1");
    EXPECT_EQ(config.ports[1].ipv4, (std::vector{address("198.18.1.2"), address("198.18.1.3")}));
}

TEST(ParseConfig, PortsAsAnInlineArrayOfTables) {
    const EngineConfig config = parse_config(
        "port = [{ device = \"net_ring0\", ipv4 = [\"198.18.0.2\"] }]\n" + eal, "test.toml");
    ASSERT_EQ(config.ports.size(), 1u);
    EXPECT_EQ(config.ports[0].device, "net_ring0");
}

std::string repeated(std::string_view text, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) out += text;
    return out;
}

// Three lines: the smallest [relay] that is enabled and valid.
const std::string relay_on = "[relay]\nenabled = true\nrest_secrets = [\"0123456789abcdef\"]\n";

// The relay's numeric keys against `expected`'s (a RelayConfig with designated initializers).
void expect_numbers(const RelayConfig& relay, const RelayConfig& expected) {
    EXPECT_EQ(relay.nonce_lifetime_s, expected.nonce_lifetime_s);
    EXPECT_EQ(relay.allocation_lifetime_max_s, expected.allocation_lifetime_max_s);
    EXPECT_EQ(relay.max_allocations, expected.max_allocations);
    EXPECT_EQ(relay.max_allocations_per_user, expected.max_allocations_per_user);
    EXPECT_EQ(relay.max_permissions_per_allocation, expected.max_permissions_per_allocation);
    EXPECT_EQ(relay.max_channels_per_allocation, expected.max_channels_per_allocation);
    EXPECT_EQ(relay.peer_entries, expected.peer_entries);
    EXPECT_EQ(relay.reservations, expected.reservations);
    EXPECT_EQ(relay.bandwidth_bytes_per_s, expected.bandwidth_bytes_per_s);
    EXPECT_EQ(relay.bandwidth_burst_bytes, expected.bandwidth_burst_bytes);
    EXPECT_EQ(relay.unauthenticated_requests_per_s, expected.unauthenticated_requests_per_s);
    EXPECT_EQ(relay.unauthenticated_burst, expected.unauthenticated_burst);
}

// The defaults config.h documents, and that docs/operations.md and punchlined.toml show.
TEST(ParseConfig, RelayDefaults) {
    const RelayConfig relay = parse_config(relay_on + eal + port, "test.toml").relay;
    EXPECT_TRUE(relay.enabled);
    EXPECT_EQ(relay.realm, "punchline");
    EXPECT_EQ(relay.port_first, 49152);
    EXPECT_EQ(relay.port_last, 65535);
    EXPECT_TRUE(relay.users.empty());
    EXPECT_EQ(relay.rest_secrets, std::vector<std::string>{"0123456789abcdef"});
    const RelayConfig defaults = {.nonce_lifetime_s = 600,
                                  .allocation_lifetime_max_s = 3600,
                                  .max_allocations = 10000,
                                  .max_allocations_per_user = 10,
                                  .max_permissions_per_allocation = 16,
                                  .max_channels_per_allocation = 16,
                                  .peer_entries = 0,  // one per allocation
                                  .reservations = 0,  // one per sixteen allocations
                                  .bandwidth_bytes_per_s = 0,  // unlimited
                                  .bandwidth_burst_bytes = 0,
                                  .unauthenticated_requests_per_s = 20,
                                  .unauthenticated_burst = 40};
    expect_numbers(relay, defaults);
    EXPECT_TRUE(relay.peer_allow.empty());
    EXPECT_TRUE(relay.peer_deny.empty());
    // Fixed by RFC 8656, not keys.
    EXPECT_EQ(RelayConfig::default_allocation_lifetime_s, 600u);
    EXPECT_EQ(RelayConfig::permission_lifetime_s, 300u);
    EXPECT_EQ(RelayConfig::channel_lifetime_s, 600u);

    const RelayConfig absent = parse_config(eal + port, "test.toml").relay;
    EXPECT_FALSE(absent.enabled);
    EXPECT_EQ(absent.realm, relay.realm);
    EXPECT_EQ(absent.port_first, relay.port_first);
    EXPECT_EQ(absent.port_last, relay.port_last);
    EXPECT_TRUE(absent.users.empty());
    EXPECT_TRUE(absent.rest_secrets.empty());
    expect_numbers(absent, defaults);
}

// docs/sfu.md, "Configuration": the defaults, and the role off without token_secrets.
TEST(ParseConfig, SfuDefaultsAndOffWithoutSecrets) {
    const SfuConfig absent = parse_config(eal + port, "test.toml").sfu;
    EXPECT_FALSE(absent.enabled());
    EXPECT_EQ(absent.port, 3480);
    EXPECT_EQ(absent.max_legs, 65536u);
    EXPECT_EQ(absent.max_legs_per_session, 8u);
    EXPECT_EQ(absent.leg_timeout_s, 15u);
    EXPECT_EQ(absent.unauthenticated_requests_per_s, 20u);
    EXPECT_EQ(absent.unauthenticated_burst, 40u);
    // A section without secrets is off, and not checked against the other listeners.
    const SfuConfig off = parse_config("[sfu]\nport = 3478\n" + eal + port, "test.toml").sfu;
    EXPECT_FALSE(off.enabled());
    EXPECT_EQ(off.port, 3478);
    const SfuConfig on =
        parse_config("[sfu]\ntoken_secrets = [\"0123456789abcdef\"]\n" + eal + port, "test.toml")
            .sfu;
    EXPECT_TRUE(on.enabled());
    EXPECT_EQ(on.token_secrets, std::vector<std::string>{"0123456789abcdef"});
}

TEST(ParseConfig, SfuSectionRoundTrips) {
    const SfuConfig sfu =
        parse_config("[sfu]\nport = 4000\n"
                     "token_secrets = [\"0123456789abcdef\", \"the next secret, rotated in\"]\n"
                     "max_legs = 1\nmax_legs_per_session = 2\nleg_timeout_s = 3600\n"
                     "unauthenticated_requests_per_s = 1000000\nunauthenticated_burst = 1\n" +
                         eal + port,
                     "test.toml")
            .sfu;
    EXPECT_EQ(sfu.port, 4000);
    EXPECT_EQ(sfu.token_secrets,
              (std::vector<std::string>{"0123456789abcdef", "the next secret, rotated in"}));
    EXPECT_EQ(sfu.max_legs, 1u);
    EXPECT_EQ(sfu.max_legs_per_session, 2u);
    EXPECT_EQ(sfu.leg_timeout_s, 3600u);
    EXPECT_EQ(sfu.unauthenticated_requests_per_s, 1000000u);
    EXPECT_EQ(sfu.unauthenticated_burst, 1u);
}

TEST(ParseConfig, RelaySectionRoundTrips) {
    const RelayConfig relay =
        parse_config("[relay]\nenabled = true\nrealm = \"example.org\"\nports = \"40000-40999\"\n"
                     "users = [{ name = \"alice\", password = \"correct horse\" },\n"
                     "         { name = \"bob\", password = \"battery staple\" }]\n"
                     "rest_secrets = [\"0123456789abcdef\", \"the next secret, rotated in\"]\n"
                     "nonce_lifetime_s = 300\nallocation_lifetime_max_s = 7200\n"
                     "max_allocations = 5000\nmax_allocations_per_user = 3\n"
                     "max_permissions_per_allocation = 8\nmax_channels_per_allocation = 32\n"
                     "peer_entries = 7500\nreservations = 5000\n"
                     "bandwidth_bytes_per_s = 125000\nbandwidth_burst_bytes = 250000\n"
                     "unauthenticated_requests_per_s = 5\nunauthenticated_burst = 10\n"
                     "peer_allow = [\"10.1.2.0/24\", \"fd00::1\"]\n"
                     "peer_deny = [\"203.0.113.0/24\", \"2001:db8:dead::/48\"]\n" +
                         eal + port,
                     "test.toml")
            .relay;
    EXPECT_TRUE(relay.enabled);
    EXPECT_EQ(relay.realm, "example.org");
    EXPECT_EQ(relay.port_first, 40000);
    EXPECT_EQ(relay.port_last, 40999);
    ASSERT_EQ(relay.users.size(), 2u);
    EXPECT_EQ(relay.users[0].name, "alice");
    EXPECT_EQ(relay.users[0].password, "correct horse");
    EXPECT_EQ(relay.users[1].name, "bob");
    EXPECT_EQ(relay.users[1].password, "battery staple");
    EXPECT_EQ(relay.rest_secrets,
              (std::vector<std::string>{"0123456789abcdef", "the next secret, rotated in"}));
    expect_numbers(relay, {.nonce_lifetime_s = 300,
                           .allocation_lifetime_max_s = 7200,
                           .max_allocations = 5000,
                           .max_allocations_per_user = 3,
                           .max_permissions_per_allocation = 8,
                           .max_channels_per_allocation = 32,
                           .peer_entries = 7500,
                           .reservations = 5000,
                           .bandwidth_bytes_per_s = 125000,
                           .bandwidth_burst_bytes = 250000,
                           .unauthenticated_requests_per_s = 5,
                           .unauthenticated_burst = 10});
    ASSERT_EQ(relay.peer_allow.size(), 2u);
    EXPECT_EQ(relay.peer_allow[0].family, stun::AddressFamily::ipv4);
    EXPECT_EQ(relay.peer_allow[0].prefix_length, 24);
    EXPECT_EQ(relay.peer_allow[0].network, address("10.1.2.0").ip);
    EXPECT_EQ(relay.peer_allow[1].family, stun::AddressFamily::ipv6);
    EXPECT_EQ(relay.peer_allow[1].prefix_length, 128) << "a bare address is a /128";
    EXPECT_EQ(relay.peer_allow[1].network, address("fd00::1").ip);
    ASSERT_EQ(relay.peer_deny.size(), 2u);
    EXPECT_EQ(relay.peer_deny[0].prefix_length, 24);
    EXPECT_EQ(relay.peer_deny[0].network, address("203.0.113.0").ip);
    EXPECT_EQ(relay.peer_deny[1].prefix_length, 48);
    EXPECT_EQ(relay.peer_deny[1].network, address("2001:db8:dead::").ip);
}

TEST(ParseConfig, RelayUsersAsTablesOfTheirOwn) {
    const RelayConfig relay = parse_config(
        "[relay]\nenabled = true\n"
        "[[relay.users]]\nname = \"alice\"\npassword = \"a\"\n"
        "[[relay.users]]\nname = \"bob\"\npassword = \"b\"\n" + eal + port,
        "test.toml").relay;
    ASSERT_EQ(relay.users.size(), 2u);
    EXPECT_EQ(relay.users[1].name, "bob");
    EXPECT_TRUE(relay.rest_secrets.empty()) << "users alone authenticate";
}

TEST(ParseConfig, RelayKeysAtTheirLowerLimits) {
    const RelayConfig relay = parse_config(
        relay_on + "ports = \"1024-1024\"\nnonce_lifetime_s = 5\n"
        "allocation_lifetime_max_s = 600\nmax_allocations = 1\nmax_allocations_per_user = 1\n"
        "max_permissions_per_allocation = 1\nmax_channels_per_allocation = 1\n"
        "peer_entries = 1\nreservations = 1\n"
        "bandwidth_bytes_per_s = 1\nbandwidth_burst_bytes = 1500\n"
        "unauthenticated_requests_per_s = 1\nunauthenticated_burst = 1\n"
        "realm = \"r\"\nusers = [{ name = \"a\", password = \"p\" }]\n" + eal + port,
        "test.toml").relay;
    EXPECT_EQ(relay.port_first, 1024);
    EXPECT_EQ(relay.port_last, 1024) << "one port for the one worker";
    expect_numbers(relay, {.nonce_lifetime_s = 5,
                           .allocation_lifetime_max_s = 600,
                           .max_allocations = 1,
                           .max_allocations_per_user = 1,
                           .max_permissions_per_allocation = 1,
                           .max_channels_per_allocation = 1,
                           .peer_entries = 1,
                           .reservations = 1,
                           .bandwidth_bytes_per_s = 1,
                           .bandwidth_burst_bytes = 1500,
                           .unauthenticated_requests_per_s = 1,
                           .unauthenticated_burst = 1});
    EXPECT_EQ(relay.realm, "r");
    EXPECT_EQ(relay.users[0].name, "a");
}

TEST(ParseConfig, RelayKeysAtTheirUpperLimits) {
    // 127 characters in 254 bytes: the limit counts characters.
    const std::string realm = repeated("\u00e9", 127);
    const RelayConfig relay = parse_config(
        relay_on + "ports = \"65535-65535\"\nnonce_lifetime_s = 86400\n"
        "allocation_lifetime_max_s = 86400\nmax_allocations = 1048576\n"
        "max_allocations_per_user = 1048576\nmax_permissions_per_allocation = 4096\n"
        "max_channels_per_allocation = 4096\nbandwidth_bytes_per_s = 1000000000\n"
        "peer_entries = 67108864\nreservations = 1048576\n"
        "bandwidth_burst_bytes = 1000000000\nunauthenticated_requests_per_s = 1000000\n"
        "unauthenticated_burst = 1000000\nrealm = \"" + realm + "\"\n" +
        "users = [{ name = \"" + std::string(508, 'n') + "\", password = \"" +
        std::string(512, 'p') + "\" }]\n" + eal + port,
        "test.toml").relay;
    EXPECT_EQ(relay.port_first, 65535);
    expect_numbers(relay, {.nonce_lifetime_s = 86400,
                           .allocation_lifetime_max_s = 86400,
                           .max_allocations = 1048576,
                           .max_allocations_per_user = 1048576,
                           .max_permissions_per_allocation = 4096,
                           .max_channels_per_allocation = 4096,  // 0x4000-0x4FFF
                           .peer_entries = 67108864,
                           .reservations = 1048576,
                           .bandwidth_bytes_per_s = 1000000000,
                           .bandwidth_burst_bytes = 1000000000,
                           .unauthenticated_requests_per_s = 1000000,
                           .unauthenticated_burst = 1000000});
    EXPECT_EQ(relay.realm, realm);
    EXPECT_EQ(relay.users[0].name.size(), 508u);
    EXPECT_EQ(relay.users[0].password.size(), 512u);
}

TEST(ParseConfig, RelayBandwidthBurstDefaultsToOneSecond) {
    const RelayConfig relay =
        parse_config("[relay]\nbandwidth_bytes_per_s = 125000\n" + eal + port, "test.toml").relay;
    EXPECT_EQ(relay.bandwidth_burst_bytes, 125000u);
    const RelayConfig smallest =
        parse_config("[relay]\nbandwidth_bytes_per_s = 1500\n" + eal + port, "test.toml").relay;
    EXPECT_EQ(smallest.bandwidth_burst_bytes, 1500u);
}

// RFC 8489 §9.2.2: the client sends its name prepared; the password stays as written, since
// the key derivation (stun::long_term_key_md5) prepares it itself.
TEST(ParseConfig, RelayUserNameIsKeptAsSaslprepMakesIt) {
    const RelayConfig relay = parse_config(
        relay_on + "users = [{ name = \"al\\u00ADice\", password = \"pass\\u00A0word\" }]\n" +
            eal + port,
        "test.toml").relay;
    ASSERT_EQ(relay.users.size(), 1u);
    EXPECT_EQ(relay.users[0].name, "alice") << "SASLprep maps the soft hyphen to nothing";
    EXPECT_EQ(relay.users[0].password, "pass\u00a0word");
}

TEST(ParseConfig, RelayRealmMayHoldQuotedPairs) {
    // TOML 'literal strings' keep backslashes: the realm is a\"b, a quote escaped (RFC 3261).
    const RelayConfig relay =
        parse_config(relay_on + "realm = 'a\\\"b\\\\c'\n" + eal + port, "test.toml").relay;
    EXPECT_EQ(relay.realm, "a\\\"b\\\\c");
}

// A disabled relay's section is read and its keys checked, but not against the rest of the
// file: stun.port inside the range, more workers than ports, no credentials.
TEST(ParseConfig, DisabledRelayIsNotCheckedAgainstTheRestOfTheFile) {
    const EngineConfig config = parse_config(
        "[engine]\nworkers = [1, 2, 3]\n[stun]\nport = 50000\n"
        "[relay]\nenabled = false\nports = \"50000-50001\"\n" + eal + port,
        "test.toml");
    EXPECT_FALSE(config.relay.enabled);
    EXPECT_EQ(config.relay.port_first, 50000);
}

// Messages end up in logs: a password or a REST secret is described, never shown.
TEST(ParseConfig, RelayMessagesNeverShowSecrets) {
    for (const std::string& section : {
             std::string("[relay]\nusers = [{ name = \"alice\", password = \"hunter\\u0007\" }]\n"),
             std::string("[relay]\nusers = [{ name = \"alice\", password = 20240101 }]\n"),
             std::string("[relay]\nusers = [{ name = \"alice\", password = \"hunter" +
                         std::string(600, '2') + "\" }]\n"),
             std::string("[relay]\nrest_secrets = [\"hunter2\"]\n"),
             std::string("[relay]\nrest_secrets = [20240101]\n"),
             std::string("[relay]\nrest_secrets = \"hunter2hunter2hunter2\"\n"),
         }) {
        const auto error = error_of(section + eal + port);
        ASSERT_TRUE(error);
        const std::string what = error->what();
        EXPECT_EQ(what.find("hunter"), std::string::npos) << what;
        EXPECT_EQ(what.find("20240101"), std::string::npos) << what;
    }
}

TEST(ParseConfig, MessageNamesSourceKeyLineAndWhatWasExpected) {
    try {
        parse_config(eal + "[[port]]\ndevice = \"net_tap0\"\nipv4 = [\"198.18.0.300\"]\n",
                     "punchlined.toml");
        FAIL() << "parsed a bad address";
    } catch (const ConfigError& error) {
        EXPECT_STREQ(error.what(),
                     "punchlined.toml: port[0].ipv4[0] (line 5): expected an IPv4 address like "
                     "198.18.0.2, got \"198.18.0.300\"");
    }
    // The source name is parse_config's alone: an error made afterwards does not carry it.
    EXPECT_STREQ(ConfigError("stun.port", 4, "expected x").what(),
                 "stun.port (line 4): expected x");
}

TEST(ParseConfig, MissingEalIsAnErrorWithoutALine) {
    const auto error = error_of(port);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->key(), "eal");
    EXPECT_EQ(error->line(), 0u);
    EXPECT_STREQ(error->what(),
                 "test.toml: eal: missing; expected an [eal] table with the EAL arguments, e.g. "
                 R"(args = ["-l", "0-1", "--no-pci", ...])");
}

TEST(ParseConfig, MissingPortIsAnErrorWithoutALine) {
    const auto error = error_of(eal);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->key(), "port");
    EXPECT_EQ(error->line(), 0u);
    EXPECT_STREQ(error->what(),
                 "test.toml: port: missing; expected at least one [[port]] table with a device "
                 "and its ipv4 or ipv6 addresses");
}

TEST(ParseConfig, SyntaxErrorWithoutAKeyReportsItsLine) {
    const auto error = error_of("[eal]\nargs = [\"-l\",\n        \"0\",\n        -]\n" + port);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->key(), "");
    EXPECT_EQ(error->line(), 4u);
    EXPECT_EQ(std::string(error->what()).rfind("test.toml: line 4: ", 0), 0u) << error->what();
}

// One named case per error: the TOML under test (its line 1 is the file's line 1), the parts
// appended after it to make the rest of the file valid, and what the error must say.
enum class Append { eal_and_port, eal, port, nothing };

struct ErrorCase {
    std::string name;
    std::string toml;
    Append append;
    std::string key;
    unsigned line;
    std::string message;  // a substring of what()
};

void PrintTo(const ErrorCase& c, std::ostream* out) { *out << c.name; }

std::string complete(const ErrorCase& c) {
    switch (c.append) {
        case Append::eal_and_port: return c.toml + eal + port;
        case Append::eal: return c.toml + eal;
        case Append::port: return c.toml + port;
        case Append::nothing: break;
    }
    return c.toml;
}

const std::vector<ErrorCase> error_cases = {
    // TOML syntax: toml++'s description, at the nearest key when the line starts with one.
    {"SyntaxMissingValue", "[stun]\nport =\n", Append::eal_and_port, "stun.port", 2,
     "expected value"},
    {"SyntaxRedefinedKey", "[stun]\nport = 1\nport = 2\n", Append::eal_and_port, "stun.port", 3,
     "cannot redefine existing integer 'port'"},
    {"SyntaxAfterDottedKey", "stun . port = 34 78\n", Append::eal_and_port, "stun.port", 1,
     "Error while parsing"},
    {"SyntaxInSecondPort", port + "[[port]]\ndevice = \"net_ring1\" x\n", Append::eal,
     "port[1].device", 5, "Error while parsing"},

    // Unknown keys, the first in file order.
    {"UnknownRootKey", "workers = [1]\n", Append::eal_and_port, "workers", 1,
     "unknown key; known keys here: eal, engine, stun, neighbour, relay, sfu, node, control, metrics, "
     "log, port"},
    {"UnknownEalKey", "[eal]\nargs = [\"--no-pci\"]\nargv = []\n", Append::port, "eal.argv", 3,
     "unknown key; known keys here: args"},
    {"UnknownEngineKey", "[engine]\nworker = [1]\n", Append::eal_and_port, "engine.worker", 2,
     "unknown key; known keys here: workers, mbufs, burst, steering"},
    {"UnknownStunKey", "[stun]\nport = 3478\nalternate = 3479\n", Append::eal_and_port,
     "stun.alternate", 3, "known keys here: enabled, port, alternate_port, software"},
    {"UnknownKeyFirstInFileOrder", "[stun]\nzzz = 1\naaa = 2\n", Append::eal_and_port,
     "stun.zzz", 2, "unknown key"},
    {"UnknownPortKey", port + "gateway = \"198.18.0.1\"\n", Append::eal, "port[0].gateway", 4,
     "known keys here: device, ipv4, ipv6, gateway4, prefix4, gateway6, prefix6, rx_checksum"},
    {"UnknownNestedTable", "[stun.extra]\nx = 1\n", Append::eal_and_port, "stun.extra", 1,
     "unknown key"},

    // [eal]
    {"EalNotATable", "eal = [\"--no-pci\"]\n", Append::port, "eal", 1,
     "expected a table [eal], got an array"},
    {"EalArgsMissing", "[eal]\n", Append::port, "eal.args", 1,
     R"(missing; expected the EAL arguments, e.g. ["-l", "0-1", "--no-pci", ...])"},
    {"EalArgsEmpty", "[eal]\nargs = []\n", Append::port, "eal.args", 2,
     R"(expected the EAL arguments, e.g. ["-l", "0-1", "--no-pci", ...], got an empty array)"},
    {"EalArgsNotAnArray", "[eal]\nargs = \"-l 0\"\n", Append::port, "eal.args", 2,
     R"(got "-l 0")"},
    {"EalArgNotAString", "[eal]\nargs = [\"-l\",\n        0]\n", Append::port, "eal.args[1]", 3,
     "expected a string, got 0"},

    // [engine]
    {"EngineNotATable", "engine = 1\n", Append::eal_and_port, "engine", 1,
     "expected a table [engine], got 1"},
    {"WorkersEmpty", "[engine]\nworkers = []\n", Append::eal_and_port, "engine.workers", 2,
     "expected a non-empty array of worker lcore ids, e.g. [1], got an empty array"},
    {"WorkersNotAnArray", "[engine]\nworkers = 1\n", Append::eal_and_port, "engine.workers", 2,
     "expected a non-empty array of worker lcore ids, e.g. [1], got 1"},
    {"WorkerAbove1023", "[engine]\nworkers = [1, 1024]\n", Append::eal_and_port,
     "engine.workers[1]", 2, "expected an integer 0..1023 (an lcore id), got 1024"},
    {"WorkerNegative", "[engine]\nworkers = [-1]\n", Append::eal_and_port, "engine.workers[0]",
     2, "got -1"},
    {"WorkerNotAnInteger", "[engine]\nworkers = [\"1\"]\n", Append::eal_and_port,
     "engine.workers[0]", 2, R"(expected an integer 0..1023 (an lcore id), got "1")"},
    {"WorkerTwice", "[engine]\nworkers = [1,\n           2,\n           1]\n",
     Append::eal_and_port, "engine.workers[2]", 4,
     "expected distinct lcore ids; 1 is also engine.workers[0]"},
    {"MbufsBelow1023", "[engine]\nmbufs = 1022\n", Append::eal_and_port, "engine.mbufs", 2,
     "expected an integer 1023..1048575, got 1022"},
    {"MbufsAbove1048575", "[engine]\nmbufs = 1048576\n", Append::eal_and_port, "engine.mbufs",
     2, "got 1048576"},
    {"BurstZero", "[engine]\nburst = 0\n", Append::eal_and_port, "engine.burst", 2,
     "expected an integer 1..512, got 0"},
    {"BurstAbove512", "[engine]\nburst = 513\n", Append::eal_and_port, "engine.burst", 2,
     "got 513"},
    {"BurstFloatingPoint", "[engine]\nburst = 32.0\n", Append::eal_and_port, "engine.burst", 2,
     "expected an integer 1..512, got 32.0"},
    {"SteeringUnknown", "[engine]\nsteering = \"rss\"\n", Append::eal_and_port,
     "engine.steering", 2, "expected \"auto\" or \"software\", got \"rss\""},
    {"SteeringNotAString", "[engine]\nsteering = 1\n", Append::eal_and_port, "engine.steering",
     2, "expected \"auto\" or \"software\""},

    // [stun]
    {"StunNotATable", "stun = true\n", Append::eal_and_port, "stun", 1,
     "expected a table [stun], got true"},
    {"StunEnabledNotABool", "[stun]\nenabled = \"yes\"\n", Append::eal_and_port,
     "stun.enabled", 2, R"(expected true or false, got "yes")"},
    {"StunPortZero", "[stun]\nport = 0\n", Append::eal_and_port, "stun.port", 2,
     "expected an integer 1..65535, got 0"},
    {"StunPortAbove65535", "[stun]\nport = 65536\n", Append::eal_and_port, "stun.port", 2,
     "got 65536"},
    {"AlternatePortAbove65535", "[stun]\nalternate_port = 65536\n", Append::eal_and_port,
     "stun.alternate_port", 2, "expected an integer 0..65535 (0: no alternate port), got 65536"},
    {"AlternatePortIsPort", "[stun]\nport = 4000\nalternate_port = 4000\n",
     Append::eal_and_port, "stun.alternate_port", 3,
     "expected 0 or a port other than stun.port (4000), got 4000"},
    {"DefaultAlternatePortIsPort", "[stun]\nport = 3479\n", Append::eal_and_port,
     "stun.alternate_port", 1, "other than stun.port (3479), got the default 3479"},
    {"SoftwareAbove509Bytes", "[stun]\nsoftware = \"" + std::string(510, 's') + "\"\n",
     Append::eal_and_port, "stun.software", 2,
     "expected a string of at most 509 bytes (RFC 8489 §14.14), got 510 bytes"},
    {"SoftwareNotAString", "[stun]\nsoftware = 1.5\n", Append::eal_and_port, "stun.software", 2,
     "expected a string, got 1.5"},

    // [neighbour]
    {"NeighbourNotATable", "neighbour = 1\n", Append::eal_and_port, "neighbour", 1,
     "expected a table [neighbour], got 1"},
    {"UnknownNeighbourKey", "[neighbour]\nreachable = 1000\n", Append::eal_and_port,
     "neighbour.reachable", 2,
     "known keys here: reachable_ms, retransmit_ms, max_probes, failed_retry_ms, capacity"},
    {"ReachableBelow100", "[neighbour]\nreachable_ms = 99\n", Append::eal_and_port,
     "neighbour.reachable_ms", 2, "expected an integer 100..3600000 (milliseconds), got 99"},
    {"ReachableAbove3600000", "[neighbour]\nreachable_ms = 3600001\n", Append::eal_and_port,
     "neighbour.reachable_ms", 2, "got 3600001"},
    {"RetransmitBelow100", "[neighbour]\nretransmit_ms = 50\n", Append::eal_and_port,
     "neighbour.retransmit_ms", 2, "expected an integer 100..60000 (milliseconds), got 50"},
    {"RetransmitAbove60000", "[neighbour]\nretransmit_ms = 60001\n", Append::eal_and_port,
     "neighbour.retransmit_ms", 2, "got 60001"},
    {"MaxProbesZero", "[neighbour]\nmax_probes = 0\n", Append::eal_and_port,
     "neighbour.max_probes", 2, "expected an integer 1..20, got 0"},
    {"MaxProbesAbove20", "[neighbour]\nmax_probes = 21\n", Append::eal_and_port,
     "neighbour.max_probes", 2, "got 21"},
    {"FailedRetryBelow100", "[neighbour]\nfailed_retry_ms = 0\n", Append::eal_and_port,
     "neighbour.failed_retry_ms", 2, "expected an integer 100..3600000 (milliseconds), got 0"},
    {"CapacityBelowTwo", "[neighbour]\ncapacity = 1\n", Append::eal_and_port,
     "neighbour.capacity", 2,
     "expected an integer 2..4096 (entries per port, the gateways included), got 1"},
    {"CapacityAbove4096", "[neighbour]\ncapacity = 4097\n", Append::eal_and_port,
     "neighbour.capacity", 2, "got 4097"},
    {"CapacityNotAnInteger", "[neighbour]\ncapacity = \"64\"\n", Append::eal_and_port,
     "neighbour.capacity", 2, R"(got "64")"},

    // [[port]]: the list
    {"PortASingleTable", "[port]\ndevice = \"net_ring0\"\n", Append::eal, "port", 1,
     "expected [[port]] tables (double brackets: one per port), got a table"},
    {"PortEmptyArray", "port = []\n", Append::eal, "port", 1,
     "expected at least one [[port]] table"},
    {"PortNotATable", "port = [1]\n", Append::eal, "port[0]", 1,
     "expected a [[port]] table, got 1"},

    // [[port]]: device
    {"DeviceMissing", "[[port]]\nipv4 = [\"198.18.0.2\"]\n", Append::eal, "port[0].device", 1,
     R"(missing; expected the EAL device name, e.g. "net_tap0" or "0000:03:00.0")"},
    {"DeviceEmpty", "[[port]]\ndevice = \"\"\nipv4 = [\"198.18.0.2\"]\n", Append::eal,
     "port[0].device", 2,
     R"(expected the EAL device name, e.g. "net_tap0" or "0000:03:00.0", got "")"},
    {"DeviceNotAString", "[[port]]\ndevice = 0\nipv4 = [\"198.18.0.2\"]\n", Append::eal,
     "port[0].device", 2, "got 0"},
    {"DeviceOnTwoPorts", port + "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.1.2\"]\n",
     Append::eal, "port[1].device", 5,
     R"(expected a device no other port uses; port[0].device is also "net_ring0")"},

    // [[port]]: addresses
    {"NoAddresses", "[[port]]\ndevice = \"net_ring0\"\n", Append::eal, "port[0]", 1,
     "missing addresses; expected ipv4 = [\"198.18.0.2\"] or ipv6 = [\"2001:db8::2\"] or both"},
    {"Ipv4NotAnArray", "[[port]]\ndevice = \"net_ring0\"\nipv4 = \"198.18.0.2\"\n", Append::eal,
     "port[0].ipv4", 3,
     "expected an array of 1 or 2 IPv4 addresses (primary, then RFC 5780 alternate), "
     R"(e.g. ["198.18.0.2", "198.18.0.3"], got "198.18.0.2")"},
    {"Ipv4Empty", "[[port]]\ndevice = \"net_ring0\"\nipv4 = []\n", Append::eal, "port[0].ipv4",
     3, "got an empty array"},
    {"Ipv4ThreeAddresses",
     "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.0.2\", \"198.18.0.3\", \"198.18.0.4\"]\n",
     Append::eal, "port[0].ipv4[2]", 3, "expected an array of 1 or 2 IPv4 addresses"},
    {"Ipv4BadAddress", "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.0.300\"]\n",
     Append::eal, "port[0].ipv4[0]", 3,
     R"(expected an IPv4 address like 198.18.0.2, got "198.18.0.300")"},
    {"Ipv4WithPrefixLength", "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.0.2/24\"]\n",
     Append::eal, "port[0].ipv4[0]", 3, R"(got "198.18.0.2/24")"},
    {"Ipv4NotAString", "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.0.2\",\n  3]\n",
     Append::eal, "port[0].ipv4[1]", 4, "expected an IPv4 address like 198.18.0.2, got 3"},
    {"Ipv4HoldsAnIpv6Address", "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"2001:db8::2\"]\n",
     Append::eal, "port[0].ipv4[0]", 3, R"(got "2001:db8::2" (an IPv6 address))"},
    {"Ipv4AlternateIsPrimary",
     "[[port]]\ndevice = \"net_ring0\"\nipv4 = [\"198.18.0.2\", \"198.18.0.2\"]\n", Append::eal,
     "port[0].ipv4[1]", 3,
     R"(expected an alternate address other than the primary, got "198.18.0.2")"},
    {"Ipv6BadAddress", "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"2001:db8::g\"]\n",
     Append::eal, "port[0].ipv6[0]", 3,
     R"(expected an IPv6 address like 2001:db8::2, got "2001:db8::g")"},
    {"Ipv6HoldsAnIpv4Address", "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"198.18.0.2\"]\n",
     Append::eal, "port[0].ipv6[0]", 3, "(an IPv4 address)"},
    {"Ipv6AlternateIsPrimarySpelledOtherwise",
     "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"2001:db8::2\", \"2001:db8:0:0::2\"]\n",
     Append::eal, "port[0].ipv6[1]", 3, "expected an alternate address other than the primary"},
    {"AddressOnTwoPorts",
     port + "[[port]]\ndevice = \"net_ring1\"\nipv4 = [\"198.18.1.2\",\n        \"198.18.0.2\"]\n",
     Append::eal, "port[1].ipv4[1]", 7,
     R"(expected an address no other port has; "198.18.0.2" is also port[0].ipv4[0] (line 3))"},
    {"Ipv6AddressOnTwoPortsSpelledOtherwise",
     "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"2001:db8::2\"]\n"
     "[[port]]\ndevice = \"net_ring1\"\nipv6 = [\"2001:0db8::0002\"]\n",
     Append::eal, "port[1].ipv6[0]", 6, "is also port[0].ipv6[0] (line 3)"},

    // [[port]]: prefixes, gateways, checksum
    {"Prefix4Zero", port + "prefix4 = 0\n", Append::eal, "port[0].prefix4", 4,
     "expected an integer 1..32, got 0"},
    {"Prefix4Above32", port + "prefix4 = 33\n", Append::eal, "port[0].prefix4", 4, "got 33"},
    {"Prefix6Zero", port + "prefix6 = 0\n", Append::eal, "port[0].prefix6", 4,
     "expected an integer 1..128, got 0"},
    {"Prefix6Above128", port + "prefix6 = 129\n", Append::eal, "port[0].prefix6", 4, "got 129"},
    {"Gateway4BadAddress", port + "gateway4 = \"198.18.0\"\n", Append::eal, "port[0].gateway4",
     4, R"(expected an IPv4 address like 198.18.0.2, got "198.18.0")"},
    {"Gateway4OffLink", port + "gateway4 = \"198.18.1.1\"\n", Append::eal, "port[0].gateway4", 4,
     "expected an on-link gateway inside 198.18.0.0/24 "
     R"((the primary ipv4 address and prefix4), got "198.18.1.1")"},
    {"Gateway4OffLinkUnderLongerPrefix", port + "prefix4 = 30\ngateway4 = \"198.18.0.5\"\n",
     Append::eal, "port[0].gateway4", 5, "inside 198.18.0.0/30"},
    {"Gateway4IsOwnAddress", port + "gateway4 = \"198.18.0.2\"\n", Append::eal,
     "port[0].gateway4", 4, "expected a next hop other than the port's own address"},
    {"Gateway4WithoutIpv4",
     "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"2001:db8::2\"]\ngateway4 = \"198.18.0.1\"\n",
     Append::eal, "port[0].gateway4", 4, "expected ipv4 addresses on this port too"},
    {"Gateway6OffLink",
     "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"2001:db8::2\"]\ngateway6 = \"2001:db8:1::1\"\n",
     Append::eal, "port[0].gateway6", 4,
     "expected an on-link gateway inside 2001:db8::/64 "
     R"((the primary ipv6 address and prefix6), got "2001:db8:1::1")"},
    {"Gateway6HoldsAnIpv4Address",
     "[[port]]\ndevice = \"net_ring0\"\nipv6 = [\"2001:db8::2\"]\ngateway6 = \"198.18.0.1\"\n",
     Append::eal, "port[0].gateway6", 4,
     R"(expected an IPv6 address like 2001:db8::2, got "198.18.0.1" (an IPv4 address))"},
    {"RxChecksumUnknown", port + "rx_checksum = \"check\"\n", Append::eal,
     "port[0].rx_checksum", 4, R"(expected one of verify, trust, got "check")"},
    {"RxChecksumNotAString", port + "rx_checksum = true\n", Append::eal, "port[0].rx_checksum",
     4, "expected one of verify, trust, got true"},

    // [relay]
    {"RelayNotATable", "relay = true\n", Append::eal_and_port, "relay", 1,
     "expected a table [relay], got true"},
    {"UnknownRelayKey", "[relay]\nrealms = \"example.org\"\n", Append::eal_and_port,
     "relay.realms", 2,
     "unknown key; known keys here: enabled, realm, ports, users, rest_secrets, "
     "nonce_lifetime_s, allocation_lifetime_max_s, max_allocations, max_allocations_per_user, "
     "max_permissions_per_allocation, max_channels_per_allocation, peer_entries, reservations, "
     "bandwidth_bytes_per_s, bandwidth_burst_bytes, unauthenticated_requests_per_s, "
     "unauthenticated_burst, peer_allow, peer_deny"},
    {"PermissionLifetimeIsNotAKey", "[relay]\npermission_lifetime_s = 300\n",
     Append::eal_and_port, "relay.permission_lifetime_s", 2, "unknown key"},
    {"ChannelLifetimeIsNotAKey", "[relay]\nchannel_lifetime_s = 600\n", Append::eal_and_port,
     "relay.channel_lifetime_s", 2, "unknown key"},
    {"SyntaxInRelayUser", "[[relay.users]]\nname = \"alice\" x\n", Append::eal_and_port,
     "relay.users[0].name", 2, "Error while parsing"},
    {"RelayEnabledNotABool", "[relay]\nenabled = 1\n", Append::eal_and_port, "relay.enabled", 2,
     "expected true or false, got 1"},
    {"RelayWithoutCredentials", "[relay]\nenabled = true\n", Append::eal_and_port,
     "relay.enabled", 2,
     "expected users or rest_secrets too: a relay without credentials lets no one allocate; "
     R"(add users = [{ name = "alice", password = "..." }] or )"
     R"(rest_secrets = ["<16 bytes or more>"])"},
    {"RelayWithEmptyCredentialLists", "[relay]\nusers = []\nrest_secrets = []\nenabled = true\n",
     Append::eal_and_port, "relay.enabled", 4, "expected users or rest_secrets too"},

    // [relay]: realm (RFC 8489 §14.9)
    {"RealmNotAString", "[relay]\nrealm = 1\n", Append::eal_and_port, "relay.realm", 2,
     "expected a string, got 1"},
    {"RealmEmpty", "[relay]\nrealm = \"\"\n", Append::eal_and_port, "relay.realm", 2,
     R"(expected a non-empty realm, got "")"},
    {"Realm128Characters", "[relay]\nrealm = \"" + std::string(128, 'r') + "\"\n",
     Append::eal_and_port, "relay.realm", 2,
     "expected fewer than 128 characters (RFC 8489 §14.9), got 128 characters"},
    {"Realm128CharactersIn256Bytes", "[relay]\nrealm = \"" + repeated("\u00e9", 128) + "\"\n",
     Append::eal_and_port, "relay.realm", 2, "got 128 characters"},
    {"RealmUnescapedQuote", "[relay]\nrealm = 'say \"hi\"'\n", Append::eal_and_port,
     "relay.realm", 2,
     "expected qdtext or quoted-pair (RFC 8489 §14.9): a quote or a backslash only escaped by "
     R"(a backslash, no line breaks, got "say \"hi\"")"},
    {"RealmTrailingBackslash", "[relay]\nrealm = 'example\\'\n", Append::eal_and_port,
     "relay.realm", 2, R"(expected qdtext or quoted-pair (RFC 8489 §14.9))"},
    {"RealmLineBreak", "[relay]\nrealm = \"exam\\nple\"\n", Append::eal_and_port, "relay.realm",
     2, R"(no line breaks, got "exam?ple")"},
    {"RealmControlCharacter", "[relay]\nrealm = \"exam\\tple\"\n", Append::eal_and_port,
     "relay.realm", 2,
     "expected a realm that SASLprep (RFC 4013) leaves as it is (RFC 8489 §14.9: processed "
     R"(with OpaqueString), got "exam?ple" (prohibited_character))"},
    {"RealmChangedBySaslprep", "[relay]\nrealm = \"exam\\u00ADple.org\"\n", Append::eal_and_port,
     "relay.realm", 2, R"((prepared: "example.org"))"},

    // [relay]: ports
    {"RelayPortsNotAString", "[relay]\nports = 49152\n", Append::eal_and_port, "relay.ports", 2,
     R"(expected a port range like "49152-65535" (first-last, inclusive), got 49152)"},
    {"RelayPortsOnePort", "[relay]\nports = \"49152\"\n", Append::eal_and_port, "relay.ports", 2,
     R"((first-last, inclusive), got "49152")"},
    {"RelayPortsWithSpaces", "[relay]\nports = \"49152 - 65535\"\n", Append::eal_and_port,
     "relay.ports", 2, R"((first-last, inclusive), got "49152 - 65535")"},
    {"RelayPortsNegative", "[relay]\nports = \"-1-65535\"\n", Append::eal_and_port,
     "relay.ports", 2, R"((first-last, inclusive), got "-1-65535")"},
    {"RelayPortsSixDigits", "[relay]\nports = \"49152-065535\"\n", Append::eal_and_port,
     "relay.ports", 2, R"((first-last, inclusive), got "49152-065535")"},
    {"RelayPortsBelow1024", "[relay]\nports = \"1000-2000\"\n", Append::eal_and_port,
     "relay.ports", 2,
     R"(expected ports 1024..65535 (below 1024: system ports), got "1000-2000")"},
    {"RelayPortsAbove65535", "[relay]\nports = \"49152-65536\"\n", Append::eal_and_port,
     "relay.ports", 2,
     R"(expected ports 1024..65535 (below 1024: system ports), got "49152-65536")"},
    {"RelayPortsReversed", "[relay]\nports = \"60000-50000\"\n", Append::eal_and_port,
     "relay.ports", 2, R"(expected the first port no higher than the last, got "60000-50000")"},
    {"RelayPortsHoldStunPort", "[stun]\nport = 50000\nalternate_port = 0\n" + relay_on,
     Append::eal_and_port, "relay.ports", 4,
     R"(expected a range without stun.port (50000), got the default "49152-65535")"},
    {"RelayPortsHoldAlternatePort", relay_on + "ports = \"3479-4000\"\n", Append::eal_and_port,
     "relay.ports", 4, R"(expected a range without stun.alternate_port (3479), got "3479-4000")"},
    {"RelayPortsFewerThanWorkers",
     "[engine]\nworkers = [1, 2]\n" + relay_on + "ports = \"50000-50000\"\n",
     Append::eal_and_port, "relay.ports", 6,
     R"(expected at least one port per worker (2 in engine.workers), got "50000-50000" (1 port))"},

    // [relay]: users (RFC 8489 §9.2)
    {"RelayUsersNotAnArray", "[relay]\nusers = \"alice\"\n", Append::eal_and_port, "relay.users",
     2, R"(expected an array of user tables, e.g. [{ name = "alice", password = "..." }], )"
        R"(got "alice")"},
    {"RelayUsersASingleTable", "[relay.users]\nname = \"alice\"\n", Append::eal_and_port,
     "relay.users", 1, "expected an array of user tables"},
    {"RelayUserNotATable", "[relay]\nusers = [\"alice\"]\n", Append::eal_and_port,
     "relay.users[0]", 2, R"(expected an array of user tables, e.g. [{ name = "alice", )"},
    {"UnknownRelayUserKey",
     "[relay]\nusers = [{ name = \"alice\", password = \"a\", realm = \"b\" }]\n",
     Append::eal_and_port, "relay.users[0].realm", 2,
     "unknown key; known keys here: name, password"},
    {"RelayUserNameMissing", "[[relay.users]]\npassword = \"a\"\n", Append::eal_and_port,
     "relay.users[0].name", 1, R"(missing; expected the user's name, e.g. "alice")"},
    {"RelayUserNameNotAString", "[[relay.users]]\nname = 7\n", Append::eal_and_port,
     "relay.users[0].name", 2, "expected a string, got 7"},
    {"RelayUserNameEmpty", "[[relay.users]]\nname = \"\"\npassword = \"a\"\n",
     Append::eal_and_port, "relay.users[0].name", 2,
     R"(expected a non-empty name after SASLprep, got "")"},
    {"RelayUserNameEmptyAfterSaslprep", "[[relay.users]]\nname = \"\\u00AD\"\npassword = \"a\"\n",
     Append::eal_and_port, "relay.users[0].name", 2, "expected a non-empty name after SASLprep"},
    {"RelayUserNameProhibited", "[[relay.users]]\nname = \"al\\u0007ice\"\npassword = \"a\"\n",
     Append::eal_and_port, "relay.users[0].name", 2,
     R"(expected a name SASLprep (RFC 4013) accepts, got "al?ice" (prohibited_character))"},
    {"RelayUserNameAbove508Bytes",
     "[[relay.users]]\nname = \"" + std::string(509, 'n') + "\"\npassword = \"a\"\n",
     Append::eal_and_port, "relay.users[0].name", 2,
     "expected a name of at most 508 bytes after SASLprep (RFC 8489 §14.3), got 509 bytes"},
    {"RelayUserNameAbove512Bytes",
     "[[relay.users]]\nname = \"" + std::string(600, 'n') + "\"\npassword = \"a\"\n",
     Append::eal_and_port, "relay.users[0].name", 2,
     "expected a name of at most 508 bytes after SASLprep (RFC 8489 §14.3), got more than "
     "512 bytes"},
    {"RelayUserNameTwice",
     "[[relay.users]]\nname = \"alice\"\npassword = \"a\"\n"
     "[[relay.users]]\nname = \"alice\"\npassword = \"b\"\n",
     Append::eal_and_port, "relay.users[1].name", 5,
     R"(expected a name no other user has; relay.users[0].name (line 2) is also "alice")"},
    {"RelayUserNameTwiceAfterSaslprep",
     "[relay]\nusers = [{ name = \"alice\", password = \"a\" },\n"
     "         { name = \"al\\u00ADice\", password = \"b\" }]\n",
     Append::eal_and_port, "relay.users[1].name", 3,
     R"(relay.users[0].name (line 2) is also "alice" after SASLprep)"},
    {"RelayUserPasswordMissing", "[[relay.users]]\nname = \"alice\"\n", Append::eal_and_port,
     "relay.users[0].password", 1, R"(missing; expected the password of user "alice")"},
    {"RelayUserPasswordNotAString", "[[relay.users]]\nname = \"alice\"\npassword = 1234\n",
     Append::eal_and_port, "relay.users[0].password", 3,
     R"(expected a non-empty password of user "alice", got an integer)"},
    {"RelayUserPasswordEmpty", "[[relay.users]]\nname = \"alice\"\npassword = \"\"\n",
     Append::eal_and_port, "relay.users[0].password", 3,
     R"(expected a non-empty password of user "alice", got a string of 0 bytes)"},
    {"RelayUserPasswordProhibited",
     "[[relay.users]]\nname = \"alice\"\npassword = \"pass\\u0007word\"\n", Append::eal_and_port,
     "relay.users[0].password", 3,
     R"(expected a password of user "alice" that SASLprep (RFC 4013) accepts, got a string )"
     "of 9 bytes (prohibited_character)"},
    {"RelayUserPasswordUnassignedCodePoint",
     "[[relay.users]]\nname = \"bob\"\npassword = \"pass\\u0221\"\n", Append::eal_and_port,
     "relay.users[0].password", 3,
     R"(expected a password of user "bob" that SASLprep (RFC 4013) accepts)"},
    {"RelayUserPasswordAbove512Bytes",
     "[[relay.users]]\nname = \"alice\"\npassword = \"" + std::string(513, 'p') + "\"\n",
     Append::eal_and_port, "relay.users[0].password", 3,
     "got a string of 513 bytes (too_long)"},

    // [relay]: TURN REST secrets
    {"RestSecretsNotAnArray", "[relay]\nrest_secrets = \"0123456789abcdef\"\n",
     Append::eal_and_port, "relay.rest_secrets", 2,
     R"(expected an array of secrets, e.g. ["<16 bytes or more>"], got a string of 16 bytes)"},
    {"RestSecretNotAString", "[relay]\nrest_secrets = [1234]\n", Append::eal_and_port,
     "relay.rest_secrets[0]", 2, "expected a secret of at least 16 bytes, got an integer"},
    {"RestSecretBelow16Bytes", "[relay]\nrest_secrets = [\"0123456789abcde\"]\n",
     Append::eal_and_port, "relay.rest_secrets[0]", 2,
     "expected a secret of at least 16 bytes, got a string of 15 bytes"},
    {"RestSecretTwice",
     "[relay]\nrest_secrets = [\"0123456789abcdef\",\n                \"fedcba9876543210\",\n"
     "                \"0123456789abcdef\"]\n",
     Append::eal_and_port, "relay.rest_secrets[2]", 4,
     "expected distinct secrets; this one is also relay.rest_secrets[0]"},

    // [relay]: lifetimes
    {"NonceLifetimeBelow5", "[relay]\nnonce_lifetime_s = 4\n", Append::eal_and_port,
     "relay.nonce_lifetime_s", 2, "expected an integer 5..86400 (seconds), got 4"},
    {"NonceLifetimeAbove86400", "[relay]\nnonce_lifetime_s = 86401\n", Append::eal_and_port,
     "relay.nonce_lifetime_s", 2, "got 86401"},
    {"AllocationLifetimeMaxBelow600", "[relay]\nallocation_lifetime_max_s = 599\n",
     Append::eal_and_port, "relay.allocation_lifetime_max_s", 2,
     "expected an integer 600..86400 (seconds; not below RFC 8656 §7.2's default lifetime, "
     "600), got 599"},
    {"AllocationLifetimeMaxAbove86400", "[relay]\nallocation_lifetime_max_s = 86401\n",
     Append::eal_and_port, "relay.allocation_lifetime_max_s", 2, "got 86401"},

    // [relay]: quotas
    {"MaxAllocationsZero", "[relay]\nmax_allocations = 0\n", Append::eal_and_port,
     "relay.max_allocations", 2, "expected an integer 1..1048576, got 0"},
    {"MaxAllocationsAbove1048576", "[relay]\nmax_allocations = 1048577\n", Append::eal_and_port,
     "relay.max_allocations", 2, "got 1048577"},
    {"MaxAllocationsNotAnInteger", "[relay]\nmax_allocations = \"10\"\n", Append::eal_and_port,
     "relay.max_allocations", 2, R"(got "10")"},
    {"MaxAllocationsPerUserZero", "[relay]\nmax_allocations_per_user = 0\n",
     Append::eal_and_port, "relay.max_allocations_per_user", 2,
     "expected an integer 1..1048576, got 0"},
    {"MaxAllocationsPerUserAbove1048576", "[relay]\nmax_allocations_per_user = 1048577\n",
     Append::eal_and_port, "relay.max_allocations_per_user", 2, "got 1048577"},
    {"MaxPermissionsZero", "[relay]\nmax_permissions_per_allocation = 0\n",
     Append::eal_and_port, "relay.max_permissions_per_allocation", 2,
     "expected an integer 1..4096, got 0"},
    {"MaxPermissionsAbove4096", "[relay]\nmax_permissions_per_allocation = 4097\n",
     Append::eal_and_port, "relay.max_permissions_per_allocation", 2, "got 4097"},
    {"MaxChannelsZero", "[relay]\nmax_channels_per_allocation = 0\n", Append::eal_and_port,
     "relay.max_channels_per_allocation", 2,
     "expected an integer 1..4096 (RFC 8656 §12: channel numbers 0x4000-0x4FFF), got 0"},
    {"MaxChannelsAbove4096", "[relay]\nmax_channels_per_allocation = 4097\n",
     Append::eal_and_port, "relay.max_channels_per_allocation", 2, "got 4097"},
    {"PeerEntriesZero", "[relay]\npeer_entries = 0\n", Append::eal_and_port,
     "relay.peer_entries", 2,
     "expected an integer 1..67108864 (permissions and channels of all allocations: one entry "
     "per peer), got 0"},
    {"PeerEntriesAbove67108864", "[relay]\npeer_entries = 67108865\n", Append::eal_and_port,
     "relay.peer_entries", 2, "got 67108865"},
    {"ReservationsZero", "[relay]\nreservations = 0\n", Append::eal_and_port,
     "relay.reservations", 2,
     "expected an integer 1..1048576 (EVEN-PORT reservations at once), got 0"},
    {"ReservationsAboveMaxAllocations", "[relay]\nmax_allocations = 100\n\nreservations = 101\n",
     Append::eal_and_port, "relay.reservations", 4,
     "expected at most relay.max_allocations (100), got 101"},

    // [relay]: bandwidth and the unauthenticated-request limit (token buckets)
    {"BandwidthNegative", "[relay]\nbandwidth_bytes_per_s = -1\n", Append::eal_and_port,
     "relay.bandwidth_bytes_per_s", 2,
     "expected an integer 0..1000000000 (bytes per second; 0: unlimited), got -1"},
    {"BandwidthAbove1000000000", "[relay]\nbandwidth_bytes_per_s = 1000000001\n",
     Append::eal_and_port, "relay.bandwidth_bytes_per_s", 2, "got 1000000001"},
    {"BandwidthBurstBelow1500",
     "[relay]\nbandwidth_bytes_per_s = 125000\nbandwidth_burst_bytes = 1499\n",
     Append::eal_and_port, "relay.bandwidth_burst_bytes", 3,
     "expected an integer 1500..1000000000 (bytes, at least one full-size packet), got 1499"},
    {"BandwidthBurstAbove1000000000",
     "[relay]\nbandwidth_bytes_per_s = 125000\nbandwidth_burst_bytes = 1000000001\n",
     Append::eal_and_port, "relay.bandwidth_burst_bytes", 3, "got 1000000001"},
    {"BandwidthBurstWithoutBandwidth", "[relay]\nbandwidth_burst_bytes = 3000\n",
     Append::eal_and_port, "relay.bandwidth_burst_bytes", 2,
     "expected relay.bandwidth_bytes_per_s too: without a bandwidth there is no bucket to size"},
    {"BandwidthBurstDefaultBelow1500", "[relay]\nbandwidth_bytes_per_s = 1000\n",
     Append::eal_and_port, "relay.bandwidth_burst_bytes", 1,
     "expected at least 1500 bytes (one full-size packet), got the default 1000 (one second "
     "of relay.bandwidth_bytes_per_s)"},
    {"UnauthenticatedRateZero", "[relay]\nunauthenticated_requests_per_s = 0\n",
     Append::eal_and_port, "relay.unauthenticated_requests_per_s", 2,
     "expected an integer 1..1000000 (requests per second), got 0"},
    {"UnauthenticatedRateAbove1000000", "[relay]\nunauthenticated_requests_per_s = 1000001\n",
     Append::eal_and_port, "relay.unauthenticated_requests_per_s", 2, "got 1000001"},
    {"UnauthenticatedBurstZero", "[relay]\nunauthenticated_burst = 0\n", Append::eal_and_port,
     "relay.unauthenticated_burst", 2, "expected an integer 1..1000000 (requests), got 0"},
    {"UnauthenticatedBurstAbove1000000", "[relay]\nunauthenticated_burst = 1000001\n",
     Append::eal_and_port, "relay.unauthenticated_burst", 2, "got 1000001"},

    // [relay]: peer policy lists (engine::parse_cidr's reason in brackets)
    {"PeerAllowNotAnArray", "[relay]\npeer_allow = \"10.0.0.0/8\"\n", Append::eal_and_port,
     "relay.peer_allow", 2,
     R"(expected an array of prefixes, e.g. ["10.1.2.0/24"], got "10.0.0.0/8")"},
    {"PeerAllowEntryNotAString", "[relay]\npeer_allow = [10]\n", Append::eal_and_port,
     "relay.peer_allow[0]", 2,
     R"(expected an address or a prefix like "10.0.0.0/8" or "fc00::/7", got 10)"},
    {"PeerAllowBadAddress", "[relay]\npeer_allow = [\"10.0.0/8\"]\n", Append::eal_and_port,
     "relay.peer_allow[0]", 2,
     R"(expected an address or a prefix like "10.0.0.0/8" or "fc00::/7", got "10.0.0/8" )"
     "(bad_address)"},
    {"PeerAllowBadPrefix", "[relay]\npeer_allow = [\"10.0.0.0/\"]\n", Append::eal_and_port,
     "relay.peer_allow[0]", 2, R"(got "10.0.0.0/" (bad_prefix))"},
    {"PeerAllowPrefixTooLong", "[relay]\npeer_allow = [\"10.0.0.0/33\"]\n", Append::eal_and_port,
     "relay.peer_allow[0]", 2, R"(got "10.0.0.0/33" (prefix_too_long))"},
    {"PeerAllowHostBitsSet",
     "[relay]\npeer_allow = [\"10.1.2.0/24\",\n              \"10.0.0.1/8\"]\n",
     Append::eal_and_port, "relay.peer_allow[1]", 3, R"(got "10.0.0.1/8" (host_bits_set))"},
    {"PeerDenyNotAnArray", "[relay]\npeer_deny = 10\n", Append::eal_and_port, "relay.peer_deny",
     2, R"(expected an array of prefixes, e.g. ["10.1.2.0/24"], got 10)"},
    {"PeerDenyBadAddress", "[relay]\npeer_deny = [\"example.org\"]\n", Append::eal_and_port,
     "relay.peer_deny[0]", 2, R"(got "example.org" (bad_address))"},
    {"PeerDenyPrefixTooLong", "[relay]\npeer_deny = [\"2001:db8::/129\"]\n",
     Append::eal_and_port, "relay.peer_deny[0]", 2, R"(got "2001:db8::/129" (prefix_too_long))"},
    {"PeerDenyHostBitsSet", "[relay]\npeer_deny = [\"fc00::1/7\"]\n", Append::eal_and_port,
     "relay.peer_deny[0]", 2, R"(got "fc00::1/7" (host_bits_set))"},
    {"AlternateServerWithoutPort", "[relay]\nalternate_server = \"198.51.100.20\"\n",
     Append::eal_and_port, "relay.alternate_server", 2,
     R"(expected another relay's IP:port, e.g. "198.51.100.20:3478")"},
    {"AlternateServerPortZero", "[relay]\nalternate_server = \"198.51.100.20:0\"\n",
     Append::eal_and_port, "relay.alternate_server", 2, R"(got "198.51.100.20:0")"},
    {"AlternateServerIpv6Unbracketed", "[relay]\nalternate_server = \"2001:db8::20:3478\"\n",
     Append::eal_and_port, "relay.alternate_server", 2, R"(got "2001:db8::20:3478")"},
    {"AlternateServerNotAnAddress", "[relay]\nalternate_server = \"relay.example:3478\"\n",
     Append::eal_and_port, "relay.alternate_server", 2, R"(got "relay.example:3478")"},

    // [sfu]: the SFU role (docs/sfu.md)
    {"SfuNotATable", "sfu = 1\n", Append::eal_and_port, "sfu", 1, "expected a table [sfu], got 1"},
    {"UnknownSfuKey", "[sfu]\nsecret = \"0123456789abcdef\"\n", Append::eal_and_port,
     "sfu.secret", 2,
     "unknown key; known keys here: port, token_secrets, max_legs, max_legs_per_session, "
     "leg_timeout_s, unauthenticated_requests_per_s, unauthenticated_burst"},
    {"SfuPortZero", "[sfu]\nport = 0\n", Append::eal_and_port, "sfu.port", 2,
     "expected an integer 1..65535, got 0"},
    {"SfuTokenSecretsNotAnArray", "[sfu]\ntoken_secrets = \"0123456789abcdef\"\n",
     Append::eal_and_port, "sfu.token_secrets", 2,
     R"(expected an array of secrets, e.g. ["<16 bytes or more>"])"},
    {"SfuTokenSecretBelow16Bytes", "[sfu]\ntoken_secrets = [\"0123456789abcde\"]\n",
     Append::eal_and_port, "sfu.token_secrets[0]", 2, "expected a secret of at least 16 bytes"},
    {"SfuTokenSecretsAlike",
     "[sfu]\ntoken_secrets = [\"0123456789abcdef\",\n                 \"0123456789abcdef\"]\n",
     Append::eal_and_port, "sfu.token_secrets[1]", 3,
     "expected distinct secrets; this one is also sfu.token_secrets[0]"},
    {"SfuMaxLegsZero", "[sfu]\nmax_legs = 0\n", Append::eal_and_port, "sfu.max_legs", 2,
     "expected an integer 1..1048576 (legs per worker), got 0"},
    {"SfuMaxLegsPerSessionOne", "[sfu]\nmax_legs_per_session = 1\n", Append::eal_and_port,
     "sfu.max_legs_per_session", 2, "expected an integer 2..1024 (2 for a 1:1 call), got 1"},
    {"SfuLegTimeoutAboveAnHour", "[sfu]\nleg_timeout_s = 3601\n", Append::eal_and_port,
     "sfu.leg_timeout_s", 2, "expected an integer 1..3600 (seconds), got 3601"},
    {"SfuUnauthenticatedRateZero", "[sfu]\nunauthenticated_requests_per_s = 0\n",
     Append::eal_and_port, "sfu.unauthenticated_requests_per_s", 2,
     "expected an integer 1..1000000 (requests per second), got 0"},
    {"SfuUnauthenticatedBurstZero", "[sfu]\nunauthenticated_burst = 0\n", Append::eal_and_port,
     "sfu.unauthenticated_burst", 2, "expected an integer 1..1000000 (requests), got 0"},
    {"SfuPortOnTheStunPort",
     "[sfu]\ntoken_secrets = [\"0123456789abcdef\"]\nport = 3478\n", Append::eal_and_port,
     "sfu.port", 3, "expected a port other than stun.port (3478), got 3478"},
    {"SfuPortOnTheStunAlternatePort",
     "[sfu]\ntoken_secrets = [\"0123456789abcdef\"]\nport = 3479\n", Append::eal_and_port,
     "sfu.port", 3, "expected a port other than stun.alternate_port (3479), got 3479"},
    {"SfuDefaultPortInsideTheRelayPorts",
     "[relay]\nenabled = true\nrest_secrets = [\"0123456789abcdef\"]\nports = \"3480-4000\"\n"
     "[sfu]\ntoken_secrets = [\"0123456789abcdef\"]\n",
     Append::eal_and_port, "sfu.port", 5,
     "expected a port other than the relay ports (relay.ports 3480-4000), got the default 3480"},

    // [control]: the management socket
    {"ControlNotATable", "control = 1\n", Append::eal_and_port, "control", 1,
     "expected a table [control], got 1"},
    {"UnknownControlKey", "[control]\nsocket = \"/tmp/p.sock\"\nmode = 432\n",
     Append::eal_and_port, "control.mode", 3, "unknown key; known keys here: socket, group"},
    {"ControlSocketNotAString", "[control]\nsocket = 1\n", Append::eal_and_port,
     "control.socket", 2,
     R"(expected an absolute path of at most 107 bytes, e.g. "/run/punchline/punchlined.sock", )"
     "got 1"},
    {"ControlSocketRelative", "[control]\nsocket = \"run/p.sock\"\n", Append::eal_and_port,
     "control.socket", 2, R"(expected an absolute path of at most 107 bytes, e.g. )"
     R"("/run/punchline/punchlined.sock", got "run/p.sock")"},
    {"ControlSocketEmpty", "[control]\nsocket = \"\"\n", Append::eal_and_port,
     "control.socket", 2, R"(got "")"},
    {"ControlSocketIsAFolder", "[control]\nsocket = \"/run/punchline/\"\n",
     Append::eal_and_port, "control.socket", 2, R"(got "/run/punchline/")"},
    {"ControlSocketAbove107Bytes",
     "[control]\nsocket = \"/" + std::string(107, 's') + "\"\n", Append::eal_and_port,
     "control.socket", 2, "(108 bytes)"},
    {"ControlGroupNotAString", "[control]\ngroup = 0\n", Append::eal_and_port, "control.group",
     2, "expected a group name (letters, digits, '.', '_', '-'; at most 32 bytes; not "
        R"(starting with '-'), e.g. "punchline", got 0)"},
    {"ControlGroupEmpty", "[control]\ngroup = \"\"\n", Append::eal_and_port, "control.group",
     2, R"(got "")"},
    {"ControlGroupWithASpace", "[control]\ngroup = \"punch line\"\n", Append::eal_and_port,
     "control.group", 2, R"(got "punch line")"},
    {"ControlGroupLeadingDash", "[control]\ngroup = \"-wheel\"\n", Append::eal_and_port,
     "control.group", 2, R"(got "-wheel")"},
    {"ControlGroupAbove32Bytes", "[control]\ngroup = \"" + std::string(33, 'g') + "\"\n",
     Append::eal_and_port, "control.group", 2, "got \"gggg"},
    // [metrics]: the Prometheus endpoint
    {"MetricsNotATable", "metrics = \"127.0.0.1:9641\"\n", Append::eal_and_port, "metrics", 1,
     R"(expected a table [metrics], got "127.0.0.1:9641")"},
    {"UnknownMetricsKey", "[metrics]\nport = 9641\n", Append::eal_and_port, "metrics.port", 2,
     "unknown key; known keys here: listen"},
    {"MetricsListenNotAString", "[metrics]\nlisten = 9641\n", Append::eal_and_port,
     "metrics.listen", 2,
     R"(expected an address and a port (0..65535), "127.0.0.1:9641" or "[::1]:9641", got 9641)"},
    {"MetricsListenNoPort", "[metrics]\nlisten = \"127.0.0.1\"\n", Append::eal_and_port,
     "metrics.listen", 2, R"(got "127.0.0.1")"},
    {"MetricsListenEmptyPort", "[metrics]\nlisten = \"127.0.0.1:\"\n", Append::eal_and_port,
     "metrics.listen", 2, R"(got "127.0.0.1:")"},
    {"MetricsListenPortTooHigh", "[metrics]\nlisten = \"127.0.0.1:65536\"\n",
     Append::eal_and_port, "metrics.listen", 2, R"(got "127.0.0.1:65536")"},
    {"MetricsListenHostName", "[metrics]\n\nlisten = \"localhost:9641\"\n", Append::eal_and_port,
     "metrics.listen", 3, R"(got "localhost:9641")"},
    {"MetricsListenIpv6WithoutBrackets", "[metrics]\nlisten = \"::1:9641\"\n",
     Append::eal_and_port, "metrics.listen", 2, R"(got "::1:9641")"},
    {"MetricsListenIpv4InBrackets", "[metrics]\nlisten = \"[198.18.0.2]:9641\"\n",
     Append::eal_and_port, "metrics.listen", 2,
     R"(got "[198.18.0.2]:9641" (brackets around an IPv6 address only))"},

    // [log]
    {"UnknownLogKey", "[log]\nfile = \"/var/log/p\"\n", Append::eal_and_port, "log.file", 2,
     "unknown key; known keys here: level, target"},
    {"LogLevelUnknown", "[log]\nlevel = \"verbose\"\n", Append::eal_and_port, "log.level", 2,
     R"(expected one of error, warn, info, debug, got "verbose")"},
    {"LogLevelNotAString", "[log]\nlevel = 3\n", Append::eal_and_port, "log.level", 2,
     "expected one of error, warn, info, debug, got 3"},
    {"LogTargetUnknown", "[log]\ntarget = \"/dev/stderr\"\n", Append::eal_and_port, "log.target",
     2, R"(expected one of stderr, syslog, got "/dev/stderr")"},
};

class ParseConfigError : public testing::TestWithParam<ErrorCase> {};

TEST_P(ParseConfigError, NamesKeyLineAndExpectation) {
    const ErrorCase& c = GetParam();
    const auto error = error_of(complete(c));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->key(), c.key) << error->what();
    EXPECT_EQ(error->line(), c.line) << error->what();
    const std::string what = error->what();
    EXPECT_NE(what.find(c.message), std::string::npos) << what;
    // Every message starts with the source, then the key, then the line.
    std::string start = "test.toml: " + c.key + " (line " + std::to_string(c.line) + "): ";
    EXPECT_EQ(what.rfind(start, 0), 0u) << what;
}

INSTANTIATE_TEST_SUITE_P(Validation, ParseConfigError, testing::ValuesIn(error_cases),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                             return info.param.name;
                         });

}  // namespace
}  // namespace engine
