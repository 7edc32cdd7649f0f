#include "stun/credentials.h"

#include <openssl/crypto.h>
#include <stringprep.h>

#include <cstring>

#include "stun/bytes.h"
#include "stun/crypto.h"

namespace stun {

std::string_view to_string(CredentialError error) noexcept {
    switch (error) {
    case CredentialError::ok: return "ok";
    case CredentialError::prohibited_character: return "prohibited_character";
    case CredentialError::too_long: return "too_long";
    }
    return "unknown";
}

CredentialError saslprep(std::string_view input, std::span<char, 513> out,
                         std::string_view& prepared) noexcept {
    // RFC 4013 §2.3 prohibits U+0000 (RFC 3454 table C.2.1); libidn takes C strings and would
    // silently stop at it, so refuse it here.
    if (input.find('\0') != std::string_view::npos) return CredentialError::prohibited_character;
    // The limit is on the prepared string (mapping can shrink or grow the input), so prepare
    // in a larger scratch buffer first.
    char scratch[2048];
    if (input.size() >= sizeof scratch) return CredentialError::too_long;
    std::memcpy(scratch, input.data(), input.size());
    scratch[input.size()] = '\0';
    // RFC 4013: the SASLprep profile of stringprep (RFC 3454). Passwords are "stored strings"
    // (RFC 3454 §7), so unassigned code points are refused rather than passed through.
    const int rc =
        stringprep(scratch, sizeof scratch, STRINGPREP_NO_UNASSIGNED, stringprep_saslprep);
    if (rc == STRINGPREP_TOO_SMALL_BUFFER) return CredentialError::too_long;
    if (rc != STRINGPREP_OK) return CredentialError::prohibited_character;
    const std::size_t length = std::strlen(scratch);
    if (length >= out.size()) {
        OPENSSL_cleanse(scratch, sizeof scratch);
        return CredentialError::too_long;
    }
    std::memcpy(out.data(), scratch, length + 1);
    OPENSSL_cleanse(scratch, sizeof scratch);
    prepared = {out.data(), length};
    return CredentialError::ok;
}

namespace {

// RFC 8489 §9.2.2: key = H(username ":" realm ":" password), password SASLprep'd, H being MD5
// or, with PASSWORD-ALGORITHM SHA-256, SHA-256.
template <typename Digest, typename Key>
CredentialError long_term_key(std::string_view username, std::string_view realm,
                              std::string_view password, Digest digest, Key& out) noexcept {
    char storage[513];
    std::string_view prepared;
    if (const auto e = saslprep(password, storage, prepared); e != CredentialError::ok) return e;
    digest({as_bytes(username), as_bytes(":"), as_bytes(realm), as_bytes(":"),
            as_bytes(prepared)},
           out);
    OPENSSL_cleanse(storage, sizeof storage);
    return CredentialError::ok;
}

}  // namespace

CredentialError long_term_key_md5(std::string_view username, std::string_view realm,
                                  std::string_view password, LongTermKeyMd5& out) noexcept {
    return long_term_key(username, realm, password, md5, out);
}

CredentialError long_term_key_sha256(std::string_view username, std::string_view realm,
                                     std::string_view password, LongTermKeySha256& out) noexcept {
    return long_term_key(username, realm, password, sha256, out);
}

CredentialError short_term_key(std::string_view password, std::span<char, 513> storage,
                               std::span<const std::byte>& key) noexcept {
    std::string_view prepared;
    if (const auto e = saslprep(password, storage, prepared); e != CredentialError::ok) return e;
    // RFC 8489 §9.1.1: key = OpaqueString(password) (RFC 5389: SASLprep(password)).
    key = as_bytes(prepared);
    return CredentialError::ok;
}

void userhash(std::string_view username, std::string_view realm,
              std::span<std::byte, 32> out) noexcept {
    sha256({as_bytes(username), as_bytes(":"), as_bytes(realm)}, out);
}

}  // namespace stun
