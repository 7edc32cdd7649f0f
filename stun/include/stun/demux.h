// First-byte demultiplexing of a UDP port shared by STUN, ZRTP, DTLS, TURN channels and
// RTP/RTCP (RFC 7983 §7, as updated by RFC 9443 §3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace stun {

enum class PacketKind : std::uint8_t {
    empty,         ///< a zero-length datagram
    stun,          ///< 0..3
    zrtp,          ///< 16..19
    dtls,          ///< 20..63
    turn_channel,  ///< 64..79
    rtp_rtcp,      ///< 128..191
    unknown,       ///< anything else: drop
};

std::string_view to_string(PacketKind kind) noexcept;

constexpr PacketKind classify_first_byte(std::uint8_t b) noexcept {
    if (b <= 3) return PacketKind::stun;
    if (b >= 16 && b <= 19) return PacketKind::zrtp;
    if (b >= 20 && b <= 63) return PacketKind::dtls;
    if (b >= 64 && b <= 79) return PacketKind::turn_channel;
    if (b >= 128 && b <= 191) return PacketKind::rtp_rtcp;
    return PacketKind::unknown;
}

constexpr PacketKind classify(std::span<const std::byte> datagram) noexcept {
    return datagram.empty() ? PacketKind::empty
                            : classify_first_byte(std::to_integer<std::uint8_t>(datagram[0]));
}

}  // namespace stun
