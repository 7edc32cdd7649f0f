// Tests for stun/crypto.cc. The codec builds HMAC from OpenSSL's low-level digests (RFC 2104)
// to avoid EVP's per-call allocations, so it is checked against the RFC 2202 and RFC 4231
// vectors and against OpenSSL's own HMAC() for every key length around the block size.
#include "stun/crypto.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "test_support.h"

namespace stun {
namespace {

using test::hex;
using test::text_bytes;
using test::to_hex;

std::vector<std::byte> repeated(std::size_t n, unsigned char b) {
    return std::vector<std::byte>(n, static_cast<std::byte>(b));
}

struct HmacVector {
    const char* name;
    std::vector<std::byte> key;
    std::vector<std::byte> data;
    std::string sha1;    // RFC 2202 §3, or empty
    std::string sha256;  // RFC 4231 §4, or empty
};

std::vector<HmacVector> hmac_vectors() {
    std::vector<std::byte> key25;
    for (int i = 1; i <= 25; ++i) key25.push_back(static_cast<std::byte>(i));
    const auto text = [](std::string_view s) {
        const auto b = text_bytes(s);
        return std::vector<std::byte>(b.begin(), b.end());
    };
    return {
        {"Case1", repeated(20, 0x0b), text("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Case2", text("Jefe"), text("what do ya want for nothing?"),
         "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"Case3Sha1", repeated(20, 0xaa), repeated(50, 0xdd),
         "125d7342b9ac11cd91a39af48aa17b4f63f175d3", ""},
        {"Case4Sha1", key25, repeated(50, 0xcd), "4c9007f4026250c6bc8414f9bf50c86c2d7235da", ""},
        {"LongKeySha1", repeated(80, 0xaa),
         text("Test Using Larger Than Block-Size Key - Hash Key First"),
         "aa4ae5e15272d00e95705637ce8a3b55ed402112", ""},
        {"LongKeyLongDataSha1", repeated(80, 0xaa),
         text("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
         "e8e99d0f45237d786d6bbaa7965c7808bbff1a91", ""},
        {"LongKeySha256", repeated(131, 0xaa),
         text("Test Using Larger Than Block-Size Key - Hash Key First"), "",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {"LongKeyLongDataSha256", repeated(131, 0xaa),
         text("This is a test using a larger than block-size key and a larger than block-size "
              "data. The key needs to be hashed before being used by the HMAC algorithm."),
         "", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
}

TEST(Hmac, RfcVectors) {
    for (const auto& v : hmac_vectors()) {
        SCOPED_TRACE(v.name);
        if (!v.sha1.empty()) {
            std::array<std::byte, 20> out{};
            hmac_sha1(v.key, {v.data}, out);
            EXPECT_EQ(to_hex(out), v.sha1);
        }
        if (!v.sha256.empty()) {
            std::array<std::byte, 32> out{};
            hmac_sha256(v.key, {v.data}, out);
            EXPECT_EQ(to_hex(out), v.sha256);
        }
    }
}

TEST(Hmac, MatchesOpensslForEveryKeyLengthAroundTheBlock) {
    std::vector<std::byte> data(200);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 31 + 7);
    for (std::size_t key_size = 0; key_size <= 140; ++key_size) {
        SCOPED_TRACE(key_size);
        const auto key = repeated(key_size, static_cast<unsigned char>(key_size + 1));
        std::array<std::byte, 20> sha1{};
        hmac_sha1(key, {data}, sha1);
        EXPECT_EQ(to_hex(sha1), to_hex(test::openssl_hmac(EVP_sha1(), key, data)));
        std::array<std::byte, 32> sha256{};
        hmac_sha256(key, {data}, sha256);
        EXPECT_EQ(to_hex(sha256), to_hex(test::openssl_hmac(EVP_sha256(), key, data)));
    }
}

TEST(Hmac, PartsAreConcatenated) {
    const auto key = text_bytes("key");
    const auto whole = text_bytes("The quick brown fox jumps over the lazy dog");
    std::array<std::byte, 20> one{};
    std::array<std::byte, 20> three{};
    hmac_sha1(key, {whole}, one);
    hmac_sha1(key, {whole.first(10), whole.subspan(10, 0), whole.subspan(10)}, three);
    EXPECT_EQ(to_hex(one), to_hex(three));
    // The well-known value (Wikipedia's HMAC example).
    EXPECT_EQ(to_hex(one), "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
    std::array<std::byte, 32> sha256{};
    hmac_sha256(key, {whole.first(4), whole.subspan(4)}, sha256);
    EXPECT_EQ(to_hex(sha256), "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
}

TEST(Digest, KnownAnswers) {
    std::array<std::byte, 16> md5_out{};
    md5({}, md5_out);
    EXPECT_EQ(to_hex(md5_out), "d41d8cd98f00b204e9800998ecf8427e");  // RFC 1321 §A.5
    md5({text_bytes("a"), text_bytes("bc")}, md5_out);
    EXPECT_EQ(to_hex(md5_out), "900150983cd24fb0d6963f7d28e17f72");
    std::array<std::byte, 32> sha_out{};
    sha256({text_bytes("ab"), text_bytes("c")}, sha_out);
    EXPECT_EQ(to_hex(sha_out), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crc32, KnownAnswerAndParts) {
    EXPECT_EQ(crc32({text_bytes("123456789")}), 0xCBF43926u);  // the CRC-32 check value
    EXPECT_EQ(crc32({text_bytes("1234"), text_bytes(""), text_bytes("56789")}), 0xCBF43926u);
    EXPECT_EQ(crc32({}), 0u);
}

TEST(RandomBytes, FillsAndDiffers) {
    std::array<std::byte, 32> a{};
    std::array<std::byte, 32> b{};
    ASSERT_TRUE(random_bytes(a));
    ASSERT_TRUE(random_bytes(b));
    EXPECT_NE(to_hex(a), to_hex(b));  // 2^-256 chance of a false failure
    EXPECT_TRUE(random_bytes({}));
}

TEST(EqualConstantTime, ComparesEveryByte) {
    const auto a = hex("000102030405060708090a0b0c0d0e0f10111213");
    auto b = a;
    EXPECT_TRUE(equal_constant_time(a, b));
    for (std::size_t i = 0; i < b.size(); ++i) {
        b[i] ^= std::byte{0x01};
        EXPECT_FALSE(equal_constant_time(a, b)) << i;
        b[i] ^= std::byte{0x01};
    }
    EXPECT_TRUE(equal_constant_time({}, {}));
}

}  // namespace
}  // namespace stun
