// The codec's error enums and the STUN/TURN error codes with their RFC reason phrases.
#pragma once

#include <cstdint>
#include <string_view>

namespace stun {

/// Why a datagram, an attribute or a ChannelData frame was refused. One enum for the whole
/// codec so that a server can count drops by this value; to_string() gives the counter name.
enum class ParseError : std::uint8_t {
    ok = 0,
    // Message header, RFC 8489 §5 and §6.3.
    truncated_header,          ///< fewer than 20 bytes
    not_stun,                  ///< the two most significant bits are not zero
    bad_magic_cookie,          ///< bytes 4..7 are not 0x2112A442
    length_not_multiple_of_4,  ///< the header's length field is not a multiple of 4
    length_mismatch,           ///< 20 + length field differs from the datagram size
    // Attribute walk, RFC 8489 §14.
    attribute_overrun,         ///< an attribute's (padded) value runs past the message end
    fingerprint_not_last,      ///< an attribute follows FINGERPRINT (RFC 8489 §14.7)
    bad_integrity_length,      ///< MESSAGE-INTEGRITY not 20 bytes, or -SHA256 not 16..32 by 4
    bad_fingerprint_length,    ///< FINGERPRINT not 4 bytes
    // Attribute values.
    bad_attribute_length,      ///< value size wrong for the attribute's type
    bad_address_family,        ///< address family neither 0x01 (IPv4) nor 0x02 (IPv6)
    value_too_long,            ///< a text attribute over its RFC limit (e.g. USERNAME 513)
    bad_error_code,            ///< ERROR-CODE class not 3..6 or number not 0..99
    attribute_missing,         ///< a typed getter found no such attribute
    // ChannelData, RFC 8656 §12.4.
    channel_data_truncated,    ///< fewer than 4 bytes
    bad_channel_number,        ///< channel number outside 0x4000-0x7FFF
    channel_data_overrun,      ///< the length field runs past the datagram
};

/// Snake-case name of the error ("bad_magic_cookie"), usable as a counter label.
std::string_view to_string(ParseError error) noexcept;

/// Why the writer could not add an attribute. Sticky: the first error stays.
enum class WriteError : std::uint8_t {
    ok = 0,
    buffer_too_small,    ///< the caller's buffer cannot hold the attribute
    value_too_long,      ///< the value exceeds 65535 bytes or the attribute's RFC limit
    bad_value,           ///< e.g. an error code outside 300..699 or an unknown address family
    after_fingerprint,   ///< nothing may follow FINGERPRINT
};

std::string_view to_string(WriteError error) noexcept;

/// STUN/TURN error codes a server sends (RFC 8489 §14.8, RFC 8656 §18.11).
namespace error_code {
inline constexpr std::uint16_t try_alternate = 300;
inline constexpr std::uint16_t bad_request = 400;
inline constexpr std::uint16_t unauthenticated = 401;
inline constexpr std::uint16_t forbidden = 403;
inline constexpr std::uint16_t unknown_attribute = 420;
inline constexpr std::uint16_t allocation_mismatch = 437;
inline constexpr std::uint16_t stale_nonce = 438;
inline constexpr std::uint16_t address_family_not_supported = 440;
inline constexpr std::uint16_t wrong_credentials = 441;
inline constexpr std::uint16_t unsupported_transport_protocol = 442;
inline constexpr std::uint16_t peer_address_family_mismatch = 443;
inline constexpr std::uint16_t allocation_quota_reached = 486;
inline constexpr std::uint16_t server_error = 500;
inline constexpr std::uint16_t insufficient_capacity = 508;
}  // namespace error_code

/// The RFC's reason phrase for a code ("Stale Nonce"), or "" for a code the RFCs do not name.
std::string_view reason_phrase(std::uint16_t code) noexcept;

}  // namespace stun
