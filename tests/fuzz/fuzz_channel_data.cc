// libFuzzer target: TURN ChannelData framing (RFC 8656 §12.4, §12.5). Seeds:
// tests/fuzz/corpus/channel_data/ (tests/fuzz/make_corpus.py).
//
// Besides "no sanitizer report", the target traps (__builtin_trap) when:
//   1. parse_channel_data() fails with an error its contract does not list;
//   2. a frame that parses does not classify as PacketKind::turn_channel, or its data is not a
//      view of the datagram right after the 4-byte header;
//   3. writing the parsed channel and data back, padded and unpadded, does not give the size
//      RFC 8656 §12.5 says, or does not parse again to the same channel and the same bytes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "stun/bytes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/demux.h"
#include "stun/errors.h"

namespace {

void check(bool invariant) {
    if (!invariant) __builtin_trap();
}

// The largest frame: header, 65535 bytes of data, 1 byte of padding.
std::array<std::byte, stun::channel_data_header_size + 65536> frame_buffer;

void round_trip(const stun::ChannelData& parsed, bool pad) {
    using namespace stun;
    const std::size_t written = write_channel_data(frame_buffer, parsed.channel, parsed.data, pad);
    const std::size_t unpadded = channel_data_header_size + parsed.data.size();
    check(written == (pad ? padded4(unpadded) : unpadded));

    const std::span<const std::byte> frame = std::span<const std::byte>(frame_buffer).first(written);
    check(load_be16(frame.data()) == parsed.channel);
    check(load_be16(frame.data() + 2) == parsed.data.size());
    for (std::size_t i = unpadded; i < written; ++i) check(frame[i] == std::byte{0});

    ChannelData again;
    check(parse_channel_data(frame, again) == ParseError::ok);
    check(again.channel == parsed.channel);
    check(again.data.size() == parsed.data.size());
    check(parsed.data.empty() ||
          std::memcmp(again.data.data(), parsed.data.data(), parsed.data.size()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace stun;
    const std::span<const std::byte> datagram(reinterpret_cast<const std::byte*>(data), size);

    ChannelData parsed;
    const ParseError error = parse_channel_data(datagram, parsed);
    (void)to_string(error);
    if (error != ParseError::ok) {
        // Invariant 1.
        check(error == ParseError::channel_data_truncated ||
              error == ParseError::bad_channel_number ||
              error == ParseError::channel_data_overrun);
        return 0;
    }

    // Invariant 2.
    // RFC 7983's demultiplexer knows RFC 8656's range; RFC 5766's numbers past it are parsed.
    check((classify(datagram) == PacketKind::turn_channel) == (parsed.channel <= channel_max));
    check(parsed.channel >= channel_min && parsed.channel <= channel_accepted_max);
    check(parsed.data.data() == datagram.data() + channel_data_header_size);
    check(channel_data_header_size + parsed.data.size() <= datagram.size());

    // Invariant 3.
    round_trip(parsed, false);
    round_trip(parsed, true);

    // The in-place header writer agrees with the whole-message one.
    std::array<std::byte, channel_data_header_size> header{};
    write_channel_data_header(header.data(), parsed.channel,
                              static_cast<std::uint16_t>(parsed.data.size()));
    check(std::memcmp(header.data(), frame_buffer.data(), header.size()) == 0);
    return 0;
}
