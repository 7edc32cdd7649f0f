// stun/crc32_terms.h: CRC-32 as a sum of placed fields, checked against zlib's crc32 (an
// independent implementation) on random messages cut into fields of every width.
#include "stun/crc32_terms.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <random>
#include <vector>

namespace {

using stun::crc32_raw;

std::uint32_t zlib_crc(const std::vector<std::byte>& m, std::size_t length) {
    return static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(m.data()), static_cast<uInt>(length)));
}

std::vector<std::byte> random_message(std::mt19937& random, std::size_t length) {
    std::vector<std::byte> m(length);
    for (auto& b : m) b = static_cast<std::byte>(random());
    return m;
}

// crc32(M) = raw(M with its first 4 bytes XOR 0xFF) XOR 0xFFFFFFFF.
std::vector<std::byte> with_initial_value(std::vector<std::byte> m) {
    for (std::size_t i = 0; i < 4 && i < m.size(); ++i) m[i] ^= std::byte{0xFF};
    return m;
}

TEST(Crc32Raw, MatchesZlibWithTheInitialValueAsBytes) {
    std::mt19937 random(1);
    for (std::size_t length = 4; length < 300; ++length) {
        const auto m = random_message(random, length);
        EXPECT_EQ(crc32_raw(with_initial_value(m)) ^ 0xFFFFFFFFu, zlib_crc(m, length)) << length;
    }
}

TEST(Crc32Raw, ContinuesAcrossParts) {
    std::mt19937 random(2);
    const auto m = random_message(random, 100);
    const std::span<const std::byte> all(m);
    EXPECT_EQ(crc32_raw(all.subspan(37), crc32_raw(all.first(37))), crc32_raw(all));
}

TEST(Crc32Raw, KnownValue) {
    // The check value of CRC-32/ISO-HDLC: crc32("123456789") = 0xCBF43926.
    const char* text = "123456789";
    std::vector<std::byte> m(9);
    std::memcpy(m.data(), text, 9);
    EXPECT_EQ(crc32_raw(with_initial_value(m)) ^ 0xFFFFFFFFu, 0xCBF43926u);
}

#if STUN_CRC32_TERMS

class Crc32TermsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!stun::crc32_terms_supported()) GTEST_SKIP() << "this CPU has no PCLMULQDQ";
    }
};

// Every message cut into fields of random widths 1..8 and added by distance gives zlib's CRC.
TEST_F(Crc32TermsTest, SumOfFieldsOfEveryWidthIsTheCrc) {
    std::mt19937 random(3);
    for (int round = 0; round < 3000; ++round) {
        const std::size_t length = 4 + random() % 600;
        const auto m = random_message(random, length);
        const auto shown = with_initial_value(m);
        stun::Crc32Terms terms;
        for (std::size_t at = 0; at < length;) {
            const unsigned width =
                std::min<unsigned>(1 + random() % 8, static_cast<unsigned>(length - at));
            std::uint64_t field = 0;
            std::memcpy(&field, shown.data() + at, width);
            terms.add(field, width, length - at - width);
            at += width;
        }
        ASSERT_EQ(terms.raw() ^ 0xFFFFFFFFu, zlib_crc(m, length)) << "length " << length;
    }
}

// Fields that are zero may be left out: only the fields that differ from zeros count.
TEST_F(Crc32TermsTest, ZeroFieldsNeedNotBeAdded) {
    std::vector<std::byte> m(64, std::byte{0});
    m[10] = std::byte{0xAB};
    m[11] = std::byte{0xCD};
    stun::Crc32Terms terms;
    terms.add(0xCDAB, 2, 64 - 12);
    EXPECT_EQ(terms.raw(), crc32_raw(m));
}

// A part given by its raw CRC, followed by 0 or more bytes of other fields.
TEST_F(Crc32TermsTest, RawPartFollowedByFields) {
    std::mt19937 random(4);
    for (std::size_t following : {0u, 4u, 5u, 8u, 40u, 500u}) {
        const auto m = random_message(random, 48 + following);
        const auto shown = with_initial_value(m);
        stun::Crc32Terms terms;
        terms.add_raw(crc32_raw(std::span<const std::byte>(shown).first(48)), following);
        for (std::size_t at = 48; at < shown.size(); ++at)
            terms.add(std::to_integer<std::uint64_t>(shown[at]), 1, shown.size() - at - 1);
        EXPECT_EQ(terms.raw() ^ 0xFFFFFFFFu, zlib_crc(m, m.size())) << following;
    }
}

// One field at two places: the same as adding it twice.
TEST_F(Crc32TermsTest, AddTwiceIsTwoAdds) {
    stun::Crc32Terms once;
    stun::Crc32Terms twice;
    once.add(0x123456789ABCull, 6, 30);
    once.add(0x123456789ABCull, 6, 7);
    twice.add_twice(0x123456789ABCull, 6, 30, 7);
    EXPECT_EQ(once.raw(), twice.raw());
}

#endif

}  // namespace
