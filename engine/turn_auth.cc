// The long-term credential mechanism, server side (engine/include/engine/turn_auth.h): the
// credentials the control thread prepares, and RFC 8489 §9.2.4's checks in its order.
#include "engine/turn_auth.h"

#include <algorithm>
#include <cstring>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/crypto.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/rest.h"

namespace engine {
namespace {

using stun::PasswordAlgorithm;
using stun::PasswordAlgorithmValue;

// What every nonce of ours goes out with, in order of preference (RFC 8489 §9.2.4, first
// bullet: "list them in preferential order"). A client echoes it back unchanged (§9.2.5).
constexpr std::array<PasswordAlgorithmValue, 2> offered_algorithms = {{
    {static_cast<std::uint16_t>(PasswordAlgorithm::sha256), {}},
    {static_cast<std::uint16_t>(PasswordAlgorithm::md5), {}},
}};

// A text attribute's value; false when it is absent or malformed.
bool find_text(const stun::Message& request, std::uint16_t type, std::string_view& out) noexcept {
    const auto attribute = request.find(type);
    return attribute && stun::decode_text(*attribute, out) == stun::ParseError::ok;
}

// RFC 8489 §9.2.4, third bullet: the algorithm the key is made with, or false for a bid-down
// attempt.
bool choose_algorithm(const stun::Message& request, std::string_view nonce,
                      PasswordAlgorithm& out) noexcept {
    out = PasswordAlgorithm::md5;
    // "If the NONCE attribute starts with the "nonce cookie" with the STUN Security Feature
    // "Password algorithms" bit set to 1": every nonce of ours does, so one that does not is
    // not ours; it is taken as RFC 5389 would (MD5) and answered 438 by the last check.
    const auto features = stun::nonce_security_features(nonce);
    if (!features || (*features & stun::feature_password_algorithms) == 0) return true;
    const auto algorithm = request.find(stun::attr::password_algorithm);
    const auto algorithms = request.find(stun::attr::password_algorithms);
    // "If the request contains neither the PASSWORD-ALGORITHMS nor the PASSWORD-ALGORITHM
    // algorithm, then the request is processed as though PASSWORD-ALGORITHM were MD5."
    if (!algorithm && !algorithms) return true;
    // "(1) PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS are both present,"
    if (!algorithm || !algorithms) return false;
    // "(2) PASSWORD-ALGORITHMS matches the value sent in the response that sent this NONCE":
    // offered_algorithms, entry for entry. One more slot than offered, to see a longer list.
    std::array<PasswordAlgorithmValue, offered_algorithms.size() + 1> listed{};
    std::size_t count = 0;
    if (stun::decode_password_algorithms(*algorithms, listed, count) != stun::ParseError::ok ||
        count != offered_algorithms.size())
        return false;
    for (std::size_t i = 0; i < count; ++i) {
        if (listed[i].algorithm != offered_algorithms[i].algorithm ||
            !listed[i].parameters.empty())
            return false;
    }
    // "(3) PASSWORD-ALGORITHM matches one of the entries in PASSWORD-ALGORITHMS"
    PasswordAlgorithmValue chosen;
    if (stun::decode_password_algorithm(*algorithm, chosen) != stun::ParseError::ok ||
        !chosen.parameters.empty())
        return false;
    for (const auto& entry : offered_algorithms) {
        if (entry.algorithm == chosen.algorithm) {
            out = static_cast<PasswordAlgorithm>(chosen.algorithm);
            return true;
        }
    }
    return false;
}

// What a USERHASH span views before one is decoded (a fixed-extent span has no empty state).
constexpr std::array<std::byte, 32> no_userhash{};

void set_key(AuthResult& result, std::span<const std::byte> key) noexcept {
    std::memcpy(result.key_storage.data(), key.data(), key.size());
    result.key_size = static_cast<std::uint8_t>(key.size());
}

// RFC 8489 §9.2.4, fifth bullet: MESSAGE-INTEGRITY-SHA256 when present, else
// MESSAGE-INTEGRITY.
bool verifies(const stun::Message& request, const AuthResult& result) noexcept {
    const auto outcome = result.integrity == IntegrityAttribute::message_integrity_sha256
                             ? stun::verify_message_integrity_sha256(request, result.key())
                             : stun::verify_message_integrity(request, result.key());
    return outcome == stun::IntegrityResult::ok;
}

// A configured user's verdict: the key prepared for the request's algorithm.
AuthVerdict verify_user(const stun::Message& request, const Credentials::User& user,
                        AuthResult& result) noexcept {
    if (result.algorithm == PasswordAlgorithm::sha256) {
        set_key(result, user.key_sha256);
    } else {
        set_key(result, user.key_md5);
    }
    result.username = user.name;
    return verifies(request, result) ? AuthVerdict::ok : AuthVerdict::integrity_mismatch;
}

// One HMAC all the same (with the zero key a result starts with), so that the time a 401
// takes does not tell a configured user from an unknown one.
AuthVerdict unknown_user(const stun::Message& request, AuthResult& result) noexcept {
    result.key_size = 16;
    (void)verifies(request, result);
    return AuthVerdict::unknown_user;
}

// A TURN REST user's key from one shared secret. The password is base64 (only A-Z a-z 0-9 + /
// =), which SASLprep (RFC 4013) leaves as it is, so the key is hashed here directly:
// stun::rest_long_term_key() would run it through libidn, which allocates.
void derive_rest_key(std::span<const std::byte> secret, std::string_view username,
                     std::string_view realm, AuthResult& result) noexcept {
    char password[stun::rest_password_size];
    stun::make_rest_password(secret, username, password);
    // RFC 8489 §9.2.2: key = H(username ":" realm ":" password).
    const stun::Parts input = {stun::as_bytes(username), stun::as_bytes(":"),
                               stun::as_bytes(realm), stun::as_bytes(":"),
                               stun::as_bytes({password, sizeof password})};
    if (result.algorithm == PasswordAlgorithm::sha256) {
        stun::sha256(input, std::span<std::byte, 32>(result.key_storage.data(), 32));
        result.key_size = 32;
    } else {
        stun::md5(input, std::span<std::byte, 16>(result.key_storage.data(), 16));
        result.key_size = 16;
    }
}

// A USERNAME's verdict: a configured user, else a TURN REST username signed with any secret.
AuthVerdict verify_username(const Credentials& credentials, const stun::Message& request,
                            std::string_view username, std::uint64_t now_s,
                            AuthResult& result) noexcept {
    if (const Credentials::User* user = credentials.find_user(username); user != nullptr)
        return verify_user(request, *user, result);
    stun::RestUsername rest;
    if (credentials.rest_secret_count() == 0 ||
        stun::parse_rest_username(username, rest) != stun::RestError::ok) {
        return unknown_user(request, result);
    }
    // stun/rest.h: the expiry second itself is still valid.
    if (rest.expiry < now_s) return AuthVerdict::rest_username_expired;
    for (std::size_t i = 0; i < credentials.rest_secret_count(); ++i) {
        derive_rest_key(credentials.rest_secret(i), username, credentials.realm(), result);
        if (verifies(request, result)) {
            result.username = username;
            return AuthVerdict::ok;
        }
    }
    return AuthVerdict::integrity_mismatch;
}

AuthResult refuse(AuthResult& result, AuthVerdict verdict) noexcept {
    result.verdict = verdict;
    result.key_storage.fill(std::byte{0});
    result.key_size = 0;
    result.username = {};
    return result;
}

}  // namespace

std::uint16_t error_code(AuthVerdict verdict) noexcept {
    switch (verdict) {
    case AuthVerdict::ok: return 0;
    case AuthVerdict::missing_credentials:
    case AuthVerdict::password_algorithm_mismatch: return stun::error_code::bad_request;
    case AuthVerdict::missing_integrity:
    case AuthVerdict::wrong_realm:
    case AuthVerdict::unknown_user:
    case AuthVerdict::rest_username_expired:
    case AuthVerdict::integrity_mismatch: return stun::error_code::unauthenticated;
    case AuthVerdict::stale_nonce:
    case AuthVerdict::invalid_nonce: return stun::error_code::stale_nonce;
    }
    return stun::error_code::unauthenticated;
}

std::string_view to_string(CredentialsError error) noexcept {
    switch (error) {
    case CredentialsError::ok: return "ok";
    case CredentialsError::bad_realm: return "bad_realm";
    case CredentialsError::bad_username: return "bad_username";
    case CredentialsError::bad_password: return "bad_password";
    case CredentialsError::duplicate_user: return "duplicate_user";
    case CredentialsError::empty_secret: return "empty_secret";
    case CredentialsError::bad_nonce_lifetime: return "bad_nonce_lifetime";
    }
    return "unknown";
}

CredentialsError Credentials::build(const CredentialsSettings& settings, Credentials& out) {
    // The realm goes out in every 401 and 438, so it must fit a REALM (RFC 8489 §14.9).
    if (settings.realm.empty() ||
        settings.realm.size() > stun::text_send_limit(stun::attr::realm))
        return CredentialsError::bad_realm;
    if (settings.nonce_lifetime_s == 0) return CredentialsError::bad_nonce_lifetime;
    Credentials built;
    built.realm_ = settings.realm;
    built.users_.reserve(settings.users.size());
    for (const LongTermUser& user : settings.users) {
        if (user.name.empty() ||
            user.name.size() > stun::text_send_limit(stun::attr::username))
            return CredentialsError::bad_username;
        User prepared;
        prepared.name = user.name;
        // RFC 8489 §9.2.2: both keys now, so that a worker never runs SASLprep.
        if (stun::long_term_key_md5(user.name, settings.realm, user.password,
                                    prepared.key_md5) != stun::CredentialError::ok ||
            stun::long_term_key_sha256(user.name, settings.realm, user.password,
                                       prepared.key_sha256) != stun::CredentialError::ok)
            return CredentialsError::bad_password;
        stun::userhash(user.name, settings.realm, prepared.userhash);
        built.users_.push_back(std::move(prepared));
    }
    std::sort(built.users_.begin(), built.users_.end(),
              [](const User& a, const User& b) { return a.name < b.name; });
    if (std::adjacent_find(built.users_.begin(), built.users_.end(),
                           [](const User& a, const User& b) { return a.name == b.name; }) !=
        built.users_.end())
        return CredentialsError::duplicate_user;
    built.by_userhash_.reserve(built.users_.size());
    for (std::uint32_t i = 0; i < built.users_.size(); ++i)
        built.by_userhash_.emplace_back(built.users_[i].userhash, i);
    std::sort(built.by_userhash_.begin(), built.by_userhash_.end());
    for (const std::string_view secret : settings.rest_secrets) {
        if (secret.empty()) return CredentialsError::empty_secret;
        built.rest_secrets_.emplace_back(secret);
    }
    built.nonce_keys_ = settings.nonce_keys;
    built.nonce_lifetime_s_ = settings.nonce_lifetime_s;
    out = std::move(built);
    return CredentialsError::ok;
}

std::span<const std::byte> Credentials::rest_secret(std::size_t index) const noexcept {
    return stun::as_bytes(rest_secrets_[index]);
}

const Credentials::User* Credentials::find_user(std::string_view name) const noexcept {
    const auto it = std::lower_bound(
        users_.begin(), users_.end(), name,
        [](const User& user, std::string_view wanted) { return user.name < wanted; });
    return it != users_.end() && it->name == name ? &*it : nullptr;
}

const Credentials::User* Credentials::find_userhash(
    std::span<const std::byte, 32> hash) const noexcept {
    const auto it = std::lower_bound(
        by_userhash_.begin(), by_userhash_.end(), hash,
        [](const auto& entry, std::span<const std::byte, 32> wanted) {
            return std::memcmp(entry.first.data(), wanted.data(), 32) < 0;
        });
    if (it == by_userhash_.end() || std::memcmp(it->first.data(), hash.data(), 32) != 0)
        return nullptr;
    return &users_[it->second];
}

AuthResult authenticate(const Credentials& credentials, const stun::Message& request,
                        const stun::Address& client, std::uint64_t now_s) noexcept {
    AuthResult result;
    const auto integrity = request.message_integrity();
    const auto integrity_sha256 = request.message_integrity_sha256();
    // RFC 8489 §9.2.4: "If the message does not contain a MESSAGE-INTEGRITY or MESSAGE-
    // INTEGRITY-SHA256 attribute, the server MUST generate an error response with an error
    // code of 401 (Unauthenticated)."
    if (!integrity && !integrity_sha256) return refuse(result, AuthVerdict::missing_integrity);

    // "... but is missing either the USERNAME or USERHASH, REALM, or NONCE attribute, the
    // server MUST generate an error response with an error code of 400 (Bad Request)." One
    // present but malformed is as good as missing. USERNAME wins when both are sent.
    std::string_view realm;
    std::string_view nonce;
    std::string_view username;
    const auto username_attribute = request.find(stun::attr::username);
    const auto userhash_attribute = request.find(stun::attr::userhash);
    std::span<const std::byte, 32> userhash = no_userhash;
    if (!find_text(request, stun::attr::realm, realm) ||
        !find_text(request, stun::attr::nonce, nonce))
        return refuse(result, AuthVerdict::missing_credentials);
    if (username_attribute) {
        if (stun::decode_text(*username_attribute, username) != stun::ParseError::ok)
            return refuse(result, AuthVerdict::missing_credentials);
    } else if (!userhash_attribute ||
               stun::decode_userhash(*userhash_attribute, userhash) != stun::ParseError::ok) {
        return refuse(result, AuthVerdict::missing_credentials);
    }

    // The bid-down checks.
    if (!choose_algorithm(request, nonce, result.algorithm))
        return refuse(result, AuthVerdict::password_algorithm_mismatch);

    // Not a bullet of §9.2.4 (header comment): the key is made with the realm (§9.2.2), so
    // another realm's request fails the integrity check, whose answer is 401.
    if (realm != credentials.realm()) return refuse(result, AuthVerdict::wrong_realm);

    // "If the MESSAGE-INTEGRITY-SHA256 attribute is present, compute the value for the message
    // integrity as described in Section 14.6 ... Otherwise ... Section 14.5."
    if (integrity_sha256) {
        result.integrity = IntegrityAttribute::message_integrity_sha256;
        result.integrity_sha256_length = static_cast<std::uint8_t>(integrity_sha256->value.size());
    }
    // "If the value of the USERNAME or USERHASH attribute is not valid, ... 401", then the
    // integrity check, also 401.
    AuthVerdict verdict = AuthVerdict::unknown_user;
    if (username_attribute) {
        verdict = verify_username(credentials, request, username, now_s, result);
    } else if (const Credentials::User* user = credentials.find_userhash(userhash);
               user != nullptr) {
        verdict = verify_user(request, *user, result);
    } else {
        verdict = unknown_user(request, result);
    }
    if (verdict != AuthVerdict::ok) return refuse(result, verdict);

    // "If the NONCE is no longer valid, the server MUST generate an error response with an
    // error code of 438 (Stale Nonce)." Last, as the RFC orders it: the client has proved its
    // password, and retries with the new nonce.
    switch (check_nonce(credentials.nonce_keys(), client, nonce, now_s,
                        credentials.nonce_lifetime_s())) {
    case NonceCheck::ok: break;
    case NonceCheck::stale: return refuse(result, AuthVerdict::stale_nonce);
    case NonceCheck::invalid: return refuse(result, AuthVerdict::invalid_nonce);
    }
    result.verdict = AuthVerdict::ok;
    return result;
}

std::size_t write_auth_error(const AuthResult& result, const Credentials& credentials,
                             const stun::Message& request, const stun::Address& client,
                             std::uint64_t now_s, std::span<std::byte> out) noexcept {
    const std::uint16_t code = error_code(result.verdict);
    if (code == 0) return 0;
    // Read before the writer starts: `out` may be the request's own buffer.
    const bool with_fingerprint = request.fingerprint().has_value();
    stun::MessageWriter writer = stun::begin_error_response(out, request, code);
    // RFC 8489 §9.2.4: a 400 "SHOULD NOT include a USERNAME, USERHASH, NONCE, or REALM".
    // The 401s and the 438 carry REALM and a NONCE "selected by the server". PASSWORD-
    // ALGORITHMS is a MUST in the unknown-user 401 and the 438 and goes in the other 401s as
    // well: our nonce announces the feature, and §9.2.5 has a client that sees the bit
    // without the attribute give up instead of retrying.
    if (code != stun::error_code::bad_request) {
        writer.add_text(stun::attr::realm, credentials.realm());
        std::array<char, turn_nonce_size> nonce;
        const std::size_t nonce_size = make_nonce(credentials.nonce_keys(), client, now_s, nonce);
        writer.add_text(stun::attr::nonce, std::string_view(nonce.data(), nonce_size));
        writer.add_password_algorithms(offered_algorithms);
    }
    // No integrity (turn_auth.h says why); FINGERPRINT answers a client that uses it, which
    // may be multiplexing STUN with other traffic on this port (RFC 8489 §7, §14.7).
    if (with_fingerprint) writer.add_fingerprint();
    return writer.finish().size();
}

void sign_response(stun::MessageWriter& writer, const AuthResult& result) noexcept {
    if (!result.ok()) return;
    if (result.integrity == IntegrityAttribute::message_integrity_sha256) {
        writer.add_message_integrity_sha256(result.key(), result.integrity_sha256_length);
    } else {
        writer.add_message_integrity(result.key());
    }
}

}  // namespace engine
