#include "stun/channel_data.h"

#include <cstring>

#include "stun/bytes.h"
#include "stun/constants.h"

namespace stun {

ParseError parse_channel_data(std::span<const std::byte> datagram, ChannelData& out) noexcept {
    if (datagram.size() < channel_data_header_size) return ParseError::channel_data_truncated;
    const std::uint16_t channel = load_be16(datagram.data());
    // RFC 8656 §12: 0x4000-0x4FFF are channel numbers, and a ChannelData message with a
    // number outside them "MUST be discarded"; RFC 5766's 0x5000-0x7FFF are accepted too
    // (constants.h, channel_accepted_max).
    if (channel < channel_min || channel > channel_accepted_max)
        return ParseError::bad_channel_number;
    const std::uint16_t length = load_be16(datagram.data() + 2);
    // RFC 8656 §12.5: a message whose length field exceeds the data that follows is
    // discarded; extra bytes (padding) after the data are ignored.
    if (length > datagram.size() - channel_data_header_size)
        return ParseError::channel_data_overrun;
    out = {channel, datagram.subspan(channel_data_header_size, length)};
    return ParseError::ok;
}

void write_channel_data_header(std::byte* p, std::uint16_t channel,
                               std::uint16_t length) noexcept {
    store_be16(p, channel);
    store_be16(p + 2, length);
}

std::size_t write_channel_data(std::span<std::byte> out, std::uint16_t channel,
                               std::span<const std::byte> data, bool pad) noexcept {
    if (data.size() > 0xFFFF) return 0;
    const std::size_t body = pad ? padded4(data.size()) : data.size();
    const std::size_t total = channel_data_header_size + body;
    if (total > out.size()) return 0;
    write_channel_data_header(out.data(), channel, static_cast<std::uint16_t>(data.size()));
    if (!data.empty())
        std::memmove(out.data() + channel_data_header_size, data.data(), data.size());
    std::memset(out.data() + channel_data_header_size + data.size(), 0, body - data.size());
    return total;
}

}  // namespace stun
