// Token buckets and the per-source table (engine/include/engine/rate_limit.h).
#include "engine/rate_limit.h"

#include <bit>
#include <stdexcept>

#include "stun/bytes.h"

namespace engine {
namespace {

// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

constexpr std::uint64_t top_bits(unsigned bits) noexcept {
    return bits == 0 ? 0 : ~std::uint64_t{0} << (64 - bits);
}

}  // namespace

std::optional<RateLimit> RateLimit::make(std::uint64_t tokens_per_second, std::uint64_t burst,
                                         std::uint64_t ticks_per_second) noexcept {
    if (tokens_per_second == 0 || burst == 0 || ticks_per_second == 0) return std::nullopt;
    RateLimit limit;
    if (__builtin_mul_overflow(burst, ticks_per_second, &limit.capacity_)) return std::nullopt;
    limit.units_per_tick_ = tokens_per_second;
    limit.units_per_token_ = ticks_per_second;
    limit.burst_ = burst;
    limit.fill_ticks_ = limit.capacity_ / tokens_per_second +
                        (limit.capacity_ % tokens_per_second != 0 ? 1 : 0);
    return limit;
}

void TokenBucket::refill(const RateLimit& limit, std::uint64_t now_ticks) noexcept {
    if (now_ticks <= last_tick_) return;
    const std::uint64_t elapsed = now_ticks - last_tick_;
    last_tick_ = now_ticks;
    // Past fill_ticks the bucket is full whatever it held: the cap on `elapsed` is also what
    // keeps the product below: (fill_ticks - 1) × units_per_tick < capacity.
    if (elapsed >= limit.fill_ticks_) {
        debt_ = 0;
        return;
    }
    const std::uint64_t refilled = elapsed * limit.units_per_tick_;
    debt_ = refilled >= debt_ ? 0 : debt_ - refilled;
}

bool TokenBucket::take(const RateLimit& limit, std::uint64_t tokens,
                       std::uint64_t now_ticks) noexcept {
    refill(limit, now_ticks);
    if (tokens > limit.burst_) return false;
    const std::uint64_t units = tokens * limit.units_per_token_;  // <= capacity: no overflow
    if (debt_ > limit.capacity_ - units) return false;
    debt_ += units;
    return true;
}

std::uint64_t TokenBucket::available(const RateLimit& limit, std::uint64_t now_ticks) noexcept {
    refill(limit, now_ticks);
    return (limit.capacity_ - debt_) / limit.units_per_token_;
}

SourceRateLimiter::SourceRateLimiter(const RateLimit& limit, std::size_t buckets,
                                     std::uint64_t seed, unsigned ipv6_prefix_length)
    : limit_(limit), mask_(buckets - 1), seed_(seed) {
    if (!std::has_single_bit(buckets))
        throw std::invalid_argument("rate limit buckets: expected a power of two");
    if (ipv6_prefix_length > 128)
        throw std::invalid_argument("rate limit IPv6 prefix: expected 0..128");
    ipv6_mask_[0] = top_bits(ipv6_prefix_length > 64 ? 64 : ipv6_prefix_length);
    ipv6_mask_[1] = top_bits(ipv6_prefix_length > 64 ? ipv6_prefix_length - 64 : 0);
    buckets_ = std::make_unique<TokenBucket[]>(buckets);  // value-initialised: all full
}

std::size_t SourceRateLimiter::bucket_index(const stun::Address& source) const noexcept {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    // The family goes into the key, so that 1.2.3.4 and 102:304:: are different sources.
    std::uint64_t family = 0;
    if (source.family == stun::AddressFamily::ipv6) {
        high = stun::load_be64(source.ip.data()) & ipv6_mask_[0];
        low = stun::load_be64(source.ip.data() + 8) & ipv6_mask_[1];
        family = 0x9E3779B97F4A7C15ull;
    } else {
        high = stun::load_be32(source.ip.data());
    }
    // The seed enters before the first mix, so which keys collide depends on it.
    return static_cast<std::size_t>(mix(mix(high ^ seed_) ^ low ^ family) & mask_);
}

bool SourceRateLimiter::allow(const stun::Address& source, std::uint64_t now_ticks) noexcept {
    return buckets_[bucket_index(source)].take(limit_, 1, now_ticks);
}

}  // namespace engine
