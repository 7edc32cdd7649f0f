// Tests for stun/errors.cc: the names of the error enums, the RFC reason phrases, and one named
// malformed input per ParseError value, refused by whichever function finds it (style rule 16).
#include "stun/errors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/message.h"
#include "test_support.h"

namespace stun {
namespace {

using test::hex;
using test::RawMessage;

// ---------------------------------------------------------------------------------------------
// Reason phrases.

struct Phrase {
    std::uint16_t code;
    std::string_view phrase;
};

// RFC 8489 §14.8 and RFC 8656 §18.11 (RFC 8489 renamed 401 "Unauthorized" to "Unauthenticated").
constexpr Phrase rfc_phrases[] = {
    {error_code::try_alternate, "Try Alternate"},
    {error_code::bad_request, "Bad Request"},
    {error_code::unauthenticated, "Unauthenticated"},
    {error_code::forbidden, "Forbidden"},
    {error_code::unknown_attribute, "Unknown Attribute"},
    {error_code::allocation_mismatch, "Allocation Mismatch"},
    {error_code::stale_nonce, "Stale Nonce"},
    {error_code::address_family_not_supported, "Address Family not Supported"},
    {error_code::wrong_credentials, "Wrong Credentials"},
    {error_code::unsupported_transport_protocol, "Unsupported Transport Protocol"},
    {error_code::peer_address_family_mismatch, "Peer Address Family Mismatch"},
    {error_code::allocation_quota_reached, "Allocation Quota Reached"},
    {error_code::server_error, "Server Error"},
    {error_code::insufficient_capacity, "Insufficient Capacity"},
};

TEST(ReasonPhrase, EveryErrorCodeHasItsRfcPhrase) {
    for (const auto& p : rfc_phrases) {
        SCOPED_TRACE(p.code);
        EXPECT_EQ(reason_phrase(p.code), p.phrase);
    }
}

TEST(ReasonPhrase, ErrorCodeConstantsHaveTheirRfcValues) {
    EXPECT_EQ(error_code::try_alternate, 300);
    EXPECT_EQ(error_code::bad_request, 400);
    EXPECT_EQ(error_code::unauthenticated, 401);
    EXPECT_EQ(error_code::forbidden, 403);
    EXPECT_EQ(error_code::unknown_attribute, 420);
    EXPECT_EQ(error_code::allocation_mismatch, 437);
    EXPECT_EQ(error_code::stale_nonce, 438);
    EXPECT_EQ(error_code::address_family_not_supported, 440);
    EXPECT_EQ(error_code::wrong_credentials, 441);
    EXPECT_EQ(error_code::unsupported_transport_protocol, 442);
    EXPECT_EQ(error_code::peer_address_family_mismatch, 443);
    EXPECT_EQ(error_code::allocation_quota_reached, 486);
    EXPECT_EQ(error_code::server_error, 500);
    EXPECT_EQ(error_code::insufficient_capacity, 508);
}

TEST(ReasonPhrase, CodesTheRfcsDoNotNameHaveNone) {
    for (std::uint16_t code : {0, 200, 299, 301, 402, 404, 599, 600, 699, 700, 65535}) {
        EXPECT_EQ(reason_phrase(code), "") << code;
    }
}

// ---------------------------------------------------------------------------------------------
// Enum names: counter labels, so they are part of the interface.

TEST(ParseErrorName, EveryValueHasItsSnakeCaseName) {
    const std::pair<ParseError, std::string_view> names[] = {
        {ParseError::ok, "ok"},
        {ParseError::truncated_header, "truncated_header"},
        {ParseError::not_stun, "not_stun"},
        {ParseError::bad_magic_cookie, "bad_magic_cookie"},
        {ParseError::length_not_multiple_of_4, "length_not_multiple_of_4"},
        {ParseError::length_mismatch, "length_mismatch"},
        {ParseError::attribute_overrun, "attribute_overrun"},
        {ParseError::fingerprint_not_last, "fingerprint_not_last"},
        {ParseError::bad_integrity_length, "bad_integrity_length"},
        {ParseError::bad_fingerprint_length, "bad_fingerprint_length"},
        {ParseError::bad_attribute_length, "bad_attribute_length"},
        {ParseError::bad_address_family, "bad_address_family"},
        {ParseError::value_too_long, "value_too_long"},
        {ParseError::bad_error_code, "bad_error_code"},
        {ParseError::attribute_missing, "attribute_missing"},
        {ParseError::channel_data_truncated, "channel_data_truncated"},
        {ParseError::bad_channel_number, "bad_channel_number"},
        {ParseError::channel_data_overrun, "channel_data_overrun"},
    };
    for (const auto& [error, name] : names) EXPECT_EQ(to_string(error), name);
}

TEST(WriteErrorName, NamesAreDistinctAndNonEmpty) {
    std::set<std::string_view> seen;
    for (auto e : {WriteError::ok, WriteError::buffer_too_small, WriteError::value_too_long,
                   WriteError::bad_value, WriteError::after_fingerprint}) {
        EXPECT_FALSE(to_string(e).empty());
        EXPECT_TRUE(seen.insert(to_string(e)).second) << to_string(e);
    }
}

// ---------------------------------------------------------------------------------------------
// One named malformed input per ParseError value.

enum class Via { parse, decode, channel_data };

struct MalformedCase {
    std::string name;  // CamelCase: it becomes the GoogleTest name
    Via via;
    std::vector<std::byte> bytes;
    ParseError expected;
};

void PrintTo(const MalformedCase& c, std::ostream* os) {
    *os << c.name << " (" << test::to_hex(c.bytes).substr(0, 96) << ")";
}

// Runs the case through the function that should refuse it. `decode` cases must parse; the
// first attribute is then decoded with the decoder its type calls for.
ParseError run_case(const MalformedCase& c) {
    switch (c.via) {
        case Via::parse: {
            Message m;
            return Message::parse(c.bytes, m);
        }
        case Via::decode: {
            Message m;
            const ParseError parsed = Message::parse(c.bytes, m);
            if (parsed != ParseError::ok) {
                ADD_FAILURE() << "a decode case must parse; got " << to_string(parsed);
                return parsed;
            }
            if (m.begin() == m.end()) {
                ADD_FAILURE() << "a decode case needs an attribute";
                return ParseError::attribute_missing;
            }
            return test::decode_any(m, *m.begin());
        }
        case Via::channel_data: {
            ChannelData cd;
            return parse_channel_data(c.bytes, cd);
        }
    }
    return ParseError::ok;
}

// A Binding request with transaction ID a0..ab and the given header length field.
std::vector<std::byte> header(std::string_view first_two_bytes, std::string_view length,
                              std::string_view cookie = "2112a442") {
    return hex(std::string(first_two_bytes) + std::string(length) + std::string(cookie) +
               "a0a1a2a3 a4a5a6a7 a8a9aaab");
}

std::vector<std::byte> cat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::vector<std::byte> with_attribute(std::uint16_t type, const std::vector<std::byte>& value) {
    return RawMessage(0x0001).attribute(type, value).bytes();
}

std::vector<std::byte> repeated(std::size_t n, char c) {
    return std::vector<std::byte>(n, static_cast<std::byte>(c));
}

std::vector<MalformedCase> malformed_cases() {
    const auto txid_header = hex("0001 0000 2112a442 a0a1a2a3 a4a5a6a7 a8a9aaab");
    std::vector<std::byte> nineteen(txid_header.begin(), txid_header.begin() + 19);
    const auto fingerprint = hex("8028 0004 01020304");
    const auto software = hex("8022 0004 61626364");
    return {
        // RFC 8489 §6.3: the header.
        {"EmptyDatagram", Via::parse, {}, ParseError::truncated_header},
        {"NineteenBytes", Via::parse, nineteen, ParseError::truncated_header},
        {"FirstByte0x40", Via::parse, header("4001", "0000"), ParseError::not_stun},
        {"FirstByte0x80", Via::parse, header("8001", "0000"), ParseError::not_stun},
        {"FirstByte0xC1", Via::parse, header("c101", "0000"), ParseError::not_stun},
        {"MagicCookieOffByOne", Via::parse, header("0001", "0000", "2112a443"),
         ParseError::bad_magic_cookie},
        {"MagicCookieByteSwapped", Via::parse, header("0001", "0000", "42a41221"),
         ParseError::bad_magic_cookie},
        {"LengthTwo", Via::parse, cat(header("0001", "0002"), hex("0000")),
         ParseError::length_not_multiple_of_4},
        // The "padding past the end" overrun: a last attribute sent without its padding. The
        // datagram is then not a multiple of 4 long, which the header check finds first; with
        // the length a multiple of 4, an attribute whose value fits always has room to pad.
        {"UnpaddedLastAttribute", Via::parse, cat(header("0001", "0005"), hex("8022 0001 61")),
         ParseError::length_not_multiple_of_4},
        {"LengthFieldLongerThanDatagram", Via::parse,
         cat(header("0001", "0008"), hex("8022 0000")), ParseError::length_mismatch},
        {"LengthFieldShorterThanDatagram", Via::parse, cat(header("0001", "0004"), software),
         ParseError::length_mismatch},
        {"LengthFieldZeroWithAttributes", Via::parse, cat(header("0001", "0000"), software),
         ParseError::length_mismatch},
        // RFC 8489 §14: the attribute walk.
        {"AttributeValuePastEnd", Via::parse, cat(header("0001", "0008"), hex("8022 0008 61626364")),
         ParseError::attribute_overrun},
        {"SecondAttributeValuePastEnd", Via::parse,
         cat(header("0001", "000c"), hex("8022 0000 0024 0008 00000001")),
         ParseError::attribute_overrun},
        {"OnlyAttributeHeaderFits", Via::parse, cat(header("0001", "0004"), hex("8022 0004")),
         ParseError::attribute_overrun},
        {"AttributeLength0xFFFF", Via::parse, cat(header("0001", "0008"), hex("8022 ffff 61626364")),
         ParseError::attribute_overrun},
        {"FingerprintBeforeSoftware", Via::parse,
         cat(cat(header("0001", "0010"), fingerprint), software), ParseError::fingerprint_not_last},
        {"FingerprintTwice", Via::parse,
         cat(cat(header("0001", "0010"), fingerprint), fingerprint),
         ParseError::fingerprint_not_last},
        {"MessageIntegrityOf16Bytes", Via::parse,
         with_attribute(attr::message_integrity, repeated(16, 'm')),
         ParseError::bad_integrity_length},
        {"MessageIntegrityOf32Bytes", Via::parse,
         with_attribute(attr::message_integrity, repeated(32, 'm')),
         ParseError::bad_integrity_length},
        {"MessageIntegritySha256Of12Bytes", Via::parse,
         with_attribute(attr::message_integrity_sha256, repeated(12, 'm')),
         ParseError::bad_integrity_length},
        {"MessageIntegritySha256Of36Bytes", Via::parse,
         with_attribute(attr::message_integrity_sha256, repeated(36, 'm')),
         ParseError::bad_integrity_length},
        {"MessageIntegritySha256Of18Bytes", Via::parse,
         with_attribute(attr::message_integrity_sha256, repeated(18, 'm')),
         ParseError::bad_integrity_length},
        {"FingerprintOf8Bytes", Via::parse, with_attribute(attr::fingerprint, repeated(8, 'f')),
         ParseError::bad_fingerprint_length},
        {"FingerprintOf0Bytes", Via::parse, with_attribute(attr::fingerprint, {}),
         ParseError::bad_fingerprint_length},
        // Attribute values (RFC 8489 §14, RFC 8656 §18).
        {"XorMappedAddressOf6Bytes", Via::decode,
         with_attribute(attr::xor_mapped_address, hex("0001 a147 e112")),
         ParseError::bad_attribute_length},
        {"XorMappedAddressIpv6Of8Bytes", Via::decode,
         with_attribute(attr::xor_mapped_address, hex("0002 a147 e112a643")),
         ParseError::bad_attribute_length},
        {"MappedAddressIpv4Of20Bytes", Via::decode,
         with_attribute(attr::mapped_address, cat(hex("0001 0d96 c0000201"), repeated(12, 0))),
         ParseError::bad_attribute_length},
        {"LifetimeOf2Bytes", Via::decode, with_attribute(attr::lifetime, hex("0258")),
         ParseError::bad_attribute_length},
        {"ChannelNumberOf2Bytes", Via::decode, with_attribute(attr::channel_number, hex("4001")),
         ParseError::bad_attribute_length},
        {"UserhashOf31Bytes", Via::decode, with_attribute(attr::userhash, repeated(31, 'u')),
         ParseError::bad_attribute_length},
        {"IceControlledOf4Bytes", Via::decode, with_attribute(attr::ice_controlled, hex("01020304")),
         ParseError::bad_attribute_length},
        {"UseCandidateWithValue", Via::decode, with_attribute(attr::use_candidate, hex("00000000")),
         ParseError::bad_attribute_length},
        {"ErrorCodeOf3Bytes", Via::decode, with_attribute(attr::error_code, hex("000004")),
         ParseError::bad_attribute_length},
        {"RequestedTransportOf1Byte", Via::decode,
         with_attribute(attr::requested_transport, hex("11")), ParseError::bad_attribute_length},
        {"XorMappedAddressFamily3", Via::decode,
         with_attribute(attr::xor_mapped_address, hex("0003 a147 e112a643")),
         ParseError::bad_address_family},
        {"MappedAddressFamily0", Via::decode,
         with_attribute(attr::mapped_address, hex("0000 0d96 c0000201")),
         ParseError::bad_address_family},
        {"RequestedAddressFamily3", Via::decode,
         with_attribute(attr::requested_address_family, hex("03000000")),
         ParseError::bad_address_family},
        {"UsernameOf764Bytes", Via::decode, with_attribute(attr::username, repeated(764, 'u')),
         ParseError::value_too_long},
        {"UsernameOf1000Bytes", Via::decode, with_attribute(attr::username, repeated(1000, 'u')),
         ParseError::value_too_long},
        {"RealmOf800Bytes", Via::decode, with_attribute(attr::realm, repeated(800, 'r')),
         ParseError::value_too_long},
        {"AlternateDomainOf256Bytes", Via::decode,
         with_attribute(attr::alternate_domain, repeated(256, 'd')), ParseError::value_too_long},
        {"ErrorCodeClass2", Via::decode, with_attribute(attr::error_code, hex("00000200")),
         ParseError::bad_error_code},
        {"ErrorCodeClass7", Via::decode, with_attribute(attr::error_code, hex("00000700")),
         ParseError::bad_error_code},
        {"ErrorCodeNumber100", Via::decode, with_attribute(attr::error_code, hex("00000464")),
         ParseError::bad_error_code},
        {"AddressErrorCodeClass2", Via::decode,
         with_attribute(attr::address_error_code, hex("01000200")), ParseError::bad_error_code},
        // RFC 8656 §12.4: ChannelData.
        {"ChannelDataEmpty", Via::channel_data, {}, ParseError::channel_data_truncated},
        {"ChannelDataOf3Bytes", Via::channel_data, hex("400000"),
         ParseError::channel_data_truncated},
        {"Channel0x3FFF", Via::channel_data, hex("3fff 0000"), ParseError::bad_channel_number},
        {"Channel0x8000", Via::channel_data, hex("8000 0000"), ParseError::bad_channel_number},
        {"Channel0xFFFF", Via::channel_data, hex("ffff 0000"), ParseError::bad_channel_number},
        {"Channel0x4000Accepted", Via::channel_data, hex("4000 0000"), ParseError::ok},
        {"Channel0x4FFFAccepted", Via::channel_data, hex("4fff 0000"), ParseError::ok},
        // RFC 5766 §11's range, which clients still use (stun::channel_accepted_max).
        {"Channel0x5000Accepted", Via::channel_data, hex("5000 0000"), ParseError::ok},
        {"Channel0x7FFFAccepted", Via::channel_data, hex("7fff 0000"), ParseError::ok},
        {"ChannelDataLength8With4Bytes", Via::channel_data, hex("4000 0008 01020304"),
         ParseError::channel_data_overrun},
        {"ChannelDataLength1WithNone", Via::channel_data, hex("4000 0001"),
         ParseError::channel_data_overrun},
    };
}

class MalformedInput : public testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedInput, IsRefusedWithItsError) {
    const MalformedCase& c = GetParam();
    const ParseError got = run_case(c);
    EXPECT_EQ(got, c.expected) << c.name << ": expected " << to_string(c.expected) << ", got "
                               << to_string(got);
}

INSTANTIATE_TEST_SUITE_P(ParseErrors, MalformedInput, testing::ValuesIn(malformed_cases()),
                         [](const testing::TestParamInfo<MalformedCase>& info) {
                             return info.param.name;
                         });

TEST(MalformedInputTable, HasACaseForEveryParseError) {
    std::set<ParseError> covered;
    for (const auto& c : malformed_cases()) covered.insert(c.expected);
    for (int e = static_cast<int>(ParseError::truncated_header);
         e <= static_cast<int>(ParseError::channel_data_overrun); ++e) {
        const auto error = static_cast<ParseError>(e);
        // No function of the codec returns attribute_missing (Message::find returns nullopt);
        // the names test above covers it.
        if (error == ParseError::attribute_missing) continue;
        EXPECT_TRUE(covered.count(error)) << "no case for " << to_string(error);
    }
}

TEST(AttributeMissing, IsNamedAndDistinctFromOk) {
    EXPECT_NE(ParseError::attribute_missing, ParseError::ok);
    EXPECT_EQ(to_string(ParseError::attribute_missing), "attribute_missing");
    // What a server sees when a request lacks an attribute: find() returns nullopt.
    const auto bytes = with_attribute(attr::software, hex("61626364"));
    Message m;
    ASSERT_EQ(Message::parse(bytes, m), ParseError::ok);
    EXPECT_FALSE(m.find(attr::username).has_value());
    EXPECT_TRUE(m.find(attr::software).has_value());
}

}  // namespace
}  // namespace stun
