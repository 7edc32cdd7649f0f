#include "stun/sfu_token.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstring>

#include "stun/bytes.h"
#include "stun/crypto.h"

namespace stun {
namespace {

constexpr std::size_t session_digits = 16;

bool participant_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '~' || c == '-';
}

}  // namespace

std::string_view to_string(SfuTokenError error) noexcept {
    switch (error) {
    case SfuTokenError::ok: return "ok";
    case SfuTokenError::malformed: return "malformed";
    case SfuTokenError::expired: return "expired";
    case SfuTokenError::buffer_too_small: return "buffer_too_small";
    }
    return "unknown";
}

bool valid_sfu_participant(std::string_view name) noexcept {
    if (name.empty() || name.size() > sfu_participant_max) return false;
    for (const char c : name)
        if (!participant_char(c)) return false;
    return true;
}

SfuTokenError make_sfu_username(const SfuUsername& username, std::span<char> out,
                                std::size_t& written) noexcept {
    if (!valid_sfu_participant(username.participant)) return SfuTokenError::malformed;
    const auto [end, ec] = std::to_chars(out.data(), out.data() + out.size(), username.expiry);
    if (ec != std::errc{}) return SfuTokenError::buffer_too_small;
    std::size_t n = static_cast<std::size_t>(end - out.data());
    if (out.size() - n < 1 + session_digits + 1 + username.participant.size())
        return SfuTokenError::buffer_too_small;
    out[n++] = ':';
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < session_digits; ++i)
        out[n++] = hex[(username.session >> (4 * (session_digits - 1 - i))) & 0xF];
    out[n++] = ':';
    std::memcpy(out.data() + n, username.participant.data(), username.participant.size());
    written = n + username.participant.size();
    return SfuTokenError::ok;
}

void make_sfu_password(std::span<const std::byte> secret, std::string_view username,
                       std::span<char, sfu_password_size> out) noexcept {
    std::byte mac[32];
    hmac_sha256(secret, {as_bytes(username)}, mac);
    unsigned char encoded[sfu_password_size + 1];  // EVP_EncodeBlock adds a NUL
    EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(mac), sizeof mac);
    std::memcpy(out.data(), encoded, sfu_password_size);
}

SfuTokenError parse_sfu_username(std::string_view username, SfuUsername& out) noexcept {
    const std::size_t first = username.find(':');
    if (first == 0 || first == std::string_view::npos) return SfuTokenError::malformed;
    std::uint64_t expiry = 0;
    const auto [end, ec] = std::from_chars(username.data(), username.data() + first, expiry);
    if (ec != std::errc{} || end != username.data() + first) return SfuTokenError::malformed;
    const std::string_view rest = username.substr(first + 1);
    if (rest.size() < session_digits + 2 || rest[session_digits] != ':')
        return SfuTokenError::malformed;
    std::uint64_t session = 0;
    for (std::size_t i = 0; i < session_digits; ++i) {
        const char c = rest[i];
        unsigned digit = 0;
        if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
        else return SfuTokenError::malformed;
        session = session << 4 | digit;
    }
    const std::string_view participant = rest.substr(session_digits + 1);
    if (!valid_sfu_participant(participant)) return SfuTokenError::malformed;
    out = {expiry, session, participant};
    return SfuTokenError::ok;
}

SfuTokenError check_sfu_username(std::string_view username, std::uint64_t now_unix,
                                 SfuUsername& out) noexcept {
    SfuUsername parsed;
    if (const auto e = parse_sfu_username(username, parsed); e != SfuTokenError::ok) return e;
    if (parsed.expiry < now_unix) return SfuTokenError::expired;
    out = parsed;
    return SfuTokenError::ok;
}

}  // namespace stun
