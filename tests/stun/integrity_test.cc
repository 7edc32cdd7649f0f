// Tests for stun/integrity.cc against messages signed here with OpenSSL's one-shot HMAC and
// zlib's CRC-32, so that the codec is checked against an independent signer (RFC 8489 §14.5-7).
#include "stun/integrity.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "stun/constants.h"
#include "stun/message.h"
#include "test_support.h"

namespace stun {
namespace {

using test::RawMessage;
using test::text_bytes;

const auto key = text_bytes("swordfish");

void set_length(std::vector<std::byte>& m, std::size_t length) {
    m[2] = static_cast<std::byte>(length >> 8);
    m[3] = static_cast<std::byte>(length);
}

void append(std::vector<std::byte>& m, std::uint16_t type, std::span<const std::byte> value) {
    m.push_back(static_cast<std::byte>(type >> 8));
    m.push_back(static_cast<std::byte>(type));
    m.push_back(static_cast<std::byte>(value.size() >> 8));
    m.push_back(static_cast<std::byte>(value.size()));
    m.insert(m.end(), value.begin(), value.end());
    while (m.size() % 4) m.push_back(std::byte{0});
    set_length(m, m.size() - header_size);
}

// Appends MESSAGE-INTEGRITY computed over `m` with the header length set to `hashed_length`;
// RFC 8489 §14.5 wants m.size() - 20 + 24 (the length as if MI ended the message).
void append_integrity(std::vector<std::byte>& m, std::size_t hashed_length) {
    std::vector<std::byte> hashed = m;
    set_length(hashed, hashed_length);
    append(m, attr::message_integrity, test::openssl_hmac(EVP_sha1(), key, hashed));
}
void append_integrity(std::vector<std::byte>& m) { append_integrity(m, m.size() - 20 + 24); }

// Appends MESSAGE-INTEGRITY-SHA256 truncated to `size` (RFC 8489 §14.6).
void append_integrity_sha256(std::vector<std::byte>& m, std::size_t size) {
    std::vector<std::byte> hashed = m;
    set_length(hashed, m.size() - 20 + 4 + size);
    const auto mac = test::openssl_hmac(EVP_sha256(), key, hashed);
    append(m, attr::message_integrity_sha256, std::span(mac).first(size));
}

// Appends FINGERPRINT: CRC-32 of the message before it (length counting FINGERPRINT) XOR "STUN".
void append_fingerprint(std::vector<std::byte>& m, std::uint32_t xor_value = 0x5354554E) {
    set_length(m, m.size() - 20 + 8);
    const std::uint32_t value = test::zlib_fingerprint(m) ^ 0x5354554E ^ xor_value;
    const std::byte v[4] = {static_cast<std::byte>(value >> 24), static_cast<std::byte>(value >> 16),
                            static_cast<std::byte>(value >> 8), static_cast<std::byte>(value)};
    append(m, attr::fingerprint, v);
}

std::vector<std::byte> request_with_username() {
    return RawMessage(0x0001).attribute(attr::username, "alice").bytes();
}

TEST(MessageIntegrity, IndependentlySignedMessageVerifies) {
    auto m = request_with_username();
    append_integrity(m);
    append_fingerprint(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity(msg, text_bytes("swordfisH")), IntegrityResult::mismatch);
}

TEST(MessageIntegrity, ComputedOverUnadjustedLengthIsMismatch) {
    // The classic mistake: HMAC over the header as it finally is, its length counting the
    // FINGERPRINT that follows. RFC 8489 §14.5: the length must count up to MI only.
    auto m = request_with_username();
    append_integrity(m, m.size() - 20 + 24 + 8);
    append_fingerprint(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::mismatch);
}

TEST(MessageIntegrity, ComputedOverLengthWithoutItselfIsMismatch) {
    auto m = request_with_username();
    append_integrity(m, m.size() - 20);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::mismatch);
}

TEST(MessageIntegrity, AttributesAfterItAreIgnoredAndUncovered) {
    // RFC 8489 §14.5: "agents MUST ignore all other attributes that follow MESSAGE-INTEGRITY"
    // (except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT). The HMAC does not cover them, so
    // changing them changes nothing.
    auto m = request_with_username();
    append_integrity(m);
    append(m, attr::software, text_bytes("after"));
    append(m, attr::lifetime, test::hex("00000258"));
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::ok);
    EXPECT_FALSE(msg.find(attr::software));
    EXPECT_FALSE(msg.find(attr::lifetime));
    // The walk shows every attribute (for dumps); visible() tells which ones count.
    std::vector<std::uint16_t> visible;
    std::vector<std::uint16_t> ignored;
    for (Attribute a : msg) (msg.visible(a) ? visible : ignored).push_back(a.type);
    EXPECT_EQ(visible, (std::vector<std::uint16_t>{attr::username, attr::message_integrity}));
    EXPECT_EQ(ignored, (std::vector<std::uint16_t>{attr::software, attr::lifetime}));

    // SOFTWARE is 4 + 8 bytes and LIFETIME 4 + 4 at the end; change their values, not their
    // headers (a changed length would fail the walk, which is not what this is about).
    for (std::size_t i = m.size() - 16; i < m.size() - 11; ++i) m[i] ^= std::byte{0x5A};
    for (std::size_t i = m.size() - 4; i < m.size(); ++i) m[i] ^= std::byte{0x5A};
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::ok);

    // Control: a change before MESSAGE-INTEGRITY is caught.
    m[24] ^= std::byte{0x01};  // first byte of USERNAME's value
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::mismatch);
}

TEST(MessageIntegrity, FingerprintAfterIgnoredAttributeIsStillChecked) {
    auto m = request_with_username();
    append_integrity(m);
    append(m, attr::software, text_bytes("ignored"));
    append_fingerprint(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_FALSE(msg.find(attr::software));
    ASSERT_TRUE(msg.fingerprint());
    EXPECT_TRUE(msg.visible(*msg.fingerprint()));
    ASSERT_TRUE(msg.find(attr::fingerprint));
    EXPECT_EQ(msg.find(attr::fingerprint)->offset, msg.fingerprint()->offset);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::ok);
}

TEST(MessageIntegrity, MissingWhenAbsent) {
    const auto m = request_with_username();
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::missing);
    EXPECT_EQ(verify_message_integrity_sha256(msg, key), IntegrityResult::missing);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::missing);
}

TEST(MessageIntegrity, OnlyTheFirstCounts) {
    // A second MESSAGE-INTEGRITY follows the first and is ignored; it cannot rescue a bad one.
    auto m = request_with_username();
    append(m, attr::message_integrity, std::vector<std::byte>(20, std::byte{0}));
    append_integrity(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    ASSERT_TRUE(msg.message_integrity());
    EXPECT_EQ(msg.message_integrity()->offset, 32u);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::mismatch);
}

class MessageIntegritySha256 : public testing::TestWithParam<std::size_t> {};

TEST_P(MessageIntegritySha256, IndependentlySignedVerifies) {
    const std::size_t size = GetParam();
    auto m = request_with_username();
    append_integrity_sha256(m, size);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    ASSERT_TRUE(msg.message_integrity_sha256());
    EXPECT_EQ(msg.message_integrity_sha256()->value.size(), size);
    EXPECT_EQ(verify_message_integrity_sha256(msg, key), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(msg, text_bytes("other")), IntegrityResult::mismatch);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::missing);

    // Every byte of the (truncated) value counts, the last one included.
    m[m.size() - 1] ^= std::byte{0x80};
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity_sha256(msg, key), IntegrityResult::mismatch);
}

TEST_P(MessageIntegritySha256, AfterMessageIntegrityAndBeforeFingerprint) {
    // Both integrity attributes and FINGERPRINT: each covers what precedes it, with the header
    // length adjusted to end with itself.
    const std::size_t size = GetParam();
    auto m = request_with_username();
    append_integrity(m);
    append_integrity_sha256(m, size);
    append_fingerprint(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(msg, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::ok);
}

INSTANTIATE_TEST_SUITE_P(Lengths, MessageIntegritySha256, testing::Values(16, 20, 24, 28, 32),
                         [](const testing::TestParamInfo<std::size_t>& info) {
                             return "Bytes" + std::to_string(info.param);
                         });

TEST(MessageIntegritySha256Order, MessageIntegrityAfterItIsIgnored) {
    // RFC 8489 §14.6: after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT counts.
    auto m = request_with_username();
    append_integrity_sha256(m, 32);
    append_integrity(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_message_integrity_sha256(msg, key), IntegrityResult::ok);
    EXPECT_FALSE(msg.message_integrity());
    EXPECT_FALSE(msg.find(attr::message_integrity));
    EXPECT_EQ(verify_message_integrity(msg, key), IntegrityResult::missing);
    std::size_t walked = 0;
    for (Attribute a : msg) {
        ++walked;
        EXPECT_EQ(msg.visible(a), a.type != attr::message_integrity) << a.type;
    }
    EXPECT_EQ(walked, 3u);
}

TEST(Fingerprint, IndependentlyComputedVerifies) {
    auto m = RawMessage(0x0011).attribute(attr::software, "fingerprinted").bytes();
    append_fingerprint(m);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::ok);
}

TEST(Fingerprint, PlainCrcWithoutTheXorIsMismatch) {
    auto m = RawMessage(0x0011).attribute(attr::software, "fingerprinted").bytes();
    append_fingerprint(m, 0);
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::mismatch);
}

TEST(Fingerprint, CoversTheHeader) {
    auto m = RawMessage(0x0011).attribute(attr::software, "fingerprinted").bytes();
    append_fingerprint(m);
    m[1] ^= std::byte{0x01};  // indication -> another method; still parses
    Message msg;
    ASSERT_EQ(Message::parse(m, msg), ParseError::ok);
    EXPECT_EQ(verify_fingerprint(msg), IntegrityResult::mismatch);
}

}  // namespace
}  // namespace stun
