// punchlined's configuration: one struct with in-class defaults (style rule 13), read from one
// TOML file and validated as a whole before anything is applied.
//
// Example (the demo's default, engine/punchlined.toml):
//
//   [eal]
//   args = ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--no-telemetry",
//           "--log-level=lib.eal:error", "--vdev=net_tap0,iface=punch0"]
//
//   [engine]
//   workers = [1]            # worker lcores; the main lcore is the control thread
//   mbufs = 16383            # packet buffers per port
//   burst = 32               # rx/tx burst size
//   steering = "auto"        # auto: rte_flow rules where the port takes them, else software
//
//   [stun]
//   enabled = true
//   port = 3478              # primary port
//   alternate_port = 3479    # RFC 5780 alternate port (0: none)
//   software = "punchline"   # SOFTWARE attribute in responses ("" to leave it out)
//
//   [[port]]
//   device = "net_tap0"              # EAL device name (a PCI address or a vdev's name)
//   ipv4 = ["198.18.0.2", "198.18.0.3"]   # primary, then RFC 5780 alternate (optional)
//   ipv6 = ["2001:db8::2", "2001:db8::3"] # likewise (optional)
//   gateway4 = "198.18.0.1"          # next hop for addresses off the port's subnet (optional)
//   prefix4 = 24                     # on-link prefix length of ipv4 addresses
//   gateway6 = "2001:db8::1"
//   prefix6 = 64
//   rx_checksum = "verify"           # verify | trust (veth/af_packet hands over partial sums)
//
//   [neighbour]                      # the cache that resolves gateway4/gateway6 (ARP, NDP)
//   reachable_ms = 30000             # a confirmed MAC is trusted this long, then re-probed
//   retransmit_ms = 1000             # between two probes for one address
//   max_probes = 3                   # unanswered probes before an entry is FAILED
//   failed_retry_ms = 10000          # a FAILED gateway is probed again after this (doubling)
//   capacity = 64                    # entries per port, gateways included
//
//   [relay]                          # TURN relay (RFC 8656); absent: disabled
//   enabled = false
//   realm = "punchline"              # REALM (RFC 8489 §14.9)
//   ports = "49152-65535"            # relay ports, inclusive, shared out among the workers
//   users = [{ name = "alice", password = "..." }]   # long-term credentials
//   rest_secrets = ["..."]           # TURN REST shared secrets, any of them verifies
//   nonce_lifetime_s = 600
//   allocation_lifetime_max_s = 3600
//   max_allocations = 10000          # quotas: total, per user, per allocation
//   max_allocations_per_user = 10
//   max_permissions_per_allocation = 16
//   max_channels_per_allocation = 16
//   bandwidth_bytes_per_s = 0        # per allocation; 0: unlimited
//   bandwidth_burst_bytes = ...      # default: one second of bandwidth_bytes_per_s
//   unauthenticated_requests_per_s = 20   # per source IP
//   unauthenticated_burst = 40
//   peer_allow = ["10.1.2.0/24"]     # holes in the default peer ranges (peer_policy.h)
//   peer_deny = ["203.0.113.0/24"]
//   alternate_server = "198.51.100.20:3478"   # while draining: 300 Try Alternate to it
//
//   [sfu]                            # the SFU role (docs/sfu.md); absent: off
//   port = 3480                      # the SFU port on the engine's addresses
//   token_secrets = ["..."]          # the coordinator's shared secrets, any verifies
//   max_legs = 65536                 # legs per worker
//   max_legs_per_session = 8         # 2 for 1:1 calls, more for rooms
//   leg_timeout_s = 15               # silence after which a leg expires
//   unauthenticated_requests_per_s = 20   # error answers per source IP
//   unauthenticated_burst = 40
//
//   [control]                        # the management socket (punchctl); absent: the defaults
//   socket = "/run/punchline/punchlined.sock"   # absolute, at most 107 bytes
//   group = "punchline"              # optional: mode 0660 and this group's members may use it
//
//   [metrics]                        # Prometheus text exposition over HTTP; absent: off
//   listen = "127.0.0.1:9641"        # IPv4 "IP:PORT" or IPv6 "[IP]:PORT"
//
//   [log]                            # the control thread's messages
//   level = "info"                   # error | warn | info | debug
//   target = "stderr"                # stderr | syslog (facility daemon, ident punchlined)
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/peer_policy.h"
#include "stun/address.h"

namespace engine {

/// How the engine treats the UDP checksum of received packets.
enum class RxChecksum : std::uint8_t {
    verify,  ///< check it in software; drop (bad_udp_checksum) when wrong
    trust,   ///< the port delivers partial checksums (veth, af_packet): do not check
};

struct PortConfig {
    std::string device;                 ///< EAL device name, e.g. "net_tap0" or "0000:03:00.0"
    std::vector<stun::Address> ipv4;    ///< [primary] or [primary, alternate]; port field unused
    std::vector<stun::Address> ipv6;    ///< likewise
    std::optional<stun::Address> gateway4;
    std::optional<stun::Address> gateway6;
    std::uint8_t prefix4 = 24;
    std::uint8_t prefix6 = 64;
    RxChecksum rx_checksum = RxChecksum::verify;
};

struct StunConfig {
    bool enabled = true;
    std::uint16_t port = 3478;
    std::uint16_t alternate_port = 3479;  ///< 0: no alternate port
    std::string software = "punchline";
};

/// The neighbour cache (ARP, RFC 826; NDP, RFC 4861 §7.3): timers in milliseconds of the
/// control thread's clock, which ticks every 50 ms (shorter intervals are rounded up to it).
struct NeighbourConfig {
    /// RFC 4861 §6.3.2's ReachableTime: how long a reply keeps an entry REACHABLE.
    std::uint32_t reachable_ms = 30000;
    /// RFC 4861 §6.3.2's RetransTimer: between two probes for one address.
    std::uint32_t retransmit_ms = 1000;
    /// RFC 4861 §10's MAX_MULTICAST_SOLICIT and MAX_UNICAST_SOLICIT, both 3.
    std::uint32_t max_probes = 3;
    /// A FAILED gateway is probed again after this, doubled after each further failure (up to
    /// 32 times): a router that went away is looked for without flooding the link.
    std::uint32_t failed_retry_ms = 10000;
    /// Entries per port, the (at most two) gateways included.
    std::uint32_t capacity = 64;
};

/// One long-term credential (RFC 8489 §9.2) of the TURN relay.
struct RelayUser {
    /// SASLprep'd (RFC 4013), as a client sends it in USERNAME: non-empty, at most 508 bytes
    /// (RFC 8489 §14.3), unique among the users.
    std::string name;
    /// As written; non-empty, and SASLprep accepts it (stun::long_term_key_md5 prepares it).
    std::string password;
};

/// The TURN relay role (RFC 8656, design.md §3). Parsing and validation only: the relay's
/// handlers read it. Cross-checks against the rest of the file (stun ports, workers, some way
/// to authenticate) apply only when `enabled`, so that a disabled section never stops the
/// engine.
struct RelayConfig {
    /// RFC 8656 §7.2: the lifetime of an allocation whose client asks for less, or none.
    static constexpr std::uint32_t default_allocation_lifetime_s = 600;
    /// Fixed by the RFC, hence not keys: a permission lasts 300 s (RFC 8656 §9), a channel
    /// binding 600 s (§12).
    static constexpr std::uint32_t permission_lifetime_s = 300;
    static constexpr std::uint32_t channel_lifetime_s = 600;

    bool enabled = false;
    /// REALM (RFC 8489 §14.9): fewer than 128 characters, qdtext or quoted-pair, unchanged by
    /// SASLprep (OpaqueString), so that client and server derive the same key from it.
    std::string realm = "punchline";
    /// The relay ports, both inclusive, 1024..65535; stun.port and stun.alternate_port lie
    /// outside, and every worker gets at least one (the engine shares them out).
    std::uint16_t port_first = 49152;
    std::uint16_t port_last = 65535;
    /// Long-term credentials; names unique.
    std::vector<RelayUser> users{};
    /// TURN REST shared secrets (coturn's use-auth-secret): any of them verifies a REST
    /// username, so that a new secret can be added before the old one is removed. Each at least
    /// 16 bytes; no two alike.
    std::vector<std::string> rest_secrets{};
    /// How long a nonce is accepted after it was issued, in seconds (5..86400); then 438.
    /// Short lifetimes cost clients a round trip each time; coturn's stale-nonce is 600.
    std::uint32_t nonce_lifetime_s = 600;
    /// The longest lifetime an Allocate or Refresh gets, in seconds (600..86400): RFC 8656
    /// §7.2 lets the server cap the client's LIFETIME; not below the default lifetime.
    std::uint32_t allocation_lifetime_max_s = 3600;
    /// Allocations at once, in all, 1..1048576 (508 Insufficient Capacity past it).
    std::uint32_t max_allocations = 10000;
    /// Allocations at once per username, 1..1048576 (486 Allocation Quota Reached past it).
    std::uint32_t max_allocations_per_user = 10;
    /// Peer IP addresses with a permission, per allocation, 1..4096.
    std::uint32_t max_permissions_per_allocation = 16;
    /// Channels per allocation, 1..4096: the channel numbers 0x4000-0x4FFF (RFC 8656 §12).
    std::uint32_t max_channels_per_allocation = 16;
    /// Peer entries, in all, 1..67108864: each holds a peer IP's permission and a channel to
    /// it (a WebRTC allocation needs one); divided among the workers as max_allocations is.
    /// 508 when a worker's are all in use. 0 (the default): as many as max_allocations.
    std::uint32_t peer_entries = 0;
    /// Port reservations (RFC 8656 §7.2, EVEN-PORT's R bit) at once, in all,
    /// 1..max_allocations; 508 past it. 0 (the default): max_allocations / 16, at least one a
    /// worker.
    std::uint32_t reservations = 0;
    /// Relayed bytes per second per allocation, 0..10^9; 0: unlimited.
    std::uint64_t bandwidth_bytes_per_s = 0;
    /// The bandwidth bucket's depth in bytes, 1500 (one full-size packet)..10^9; 0 when
    /// bandwidth_bytes_per_s is 0. The file's default is one second of bandwidth_bytes_per_s.
    std::uint64_t bandwidth_burst_bytes = 0;
    /// Requests without valid credentials per second per source IP (an IPv6 /64), and the
    /// bucket's depth in requests (engine::SourceRateLimiter); each 1..10^6.
    std::uint32_t unauthenticated_requests_per_s = 20;
    std::uint32_t unauthenticated_burst = 40;
    /// The peer address policy's lists (engine/peer_policy.h gives the order of the rules).
    std::vector<Cidr> peer_allow{};
    std::vector<Cidr> peer_deny{};
    /// Where a draining engine sends new allocations (RFC 8489 §14.15 ALTERNATE-SERVER, in a
    /// 300 Try Alternate): another relay's address and port. Without it, or for a client of
    /// the other family, a draining engine answers 508 (punchctl drain, docs/operations.md).
    std::optional<stun::Address> alternate_server{};
};

/// The SFU role (design.md §3, role `sfu`; docs/sfu.md): participants admitted with the
/// coordinator's session tokens (stun/sfu_token.h) on `port`, media forwarded among the legs of
/// a session. On when `token_secrets` is set: a node without a secret could admit no one.
/// Cross-checks against the rest of the file (stun and relay ports) apply only then.
struct SfuConfig {
    static constexpr std::uint16_t default_port = 3480;

    std::uint16_t port = default_port;
    /// The secrets the coordinator signs tokens with (its sfu.token_secret): any of them
    /// verifies a token, so that a new one can be added before the old one is removed. Each at
    /// least 16 bytes; no two alike. Empty: the role is off.
    std::vector<std::string> token_secrets{};
    /// Legs per worker, 1..1048576: the leg table's capacity (508 past it).
    std::uint32_t max_legs = 65536;
    /// Legs per session, 2..1024 (403 "SFU session full" past it): 2 for 1:1 calls.
    std::uint32_t max_legs_per_session = 8;
    /// Seconds without a datagram after which a leg expires, 1..3600.
    std::uint32_t leg_timeout_s = 15;
    /// Unauthenticated error answers (400, 401) per second per source IP (an IPv6 /64), and
    /// the bucket's depth; each 1..10^6. Past them the request is dropped unanswered.
    std::uint32_t unauthenticated_requests_per_s = 20;
    std::uint32_t unauthenticated_burst = 40;

    [[nodiscard]] bool enabled() const noexcept { return !token_secrets.empty(); }
};

/// The management socket (design.md §4, control/server.h): a Unix stream socket that punchctl
/// talks to. Created mode 0600 (owner only); with `group`, mode 0660 and that group. Whatever
/// the file's mode, the engine checks each peer's credentials (SO_PEERCRED): root, the
/// engine's own user, or a member of `group`.
struct ControlConfig {
    static constexpr std::string_view default_socket = "/run/punchline/punchlined.sock";
    /// An absolute path of at most 107 bytes (sockaddr_un's sun_path with its NUL). Its
    /// folder is created (mode 0755) when missing; a stale socket there is replaced, a live
    /// one (another engine) stops the start-up.
    std::string socket{default_socket};
    /// A group name (resolved at start-up); empty: none.
    std::string group;
};

/// The Prometheus endpoint (control/metrics_server.h): plain HTTP on a TCP address, served by
/// the control thread. Off unless `listen` is set: it shows the engine's traffic to whoever
/// reaches the address, so an operator chooses where.
struct MetricsConfig {
    static constexpr std::uint16_t default_port = 9641;
    /// The address and port to listen on; port 0: one the system chooses (the log names it).
    std::optional<stun::Address> listen;
};

/// The control thread's log (control/log.h). Workers never log (design.md §3).
enum class LogLevel : std::uint8_t { error, warn, info, debug };
enum class LogTarget : std::uint8_t { stderr_stream, syslog };

struct LogConfig {
    LogLevel level = LogLevel::info;
    LogTarget target = LogTarget::stderr_stream;
};

/// How packets reach their owner worker (engine/flow_steering.h).
enum class Steering : std::uint8_t {
    automatic,  ///< "auto": rte_flow rules where the port accepts them, software elsewhere
    software,   ///< "software": always the workers' own hash and handoff rings
};

struct EngineConfig {
    std::vector<std::string> eal_args;    ///< passed to rte_eal_init after argv[0]
    std::vector<unsigned> workers = {1};  ///< worker lcore ids
    unsigned mbufs = 16383;
    unsigned burst = 32;
    Steering steering = Steering::automatic;
    StunConfig stun;
    NeighbourConfig neighbour;
    RelayConfig relay;
    SfuConfig sfu;
    ControlConfig control;
    MetricsConfig metrics;
    LogConfig log;
    std::vector<PortConfig> ports;
};

/// A configuration error: which file, which key, on which line, and what was expected. Thrown
/// by parse_config and load_config (exceptions are fine at start-up, style rule 12). what() is
/// "<source>: <key> (line N): <expected>", parts left out when unknown.
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string key, unsigned line, std::string expected, std::string source = {})
        : std::runtime_error(format(source, key, line, expected)),
          key_(std::move(key)),
          line_(line),
          expected_(std::move(expected)),
          source_(std::move(source)) {}
    [[nodiscard]] const std::string& key() const noexcept { return key_; }
    /// 1-based line in the file; 0 when the problem is not at one line (a missing key).
    [[nodiscard]] unsigned line() const noexcept { return line_; }
    [[nodiscard]] const std::string& expected() const noexcept { return expected_; }
    [[nodiscard]] const std::string& source() const noexcept { return source_; }
    /// The same error, named after the file it came from.
    [[nodiscard]] ConfigError in(std::string source) const {
        return {key_, line_, expected_, std::move(source)};
    }

private:
    static std::string format(const std::string& source, const std::string& key, unsigned line,
                              const std::string& expected);
    std::string key_;
    unsigned line_;
    std::string expected_;
    std::string source_;
};

/// Parses and validates a whole configuration. `source_name` names the file in messages.
/// Throws ConfigError for the first problem found.
EngineConfig parse_config(std::string_view toml_text, std::string_view source_name);

/// Reads `path` and parses it. Throws ConfigError (key "file") when it cannot be read.
EngineConfig load_config(const std::string& path);

}  // namespace engine
