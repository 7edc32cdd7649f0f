// `[node]` in punchlined's configuration: the engine as an SFU node of punchcoord
// (control/node_agent.h; docs/operations.md lists the keys).
//
// A separate reader from engine/config.cc's so that the agent's keys live with the agent;
// punchlined calls it on the same file after parse_config() and fills in what the engine's
// own keys decide (the SFU address from the port and sfu.port, the punch secret from
// sfu.token_secrets).
#pragma once

#include <optional>
#include <string_view>

#include "control/node_agent.h"

namespace control {

/// Reads `[node]` from a whole configuration file's text; nullopt when there is no `[node]`
/// table (the engine registers with no coordinator). Host names in `coordinator` and
/// `stun_server` are resolved here (getaddrinfo: blocking, at start-up). Leaves `local` and
/// `token_secret` for the caller. Throws engine::ConfigError naming the key, its line and what
/// to write instead; keys it does not know are refused likewise.
[[nodiscard]] std::optional<NodeAgentConfig> parse_node_config(std::string_view toml_text,
                                                               std::string_view source_name);

}  // namespace control
