// Tests for stun/attributes.cc: every attribute written by MessageWriter, parsed by
// Message::parse and decoded by its decode_* function, compared with the value written and
// with the wire bytes the RFCs define (literal hex, so that a writer and a decoder that agree
// on a wrong layout still fail).
#include "stun/attributes.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rfc5769_vectors.h"
#include "stun/address.h"
#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/writer.h"
#include "test_support.h"

namespace stun {
namespace {

using test::bytes_of;
using test::hex;
using test::text_bytes;
using test::to_hex;

// The RFC 5769 transaction ID, so that the XOR encodings below are the RFC's own bytes.
constexpr unsigned char txid_bytes[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                          0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

Address ipv6(std::string_view text, std::uint16_t port) {
    Address a;
    EXPECT_TRUE(Address::from_string(text, port, a)) << text;
    return a;
}

class AttributeRoundTrip : public testing::Test {
protected:
    // Writes a Binding success response with what `add` adds, then parses it.
    template <class Add>
    void build(Add add, Method method = Method::binding,
               MessageClass cls = MessageClass::success_response) {
        MessageWriter w(buffer_, method, cls, bytes_of(txid_bytes));
        add(w);
        ASSERT_EQ(w.error(), WriteError::ok) << to_string(w.error());
        written_ = w.finish();
        ASSERT_FALSE(written_.empty());
        ASSERT_EQ(Message::parse(written_, message_), ParseError::ok);
    }

    // The first visible attribute of `type`; a test failure if there is none.
    Attribute get(std::uint16_t type) {
        const auto a = message_.find(type);
        if (!a) {
            ADD_FAILURE() << "no attribute " << std::hex << type;
            return {};
        }
        return *a;
    }

    // The attribute as it is on the wire: header, value and padding.
    std::string wire(std::uint16_t type) {
        const Attribute a = get(type);
        if (a.value.data() == nullptr && a.type == 0) return "";
        return to_hex(message_.bytes().subspan(a.offset, 4 + padded4(a.value.size())));
    }

    std::array<std::byte, 4096> buffer_{};
    std::span<std::byte> written_;
    Message message_;
};

// ---------------------------------------------------------------------------------------------
// Addresses (RFC 8489 §14.1, §14.2; RFC 8656 §18.3, §18.5; RFC 5780 §7.3, §7.4).

TEST_F(AttributeRoundTrip, MappedAddressIpv4) {
    const Address a = Address::v4(0xC0000201, 32853);
    build([&](MessageWriter& w) { w.add_address(attr::mapped_address, a); });
    EXPECT_EQ(wire(attr::mapped_address), "00010008" "00018055" "c0000201");
    Address got;
    ASSERT_EQ(decode_address(get(attr::mapped_address), got), ParseError::ok);
    EXPECT_EQ(got, a);
}

TEST_F(AttributeRoundTrip, MappedAddressIpv6) {
    const Address a = ipv6("2001:db8:1234:5678:11:2233:4455:6677", 32853);
    build([&](MessageWriter& w) { w.add_address(attr::mapped_address, a); });
    EXPECT_EQ(wire(attr::mapped_address),
              "00010014" "00028055" "20010db8123456780011223344556677");
    Address got;
    ASSERT_EQ(decode_address(get(attr::mapped_address), got), ParseError::ok);
    EXPECT_EQ(got, a);
}

TEST_F(AttributeRoundTrip, XorMappedAddressIpv4IsTheRfc5769Encoding) {
    const Address a = Address::v4(0xC0000201, 32853);
    build([&](MessageWriter& w) { w.add_xor_address(attr::xor_mapped_address, a); });
    // RFC 5769 §2.2.
    EXPECT_EQ(wire(attr::xor_mapped_address), "00200008" "0001a147" "e112a643");
    Address got;
    ASSERT_EQ(decode_xor_address(get(attr::xor_mapped_address), message_.transaction_id(), got),
              ParseError::ok);
    EXPECT_EQ(got, a);
}

TEST_F(AttributeRoundTrip, XorMappedAddressIpv6IsTheRfc5769Encoding) {
    const Address a = Address::v6(bytes_of(rfc5769::sample_ipv6_mapped_address), 32853);
    build([&](MessageWriter& w) { w.add_xor_address(attr::xor_mapped_address, a); });
    // RFC 5769 §2.3.
    EXPECT_EQ(wire(attr::xor_mapped_address),
              "00200014" "0002a147" "0113a9faa5d3f179bc25f4b5bed2b9d9");
    Address got;
    ASSERT_EQ(decode_xor_address(get(attr::xor_mapped_address), message_.transaction_id(), got),
              ParseError::ok);
    EXPECT_EQ(got, a);
}

TEST_F(AttributeRoundTrip, XorPeerAndRelayedAddresses) {
    const Address peer = Address::v4(0xCB007105, 49152);  // 203.0.113.5
    const Address relayed = ipv6("2001:db8::1", 50000);
    build([&](MessageWriter& w) {
        w.add_xor_address(attr::xor_peer_address, peer);
        w.add_xor_address(attr::xor_relayed_address, relayed);
    });
    // Port 49152 = 0xC000, XOR 0x2112 = 0xE112; 203.0.113.5 XOR 0x2112A442 = 0xEA12D547.
    EXPECT_EQ(wire(attr::xor_peer_address), "00120008" "0001e112" "ea12d547");
    // Port 50000 = 0xC350, XOR 0x2112 = 0xE242; the address XOR cookie || transaction ID.
    EXPECT_EQ(wire(attr::xor_relayed_address),
              "00160014" "0002e242" "0113a9fab7e7a701bc34d686fa87dfaf");
    Address got;
    ASSERT_EQ(decode_xor_address(get(attr::xor_peer_address), message_.transaction_id(), got),
              ParseError::ok);
    EXPECT_EQ(got, peer);
    ASSERT_EQ(decode_xor_address(get(attr::xor_relayed_address), message_.transaction_id(), got),
              ParseError::ok);
    EXPECT_EQ(got, relayed);
}

TEST_F(AttributeRoundTrip, PlainAddressAttributes) {
    const Address alternate = Address::v4(0xC6336401, 3478);  // 198.51.100.1
    const Address origin = Address::v4(0xC0000202, 3478);
    const Address other = ipv6("2001:db8::2", 3479);
    build([&](MessageWriter& w) {
        w.add_address(attr::alternate_server, alternate);
        w.add_address(attr::response_origin, origin);
        w.add_address(attr::other_address, other);
    });
    EXPECT_EQ(wire(attr::alternate_server), "80230008" "00010d96" "c6336401");
    EXPECT_EQ(wire(attr::response_origin), "802b0008" "00010d96" "c0000202");
    EXPECT_EQ(wire(attr::other_address),
              "802c0014" "00020d97" "20010db8000000000000000000000002");
    for (auto [type, expected] : {std::pair{attr::alternate_server, alternate},
                                  std::pair{attr::response_origin, origin},
                                  std::pair{attr::other_address, other}}) {
        Address got;
        ASSERT_EQ(decode_address(get(type), got), ParseError::ok);
        EXPECT_EQ(got, expected) << type;
    }
}

// ---------------------------------------------------------------------------------------------
// Text (RFC 8489 §14.3, §14.9-§14.11, §14.14; RFC 8489 §14.16 ALTERNATE-DOMAIN).

TEST_F(AttributeRoundTrip, TextAttributes) {
    build([&](MessageWriter& w) {
        w.add_text(attr::username, "evtj:h6vY");
        w.add_text(attr::realm, "example.org");
        w.add_text(attr::nonce, "f//499k954d6OL34oL9FSTvy64sA");
        w.add_text(attr::software, "punchline");
        w.add_text(attr::alternate_domain, "turn.example.org");
    });
    EXPECT_EQ(wire(attr::username), "00060009" "6576746a3a68367659000000");  // zero padding
    EXPECT_EQ(wire(attr::realm), "0014000b" "6578616d706c652e6f726700");
    const std::pair<std::uint16_t, std::string_view> expected[] = {
        {attr::username, "evtj:h6vY"},
        {attr::realm, "example.org"},
        {attr::nonce, "f//499k954d6OL34oL9FSTvy64sA"},
        {attr::software, "punchline"},
        {attr::alternate_domain, "turn.example.org"},
    };
    for (auto [type, text] : expected) {
        std::string_view got;
        ASSERT_EQ(decode_text(get(type), got), ParseError::ok) << type;
        EXPECT_EQ(got, text);
        EXPECT_EQ(static_cast<const void*>(got.data()),
                  static_cast<const void*>(get(type).value.data()))
            << "a view into the message";
    }
}

TEST(TextLimit, RfcLimits) {
    // RFC 8489 §14.3: "MUST be able to parse a UTF-8-encoded sequence of 763 or fewer octets".
    EXPECT_EQ(text_limit(attr::username), 763u);
    EXPECT_EQ(text_limit(attr::realm), 763u);        // §14.9
    EXPECT_EQ(text_limit(attr::nonce), 763u);        // §14.10
    EXPECT_EQ(text_limit(attr::software), 763u);     // §14.14
    EXPECT_EQ(text_limit(attr::alternate_domain), 255u);  // §14.16
    EXPECT_EQ(text_limit(attr::data), 65535u);
    // What a sender keeps to.
    EXPECT_EQ(text_send_limit(attr::username), 508u);  // §14.3: "fewer than 509 bytes"
    EXPECT_EQ(text_send_limit(attr::realm), 509u);
    EXPECT_EQ(text_send_limit(attr::nonce), 509u);
    EXPECT_EQ(text_send_limit(attr::software), 509u);
    EXPECT_EQ(text_send_limit(attr::alternate_domain), 255u);
}

TEST(TextLimit, ReceiverParsesUpTo763Bytes) {
    // A peer following RFC 5389 may send a USERNAME up to 512 bytes; RFC 8489 §14.3 makes
    // receivers accept 763.
    const std::string username(763, 'u');
    test::RawMessage raw(0x0001);
    raw.attribute(attr::username, username);
    Message m;
    ASSERT_EQ(Message::parse(raw.bytes(), m), ParseError::ok);
    std::string_view got;
    ASSERT_EQ(decode_text(*m.find(attr::username), got), ParseError::ok);
    EXPECT_EQ(got, username);
}

TEST_F(AttributeRoundTrip, TextAtItsLimit) {
    const std::string username(508, 'u');
    const std::string realm(509, 'r');
    const std::string domain(255, 'd');
    build([&](MessageWriter& w) {
        w.add_text(attr::username, username);
        w.add_text(attr::realm, realm);
        w.add_text(attr::alternate_domain, domain);
    });
    std::string_view got;
    ASSERT_EQ(decode_text(get(attr::username), got), ParseError::ok);
    EXPECT_EQ(got, username);
    ASSERT_EQ(decode_text(get(attr::realm), got), ParseError::ok);
    EXPECT_EQ(got, realm);
    ASSERT_EQ(decode_text(get(attr::alternate_domain), got), ParseError::ok);
    EXPECT_EQ(got, domain);
}

// ---------------------------------------------------------------------------------------------
// USERHASH (RFC 8489 §14.4).

TEST_F(AttributeRoundTrip, Userhash) {
    std::array<std::byte, 32> hash{};
    for (std::size_t i = 0; i < hash.size(); ++i) hash[i] = static_cast<std::byte>(i * 7 + 1);
    build([&](MessageWriter& w) { w.add(attr::userhash, hash); });
    EXPECT_EQ(wire(attr::userhash).substr(0, 8), "001e0020");
    static constexpr std::byte placeholder[32] = {};
    std::span<const std::byte, 32> got(placeholder);
    ASSERT_EQ(decode_userhash(get(attr::userhash), got), ParseError::ok);
    EXPECT_EQ(to_hex(got), to_hex(hash));
    EXPECT_EQ(got.data(), get(attr::userhash).value.data());
}

// ---------------------------------------------------------------------------------------------
// MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256, FINGERPRINT written by the writer and checked
// both by the codec and by OpenSSL/zlib directly.

std::vector<std::byte> with_length(std::span<const std::byte> prefix, std::size_t length) {
    std::vector<std::byte> v(prefix.begin(), prefix.end());
    v[2] = static_cast<std::byte>(length >> 8);
    v[3] = static_cast<std::byte>(length);
    return v;
}

TEST_F(AttributeRoundTrip, MessageIntegrity) {
    const auto key = text_bytes("VOkJxbRl1RmTxUk/WvJxBt");
    build([&](MessageWriter& w) {
        w.add_text(attr::username, "evtj:h6vY");
        w.add_message_integrity(key);
    });
    const Attribute mi = get(attr::message_integrity);
    ASSERT_EQ(mi.value.size(), 20u);
    EXPECT_EQ(mi.offset, 36u);
    EXPECT_EQ(message_.bytes().size(), 60u);
    const auto hashed = with_length(message_.bytes().first(mi.offset), mi.offset + 24 - 20);
    EXPECT_EQ(to_hex(mi.value), to_hex(test::openssl_hmac(EVP_sha1(), key, hashed)));
    EXPECT_EQ(verify_message_integrity(message_, key), IntegrityResult::ok);
}

class IntegritySha256RoundTrip : public AttributeRoundTrip,
                                 public testing::WithParamInterface<std::size_t> {};

TEST_P(IntegritySha256RoundTrip, WithMessageIntegrityBeforeAndFingerprintAfter) {
    const std::size_t size = GetParam();
    const auto key = text_bytes("a long-term key would be 16 or 32 bytes");
    build([&](MessageWriter& w) {
        w.add_text(attr::username, "alice");
        w.add_message_integrity(key);
        w.add_message_integrity_sha256(key, size);
        w.add_fingerprint();
    });
    ASSERT_TRUE(message_.message_integrity());
    ASSERT_TRUE(message_.message_integrity_sha256());
    ASSERT_TRUE(message_.fingerprint());
    const Attribute mi = *message_.message_integrity();
    const Attribute mi256 = *message_.message_integrity_sha256();
    const Attribute fp = *message_.fingerprint();
    EXPECT_EQ(mi.offset, 32u);
    EXPECT_EQ(mi256.offset, 56u);
    EXPECT_EQ(mi256.value.size(), size);
    EXPECT_EQ(fp.offset, 56 + 4 + size);
    EXPECT_EQ(message_.bytes().size(), fp.offset + 8);

    // Each one over the bytes before it, the header length ending with itself.
    const auto mi_input = with_length(message_.bytes().first(mi.offset), mi.offset + 24 - 20);
    EXPECT_EQ(to_hex(mi.value), to_hex(test::openssl_hmac(EVP_sha1(), key, mi_input)));
    const auto mi256_input =
        with_length(message_.bytes().first(mi256.offset), mi256.offset + 4 + size - 20);
    const auto mac256 = test::openssl_hmac(EVP_sha256(), key, mi256_input);
    EXPECT_EQ(to_hex(mi256.value), to_hex(std::span(mac256).first(size)));
    EXPECT_EQ(load_be32(fp.value.data()), test::zlib_fingerprint(message_.bytes().first(fp.offset)));

    EXPECT_EQ(verify_message_integrity(message_, key), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(message_, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(message_), IntegrityResult::ok);
}

INSTANTIATE_TEST_SUITE_P(Truncation, IntegritySha256RoundTrip, testing::Values(32, 16),
                         [](const testing::TestParamInfo<std::size_t>& info) {
                             return "Bytes" + std::to_string(info.param);
                         });

TEST_F(AttributeRoundTrip, FingerprintAlone) {
    build([&](MessageWriter& w) {
        w.add_text(attr::software, "STUN test client");
        w.add_fingerprint();
    });
    const Attribute fp = get(attr::fingerprint);
    ASSERT_EQ(fp.value.size(), 4u);
    EXPECT_EQ(load_be32(fp.value.data()), test::zlib_fingerprint(message_.bytes().first(fp.offset)));
    EXPECT_EQ(verify_fingerprint(message_), IntegrityResult::ok);
}

// ---------------------------------------------------------------------------------------------
// ERROR-CODE (RFC 8489 §14.8).

TEST_F(AttributeRoundTrip, ErrorCodeWireFormat) {
    build([&](MessageWriter& w) { w.add_error_code(error_code::stale_nonce); },
          Method::allocate, MessageClass::error_response);
    // Reserved (21 bits), class 4 (3 bits), number 38 (8 bits), "Stale Nonce", 1 byte padding.
    EXPECT_EQ(wire(attr::error_code), "0009000f" "00000426" "5374616c65204e6f6e6365" "00");
}

TEST_F(AttributeRoundTrip, ErrorCodeEveryCodeWithItsRfcPhrase) {
    const std::pair<std::uint16_t, std::string_view> codes[] = {
        {300, "Try Alternate"},
        {400, "Bad Request"},
        {401, "Unauthenticated"},
        {403, "Forbidden"},
        {420, "Unknown Attribute"},
        {437, "Allocation Mismatch"},
        {438, "Stale Nonce"},
        {440, "Address Family not Supported"},
        {441, "Wrong Credentials"},
        {442, "Unsupported Transport Protocol"},
        {443, "Peer Address Family Mismatch"},
        {486, "Allocation Quota Reached"},
        {500, "Server Error"},
        {508, "Insufficient Capacity"},
    };
    for (auto [code, phrase] : codes) {
        SCOPED_TRACE(code);
        // clang 14 cannot capture a structured binding; capture a copy by name.
        build([code = code](MessageWriter& w) { w.add_error_code(code); }, Method::binding,
              MessageClass::error_response);
        ErrorCodeValue got;
        ASSERT_EQ(decode_error_code(get(attr::error_code), got), ParseError::ok);
        EXPECT_EQ(got.code, code);
        EXPECT_EQ(got.reason, phrase);
        EXPECT_FALSE(got.reason.empty());
    }
}

TEST_F(AttributeRoundTrip, ErrorCodeCustomAndEmptyReason) {
    build([&](MessageWriter& w) { w.add_error_code(699, "Last one"); }, Method::binding,
          MessageClass::error_response);
    ErrorCodeValue got;
    ASSERT_EQ(decode_error_code(get(attr::error_code), got), ParseError::ok);
    EXPECT_EQ(got.code, 699);
    EXPECT_EQ(got.reason, "Last one");

    build([&](MessageWriter& w) { w.add_error_code(300, ""); }, Method::binding,
          MessageClass::error_response);
    EXPECT_EQ(wire(attr::error_code), "00090004" "00000300");
    ASSERT_EQ(decode_error_code(get(attr::error_code), got), ParseError::ok);
    EXPECT_EQ(got.code, 300);
    EXPECT_EQ(got.reason, "");
}

// ---------------------------------------------------------------------------------------------
// NONCE cookie (RFC 8489 §9.2).

TEST(NonceCookie, WriteKnownAnswers) {
    std::array<char, 13> out{};
    write_nonce_cookie(feature_password_algorithms | feature_username_anonymity, out);
    EXPECT_EQ(std::string_view(out.data(), out.size()), "obMatJos2wAAA");  // base64(C0 00 00)
    write_nonce_cookie(feature_password_algorithms, out);
    EXPECT_EQ(std::string_view(out.data(), out.size()), "obMatJos2gAAA");  // base64(80 00 00)
    write_nonce_cookie(0, out);
    EXPECT_EQ(std::string_view(out.data(), out.size()), "obMatJos2AAAA");
    write_nonce_cookie(0xFFFFFF, out);
    EXPECT_EQ(std::string_view(out.data(), out.size()), "obMatJos2////");
}

TEST(NonceCookie, FeaturesKnownAnswers) {
    EXPECT_EQ(nonce_security_features("obMatJos2wAAAopaque"),
              feature_password_algorithms | feature_username_anonymity);
    EXPECT_EQ(nonce_security_features("obMatJos2gAAA"), feature_password_algorithms);
    EXPECT_EQ(nonce_security_features("obMatJos2QAAA"), feature_username_anonymity);
    EXPECT_EQ(nonce_security_features("obMatJos2AAAA"), 0u);
    EXPECT_EQ(nonce_security_features("obMatJos2////xyz"), 0xFFFFFFu);
    EXPECT_FALSE(nonce_security_features(""));
    EXPECT_FALSE(nonce_security_features("obMatJos2"));     // no feature characters
    EXPECT_FALSE(nonce_security_features("obMatJos2gAA"));  // three of four
    EXPECT_FALSE(nonce_security_features("obMatJos2!AAA"));  // not base64
    EXPECT_FALSE(nonce_security_features("obMatJos3gAAA"));  // not the cookie
    EXPECT_FALSE(nonce_security_features("f//499k954d6OL34oL9FSTvy64sA"));
}

TEST_F(AttributeRoundTrip, NonceWithCookieRoundTrips) {
    for (std::uint32_t features : {0u, feature_password_algorithms, feature_username_anonymity,
                                   feature_password_algorithms | feature_username_anonymity,
                                   0x123456u}) {
        std::array<char, 13> cookie{};
        write_nonce_cookie(features, cookie);
        const std::string nonce = std::string(cookie.data(), cookie.size()) + "0123456789abcdef";
        build([&](MessageWriter& w) { w.add_text(attr::nonce, nonce); });
        std::string_view got;
        ASSERT_EQ(decode_text(get(attr::nonce), got), ParseError::ok);
        EXPECT_EQ(got, nonce);
        EXPECT_EQ(nonce_security_features(got), features);
    }
}

// ---------------------------------------------------------------------------------------------
// PASSWORD-ALGORITHM, PASSWORD-ALGORITHMS (RFC 8489 §14.11, §14.12).

TEST_F(AttributeRoundTrip, PasswordAlgorithm) {
    const auto params = hex("616263");
    build([&](MessageWriter& w) {
        w.add_password_algorithm({static_cast<std::uint16_t>(PasswordAlgorithm::sha256), {}});
    });
    EXPECT_EQ(wire(attr::password_algorithm), "001d0004" "00020000");
    PasswordAlgorithmValue got;
    ASSERT_EQ(decode_password_algorithm(get(attr::password_algorithm), got), ParseError::ok);
    EXPECT_EQ(got.algorithm, 2);
    EXPECT_TRUE(got.parameters.empty());

    build([&](MessageWriter& w) { w.add_password_algorithm({0x0001, params}); });
    // RFC 8489 §14.12: "The parameters are padded to a 32-bit boundary", inside the value, so
    // the attribute length counts the padding (as one PASSWORD-ALGORITHMS entry does).
    EXPECT_EQ(wire(attr::password_algorithm), "001d0008" "00010003" "61626300");
    ASSERT_EQ(decode_password_algorithm(get(attr::password_algorithm), got), ParseError::ok);
    EXPECT_EQ(got.algorithm, 1);
    EXPECT_EQ(to_hex(got.parameters), "616263");
}

TEST(PasswordAlgorithmDecode, AcceptsUnpaddedLengthFromPeers) {
    // A peer that reads §14.12 as "padded like an attribute" sends length 7; same value.
    const auto bytes = test::RawMessage(0x0001)
                           .attribute_with_length(attr::password_algorithm, 7,
                                                  hex("00010003 616263"))
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    PasswordAlgorithmValue got;
    ASSERT_EQ(decode_password_algorithm(*m.find(attr::password_algorithm), got), ParseError::ok);
    EXPECT_EQ(got.algorithm, 1);
    EXPECT_EQ(to_hex(got.parameters), "616263");
}

TEST(PasswordAlgorithmDecode, ParametersLongerThanValue) {
    const auto bytes = test::RawMessage(0x0001)
                           .attribute(attr::password_algorithm, hex("00010008 61626364"))
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    PasswordAlgorithmValue got;
    EXPECT_EQ(decode_password_algorithm(*m.find(attr::password_algorithm), got),
              ParseError::bad_attribute_length);
}

TEST_F(AttributeRoundTrip, PasswordAlgorithms) {
    const auto params = hex("616263");
    const PasswordAlgorithmValue list[] = {{0x0001, params}, {0x0002, {}}};
    build([&](MessageWriter& w) { w.add_password_algorithms(list); });
    // Each entry's parameters padded to 4 within the attribute.
    EXPECT_EQ(wire(attr::password_algorithms), "8002000c" "00010003" "61626300" "00020000");
    std::array<PasswordAlgorithmValue, 4> got{};
    std::size_t count = 0;
    ASSERT_EQ(decode_password_algorithms(get(attr::password_algorithms), got, count),
              ParseError::ok);
    ASSERT_EQ(count, 2u);
    EXPECT_EQ(got[0].algorithm, 1);
    EXPECT_EQ(to_hex(got[0].parameters), "616263");
    EXPECT_EQ(got[1].algorithm, 2);
    EXPECT_TRUE(got[1].parameters.empty());

    // A short output span still learns the count.
    std::array<PasswordAlgorithmValue, 1> one{};
    count = 0;
    ASSERT_EQ(decode_password_algorithms(get(attr::password_algorithms), one, count),
              ParseError::ok);
    EXPECT_EQ(count, 2u);
    EXPECT_EQ(one[0].algorithm, 1);
}

// ---------------------------------------------------------------------------------------------
// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).

TEST_F(AttributeRoundTrip, UnknownAttributes) {
    const std::uint16_t even[] = {0x7FFF, 0x0002};
    build([&](MessageWriter& w) { w.add_unknown_attributes(even); }, Method::binding,
          MessageClass::error_response);
    EXPECT_EQ(wire(attr::unknown_attributes), "000a0004" "7fff0002");
    std::array<std::uint16_t, 8> got{};
    std::size_t count = 0;
    ASSERT_EQ(decode_unknown_attributes(get(attr::unknown_attributes), got, count),
              ParseError::ok);
    ASSERT_EQ(count, 2u);
    EXPECT_EQ(got[0], 0x7FFF);
    EXPECT_EQ(got[1], 0x0002);

    const std::uint16_t odd[] = {0x7FFF, 0x0002, 0x7FFE};
    build([&](MessageWriter& w) { w.add_unknown_attributes(odd); }, Method::binding,
          MessageClass::error_response);
    EXPECT_EQ(wire(attr::unknown_attributes).substr(0, 20), "000a0006" "7fff00027ffe");
    ASSERT_EQ(decode_unknown_attributes(get(attr::unknown_attributes), got, count),
              ParseError::ok);
    ASSERT_EQ(count, 3u);
    EXPECT_EQ(got[2], 0x7FFE);

    std::array<std::uint16_t, 1> one{};
    ASSERT_EQ(decode_unknown_attributes(get(attr::unknown_attributes), one, count),
              ParseError::ok);
    EXPECT_EQ(count, 3u);
    EXPECT_EQ(one[0], 0x7FFF);
}

// ---------------------------------------------------------------------------------------------
// TURN (RFC 8656 §18).

TEST_F(AttributeRoundTrip, TurnAttributes) {
    const auto data = hex("0102030405");
    const IcmpValue icmp{3, 1, 0x12345678};
    build([&](MessageWriter& w) {
        w.add_channel_number(0x4001);
        w.add_u32(attr::lifetime, 600);
        w.add(attr::data, data);
        w.add_address_family(attr::requested_address_family, AddressFamily::ipv6);
        w.add_even_port(true);
        w.add_requested_transport(transport_udp);
        w.add_flag(attr::dont_fragment);
        w.add_u64(attr::reservation_token, 0x0102030405060708);
        w.add_address_family(attr::additional_address_family, AddressFamily::ipv6);
        w.add_address_error_code(AddressFamily::ipv6, 440, "Address Family not Supported");
        w.add_icmp(icmp);
    });
    EXPECT_EQ(wire(attr::channel_number), "000c0004" "40010000");
    EXPECT_EQ(wire(attr::lifetime), "000d0004" "00000258");
    EXPECT_EQ(wire(attr::data), "00130005" "0102030405000000");
    EXPECT_EQ(wire(attr::requested_address_family), "00170004" "02000000");
    EXPECT_EQ(wire(attr::even_port), "00180001" "80000000");
    EXPECT_EQ(wire(attr::requested_transport), "00190004" "11000000");
    EXPECT_EQ(wire(attr::dont_fragment), "001a0000");
    EXPECT_EQ(wire(attr::reservation_token), "00220008" "0102030405060708");
    EXPECT_EQ(wire(attr::additional_address_family), "80000004" "02000000");
    // Family, 13 reserved bits, class 4, number 40, reason.
    EXPECT_EQ(wire(attr::address_error_code).substr(0, 16), "80010020" "02000428");
    EXPECT_EQ(wire(attr::icmp), "80040008" "00000301" "12345678");

    std::uint16_t channel = 0;
    ASSERT_EQ(decode_channel_number(get(attr::channel_number), channel), ParseError::ok);
    EXPECT_EQ(channel, 0x4001);
    std::uint32_t lifetime = 0;
    ASSERT_EQ(decode_u32(get(attr::lifetime), lifetime), ParseError::ok);
    EXPECT_EQ(lifetime, 600u);
    EXPECT_EQ(to_hex(get(attr::data).value), "0102030405");
    AddressFamily family{};
    ASSERT_EQ(decode_address_family(get(attr::requested_address_family), family), ParseError::ok);
    EXPECT_EQ(family, AddressFamily::ipv6);
    bool reserve_next = false;
    ASSERT_EQ(decode_even_port(get(attr::even_port), reserve_next), ParseError::ok);
    EXPECT_TRUE(reserve_next);
    std::uint8_t protocol = 0;
    ASSERT_EQ(decode_requested_transport(get(attr::requested_transport), protocol),
              ParseError::ok);
    EXPECT_EQ(protocol, 17);
    EXPECT_EQ(decode_flag(get(attr::dont_fragment)), ParseError::ok);
    std::uint64_t token = 0;
    ASSERT_EQ(decode_u64(get(attr::reservation_token), token), ParseError::ok);
    EXPECT_EQ(token, 0x0102030405060708u);
    family = AddressFamily::ipv4;
    ASSERT_EQ(decode_address_family(get(attr::additional_address_family), family),
              ParseError::ok);
    EXPECT_EQ(family, AddressFamily::ipv6);
    AddressErrorCodeValue address_error;
    ASSERT_EQ(decode_address_error_code(get(attr::address_error_code), address_error),
              ParseError::ok);
    EXPECT_EQ(address_error.family, AddressFamily::ipv6);
    EXPECT_EQ(address_error.code, 440);
    EXPECT_EQ(address_error.reason, "Address Family not Supported");
    IcmpValue icmp_got;
    ASSERT_EQ(decode_icmp(get(attr::icmp), icmp_got), ParseError::ok);
    EXPECT_EQ(icmp_got.type, 3);
    EXPECT_EQ(icmp_got.code, 1);
    EXPECT_EQ(icmp_got.error_data, 0x12345678u);
}

TEST_F(AttributeRoundTrip, EvenPortWithoutReservationAndIpv4Families) {
    build([&](MessageWriter& w) {
        w.add_even_port(false);
        w.add_address_family(attr::requested_address_family, AddressFamily::ipv4);
        w.add_channel_number(0x4FFF);
    });
    EXPECT_EQ(wire(attr::even_port), "00180001" "00000000");
    EXPECT_EQ(wire(attr::requested_address_family), "00170004" "01000000");
    bool reserve_next = true;
    ASSERT_EQ(decode_even_port(get(attr::even_port), reserve_next), ParseError::ok);
    EXPECT_FALSE(reserve_next);
    AddressFamily family = AddressFamily::ipv6;
    ASSERT_EQ(decode_address_family(get(attr::requested_address_family), family), ParseError::ok);
    EXPECT_EQ(family, AddressFamily::ipv4);
    std::uint16_t channel = 0;
    ASSERT_EQ(decode_channel_number(get(attr::channel_number), channel), ParseError::ok);
    EXPECT_EQ(channel, 0x4FFF);
}

TEST(ChannelNumberDecode, RangeIsTheServersBusiness) {
    // RFC 8656 §11.2: an out-of-range number gets a 400, so the decoder returns it as is.
    const auto bytes = test::RawMessage(0x0009)
                           .attribute(attr::channel_number, hex("30000000"))
                           .bytes();
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    std::uint16_t channel = 0;
    ASSERT_EQ(decode_channel_number(*m.find(attr::channel_number), channel), ParseError::ok);
    EXPECT_EQ(channel, 0x3000);
}

// ---------------------------------------------------------------------------------------------
// RFC 5780 §7 and RFC 8445 §16.1.

TEST_F(AttributeRoundTrip, NatBehaviourDiscoveryAttributes) {
    build([&](MessageWriter& w) {
        w.add_u32(attr::change_request, change_ip | change_port);
        w.add_response_port(3479);
        w.add_padding(7);
    });
    EXPECT_EQ(wire(attr::change_request), "00030004" "00000006");
    EXPECT_EQ(wire(attr::response_port), "00270004" "0d970000");
    EXPECT_EQ(wire(attr::padding), "00260007" "0000000000000000");
    std::uint32_t flags = 0;
    ASSERT_EQ(decode_u32(get(attr::change_request), flags), ParseError::ok);
    EXPECT_EQ(flags, 6u);
    std::uint16_t port = 0;
    ASSERT_EQ(decode_response_port(get(attr::response_port), port), ParseError::ok);
    EXPECT_EQ(port, 3479);
    EXPECT_EQ(get(attr::padding).value.size(), 7u);
}

TEST_F(AttributeRoundTrip, IceAttributes) {
    build(
        [&](MessageWriter& w) {
            w.add_u32(attr::priority, 0x6e0001ff);
            w.add_flag(attr::use_candidate);
            w.add_u64(attr::ice_controlled, 0x932ff9b151263b36);
            w.add_u64(attr::ice_controlling, 0xfedcba9876543210);
        },
        Method::binding, MessageClass::request);
    EXPECT_EQ(wire(attr::priority), "00240004" "6e0001ff");  // RFC 5769 §2.1
    EXPECT_EQ(wire(attr::use_candidate), "00250000");
    EXPECT_EQ(wire(attr::ice_controlled), "80290008" "932ff9b151263b36");
    EXPECT_EQ(wire(attr::ice_controlling), "802a0008" "fedcba9876543210");
    std::uint32_t priority = 0;
    ASSERT_EQ(decode_u32(get(attr::priority), priority), ParseError::ok);
    EXPECT_EQ(priority, 0x6e0001ffu);
    EXPECT_EQ(decode_flag(get(attr::use_candidate)), ParseError::ok);
    std::uint64_t tie = 0;
    ASSERT_EQ(decode_u64(get(attr::ice_controlled), tie), ParseError::ok);
    EXPECT_EQ(tie, 0x932ff9b151263b36u);
    ASSERT_EQ(decode_u64(get(attr::ice_controlling), tie), ParseError::ok);
    EXPECT_EQ(tie, 0xfedcba9876543210u);
}

// ---------------------------------------------------------------------------------------------
// Everything at once: each decoder finds its attribute among all the others.

TEST_F(AttributeRoundTrip, EveryAttributeInOneMessageDecodes) {
    std::array<std::byte, 32> hash{};
    const std::uint16_t unknown[] = {0x7FFF};
    const PasswordAlgorithmValue algorithms[] = {{1, {}}, {2, {}}};
    const auto key = text_bytes("key");
    build([&](MessageWriter& w) {
        w.add_address(attr::mapped_address, Address::v4(0x7F000001, 1));
        w.add_xor_address(attr::xor_mapped_address, Address::v4(0x7F000001, 2));
        w.add_xor_address(attr::xor_peer_address, ipv6("::1", 3));
        w.add_xor_address(attr::xor_relayed_address, Address::v4(0x7F000001, 4));
        w.add_address(attr::alternate_server, Address::v4(0x7F000001, 5));
        w.add_address(attr::response_origin, Address::v4(0x7F000001, 6));
        w.add_address(attr::other_address, ipv6("fe80::1", 7));
        w.add_text(attr::username, "user");
        w.add(attr::userhash, hash);
        w.add_error_code(420);
        w.add_text(attr::realm, "realm");
        w.add_text(attr::nonce, "obMatJos2gAAAnonce");
        w.add_password_algorithm({2, {}});
        w.add_password_algorithms(algorithms);
        w.add_unknown_attributes(unknown);
        w.add_text(attr::software, "software");
        w.add_text(attr::alternate_domain, "example.org");
        w.add_channel_number(0x4000);
        w.add_u32(attr::lifetime, 0);
        w.add(attr::data, hex("00"));
        w.add_address_family(attr::requested_address_family, AddressFamily::ipv4);
        w.add_even_port(false);
        w.add_requested_transport(17);
        w.add_flag(attr::dont_fragment);
        w.add_u64(attr::reservation_token, 1);
        w.add_address_family(attr::additional_address_family, AddressFamily::ipv6);
        w.add_address_error_code(AddressFamily::ipv4, 440, "");
        w.add_icmp({});
        w.add_u32(attr::change_request, 0);
        w.add_response_port(1);
        w.add_padding(0);
        w.add_u32(attr::priority, 1);
        w.add_flag(attr::use_candidate);
        w.add_u64(attr::ice_controlled, 1);
        w.add_u64(attr::ice_controlling, 2);
        w.add_message_integrity(key);
        w.add_message_integrity_sha256(key);
        w.add_fingerprint();
    });
    std::size_t count = 0;
    for (Attribute a : message_) {
        ++count;
        EXPECT_TRUE(message_.visible(a)) << attribute_name(a.type);
        EXPECT_EQ(test::decode_any(message_, a), ParseError::ok) << attribute_name(a.type);
        EXPECT_TRUE(is_known_attribute(a.type)) << a.type;
    }
    EXPECT_EQ(count, 38u);
    EXPECT_EQ(verify_message_integrity(message_, key), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(message_, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(message_), IntegrityResult::ok);
    std::array<std::uint16_t, 4> unknown_out{};
    EXPECT_EQ(message_.unknown_comprehension_required(unknown_out), 0u);
}

}  // namespace
}  // namespace stun
