// Tests for stun/credentials.cc: SASLprep and the keys, each against a digest computed here
// with OpenSSL's EVP_Digest over the string the RFC defines.
#include "stun/credentials.h"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>
#include <string_view>

#include "rfc5769_vectors.h"
#include "test_support.h"

namespace stun {
namespace {

using test::bytes_of;
using test::text_bytes;
using test::to_hex;

std::string prepared(std::string_view input) {
    std::array<char, 513> out{};
    std::string_view result;
    const CredentialError e = saslprep(input, out, result);
    EXPECT_EQ(e, CredentialError::ok) << to_string(e) << " for " << input;
    return std::string(result);
}

TEST(Saslprep, AsciiIsUnchanged) {
    EXPECT_EQ(prepared("VOkJxbRl1RmTxUk/WvJxBt"), "VOkJxbRl1RmTxUk/WvJxBt");
    EXPECT_EQ(prepared(""), "");
}

TEST(Saslprep, Rfc5769Password) {
    // RFC 4013 §2: B.1 maps SOFT HYPHEN (U+00AD) to nothing; NFKC maps FEMININE ORDINAL
    // INDICATOR (U+00AA) to "a" and ROMAN NUMERAL NINE (U+2168) to "IX".
    EXPECT_EQ(prepared("a\xc2\xad" "b"), "ab");
    EXPECT_EQ(prepared("\xc2\xaa"), "a");
    EXPECT_EQ(prepared("\xe2\x85\xa8"), "IX");
    EXPECT_EQ(prepared(rfc5769::long_term_password), "TheMatrIX");
}

TEST(Saslprep, NonAsciiSpaceBecomesSpace) {
    // RFC 4013 §2.1: C.1.2 non-ASCII space characters map to SPACE (U+0020).
    EXPECT_EQ(prepared("a\xc2\xa0" "b"), "a b");
}

TEST(Saslprep, ControlCharacterIsProhibited) {
    std::array<char, 513> out{};
    std::string_view result;
    EXPECT_EQ(saslprep("pass\x07word", out, result), CredentialError::prohibited_character);
    EXPECT_EQ(saslprep("\x7f", out, result), CredentialError::prohibited_character);
}

TEST(Saslprep, EmbeddedNulIsProhibited) {
    // U+0000 is in RFC 3454 table C.2.1 (ASCII control characters), prohibited by RFC 4013
    // §2.3. A password must not be cut short at a NUL: "nul\0byte" is not "nul".
    std::array<char, 513> out{};
    std::string_view result;
    EXPECT_EQ(saslprep(std::string_view("nul\0byte", 8), out, result),
              CredentialError::prohibited_character)
        << "prepared as \"" << result << "\"";
}

TEST(Saslprep, LengthLimit) {
    std::array<char, 513> out{};
    std::string_view result;
    EXPECT_EQ(saslprep(std::string(512, 'p'), out, result), CredentialError::ok);
    EXPECT_EQ(result.size(), 512u);
    EXPECT_EQ(saslprep(std::string(513, 'p'), out, result), CredentialError::too_long);
    // Soft hyphens map to nothing: 512 bytes in, 0 out.
    std::string hyphens;
    for (int i = 0; i < 256; ++i) hyphens += "\xc2\xad";
    EXPECT_EQ(saslprep(hyphens, out, result), CredentialError::ok);
    EXPECT_EQ(result.size(), 0u);
    // NFKC can grow a string: U+FDFA (3 bytes) becomes 18 characters (33 bytes), so 20 of them
    // (60 bytes in) prepare to 660 bytes.
    std::string ligatures;
    for (int i = 0; i < 20; ++i) ligatures += "\xef\xb7\xba";
    EXPECT_EQ(saslprep(ligatures, out, result), CredentialError::too_long);
    EXPECT_EQ(saslprep("\xef\xb7\xba", out, result), CredentialError::ok);
    EXPECT_EQ(result.size(), 33u);
}

TEST(Saslprep, LimitAppliesToThePreparedString) {
    // credentials.h: too_long when "the prepared string exceeds 512 bytes".
    std::array<char, 513> out{};
    std::string_view result;
    // Long after preparation: each U+2168 (3 bytes) becomes "IX" (2), so 200 of them fit...
    std::string ninths;
    for (int i = 0; i < 200; ++i) ninths += "\xe2\x85\xa8";
    EXPECT_EQ(saslprep(ninths, out, result), CredentialError::ok);
    EXPECT_EQ(result.size(), 400u);
    // ...and 300 of them (900 bytes in, 600 out) do not.
    for (int i = 0; i < 100; ++i) ninths += "\xe2\x85\xa8";
    EXPECT_EQ(saslprep(ninths, out, result), CredentialError::too_long);
}

TEST(CredentialErrorName, NamesAreDistinctAndNonEmpty) {
    std::set<std::string_view> names;
    for (auto e : {CredentialError::ok, CredentialError::prohibited_character,
                   CredentialError::too_long}) {
        EXPECT_FALSE(to_string(e).empty());
        names.insert(to_string(e));
    }
    EXPECT_EQ(names.size(), 3u);
}

TEST(ShortTermKey, IsThePreparedPassword) {
    std::array<char, 513> storage{};
    std::span<const std::byte> key;
    ASSERT_EQ(short_term_key(rfc5769::long_term_password, storage, key), CredentialError::ok);
    EXPECT_EQ(test::as_text(key), "TheMatrIX");
    EXPECT_EQ(short_term_key("bad\x01", storage, key), CredentialError::prohibited_character);
}

TEST(LongTermKeyMd5, Rfc5769UserKnownAnswer) {
    // MD5 over the string RFC 8489 §9.2.2 defines, computed here independently.
    const std::string input = std::string(rfc5769::long_term_username) + ":example.org:TheMatrIX";
    const auto expected = test::openssl_digest(EVP_md5(), text_bytes(input));
    LongTermKeyMd5 key{};
    ASSERT_EQ(long_term_key_md5(rfc5769::long_term_username, rfc5769::long_term_realm,
                                rfc5769::long_term_password, key),
              CredentialError::ok);
    EXPECT_EQ(to_hex(key), to_hex(expected));
    EXPECT_EQ(to_hex(key), "e8ca7ad59d5eb0518e312911d2dab2a9");  // hashlib, in rfc5769_vectors.h
}

TEST(LongTermKeyMd5, PlainAscii) {
    const auto expected = test::openssl_digest(EVP_md5(), text_bytes("user:realm:pass"));
    LongTermKeyMd5 key{};
    ASSERT_EQ(long_term_key_md5("user", "realm", "pass", key), CredentialError::ok);
    EXPECT_EQ(to_hex(key), to_hex(expected));
    // python3 -c 'import hashlib; print(hashlib.md5(b"user:realm:pass").hexdigest())'
    EXPECT_EQ(to_hex(key), "8493fbc53ba582fb4c044c456bdc40eb");
}

TEST(LongTermKeyMd5, ProhibitedPassword) {
    LongTermKeyMd5 key{};
    EXPECT_EQ(long_term_key_md5("user", "realm", "pa\x07ss", key),
              CredentialError::prohibited_character);
}

TEST(LongTermKeySha256, Rfc5769User) {
    const std::string input = std::string(rfc5769::long_term_username) + ":example.org:TheMatrIX";
    const auto expected = test::openssl_digest(EVP_sha256(), text_bytes(input));
    LongTermKeySha256 key{};
    ASSERT_EQ(long_term_key_sha256(rfc5769::long_term_username, rfc5769::long_term_realm,
                                   rfc5769::long_term_password, key),
              CredentialError::ok);
    EXPECT_EQ(to_hex(key), to_hex(expected));
}

TEST(Userhash, IsSha256OfUsernameColonRealm) {
    const std::string input = std::string(rfc5769::long_term_username) + ":example.org";
    const auto expected = test::openssl_digest(EVP_sha256(), text_bytes(input));
    std::array<std::byte, 32> out{};
    userhash(rfc5769::long_term_username, rfc5769::long_term_realm, out);
    EXPECT_EQ(to_hex(out), to_hex(expected));

    userhash("alice", "example.org", out);
    EXPECT_EQ(to_hex(out),
              to_hex(test::openssl_digest(EVP_sha256(), text_bytes("alice:example.org"))));
}

}  // namespace
}  // namespace stun
