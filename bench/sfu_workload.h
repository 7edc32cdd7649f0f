// The SFU benchmark's lab (bench/engine_pipeline_bench.cc, --workload sfu; issue 7): a port
// with the sfu role, its configuration as punchlined would read it, the Binding requests with
// which participants are admitted (docs/sfu.md: a session token from the coordinator in
// USERNAME, MESSAGE-INTEGRITY keyed with its password, FINGERPRINT), the media frames the
// publishers send, and the checks of what the engine sends back. Benchmarks only: it
// allocates.
//
// Sessions of `fanout` + 1 legs. Leg g (session g / (fanout + 1), participant "p<g % (fanout +
// 1)>") is relay_workload::client(g) with relay_workload::client_mac(g): 198.18.64.0 + g, port
// 20000 + g; the SFU address is 198.18.0.2:3480. In a 1:1 call (fanout 1) both legs publish,
// as a call's two sides do; in a room (fanout N > 1) participant p0 publishes to the N others.
// A publisher's media is an RTP packet (RFC 3550 §5.1: version 2, payload type 111, its
// SSRC the leg's index) of `payload` bytes in all, the rest a fixed pattern.
#pragma once

#include <rte_ip.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/checksum.h"
#include "engine/config.h"
#include "engine/frame.h"
#include "engine/port_context.h"
#include "relay_workload.h"
#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace sfu_workload {

inline constexpr std::uint32_t server_ip = relay_workload::server_ip;  // 198.18.0.2
inline constexpr std::uint16_t stun_port = 3478;
inline constexpr std::uint16_t sfu_port = engine::SfuConfig::default_port;  // 3480
inline constexpr std::string_view secret = "the bench coordinator's secret, 32 bytes";
inline constexpr std::uint64_t token_ttl_s = 3600;
inline constexpr std::uint8_t rtp_payload_type = 111;  // dynamic (RFC 3551 §6): Opus's usual
inline constexpr std::size_t rtp_header_size = 12;

/// The sessions and their legs.
struct Layout {
    unsigned sessions = 0;
    unsigned fanout = 1;  ///< subscribers per publisher

    [[nodiscard]] unsigned legs_per_session() const noexcept { return fanout + 1; }
    [[nodiscard]] unsigned legs() const noexcept { return sessions * legs_per_session(); }
    [[nodiscard]] unsigned session_of(unsigned leg) const noexcept {
        return leg / legs_per_session();
    }
    /// The publishing legs, in the feeder's order: both legs of a 1:1 call, a room's p0.
    [[nodiscard]] std::vector<unsigned> publishers() const {
        std::vector<unsigned> out;
        for (unsigned s = 0; s < sessions; ++s) {
            out.push_back(s * legs_per_session());
            if (fanout == 1) out.push_back(s * legs_per_session() + 1);
        }
        return out;
    }
};

/// The coordinator's id of session `s`: spread over 64 bits (an odd multiplier is a
/// bijection), as its random ids are.
inline std::uint64_t session_id(unsigned s) {
    return (std::uint64_t{s} + 1) * 0x9E3779B97F4A7C15ull;
}

inline std::string participant(const Layout& layout, unsigned leg) {
    return "p" + std::to_string(leg % layout.legs_per_session());
}

/// The sfu section of the configuration: the one secret, rooms of the layout's size, legs
/// that outlive the benchmark (its subscribers send nothing; a client's consent every 5 s
/// keeps them in a real call), the rest punchlined's defaults.
inline engine::SfuConfig make_config(const Layout& layout) {
    engine::SfuConfig config;
    config.token_secrets = {std::string(secret)};
    config.max_legs_per_session = std::max(2u, layout.legs_per_session());
    config.leg_timeout_s = 3600;
    return config;
}

/// The port: 198.18.0.2 with `mac`, STUN on 3478, UDP checksums verified; prepared as
/// punchlined prepares it. The sfu role's port is the SfuContext's (sfu_port).
inline engine::PortContext make_port(const engine::MacAddress& mac) {
    engine::PortContext port;
    port.mac = mac;
    port.ipv4.primary = stun::Address::v4(server_ip, 0);
    port.rx_checksum = engine::RxChecksum::verify;
    port.stun_enabled = true;
    port.stun_port = stun_port;
    port.stun_alternate_port = 0;
    port.software = "";
    port.prepare();
    return port;
}

struct Token {
    std::string username;
    std::string password;
};

/// The token the coordinator issues leg `leg`'s participant, valid until `now_s` + ttl.
inline Token make_token(const Layout& layout, unsigned leg, std::uint64_t now_s) {
    const std::string name = participant(layout, leg);
    std::array<char, stun::sfu_username_max> username{};
    std::size_t length = 0;
    if (stun::make_sfu_username({now_s + token_ttl_s, session_id(layout.session_of(leg)), name},
                                username, length) != stun::SfuTokenError::ok)
        throw std::runtime_error("sfu_workload: username");
    std::array<char, stun::sfu_password_size> password{};
    stun::make_sfu_password({reinterpret_cast<const std::byte*>(secret.data()), secret.size()},
                            {username.data(), length}, password);
    return {std::string(username.data(), length), std::string(password.data(), password.size())};
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// Leg `leg`'s admission request to the SFU address, in a frame to `port_mac`: a Binding
/// request with USERNAME (the token), MESSAGE-INTEGRITY keyed with its password and
/// FINGERPRINT, the leg's index in the transaction ID. Returns the frame's length.
inline std::size_t frame_admission(std::byte* f, std::size_t capacity,
                                   const engine::MacAddress& port_mac, const Token& token,
                                   unsigned leg) {
    stun::TransactionId txid{};
    stun::store_be32(txid.data(), leg);
    stun::store_be32(txid.data() + 8, 0x5F00AD17);
    stun::MessageWriter w(std::span<std::byte>(f + 42, capacity - 42), stun::Method::binding,
                          stun::MessageClass::request, txid);
    w.add_text(stun::attr::username, token.username);
    w.add_message_integrity(bytes_of(token.password));
    w.add_fingerprint();
    if (!w.ok()) throw std::runtime_error("sfu_workload: admission request does not fit");
    return relay_workload::frame_udp(f, port_mac, relay_workload::client_mac(leg),
                                     relay_workload::client(leg),
                                     stun::Address::v4(server_ip, sfu_port), w.size());
}

/// Checks an answer to leg `leg`'s admission request: a Binding success from the SFU address
/// to the leg, its MESSAGE-INTEGRITY keyed with the token's password, FINGERPRINT, and the
/// leg's address in XOR-MAPPED-ADDRESS. Returns an empty string when it is right.
inline std::string check_admission(std::span<const std::byte> frame, const Token& token,
                                   unsigned leg) {
    if (frame.size() < 42 + stun::header_size) return "shorter than a STUN answer";
    const std::byte* f = frame.data();
    const std::size_t udp_length = stun::load_be16(f + 38);
    if (42 + udp_length - 8 != frame.size()) return "UDP length disagrees with the frame";
    stun::Message message;
    if (stun::Message::parse(frame.subspan(42), message) != stun::ParseError::ok)
        return "the answer does not parse";
    if (!message.is(stun::Method::binding, stun::MessageClass::success_response))
        return "not a Binding success response (refused?)";
    if (stun::load_be32(message.transaction_id().data()) != leg) return "another transaction";
    if (stun::verify_message_integrity(message, bytes_of(token.password)) !=
        stun::IntegrityResult::ok)
        return "MESSAGE-INTEGRITY does not verify with the token's password";
    if (stun::verify_fingerprint(message) != stun::IntegrityResult::ok)
        return "FINGERPRINT does not verify";
    const auto mapped_attribute = message.find(stun::attr::xor_mapped_address);
    stun::Address mapped;
    if (!mapped_attribute ||
        stun::decode_xor_address(*mapped_attribute, message.transaction_id(), mapped) !=
            stun::ParseError::ok ||
        !(mapped == relay_workload::client(leg)))
        return "XOR-MAPPED-ADDRESS is not the leg's address";
    return {};
}

/// Publisher `leg`'s media frame to the SFU address: `payload` bytes of RTP (at least its
/// 12-byte header), IPv4 identification `id`. Returns the frame's length.
inline std::size_t frame_media(std::byte* f, const engine::MacAddress& port_mac, unsigned leg,
                               std::size_t payload, std::uint16_t id) {
    std::byte* p = f + 42;
    p[0] = std::byte{0x80};  // version 2, no padding, no extension, no CSRC
    p[1] = std::byte{rtp_payload_type};
    stun::store_be16(p + 2, static_cast<std::uint16_t>(id));  // sequence number
    stun::store_be32(p + 4, std::uint32_t{id} * 960);         // timestamp: 20 ms at 48 kHz
    stun::store_be32(p + 8, leg);                              // SSRC: the publisher
    for (std::size_t i = rtp_header_size; i < payload; ++i)
        p[i] = static_cast<std::byte>(i * 7 + leg);
    const std::size_t length = relay_workload::frame_udp(
        f, port_mac, relay_workload::client_mac(leg), relay_workload::client(leg),
        stun::Address::v4(server_ip, sfu_port), payload);
    stun::store_be16(f + 14 + 4, id);
    stun::store_be16(f + 14 + 10, 0);
    stun::store_be16(f + 14 + 10, engine::ipv4_header_checksum({f + 14, 20}));
    return length;
}

/// Checks one forwarded frame (`frame`: its bytes, every segment's in turn): from the port's
/// MAC and the SFU address, to a subscriber of the publisher its SSRC names (not the publisher
/// itself), at the subscriber's MAC, IPv4 with the publisher's identification, DF, TTL 64 and
/// a header checksum that verifies, a UDP checksum present (the caller verifies it over the
/// mbuf chain, rte_raw_cksum_mbuf()), the payload the publisher sent. `sent(leg)` is publisher
/// `leg`'s frame as the feeder sends it.
/// Sets `publisher` and `subscriber`; returns an empty string when it is right.
template <class Sent>
std::string check_forwarded(std::span<const std::byte> frame, const Layout& layout,
                            const engine::MacAddress& port_mac, std::size_t payload, Sent&& sent,
                            unsigned& publisher, unsigned& subscriber) {
    const std::byte* f = frame.data();
    if (frame.size() != 42 + payload) return "not the publisher's length";
    if (std::memcmp(f + 6, port_mac.data(), 6) != 0) return "not from the port's MAC";
    if (stun::load_be16(f + 12) != engine::ethertype::ipv4) return "not IPv4";
    const std::byte* ip = f + 14;
    if (ip[0] != std::byte{0x45} || ip[9] != std::byte{engine::ip_protocol::udp})
        return "not UDP in IPv4 without options";
    // DPDK's checksum functions, not the engine's.
    if (const std::uint16_t sum = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
        sum != 0 && sum != 0xFFFF)
        return "IPv4 header checksum does not verify";
    if (stun::load_be16(ip + 2) != 20 + 8 + payload) return "IPv4 total length is wrong";
    if (stun::load_be16(ip + 6) != 0x4000 || ip[8] != std::byte{64}) return "not DF, TTL 64";
    const std::byte* udp = ip + 20;
    if (stun::load_be16(udp + 4) != 8 + payload) return "UDP length is wrong";
    // The UDP checksum the caller verifies over the mbufs themselves.
    if (stun::load_be16(udp + 6) == 0) return "no UDP checksum";
    if (!(stun::Address::v4(stun::load_be32(ip + 12), stun::load_be16(udp)) ==
          stun::Address::v4(server_ip, sfu_port)))
        return "not from the SFU address";
    publisher = stun::load_be32(udp + 8 + 8);  // the RTP SSRC
    if (publisher >= layout.legs()) return "the SSRC names no leg";
    const std::byte* original = sent(publisher);
    if (std::memcmp(udp + 8, original + 42, payload) != 0) return "payload changed";
    if (stun::load_be16(ip + 4) != stun::load_be16(original + 14 + 4))
        return "IPv4 identification not the publisher's";
    const std::uint32_t to_ip = stun::load_be32(ip + 16);
    const std::uint32_t first = stun::load_be32(relay_workload::client(0).ip.data());
    subscriber = to_ip - first;
    if (to_ip < first || subscriber >= layout.legs()) return "not to a leg";
    if (!(stun::Address::v4(to_ip, stun::load_be16(udp + 2)) ==
          relay_workload::client(subscriber)))
        return "not to the leg's port";
    if (std::memcmp(f, relay_workload::client_mac(subscriber).data(), 6) != 0)
        return "not to the leg's MAC";
    if (subscriber == publisher) return "back to the publisher";
    if (layout.session_of(subscriber) != layout.session_of(publisher))
        return "to a leg of another session";
    return {};
}

}  // namespace sfu_workload
