// TURN REST API credentials (draft-uberti-behave-turn-rest, as coturn's use-auth-secret):
// username "<expiry unix time>:<user>", password base64(HMAC-SHA1(secret, username)).
// The server checks the expiry against the time it is given, so tests inject the clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "stun/credentials.h"

namespace stun {

enum class RestError : std::uint8_t {
    ok = 0,
    malformed,        ///< not "<digits>:<user>", or the expiry does not fit 64 bits
    expired,          ///< the expiry is before `now`
    buffer_too_small, ///< the output buffer cannot hold the result
};

std::string_view to_string(RestError error) noexcept;

struct RestUsername {
    std::uint64_t expiry = 0;  ///< Unix time, seconds
    std::string_view user;     ///< may be empty
};

/// Writes "<expiry>:<user>" into `out`; sets `written` to its length.
[[nodiscard]] RestError make_rest_username(std::uint64_t expiry, std::string_view user,
                                           std::span<char> out, std::size_t& written) noexcept;

/// base64(HMAC-SHA1(secret, username)): always 28 characters.
inline constexpr std::size_t rest_password_size = 28;
void make_rest_password(std::span<const std::byte> secret, std::string_view username,
                        std::span<char, rest_password_size> out) noexcept;

/// Splits a REST username. Errors: malformed.
[[nodiscard]] RestError parse_rest_username(std::string_view username,
                                            RestUsername& out) noexcept;

/// What a server does with a REST username: parse it, refuse it if expired at `now_unix`
/// (the expiry itself is still valid), and derive the long-term key
/// MD5(username ":" realm ":" password) from the shared secret. Errors: malformed, expired.
[[nodiscard]] RestError rest_long_term_key(std::span<const std::byte> secret,
                                           std::string_view username, std::string_view realm,
                                           std::uint64_t now_unix, LongTermKeyMd5& out) noexcept;

}  // namespace stun
