// engine/config_diff.h: which keys a reload changes, and which of them the running engine takes
// live (a new RelayContext) or only a restart applies. Real files parsed by parse_config(),
// one key edited at a time.
#include "engine/config_diff.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace engine {
namespace {

using Keys = std::vector<std::string>;

const std::string base = R"([eal]
args = ["-l", "0-1", "--no-pci", "--vdev=net_null0"]
[engine]
workers = [1]
[stun]
port = 3478
alternate_port = 3479
[[port]]
device = "net_null0"
ipv4 = ["198.51.100.2", "198.51.100.3"]
[relay]
enabled = true
realm = "example.org"
ports = "49152-65535"
users = [{ name = "alice", password = "wonderland" }, { name = "bob", password = "builder" }]
rest_secrets = ["0123456789abcdef0123", "fedcba9876543210fedc"]
peer_allow = ["10.1.2.0/24"]
peer_deny = ["203.0.113.0/24", "198.51.100.99"]
)";

// `base` with the first occurrence of `from` replaced by `to` (a test error when absent).
std::string edited(const std::string& from, const std::string& to) {
    std::string text = base;
    const std::size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

ConfigChanges diff(const std::string& next) {
    return diff_config(parse_config(base, "running.toml"), parse_config(next, "file.toml"));
}

TEST(ConfigDiff, TheSameFileChangesNothing) {
    EXPECT_TRUE(diff(base).empty());
}

TEST(ConfigDiff, ListsCompareAsSets) {
    // The same users, secrets and peers in another order: nothing to publish.
    const std::string alice = R"({ name = "alice", password = "wonderland" })";
    const std::string bob = R"({ name = "bob", password = "builder" })";
    const std::string text = edited(alice + ", " + bob, bob + ", " + alice);
    const std::string swapped =
        edited(R"(["203.0.113.0/24", "198.51.100.99"])", R"(["198.51.100.99", "203.0.113.0/24"])");
    EXPECT_TRUE(diff(text).empty());
    EXPECT_TRUE(diff(swapped).empty());
}

struct LiveCase {
    const char* name;
    std::string from;
    std::string to;
    const char* key;
};

TEST(ConfigDiff, RelayCredentialsPolicyLimitsAndAlternateAreLive) {
    const LiveCase cases[] = {
        {"realm", R"(realm = "example.org")", R"(realm = "example.net")", "relay.realm"},
        {"password", R"(password = "builder")", R"(password = "rebuilt")", "relay.users"},
        {"user removed", R"(, { name = "bob", password = "builder" })", "", "relay.users"},
        {"secret retired", R"(, "fedcba9876543210fedc")", "", "relay.rest_secrets"},
        {"allow", R"(["10.1.2.0/24"])", R"(["10.1.3.0/24"])", "relay.peer_allow"},
        {"deny", R"(, "198.51.100.99")", "", "relay.peer_deny"},
        {"nonce", "[relay]\n", "[relay]\nnonce_lifetime_s = 60\n", "relay.nonce_lifetime_s"},
        {"lifetime", "[relay]\n", "[relay]\nallocation_lifetime_max_s = 7200\n",
         "relay.allocation_lifetime_max_s"},
        {"quota", "[relay]\n", "[relay]\nmax_allocations_per_user = 3\n",
         "relay.max_allocations_per_user"},
        {"alternate", "[relay]\n", "[relay]\nalternate_server = \"198.51.100.20:3478\"\n",
         "relay.alternate_server"},
    };
    for (const LiveCase& c : cases) {
        const ConfigChanges changes = diff(edited(c.from, c.to));
        EXPECT_EQ(changes.live, Keys{c.key}) << c.name;
        EXPECT_TRUE(changes.restart.empty()) << c.name;
    }
    // A bandwidth with its default burst changes both keys.
    EXPECT_EQ(diff(edited("[relay]\n", "[relay]\nbandwidth_bytes_per_s = 2000\n")).live,
              (Keys{"relay.bandwidth_bytes_per_s", "relay.bandwidth_burst_bytes"}));
}

TEST(ConfigDiff, WhatWasSizedOrBoundAtStartUpNeedsARestart) {
    const LiveCase cases[] = {
        {"eal", R"("--no-pci", "--vdev)", R"("--no-pci", "--no-huge", "--vdev)", "eal.args"},
        {"mbufs", "[engine]\n", "[engine]\nmbufs = 8191\n", "engine.mbufs"},
        {"stun port", "port = 3478", "port = 3480", "stun.port"},
        {"address", R"(["198.51.100.2", "198.51.100.3"])", R"(["198.51.100.4"])",
         "port[0].ipv4"},
        {"relay ports", R"(ports = "49152-65535")", R"(ports = "50000-60000")", "relay.ports"},
        {"table size", "[relay]\n", "[relay]\nmax_allocations = 20000\n",
         "relay.max_allocations"},
        {"permissions", "[relay]\n", "[relay]\nmax_permissions_per_allocation = 8\n",
         "relay.max_permissions_per_allocation"},
        {"limiter", "[relay]\n", "[relay]\nunauthenticated_burst = 10\n",
         "relay.unauthenticated_burst"},
        {"socket", "[engine]\n", "[control]\nsocket = \"/run/other.sock\"\n[engine]\n",
         "control.socket"},
        {"neighbour", "[engine]\n", "[neighbour]\ncapacity = 128\n[engine]\n",
         "neighbour.capacity"},
        {"relay off", "enabled = true", "enabled = false", "relay.enabled"},
    };
    for (const LiveCase& c : cases) {
        const ConfigChanges changes = diff(edited(c.from, c.to));
        EXPECT_EQ(changes.restart, Keys{c.key}) << c.name;
    }
}

TEST(ConfigDiff, BothKindsAreListedTogether) {
    const ConfigChanges changes =
        diff(edited("[relay]\n", "[relay]\nmax_allocations = 20000\nnonce_lifetime_s = 60\n"));
    EXPECT_EQ(changes.live, Keys{"relay.nonce_lifetime_s"});
    EXPECT_EQ(changes.restart, Keys{"relay.max_allocations"});
}

}  // namespace
}  // namespace engine
