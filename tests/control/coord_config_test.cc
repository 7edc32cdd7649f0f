// punchcoord's configuration (control/coord_config.h): keys, defaults, and errors that name the
// key and the line.
#include "control/coord_config.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace control {
namespace {

std::string error_of(const std::string& toml) {
    CoordConfig config;
    try {
        parse_coord_config(toml, "coord.toml", config);
    } catch (const engine::ConfigError& error) {
        return error.what();
    }
    return "";
}

TEST(CoordConfigTest, ReadsEveryTable) {
    CoordConfig config;
    parse_coord_config(R"(
listen = "127.0.0.1:7100"
stun = ["203.0.113.2:3478", "stun.example.org:3478"]
relay = ["203.0.113.4:3478"]
idle_timeout_ms = 5000
[turn]
rest_secret = "s3cret"
rest_ttl_s = 120
[nodes]
ttl_ms = 2000
secret = "n"
[limits]
max_rooms = 7
max_members_per_room = 8
[log]
level = "debug"
)",
                       "coord.toml", config);
    EXPECT_EQ(config.listen, "127.0.0.1:7100");
    EXPECT_EQ(config.coordinator.stun_servers.size(), 2u);
    EXPECT_EQ(config.coordinator.relay_servers[0], "203.0.113.4:3478");
    EXPECT_EQ(config.coordinator.idle_timeout_ms, 5000u);
    EXPECT_EQ(config.coordinator.rest_secret, "s3cret");
    EXPECT_EQ(config.coordinator.rest_ttl_s, 120u);
    EXPECT_EQ(config.coordinator.node_ttl_ms, 2000u);
    EXPECT_EQ(config.coordinator.node_secret, "n");
    EXPECT_EQ(config.coordinator.limits.max_rooms, 7u);
    EXPECT_EQ(config.coordinator.limits.max_members_per_room, 8u);
    EXPECT_EQ(config.coordinator.limits.max_connections, 1000u) << "default kept";
    EXPECT_EQ(config.log.level, engine::LogLevel::debug);
    EXPECT_NO_THROW(validate_coord_config(config));
}

TEST(CoordConfigTest, ErrorsNameTheKeyAndLine) {
    EXPECT_EQ(error_of("[limits]\nmax_rooms = -1\n"),
              "coord.toml: limits.max_rooms (line 2): expected an integer 1..10000000, got -1");
    EXPECT_EQ(error_of("listen = \"localhost:7000\"\n").rfind(
                  "coord.toml: listen (line 1): expected \"ip:port\" with a numeric IP", 0),
              0u);
    EXPECT_EQ(
        error_of("\n\nmax_rooms = 5\n").rfind("coord.toml: max_rooms (line 3): unknown key", 0),
        0u);
    EXPECT_EQ(error_of("stun = [\"203.0.113.2\"]\n").rfind("coord.toml: stun[0] (line 1)", 0), 0u);
    EXPECT_EQ(error_of("[turn]\nrest_secret = \"a\"\nrest_secret_file = \"/x\"\n")
                  .rfind("coord.toml: turn.rest_secret_file (line 3): expected rest_secret or "
                         "rest_secret_file, not both",
                         0),
              0u);
    EXPECT_EQ(error_of("[turn]\nrest_secret_file = \"/nonexistent/secret\"\n")
                  .rfind("coord.toml: turn.rest_secret_file: cannot read /nonexistent/secret", 0),
              0u);
    EXPECT_EQ(error_of("[log]\nlevel = \"loud\"\n"),
              "coord.toml: log.level (line 2): expected one of error, warn, info, debug, got "
              "\"loud\"");
    EXPECT_NE(error_of("listen = \n").find("coord.toml: line 1: "), std::string::npos);
}

TEST(CoordConfigTest, SfuTable) {
    CoordConfig defaults;
    EXPECT_TRUE(defaults.coordinator.sfu.token_secret.empty()) << "off until configured";
    EXPECT_EQ(defaults.coordinator.sfu.token_ttl_s, 3600u);
    EXPECT_EQ(defaults.coordinator.sfu.race, 1u);
    EXPECT_EQ(defaults.coordinator.sfu.full_load, 1000u);

    CoordConfig config;
    parse_coord_config(R"([sfu]
token_secret = "0123456789abcdef"
token_ttl_s = 600
race = 2
full_load = 800
max_candidates = 4
[limits]
max_sfu_requests_per_connection = 9
)",
                       "coord.toml", config);
    const CoordSfuConfig& sfu = config.coordinator.sfu;
    EXPECT_EQ(sfu.token_secret, "0123456789abcdef");
    EXPECT_EQ(sfu.token_ttl_s, 600u);
    EXPECT_EQ(sfu.race, 2u);
    EXPECT_EQ(sfu.full_load, 800u);
    EXPECT_EQ(sfu.max_candidates, 4u);
    EXPECT_EQ(config.coordinator.limits.max_sfu_requests_per_connection, 9u);
    EXPECT_NO_THROW(validate_coord_config(config));

    // From a file: its first line, as the TURN secret's.
    char path[] = "/tmp/coord-sfu-secret.XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string text = "a-file-secret-of-24-byte\nignored\n";
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    CoordConfig from_file;
    parse_coord_config("[sfu]\ntoken_secret_file = \"" + std::string(path) + "\"\n", "coord.toml",
                       from_file);
    EXPECT_EQ(from_file.coordinator.sfu.token_secret, "a-file-secret-of-24-byte");
    const std::string short_text = "short\n";
    FILE* shorter = std::fopen(path, "w");
    ASSERT_NE(shorter, nullptr);
    std::fputs(short_text.c_str(), shorter);
    std::fclose(shorter);
    EXPECT_EQ(error_of("\n[sfu]\ntoken_secret_file = \"" + std::string(path) + "\"\n"),
              "coord.toml: sfu.token_secret_file (line 3): expected a secret of at least 16 "
              "bytes (the nodes' sfu.token_secrets entry), got 5 bytes");
    unlink(path);
}

TEST(CoordConfigTest, SfuErrorsNameTheKeyAndLine) {
    EXPECT_EQ(error_of("[sfu]\ntoken_secret = \"short\"\n"),
              "coord.toml: sfu.token_secret (line 2): expected a secret of at least 16 bytes "
              "(the nodes' sfu.token_secrets entry), got 5 bytes");
    EXPECT_EQ(error_of("[sfu]\ntoken_secret = 5\n"),
              "coord.toml: sfu.token_secret (line 2): expected a string of at least 16 bytes "
              "(the nodes' sfu.token_secrets entry), got 5");
    EXPECT_EQ(error_of("[sfu]\ntoken_secret = \"0123456789abcdef\"\ntoken_secret_file = \"/x\"\n")
                  .rfind("coord.toml: sfu.token_secret_file (line 3): expected token_secret or "
                         "token_secret_file, not both",
                         0),
              0u);
    EXPECT_EQ(error_of("[sfu]\ntoken_secret_file = \"/nonexistent/secret\"\n")
                  .rfind("coord.toml: sfu.token_secret_file: cannot read /nonexistent/secret", 0),
              0u);
    EXPECT_EQ(error_of("[sfu]\nrace = 0\n"),
              "coord.toml: sfu.race (line 2): expected an integer 1..64 (candidates raced at "
              "once), got 0");
    EXPECT_EQ(error_of("[sfu]\nfull_load = 0\n"),
              "coord.toml: sfu.full_load (line 2): expected an integer 1..1000000 (per-mille: "
              "1000 is full), got 0");
    EXPECT_EQ(error_of("[sfu]\ntoken_ttl_s = 5\n"),
              "coord.toml: sfu.token_ttl_s (line 2): expected an integer 60..604800 (seconds), "
              "got 5");
    EXPECT_EQ(error_of("[sfu]\nsecrets = []\n")
                  .rfind("coord.toml: sfu.secrets (line 2): unknown key", 0),
              0u);
    EXPECT_EQ(error_of("sfu = 1\n").rfind("coord.toml: sfu (line 1): expected a table [sfu]", 0),
              0u);
    CoordConfig config;
    config.coordinator.sfu.race = 9;
    EXPECT_THROW(validate_coord_config(config), engine::ConfigError)
        << "race above max_candidates (8)";
}

TEST(CoordConfigTest, CrossChecks) {
    CoordConfig config;
    config.coordinator.rest_secret = "s";
    EXPECT_THROW(validate_coord_config(config), engine::ConfigError) << "a secret and no relay";
    config.coordinator.relay_servers = {"203.0.113.4:3478"};
    EXPECT_NO_THROW(validate_coord_config(config));
    config.coordinator.limits.max_signal_bytes = config.coordinator.limits.max_line_bytes;
    EXPECT_THROW(validate_coord_config(config), engine::ConfigError);
}

TEST(CoordConfigTest, ListenAddresses) {
    EXPECT_TRUE(valid_listen_address("0.0.0.0:7000"));
    EXPECT_TRUE(valid_listen_address("127.0.0.1:0"));
    EXPECT_TRUE(valid_listen_address("[::]:7000"));
    EXPECT_FALSE(valid_listen_address("::1:7000"));
    EXPECT_FALSE(valid_listen_address("localhost:7000"));
    EXPECT_FALSE(valid_listen_address("1.2.3.4:70000"));
    EXPECT_FALSE(valid_listen_address("1.2.3.4"));
}

}  // namespace
}  // namespace control
