// TURN ChannelData framing (RFC 8656 §12.4, §12.5).
//
//   0                   1                   2                   3
//   |         Channel Number        |            Length             |
//   |                   Application Data (Length bytes)            ...
//
// Over UDP the data need not be padded, but a sender may pad and a receiver must accept the
// padding; the datagram may therefore be longer than 4 + Length, never shorter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "stun/errors.h"

namespace stun {

inline constexpr std::size_t channel_data_header_size = 4;

struct ChannelData {
    std::uint16_t channel = 0;
    std::span<const std::byte> data;
};

/// Errors: channel_data_truncated, bad_channel_number (outside 0x4000-0x7FFF: RFC 8656 §12's
/// range and RFC 5766's, see channel_accepted_max), channel_data_overrun. Cost: two loads and three compares.
[[nodiscard]] ParseError parse_channel_data(std::span<const std::byte> datagram,
                                            ChannelData& out) noexcept;

/// Writes the 4-byte header at `p`: for prepending in place in front of a payload.
void write_channel_data_header(std::byte* p, std::uint16_t channel,
                               std::uint16_t length) noexcept;

/// Writes a whole ChannelData message into `out`, padded to 4 bytes when `pad` (RFC 8656
/// §12.5: required over TCP, optional over UDP). Returns the size written, 0 if `out` is too
/// small or `data` exceeds 65535 bytes.
[[nodiscard]] std::size_t write_channel_data(std::span<std::byte> out, std::uint16_t channel,
                                             std::span<const std::byte> data,
                                             bool pad) noexcept;

}  // namespace stun
