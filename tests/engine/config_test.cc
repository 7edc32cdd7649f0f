// Tests for engine/config.cc: the default file, defaults for absent keys, and one named case per
// validation error, each checking the key, the line and the message.
#include "engine/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
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

TEST(ParseConfig, EmptyTablesTakeTheirDefaults) {
    const EngineConfig config =
        parse_config("[engine]\n[stun]\n[neighbour]\n" + eal + port, "test.toml");
    EXPECT_EQ(config.workers, EngineConfig{}.workers);
    EXPECT_EQ(config.stun.port, StunConfig{}.port);
    EXPECT_EQ(config.neighbour.capacity, NeighbourConfig{}.capacity);
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
     "unknown key; known keys here: eal, engine, stun, neighbour, port"},
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
