#include "stun/rest.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstring>

#include "stun/bytes.h"
#include "stun/crypto.h"

namespace stun {

std::string_view to_string(RestError error) noexcept {
    switch (error) {
    case RestError::ok: return "ok";
    case RestError::malformed: return "malformed";
    case RestError::expired: return "expired";
    case RestError::buffer_too_small: return "buffer_too_small";
    }
    return "unknown";
}

RestError make_rest_username(std::uint64_t expiry, std::string_view user, std::span<char> out,
                             std::size_t& written) noexcept {
    const auto [end, ec] = std::to_chars(out.data(), out.data() + out.size(), expiry);
    if (ec != std::errc{}) return RestError::buffer_too_small;
    const auto digits = static_cast<std::size_t>(end - out.data());
    if (out.size() - digits < 1 + user.size()) return RestError::buffer_too_small;
    out[digits] = ':';
    std::memcpy(out.data() + digits + 1, user.data(), user.size());
    written = digits + 1 + user.size();
    return RestError::ok;
}

void make_rest_password(std::span<const std::byte> secret, std::string_view username,
                        std::span<char, rest_password_size> out) noexcept {
    std::byte mac[20];
    hmac_sha1(secret, {as_bytes(username)}, mac);
    unsigned char encoded[rest_password_size + 1];  // EVP_EncodeBlock adds a NUL
    EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(mac), sizeof mac);
    std::memcpy(out.data(), encoded, rest_password_size);
}

RestError parse_rest_username(std::string_view username, RestUsername& out) noexcept {
    // "<expiry>:<user>": the expiry is the digits before the first ':'; the user may itself
    // contain ':' and may be empty.
    const std::size_t colon = username.find(':');
    if (colon == 0 || colon == std::string_view::npos) return RestError::malformed;
    std::uint64_t expiry = 0;
    const auto [end, ec] = std::from_chars(username.data(), username.data() + colon, expiry);
    if (ec != std::errc{} || end != username.data() + colon) return RestError::malformed;
    out = {expiry, username.substr(colon + 1)};
    return RestError::ok;
}

RestError rest_long_term_key(std::span<const std::byte> secret, std::string_view username,
                             std::string_view realm, std::uint64_t now_unix,
                             LongTermKeyMd5& out) noexcept {
    RestUsername parsed;
    if (const auto e = parse_rest_username(username, parsed); e != RestError::ok) return e;
    if (parsed.expiry < now_unix) return RestError::expired;
    char password[rest_password_size];
    make_rest_password(secret, username, password);
    // The password is base64, so SASLprep leaves it as it is and cannot fail.
    if (long_term_key_md5(username, realm, {password, sizeof password}, out) !=
        CredentialError::ok)
        return RestError::malformed;
    return RestError::ok;
}

}  // namespace stun
