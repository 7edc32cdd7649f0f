// Helpers shared by the stun/ unit tests: hex literals, byte views, and digests computed with
// OpenSSL and zlib directly, so that a test compares the codec against an independent result
// rather than against itself.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/message.h"

namespace stun {

// GoogleTest printers, found by ADL, so that a failed EXPECT_EQ names the enumerator.
inline void PrintTo(ParseError e, std::ostream* os) { *os << "ParseError::" << to_string(e); }
inline void PrintTo(WriteError e, std::ostream* os) { *os << "WriteError::" << to_string(e); }
inline void PrintTo(IntegrityResult e, std::ostream* os) {
    static constexpr const char* names[] = {"ok", "missing", "mismatch"};
    const auto i = static_cast<unsigned>(e);
    *os << "IntegrityResult::" << (i < 3 ? names[i] : "?");
}

}  // namespace stun

namespace stun::test {

/// "00 01 ab" -> bytes. Whitespace is ignored; anything else that is not hex is a test bug.
inline std::vector<std::byte> hex(std::string_view text) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::vector<std::byte> out;
    int high = -1;
    for (char c : text) {
        if (c == ' ' || c == '\n' || c == '\t') continue;
        const int v = nibble(c);
        if (v < 0) throw std::invalid_argument("bad hex digit in test literal");
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::byte>(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) throw std::invalid_argument("odd number of hex digits in test literal");
    return out;
}

/// Bytes -> "0001ab", for readable assertion failures.
inline std::string to_hex(std::span<const std::byte> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::byte b : bytes) {
        const auto v = std::to_integer<unsigned>(b);
        out += digits[v >> 4];
        out += digits[v & 15];
    }
    return out;
}

template <std::size_t N>
std::span<const std::byte, N> bytes_of(const unsigned char (&array)[N]) {
    return std::span<const std::byte, N>(reinterpret_cast<const std::byte*>(array), N);
}

inline std::span<const std::byte> text_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::string_view as_text(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// OpenSSL's one-shot HMAC, independent of stun/crypto.cc.
inline std::vector<std::byte> openssl_hmac(const EVP_MD* md, std::span<const std::byte> key,
                                           std::span<const std::byte> data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(md, key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
    std::vector<std::byte> result(size);
    for (unsigned i = 0; i < size; ++i) result[i] = static_cast<std::byte>(out[i]);
    return result;
}

/// OpenSSL's one-shot digest, independent of stun/crypto.cc.
inline std::vector<std::byte> openssl_digest(const EVP_MD* md, std::span<const std::byte> data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(data.data(), data.size(), out, &size, md, nullptr);
    std::vector<std::byte> result(size);
    for (unsigned i = 0; i < size; ++i) result[i] = static_cast<std::byte>(out[i]);
    return result;
}

/// zlib's CRC-32 XOR "STUN": the FINGERPRINT of `data` (RFC 8489 §14.7).
inline std::uint32_t zlib_fingerprint(std::span<const std::byte> data) {
    const auto crc = ::crc32(0L, reinterpret_cast<const Bytef*>(data.data()),
                             static_cast<uInt>(data.size()));
    return static_cast<std::uint32_t>(crc) ^ 0x5354554Eu;
}

/// Minimal STUN message builder that does not use MessageWriter: for hand-made, possibly
/// malformed, messages. Attributes are appended verbatim (length from `value`, zero padding).
class RawMessage {
public:
    RawMessage(std::uint16_t type, std::uint32_t cookie = 0x2112A442) {
        put16(type);
        put16(0);
        put32(cookie);
        for (int i = 0; i < 12; ++i) bytes_.push_back(static_cast<std::byte>(0xA0 + i));
    }
    /// Appends an attribute whose length field is value.size(), padded with zeros.
    RawMessage& attribute(std::uint16_t type, std::span<const std::byte> value) {
        return attribute_with_length(type, static_cast<std::uint16_t>(value.size()), value);
    }
    RawMessage& attribute(std::uint16_t type, std::string_view value) {
        return attribute(type, text_bytes(value));
    }
    /// Appends an attribute with an arbitrary length field; pads `value` to 4 with zeros.
    RawMessage& attribute_with_length(std::uint16_t type, std::uint16_t length,
                                      std::span<const std::byte> value) {
        put16(type);
        put16(length);
        bytes_.insert(bytes_.end(), value.begin(), value.end());
        while (bytes_.size() % 4 != 0) bytes_.push_back(std::byte{0});
        set_length(static_cast<std::uint16_t>(bytes_.size() - 20));
        return *this;
    }
    /// Overwrites the header's length field.
    RawMessage& set_length(std::uint16_t length) {
        bytes_[2] = static_cast<std::byte>(length >> 8);
        bytes_[3] = static_cast<std::byte>(length);
        return *this;
    }
    std::vector<std::byte>& bytes() { return bytes_; }

private:
    void put16(std::uint16_t v) {
        bytes_.push_back(static_cast<std::byte>(v >> 8));
        bytes_.push_back(static_cast<std::byte>(v));
    }
    void put32(std::uint32_t v) {
        put16(static_cast<std::uint16_t>(v >> 16));
        put16(static_cast<std::uint16_t>(v));
    }
    std::vector<std::byte> bytes_;
};

/// Decodes `a` with the decoder its type calls for (the dispatch a server does). Types whose
/// value is opaque bytes (DATA, PADDING, MESSAGE-INTEGRITY, FINGERPRINT, unknown) return ok.
inline ParseError decode_any(const Message& m, const Attribute& a) noexcept {
    switch (a.type) {
        case attr::mapped_address:
        case attr::alternate_server:
        case attr::response_origin:
        case attr::other_address: {
            Address out;
            return decode_address(a, out);
        }
        case attr::xor_mapped_address:
        case attr::xor_peer_address:
        case attr::xor_relayed_address: {
            Address out;
            return decode_xor_address(a, m.transaction_id(), out);
        }
        case attr::username:
        case attr::realm:
        case attr::nonce:
        case attr::software:
        case attr::alternate_domain: {
            std::string_view out;
            return decode_text(a, out);
        }
        case attr::lifetime:
        case attr::priority:
        case attr::change_request: {
            std::uint32_t out = 0;
            return decode_u32(a, out);
        }
        case attr::ice_controlled:
        case attr::ice_controlling:
        case attr::reservation_token: {
            std::uint64_t out = 0;
            return decode_u64(a, out);
        }
        case attr::use_candidate:
        case attr::dont_fragment:
            return decode_flag(a);
        case attr::error_code: {
            ErrorCodeValue out;
            return decode_error_code(a, out);
        }
        case attr::unknown_attributes: {
            std::array<std::uint16_t, 8> out{};
            std::size_t count = 0;
            return decode_unknown_attributes(a, out, count);
        }
        case attr::channel_number: {
            std::uint16_t out = 0;
            return decode_channel_number(a, out);
        }
        case attr::requested_transport: {
            std::uint8_t out = 0;
            return decode_requested_transport(a, out);
        }
        case attr::requested_address_family:
        case attr::additional_address_family: {
            AddressFamily out{};
            return decode_address_family(a, out);
        }
        case attr::even_port: {
            bool out = false;
            return decode_even_port(a, out);
        }
        case attr::response_port: {
            std::uint16_t out = 0;
            return decode_response_port(a, out);
        }
        case attr::address_error_code: {
            AddressErrorCodeValue out;
            return decode_address_error_code(a, out);
        }
        case attr::icmp: {
            IcmpValue out;
            return decode_icmp(a, out);
        }
        case attr::password_algorithm: {
            PasswordAlgorithmValue out;
            return decode_password_algorithm(a, out);
        }
        case attr::password_algorithms: {
            std::array<PasswordAlgorithmValue, 4> out{};
            std::size_t count = 0;
            return decode_password_algorithms(a, out, count);
        }
        case attr::userhash: {
            // The view must start as some 32 bytes; the decoder repoints it at the value.
            static constexpr std::byte placeholder[32] = {};
            std::span<const std::byte, 32> out(placeholder);
            return decode_userhash(a, out);
        }
        default:
            return ParseError::ok;
    }
}

}  // namespace stun::test
