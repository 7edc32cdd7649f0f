#include "stun/writer.h"

#include <cstring>

#include "stun/bytes.h"
#include "stun/crypto.h"

namespace stun {

MessageWriter::MessageWriter(std::span<std::byte> buffer, std::uint16_t method,
                             MessageClass cls,
                             std::span<const std::byte, transaction_id_size> txid) noexcept
    : buffer_(buffer) {
    if (buffer.size() < header_size || method > 0x0FFF) {
        fail(buffer.size() < header_size ? WriteError::buffer_too_small : WriteError::bad_value);
        return;
    }
    store_be16(buffer.data(), message_type(method, cls));
    store_be16(buffer.data() + 2, 0);
    store_be32(buffer.data() + 4, magic_cookie);
    // memmove: the ID may come from a request in this same buffer.
    std::memmove(buffer.data() + 8, txid.data(), txid.size());
    size_ = header_size;
}

std::byte* MessageWriter::reserve(std::uint16_t type, std::size_t length) noexcept {
    if (!ok()) return nullptr;
    if (sealed_) {
        fail(WriteError::after_fingerprint);
        return nullptr;
    }
    if (length > 0xFFFF) {
        fail(WriteError::value_too_long);
        return nullptr;
    }
    const std::size_t total = attribute_header_size + padded4(length);
    // The header's 16-bit length field bounds the message too.
    if (total > buffer_.size() - size_ || size_ - header_size + total > 0xFFFF) {
        fail(WriteError::buffer_too_small);
        return nullptr;
    }
    std::byte* p = buffer_.data() + size_;
    store_be16(p, type);
    store_be16(p + 2, static_cast<std::uint16_t>(length));
    // RFC 8489 §14: padding bytes "MUST be ignored by the receiver"; we send zeros.
    std::memset(p + attribute_header_size + length, 0, padded4(length) - length);
    size_ += total;
    store_be16(buffer_.data() + 2, static_cast<std::uint16_t>(size_ - header_size));
    return p + attribute_header_size;
}

void MessageWriter::add(std::uint16_t type, std::span<const std::byte> value) noexcept {
    if (std::byte* p = reserve(type, value.size()); p != nullptr && !value.empty())
        std::memcpy(p, value.data(), value.size());
}

void MessageWriter::add_text(std::uint16_t type, std::string_view text) noexcept {
    if (text.size() > text_send_limit(type)) return fail(WriteError::value_too_long);
    add(type, as_bytes(text));
}

void MessageWriter::add_u32(std::uint16_t type, std::uint32_t value) noexcept {
    if (std::byte* p = reserve(type, 4)) store_be32(p, value);
}

void MessageWriter::add_u64(std::uint16_t type, std::uint64_t value) noexcept {
    if (std::byte* p = reserve(type, 8)) store_be64(p, value);
}

void MessageWriter::add_address(std::uint16_t type, const Address& address) noexcept {
    if (address.family != AddressFamily::ipv4 && address.family != AddressFamily::ipv6)
        return fail(WriteError::bad_value);
    std::byte* p = reserve(type, 4 + address.ip_size());
    if (p == nullptr) return;
    p[0] = std::byte{0};
    p[1] = static_cast<std::byte>(address.family);
    store_be16(p + 2, address.port);
    std::memcpy(p + 4, address.ip.data(), address.ip_size());
}

void MessageWriter::add_xor_address(std::uint16_t type, const Address& address) noexcept {
    const std::size_t before = size_;
    add_address(type, address);
    if (!ok()) return;
    // RFC 8489 §14.2: the same XOR as decode_xor_address(), applied in place.
    std::byte* p = buffer_.data() + before + attribute_header_size;
    store_be16(p + 2, static_cast<std::uint16_t>(address.port ^ (magic_cookie >> 16)));
    std::byte mask[16];
    store_be32(mask, magic_cookie);
    std::memcpy(mask + 4, buffer_.data() + 8, transaction_id_size);
    for (std::size_t i = 0; i < address.ip_size(); ++i) p[4 + i] ^= mask[i];
}

void MessageWriter::add_error_code(std::uint16_t code, std::string_view reason) noexcept {
    // RFC 8489 §14.8: class 3..6, and the reason under 128 characters (509 bytes on send).
    if (code < 300 || code > 699) return fail(WriteError::bad_value);
    if (reason.size() > 509) return fail(WriteError::value_too_long);
    std::byte* p = reserve(attr::error_code, 4 + reason.size());
    if (p == nullptr) return;
    store_be16(p, 0);
    p[2] = static_cast<std::byte>(code / 100);
    p[3] = static_cast<std::byte>(code % 100);
    if (!reason.empty()) std::memcpy(p + 4, reason.data(), reason.size());
}

void MessageWriter::add_unknown_attributes(std::span<const std::uint16_t> types) noexcept {
    std::byte* p = reserve(attr::unknown_attributes, 2 * types.size());
    if (p == nullptr) return;
    for (std::size_t i = 0; i < types.size(); ++i) store_be16(p + 2 * i, types[i]);
}

void MessageWriter::add_channel_number(std::uint16_t channel) noexcept {
    // RFC 8656 §18.1: Channel Number (16 bits), RFFU = 0 (16 bits).
    add_u32(attr::channel_number, std::uint32_t{channel} << 16);
}

void MessageWriter::add_requested_transport(std::uint8_t protocol) noexcept {
    add_u32(attr::requested_transport, std::uint32_t{protocol} << 24);
}

void MessageWriter::add_address_family(std::uint16_t type, AddressFamily family) noexcept {
    add_u32(type, std::uint32_t{static_cast<std::uint8_t>(family)} << 24);
}

void MessageWriter::add_even_port(bool reserve_next) noexcept {
    if (std::byte* p = reserve(attr::even_port, 1))
        p[0] = reserve_next ? std::byte{0x80} : std::byte{0};
}

void MessageWriter::add_response_port(std::uint16_t port) noexcept {
    add_u32(attr::response_port, std::uint32_t{port} << 16);
}

void MessageWriter::add_address_error_code(AddressFamily family, std::uint16_t code,
                                           std::string_view reason) noexcept {
    if (code < 300 || code > 699) return fail(WriteError::bad_value);
    if (reason.size() > 509) return fail(WriteError::value_too_long);
    std::byte* p = reserve(attr::address_error_code, 4 + reason.size());
    if (p == nullptr) return;
    p[0] = static_cast<std::byte>(family);
    p[1] = std::byte{0};
    p[2] = static_cast<std::byte>(code / 100);
    p[3] = static_cast<std::byte>(code % 100);
    if (!reason.empty()) std::memcpy(p + 4, reason.data(), reason.size());
}

void MessageWriter::add_icmp(const IcmpValue& icmp) noexcept {
    std::byte* p = reserve(attr::icmp, 8);
    if (p == nullptr) return;
    store_be16(p, 0);
    p[2] = static_cast<std::byte>(icmp.type);
    p[3] = static_cast<std::byte>(icmp.code);
    store_be32(p + 4, icmp.error_data);
}

void MessageWriter::add_password_algorithm(const PasswordAlgorithmValue& algorithm) noexcept {
    add_password_algorithms({&algorithm, 1});
    // Same body as one PASSWORD-ALGORITHMS entry; only the type differs.
    if (ok()) {
        const std::size_t body = 4 + padded4(algorithm.parameters.size());
        store_be16(buffer_.data() + size_ - body - attribute_header_size, attr::password_algorithm);
    }
}

void MessageWriter::add_password_algorithms(
    std::span<const PasswordAlgorithmValue> algorithms) noexcept {
    std::size_t length = 0;
    for (const auto& a : algorithms) {
        if (a.parameters.size() > 0xFFFF) return fail(WriteError::value_too_long);
        length += 4 + padded4(a.parameters.size());
    }
    std::byte* p = reserve(attr::password_algorithms, length);
    if (p == nullptr) return;
    for (const auto& a : algorithms) {
        store_be16(p, a.algorithm);
        store_be16(p + 2, static_cast<std::uint16_t>(a.parameters.size()));
        if (!a.parameters.empty()) std::memcpy(p + 4, a.parameters.data(), a.parameters.size());
        const std::size_t padded = padded4(a.parameters.size());
        std::memset(p + 4 + a.parameters.size(), 0, padded - a.parameters.size());
        p += 4 + padded;
    }
}

void MessageWriter::add_padding(std::size_t length) noexcept {
    if (std::byte* p = reserve(attr::padding, length); p != nullptr && length > 0)
        std::memset(p, 0, length);
}

void MessageWriter::add_message_integrity(std::span<const std::byte> key) noexcept {
    // reserve() sets the header length to include this attribute, which is exactly the
    // adjusted length RFC 8489 §14.5 hashes over.
    std::byte* p = reserve(attr::message_integrity, 20);
    if (p == nullptr) return;
    const std::size_t covered = size_ - attribute_header_size - 20;
    hmac_sha1(key, {buffer_.first(covered)}, std::span<std::byte, 20>(p, 20));
}

void MessageWriter::add_message_integrity_sha256(std::span<const std::byte> key,
                                                 std::size_t length) noexcept {
    // RFC 8489 §14.6: 16..32 bytes, a multiple of 4.
    if (length < 16 || length > 32 || length % 4 != 0) return fail(WriteError::bad_value);
    std::byte* p = reserve(attr::message_integrity_sha256, length);
    if (p == nullptr) return;
    const std::size_t covered = size_ - attribute_header_size - length;
    std::byte full[32];
    hmac_sha256(key, {buffer_.first(covered)}, full);
    std::memcpy(p, full, length);
}

void MessageWriter::add_fingerprint() noexcept {
    std::byte* p = reserve(attr::fingerprint, 4);
    if (p == nullptr) return;
    const std::size_t covered = size_ - attribute_header_size - 4;
    store_be32(p, crc32({buffer_.first(covered)}) ^ fingerprint_xor);
    sealed_ = true;
}

MessageWriter begin_error_response(std::span<std::byte> buffer, const Message& request,
                                   std::uint16_t code) noexcept {
    MessageWriter writer(buffer, request.method(), MessageClass::error_response,
                         request.transaction_id());
    writer.add_error_code(code);
    return writer;
}

}  // namespace stun
