#include "stun/attributes.h"

#include <openssl/evp.h>

#include <cstring>

#include "stun/bytes.h"

namespace stun {
namespace {

// RFC 8489 §14.1: Reserved (8 bits), Family (8 bits), Port (16 bits), Address (32 or 128 bits).
ParseError decode_address_fields(const Attribute& a, Address& out) noexcept {
    if (a.value.size() < 4) return ParseError::bad_attribute_length;
    const auto family = std::to_integer<std::uint8_t>(a.value[1]);
    std::size_t ip_size = 0;
    if (family == static_cast<std::uint8_t>(AddressFamily::ipv4)) {
        ip_size = 4;
    } else if (family == static_cast<std::uint8_t>(AddressFamily::ipv6)) {
        ip_size = 16;
    } else {
        return ParseError::bad_address_family;
    }
    if (a.value.size() != 4 + ip_size) return ParseError::bad_attribute_length;
    Address address;
    address.family = static_cast<AddressFamily>(family);
    address.port = load_be16(a.value.data() + 2);
    std::memcpy(address.ip.data(), a.value.data() + 4, ip_size);
    out = address;
    return ParseError::ok;
}

// Class (3 bits) and number (8 bits) at value[2..3], reason phrase after (RFC 8489 §14.8).
ParseError decode_code_and_reason(std::span<const std::byte> value, std::uint16_t& code,
                                  std::string_view& reason) noexcept {
    if (value.size() < 4) return ParseError::bad_attribute_length;
    const unsigned error_class = std::to_integer<unsigned>(value[2]) & 0x7;
    const unsigned number = std::to_integer<unsigned>(value[3]);
    // RFC 8489 §14.8: "the Class MUST be between 3 and 6 ... the Number ... between 0 and 99".
    if (error_class < 3 || error_class > 6 || number > 99) return ParseError::bad_error_code;
    // "The Reason Phrase ... MUST be ... fewer than 128 characters (which can be as long as
    // 509 bytes when encoding them or 763 bytes when decoding them)."
    if (value.size() - 4 > 763) return ParseError::value_too_long;
    code = static_cast<std::uint16_t>(error_class * 100 + number);
    reason = {reinterpret_cast<const char*>(value.data() + 4), value.size() - 4};
    return ParseError::ok;
}

}  // namespace

ParseError decode_address(const Attribute& a, Address& out) noexcept {
    return decode_address_fields(a, out);
}

ParseError decode_xor_address(const Attribute& a,
                              std::span<const std::byte, transaction_id_size> txid,
                              Address& out) noexcept {
    Address address;
    if (const ParseError e = decode_address_fields(a, address); e != ParseError::ok) return e;
    // RFC 8489 §14.2: X-Port is the port XOR the cookie's most significant 16 bits; X-Address
    // is the address XOR the cookie (IPv4) or XOR the cookie concatenated with the transaction
    // ID (IPv6).
    address.port ^= static_cast<std::uint16_t>(magic_cookie >> 16);
    std::byte mask[16];
    store_be32(mask, magic_cookie);
    std::memcpy(mask + 4, txid.data(), txid.size());
    for (std::size_t i = 0; i < address.ip_size(); ++i) address.ip[i] ^= mask[i];
    out = address;
    return ParseError::ok;
}

std::size_t text_limit(std::uint16_t type) noexcept {
    switch (type) {
    case attr::username:  // RFC 8489 §14.3, for compatibility with RFC 5389
    case attr::realm:
    case attr::nonce:
    case attr::software: return 763;  // RFC 8489 §14.9-§14.10, §14.14: < 128 characters
    case attr::alternate_domain: return 255;
    default: return 65535;
    }
}

std::size_t text_send_limit(std::uint16_t type) noexcept {
    switch (type) {
    case attr::username: return 508;
    case attr::realm:
    case attr::nonce:
    case attr::software: return 509;
    case attr::alternate_domain: return 255;
    default: return 65535;
    }
}

ParseError decode_text(const Attribute& a, std::string_view& out) noexcept {
    if (a.value.size() > text_limit(a.type)) return ParseError::value_too_long;
    out = {reinterpret_cast<const char*>(a.value.data()), a.value.size()};
    return ParseError::ok;
}

ParseError decode_u32(const Attribute& a, std::uint32_t& out) noexcept {
    if (a.value.size() != 4) return ParseError::bad_attribute_length;
    out = load_be32(a.value.data());
    return ParseError::ok;
}

ParseError decode_u64(const Attribute& a, std::uint64_t& out) noexcept {
    if (a.value.size() != 8) return ParseError::bad_attribute_length;
    out = load_be64(a.value.data());
    return ParseError::ok;
}

ParseError decode_flag(const Attribute& a) noexcept {
    return a.value.empty() ? ParseError::ok : ParseError::bad_attribute_length;
}

ParseError decode_error_code(const Attribute& a, ErrorCodeValue& out) noexcept {
    ErrorCodeValue v;
    if (const ParseError e = decode_code_and_reason(a.value, v.code, v.reason);
        e != ParseError::ok)
        return e;
    out = v;
    return ParseError::ok;
}

ParseError decode_unknown_attributes(const Attribute& a, std::span<std::uint16_t> out,
                                     std::size_t& count) noexcept {
    if ((a.value.size() & 1) != 0) return ParseError::bad_attribute_length;
    count = a.value.size() / 2;
    for (std::size_t i = 0; i < count && i < out.size(); ++i)
        out[i] = load_be16(a.value.data() + 2 * i);
    return ParseError::ok;
}

ParseError decode_channel_number(const Attribute& a, std::uint16_t& out) noexcept {
    if (a.value.size() != 4) return ParseError::bad_attribute_length;
    out = load_be16(a.value.data());
    return ParseError::ok;
}

ParseError decode_requested_transport(const Attribute& a, std::uint8_t& protocol) noexcept {
    if (a.value.size() != 4) return ParseError::bad_attribute_length;
    protocol = std::to_integer<std::uint8_t>(a.value[0]);
    return ParseError::ok;
}

ParseError decode_address_family(const Attribute& a, AddressFamily& out) noexcept {
    if (a.value.size() != 4) return ParseError::bad_attribute_length;
    const auto family = std::to_integer<std::uint8_t>(a.value[0]);
    if (family != 0x01 && family != 0x02) return ParseError::bad_address_family;
    out = static_cast<AddressFamily>(family);
    return ParseError::ok;
}

ParseError decode_even_port(const Attribute& a, bool& reserve_next) noexcept {
    // RFC 8656 §18.6: one byte, the R bit first.
    if (a.value.size() != 1) return ParseError::bad_attribute_length;
    reserve_next = (std::to_integer<unsigned>(a.value[0]) & 0x80) != 0;
    return ParseError::ok;
}

ParseError decode_response_port(const Attribute& a, std::uint16_t& port) noexcept {
    if (a.value.size() != 4) return ParseError::bad_attribute_length;
    port = load_be16(a.value.data());
    return ParseError::ok;
}

ParseError decode_address_error_code(const Attribute& a, AddressErrorCodeValue& out) noexcept {
    AddressErrorCodeValue v;
    if (const ParseError e = decode_code_and_reason(a.value, v.code, v.reason);
        e != ParseError::ok)
        return e;
    const auto family = std::to_integer<std::uint8_t>(a.value[0]);
    if (family != 0x01 && family != 0x02) return ParseError::bad_address_family;
    v.family = static_cast<AddressFamily>(family);
    out = v;
    return ParseError::ok;
}

ParseError decode_icmp(const Attribute& a, IcmpValue& out) noexcept {
    // RFC 8656 §18.13: Reserved (16 bits), ICMP Type (8), ICMP Code (8), Error Data (32).
    if (a.value.size() != 8) return ParseError::bad_attribute_length;
    out.type = std::to_integer<std::uint8_t>(a.value[2]);
    out.code = std::to_integer<std::uint8_t>(a.value[3]);
    out.error_data = load_be32(a.value.data() + 4);
    return ParseError::ok;
}

ParseError decode_password_algorithm(const Attribute& a, PasswordAlgorithmValue& out) noexcept {
    // RFC 8489 §14.12: Algorithm (16), Algorithm Parameters Length (16), Parameters.
    if (a.value.size() < 4) return ParseError::bad_attribute_length;
    const std::uint16_t parameters_length = load_be16(a.value.data() + 2);
    if (4 + std::size_t{parameters_length} > a.value.size())
        return ParseError::bad_attribute_length;
    out.algorithm = load_be16(a.value.data());
    out.parameters = a.value.subspan(4, parameters_length);
    return ParseError::ok;
}

ParseError decode_password_algorithms(const Attribute& a, std::span<PasswordAlgorithmValue> out,
                                      std::size_t& count) noexcept {
    // RFC 8489 §14.11: a list of PASSWORD-ALGORITHM bodies, each parameter block padded to 4.
    std::size_t n = 0;
    std::size_t offset = 0;
    while (offset < a.value.size()) {
        if (a.value.size() - offset < 4) return ParseError::bad_attribute_length;
        const std::uint16_t parameters_length = load_be16(a.value.data() + offset + 2);
        const std::size_t entry = 4 + padded4(parameters_length);
        if (entry > a.value.size() - offset) return ParseError::bad_attribute_length;
        if (n < out.size())
            out[n] = {load_be16(a.value.data() + offset),
                      a.value.subspan(offset + 4, parameters_length)};
        ++n;
        offset += entry;
    }
    count = n;
    return ParseError::ok;
}

ParseError decode_userhash(const Attribute& a, std::span<const std::byte, 32>& out) noexcept {
    if (a.value.size() != 32) return ParseError::bad_attribute_length;
    out = a.value.first<32>();
    return ParseError::ok;
}

std::optional<std::uint32_t> nonce_security_features(std::string_view nonce) noexcept {
    if (nonce.size() < nonce_cookie.size() + 4 || !nonce.starts_with(nonce_cookie))
        return std::nullopt;
    unsigned char bits[4] = {};
    const auto* encoded =
        reinterpret_cast<const unsigned char*>(nonce.data() + nonce_cookie.size());
    // Four base64 characters decode to exactly the 24 feature bits.
    for (std::size_t i = 0; i < 4; ++i)
        if (encoded[i] == '=') return std::nullopt;
    if (EVP_DecodeBlock(bits, encoded, 4) != 3) return std::nullopt;
    return (std::uint32_t{bits[0]} << 16) | (std::uint32_t{bits[1]} << 8) | bits[2];
}

void write_nonce_cookie(std::uint32_t features, std::span<char, 13> out) noexcept {
    std::memcpy(out.data(), nonce_cookie.data(), nonce_cookie.size());
    const unsigned char bits[3] = {static_cast<unsigned char>(features >> 16),
                                   static_cast<unsigned char>(features >> 8),
                                   static_cast<unsigned char>(features)};
    unsigned char encoded[5];  // 4 characters and the NUL EVP_EncodeBlock writes
    EVP_EncodeBlock(encoded, bits, 3);
    std::memcpy(out.data() + nonce_cookie.size(), encoded, 4);
}

}  // namespace stun
