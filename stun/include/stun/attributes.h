// Typed decoders for attribute values (RFC 8489 §14, RFC 8656 §18, RFC 5780 §7, RFC 8445 §16).
//
// Each decoder checks the value's length before it reads and returns a view into the message
// where the value is bytes or text. None allocates or throws. Each returns ParseError::ok or:
//   bad_attribute_length  the value size is wrong for the type
//   bad_address_family    (address attributes) the family is not 0x01 or 0x02
//   value_too_long        (text attributes) the value exceeds the RFC's limit
//   bad_error_code        (ERROR-CODE, ADDRESS-ERROR-CODE) class or number out of range
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "stun/address.h"
#include "stun/constants.h"
#include "stun/errors.h"
#include "stun/message.h"

namespace stun {

/// MAPPED-ADDRESS, ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS (plain encoding).
[[nodiscard]] ParseError decode_address(const Attribute& a, Address& out) noexcept;

/// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS (RFC 8489 §14.2): port XOR the
/// cookie's high 16 bits, IPv4 XOR the cookie, IPv6 XOR cookie || transaction ID.
[[nodiscard]] ParseError decode_xor_address(const Attribute& a,
                                            std::span<const std::byte, transaction_id_size> txid,
                                            Address& out) noexcept;

/// The byte limit of a text attribute as a receiver enforces it: USERNAME, REALM, NONCE and
/// SOFTWARE 763 (RFC 8489 §14.3: "MUST be able to parse ... 763 or fewer octets"; its senders
/// stay under 509), ALTERNATE-DOMAIN 255; 65535 for types without one.
[[nodiscard]] std::size_t text_limit(std::uint16_t type) noexcept;

/// The byte limit a sender keeps to (MessageWriter::add_text): USERNAME 508 (RFC 8489 §14.3:
/// "fewer than 509 bytes"), REALM, NONCE, SOFTWARE 509 (§14.9, §14.10, §14.14: < 128
/// characters, "as long as 509 bytes when encoding them"), ALTERNATE-DOMAIN 255; 65535 else.
[[nodiscard]] std::size_t text_send_limit(std::uint16_t type) noexcept;

/// USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN: the UTF-8 text, checked against
/// text_limit(). The codec does not validate UTF-8; the credential check does (SASLprep).
[[nodiscard]] ParseError decode_text(const Attribute& a, std::string_view& out) noexcept;

/// LIFETIME, PRIORITY, CHANGE-REQUEST: a 32-bit value.
[[nodiscard]] ParseError decode_u32(const Attribute& a, std::uint32_t& out) noexcept;

/// ICE-CONTROLLED, ICE-CONTROLLING (tie-breaker), RESERVATION-TOKEN: a 64-bit value.
[[nodiscard]] ParseError decode_u64(const Attribute& a, std::uint64_t& out) noexcept;

/// USE-CANDIDATE, DONT-FRAGMENT: presence only; the value must be empty.
[[nodiscard]] ParseError decode_flag(const Attribute& a) noexcept;

/// ERROR-CODE (RFC 8489 §14.8): code = class * 100 + number, class 3..6, number 0..99.
struct ErrorCodeValue {
    std::uint16_t code = 0;
    std::string_view reason;
};
[[nodiscard]] ParseError decode_error_code(const Attribute& a, ErrorCodeValue& out) noexcept;

/// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9): a list of 16-bit types. Writes up to out.size() and
/// sets `count` to the number in the attribute.
[[nodiscard]] ParseError decode_unknown_attributes(const Attribute& a,
                                                   std::span<std::uint16_t> out,
                                                   std::size_t& count) noexcept;

/// CHANNEL-NUMBER (RFC 8656 §18.1): 16-bit number + 16 bits RFFU. The range is not checked
/// here: a server answers an out-of-range number with 400 (RFC 8656 §11.2).
[[nodiscard]] ParseError decode_channel_number(const Attribute& a, std::uint16_t& out) noexcept;

/// REQUESTED-TRANSPORT (RFC 8656 §18.7): protocol byte + 24 bits RFFU.
[[nodiscard]] ParseError decode_requested_transport(const Attribute& a,
                                                    std::uint8_t& protocol) noexcept;

/// REQUESTED-ADDRESS-FAMILY, ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.8, §18.11).
[[nodiscard]] ParseError decode_address_family(const Attribute& a, AddressFamily& out) noexcept;

/// EVEN-PORT (RFC 8656 §18.9): the R bit asks to reserve the next port too.
[[nodiscard]] ParseError decode_even_port(const Attribute& a, bool& reserve_next) noexcept;

/// RESPONSE-PORT (RFC 5780 §7.5): 16-bit port + 16 bits padding.
[[nodiscard]] ParseError decode_response_port(const Attribute& a, std::uint16_t& port) noexcept;

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
struct AddressErrorCodeValue {
    AddressFamily family = AddressFamily::ipv4;
    std::uint16_t code = 0;
    std::string_view reason;
};
[[nodiscard]] ParseError decode_address_error_code(const Attribute& a,
                                                   AddressErrorCodeValue& out) noexcept;

/// ICMP (RFC 8656 §18.13): ICMP type and code, and 32 bits of error data.
struct IcmpValue {
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::uint32_t error_data = 0;
};
[[nodiscard]] ParseError decode_icmp(const Attribute& a, IcmpValue& out) noexcept;

/// PASSWORD-ALGORITHM (RFC 8489 §14.12) and one entry of PASSWORD-ALGORITHMS (§14.11).
struct PasswordAlgorithmValue {
    std::uint16_t algorithm = 0;
    std::span<const std::byte> parameters;
};
[[nodiscard]] ParseError decode_password_algorithm(const Attribute& a,
                                                   PasswordAlgorithmValue& out) noexcept;
/// Writes up to out.size() entries and sets `count` to the number in the attribute.
[[nodiscard]] ParseError decode_password_algorithms(const Attribute& a,
                                                    std::span<PasswordAlgorithmValue> out,
                                                    std::size_t& count) noexcept;

/// USERHASH (RFC 8489 §14.4): 32 bytes.
[[nodiscard]] ParseError decode_userhash(const Attribute& a,
                                         std::span<const std::byte, 32>& out) noexcept;

/// RFC 8489 §9.2: a NONCE that starts with the nonce cookie "obMatJos2" carries 24 security
/// feature bits in the next 4 characters (base64). Returns them, or nullopt when the nonce
/// has no cookie or the 4 characters are not base64.
[[nodiscard]] std::optional<std::uint32_t> nonce_security_features(std::string_view nonce) noexcept;

/// RFC 8489 §9.2: the nonce cookie and its feature bits; the 13 characters a server puts in
/// front of its opaque nonce when it supports a feature.
inline constexpr std::string_view nonce_cookie = "obMatJos2";
inline constexpr std::uint32_t feature_password_algorithms = 1u << 23;  ///< bit 0 (MSB first)
inline constexpr std::uint32_t feature_username_anonymity = 1u << 22;   ///< bit 1
/// Writes the 13-character prefix into `out`.
void write_nonce_cookie(std::uint32_t features, std::span<char, 13> out) noexcept;

}  // namespace stun
