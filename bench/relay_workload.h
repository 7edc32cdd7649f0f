// The relay benchmarks' lab (bench/engine_pipeline_bench.cc, bench/relay_setup_bench.cc): a
// port with the relay role, one worker's shard, and the frames a TURN client and its peer send,
// built as a client builds them (long-term credentials, a nonce the server made for that
// client, MESSAGE-INTEGRITY, FINGERPRINT, correct checksums). Benchmarks only: it allocates.
//
// Addresses (environment.md's ranges): the server 198.18.0.2 (STUN/TURN on 3478, relayed
// addresses on the same IP, ports from 49152), its gateway 198.18.0.1 (the next hop to every
// peer), client i 198.18.64.0 + i (port 20000 + i % 40000, MAC 02:00:c0:xx:xx:xx) and its peer
// 203.0.113.(1 + i % 250), port 10000 + 2 × (i / 250) (bound to channel 0x4000); the same IP
// on the next port up is a peer with a permission but no channel (a Data indication's).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/checksum.h"
#include "engine/frame.h"
#include "engine/handler.h"
#include "engine/peer_policy.h"
#include "engine/port_context.h"
#include "engine/rate_limit.h"
#include "engine/relay_role.h"
#include "engine/relay_table.h"
#include "engine/turn_auth.h"
#include "engine/turn_nonce.h"
#include "stun/address.h"
#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/credentials.h"
#include "stun/writer.h"

namespace relay_workload {

inline constexpr std::uint32_t server_ip = 0xC6120002;   // 198.18.0.2
inline constexpr std::uint32_t gateway_ip = 0xC6120001;  // 198.18.0.1
inline constexpr std::uint16_t turn_port = 3478;
inline constexpr std::uint16_t first_relay_port = 49152;
inline constexpr std::uint16_t channel_number = 0x4000;
inline constexpr std::string_view realm = "punchline";
inline constexpr std::string_view username = "bench";
inline constexpr std::string_view password = "bench-password";
inline constexpr engine::MacAddress gateway_mac = {std::byte{0x02}, std::byte{0x00},
                                                   std::byte{0x00}, std::byte{0x00},
                                                   std::byte{0x00}, std::byte{0x01}};

inline stun::Address client(unsigned i) {
    return stun::Address::v4(0xC6124000 + i, static_cast<std::uint16_t>(20000 + i % 40000));
}
inline engine::MacAddress client_mac(unsigned i) {
    return {std::byte{0x02}, std::byte{0x00}, std::byte{0xC0}, static_cast<std::byte>(i >> 16),
            static_cast<std::byte>(i >> 8), static_cast<std::byte>(i)};
}
/// The peer bound to client i's channel 0x4000.
inline stun::Address peer(unsigned i) {
    return stun::Address::v4(0xCB007101 + i % 250,
                             static_cast<std::uint16_t>(10000 + 2 * (i / 250)));
}
/// The same IP, one port up: permitted (RFC 8656 §9 compares the IP only), no channel.
inline stun::Address unbound_peer(unsigned i) {
    stun::Address a = peer(i);
    ++a.port;
    return a;
}

inline engine::NonceKeys nonce_keys() {
    engine::NonceKeys keys;
    keys.current.id = 7;
    keys.current.secret.fill(std::byte{0x5A});
    return keys;
}

/// The relay's read-only context: one long-term user, the default peer policy (203.0.113.0/24
/// allowed), one relay address (the server's), no per-user quota that `clients` could hit,
/// on a clock of `ticks_per_second`; each allocation's bandwidth capped at `bandwidth`.
inline std::shared_ptr<const engine::RelayContext> make_context(
    std::uint64_t ticks_per_second, std::uint32_t clients,
    std::optional<engine::RateLimit> bandwidth = std::nullopt) {
    const engine::LongTermUser users[] = {{username, password}};
    engine::CredentialsSettings settings;
    settings.realm = realm;
    settings.users = users;
    settings.nonce_keys = nonce_keys();
    engine::Credentials credentials;
    if (engine::Credentials::build(settings, credentials) != engine::CredentialsError::ok)
        throw std::runtime_error("relay_workload: credentials");
    const std::vector<stun::Address> own = {stun::Address::v4(server_ip, 0)};
    engine::RelayAddress address;
    address.ipv4 = stun::Address::v4(server_ip, 0);
    address.families = engine::relay_ipv4;
    engine::RelayLimits limits;
    limits.ticks_per_second = ticks_per_second;
    limits.max_allocations_per_user = clients + 1;
    limits.bandwidth = bandwidth;
    return std::make_shared<const engine::RelayContext>(
        std::move(credentials), engine::PeerPolicy({}, {}, own),
        std::vector<engine::RelayAddress>{address}, limits);
}

/// One worker's shard for `capacity` allocations, 4 permissions and 4 channels each.
inline std::unique_ptr<engine::RelayShard> make_shard(std::uint32_t capacity,
                                                      std::uint64_t ticks_per_second) {
    engine::RelayTableLimits limits;
    limits.capacity = capacity;
    limits.first_relay_port = first_relay_port;
    limits.relay_port_count = 65536 - first_relay_port;
    limits.relay_addresses = 1;
    limits.max_permissions = 4;
    limits.max_channels = 4;
    limits.seed = 0x9E3779B97F4A7C15;
    return std::make_unique<engine::RelayShard>(
        limits, *engine::RateLimit::make(1000, 2000, ticks_per_second), 4096, 42);
}

/// The port: 198.18.0.2 with `mac`, TURN on 3478, UDP checksums verified, the gateway
/// resolved, the relay role on; prepared as punchlined prepares it.
inline engine::PortContext make_port(const engine::MacAddress& mac,
                                     std::shared_ptr<const engine::RelayContext> relay) {
    engine::PortContext port;
    port.mac = mac;
    port.ipv4.primary = stun::Address::v4(server_ip, 0);
    port.rx_checksum = engine::RxChecksum::verify;
    port.stun_enabled = true;
    port.stun_port = turn_port;
    port.stun_alternate_port = 0;
    port.software = "";
    port.neighbours.ipv4 = {port.ipv4.primary, 24, stun::Address::v4(gateway_ip, 0)};
    port.neighbours.entries = {{stun::Address::v4(gateway_ip, 0), gateway_mac, true}};
    port.relay = std::move(relay);
    port.prepare();
    return port;
}

/// Writes Ethernet, IPv4 (no options, DF, TTL 64) and UDP headers around the `payload_length`
/// bytes already at f + 42, with both checksums. Returns the frame's length.
inline std::size_t frame_udp(std::byte* f, const engine::MacAddress& to_mac,
                             const engine::MacAddress& from_mac, const stun::Address& from,
                             const stun::Address& to, std::size_t payload_length) {
    std::memcpy(f, to_mac.data(), 6);
    std::memcpy(f + 6, from_mac.data(), 6);
    stun::store_be16(f + 12, engine::ethertype::ipv4);
    std::byte* ip = f + 14;
    std::memset(ip, 0, 20);
    ip[0] = std::byte{0x45};
    stun::store_be16(ip + 2, static_cast<std::uint16_t>(20 + 8 + payload_length));
    stun::store_be16(ip + 6, 0x4000);
    ip[8] = std::byte{64};
    ip[9] = std::byte{engine::ip_protocol::udp};
    std::memcpy(ip + 12, from.ip.data(), 4);
    std::memcpy(ip + 16, to.ip.data(), 4);
    stun::store_be16(ip + 10, engine::ipv4_header_checksum({ip, 20}));
    std::byte* udp = ip + 20;
    stun::store_be16(udp, from.port);
    stun::store_be16(udp + 2, to.port);
    stun::store_be16(udp + 4, static_cast<std::uint16_t>(8 + payload_length));
    stun::store_be16(udp + 6, 0);
    const std::uint16_t sum = engine::transport_checksum({ip + 12, 8}, engine::ip_protocol::udp,
                                                         {udp, 8 + payload_length});
    stun::store_be16(udp + 6, sum == 0 ? 0xFFFF : sum);
    return 14 + 20 + 8 + payload_length;
}

/// The byte pattern of a relayed payload: its first 4 bytes name the flow, so that a checker
/// finds which flow a relayed frame belongs to.
inline void fill_payload(std::byte* p, std::size_t length, unsigned flow) {
    for (std::size_t i = 0; i < length; ++i) p[i] = static_cast<std::byte>(i * 7 + 3);
    if (length >= 4) stun::store_be32(p, flow);
}

enum class Request : std::uint8_t { allocate, create_permission, channel_bind };

/// Client i's authenticated request, in a frame to the port (`port_mac`): Allocate
/// (REQUESTED-TRANSPORT UDP), CreatePermission (XOR-PEER-ADDRESS peer(i)) or ChannelBind
/// (0x4000 to peer(i)), with USERNAME, REALM, the NONCE the server gives client i at `now_s`,
/// MESSAGE-INTEGRITY and FINGERPRINT. `serial` varies the transaction ID. Returns the length.
inline std::size_t frame_request(std::byte* f, std::size_t capacity,
                                 const engine::MacAddress& port_mac, unsigned i, Request request,
                                 std::uint64_t now_s, std::uint32_t serial) {
    stun::LongTermKeyMd5 key{};
    if (stun::long_term_key_md5(username, realm, password, key) != stun::CredentialError::ok)
        throw std::runtime_error("relay_workload: long-term key");
    std::array<char, engine::turn_nonce_size> nonce{};
    if (engine::make_nonce(nonce_keys(), client(i), now_s, nonce) != nonce.size())
        throw std::runtime_error("relay_workload: nonce");
    stun::TransactionId txid;
    stun::store_be32(txid.data(), i);
    stun::store_be32(txid.data() + 4, serial);
    stun::store_be32(txid.data() + 8, static_cast<std::uint32_t>(request) | 0x7E570000);
    const stun::Method method = request == Request::allocate ? stun::Method::allocate
                                : request == Request::create_permission
                                    ? stun::Method::create_permission
                                    : stun::Method::channel_bind;
    std::byte* message = f + 42;
    stun::MessageWriter w(std::span<std::byte>(message, capacity - 42), method,
                          stun::MessageClass::request, txid);
    switch (request) {
    case Request::allocate: w.add_requested_transport(17); break;
    case Request::create_permission:
        w.add_xor_address(stun::attr::xor_peer_address, peer(i));
        break;
    case Request::channel_bind:
        w.add_channel_number(channel_number);
        w.add_xor_address(stun::attr::xor_peer_address, peer(i));
        break;
    }
    w.add_text(stun::attr::username, username);
    w.add_text(stun::attr::realm, realm);
    w.add_text(stun::attr::nonce, std::string_view(nonce.data(), nonce.size()));
    w.add_message_integrity(key);
    w.add_fingerprint();
    if (!w.ok()) throw std::runtime_error("relay_workload: request does not fit");
    return frame_udp(f, port_mac, client_mac(i), client(i), stun::Address::v4(server_ip, turn_port),
                     w.size());
}

/// Whether a handled frame is a success response (class bits 10, RFC 8489 §5) of `request`.
inline bool is_success(const engine::Frame& f, Request request) noexcept {
    if (f.length < 42 + stun::header_size) return false;
    const std::uint16_t type = stun::load_be16(f.data + 42);
    const stun::Method method = request == Request::allocate ? stun::Method::allocate
                                : request == Request::create_permission
                                    ? stun::Method::create_permission
                                    : stun::Method::channel_bind;
    return type == stun::message_type(method, stun::MessageClass::success_response);
}

/// Makes client i's allocation on `shard` the way a client does, through handle_frame() on
/// `port` (so that the Allocate records the client's MAC): Allocate, CreatePermission for
/// peer(i), ChannelBind 0x4000 to peer(i), each answered with a success, at `now_ticks` and
/// `now_s`. Returns the relay port, or nullopt (with `why`) when a request failed.
inline std::optional<std::uint16_t> allocate(const engine::PortContext& port,
                                             engine::RelayShard& shard, unsigned i,
                                             std::uint64_t now_ticks, std::uint64_t now_s,
                                             std::string& why) {
    alignas(64) std::array<std::byte, 2048> buffer{};
    engine::CoreCounters counters;
    engine::RelayState state{shard, now_ticks, now_s};
    for (const Request request :
         {Request::allocate, Request::create_permission, Request::channel_bind}) {
        const std::size_t length =
            frame_request(buffer.data(), buffer.size(), port.mac, i, request, now_s, 0);
        engine::Frame f{buffer.data(), static_cast<std::uint16_t>(length),
                        static_cast<std::uint16_t>(buffer.size())};
        const engine::Verdict verdict = engine::handle_frame(f, port, counters, &state);
        if (!verdict.transmits() || !is_success(f, request)) {
            why = "client " + std::to_string(i) + ": request " +
                  std::to_string(static_cast<int>(request)) + " not answered with a success";
            return std::nullopt;
        }
    }
    const auto key = engine::FiveTuple::make(client(i), stun::Address::v4(server_ip, turn_port));
    const std::uint32_t slot = shard.table().find(*key);
    if (slot == engine::RelayTable::no_slot) {
        why = "client " + std::to_string(i) + ": no allocation after a successful Allocate";
        return std::nullopt;
    }
    return shard.table().at(slot).relay_port();
}

}  // namespace relay_workload
