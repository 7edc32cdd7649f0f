// Tests for stun/writer.cc: headers, golden messages, the sticky errors, and error responses.
// Attribute encodings are in attributes_test.cc.
#include "stun/writer.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rfc5769_vectors.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "test_support.h"

namespace stun {
namespace {

using test::bytes_of;
using test::hex;
using test::RawMessage;
using test::text_bytes;
using test::to_hex;

constexpr unsigned char txid_bytes[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                          0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
const auto txid = bytes_of(txid_bytes);

TEST(MessageWriterHeader, BindingSuccessResponse) {
    std::array<std::byte, 64> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::success_response, txid);
    EXPECT_TRUE(w.ok());
    EXPECT_EQ(w.size(), 20u);
    EXPECT_EQ(to_hex(w.finish()), "01010000" "2112a442" "b7e7a701bc34d686fa87dfae");
    EXPECT_EQ(to_hex(w.transaction_id()), "b7e7a701bc34d686fa87dfae");
    EXPECT_EQ(w.finish().data(), buffer.data());
}

TEST(MessageWriterHeader, EveryMethodAndClass) {
    const std::pair<Method, std::uint16_t> methods[] = {
        {Method::binding, 0x001},  {Method::allocate, 0x003},          {Method::refresh, 0x004},
        {Method::send, 0x006},     {Method::data, 0x007},              {Method::create_permission, 0x008},
        {Method::channel_bind, 0x009},
    };
    // RFC 8489 §5: the class bits are 0x0000, 0x0010, 0x0100, 0x0110.
    const std::pair<MessageClass, std::uint16_t> classes[] = {
        {MessageClass::request, 0x0000},
        {MessageClass::indication, 0x0010},
        {MessageClass::success_response, 0x0100},
        {MessageClass::error_response, 0x0110},
    };
    for (auto [method, method_bits] : methods) {
        for (auto [cls, class_bits] : classes) {
            std::array<std::byte, 20> buffer{};
            MessageWriter w(buffer, method, cls, txid);
            ASSERT_TRUE(w.ok());
            Message m;
            ASSERT_EQ(Message::parse(w.finish(), m), ParseError::ok);
            // All methods here are below 0x010, so the type is the method OR the class bits.
            EXPECT_EQ(m.type(), method_bits | class_bits);
            EXPECT_EQ(m.method(), method_bits);
            EXPECT_EQ(m.message_class(), cls);
            EXPECT_TRUE(m.is(method, cls));
        }
    }
}

TEST(MessageWriterHeader, TwelveBitMethod) {
    std::array<std::byte, 20> buffer{};
    MessageWriter w(buffer, std::uint16_t{0xFFF}, MessageClass::error_response, txid);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(to_hex(w.finish()).substr(0, 8), "3fff0000");
}

TEST(MessageWriter, LengthIsCurrentAfterEveryAttribute) {
    std::array<std::byte, 256> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
    const auto check = [&](std::size_t expected_size) {
        ASSERT_TRUE(w.ok());
        EXPECT_EQ(w.size(), expected_size);
        EXPECT_EQ(load_be16(buffer.data() + 2), expected_size - 20);
        Message m;
        EXPECT_EQ(Message::parse(std::span(buffer).first(w.size()), m), ParseError::ok);
    };
    w.add_text(attr::software, "a");
    check(28);
    w.add_u32(attr::priority, 1);
    check(36);
    w.add_text(attr::username, "12345");
    check(48);
    w.add_message_integrity(text_bytes("k"));
    check(72);
    w.add_fingerprint();
    check(80);
}

// ---------------------------------------------------------------------------------------------
// Golden messages.

TEST(MessageWriterGolden, Rfc5769LongTermRequestByteForByte) {
    // RFC 5769 §2.4 pads with zeros, as the writer does, so the writer reproduces it exactly.
    std::array<std::byte, 256> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::request,
                    std::span<const std::byte, 12>(bytes_of(rfc5769::sample_long_term_request)
                                                       .subspan(8, 12)));
    w.add_text(attr::username, rfc5769::long_term_username);
    w.add_text(attr::nonce, rfc5769::long_term_nonce);
    w.add_text(attr::realm, rfc5769::long_term_realm);
    w.add_message_integrity(bytes_of(rfc5769::long_term_key));
    ASSERT_TRUE(w.ok()) << to_string(w.error());
    EXPECT_EQ(to_hex(w.finish()), to_hex(bytes_of(rfc5769::sample_long_term_request)));
}

TEST(MessageWriterGolden, Rfc5769Ipv4ResponseWithZeroPadding) {
    // RFC 5769 §2.2 with its one padding byte (0x20) zeroed, MESSAGE-INTEGRITY and FINGERPRINT
    // recomputed. Regenerate with:
    //   python3 -c 'import hmac,hashlib,zlib,struct; v=bytearray.fromhex("<§2.2 hex>");
    //   v[35]=0; h=bytearray(v[:48]); h[2:4]=struct.pack(">H",52);
    //   v[52:72]=hmac.new(b"VOkJxbRl1RmTxUk/WvJxBt",bytes(h),hashlib.sha1).digest();
    //   v[76:80]=struct.pack(">I",(zlib.crc32(bytes(v[:72]))^0x5354554e)&0xffffffff);
    //   print(v.hex())'
    const auto expected = hex(
        "0101003c2112a442b7e7a701bc34d686fa87dfae"
        "8022000b" "7465737420766563746f7200"
        "00200008" "0001a147e112a643"
        "00080014" "5d6b58bead94e07eef0dfc1282a2bd0843141028"
        "80280004" "25167a15");
    std::array<std::byte, 256> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::success_response, txid);
    w.add_text(attr::software, rfc5769::sample_response_software);
    w.add_xor_address(attr::xor_mapped_address,
                      Address::v4(rfc5769::sample_ipv4_mapped_address, rfc5769::sample_mapped_port));
    w.add_message_integrity(text_bytes(rfc5769::short_term_password));
    w.add_fingerprint();
    ASSERT_TRUE(w.ok()) << to_string(w.error());
    EXPECT_EQ(to_hex(w.finish()), to_hex(expected));
}

// ---------------------------------------------------------------------------------------------
// Errors: which, and sticky.

TEST(MessageWriterError, BufferShorterThanHeader) {
    std::array<std::byte, 19> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
    EXPECT_EQ(w.error(), WriteError::buffer_too_small);
    EXPECT_FALSE(w.ok());
    EXPECT_TRUE(w.finish().empty());
    w.add_u32(attr::priority, 1);  // must not write past the buffer
    EXPECT_EQ(w.error(), WriteError::buffer_too_small);
    EXPECT_TRUE(w.finish().empty());
}

TEST(MessageWriterError, AttributeThatDoesNotFit) {
    std::array<std::byte, 27> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
    ASSERT_TRUE(w.ok());
    w.add_u32(attr::priority, 1);  // 8 bytes, 7 left
    EXPECT_EQ(w.error(), WriteError::buffer_too_small);
    EXPECT_EQ(w.size(), 20u);
    EXPECT_TRUE(w.finish().empty());
}

TEST(MessageWriterError, PaddingMustFitToo) {
    std::array<std::byte, 28> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
    w.add_text(attr::software, "abcde");  // 4 + 5 + 3 padding = 12, 8 left
    EXPECT_EQ(w.error(), WriteError::buffer_too_small);
}

TEST(MessageWriterError, ExactFitIsFine) {
    std::array<std::byte, 28> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
    w.add_u32(attr::priority, 1);
    EXPECT_TRUE(w.ok());
    EXPECT_EQ(w.finish().size(), 28u);
}

TEST(MessageWriterError, IntegrityThatDoesNotFit) {
    std::array<std::byte, 40> buffer{};  // MESSAGE-INTEGRITY needs 24, 20 left
    MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
    w.add_message_integrity(text_bytes("key"));
    EXPECT_EQ(w.error(), WriteError::buffer_too_small);
    std::array<std::byte, 27> small{};
    MessageWriter f(small, Method::binding, MessageClass::request, txid);
    f.add_fingerprint();
    EXPECT_EQ(f.error(), WriteError::buffer_too_small);
}

TEST(MessageWriterError, NothingAfterFingerprint) {
    std::array<std::byte, 256> buffer{};
    {
        MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
        w.add_fingerprint();
        ASSERT_TRUE(w.ok());
        w.add_text(attr::software, "late");
        EXPECT_EQ(w.error(), WriteError::after_fingerprint);
        EXPECT_TRUE(w.finish().empty());
    }
    {
        MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
        w.add_fingerprint();
        w.add_fingerprint();
        EXPECT_EQ(w.error(), WriteError::after_fingerprint);
    }
    {
        MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
        w.add_fingerprint();
        w.add_message_integrity(text_bytes("key"));
        EXPECT_EQ(w.error(), WriteError::after_fingerprint);
    }
}

TEST(MessageWriterError, ValueTooLong) {
    std::vector<std::byte> buffer(70000);
    {
        MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
        w.add_text(attr::username, std::string(600, 'u'));
        EXPECT_EQ(w.error(), WriteError::value_too_long);
    }
    {
        MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
        w.add_text(attr::username, std::string(509, 'u'));
        EXPECT_EQ(w.error(), WriteError::value_too_long);
    }
    {
        MessageWriter w(buffer, Method::binding, MessageClass::request, txid);
        w.add_text(attr::realm, std::string(510, 'r'));
        EXPECT_EQ(w.error(), WriteError::value_too_long);
    }
    {
        MessageWriter w(buffer, Method::send, MessageClass::indication, txid);
        w.add(attr::data, std::vector<std::byte>(65536));
        EXPECT_EQ(w.error(), WriteError::value_too_long);
    }
}

TEST(MessageWriterError, BadValues) {
    std::array<std::byte, 256> buffer{};
    const auto expect_bad = [&](auto add, const char* what) {
        MessageWriter w(buffer, Method::binding, MessageClass::error_response, txid);
        add(w);
        EXPECT_EQ(w.error(), WriteError::bad_value) << what;
        EXPECT_TRUE(w.finish().empty()) << what;
    };
    expect_bad([](MessageWriter& w) { w.add_error_code(299); }, "error code 299");
    expect_bad([](MessageWriter& w) { w.add_error_code(700); }, "error code 700");
    expect_bad([](MessageWriter& w) { w.add_error_code(200, "OK"); }, "error code 200");
    expect_bad([](MessageWriter& w) { w.add_message_integrity_sha256(text_bytes("k"), 15); },
               "MI-SHA256 of 15");
    expect_bad([](MessageWriter& w) { w.add_message_integrity_sha256(text_bytes("k"), 12); },
               "MI-SHA256 of 12");
    expect_bad([](MessageWriter& w) { w.add_message_integrity_sha256(text_bytes("k"), 36); },
               "MI-SHA256 of 36");
    expect_bad([](MessageWriter& w) { w.add_message_integrity_sha256(text_bytes("k"), 0); },
               "MI-SHA256 of 0");
    expect_bad(
        [](MessageWriter& w) {
            Address a = Address::v4(0x7F000001, 1);
            a.family = static_cast<AddressFamily>(3);
            w.add_xor_address(attr::xor_mapped_address, a);
        },
        "address family 3");
    expect_bad(
        [](MessageWriter& w) { w.add_address_error_code(AddressFamily::ipv4, 299, "x"); },
        "address error code 299");
}

TEST(MessageWriterError, ErrorsAreSticky) {
    std::array<std::byte, 64> buffer{};
    MessageWriter w(buffer, Method::binding, MessageClass::error_response, txid);
    w.add_text(attr::software, "ok");
    ASSERT_TRUE(w.ok());
    const std::size_t size = w.size();
    w.add_error_code(299);
    EXPECT_EQ(w.error(), WriteError::bad_value);
    w.add_u32(attr::priority, 1);  // would fit
    EXPECT_EQ(w.error(), WriteError::bad_value);
    EXPECT_EQ(w.size(), size);
    w.add_text(attr::software, std::string(100, 'x'));  // would not fit: the first error stays
    EXPECT_EQ(w.error(), WriteError::bad_value);
    w.add_fingerprint();
    EXPECT_EQ(w.error(), WriteError::bad_value);
    EXPECT_EQ(w.size(), size);
    EXPECT_TRUE(w.finish().empty());
    // The buffer still holds the valid message written before the error.
    Message m;
    EXPECT_EQ(Message::parse(std::span(buffer).first(size), m), ParseError::ok);
}

// ---------------------------------------------------------------------------------------------
// begin_error_response (RFC 8489 §6.3.1.1, §6.3.4).

TEST(BeginErrorResponse, UnknownAttributeListsOnlyComprehensionRequired) {
    const auto request = RawMessage(0x0001)
                             .attribute(attr::username, "alice")
                             .attribute(0x7FFF, "unknown, comprehension-required")
                             .attribute(0xFFFE, "unknown, optional")
                             .bytes();
    Message req;
    ASSERT_EQ(Message::parse(request, req), ParseError::ok);
    std::array<std::uint16_t, 8> unknown{};
    const std::size_t count = req.unknown_comprehension_required(unknown);
    ASSERT_EQ(count, 1u);
    EXPECT_EQ(unknown[0], 0x7FFF);

    std::array<std::byte, 256> buffer{};
    MessageWriter w = begin_error_response(buffer, req, error_code::unknown_attribute);
    w.add_unknown_attributes(std::span(unknown).first(count));
    w.add_fingerprint();
    ASSERT_TRUE(w.ok()) << to_string(w.error());

    Message resp;
    ASSERT_EQ(Message::parse(w.finish(), resp), ParseError::ok);
    EXPECT_EQ(resp.type(), 0x0111);
    EXPECT_TRUE(resp.is(Method::binding, MessageClass::error_response));
    EXPECT_EQ(to_hex(resp.transaction_id()), to_hex(req.transaction_id()));
    const auto ec = resp.find(attr::error_code);
    ASSERT_TRUE(ec);
    ErrorCodeValue error;
    ASSERT_EQ(decode_error_code(*ec, error), ParseError::ok);
    EXPECT_EQ(error.code, 420);
    EXPECT_EQ(error.reason, "Unknown Attribute");
    const auto ua = resp.find(attr::unknown_attributes);
    ASSERT_TRUE(ua);
    std::array<std::uint16_t, 8> listed{};
    std::size_t listed_count = 0;
    ASSERT_EQ(decode_unknown_attributes(*ua, listed, listed_count), ParseError::ok);
    ASSERT_EQ(listed_count, 1u);
    EXPECT_EQ(listed[0], 0x7FFF);
    EXPECT_EQ(verify_fingerprint(resp), IntegrityResult::ok);
    // ERROR-CODE comes first, right after the header.
    EXPECT_EQ(ec->offset, 20u);
}

TEST(BeginErrorResponse, KeepsTheMethod) {
    const auto request = RawMessage(0x0003).attribute(attr::requested_transport, hex("11000000")).bytes();
    Message req;
    ASSERT_EQ(Message::parse(request, req), ParseError::ok);
    std::array<std::byte, 128> buffer{};
    MessageWriter w = begin_error_response(buffer, req, error_code::allocation_quota_reached);
    ASSERT_TRUE(w.ok());
    Message resp;
    ASSERT_EQ(Message::parse(w.finish(), resp), ParseError::ok);
    EXPECT_EQ(resp.type(), 0x0113);
    ErrorCodeValue error;
    ASSERT_EQ(decode_error_code(*resp.find(attr::error_code), error), ParseError::ok);
    EXPECT_EQ(error.code, 486);
    EXPECT_EQ(error.reason, "Allocation Quota Reached");
}

TEST(BeginErrorResponse, InPlaceOverTheRequest) {
    // The buffer may be the request's own: the response keeps its transaction ID.
    auto request = RawMessage(0x0001).attribute(attr::software, std::string(40, 's')).bytes();
    const std::string original_txid = to_hex(std::span(request).subspan(8, 12));
    Message req;
    ASSERT_EQ(Message::parse(request, req), ParseError::ok);
    MessageWriter w = begin_error_response(request, req, error_code::bad_request);
    ASSERT_TRUE(w.ok());
    Message resp;
    ASSERT_EQ(Message::parse(w.finish(), resp), ParseError::ok);
    EXPECT_EQ(resp.type(), 0x0111);
    EXPECT_EQ(to_hex(resp.transaction_id()), original_txid);
    ErrorCodeValue error;
    ASSERT_EQ(decode_error_code(*resp.find(attr::error_code), error), ParseError::ok);
    EXPECT_EQ(error.code, 400);
    EXPECT_EQ(error.reason, "Bad Request");
}

TEST(BeginErrorResponse, BadCodeIsBadValue) {
    const auto request = RawMessage(0x0001).bytes();
    Message req;
    ASSERT_EQ(Message::parse(request, req), ParseError::ok);
    std::array<std::byte, 128> buffer{};
    MessageWriter w = begin_error_response(buffer, req, 200);
    EXPECT_EQ(w.error(), WriteError::bad_value);
    EXPECT_TRUE(w.finish().empty());
}

}  // namespace
}  // namespace stun
