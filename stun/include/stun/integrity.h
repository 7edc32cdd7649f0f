// MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT checks (RFC 8489 §14.5-§14.7).
#pragma once

#include <cstddef>
#include <span>

#include "stun/message.h"

namespace stun {

enum class IntegrityResult : std::uint8_t {
    ok = 0,
    missing,   ///< the message has no such attribute
    mismatch,  ///< the value does not match the one computed
};

/// HMAC-SHA1 with `key` over the message up to MESSAGE-INTEGRITY, the header length adjusted
/// to end with it (RFC 8489 §14.5). Constant-time comparison.
[[nodiscard]] IntegrityResult verify_message_integrity(const Message& message,
                                                       std::span<const std::byte> key) noexcept;

/// HMAC-SHA256, compared over the attribute's (possibly truncated) length (RFC 8489 §14.6).
[[nodiscard]] IntegrityResult verify_message_integrity_sha256(
    const Message& message, std::span<const std::byte> key) noexcept;

/// CRC-32 of the message up to FINGERPRINT, XOR 0x5354554E (RFC 8489 §14.7).
[[nodiscard]] IntegrityResult verify_fingerprint(const Message& message) noexcept;

}  // namespace stun
