// Credential keys (RFC 8489 §9.1.2, §9.2.2) and USERHASH (§14.4).
//
// Passwords are prepared with SASLprep (RFC 4013, by libidn's stringprep), as RFC 5389 and the
// RFC 5769 test vectors require; RFC 8489's OpaqueString gives the same result for the passwords
// people type. These run when credentials are configured or rotated, not per packet; they use
// a stack buffer and do not allocate, but libidn may.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>

namespace stun {

enum class CredentialError : std::uint8_t {
    ok = 0,
    prohibited_character,  ///< SASLprep refused the input (control or unassigned character)
    too_long,              ///< the prepared string exceeds 512 bytes
};

std::string_view to_string(CredentialError error) noexcept;

using LongTermKeyMd5 = std::array<std::byte, 16>;
using LongTermKeySha256 = std::array<std::byte, 32>;

/// Writes SASLprep(input) into `out` and sets `prepared` to the text written.
[[nodiscard]] CredentialError saslprep(std::string_view input, std::span<char, 513> out,
                                       std::string_view& prepared) noexcept;

/// Long-term key for MESSAGE-INTEGRITY: MD5(username ":" realm ":" SASLprep(password)).
[[nodiscard]] CredentialError long_term_key_md5(std::string_view username, std::string_view realm,
                                                std::string_view password,
                                                LongTermKeyMd5& out) noexcept;

/// Long-term key with PASSWORD-ALGORITHM SHA-256: SHA-256(username ":" realm ":" password),
/// password SASLprep'd.
[[nodiscard]] CredentialError long_term_key_sha256(std::string_view username,
                                                   std::string_view realm,
                                                   std::string_view password,
                                                   LongTermKeySha256& out) noexcept;

/// Short-term key: SASLprep(password) itself. `storage` holds the key; `key` views it.
[[nodiscard]] CredentialError short_term_key(std::string_view password,
                                             std::span<char, 513> storage,
                                             std::span<const std::byte>& key) noexcept;

/// USERHASH: SHA-256(username ":" realm) (RFC 8489 §14.4).
void userhash(std::string_view username, std::string_view realm,
              std::span<std::byte, 32> out) noexcept;

}  // namespace stun
