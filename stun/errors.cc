#include "stun/errors.h"

namespace stun {

std::string_view to_string(ParseError error) noexcept {
    switch (error) {
    case ParseError::ok: return "ok";
    case ParseError::truncated_header: return "truncated_header";
    case ParseError::not_stun: return "not_stun";
    case ParseError::bad_magic_cookie: return "bad_magic_cookie";
    case ParseError::length_not_multiple_of_4: return "length_not_multiple_of_4";
    case ParseError::length_mismatch: return "length_mismatch";
    case ParseError::attribute_overrun: return "attribute_overrun";
    case ParseError::fingerprint_not_last: return "fingerprint_not_last";
    case ParseError::bad_integrity_length: return "bad_integrity_length";
    case ParseError::bad_fingerprint_length: return "bad_fingerprint_length";
    case ParseError::bad_attribute_length: return "bad_attribute_length";
    case ParseError::bad_address_family: return "bad_address_family";
    case ParseError::value_too_long: return "value_too_long";
    case ParseError::bad_error_code: return "bad_error_code";
    case ParseError::attribute_missing: return "attribute_missing";
    case ParseError::channel_data_truncated: return "channel_data_truncated";
    case ParseError::bad_channel_number: return "bad_channel_number";
    case ParseError::channel_data_overrun: return "channel_data_overrun";
    }
    return "unknown";
}

std::string_view to_string(WriteError error) noexcept {
    switch (error) {
    case WriteError::ok: return "ok";
    case WriteError::buffer_too_small: return "buffer_too_small";
    case WriteError::value_too_long: return "value_too_long";
    case WriteError::bad_value: return "bad_value";
    case WriteError::after_fingerprint: return "after_fingerprint";
    }
    return "unknown";
}

std::string_view reason_phrase(std::uint16_t code) noexcept {
    switch (code) {
    // RFC 8489 §14.8
    case error_code::try_alternate: return "Try Alternate";
    case error_code::bad_request: return "Bad Request";
    case error_code::unauthenticated: return "Unauthenticated";
    case error_code::unknown_attribute: return "Unknown Attribute";
    case error_code::stale_nonce: return "Stale Nonce";
    case error_code::server_error: return "Server Error";
    // RFC 8656 §18.11 (ERROR-CODE values registered by TURN)
    case error_code::forbidden: return "Forbidden";
    case error_code::allocation_mismatch: return "Allocation Mismatch";
    case error_code::address_family_not_supported: return "Address Family not Supported";
    case error_code::wrong_credentials: return "Wrong Credentials";
    case error_code::unsupported_transport_protocol: return "Unsupported Transport Protocol";
    case error_code::peer_address_family_mismatch: return "Peer Address Family Mismatch";
    case error_code::allocation_quota_reached: return "Allocation Quota Reached";
    case error_code::insufficient_capacity: return "Insufficient Capacity";
    default: return "";
    }
}

}  // namespace stun
