// The long-term credential mechanism, server side: every check of RFC 8489 §9.2.4 with
// requests built by stun::MessageWriter, the error responses parsed back, success responses
// signed and verified, the RFC 5769 long-term vector, and no allocation per request.
#include "engine/turn_auth.h"

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/credentials.h"
#include "stun/integrity.h"
#include "stun/rest.h"
#include "../stun/rfc5769_vectors.h"
#include "allocation_count.h"
#include "test_support.h"

namespace {

using engine::AuthResult;
using engine::AuthVerdict;
using engine::Credentials;
using engine::CredentialsError;
using engine::IntegrityAttribute;
using stun::PasswordAlgorithm;

constexpr std::uint64_t now = 1'700'000'000;  // Unix seconds
constexpr std::uint64_t lifetime = 600;
constexpr std::string_view test_realm = "example.org";
constexpr std::string_view alice_password = "alice-password";
constexpr std::string_view secret_one = "first shared secret";
constexpr std::string_view secret_two = "second shared secret";

const stun::Address client = [] {
    stun::Address a = engine::test::address("198.51.100.7");
    a.port = 40000;
    return a;
}();

engine::NonceKeys nonce_keys() {
    engine::NonceKeys keys;
    keys.current.id = 1;
    keys.current.secret.fill(std::byte{0xA5});
    return keys;
}

Credentials make_credentials() {
    const engine::LongTermUser users[] = {
        {"alice", alice_password},
        {"bob", "bob-password"},
        {stun::rfc5769::long_term_username, stun::rfc5769::long_term_password},
    };
    const std::string_view secrets[] = {secret_one, secret_two};
    Credentials out;
    // Built before any test runs, where a gtest assertion has no test to fail.
    const CredentialsError error =
        Credentials::build({test_realm, users, secrets, nonce_keys(), lifetime}, out);
    if (error != CredentialsError::ok)
        throw std::runtime_error("test credentials: " + std::string(engine::to_string(error)));
    return out;
}

const Credentials credentials = make_credentials();

std::string nonce_for(const stun::Address& who, std::uint64_t issued_s) {
    std::array<char, engine::turn_nonce_size> out{};
    EXPECT_EQ(engine::make_nonce(nonce_keys(), who, issued_s, out), engine::turn_nonce_size);
    return std::string(out.data(), out.size());
}

std::string rest_username(std::uint64_t expiry, std::string_view user) {
    std::array<char, 64> out{};
    std::size_t written = 0;
    EXPECT_EQ(stun::make_rest_username(expiry, user, out, written), stun::RestError::ok);
    return std::string(out.data(), written);
}

std::string rest_password(std::string_view secret, std::string_view username) {
    std::array<char, stun::rest_password_size> out{};
    stun::make_rest_password(stun::as_bytes(secret), username, out);
    return std::string(out.data(), out.size());
}

// What the client puts in PASSWORD-ALGORITHM(S); `offered` is what our 401 listed.
enum class Algorithms {
    none,                   ///< neither attribute: MD5, as RFC 5389
    md5,                    ///< the offered list and MD5
    sha256,                 ///< the offered list and SHA-256
    algorithm_only,         ///< PASSWORD-ALGORITHM SHA-256 without the list
    list_only,              ///< the list without PASSWORD-ALGORITHM
    reordered_list,         ///< MD5 first: not what was offered
    shortened_list,         ///< MD5 alone: not what was offered
    unlisted_algorithm,     ///< the offered list and algorithm 3
};

enum class Integrity { none, sha1, sha256, sha256_truncated, both };

// One request, by default a correct one from alice with MESSAGE-INTEGRITY and MD5.
struct Spec {
    std::string username = "alice";
    std::string password = std::string(alice_password);
    bool send_username = true;
    bool send_userhash = false;
    std::optional<std::string> realm = std::string(test_realm);
    std::optional<std::string> nonce = nonce_for(client, now);
    Algorithms algorithms = Algorithms::none;
    Integrity integrity = Integrity::sha1;
    bool fingerprint = false;
};

PasswordAlgorithm key_algorithm(Algorithms algorithms) {
    return algorithms == Algorithms::sha256 || algorithms == Algorithms::algorithm_only
               ? PasswordAlgorithm::sha256
               : PasswordAlgorithm::md5;
}

// The key a client computes from what it sends (stun/credentials.h, independently of the
// tables Credentials builds).
std::vector<std::byte> client_key(const Spec& spec) {
    const std::string key_realm = spec.realm.value_or(std::string(test_realm));
    if (key_algorithm(spec.algorithms) == PasswordAlgorithm::sha256) {
        stun::LongTermKeySha256 key;
        EXPECT_EQ(stun::long_term_key_sha256(spec.username, key_realm, spec.password, key),
                  stun::CredentialError::ok);
        return {key.begin(), key.end()};
    }
    stun::LongTermKeyMd5 key;
    EXPECT_EQ(stun::long_term_key_md5(spec.username, key_realm, spec.password, key),
              stun::CredentialError::ok);
    return {key.begin(), key.end()};
}

constexpr std::array<std::byte, stun::transaction_id_size> txid = {
    std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5},  std::byte{6},
    std::byte{7}, std::byte{8}, std::byte{9}, std::byte{10}, std::byte{11}, std::byte{12}};

constexpr stun::PasswordAlgorithmValue sha256_entry{0x0002, {}};
constexpr stun::PasswordAlgorithmValue md5_entry{0x0001, {}};
constexpr stun::PasswordAlgorithmValue offered[] = {sha256_entry, md5_entry};

// The PASSWORD-ALGORITHMS list and the PASSWORD-ALGORITHM a request carries (either may be
// absent: empty, nullptr).
struct AlgorithmAttributes {
    std::span<const stun::PasswordAlgorithmValue> list;
    const stun::PasswordAlgorithmValue* algorithm = nullptr;
};

AlgorithmAttributes algorithm_attributes(Algorithms algorithms) {
    static constexpr stun::PasswordAlgorithmValue reordered[] = {md5_entry, sha256_entry};
    static constexpr stun::PasswordAlgorithmValue unlisted{0x0003, {}};
    switch (algorithms) {
    case Algorithms::none: return {};
    case Algorithms::md5: return {offered, &md5_entry};
    case Algorithms::sha256: return {offered, &sha256_entry};
    case Algorithms::algorithm_only: return {{}, &sha256_entry};
    case Algorithms::list_only: return {offered, nullptr};
    case Algorithms::reordered_list: return {reordered, &md5_entry};
    case Algorithms::shortened_list: return {{&md5_entry, 1}, &md5_entry};
    case Algorithms::unlisted_algorithm: return {offered, &unlisted};
    }
    return {};
}

std::vector<std::byte> build(const Spec& spec) {
    std::vector<std::byte> buffer(1500);
    stun::MessageWriter writer(buffer, stun::Method::allocate, stun::MessageClass::request, txid);
    writer.add_requested_transport(stun::transport_udp);
    if (spec.send_username) writer.add_text(stun::attr::username, spec.username);
    if (spec.send_userhash) {
        std::array<std::byte, 32> hash;
        stun::userhash(spec.username, spec.realm.value_or(std::string(test_realm)), hash);
        writer.add(stun::attr::userhash, hash);
    }
    if (spec.realm) writer.add_text(stun::attr::realm, *spec.realm);
    if (spec.nonce) writer.add_text(stun::attr::nonce, *spec.nonce);
    const AlgorithmAttributes sent = algorithm_attributes(spec.algorithms);
    if (!sent.list.empty()) writer.add_password_algorithms(sent.list);
    if (sent.algorithm != nullptr) writer.add_password_algorithm(*sent.algorithm);
    const std::vector<std::byte> key = client_key(spec);
    switch (spec.integrity) {
    case Integrity::none: break;
    case Integrity::sha1: writer.add_message_integrity(key); break;
    case Integrity::sha256: writer.add_message_integrity_sha256(key); break;
    case Integrity::sha256_truncated: writer.add_message_integrity_sha256(key, 16); break;
    case Integrity::both:
        // A wrong MESSAGE-INTEGRITY: with both present only the SHA-256 one counts.
        writer.add_message_integrity(std::vector<std::byte>(key.size(), std::byte{0x55}));
        writer.add_message_integrity_sha256(key);
        break;
    }
    if (spec.fingerprint) writer.add_fingerprint();
    EXPECT_TRUE(writer.ok()) << stun::to_string(writer.error());
    buffer.resize(writer.size());
    return buffer;
}

stun::Message parse(std::span<const std::byte> bytes) {
    stun::Message message;
    EXPECT_EQ(stun::Message::parse(bytes, message), stun::ParseError::ok);
    return message;
}

AuthResult authenticate(const std::vector<std::byte>& request) {
    return engine::authenticate(credentials, parse(request), client, now);
}

std::string_view text_of(const stun::Message& message, std::uint16_t type) {
    std::string_view text;
    const auto attribute = message.find(type);
    if (attribute) {
        EXPECT_EQ(stun::decode_text(*attribute, text), stun::ParseError::ok);
    }
    return text;
}

// Parses an error response to `request` and checks what RFC 8489 §9.2.4 puts in it: the code
// and its phrase; for 401 and 438 REALM, a valid NONCE for the client and PASSWORD-ALGORITHMS;
// never credentials or integrity; FINGERPRINT as the request had it.
void expect_error_response(std::span<const std::byte> response, const stun::Message& request,
                           std::uint16_t code) {
    const stun::Message message = parse(response);
    EXPECT_TRUE(message.is(stun::Method::allocate, stun::MessageClass::error_response));
    EXPECT_TRUE(std::ranges::equal(message.transaction_id(), request.transaction_id()));
    stun::ErrorCodeValue error;
    ASSERT_TRUE(message.find(stun::attr::error_code));
    ASSERT_EQ(stun::decode_error_code(*message.find(stun::attr::error_code), error),
              stun::ParseError::ok);
    EXPECT_EQ(error.code, code);
    EXPECT_EQ(error.reason, stun::reason_phrase(code));
    const bool challenge = code != 400;
    EXPECT_EQ(message.find(stun::attr::realm).has_value(), challenge);
    EXPECT_EQ(message.find(stun::attr::nonce).has_value(), challenge);
    EXPECT_EQ(message.find(stun::attr::password_algorithms).has_value(), challenge);
    if (challenge) {
        EXPECT_EQ(text_of(message, stun::attr::realm), test_realm);
        const std::string_view nonce = text_of(message, stun::attr::nonce);
        EXPECT_EQ(engine::check_nonce(nonce_keys(), client, nonce, now, lifetime),
                  engine::NonceCheck::ok)
            << nonce;
        std::array<stun::PasswordAlgorithmValue, 4> listed{};
        std::size_t count = 0;
        ASSERT_EQ(stun::decode_password_algorithms(*message.find(stun::attr::password_algorithms),
                                                   listed, count),
                  stun::ParseError::ok);
        ASSERT_EQ(count, 2u);
        EXPECT_EQ(listed[0].algorithm, 0x0002);  // SHA-256 preferred
        EXPECT_EQ(listed[1].algorithm, 0x0001);
    }
    for (const std::uint16_t absent :
         {stun::attr::username, stun::attr::userhash, stun::attr::password_algorithm})
        EXPECT_FALSE(message.find(absent)) << stun::attribute_name(absent);
    EXPECT_FALSE(message.message_integrity());
    EXPECT_FALSE(message.message_integrity_sha256());
    EXPECT_EQ(message.fingerprint().has_value(), request.fingerprint().has_value());
    if (message.fingerprint()) {
        EXPECT_EQ(stun::verify_fingerprint(message), stun::IntegrityResult::ok);
    }
}

// Authenticates `spec`'s request, expects `verdict`, and checks its error response.
void expect_refused(const Spec& spec, AuthVerdict verdict, std::uint16_t code) {
    const std::vector<std::byte> request = build(spec);
    const AuthResult result = authenticate(request);
    EXPECT_EQ(engine::to_string(result.verdict), engine::to_string(verdict));
    EXPECT_EQ(engine::error_code(result.verdict), code);
    EXPECT_TRUE(result.key().empty());
    EXPECT_TRUE(result.username.empty());
    std::array<std::byte, 512> response{};
    const std::size_t size = engine::write_auth_error(result, credentials, parse(request), client,
                                                      now, response);
    ASSERT_GT(size, 0u);
    expect_error_response(std::span(response).first(size), parse(request), code);
}

// Authenticates `spec`'s request, expects ok for `username`, signs a success response with
// the result and verifies it with the key the client computed: the round trip a client makes.
// The result returned has no username: a REST one views the request, gone by then.
AuthResult expect_accepted(const Spec& spec, std::string_view username) {
    const std::vector<std::byte> request = build(spec);
    AuthResult result = authenticate(request);
    EXPECT_EQ(engine::to_string(result.verdict), "ok");
    EXPECT_EQ(result.username, username);
    EXPECT_EQ(engine::error_code(result.verdict), 0);
    const std::vector<std::byte> key = client_key(spec);
    EXPECT_TRUE(std::ranges::equal(result.key(), key));
    EXPECT_EQ(result.algorithm, key_algorithm(spec.algorithms));

    std::array<std::byte, 512> buffer{};
    stun::MessageWriter writer(buffer, stun::Method::allocate,
                               stun::MessageClass::success_response, txid);
    writer.add_u32(stun::attr::lifetime, 600);
    engine::sign_response(writer, result);
    writer.add_fingerprint();
    EXPECT_TRUE(writer.ok());
    const stun::Message response = parse(writer.finish());
    if (result.integrity == IntegrityAttribute::message_integrity_sha256) {
        EXPECT_FALSE(response.message_integrity());
        EXPECT_EQ(stun::verify_message_integrity_sha256(response, key), stun::IntegrityResult::ok);
        // At the request's length.
        EXPECT_EQ(response.message_integrity_sha256()->value.size(),
                  parse(request).message_integrity_sha256()->value.size());
    } else {
        EXPECT_FALSE(response.message_integrity_sha256());
        EXPECT_EQ(stun::verify_message_integrity(response, key), stun::IntegrityResult::ok);
    }
    std::array<std::byte, 64> unused{};
    EXPECT_EQ(engine::write_auth_error(result, credentials, parse(request), client, now, unused),
              0u);
    result.username = {};
    return result;
}

TEST(TurnAuth, FirstRequestIsChallengedWithRealmNonceAndAlgorithms) {
    Spec spec;
    spec.integrity = Integrity::none;
    spec.send_username = false;
    spec.realm.reset();
    spec.nonce.reset();
    expect_refused(spec, AuthVerdict::missing_integrity, 401);
    spec.fingerprint = true;  // the challenge then carries one too
    expect_refused(spec, AuthVerdict::missing_integrity, 401);
}

// One named case per way a client may sign: the algorithm its key is made with, and the
// integrity attribute (and length) its response comes back with.
struct AcceptedCase {
    std::string_view name;
    Algorithms algorithms;
    Integrity integrity;
    PasswordAlgorithm algorithm;
    IntegrityAttribute response_integrity;
    std::size_t key_size;
    std::uint8_t sha256_length;
};

TEST(TurnAuth, AcceptsEachAlgorithmAndIntegrityAttribute) {
    constexpr auto md5 = PasswordAlgorithm::md5;
    constexpr auto sha256 = PasswordAlgorithm::sha256;
    constexpr auto with_sha1 = IntegrityAttribute::message_integrity;
    constexpr auto with_sha256 = IntegrityAttribute::message_integrity_sha256;
    const AcceptedCase cases[] = {
        {"an RFC 5389 client: no algorithm, MESSAGE-INTEGRITY", Algorithms::none,
         Integrity::sha1, md5, with_sha1, 16, 32},
        {"negotiated MD5", Algorithms::md5, Integrity::sha256, md5, with_sha256, 16, 32},
        {"negotiated SHA-256", Algorithms::sha256, Integrity::sha256, sha256, with_sha256, 32, 32},
        {"MESSAGE-INTEGRITY-SHA256 truncated to 16 bytes", Algorithms::sha256,
         Integrity::sha256_truncated, sha256, with_sha256, 32, 16},
        // RFC 8489 §9.2.4: "If the MESSAGE-INTEGRITY-SHA256 attribute is present, compute ...
        // Section 14.6"; the MESSAGE-INTEGRITY before it is wrong on purpose.
        {"both integrity attributes: only SHA-256 counts", Algorithms::sha256, Integrity::both,
         sha256, with_sha256, 32, 32},
    };
    for (const AcceptedCase& c : cases) {
        SCOPED_TRACE(c.name);
        Spec spec;
        spec.algorithms = c.algorithms;
        spec.integrity = c.integrity;
        const AuthResult result = expect_accepted(spec, "alice");
        EXPECT_EQ(result.algorithm, c.algorithm);
        EXPECT_EQ(result.integrity, c.response_integrity);
        EXPECT_EQ(result.key().size(), c.key_size);
        EXPECT_EQ(result.integrity_sha256_length, c.sha256_length);
    }
}

TEST(TurnAuth, UserhashFindsTheUser) {
    Spec spec;
    spec.send_username = false;
    spec.send_userhash = true;
    spec.username = "bob";
    spec.password = "bob-password";
    spec.algorithms = Algorithms::sha256;
    spec.integrity = Integrity::sha256;
    // The name comes from the table, not from the request, which has none.
    expect_accepted(spec, "bob");
}

TEST(TurnAuth, RestUsernameWithEitherSecret) {
    for (const std::string_view secret : {secret_one, secret_two}) {
        SCOPED_TRACE(secret);
        Spec spec;
        spec.username = rest_username(now + 3600, "carol");
        spec.password = rest_password(secret, spec.username);
        expect_accepted(spec, spec.username);
        spec.algorithms = Algorithms::sha256;
        spec.integrity = Integrity::sha256;
        expect_accepted(spec, spec.username);
    }
}

TEST(TurnAuth, RestUsernameAtItsExpirySecondIsStillValid) {
    Spec spec;
    spec.username = rest_username(now, "carol");
    spec.password = rest_password(secret_one, spec.username);
    expect_accepted(spec, spec.username);
}

TEST(TurnAuth, RestKeyMatchesTheStunLibrarys) {
    // turn_auth.cc hashes the REST key itself (no SASLprep, which allocates): the same key
    // as stun::rest_long_term_key().
    const std::string username = rest_username(now + 60, "carol");
    stun::LongTermKeyMd5 expected;
    ASSERT_EQ(stun::rest_long_term_key(stun::as_bytes(secret_two), username, test_realm, now,
                                       expected),
              stun::RestError::ok);
    Spec spec;
    spec.username = username;
    spec.password = rest_password(secret_two, username);
    EXPECT_TRUE(std::ranges::equal(expect_accepted(spec, username).key(), expected));
}

TEST(TurnAuth, FreshNonceFromANodeWhoseClockRunsAheadIsAccepted) {
    Spec spec;
    spec.nonce = nonce_for(client, now + engine::nonce_future_skew_s);
    expect_accepted(spec, "alice");
}

// One named case per refusal, with the code RFC 8489 §9.2.4 gives it.
struct RefusalCase {
    std::string_view name;
    void (*change)(Spec&);
    AuthVerdict verdict;
    std::uint16_t code;
};

const RefusalCase refusal_cases[] = {
    {"no username or userhash", [](Spec& s) { s.send_username = false; },
     AuthVerdict::missing_credentials, 400},
    {"no realm", [](Spec& s) { s.realm.reset(); }, AuthVerdict::missing_credentials, 400},
    {"no nonce", [](Spec& s) { s.nonce.reset(); }, AuthVerdict::missing_credentials, 400},
    {"password-algorithm without the list",
     [](Spec& s) { s.algorithms = Algorithms::algorithm_only; },
     AuthVerdict::password_algorithm_mismatch, 400},
    {"the list without password-algorithm", [](Spec& s) { s.algorithms = Algorithms::list_only; },
     AuthVerdict::password_algorithm_mismatch, 400},
    {"the list reordered", [](Spec& s) { s.algorithms = Algorithms::reordered_list; },
     AuthVerdict::password_algorithm_mismatch, 400},
    {"the list shortened to md5", [](Spec& s) { s.algorithms = Algorithms::shortened_list; },
     AuthVerdict::password_algorithm_mismatch, 400},
    {"an algorithm not in the list",
     [](Spec& s) { s.algorithms = Algorithms::unlisted_algorithm; },
     AuthVerdict::password_algorithm_mismatch, 400},
    {"another realm", [](Spec& s) { s.realm = "example.net"; }, AuthVerdict::wrong_realm, 401},
    {"unknown user", [](Spec& s) { s.username = "mallory"; }, AuthVerdict::unknown_user, 401},
    {"unknown userhash",
     [](Spec& s) {
         s.send_username = false;
         s.send_userhash = true;
         s.username = "mallory";
     },
     AuthVerdict::unknown_user, 401},
    {"malformed rest username",
     [](Spec& s) {
         s.username = "soon:carol";
         s.password = rest_password(secret_one, s.username);
     },
     AuthVerdict::unknown_user, 401},
    {"expired rest username",
     [](Spec& s) {
         s.username = rest_username(now - 1, "carol");
         s.password = rest_password(secret_one, s.username);
     },
     AuthVerdict::rest_username_expired, 401},
    {"rest username signed with an unknown secret",
     [](Spec& s) {
         s.username = rest_username(now + 60, "carol");
         s.password = rest_password("not our secret", s.username);
     },
     AuthVerdict::integrity_mismatch, 401},
    {"wrong password, md5", [](Spec& s) { s.password = "guess"; },
     AuthVerdict::integrity_mismatch, 401},
    {"wrong password, sha-256",
     [](Spec& s) {
         s.password = "guess";
         s.algorithms = Algorithms::sha256;
         s.integrity = Integrity::sha256;
     },
     AuthVerdict::integrity_mismatch, 401},
    {"another user's password", [](Spec& s) { s.password = "bob-password"; },
     AuthVerdict::integrity_mismatch, 401},
    {"stale nonce", [](Spec& s) { s.nonce = nonce_for(client, now - lifetime); },
     AuthVerdict::stale_nonce, 438},
    {"forged nonce",
     [](Spec& s) {
         std::string& nonce = *s.nonce;
         nonce.back() = nonce.back() == '0' ? '1' : '0';
     },
     AuthVerdict::invalid_nonce, 438},
    {"another client's nonce",
     [](Spec& s) {
         stun::Address other = client;
         other.port = 40001;
         s.nonce = nonce_for(other, now);
     },
     AuthVerdict::invalid_nonce, 438},
    {"a nonce without our cookie", [](Spec& s) { s.nonce = "f//499k954d6OL34oL9FSTvy64sA"; },
     AuthVerdict::invalid_nonce, 438},
    {"a stale nonce with the wrong password",
     [](Spec& s) {
         s.nonce = nonce_for(client, now - lifetime);
         s.password = "guess";
     },
     AuthVerdict::integrity_mismatch, 401},
};

TEST(TurnAuth, OneRefusalPerCheck) {
    for (const RefusalCase& c : refusal_cases) {
        SCOPED_TRACE(c.name);
        Spec spec;
        c.change(spec);
        expect_refused(spec, c.verdict, c.code);
        spec.fingerprint = true;
        expect_refused(spec, c.verdict, c.code);
    }
}

TEST(TurnAuth, Rfc5769LongTermKeyAndIntegrity) {
    namespace v = stun::rfc5769;
    const Credentials::User* user = credentials.find_user(v::long_term_username);
    ASSERT_NE(user, nullptr);
    // RFC 5769 §2.4: the key MD5(username ":" realm ":" SASLprep(password)), prepared at build.
    EXPECT_TRUE(std::ranges::equal(user->key_md5, std::as_bytes(std::span(v::long_term_key))));
    const auto bytes = std::as_bytes(std::span(v::sample_long_term_request));
    const stun::Message request = parse(bytes);
    EXPECT_EQ(stun::verify_message_integrity(request, user->key_md5), stun::IntegrityResult::ok);
    // Through authenticate(): the integrity verifies with the prepared key, and then the nonce,
    // fixed in the RFC and not ours, is answered 438.
    const AuthResult result = engine::authenticate(credentials, request, client, now);
    EXPECT_EQ(engine::to_string(result.verdict), "invalid_nonce");
}

TEST(TurnAuth, ErrorResponseCanBeWrittenOverTheRequest) {
    Spec spec;
    spec.password = "guess";
    spec.fingerprint = true;
    std::vector<std::byte> request = build(spec);
    const AuthResult result = authenticate(request);
    std::array<std::byte, 512> apart{};
    const std::size_t apart_size =
        engine::write_auth_error(result, credentials, parse(request), client, now, apart);
    request.resize(512);
    const stun::Message original = parse(std::span(request).first(build(spec).size()));
    const std::size_t in_place_size =
        engine::write_auth_error(result, credentials, original, client, now, request);
    ASSERT_EQ(in_place_size, apart_size);
    EXPECT_TRUE(std::ranges::equal(std::span(request).first(in_place_size),
                                   std::span(apart).first(apart_size)));
}

TEST(TurnAuth, ErrorResponseTooLargeForTheBufferIsNotWritten) {
    Spec spec;
    spec.password = "guess";
    const std::vector<std::byte> request = build(spec);
    const AuthResult result = authenticate(request);
    std::array<std::byte, 64> small{};
    EXPECT_EQ(engine::write_auth_error(result, credentials, parse(request), client, now, small),
              0u);
}

TEST(TurnAuth, AuthenticateAndErrorResponsesDoNotAllocate) {
    Spec sha256_rest;
    sha256_rest.username = rest_username(now + 60, "carol");
    sha256_rest.password = rest_password(secret_two, sha256_rest.username);
    sha256_rest.algorithms = Algorithms::sha256;
    sha256_rest.integrity = Integrity::sha256;
    Spec userhash;
    userhash.send_username = false;
    userhash.send_userhash = true;
    Spec wrong_password;
    wrong_password.password = "guess";
    Spec stale;
    stale.nonce = nonce_for(client, now - lifetime);
    Spec first;
    first.integrity = Integrity::none;
    const std::vector<std::vector<std::byte>> requests = {
        build(Spec{}), build(sha256_rest), build(userhash), build(wrong_password), build(stale),
        build(first)};
    std::vector<stun::Message> parsed;
    for (const auto& request : requests) parsed.push_back(parse(request));
    std::array<std::byte, 512> out{};

    const std::size_t before = engine::test::allocations();
    unsigned accepted = 0;
    std::size_t written = 0;
    for (const stun::Message& request : parsed) {
        const AuthResult result = engine::authenticate(credentials, request, client, now);
        if (result.ok()) {
            ++accepted;
            stun::MessageWriter writer(out, stun::Method::allocate,
                                       stun::MessageClass::success_response, txid);
            engine::sign_response(writer, result);
            written += writer.size();
        } else {
            written += engine::write_auth_error(result, credentials, request, client, now, out);
        }
    }
    EXPECT_EQ(engine::test::allocations() - before, 0u);
    EXPECT_EQ(accepted, 3u);
    EXPECT_GT(written, 0u);
}

TEST(TurnAuth, UserLookupByNameAndHash) {
    EXPECT_EQ(credentials.find_user("alice")->name, "alice");
    EXPECT_EQ(credentials.find_user("bob")->name, "bob");
    EXPECT_EQ(credentials.find_user("alic"), nullptr);
    EXPECT_EQ(credentials.find_user(""), nullptr);
    EXPECT_EQ(credentials.find_user("zed"), nullptr);
    std::array<std::byte, 32> hash;
    stun::userhash("alice", test_realm, hash);
    EXPECT_EQ(credentials.find_userhash(hash), credentials.find_user("alice"));
    stun::userhash("alice", "example.net", hash);
    EXPECT_EQ(credentials.find_userhash(hash), nullptr);
}

struct BuildCase {
    std::string_view name;
    engine::CredentialsSettings settings;
    CredentialsError expected;
};

TEST(Credentials, OneBuildErrorPerCase) {
    const engine::LongTermUser alice[] = {{"alice", "pw"}};
    const engine::LongTermUser twice[] = {{"alice", "pw"}, {"bob", "pw"}, {"alice", "other"}};
    const engine::LongTermUser nameless[] = {{"", "pw"}};
    const std::string long_name(509, 'u');
    const engine::LongTermUser long_named[] = {{long_name, "pw"}};
    const engine::LongTermUser control_character[] = {{"alice", "p\x07w"}};
    const std::string_view empty_secret[] = {secret_one, ""};
    const std::string long_realm(510, 'r');
    const BuildCase cases[] = {
        {"valid", {test_realm, alice, {}, nonce_keys(), lifetime}, CredentialsError::ok},
        {"empty realm", {"", alice, {}, nonce_keys(), lifetime}, CredentialsError::bad_realm},
        {"realm over 509 bytes", {long_realm, alice, {}, nonce_keys(), lifetime},
         CredentialsError::bad_realm},
        {"empty username", {test_realm, nameless, {}, nonce_keys(), lifetime},
         CredentialsError::bad_username},
        {"username over 508 bytes", {test_realm, long_named, {}, nonce_keys(), lifetime},
         CredentialsError::bad_username},
        {"password SASLprep refuses", {test_realm, control_character, {}, nonce_keys(), lifetime},
         CredentialsError::bad_password},
        {"duplicate user", {test_realm, twice, {}, nonce_keys(), lifetime},
         CredentialsError::duplicate_user},
        {"empty secret", {test_realm, alice, empty_secret, nonce_keys(), lifetime},
         CredentialsError::empty_secret},
        {"zero nonce lifetime", {test_realm, alice, {}, nonce_keys(), 0},
         CredentialsError::bad_nonce_lifetime},
    };
    for (const BuildCase& c : cases) {
        Credentials out;
        EXPECT_EQ(engine::to_string(Credentials::build(c.settings, out)),
                  engine::to_string(c.expected))
            << c.name;
        // Left as it was on an error.
        EXPECT_EQ(out.realm().empty(), c.expected != CredentialsError::ok) << c.name;
    }
}

TEST(Credentials, UsersOnlyMeansNoRestUsernames) {
    const engine::LongTermUser users[] = {{"alice", alice_password}};
    Credentials no_secrets;
    ASSERT_EQ(Credentials::build({test_realm, users, {}, nonce_keys(), lifetime}, no_secrets),
              CredentialsError::ok);
    Spec spec;
    spec.username = rest_username(now + 60, "carol");
    spec.password = rest_password(secret_one, spec.username);
    const std::vector<std::byte> request = build(spec);
    EXPECT_EQ(engine::authenticate(no_secrets, parse(request), client, now).verdict,
              AuthVerdict::unknown_user);
}

TEST(AuthVerdict, NamesAreUniqueAndHaveHelpAndACode) {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < engine::auth_verdict_count; ++i) {
        const engine::ReasonInfo& info = engine::auth_verdicts[i];
        EXPECT_FALSE(info.help.empty()) << info.name;
        EXPECT_TRUE(names.insert(info.name).second) << info.name;
        const std::uint16_t code = engine::error_code(static_cast<AuthVerdict>(i));
        EXPECT_TRUE(i == 0 ? code == 0 : code == 400 || code == 401 || code == 438) << info.name;
    }
    EXPECT_EQ(engine::to_string(AuthVerdict::ok), "ok");
    EXPECT_EQ(engine::to_string(AuthVerdict::invalid_nonce), "invalid_nonce");
    EXPECT_EQ(engine::to_string(CredentialsError::duplicate_user), "duplicate_user");
}

}  // namespace
