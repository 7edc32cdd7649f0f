// The server side of STUN's long-term credential mechanism as the TURN relay uses it
// (RFC 8489 §9.2, RFC 8656 §7 and §9), stateless: authenticate() is a pure function of the
// credentials, the parsed request, the client's address and the time it is given.
//
// authenticate() applies the checks of RFC 8489 §9.2.4 in the RFC's order; the first that
// fails decides (AuthVerdict lists them with the code each answers):
//   1. neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256    401  missing_integrity
//   2. USERNAME or USERHASH, REALM or NONCE missing or malformed 400  missing_credentials
//   3. the nonce announces PASSWORD-ALGORITHMS (ours always do) and the request bids down:
//      only one of PASSWORD-ALGORITHM(S), a list other than ours, or an algorithm not in
//      it; neither attribute means MD5                           400  password_algorithm_mismatch
//   4. REALM is not ours                                         401  wrong_realm
//   5. USERNAME or USERHASH names nobody                         401  unknown_user,
//                                                                     rest_username_expired
//   6. the integrity attribute does not verify                   401  integrity_mismatch
//   7. the nonce is no longer valid                              438  stale_nonce,
//                                                                     invalid_nonce
// RFC 8489 checks the nonce last, after the integrity (RFC 5389 §10.2.2 checked it before the
// username): a 438 goes only to a client that proved its password, which is why the RFC lets
// it carry integrity "using the previous NONCE". A nonce from a retired key, from before a
// restart with new keys, or sent from another address is answered 438 like a stale one, so a
// client that knows its password gets a fresh nonce and retries without a 401 round.
//
// The realm (check 4) has no bullet of its own in §9.2.4: it is an input of the key (§9.2.2:
// key = H(username ":" realm ":" password)), so a request made for another realm cannot pass
// the integrity check (6), whose answer is 401. It is checked before the user lookup
// only to say why, and to spare the HMAC; the 401 carries our REALM, with which the client
// may retry (§9.2.5).
//
// Users: configured long-term users, found by USERNAME or by USERHASH (§14.4), and TURN REST
// usernames "<expiry>:<user>" (stun/rest.h) signed with any of the configured shared secrets,
// so that a secret rotates without a flag day: a REST username is accepted when the key
// derived from one of the secrets verifies its request. A configured user of the same name
// wins over the REST reading of it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/reason_table.h"
#include "engine/turn_nonce.h"
#include "stun/address.h"
#include "stun/constants.h"
#include "stun/credentials.h"
#include "stun/message.h"
#include "stun/writer.h"

namespace engine {

// X(name, help)
#define ENGINE_AUTH_VERDICTS(X)                                                                   \
    X(ok, "authenticated: the response is signed with the key in the result")                     \
    X(missing_integrity, "no MESSAGE-INTEGRITY(-SHA256): a client's first request, answered 401 " \
                         "with REALM and NONCE (RFC 8489 §9.2.4)")                                \
    X(missing_credentials, "integrity present but USERNAME/USERHASH, REALM or NONCE missing or "  \
                           "malformed: 400 (RFC 8489 §9.2.4)")                                    \
    X(password_algorithm_mismatch, "PASSWORD-ALGORITHM(S) differ from what our nonce offered, "   \
                                   "a bid-down attempt: 400 (RFC 8489 §9.2.1, §9.2.4)")           \
    X(wrong_realm, "REALM is not ours, so no key of ours can verify the request: 401")            \
    X(unknown_user, "USERNAME names no configured user and is no well-formed REST username "      \
                    "(or no shared secret is configured), or USERHASH matches no user: 401")      \
    X(rest_username_expired, "a REST username whose expiry time has passed: 401")                 \
    X(integrity_mismatch, "the integrity attribute does not verify with the user's key (wrong "   \
                          "password), or for a REST username with any shared secret's: 401")     \
    X(stale_nonce, "authenticated, but the nonce has outlived its lifetime: 438 and a new one")   \
    X(invalid_nonce, "authenticated, but the nonce is not ours: forged, another address's, or "   \
                     "a retired key's: 438 and a new one")

enum class AuthVerdict : std::uint8_t { ENGINE_AUTH_VERDICTS(ENGINE_REASON_ENUMERATOR) };

/// Each verdict's name and help, indexed by AuthVerdict.
inline constexpr auto auth_verdicts =
    std::to_array<ReasonInfo>({ENGINE_AUTH_VERDICTS(ENGINE_REASON_INFO)});
inline constexpr std::size_t auth_verdict_count = auth_verdicts.size();

/// The verdict's name, as counters show it ("ok", "stale_nonce", ...).
constexpr std::string_view to_string(AuthVerdict verdict) noexcept {
    return auth_verdicts[static_cast<std::size_t>(verdict)].name;
}

/// The error code RFC 8489 §9.2.4 answers the verdict with: 400, 401 or 438; 0 for ok.
[[nodiscard]] std::uint16_t error_code(AuthVerdict verdict) noexcept;

/// Which integrity attribute the request was verified with, and so the one its response
/// carries.
enum class IntegrityAttribute : std::uint8_t {
    message_integrity,         ///< HMAC-SHA1 (RFC 8489 §14.5)
    message_integrity_sha256,  ///< HMAC-SHA256 (RFC 8489 §14.6)
};

/// A configured long-term user, as the control thread reads it from config.
struct LongTermUser {
    std::string_view name;
    std::string_view password;
};

/// What Credentials::build() is made from. Views: build() copies what it keeps.
struct CredentialsSettings {
    std::string_view realm;
    std::span<const LongTermUser> users;
    /// TURN REST shared secrets, all accepted (the new one and the one it replaces).
    std::span<const std::string_view> rest_secrets;
    NonceKeys nonce_keys;
    std::uint64_t nonce_lifetime_s = 600;
};

enum class CredentialsError : std::uint8_t {
    ok = 0,
    bad_realm,        ///< empty, or longer than a REALM may be sent (509 bytes, RFC 8489 §14.9)
    bad_username,     ///< empty, or longer than a USERNAME may be sent (508 bytes, §14.3)
    bad_password,     ///< SASLprep refused it (RFC 4013), or it is longer than 512 bytes
    duplicate_user,   ///< two users of one name
    empty_secret,     ///< a REST shared secret of zero bytes
    bad_nonce_lifetime,  ///< zero: every nonce would be stale as it is made
};

/// "ok", "bad_realm", ...: for config error messages.
[[nodiscard]] std::string_view to_string(CredentialsError error) noexcept;

/// Everything authenticate() reads. Built by the control thread (allocates, runs SASLprep),
/// then read-only: published to the workers with the other secrets (design.md §3, RCU), which
/// only call the const members and the free functions below.
class Credentials {
public:
    /// A user with its keys prepared: the worker never runs SASLprep.
    struct User {
        std::string name;
        stun::LongTermKeyMd5 key_md5{};        ///< PASSWORD-ALGORITHM MD5 (and none given)
        stun::LongTermKeySha256 key_sha256{};  ///< PASSWORD-ALGORITHM SHA-256
        std::array<std::byte, 32> userhash{};  ///< SHA-256(name ":" realm) (RFC 8489 §14.4)
    };

    /// Validates `settings` whole and fills `out`; `out` is left as it was on an error.
    /// Errors: bad_realm, bad_username, bad_password, duplicate_user, empty_secret,
    /// bad_nonce_lifetime.
    [[nodiscard]] static CredentialsError build(const CredentialsSettings& settings,
                                                Credentials& out);

    [[nodiscard]] std::string_view realm() const noexcept { return realm_; }
    [[nodiscard]] const NonceKeys& nonce_keys() const noexcept { return nonce_keys_; }
    [[nodiscard]] std::uint64_t nonce_lifetime_s() const noexcept { return nonce_lifetime_s_; }
    [[nodiscard]] std::size_t rest_secret_count() const noexcept { return rest_secrets_.size(); }
    [[nodiscard]] std::span<const std::byte> rest_secret(std::size_t index) const noexcept;

    /// The user of this name, or nullptr. Binary search over string_views; no allocation.
    [[nodiscard]] const User* find_user(std::string_view name) const noexcept;
    /// The user whose USERHASH this is, or nullptr. Binary search; no allocation.
    [[nodiscard]] const User* find_userhash(std::span<const std::byte, 32> hash) const noexcept;

private:
    std::string realm_;
    std::vector<User> users_;  // sorted by name
    // (USERHASH, index into users_), sorted by hash.
    std::vector<std::pair<std::array<std::byte, 32>, std::uint32_t>> by_userhash_;
    std::vector<std::string> rest_secrets_;
    NonceKeys nonce_keys_;
    std::uint64_t nonce_lifetime_s_ = 600;
};

/// What authenticate() decided; on ok, what the response is signed with.
struct AuthResult {
    AuthVerdict verdict = AuthVerdict::missing_integrity;
    /// The request's PASSWORD-ALGORITHM, MD5 when it named none.
    stun::PasswordAlgorithm algorithm = stun::PasswordAlgorithm::md5;
    IntegrityAttribute integrity = IntegrityAttribute::message_integrity;
    /// The length of the request's MESSAGE-INTEGRITY-SHA256 (16..32), which the response's
    /// keeps.
    std::uint8_t integrity_sha256_length = 32;
    std::uint8_t key_size = 0;  ///< 16 (MD5) or 32 (SHA-256) on ok; 0 otherwise
    std::array<std::byte, 32> key_storage{};
    /// On ok, who: a configured user's name is a view into the Credentials (valid while they
    /// are, i.e. until the worker's next quiescent state); a REST username is a view into the
    /// request, so copy it before a response is written over the request's buffer.
    std::string_view username;

    [[nodiscard]] bool ok() const noexcept { return verdict == AuthVerdict::ok; }
    /// The long-term key the request was verified with (RFC 8489 §9.2.2); empty unless ok.
    [[nodiscard]] std::span<const std::byte> key() const noexcept {
        return std::span<const std::byte>(key_storage).first(key_size);
    }
};

/// RFC 8489 §9.2.4 for one request (header comment: the checks and their order). `client` is
/// the request's source address and port, to which nonces are bound; `now_s` is Unix seconds
/// from the caller's clock. Requests only (RFC 8656 §3.4: Send and Data indications "cannot
/// be authenticated").
///
/// Cost: one HMAC-SHA256 (the nonce) and one HMAC over the request; a REST username adds,
/// per shared secret tried, an HMAC-SHA1 (its password) and an MD5 or SHA-256 (its key).
/// Binary search for the user. No allocation, no clock read.
[[nodiscard]] AuthResult authenticate(const Credentials& credentials,
                                      const stun::Message& request, const stun::Address& client,
                                      std::uint64_t now_s) noexcept;

/// Writes the error response RFC 8489 §9.2.4 gives `result.verdict` into `out`: ERROR-CODE
/// with the RFC's reason phrase; for 401 and 438, REALM, a fresh NONCE for `client` at
/// `now_s` and PASSWORD-ALGORITHMS (SHA-256, MD5); for 400 nothing else; FINGERPRINT when the
/// request had one. Never integrity: 400 lacks the attributes it needs, and the others are
/// for clients whose key is unproven or that the RFC allows to go without (MAY). `out` may be
/// the request's own buffer. Returns the response's size, or 0 when result.ok() or `out` is
/// too small. No allocation.
[[nodiscard]] std::size_t write_auth_error(const AuthResult& result,
                                           const Credentials& credentials,
                                           const stun::Message& request,
                                           const stun::Address& client, std::uint64_t now_s,
                                           std::span<std::byte> out) noexcept;

/// Adds the integrity attribute of a response to an authenticated request: the type the
/// request was verified with (MESSAGE-INTEGRITY-SHA256 at the request's length), keyed with
/// result.key(). RFC 8489 §9.2.4 (last paragraph) asks for MESSAGE-INTEGRITY-SHA256 unless the
/// request named no password algorithm, and §9.2.5 has a client that was offered
/// PASSWORD-ALGORITHMS send MESSAGE-INTEGRITY-SHA256 only, so for a conforming client the two
/// rules agree; for one that does not, the attribute it computed is the one it can check.
/// Call it after the other attributes and before FINGERPRINT. Does nothing unless
/// result.ok(); errors are the writer's (sticky).
void sign_response(stun::MessageWriter& writer, const AuthResult& result) noexcept;

}  // namespace engine
