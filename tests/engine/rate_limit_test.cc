// Token buckets with injected ticks: the burst, refill at the exact rate, idle gaps capped at
// the burst, ticks past 2^63; and the per-source table's keys.
#include "engine/rate_limit.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <stdexcept>

#include "allocation_count.h"
#include "test_support.h"

namespace {

using engine::RateLimit;
using engine::SourceRateLimiter;
using engine::TokenBucket;

RateLimit limit(std::uint64_t tokens_per_second, std::uint64_t burst,
                std::uint64_t ticks_per_second) {
    const auto made = RateLimit::make(tokens_per_second, burst, ticks_per_second);
    EXPECT_TRUE(made.has_value());
    return made.value_or(*RateLimit::make(1, 1, 1));
}

// Takes single tokens at `now` until the bucket refuses; returns how many it gave.
std::uint64_t drain(TokenBucket& bucket, const RateLimit& rate, std::uint64_t now) {
    std::uint64_t taken = 0;
    while (bucket.take(rate, 1, now)) ++taken;
    return taken;
}

stun::Address source(std::string_view ip, std::uint16_t port) {
    stun::Address a = engine::test::address(ip);
    a.port = port;
    return a;
}

constexpr std::uint64_t two_to_63 = std::uint64_t{1} << 63;
constexpr std::uint64_t seed = 0x0123456789ABCDEF;

TEST(RateLimit, RefusesZeroAndWhatDoesNotFit) {
    EXPECT_FALSE(RateLimit::make(0, 1, 1).has_value());
    EXPECT_FALSE(RateLimit::make(1, 0, 1).has_value());
    EXPECT_FALSE(RateLimit::make(1, 1, 0).has_value());
    // burst × ticks_per_second must fit 64 bits.
    constexpr std::uint64_t two_to_32 = std::uint64_t{1} << 32;
    EXPECT_FALSE(RateLimit::make(1, two_to_32, two_to_32).has_value());
    EXPECT_TRUE(RateLimit::make(1, two_to_32 - 1, two_to_32).has_value());
    const RateLimit made = limit(10, 5, 1000);
    EXPECT_EQ(made.tokens_per_second(), 10u);
    EXPECT_EQ(made.burst(), 5u);
    EXPECT_EQ(made.ticks_per_second(), 1000u);
}

TEST(TokenBucket, BurstThenRefillAtTheExactRate) {
    const RateLimit rate = limit(10, 5, 1000);  // a token every 100 ticks
    TokenBucket bucket;
    constexpr std::uint64_t start = 123'456;
    EXPECT_EQ(drain(bucket, rate, start), 5u);
    EXPECT_FALSE(bucket.take(rate, 1, start + 99));
    EXPECT_TRUE(bucket.take(rate, 1, start + 100));
    EXPECT_FALSE(bucket.take(rate, 1, start + 100));
    EXPECT_EQ(bucket.available(rate, start + 399), 2u);
    EXPECT_EQ(bucket.available(rate, start + 400), 3u);
}

TEST(TokenBucket, FractionalTicksPerTokenDoNotDrift) {
    // 3 tokens a second on a 1000 Hz clock: 333.3 ticks a token, which no integer tick count
    // per token represents; units make it exact.
    const RateLimit rate = limit(3, 3, 1000);
    TokenBucket bucket;
    std::uint64_t now = 0;
    EXPECT_EQ(drain(bucket, rate, now), 3u);
    std::uint64_t allowed = 0;
    // One attempt every tick for 100 seconds: exactly 300 more, neither 299 nor 301.
    for (now = 1; now <= 100'000; ++now) allowed += bucket.take(rate, 1, now) ? 1 : 0;
    EXPECT_EQ(allowed, 300u);
    EXPECT_EQ(bucket.available(rate, now - 1), 0u);
}

TEST(TokenBucket, ANewBucketIsFullWhateverTheTime) {
    const RateLimit rate = limit(10, 5, 1000);
    TokenBucket at_zero;
    EXPECT_EQ(at_zero.available(rate, 0), 5u);
    TokenBucket late;
    EXPECT_EQ(late.available(rate, two_to_63 + 17), 5u);
}

TEST(TokenBucket, LongIdleGapsAreCappedAtTheBurst) {
    const RateLimit rate = limit(10, 5, 1000);
    TokenBucket bucket;
    EXPECT_EQ(drain(bucket, rate, 1000), 5u);
    EXPECT_EQ(drain(bucket, rate, 1000 + 1'000'000'000), 5u);  // 11 days later
    EXPECT_EQ(drain(bucket, rate, 1000 + 1'000'000'050), 0u);
}

TEST(TokenBucket, NoOverflowPastTwoToThe63Ticks) {
    // A 3 GHz TSC and the largest burst it allows: capacity within 2^64 by a hair. The rate
    // is odd so that a product that wrapped would not come out as a multiple of 2^64.
    const RateLimit rate = limit(1'000'000'001, 6'000'000'000, 3'000'000'000);
    TokenBucket bucket;
    EXPECT_TRUE(bucket.take(rate, 6'000'000'000, two_to_63 - 5));
    EXPECT_FALSE(bucket.take(rate, 1, two_to_63 - 5));
    // 3 ticks make one token; the clock crosses 2^63 on the way.
    EXPECT_EQ(bucket.available(rate, two_to_63 + 4), 3u);
    // The longest gap there is: from just past 2^63 to the last tick.
    EXPECT_EQ(bucket.available(rate, ~std::uint64_t{0}), 6'000'000'000u);
    EXPECT_TRUE(bucket.take(rate, 6'000'000'000, ~std::uint64_t{0}));
    EXPECT_FALSE(bucket.take(rate, ~std::uint64_t{0}, ~std::uint64_t{0}));
}

TEST(TokenBucket, HugeRateOnASlowClock) {
    // 2^63 tokens a second on a 1 Hz clock: one tick refills everything.
    const RateLimit rate = limit(two_to_63, 4, 1);
    TokenBucket bucket;
    EXPECT_EQ(drain(bucket, rate, 10), 4u);
    EXPECT_EQ(drain(bucket, rate, 11), 4u);
}

TEST(TokenBucket, TimeGoingBackwardsRefillsNothing) {
    const RateLimit rate = limit(10, 5, 1000);
    TokenBucket bucket;
    EXPECT_EQ(drain(bucket, rate, 10'000), 5u);
    EXPECT_FALSE(bucket.take(rate, 1, 5'000));
    // Refill counts from 10'000, the latest time seen, not from 5'000.
    EXPECT_EQ(bucket.available(rate, 10'100), 1u);
}

TEST(TokenBucket, BytesOfAnAllocationsBandwidthCap) {
    // 1 Mbit/s (125000 bytes a second), 10 full-size packets of burst, a 2 GHz clock.
    const RateLimit rate = limit(125'000, 15'000, 2'000'000'000);
    TokenBucket bucket;
    constexpr std::uint64_t start = 5'000'000'000;
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(bucket.take(rate, 1500, start)) << i;
    EXPECT_FALSE(bucket.take(rate, 1500, start));
    EXPECT_TRUE(bucket.take(rate, 1, start + 16'000));  // 1 byte is 16000 ticks (8 µs)
    // A packet that is refused takes nothing: a smaller one still fits later.
    EXPECT_FALSE(bucket.take(rate, 1500, start + 24'000'000));  // 12 ms less the byte
    EXPECT_TRUE(bucket.take(rate, 1500, start + 24'016'000));
    // Larger than the burst: never, however long the wait.
    TokenBucket idle;
    EXPECT_FALSE(idle.take(rate, 15'001, start));
    EXPECT_TRUE(idle.take(rate, 15'000, start));
}

TEST(SourceRateLimiter, RefusesATableThatIsNotAPowerOfTwo) {
    const RateLimit rate = limit(10, 5, 1000);
    EXPECT_THROW(SourceRateLimiter(rate, 0, seed), std::invalid_argument);
    EXPECT_THROW(SourceRateLimiter(rate, 3, seed), std::invalid_argument);
    EXPECT_THROW(SourceRateLimiter(rate, 1000, seed), std::invalid_argument);
    EXPECT_THROW(SourceRateLimiter(rate, 1024, seed, 129), std::invalid_argument);
    EXPECT_EQ(SourceRateLimiter(rate, 1, seed).bucket_count(), 1u);
    EXPECT_EQ(SourceRateLimiter(rate, 1024, seed).bucket_count(), 1024u);
}

TEST(SourceRateLimiter, PortsOfOneAddressShareABucket) {
    SourceRateLimiter limiter(limit(10, 5, 1000), 1024, seed);
    for (std::uint16_t port = 1; port <= 5; ++port)
        EXPECT_TRUE(limiter.allow(source("198.51.100.7", port), 0)) << port;
    EXPECT_FALSE(limiter.allow(source("198.51.100.7", 6), 0));
    EXPECT_FALSE(limiter.allow(source("198.51.100.7", 40000), 50));
    EXPECT_TRUE(limiter.allow(source("198.51.100.7", 40000), 100));
    EXPECT_EQ(limiter.bucket_index(source("2001:db8::7", 1)),
              limiter.bucket_index(source("2001:db8::7", 65535)));
}

TEST(SourceRateLimiter, OneSourceFloodingLeavesAnotherAlone) {
    SourceRateLimiter limiter(limit(10, 5, 1000), 1024, seed);
    const stun::Address flooder = source("198.51.100.7", 1);
    const stun::Address other = source("203.0.113.9", 1);
    ASSERT_NE(limiter.bucket_index(flooder), limiter.bucket_index(other));
    for (int i = 0; i < 100; ++i) (void)limiter.allow(flooder, 0);
    EXPECT_FALSE(limiter.allow(flooder, 0));
    EXPECT_TRUE(limiter.allow(other, 0));
}

TEST(SourceRateLimiter, Ipv4AndIpv6AreDifferentKeys) {
    SourceRateLimiter limiter(limit(10, 5, 1000), 1024, seed);
    // The same first four bytes; only the family tells them apart.
    const stun::Address v4 = source("1.2.3.4", 1);
    const stun::Address v6 = source("102:304::", 1);
    ASSERT_NE(limiter.bucket_index(v4), limiter.bucket_index(v6));
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.allow(v4, 0));
    EXPECT_FALSE(limiter.allow(v4, 0));
    EXPECT_TRUE(limiter.allow(v6, 0));
}

TEST(SourceRateLimiter, Ipv6IsKeyedByItsSlash64UnlessToldOtherwise) {
    const RateLimit rate = limit(10, 5, 1000);
    const stun::Address a = source("2001:db8:1:2::1", 1);
    const stun::Address b = source("2001:db8:1:2:ffff:eeee:dddd:cccc", 1);
    const stun::Address other_64 = source("2001:db8:1:3::1", 1);
    SourceRateLimiter per_64(rate, 1024, seed);
    EXPECT_EQ(per_64.bucket_index(a), per_64.bucket_index(b));
    EXPECT_NE(per_64.bucket_index(a), per_64.bucket_index(other_64));
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(per_64.allow(a, 0));
    EXPECT_FALSE(per_64.allow(b, 0));
    SourceRateLimiter per_address(rate, 1024, seed, 128);
    EXPECT_NE(per_address.bucket_index(a), per_address.bucket_index(b));
}

TEST(SourceRateLimiter, ACollisionSharesABucket) {
    // One bucket: every source collides with every other, and all are limited together.
    SourceRateLimiter limiter(limit(10, 5, 1000), 1, seed);
    for (int i = 0; i < 5; ++i)
        EXPECT_TRUE(limiter.allow(source("198.51.100.7", 1), 0));
    EXPECT_FALSE(limiter.allow(source("203.0.113.9", 1), 0));
    EXPECT_FALSE(limiter.allow(source("2001:db8::1", 1), 0));
    EXPECT_TRUE(limiter.allow(source("2001:db8::1", 1), 100));
}

TEST(SourceRateLimiter, SourcesSpreadOverTheTableAndTheSeedMovesThem) {
    const RateLimit rate = limit(10, 5, 1000);
    SourceRateLimiter limiter(rate, 1024, seed);
    SourceRateLimiter reseeded(rate, 1024, seed ^ 1);
    std::set<std::size_t> used;
    unsigned moved = 0;
    for (std::uint32_t i = 0; i < 4096; ++i) {
        const stun::Address s = stun::Address::v4(0xC6336400 + i, 1);  // 198.51.100.0 + i
        used.insert(limiter.bucket_index(s));
        moved += limiter.bucket_index(s) != reseeded.bucket_index(s) ? 1 : 0;
    }
    // 4096 keys in 1024 buckets leave about 1024 × e^-4 ≈ 19 empty: allow wide slack.
    EXPECT_GT(used.size(), 950u);
    EXPECT_GT(moved, 4000u);
}

TEST(SourceRateLimiter, AllowDoesNotAllocate) {
    SourceRateLimiter limiter(limit(10, 5, 1000), 1024, seed);
    TokenBucket bucket;
    const RateLimit bytes = limit(125'000, 15'000, 2'000'000'000);
    const std::size_t before = engine::test::allocations();
    unsigned allowed = 0;
    for (std::uint32_t i = 0; i < 1000; ++i) {
        allowed += limiter.allow(stun::Address::v4(0xC6336400 + (i % 8), 1), i) ? 1 : 0;
        allowed += bucket.take(bytes, 1500, i) ? 1 : 0;
    }
    EXPECT_EQ(engine::test::allocations() - before, 0u);
    EXPECT_GT(allowed, 0u);
}

}  // namespace
