// Tests for stun/message.cc: the header checks, the attribute walk and what it makes visible.
// The malformed-input table (one case per ParseError) is in errors_test.cc; the RFC 5769
// vectors in rfc5769_test.cc.
#include "stun/message.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "rfc5769_vectors.h"
#include "stun/attributes.h"
#include "stun/constants.h"
#include "test_support.h"

namespace stun {
namespace {

using test::bytes_of;
using test::hex;
using test::RawMessage;
using test::to_hex;

TEST(MessageParse, HeaderOnlyMessage) {
    const auto bytes = hex("0001 0000 2112a442 000102030405060708090a0b");
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(m.type(), 0x0001);
    EXPECT_EQ(to_hex(m.transaction_id()), "000102030405060708090a0b");
    EXPECT_TRUE(m.begin() == m.end());
    EXPECT_FALSE(m.find(attr::software));
    EXPECT_FALSE(m.message_integrity());
    EXPECT_FALSE(m.message_integrity_sha256());
    EXPECT_FALSE(m.fingerprint());
}

TEST(MessageParse, EveryTypeWithTopBitsClearParses) {
    // The parser does not judge the method: that is the server's business (400 or drop).
    for (std::uint32_t type = 0; type < 0x4000; type += 0x0111) {
        auto bytes = hex("0000 0000 2112a442 000102030405060708090a0b");
        bytes[0] = static_cast<std::byte>(type >> 8);
        bytes[1] = static_cast<std::byte>(type);
        Message m;
        EXPECT_EQ(Message::parse(bytes, m), ParseError::ok) << type;
        EXPECT_EQ(m.type(), type);
    }
}

TEST(MessageParse, ErrorLeavesOutputUnchanged) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_request), m), ParseError::ok);
    const auto bad = hex("0001 0004 2112a442 000102030405060708090a0b 8022 0008");
    EXPECT_EQ(Message::parse(bad, m), ParseError::attribute_overrun);
    EXPECT_EQ(m.bytes().data(), bytes_of(rfc5769::sample_request).data());
    EXPECT_EQ(m.bytes().size(), sizeof(rfc5769::sample_request));
    EXPECT_TRUE(m.find(attr::username));
}

TEST(MessageParse, EmptyValueAttributes) {
    const auto bytes = RawMessage(0x0001)
                           .attribute(attr::use_candidate, "")
                           .attribute(attr::software, "")
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    const auto a = m.find(attr::software);
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->value.empty());
    EXPECT_EQ(a->offset, 24u);
}

TEST(MessageFind, FirstOfDuplicatesWins) {
    // RFC 8489 §14: "Any attribute type MAY appear more than once ... only the first occurrence
    // needs to be processed".
    const auto bytes = RawMessage(0x0001)
                           .attribute(attr::software, "first")
                           .attribute(attr::software, "second")
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    const auto a = m.find(attr::software);
    ASSERT_TRUE(a);
    EXPECT_EQ(test::as_text(a->value), "first");
    EXPECT_EQ(a->offset, 20u);
    // The walk shows both.
    std::vector<std::string_view> values;
    for (Attribute attribute : m) values.push_back(test::as_text(attribute.value));
    EXPECT_EQ(values, (std::vector<std::string_view>{"first", "second"}));
}

TEST(MessageIterator, PostIncrementAndValuesPointIntoTheDatagram) {
    Message m;
    const auto datagram = bytes_of(rfc5769::sample_request);
    ASSERT_EQ(Message::parse(datagram, m), ParseError::ok);
    auto it = m.begin();
    const Attribute first = *it++;
    EXPECT_EQ(first.type, attr::software);
    EXPECT_EQ(first.value.data(), datagram.data() + 24);
    EXPECT_EQ(first.value.size(), 16u);
    EXPECT_EQ((*it).type, attr::priority);
    EXPECT_EQ((*it).value.data(), datagram.data() + 44);
}

TEST(LooksLikeStun, AcceptsTheVectors) {
    EXPECT_TRUE(Message::looks_like_stun(bytes_of(rfc5769::sample_request)));
    EXPECT_TRUE(Message::looks_like_stun(bytes_of(rfc5769::sample_ipv4_response)));
    EXPECT_TRUE(Message::looks_like_stun(bytes_of(rfc5769::sample_ipv6_response)));
    EXPECT_TRUE(Message::looks_like_stun(bytes_of(rfc5769::sample_long_term_request)));
}

TEST(LooksLikeStun, RefusesWhatTheHeaderChecksRefuse) {
    const auto good = hex("0001 0000 2112a442 000102030405060708090a0b");
    EXPECT_TRUE(Message::looks_like_stun(good));
    EXPECT_FALSE(Message::looks_like_stun({}));
    EXPECT_FALSE(Message::looks_like_stun(std::span(good).first(19)));
    auto top_bits = good;
    top_bits[0] = std::byte{0x40};
    EXPECT_FALSE(Message::looks_like_stun(top_bits));
    top_bits[0] = std::byte{0x80};
    EXPECT_FALSE(Message::looks_like_stun(top_bits));
    auto cookie = good;
    cookie[7] = std::byte{0x43};
    EXPECT_FALSE(Message::looks_like_stun(cookie));
    auto length = hex("0001 0002 2112a442 000102030405060708090a0b 0000");
    EXPECT_FALSE(Message::looks_like_stun(length));
}

// ---------------------------------------------------------------------------------------------
// RFC 8489 §6.3.1: unknown comprehension-required attributes make a 420.

std::vector<std::uint16_t> sorted(std::span<const std::uint16_t> types) {
    std::vector<std::uint16_t> v(types.begin(), types.end());
    std::sort(v.begin(), v.end());
    return v;
}

TEST(UnknownComprehensionRequired, ListsOnlyUnknownRequiredTypesOnce) {
    const auto bytes = RawMessage(0x0001)
                           .attribute(attr::software, "client")
                           .attribute(0x7FFF, "x")
                           .attribute(0xFFFE, "optional, so ignored")
                           .attribute(0x0002, "RESPONSE-ADDRESS, long gone")
                           .attribute(0x7FFF, "duplicate")
                           .attribute(attr::username, "alice")
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    std::array<std::uint16_t, 8> out{};
    const std::size_t count = m.unknown_comprehension_required(out);
    ASSERT_EQ(count, 2u);
    EXPECT_EQ(sorted(std::span(out).first(count)), (std::vector<std::uint16_t>{0x0002, 0x7FFF}));
}

TEST(UnknownComprehensionRequired, CountsBeyondTheOutputSpan) {
    const auto bytes = RawMessage(0x0001)
                           .attribute(0x7FFF, "a")
                           .attribute(0x7FFE, "b")
                           .attribute(0x7FFD, "c")
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    std::array<std::uint16_t, 2> out{};
    EXPECT_EQ(m.unknown_comprehension_required(out), 3u);
    for (std::uint16_t t : out) EXPECT_TRUE(t == 0x7FFF || t == 0x7FFE || t == 0x7FFD) << t;
    EXPECT_NE(out[0], out[1]);
    EXPECT_EQ(m.unknown_comprehension_required({}), 3u);
}

TEST(UnknownComprehensionRequired, NoneInTheVectors) {
    std::array<std::uint16_t, 4> out{};
    for (auto bytes : {std::span<const std::byte>(bytes_of(rfc5769::sample_request)),
                       std::span<const std::byte>(bytes_of(rfc5769::sample_long_term_request))}) {
        Message m;
        ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
        EXPECT_EQ(m.unknown_comprehension_required(out), 0u);
    }
}

TEST(UnknownComprehensionRequired, UsesTheCallersNotionOfKnown) {
    // A server without TURN treats the TURN attributes as unknown.
    const auto bytes = RawMessage(0x0003)
                           .attribute(attr::requested_transport, test::hex("11000000"))
                           .attribute(attr::lifetime, test::hex("00000258"))
                           .attribute(attr::software, "optional")
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    std::array<std::uint16_t, 4> out{};
    EXPECT_EQ(m.unknown_comprehension_required(out), 0u);
    const auto only_binding = [](std::uint16_t type) noexcept {
        return type == attr::username || type == attr::message_integrity;
    };
    const std::size_t count = m.unknown_comprehension_required(out, only_binding);
    ASSERT_EQ(count, 2u);
    EXPECT_EQ(sorted(std::span(out).first(count)),
              (std::vector<std::uint16_t>{attr::lifetime, attr::requested_transport}));
}

TEST(UnknownComprehensionRequired, IgnoresAttributesAfterMessageIntegrity) {
    const auto bytes = RawMessage(0x0001)
                           .attribute(attr::message_integrity, std::vector<std::byte>(20))
                           .attribute(0x7FFF, "after integrity")
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    std::array<std::uint16_t, 4> out{};
    EXPECT_EQ(m.unknown_comprehension_required(out), 0u);
}

}  // namespace
}  // namespace stun
