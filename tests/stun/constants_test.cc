// Tests for stun/constants.cc and the constexpr message-type helpers of stun/constants.h.
#include "stun/constants.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string_view>

namespace stun {
namespace {

constexpr std::array all_methods = {
    Method::binding, Method::allocate,          Method::refresh,      Method::send,
    Method::data,    Method::create_permission, Method::channel_bind,
};
constexpr std::array all_classes = {
    MessageClass::request,
    MessageClass::indication,
    MessageClass::success_response,
    MessageClass::error_response,
};

TEST(MessageType, EveryMethodAndClassRoundTrips) {
    for (Method m : all_methods) {
        for (MessageClass c : all_classes) {
            SCOPED_TRACE(testing::Message() << "method 0x" << std::hex
                                            << static_cast<unsigned>(m) << " class "
                                            << static_cast<unsigned>(c));
            const std::uint16_t type = message_type(m, c);
            // RFC 8489 §6: the two most significant bits of a STUN message are zero.
            EXPECT_EQ(type & 0xC000, 0);
            EXPECT_EQ(method_of(type), static_cast<std::uint16_t>(m));
            EXPECT_EQ(class_of(type), c);
        }
    }
}

TEST(MessageType, EveryTwelveBitMethodRoundTrips) {
    for (std::uint16_t m = 0; m < 0x1000; ++m) {
        for (MessageClass c : all_classes) {
            const std::uint16_t type = message_type(m, c);
            ASSERT_EQ(method_of(type), m) << "method " << m;
            ASSERT_EQ(class_of(type), c) << "method " << m;
        }
    }
}

TEST(MessageType, KnownValuesFromRfc8489Section5) {
    // RFC 8489 §5 and §6: "a Binding request has class=0b00 (request) and method=0b000000000001
    // ... 0x0001"; success response 0x0101, error response 0x0111. RFC 8656 §17 for TURN.
    EXPECT_EQ(message_type(Method::binding, MessageClass::request), 0x0001);
    EXPECT_EQ(message_type(Method::binding, MessageClass::indication), 0x0011);
    EXPECT_EQ(message_type(Method::binding, MessageClass::success_response), 0x0101);
    EXPECT_EQ(message_type(Method::binding, MessageClass::error_response), 0x0111);
    EXPECT_EQ(message_type(Method::allocate, MessageClass::request), 0x0003);
    EXPECT_EQ(message_type(Method::allocate, MessageClass::success_response), 0x0103);
    EXPECT_EQ(message_type(Method::allocate, MessageClass::error_response), 0x0113);
    EXPECT_EQ(message_type(Method::refresh, MessageClass::request), 0x0004);
    EXPECT_EQ(message_type(Method::create_permission, MessageClass::request), 0x0008);
    EXPECT_EQ(message_type(Method::channel_bind, MessageClass::request), 0x0009);
    EXPECT_EQ(message_type(Method::channel_bind, MessageClass::success_response), 0x0109);
    EXPECT_EQ(message_type(Method::send, MessageClass::indication), 0x0016);
    EXPECT_EQ(message_type(Method::data, MessageClass::indication), 0x0017);
    // A method with bits in every group: M11..M7 C1 M6..M4 C0 M3..M0.
    EXPECT_EQ(message_type(std::uint16_t{0xFFF}, MessageClass::request), 0x3EEF);
    EXPECT_EQ(message_type(std::uint16_t{0xFFF}, MessageClass::error_response), 0x3FFF);
    EXPECT_EQ(method_of(0x3FFF), 0xFFF);
    EXPECT_EQ(class_of(0x0111), MessageClass::error_response);
    EXPECT_EQ(class_of(0x0016), MessageClass::indication);
}

TEST(Constants, WireValues) {
    EXPECT_EQ(magic_cookie, 0x2112A442u);
    EXPECT_EQ(fingerprint_xor, 0x5354554Eu);
    EXPECT_EQ(header_size, 20u);
    EXPECT_EQ(transaction_id_size, 12u);
}

TEST(Constants, ComprehensionRequiredRange) {
    EXPECT_TRUE(is_comprehension_required(0x0000));
    EXPECT_TRUE(is_comprehension_required(0x7FFF));
    EXPECT_FALSE(is_comprehension_required(0x8000));
    EXPECT_FALSE(is_comprehension_required(0xFFFF));
}

struct NamedAttribute {
    std::uint16_t type;
    std::string_view name;
};

// Every constant of namespace attr with its name as the RFCs spell it.
constexpr NamedAttribute named_attributes[] = {
    {attr::mapped_address, "MAPPED-ADDRESS"},
    {attr::username, "USERNAME"},
    {attr::message_integrity, "MESSAGE-INTEGRITY"},
    {attr::error_code, "ERROR-CODE"},
    {attr::unknown_attributes, "UNKNOWN-ATTRIBUTES"},
    {attr::realm, "REALM"},
    {attr::nonce, "NONCE"},
    {attr::message_integrity_sha256, "MESSAGE-INTEGRITY-SHA256"},
    {attr::password_algorithm, "PASSWORD-ALGORITHM"},
    {attr::userhash, "USERHASH"},
    {attr::xor_mapped_address, "XOR-MAPPED-ADDRESS"},
    {attr::password_algorithms, "PASSWORD-ALGORITHMS"},
    {attr::alternate_domain, "ALTERNATE-DOMAIN"},
    {attr::software, "SOFTWARE"},
    {attr::alternate_server, "ALTERNATE-SERVER"},
    {attr::fingerprint, "FINGERPRINT"},
    {attr::channel_number, "CHANNEL-NUMBER"},
    {attr::lifetime, "LIFETIME"},
    {attr::xor_peer_address, "XOR-PEER-ADDRESS"},
    {attr::data, "DATA"},
    {attr::xor_relayed_address, "XOR-RELAYED-ADDRESS"},
    {attr::requested_address_family, "REQUESTED-ADDRESS-FAMILY"},
    {attr::even_port, "EVEN-PORT"},
    {attr::requested_transport, "REQUESTED-TRANSPORT"},
    {attr::dont_fragment, "DONT-FRAGMENT"},
    {attr::reservation_token, "RESERVATION-TOKEN"},
    {attr::additional_address_family, "ADDITIONAL-ADDRESS-FAMILY"},
    {attr::address_error_code, "ADDRESS-ERROR-CODE"},
    {attr::icmp, "ICMP"},
    {attr::change_request, "CHANGE-REQUEST"},
    {attr::padding, "PADDING"},
    {attr::response_port, "RESPONSE-PORT"},
    {attr::response_origin, "RESPONSE-ORIGIN"},
    {attr::other_address, "OTHER-ADDRESS"},
    {attr::priority, "PRIORITY"},
    {attr::use_candidate, "USE-CANDIDATE"},
    {attr::ice_controlled, "ICE-CONTROLLED"},
    {attr::ice_controlling, "ICE-CONTROLLING"},
};

TEST(AttributeName, EveryKnownAttributeHasItsRfcName) {
    for (const auto& a : named_attributes) {
        SCOPED_TRACE(a.name);
        EXPECT_TRUE(is_known_attribute(a.type));
        EXPECT_EQ(attribute_name(a.type), a.name);
    }
}

TEST(AttributeName, UnknownTypesAreUnknownAndUnnamed) {
    std::size_t known = 0;
    for (std::uint32_t t = 0; t <= 0xFFFF; ++t) {
        const auto type = static_cast<std::uint16_t>(t);
        if (is_known_attribute(type)) {
            ++known;
            EXPECT_FALSE(attribute_name(type).empty()) << std::hex << t;
        } else {
            EXPECT_TRUE(attribute_name(type).empty()) << std::hex << t;
        }
    }
    EXPECT_EQ(known, std::size(named_attributes));
    // RESPONSE-ADDRESS (0x0002) and friends were removed by RFC 5389; the codec does not know
    // them, so a request carrying one gets a 420.
    EXPECT_FALSE(is_known_attribute(0x0002));
    EXPECT_FALSE(is_known_attribute(0x7FFF));
    EXPECT_FALSE(is_known_attribute(0xFFFE));
}

TEST(MethodName, EveryMethodHasItsRfcName) {
    EXPECT_EQ(method_name(0x001), "Binding");
    EXPECT_EQ(method_name(0x003), "Allocate");
    EXPECT_EQ(method_name(0x004), "Refresh");
    EXPECT_EQ(method_name(0x006), "Send");
    EXPECT_EQ(method_name(0x007), "Data");
    EXPECT_EQ(method_name(0x008), "CreatePermission");
    EXPECT_EQ(method_name(0x009), "ChannelBind");
    EXPECT_EQ(method_name(0x000), "");
    EXPECT_EQ(method_name(0x002), "");  // RFC 5389 removed SharedSecret
    EXPECT_EQ(method_name(0x00A), "");
    EXPECT_EQ(method_name(0xFFF), "");
}

}  // namespace
}  // namespace stun
