// Tests for stun/rest.cc: TURN REST credentials with an injected clock. The password is checked
// against base64(HMAC-SHA1) computed here with OpenSSL's HMAC() and EVP_EncodeBlock.
#include "stun/rest.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <array>
#include <set>
#include <string>
#include <string_view>

#include "stun/credentials.h"
#include "test_support.h"

namespace stun {
namespace {

using test::text_bytes;
using test::to_hex;

const auto secret = text_bytes("north-secret");
constexpr std::uint64_t expiry = 1700000000;

std::string openssl_rest_password(std::span<const std::byte> key, std::string_view username) {
    const auto mac = test::openssl_hmac(EVP_sha1(), key, text_bytes(username));
    unsigned char encoded[64] = {};
    const int n = EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(mac.data()),
                                  static_cast<int>(mac.size()));
    return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

std::string password_for(std::string_view username) {
    std::array<char, rest_password_size> out{};
    make_rest_password(secret, username, out);
    return std::string(out.data(), out.size());
}

TEST(RestUsername, Make) {
    std::array<char, 64> out{};
    std::size_t written = 0;
    ASSERT_EQ(make_rest_username(expiry, "alice", out, written), RestError::ok);
    EXPECT_EQ(std::string_view(out.data(), written), "1700000000:alice");
    ASSERT_EQ(make_rest_username(0, "", out, written), RestError::ok);
    EXPECT_EQ(std::string_view(out.data(), written), "0:");
    ASSERT_EQ(make_rest_username(18446744073709551615u, "u", out, written), RestError::ok);
    EXPECT_EQ(std::string_view(out.data(), written), "18446744073709551615:u");
}

TEST(RestUsername, MakeIntoTooSmallBuffer) {
    std::array<char, 16> exact{};
    std::size_t written = 0;
    EXPECT_EQ(make_rest_username(expiry, "alice", exact, written), RestError::ok);  // 16 chars
    EXPECT_EQ(written, 16u);
    std::array<char, 15> small{};
    EXPECT_EQ(make_rest_username(expiry, "alice", small, written), RestError::buffer_too_small);
    EXPECT_EQ(make_rest_username(expiry, "", std::span<char>(small).first(10), written),
              RestError::buffer_too_small);
}

TEST(RestPassword, KnownAnswer) {
    // python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
    //   b"north-secret", b"1700000000:alice", hashlib.sha1).digest()).decode())'
    EXPECT_EQ(password_for("1700000000:alice"), "g+jb180fcj+xlpA/2mP60OdIgU0=");
    EXPECT_EQ(password_for("1700000000:alice"), openssl_rest_password(secret, "1700000000:alice"));
}

TEST(RestPassword, MatchesOpensslForManyUsernames) {
    for (std::string_view username : {"1700000000:", "0:x", "1700000000:alice@example.org",
                                      "99999999999:\xe3\x83\x9e"}) {
        EXPECT_EQ(password_for(username), openssl_rest_password(secret, username)) << username;
    }
    std::array<char, rest_password_size> out{};
    make_rest_password({}, "1700000000:alice", out);
    EXPECT_EQ(std::string(out.data(), out.size()), openssl_rest_password({}, "1700000000:alice"));
}

TEST(RestParse, Valid) {
    RestUsername parsed;
    ASSERT_EQ(parse_rest_username("1700000000:alice", parsed), RestError::ok);
    EXPECT_EQ(parsed.expiry, expiry);
    EXPECT_EQ(parsed.user, "alice");
    ASSERT_EQ(parse_rest_username("1700000000:", parsed), RestError::ok);
    EXPECT_EQ(parsed.expiry, expiry);
    EXPECT_EQ(parsed.user, "");
    ASSERT_EQ(parse_rest_username("18446744073709551615:max", parsed), RestError::ok);
    EXPECT_EQ(parsed.expiry, 18446744073709551615u);
    EXPECT_EQ(parsed.user, "max");
}

TEST(RestParse, Malformed) {
    for (std::string_view username :
         {"abc:user", ":user", "123", "", ":", "1700000000",
          "1234567890123456789012345:user",  // 25 digits: overflow
          "18446744073709551616:user",       // 2^64: overflow by one
          "+1700000000:user", "-1:user", " 1700000000:user", "17000x0000:user",
          "0x10:user"}) {
        RestUsername parsed;
        EXPECT_EQ(parse_rest_username(username, parsed), RestError::malformed)
            << '"' << username << '"';
    }
}

TEST(RestLongTermKey, ValidBeforeAndAtExpiryExpiredAfter) {
    const std::string username = "1700000000:alice";
    const std::string password = password_for(username);
    LongTermKeyMd5 expected{};
    ASSERT_EQ(long_term_key_md5(username, "example.org", password, expected), CredentialError::ok);
    // And independently: MD5(username ":" realm ":" password); base64 needs no SASLprep.
    EXPECT_EQ(to_hex(expected),
              to_hex(test::openssl_digest(
                  EVP_md5(), text_bytes(username + ":example.org:" + password))));

    LongTermKeyMd5 key{};
    ASSERT_EQ(rest_long_term_key(secret, username, "example.org", expiry - 3600, key),
              RestError::ok);
    EXPECT_EQ(to_hex(key), to_hex(expected));

    key = {};
    ASSERT_EQ(rest_long_term_key(secret, username, "example.org", expiry, key), RestError::ok)
        << "the expiry second itself is still valid";
    EXPECT_EQ(to_hex(key), to_hex(expected));

    EXPECT_EQ(rest_long_term_key(secret, username, "example.org", expiry + 1, key),
              RestError::expired);
    EXPECT_EQ(rest_long_term_key(secret, username, "example.org", 18446744073709551615u, key),
              RestError::expired);
}

TEST(RestLongTermKey, EmptyUser) {
    const std::string username = "1700000000:";
    LongTermKeyMd5 expected{};
    ASSERT_EQ(long_term_key_md5(username, "r", password_for(username), expected),
              CredentialError::ok);
    LongTermKeyMd5 key{};
    ASSERT_EQ(rest_long_term_key(secret, username, "r", 0, key), RestError::ok);
    EXPECT_EQ(to_hex(key), to_hex(expected));
}

TEST(RestLongTermKey, WrongSecretGivesAnotherKey) {
    const std::string username = "1700000000:alice";
    LongTermKeyMd5 right{};
    LongTermKeyMd5 wrong{};
    ASSERT_EQ(rest_long_term_key(secret, username, "example.org", expiry, right), RestError::ok);
    ASSERT_EQ(rest_long_term_key(text_bytes("south-secret"), username, "example.org", expiry, wrong),
              RestError::ok);
    EXPECT_NE(to_hex(right), to_hex(wrong));
}

TEST(RestLongTermKey, MalformedUsername) {
    LongTermKeyMd5 key{};
    for (std::string_view username : {"abc:user", ":user", "123", ""}) {
        EXPECT_EQ(rest_long_term_key(secret, username, "example.org", 0, key), RestError::malformed)
            << '"' << username << '"';
    }
}

TEST(RestErrorName, NamesAreDistinctAndNonEmpty) {
    std::set<std::string_view> names;
    for (auto e : {RestError::ok, RestError::malformed, RestError::expired,
                   RestError::buffer_too_small}) {
        EXPECT_FALSE(to_string(e).empty());
        names.insert(to_string(e));
    }
    EXPECT_EQ(names.size(), 4u);
}

}  // namespace
}  // namespace stun
