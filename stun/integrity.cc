#include "stun/integrity.h"

#include <cstring>

#include "stun/bytes.h"
#include "stun/crypto.h"

namespace stun {
namespace {

// The header with its length field rewritten to end right after the attribute at `offset`
// (RFC 8489 §14.5: "the length ... MUST be adjusted to point to the end of the
// MESSAGE-INTEGRITY attribute"), so that the message is hashed without being copied.
struct AdjustedHeader {
    std::byte bytes[header_size];
    AdjustedHeader(const Message& m, const Attribute& a) noexcept {
        std::memcpy(bytes, m.bytes().data(), header_size);
        const std::size_t end = a.offset + attribute_header_size + padded4(a.value.size());
        store_be16(bytes + 2, static_cast<std::uint16_t>(end - header_size));
    }
    std::span<const std::byte> span() const noexcept { return bytes; }
};

std::span<const std::byte> body_before(const Message& m, const Attribute& a) noexcept {
    return m.bytes().subspan(header_size, a.offset - header_size);
}

}  // namespace

IntegrityResult verify_message_integrity(const Message& message,
                                         std::span<const std::byte> key) noexcept {
    const auto mi = message.message_integrity();
    if (!mi) return IntegrityResult::missing;
    const AdjustedHeader header(message, *mi);
    std::byte expected[20];
    hmac_sha1(key, {header.span(), body_before(message, *mi)}, expected);
    return equal_constant_time(expected, mi->value) ? IntegrityResult::ok
                                                    : IntegrityResult::mismatch;
}

IntegrityResult verify_message_integrity_sha256(const Message& message,
                                                std::span<const std::byte> key) noexcept {
    const auto mi = message.message_integrity_sha256();
    if (!mi) return IntegrityResult::missing;
    const AdjustedHeader header(message, *mi);
    std::byte expected[32];
    hmac_sha256(key, {header.span(), body_before(message, *mi)}, expected);
    // RFC 8489 §14.6: the value may be truncated to 16..32 bytes; compare that prefix.
    return equal_constant_time(std::span<const std::byte>(expected).first(mi->value.size()),
                               mi->value)
               ? IntegrityResult::ok
               : IntegrityResult::mismatch;
}

IntegrityResult verify_fingerprint(const Message& message) noexcept {
    const auto fp = message.fingerprint();
    if (!fp) return IntegrityResult::missing;
    // FINGERPRINT is last, so the header's length already ends with it: no adjustment.
    const std::uint32_t expected = crc32({message.bytes().first(fp->offset)}) ^ fingerprint_xor;
    return load_be32(fp->value.data()) == expected ? IntegrityResult::ok
                                                   : IntegrityResult::mismatch;
}

}  // namespace stun
