// Stateless nonces, with the clock injected: fresh, stale, from the future, tampered with,
// another client's, and across a key rotation.
#include "engine/turn_nonce.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>

#include "stun/attributes.h"
#include "allocation_count.h"
#include "test_support.h"

namespace {

using engine::NonceCheck;
using engine::NonceKey;
using engine::NonceKeys;

constexpr std::uint64_t issued_at = 1'700'000'000;  // Unix seconds
constexpr std::uint64_t lifetime = 600;

NonceKey key(std::uint8_t id, std::uint8_t fill) {
    NonceKey k;
    k.id = id;
    k.secret.fill(static_cast<std::byte>(fill));
    return k;
}

NonceKeys keys_with(const NonceKey& current) {
    NonceKeys keys;
    keys.current = current;
    return keys;
}

stun::Address client(std::string_view ip, std::uint16_t port) {
    stun::Address a = engine::test::address(ip);
    a.port = port;
    return a;
}

std::string nonce_for(const NonceKeys& keys, const stun::Address& who, std::uint64_t now_s) {
    std::array<char, engine::turn_nonce_size> out{};
    EXPECT_EQ(engine::make_nonce(keys, who, now_s, out), engine::turn_nonce_size);
    return std::string(out.data(), out.size());
}

// to_string() on both sides, so that a failure prints names.
void expect_check(const NonceKeys& keys, const stun::Address& who, std::string_view nonce,
                  std::uint64_t now_s, NonceCheck expected) {
    EXPECT_EQ(engine::to_string(engine::check_nonce(keys, who, nonce, now_s, lifetime)),
              engine::to_string(expected))
        << nonce << " at +" << static_cast<std::int64_t>(now_s - issued_at) << " s";
}

const stun::Address alice = client("198.51.100.7", 40000);

TEST(TurnNonce, StartsWithTheCookieAndFeatureSet) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string nonce = nonce_for(keys, alice, issued_at);
    EXPECT_TRUE(nonce.starts_with(stun::nonce_cookie)) << nonce;
    // RFC 8489 §9.2.1: password algorithms (bit 0) set, username anonymity (bit 1) clear.
    EXPECT_EQ(stun::nonce_security_features(nonce), stun::feature_password_algorithms);
    EXPECT_EQ(nonce.substr(0, 13), "obMatJos2gAAA");
}

TEST(TurnNonce, EveryCharacterIsQuotedStringText) {
    const std::string nonce = nonce_for(keys_with(key(1, 0xA5)), alice, issued_at);
    ASSERT_EQ(nonce.size(), engine::turn_nonce_size);
    // RFC 8489 §14.10: qdtext (RFC 3261) is %x21, %x23-5B, %x5D-7E and a few more.
    for (const char c : nonce) {
        EXPECT_TRUE(c >= 0x21 && c <= 0x7E && c != '"' && c != '\\') << nonce;
    }
}

TEST(TurnNonce, FreshNonceIsOkUntilItsLifetimeEnds) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string nonce = nonce_for(keys, alice, issued_at);
    expect_check(keys, alice, nonce, issued_at, NonceCheck::ok);
    expect_check(keys, alice, nonce, issued_at + lifetime - 1, NonceCheck::ok);
    expect_check(keys, alice, nonce, issued_at + lifetime, NonceCheck::stale);
    expect_check(keys, alice, nonce, issued_at + 10 * lifetime, NonceCheck::stale);
}

TEST(TurnNonce, FromTheFutureBeyondTheSkewIsInvalid) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string nonce = nonce_for(keys, alice, issued_at);
    expect_check(keys, alice, nonce, issued_at - engine::nonce_future_skew_s, NonceCheck::ok);
    expect_check(keys, alice, nonce, issued_at - engine::nonce_future_skew_s - 1,
                 NonceCheck::invalid);
    expect_check(keys, alice, nonce, 0, NonceCheck::invalid);
}

TEST(TurnNonce, ExtremeTimesNeitherOverflowNorPass) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    constexpr std::uint64_t end_of_time = ~std::uint64_t{0};
    const std::string last = nonce_for(keys, alice, end_of_time);
    EXPECT_EQ(engine::check_nonce(keys, alice, last, end_of_time, lifetime), NonceCheck::ok);
    EXPECT_EQ(engine::check_nonce(keys, alice, last, 0, lifetime), NonceCheck::invalid);
    const std::string first = nonce_for(keys, alice, 0);
    EXPECT_EQ(engine::check_nonce(keys, alice, first, end_of_time, lifetime), NonceCheck::stale);
}

TEST(TurnNonce, ChangingAnyCharacterMakesItInvalid) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string nonce = nonce_for(keys, alice, issued_at);
    for (std::size_t i = 0; i < nonce.size(); ++i) {
        // Two replacements per position: another hex digit, and another case of the same.
        for (const char replacement : {nonce[i] == '0' ? '1' : '0', nonce[i] == 'A' ? 'B' : 'A'}) {
            std::string altered = nonce;
            altered[i] = replacement;
            if (altered == nonce) continue;
            EXPECT_EQ(engine::check_nonce(keys, alice, altered, issued_at, lifetime),
                      NonceCheck::invalid)
                << "character " << i << " of " << nonce << " made " << replacement;
        }
    }
}

TEST(TurnNonce, TruncatedExtendedOrForeignNoncesAreInvalid) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string nonce = nonce_for(keys, alice, issued_at);
    expect_check(keys, alice, "", issued_at, NonceCheck::invalid);
    expect_check(keys, alice, std::string_view(nonce).substr(0, nonce.size() - 1), issued_at,
                 NonceCheck::invalid);
    expect_check(keys, alice, nonce + "0", issued_at, NonceCheck::invalid);
    expect_check(keys, alice, std::string(engine::turn_nonce_size, 'f'), issued_at,
                 NonceCheck::invalid);
    // A coturn-style opaque nonce of the right length.
    expect_check(keys, alice, std::string(engine::turn_nonce_size, 'x'), issued_at,
                 NonceCheck::invalid);
}

TEST(TurnNonce, AnotherClientAddressOrPortIsInvalid) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string nonce = nonce_for(keys, alice, issued_at);
    expect_check(keys, client("198.51.100.7", 40000), nonce, issued_at, NonceCheck::ok);
    expect_check(keys, client("198.51.100.7", 40001), nonce, issued_at, NonceCheck::invalid);
    expect_check(keys, client("198.51.100.8", 40000), nonce, issued_at, NonceCheck::invalid);
    expect_check(keys, client("::ffff:198.51.100.7", 40000), nonce, issued_at,
                 NonceCheck::invalid);
    const stun::Address bob = client("2001:db8::7", 40000);
    const std::string bobs = nonce_for(keys, bob, issued_at);
    expect_check(keys, bob, bobs, issued_at, NonceCheck::ok);
    expect_check(keys, client("2001:db8::8", 40000), bobs, issued_at, NonceCheck::invalid);
}

TEST(TurnNonce, AnotherKeyIsInvalidEvenWhenGenuine) {
    const std::string nonce = nonce_for(keys_with(key(1, 0xA5)), alice, issued_at);
    // Same id, other secret: a forgery, or a node with the wrong secret.
    expect_check(keys_with(key(1, 0x5A)), alice, nonce, issued_at, NonceCheck::invalid);
    // Another id: a key this node never had, or one it retired.
    expect_check(keys_with(key(2, 0xA5)), alice, nonce, issued_at, NonceCheck::invalid);
}

TEST(TurnNonce, RotationKeepsThePreviousKeyUntilItIsRetired) {
    NonceKeys keys = keys_with(key(1, 0xA5));
    const std::string old_nonce = nonce_for(keys, alice, issued_at);
    ASSERT_TRUE(keys.rotate(key(2, 0x3C)));
    EXPECT_EQ(keys.current.id, 2);
    ASSERT_TRUE(keys.previous.has_value());
    EXPECT_EQ(keys.previous->id, 1);
    const std::string new_nonce = nonce_for(keys, alice, issued_at + 10);
    EXPECT_NE(old_nonce.substr(13, 2), new_nonce.substr(13, 2));  // the key ids differ
    expect_check(keys, alice, old_nonce, issued_at + 10, NonceCheck::ok);
    expect_check(keys, alice, new_nonce, issued_at + 10, NonceCheck::ok);
    // Still aged like any other: the previous key does not extend a nonce's life.
    expect_check(keys, alice, old_nonce, issued_at + lifetime, NonceCheck::stale);
    keys.retire_previous();
    expect_check(keys, alice, old_nonce, issued_at + 10, NonceCheck::invalid);
    expect_check(keys, alice, new_nonce, issued_at + 10, NonceCheck::ok);
    // A second rotation drops the first key for good.
    ASSERT_TRUE(keys.rotate(key(3, 0x77)));
    expect_check(keys, alice, new_nonce, issued_at + 10, NonceCheck::ok);
    expect_check(keys, alice, old_nonce, issued_at + 10, NonceCheck::invalid);
}

TEST(TurnNonce, RotationRefusesTheCurrentId) {
    NonceKeys keys = keys_with(key(1, 0xA5));
    EXPECT_FALSE(keys.rotate(key(1, 0x3C)));
    EXPECT_EQ(keys.current.secret, key(1, 0xA5).secret);
    EXPECT_FALSE(keys.previous.has_value());
}

TEST(TurnNonce, ShortBufferWritesNothing) {
    std::array<char, engine::turn_nonce_size - 1> out{};
    EXPECT_EQ(engine::make_nonce(keys_with(key(1, 0xA5)), alice, issued_at, out), 0u);
    for (const char c : out) EXPECT_EQ(c, '\0');
}

TEST(TurnNonce, SameInputsSameNonceOtherTimesOtherNonces) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    EXPECT_EQ(nonce_for(keys, alice, issued_at), nonce_for(keys, alice, issued_at));
    EXPECT_NE(nonce_for(keys, alice, issued_at), nonce_for(keys, alice, issued_at + 1));
}

TEST(TurnNonce, MakeAndCheckDoNotAllocate) {
    const NonceKeys keys = keys_with(key(1, 0xA5));
    std::array<char, engine::turn_nonce_size> out{};
    (void)engine::make_nonce(keys, alice, issued_at, out);  // OpenSSL sets itself up once
    const std::size_t before = engine::test::allocations();
    unsigned ok = 0;
    for (std::uint64_t i = 0; i < 100; ++i) {
        const std::size_t n = engine::make_nonce(keys, alice, issued_at + i, out);
        const std::string_view nonce(out.data(), n);
        ok += engine::check_nonce(keys, alice, nonce, issued_at + i, lifetime) == NonceCheck::ok;
    }
    EXPECT_EQ(engine::test::allocations() - before, 0u);
    EXPECT_EQ(ok, 100u);
}

TEST(NonceCheck, Names) {
    EXPECT_EQ(engine::to_string(NonceCheck::ok), "ok");
    EXPECT_EQ(engine::to_string(NonceCheck::stale), "stale");
    EXPECT_EQ(engine::to_string(NonceCheck::invalid), "invalid");
}

}  // namespace
