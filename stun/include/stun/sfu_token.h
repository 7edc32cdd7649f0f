// SFU session tokens (design.md §3, role `sfu`; docs/sfu.md, "Admission"): the short-term
// credentials with which a participant is admitted to an SFU session on a node, signed by the
// coordinator with a secret it shares with the node, so that the node verifies them without
// state.
//
//   username  "<expiry Unix seconds>:<session, 16 lowercase hex digits>:<participant>"
//   password  base64(HMAC-SHA256(secret, username)): always 44 characters
//
// The participant is a coordinator room member's name: 1 to 64 characters of
// A-Z a-z 0-9 . _ ~ - (docs/protocol.md), so the username is at most 20 + 1 + 16 + 1 + 64 =
// 102 bytes. The password is the STUN short-term credential (RFC 8489 §9.1): the Binding
// request's MESSAGE-INTEGRITY is keyed with its 44 bytes as they are (base64 is unchanged by
// OpaqueString). The coordinator issues the pair, the client uses it, the node recomputes the
// password from the username with each secret it accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace stun {

enum class SfuTokenError : std::uint8_t {
    ok = 0,
    malformed,         ///< not "<digits>:<16 hex>:<participant>", or a part out of range
    expired,           ///< the expiry is before `now`
    buffer_too_small,  ///< the output buffer cannot hold the result
};

std::string_view to_string(SfuTokenError error) noexcept;

struct SfuUsername {
    std::uint64_t expiry = 0;    ///< Unix time, seconds; valid through this second
    std::uint64_t session = 0;   ///< the coordinator's id of the SFU session
    std::string_view participant;
};

inline constexpr std::size_t sfu_participant_max = 64;
inline constexpr std::size_t sfu_username_max = 20 + 1 + 16 + 1 + sfu_participant_max;
inline constexpr std::size_t sfu_password_size = 44;

/// Whether `name` is a valid participant: 1 to 64 characters of A-Z a-z 0-9 . _ ~ -.
[[nodiscard]] bool valid_sfu_participant(std::string_view name) noexcept;

/// Writes the username into `out`; sets `written` to its length. Errors: malformed (a bad
/// participant), buffer_too_small.
[[nodiscard]] SfuTokenError make_sfu_username(const SfuUsername& username, std::span<char> out,
                                              std::size_t& written) noexcept;

/// base64(HMAC-SHA256(secret, username)).
void make_sfu_password(std::span<const std::byte> secret, std::string_view username,
                       std::span<char, sfu_password_size> out) noexcept;

/// Splits a username (the session exactly 16 lowercase hex digits, the participant valid).
/// Errors: malformed.
[[nodiscard]] SfuTokenError parse_sfu_username(std::string_view username,
                                               SfuUsername& out) noexcept;

/// What a node does first with a Binding request's USERNAME: parse it, and refuse it if expired
/// at `now_unix` (the expiry second itself is still valid). Errors: malformed, expired. The
/// caller then derives the password with each secret it accepts and checks MESSAGE-INTEGRITY.
[[nodiscard]] SfuTokenError check_sfu_username(std::string_view username, std::uint64_t now_unix,
                                               SfuUsername& out) noexcept;

}  // namespace stun
