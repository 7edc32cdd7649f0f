// punchcoord's configuration: a TOML file (toml++) and command-line flags over it, validated
// whole before the coordinator starts (style rule 13).
//
// Errors are engine::ConfigError, as the engine's (engine/config.h): the dotted key, the line
// of the file, and what was expected ("limits.max_rooms (line 7): expected an integer
// 1..1000000, got -1"); a flag's errors name the flag. The keys (docs/operations.md):
//
//   listen = "0.0.0.0:7000"
//   stun = ["203.0.113.2:3478"]          # servers hello and join hand out
//   relay = ["203.0.113.4:3478"]         # TURN servers
//   idle_timeout_ms = 30000
//   [turn]  rest_secret_file = "/etc/punchline/rest-secret"  (or rest_secret = "..."),
//           rest_ttl_s = 3600
//   [nodes] ttl_ms = 15000, secret = ""
//   [sfu]   token_secret_file = "/etc/punchline/sfu-secret" (or token_secret = "...", 16+
//           bytes), token_ttl_s = 3600, race = 1, full_load = 1000, max_candidates = 8
//   [limits] max_connections, max_connections_per_address, max_rooms, max_members_per_room,
//           max_rooms_per_connection, max_line_bytes, max_candidates_per_member,
//           max_signal_bytes, max_reports, max_reports_per_connection, max_nodes,
//           max_json_depth, max_output_bytes, max_sfu_requests_per_connection
//   [log]   level = "info", target = "stderr" | "syslog"
#pragma once

#include <string>
#include <string_view>

#include "control/coordinator.h"
#include "engine/config.h"

namespace control {

struct CoordConfig {
    /// "ip:port" the coordinator listens on (TCP); port 0: the kernel picks (tests).
    std::string listen = "0.0.0.0:7000";
    CoordinatorConfig coordinator;
    engine::LogConfig log;
};

/// Parses a whole file's text into `config` (over what it holds: defaults, normally). Throws
/// engine::ConfigError naming `source_name`, the key and the line.
void parse_coord_config(std::string_view toml_text, std::string_view source_name,
                        CoordConfig& config);

/// Reads and parses `path`. Throws engine::ConfigError (key "file") when it cannot be read.
void load_coord_config(const std::string& path, CoordConfig& config);

/// The first line of `path` (a REST secret file): its trailing '\r' and blanks cut. Throws
/// engine::ConfigError under `key` when the file cannot be read or the line is empty.
[[nodiscard]] std::string read_secret_file(const std::string& path, const std::string& key);

/// "host:port" with a numeric IP ("0.0.0.0:7000", "[::]:7000"); false otherwise.
[[nodiscard]] bool valid_listen_address(std::string_view text) noexcept;

/// Checks the settings that depend on each other (after file and flags): a limit of 0, a
/// line limit too small for a signal, sfu.race above sfu.max_candidates. Throws
/// engine::ConfigError naming the key.
void validate_coord_config(const CoordConfig& config);

}  // namespace control
