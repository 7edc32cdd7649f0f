// Stateless nonces for the long-term credential mechanism (RFC 8489 §9.2, RFC 8656 §7.2).
//
// The server keeps nothing per client: a nonce carries when it was issued and a MAC that binds
// it to the client's transport address, so a worker checks one by recomputing the MAC. Layout
// (63 characters, all of them RFC 8489 §14.10 qdtext: far under its 128-character and 763-byte
// limits):
//
//   obMatJos2 AAAA kk tttttttttttttttt mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm   (no spaces)
//   |         |    |  |                 MAC: HMAC-SHA256 truncated to 16 bytes, 32 hex digits
//   |         |    |  issue time, Unix seconds, 16 lowercase hex digits
//   |         |    key id, 2 lowercase hex digits: which NonceKey made the MAC
//   |         security feature set: "password algorithms" set, "username anonymity" clear
//   nonce cookie (RFC 8489 §9.2.1: the server supports the features the next 4 characters list)
//
// MAC = HMAC-SHA256(key, the 31 characters before it || family || IP (16 bytes) || port),
// family one byte (1 IPv4, 2 IPv6), IPv4 zero-padded, port big-endian: the cookie, features,
// key id and time are covered as text, so changing any character of the nonce breaks it.
//
// Keys rotate without breaking the nonces just issued: NonceKeys holds the current key, which
// signs, and the previous one, which still verifies until the control thread retires it (one
// nonce lifetime after the rotation). Keys come from stun::random_bytes() and are published
// to the workers with the other secrets (design.md §3, RCU).
//
// A caller that sets the password algorithms bit owes the client PASSWORD-ALGORITHMS and the
// bid-down checks of RFC 8489 §9.2.1 and §9.2.4; the nonce only announces the feature.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "stun/address.h"

namespace engine {

/// The length of every nonce make_nonce() writes.
inline constexpr std::size_t turn_nonce_size = 63;

/// How far in the future an issue time may lie and still be accepted: nodes that share keys
/// disagree about the time by this much at most (NTP keeps them within milliseconds).
inline constexpr std::uint64_t nonce_future_skew_s = 5;

/// One nonce key: 32 random bytes and the id that nonces carry to name it.
struct NonceKey {
    std::uint8_t id = 0;
    std::array<std::byte, 32> secret{};
};

/// The keys a worker signs and verifies nonces with. A value: the control thread builds a new
/// one and publishes it.
struct NonceKeys {
    NonceKey current;                 ///< signs new nonces and verifies them
    std::optional<NonceKey> previous; ///< verifies only; empty once retired

    /// `next` becomes current and current becomes previous. False (nothing changes) when
    /// next.id is current.id: a nonce must name exactly one key.
    [[nodiscard]] bool rotate(const NonceKey& next) noexcept;
    /// Stops accepting the previous key's nonces (call it one nonce lifetime after rotate()).
    void retire_previous() noexcept { previous.reset(); }
};

enum class NonceCheck : std::uint8_t {
    ok,       ///< made by one of `keys` for this client, and younger than the lifetime
    stale,    ///< genuine, but as old as the lifetime or older: 438 (Stale Nonce) and a new one
    invalid,  ///< not ours: forged, altered, another client's, an unknown (retired) key's, or
              ///< issued further in the future than nonce_future_skew_s. Also answered 438
              ///< (RFC 8489 §9.2.4 has no other code for it), but counted apart: a client that
              ///< keeps sending these is broken or probing.
};

/// "ok", "stale", "invalid".
[[nodiscard]] std::string_view to_string(NonceCheck check) noexcept;

/// Writes a nonce for `client` (address and port) issued at `now_s` (Unix seconds, from the
/// caller's clock) with keys.current. Returns the characters written, turn_nonce_size, or 0
/// when `out` is shorter. Cost: one HMAC-SHA256 over 50 bytes; no allocation.
std::size_t make_nonce(const NonceKeys& keys, const stun::Address& client, std::uint64_t now_s,
                       std::span<char> out) noexcept;

/// Checks a NONCE value that `client` sent at `now_s` against nonces that live `lifetime_s`
/// seconds. The MAC is checked (in constant time) before the age, so a forged nonce is never
/// called stale. Returns ok, stale or invalid (see NonceCheck). Cost: one HMAC-SHA256; no
/// allocation.
[[nodiscard]] NonceCheck check_nonce(const NonceKeys& keys, const stun::Address& client,
                                     std::string_view nonce, std::uint64_t now_s,
                                     std::uint64_t lifetime_s) noexcept;

}  // namespace engine
