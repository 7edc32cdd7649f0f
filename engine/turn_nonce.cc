// Stateless nonces (engine/include/engine/turn_nonce.h): the layout, the MAC, and the checks in
// the order that keeps a forgery from ever reading as merely stale.
#include "engine/turn_nonce.h"

#include <cstring>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/crypto.h"

namespace engine {
namespace {

constexpr std::size_t cookie_size = 13;  // "obMatJos2" and 4 characters of features
constexpr std::size_t key_id_digits = 2;
constexpr std::size_t time_digits = 16;
constexpr std::size_t mac_bytes = 16;  // of HMAC-SHA256's 32: 128 bits, beyond guessing
constexpr std::size_t signed_size = cookie_size + key_id_digits + time_digits;
static_assert(signed_size + 2 * mac_bytes == turn_nonce_size);

// RFC 8489 §9.2.1 bit 0: the server supports PASSWORD-ALGORITHMS. Bit 1, username anonymity
// (USERHASH), stays clear: turn_auth.h accepts a USERHASH a client sends, but the nonce does
// not invite clients to send one instead of USERNAME.
constexpr std::uint32_t security_features = stun::feature_password_algorithms;

constexpr char hex_digits[] = "0123456789abcdef";

void write_hex(std::uint64_t value, std::size_t digits, char* out) noexcept {
    for (std::size_t i = digits; i-- > 0; value >>= 4) out[i] = hex_digits[value & 0xF];
}

// Lowercase only: an uppercase digit is a different nonce, and the MAC would say so anyway.
bool read_hex(std::string_view text, std::uint64_t& value) noexcept {
    value = 0;
    for (const char c : text) {
        unsigned digit = 0;
        if (c >= '0' && c <= '9') {
            digit = static_cast<unsigned>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            digit = static_cast<unsigned>(c - 'a' + 10);
        } else {
            return false;
        }
        value = (value << 4) | digit;
    }
    return true;
}

// The MAC of a nonce's first signed_size characters for `client`.
void nonce_mac(const NonceKey& key, std::string_view signed_part, const stun::Address& client,
               std::span<std::byte, mac_bytes> out) noexcept {
    std::byte bound[1 + 16 + 2];
    bound[0] = static_cast<std::byte>(client.family);
    std::memcpy(bound + 1, client.ip.data(), 16);
    stun::store_be16(bound + 17, client.port);
    std::array<std::byte, 32> full;
    stun::hmac_sha256(key.secret, {stun::as_bytes(signed_part), std::span<const std::byte>(bound)},
                      full);
    std::memcpy(out.data(), full.data(), mac_bytes);
}

const NonceKey* key_named(const NonceKeys& keys, std::uint64_t id) noexcept {
    if (id == keys.current.id) return &keys.current;
    if (keys.previous && id == keys.previous->id) return &*keys.previous;
    return nullptr;
}

}  // namespace

bool NonceKeys::rotate(const NonceKey& next) noexcept {
    if (next.id == current.id) return false;
    previous = current;
    current = next;
    return true;
}

std::string_view to_string(NonceCheck check) noexcept {
    switch (check) {
    case NonceCheck::ok: return "ok";
    case NonceCheck::stale: return "stale";
    case NonceCheck::invalid: return "invalid";
    }
    return "unknown";
}

std::size_t make_nonce(const NonceKeys& keys, const stun::Address& client, std::uint64_t now_s,
                       std::span<char> out) noexcept {
    if (out.size() < turn_nonce_size) return 0;
    char* p = out.data();
    stun::write_nonce_cookie(security_features, std::span<char, cookie_size>(p, cookie_size));
    write_hex(keys.current.id, key_id_digits, p + cookie_size);
    write_hex(now_s, time_digits, p + cookie_size + key_id_digits);
    std::array<std::byte, mac_bytes> mac;
    nonce_mac(keys.current, std::string_view(p, signed_size), client, mac);
    for (std::size_t i = 0; i < mac_bytes; ++i)
        write_hex(std::to_integer<std::uint8_t>(mac[i]), 2, p + signed_size + 2 * i);
    return turn_nonce_size;
}

NonceCheck check_nonce(const NonceKeys& keys, const stun::Address& client,
                       std::string_view nonce, std::uint64_t now_s,
                       std::uint64_t lifetime_s) noexcept {
    if (nonce.size() != turn_nonce_size) return NonceCheck::invalid;
    std::uint64_t key_id = 0;
    std::uint64_t issued_s = 0;
    if (!read_hex(nonce.substr(cookie_size, key_id_digits), key_id) ||
        !read_hex(nonce.substr(cookie_size + key_id_digits, time_digits), issued_s))
        return NonceCheck::invalid;
    const NonceKey* key = key_named(keys, key_id);
    if (key == nullptr) return NonceCheck::invalid;
    std::array<std::byte, mac_bytes> received;
    for (std::size_t i = 0; i < mac_bytes; ++i) {
        std::uint64_t byte = 0;
        if (!read_hex(nonce.substr(signed_size + 2 * i, 2), byte)) return NonceCheck::invalid;
        received[i] = static_cast<std::byte>(byte);
    }
    // The cookie and features are not parsed: the MAC covers them as text.
    std::array<std::byte, mac_bytes> expected;
    nonce_mac(*key, nonce.substr(0, signed_size), client, expected);
    // Constant time, so that the time a comparison takes says nothing about how many leading
    // bytes of a guessed MAC were right.
    if (!stun::equal_constant_time(received, expected)) return NonceCheck::invalid;
    // Genuine but from the future: a node that shares the keys has a clock that runs ahead.
    // Differences rather than sums, so that no time overflows.
    if (issued_s > now_s) {
        return issued_s - now_s > nonce_future_skew_s ? NonceCheck::invalid : NonceCheck::ok;
    }
    return now_s - issued_s >= lifetime_s ? NonceCheck::stale : NonceCheck::ok;
}

}  // namespace engine
