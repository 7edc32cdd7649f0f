// Tests for stun/channel_data.cc: TURN ChannelData framing (RFC 8656 §12.4, §12.5). The
// refusals (truncated, bad channel, overrun) are in the malformed table of errors_test.cc.
#include "stun/channel_data.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "test_support.h"

namespace stun {
namespace {

using test::hex;
using test::to_hex;

TEST(ChannelDataParse, Unpadded) {
    const auto datagram = hex("4001 0005 0102030405");
    ChannelData cd;
    ASSERT_EQ(parse_channel_data(datagram, cd), ParseError::ok);
    EXPECT_EQ(cd.channel, 0x4001);
    EXPECT_EQ(to_hex(cd.data), "0102030405");
    EXPECT_EQ(cd.data.data(), datagram.data() + 4) << "a view into the datagram";
}

TEST(ChannelDataParse, PaddedAsOverTcp) {
    // RFC 8656 §12.5: the receiver accepts the padding and ignores it.
    const auto datagram = hex("4001 0005 0102030405 000000");
    ChannelData cd;
    ASSERT_EQ(parse_channel_data(datagram, cd), ParseError::ok);
    EXPECT_EQ(cd.channel, 0x4001);
    EXPECT_EQ(to_hex(cd.data), "0102030405");
}

TEST(ChannelDataParse, EmptyData) {
    const auto datagram = hex("4fff 0000");
    ChannelData cd;
    ASSERT_EQ(parse_channel_data(datagram, cd), ParseError::ok);
    EXPECT_EQ(cd.channel, 0x4FFF);
    EXPECT_TRUE(cd.data.empty());
}

TEST(ChannelDataParse, EveryChannelNumber) {
    for (std::uint32_t channel = 0; channel <= 0xFFFF; ++channel) {
        const std::byte datagram[4] = {static_cast<std::byte>(channel >> 8),
                                       static_cast<std::byte>(channel), std::byte{0}, std::byte{0}};
        ChannelData cd;
        // RFC 8656 §12's 0x4000-0x4FFF and RFC 5766 §11's numbers up to 0x7FFF.
        const ParseError expected = channel >= 0x4000 && channel <= 0x7FFF
                                        ? ParseError::ok
                                        : ParseError::bad_channel_number;
        ASSERT_EQ(parse_channel_data(datagram, cd), expected) << std::hex << channel;
    }
}

TEST(ChannelDataWrite, UnpaddedIsFourPlusLength) {
    const auto data = hex("0102030405");
    std::array<std::byte, 64> out{};
    const std::size_t n = write_channel_data(out, 0x4001, data, false);
    ASSERT_EQ(n, 4u + 5u);
    EXPECT_EQ(to_hex(std::span(out).first(n)), "40010005" "0102030405");
}

TEST(ChannelDataWrite, PaddedIsFourPlusPaddedLength) {
    const auto data = hex("0102030405");
    std::array<std::byte, 64> out{};
    out.fill(std::byte{0xEE});
    const std::size_t n = write_channel_data(out, 0x4001, data, true);
    ASSERT_EQ(n, 4u + 8u);
    // The length field is the data's, not the padded size; the padding is zeros.
    EXPECT_EQ(to_hex(std::span(out).first(n)), "40010005" "0102030405000000");
}

TEST(ChannelDataWrite, AlignedDataNeedsNoPadding) {
    const auto data = hex("01020304");
    std::array<std::byte, 8> out{};
    EXPECT_EQ(write_channel_data(out, 0x4000, data, true), 8u);
    EXPECT_EQ(write_channel_data(out, 0x4000, data, false), 8u);
    EXPECT_EQ(to_hex(out), "40000004" "01020304");
    EXPECT_EQ(write_channel_data(out, 0x4000, {}, true), 4u);
}

TEST(ChannelDataWrite, RoundTrip) {
    std::vector<std::byte> data(1000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 13);
    for (bool pad : {false, true}) {
        std::vector<std::byte> out(1100);
        const std::size_t n = write_channel_data(out, 0x4ABC, std::span(data).first(999), pad);
        ASSERT_EQ(n, pad ? 1004u : 1003u);
        ChannelData cd;
        ASSERT_EQ(parse_channel_data(std::span(out).first(n), cd), ParseError::ok);
        EXPECT_EQ(cd.channel, 0x4ABC);
        EXPECT_EQ(to_hex(cd.data), to_hex(std::span(data).first(999)));
    }
}

TEST(ChannelDataWrite, BufferTooSmallWritesNothing) {
    const auto data = hex("0102030405");
    std::array<std::byte, 64> out{};
    EXPECT_EQ(write_channel_data(std::span(out).first(8), 0x4001, data, false), 0u);
    EXPECT_EQ(write_channel_data(std::span(out).first(9), 0x4001, data, false), 9u);
    EXPECT_EQ(write_channel_data(std::span(out).first(11), 0x4001, data, true), 0u);
    EXPECT_EQ(write_channel_data(std::span(out).first(12), 0x4001, data, true), 12u);
    EXPECT_EQ(write_channel_data(std::span(out).first(3), 0x4001, {}, false), 0u);
    EXPECT_EQ(write_channel_data({}, 0x4001, {}, false), 0u);
}

TEST(ChannelDataWrite, DataOver65535BytesIsRefused) {
    std::vector<std::byte> data(65536);
    std::vector<std::byte> out(70000);
    EXPECT_EQ(write_channel_data(out, 0x4001, data, false), 0u);
    EXPECT_EQ(write_channel_data(out, 0x4001, std::span(data).first(65535), false), 65539u);
}

TEST(ChannelDataHeader, WritesFourBytesInPlace) {
    std::array<std::byte, 8> buffer{};
    buffer.fill(std::byte{0xEE});
    write_channel_data_header(buffer.data(), 0x4123, 0xABCD);
    EXPECT_EQ(to_hex(buffer), "4123abcd" "eeeeeeee");
}

}  // namespace
}  // namespace stun
