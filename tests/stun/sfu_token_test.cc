// Tests for stun/sfu_token.cc: SFU session tokens with an injected clock. The password is
// checked against base64(HMAC-SHA256) computed here with OpenSSL's HMAC() and EVP_EncodeBlock.
#include "stun/sfu_token.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <array>
#include <string>
#include <string_view>

#include "test_support.h"

namespace stun {
namespace {

using test::text_bytes;

const auto secret = text_bytes("sfu-secret-north");
constexpr std::uint64_t expiry = 1700000000;
constexpr std::uint64_t session = 0x00c0ffee12345678;

std::string make(const SfuUsername& u) {
    std::array<char, sfu_username_max> out{};
    std::size_t written = 0;
    EXPECT_EQ(make_sfu_username(u, out, written), SfuTokenError::ok);
    return std::string(out.data(), written);
}

TEST(SfuUsername, Make) {
    EXPECT_EQ(make({expiry, session, "alice"}), "1700000000:00c0ffee12345678:alice");
    EXPECT_EQ(make({0, 0, "a"}), "0:0000000000000000:a");
    const std::string longest(sfu_participant_max, '~');
    EXPECT_EQ(make({18446744073709551615u, ~std::uint64_t{0}, longest}).size(),
              sfu_username_max);
}

TEST(SfuUsername, MakeRefusesABadParticipantOrASmallBuffer) {
    std::array<char, sfu_username_max> out{};
    std::size_t written = 0;
    for (const std::string_view bad : {"", "a:b", "a b", "é", "a/b"})
        EXPECT_EQ(make_sfu_username({expiry, session, bad}, out, written),
                  SfuTokenError::malformed)
            << bad;
    EXPECT_EQ(make_sfu_username({expiry, session, std::string(65, 'a')}, out, written),
              SfuTokenError::malformed);
    // "1700000000:00c0ffee12345678:alice" is 33 characters.
    std::array<char, 33> exact{};
    EXPECT_EQ(make_sfu_username({expiry, session, "alice"}, exact, written), SfuTokenError::ok);
    EXPECT_EQ(written, 33u);
    EXPECT_EQ(make_sfu_username({expiry, session, "alice"}, std::span<char>(exact).first(32),
                                written),
              SfuTokenError::buffer_too_small);
    EXPECT_EQ(make_sfu_username({expiry, session, "alice"}, std::span<char>(exact).first(5),
                                written),
              SfuTokenError::buffer_too_small);
}

TEST(SfuUsername, ParseRoundTrips) {
    SfuUsername parsed;
    ASSERT_EQ(parse_sfu_username("1700000000:00c0ffee12345678:alice", parsed), SfuTokenError::ok);
    EXPECT_EQ(parsed.expiry, expiry);
    EXPECT_EQ(parsed.session, session);
    EXPECT_EQ(parsed.participant, "alice");
    ASSERT_EQ(parse_sfu_username("18446744073709551615:ffffffffffffffff:Z.9_~-", parsed),
              SfuTokenError::ok);
    EXPECT_EQ(parsed.session, ~std::uint64_t{0});
}

TEST(SfuUsername, ParseRefusesEveryMalformedPart) {
    SfuUsername parsed;
    for (const std::string_view bad : {
             "",
             "alice",
             ":00c0ffee12345678:alice",              // no expiry
             "17x:00c0ffee12345678:alice",           // expiry not digits
             "18446744073709551616:00c0ffee12345678:a",  // expiry over 64 bits
             "1700000000:00C0FFEE12345678:alice",    // upper-case hex
             "1700000000:00c0ffee1234567:alice",     // 15 digits
             "1700000000:00c0ffee123456789:alice",   // 17 digits
             "1700000000:00c0ffee1234567g:alice",    // not hex
             "1700000000:00c0ffee12345678:",         // no participant
             "1700000000:00c0ffee12345678:al:ice",   // a ':' in the participant
             "1700000000:00c0ffee12345678",          // no third part
         })
        EXPECT_EQ(parse_sfu_username(bad, parsed), SfuTokenError::malformed) << bad;
    const std::string long_name = "1:0000000000000000:" + std::string(65, 'a');
    EXPECT_EQ(parse_sfu_username(long_name, parsed), SfuTokenError::malformed);
}

TEST(SfuUsername, ExpiresAfterItsSecond) {
    SfuUsername parsed;
    const std::string username = make({expiry, session, "bob"});
    EXPECT_EQ(check_sfu_username(username, expiry - 1, parsed), SfuTokenError::ok);
    EXPECT_EQ(check_sfu_username(username, expiry, parsed), SfuTokenError::ok);
    EXPECT_EQ(check_sfu_username(username, expiry + 1, parsed), SfuTokenError::expired);
    EXPECT_EQ(check_sfu_username("nonsense", 0, parsed), SfuTokenError::malformed);
}

TEST(SfuPassword, IsBase64OfHmacSha256) {
    const std::string username = make({expiry, session, "alice"});
    std::array<char, sfu_password_size> out{};
    make_sfu_password(secret, username, out);
    const auto mac = test::openssl_hmac(EVP_sha256(), secret, text_bytes(username));
    unsigned char encoded[64] = {};
    const int n = EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(mac.data()),
                                  static_cast<int>(mac.size()));
    EXPECT_EQ(std::string(out.data(), out.size()),
              std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n)));
    // Another secret or another username, another password.
    std::array<char, sfu_password_size> other{};
    make_sfu_password(text_bytes("sfu-secret-south"), username, other);
    EXPECT_NE(other, out);
    make_sfu_password(secret, make({expiry, session, "alicf"}), other);
    EXPECT_NE(other, out);
}

TEST(SfuTokenError, Names) {
    EXPECT_EQ(to_string(SfuTokenError::ok), "ok");
    EXPECT_EQ(to_string(SfuTokenError::expired), "expired");
    EXPECT_EQ(to_string(SfuTokenError::malformed), "malformed");
}

}  // namespace
}  // namespace stun
