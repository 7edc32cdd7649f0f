// The RFC 5769 test vectors end to end: parse (stun/message.cc), decode (stun/attributes.cc),
// derive the keys (stun/credentials.cc) and verify (stun/integrity.cc). And the property the
// integrity checks exist for: no single flipped bit gets past all of them.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rfc5769_vectors.h"
#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/credentials.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "test_support.h"

namespace stun {
namespace {

using test::bytes_of;
using test::hex;
using test::text_bytes;
using test::to_hex;

std::span<const std::byte> short_term_key_bytes() {
    // SASLprep of an ASCII password without spaces or controls is the password itself.
    return text_bytes(rfc5769::short_term_password);
}

std::vector<std::uint16_t> attribute_types(const Message& m) {
    std::vector<std::uint16_t> types;
    for (Attribute a : m) types.push_back(a.type);
    return types;
}

std::string_view text_of(const Message& m, std::uint16_t type) {
    const auto a = m.find(type);
    if (!a) {
        ADD_FAILURE() << "no attribute " << type;
        return {};
    }
    std::string_view text;
    EXPECT_EQ(decode_text(*a, text), ParseError::ok);
    return text;
}

// ---------------------------------------------------------------------------------------------
// RFC 5769 §2.1

TEST(Rfc5769, SampleRequestParses) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_request), m), ParseError::ok);
    EXPECT_EQ(m.type(), 0x0001);
    EXPECT_TRUE(m.is(Method::binding, MessageClass::request));
    EXPECT_EQ(m.method(), 0x001);
    EXPECT_EQ(m.message_class(), MessageClass::request);
    EXPECT_EQ(to_hex(m.transaction_id()), "b7e7a701bc34d686fa87dfae");
    EXPECT_EQ(m.bytes().size(), 108u);
    EXPECT_EQ(m.bytes().data(), bytes_of(rfc5769::sample_request).data()) << "a view, not a copy";
}

TEST(Rfc5769, SampleRequestAttributesInWireOrder) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_request), m), ParseError::ok);
    const std::vector<std::uint16_t> expected = {attr::software,       attr::priority,
                                                 attr::ice_controlled, attr::username,
                                                 attr::message_integrity, attr::fingerprint};
    EXPECT_EQ(attribute_types(m), expected);
    for (Attribute a : m) EXPECT_TRUE(m.visible(a)) << a.type;
    // Offsets of the attribute headers, and values without their padding.
    const std::vector<std::uint32_t> offsets = {20, 40, 48, 60, 76, 100};
    std::vector<std::uint32_t> got;
    for (Attribute a : m) got.push_back(a.offset);
    EXPECT_EQ(got, offsets);
    const auto username = m.find(attr::username);
    ASSERT_TRUE(username);
    EXPECT_EQ(username->value.size(), 9u);
    EXPECT_EQ(username->offset, 60u);
}

TEST(Rfc5769, SampleRequestDecodedValues) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_request), m), ParseError::ok);
    EXPECT_EQ(text_of(m, attr::software), "STUN test client");
    EXPECT_EQ(text_of(m, attr::username), "evtj:h6vY");

    std::uint32_t priority = 0;
    ASSERT_TRUE(m.find(attr::priority));
    EXPECT_EQ(decode_u32(*m.find(attr::priority), priority), ParseError::ok);
    EXPECT_EQ(priority, 0x6e0001ffu);

    std::uint64_t tie_breaker = 0;
    ASSERT_TRUE(m.find(attr::ice_controlled));
    EXPECT_EQ(decode_u64(*m.find(attr::ice_controlled), tie_breaker), ParseError::ok);
    EXPECT_EQ(tie_breaker, 0x932ff9b151263b36u);

    ASSERT_TRUE(m.message_integrity());
    EXPECT_EQ(to_hex(m.message_integrity()->value), "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2");
    ASSERT_TRUE(m.fingerprint());
    EXPECT_EQ(to_hex(m.fingerprint()->value), "e57a3bcf");
    EXPECT_FALSE(m.message_integrity_sha256());
}

TEST(Rfc5769, SampleRequestIntegrityVerifies) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_request), m), ParseError::ok);
    std::array<char, 513> storage{};
    std::span<const std::byte> key;
    ASSERT_EQ(short_term_key(rfc5769::short_term_password, storage, key), CredentialError::ok);
    EXPECT_EQ(to_hex(key), to_hex(short_term_key_bytes()));
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(m, key), IntegrityResult::missing);
}

TEST(Rfc5769, SampleRequestWrongPasswordIsMismatch) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_request), m), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(m, text_bytes("VOkJxbRl1RmTxUk/WvJxBu")),
              IntegrityResult::mismatch);
    EXPECT_EQ(verify_message_integrity(m, {}), IntegrityResult::mismatch);
}

// ---------------------------------------------------------------------------------------------
// RFC 5769 §2.2

TEST(Rfc5769, SampleIpv4ResponseDecodes) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_ipv4_response), m), ParseError::ok);
    EXPECT_TRUE(m.is(Method::binding, MessageClass::success_response));
    EXPECT_EQ(m.type(), 0x0101);
    EXPECT_EQ(to_hex(m.transaction_id()), "b7e7a701bc34d686fa87dfae");
    EXPECT_EQ(text_of(m, attr::software), "test vector");

    const auto xma = m.find(attr::xor_mapped_address);
    ASSERT_TRUE(xma);
    Address mapped;
    ASSERT_EQ(decode_xor_address(*xma, m.transaction_id(), mapped), ParseError::ok);
    EXPECT_EQ(mapped.family, AddressFamily::ipv4);
    EXPECT_EQ(mapped.port, 32853);
    EXPECT_EQ(to_hex(mapped.ip_bytes()), "c0000201");  // 192.0.2.1
    EXPECT_EQ(mapped, Address::v4(0xC0000201, 32853));
}

TEST(Rfc5769, SampleIpv4ResponseIntegrityVerifies) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_ipv4_response), m), ParseError::ok);
    std::array<char, 513> storage{};
    std::span<const std::byte> key;
    ASSERT_EQ(short_term_key(rfc5769::short_term_password, storage, key), CredentialError::ok);
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
}

// ---------------------------------------------------------------------------------------------
// RFC 5769 §2.3

TEST(Rfc5769, SampleIpv6ResponseDecodes) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_ipv6_response), m), ParseError::ok);
    EXPECT_TRUE(m.is(Method::binding, MessageClass::success_response));
    EXPECT_EQ(text_of(m, attr::software), "test vector");

    const auto xma = m.find(attr::xor_mapped_address);
    ASSERT_TRUE(xma);
    Address mapped;
    ASSERT_EQ(decode_xor_address(*xma, m.transaction_id(), mapped), ParseError::ok);
    EXPECT_EQ(mapped.family, AddressFamily::ipv6);
    EXPECT_EQ(mapped.port, 32853);
    EXPECT_EQ(to_hex(mapped.ip_bytes()), "20010db8123456780011223344556677");
    EXPECT_EQ(mapped, Address::v6(bytes_of(rfc5769::sample_ipv6_mapped_address), 32853));
}

TEST(Rfc5769, SampleIpv6ResponseIntegrityVerifies) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_ipv6_response), m), ParseError::ok);
    std::array<char, 513> storage{};
    std::span<const std::byte> key;
    ASSERT_EQ(short_term_key(rfc5769::short_term_password, storage, key), CredentialError::ok);
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
}

// ---------------------------------------------------------------------------------------------
// RFC 5769 §2.4

TEST(Rfc5769, SampleLongTermRequestDecodes) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_long_term_request), m), ParseError::ok);
    EXPECT_TRUE(m.is(Method::binding, MessageClass::request));
    EXPECT_EQ(to_hex(m.transaction_id()), "78ad3433c6ad72c029da412e");
    EXPECT_EQ(text_of(m, attr::username), rfc5769::long_term_username);
    EXPECT_EQ(text_of(m, attr::nonce), "f//499k954d6OL34oL9FSTvy64sA");
    EXPECT_EQ(text_of(m, attr::realm), "example.org");
    const std::vector<std::uint16_t> expected = {attr::username, attr::nonce, attr::realm,
                                                 attr::message_integrity};
    EXPECT_EQ(attribute_types(m), expected);
    EXPECT_FALSE(m.fingerprint());
    // The nonce has no "obMatJos2" cookie (RFC 8489 §9.2 postdates RFC 5769).
    EXPECT_FALSE(nonce_security_features(rfc5769::long_term_nonce));
}

TEST(Rfc5769, SampleLongTermRequestIntegrityVerifies) {
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_long_term_request), m), ParseError::ok);
    LongTermKeyMd5 key{};
    ASSERT_EQ(long_term_key_md5(rfc5769::long_term_username, rfc5769::long_term_realm,
                                rfc5769::long_term_password, key),
              CredentialError::ok);
    EXPECT_EQ(to_hex(key), to_hex(bytes_of(rfc5769::long_term_key)));
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::missing);
}

TEST(Rfc5769, SampleLongTermRequestUnpreparedPasswordIsMismatch) {
    // Without SASLprep the key is MD5 over the raw password, and the integrity check fails:
    // this is what the vector exists to catch.
    Message m;
    ASSERT_EQ(Message::parse(bytes_of(rfc5769::sample_long_term_request), m), ParseError::ok);
    const std::string raw = std::string(rfc5769::long_term_username) + ":example.org:" +
                            std::string(rfc5769::long_term_password);
    const auto key = test::openssl_digest(EVP_md5(), text_bytes(raw));
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::mismatch);
}

// ---------------------------------------------------------------------------------------------
// Flip one bit: for every vector and every bit, parse fails, or MESSAGE-INTEGRITY fails, or
// FINGERPRINT fails (where the vector has one). HMAC covers everything up to MESSAGE-INTEGRITY,
// padding included; FINGERPRINT covers everything before it; and the walk refuses any length
// change, so no single bit can slip through.

struct Vector {
    const char* name;
    std::span<const std::byte> bytes;
    std::span<const std::byte> key;
    bool has_fingerprint;
};

void PrintTo(const Vector& v, std::ostream* os) { *os << v.name; }

class FlipOneBit : public testing::TestWithParam<Vector> {};

TEST_P(FlipOneBit, NeverPassesAllChecks) {
    const Vector& v = GetParam();
    // The unflipped vector passes: otherwise the loop below proves nothing.
    {
        Message m;
        ASSERT_EQ(Message::parse(v.bytes, m), ParseError::ok);
        ASSERT_EQ(verify_message_integrity(m, v.key), IntegrityResult::ok);
        ASSERT_EQ(verify_fingerprint(m),
                  v.has_fingerprint ? IntegrityResult::ok : IntegrityResult::missing);
    }
    std::vector<std::byte> copy(v.bytes.begin(), v.bytes.end());
    std::size_t passed = 0;
    for (std::size_t bit = 0; bit < copy.size() * 8; ++bit) {
        copy[bit / 8] ^= static_cast<std::byte>(0x80 >> (bit % 8));
        Message m;
        const bool parses = Message::parse(copy, m) == ParseError::ok;
        const bool integrity = parses && verify_message_integrity(m, v.key) == IntegrityResult::ok;
        const bool fingerprint = !v.has_fingerprint ||
                                 (parses && verify_fingerprint(m) == IntegrityResult::ok);
        if (parses && integrity && fingerprint) {
            ++passed;
            ADD_FAILURE() << v.name << ": flipping bit " << bit % 8 << " (MSB first) of byte "
                          << bit / 8 << " passes every check";
        }
        copy[bit / 8] ^= static_cast<std::byte>(0x80 >> (bit % 8));
    }
    EXPECT_EQ(passed, 0u);
    EXPECT_TRUE(std::equal(copy.begin(), copy.end(), v.bytes.begin()));
}

INSTANTIATE_TEST_SUITE_P(
    Rfc5769, FlipOneBit,
    testing::Values(
        Vector{"SampleRequest", bytes_of(rfc5769::sample_request), short_term_key_bytes(), true},
        Vector{"SampleIpv4Response", bytes_of(rfc5769::sample_ipv4_response),
               short_term_key_bytes(), true},
        Vector{"SampleIpv6Response", bytes_of(rfc5769::sample_ipv6_response),
               short_term_key_bytes(), true},
        Vector{"SampleLongTermRequest", bytes_of(rfc5769::sample_long_term_request),
               bytes_of(rfc5769::long_term_key), false}),
    [](const testing::TestParamInfo<Vector>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace stun
