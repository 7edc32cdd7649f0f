// Token buckets for the relay's limits (design.md §3, role `relay`): the bandwidth cap of an
// allocation (tokens are bytes) and the rate of unauthenticated requests from one source
// (tokens are requests), the first line against a flood of Allocate requests that each cost a
// nonce and an HMAC.
//
// Time is a parameter, in ticks of whatever clock the caller reads (the TSC on a worker, a
// counter in tests), with the clock's rate given once. Arithmetic is integer and exact: a
// token is `ticks_per_second` units and every tick adds `tokens_per_second` units, so refill
// neither drifts nor rounds, and a check costs two multiplications and no division.
//
// Who owns what: a RateLimit is a value built from config (control thread) and copied to
// whoever enforces it. A TokenBucket is 16 bytes of state, written only by the core that owns
// the allocation or the table; it takes the RateLimit as an argument, so that a table of
// buckets holds four to a cache line and a config change applies to every bucket at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "stun/address.h"

namespace engine {

/// How fast a bucket fills and how much it holds.
class RateLimit {
public:
    /// Tokens come at `tokens_per_second` up to `burst`, on a clock of `ticks_per_second`.
    /// nullopt when any of them is 0, or when burst × ticks_per_second does not fit 64 bits
    /// (a burst of 6 × 10^9 bytes on a 3 GHz TSC is the most).
    [[nodiscard]] static std::optional<RateLimit> make(std::uint64_t tokens_per_second,
                                                       std::uint64_t burst,
                                                       std::uint64_t ticks_per_second) noexcept;

    [[nodiscard]] std::uint64_t tokens_per_second() const noexcept { return units_per_tick_; }
    [[nodiscard]] std::uint64_t burst() const noexcept { return burst_; }
    [[nodiscard]] std::uint64_t ticks_per_second() const noexcept { return units_per_token_; }

private:
    friend class TokenBucket;
    RateLimit() = default;

    std::uint64_t units_per_tick_ = 0;   // = tokens_per_second
    std::uint64_t units_per_token_ = 0;  // = ticks_per_second
    std::uint64_t burst_ = 0;
    std::uint64_t capacity_ = 0;    // burst × units_per_token_
    std::uint64_t fill_ticks_ = 0;  // ticks from empty to full, rounded up
};

/// One token bucket. A value-initialised bucket is full, whatever the time of its first use.
class TokenBucket {
public:
    /// Refills the bucket to `now_ticks`, then takes `tokens` if it holds that many. True when
    /// it did; false, with the bucket unchanged but for the refill, when it does not hold them
    /// (always so for more than limit.burst(): a burst must cover the largest packet). A time
    /// earlier than the last one seen refills nothing. Cost: two multiplications, no division,
    /// no overflow for any 64-bit tick values.
    [[nodiscard]] bool take(const RateLimit& limit, std::uint64_t tokens,
                            std::uint64_t now_ticks) noexcept;

    /// The whole tokens the bucket holds at `now_ticks` (refilling it first): for stats and
    /// tests. Cost: as take(), and one division.
    [[nodiscard]] std::uint64_t available(const RateLimit& limit,
                                          std::uint64_t now_ticks) noexcept;

private:
    void refill(const RateLimit& limit, std::uint64_t now_ticks) noexcept;

    // Units taken and not refilled yet, so that zero (a value-initialised bucket) is full.
    std::uint64_t debt_ = 0;
    std::uint64_t last_tick_ = 0;
};

/// The unauthenticated-request limit per source IP: a table of token buckets, fixed at
/// construction, indexed by a seeded hash of the source address without its port (every port
/// of one host draws on one bucket). Two sources whose hashes collide share a bucket; that
/// errs towards limiting, which is the safe side (the cost is a legitimate client limited
/// early when its neighbour in the table floods, never a flood let through), and the seed
/// keeps anyone who does not know it from aiming a collision at a chosen victim.
///
/// An IPv6 source is keyed by its first `ipv6_prefix_length` bits, 64 by default: one host
/// holds a whole /64 (RFC 4291 §2.5.4, privacy addresses), and keyed by all 128 bits it would
/// draw on as many buckets as it cares to use addresses.
///
/// One per worker, written only by it. Steering hashes the source port as well as the address
/// (design.md §3), so a host that uses many ports spreads over the workers and gets up to one
/// limit per worker.
class SourceRateLimiter {
public:
    /// `buckets`: a power of two (the one allocation, here); `seed`: random
    /// (stun::random_bytes), fixed in tests. Throws std::invalid_argument when `buckets` is
    /// not a power of two or `ipv6_prefix_length` exceeds 128 (start-up, style rule 12).
    SourceRateLimiter(const RateLimit& limit, std::size_t buckets, std::uint64_t seed,
                      unsigned ipv6_prefix_length = 64);

    /// Takes one token from `source`'s bucket at `now_ticks`; false when it is empty and the
    /// request is to be dropped. Cost: a hash (four multiplications) and TokenBucket::take().
    [[nodiscard]] bool allow(const stun::Address& source, std::uint64_t now_ticks) noexcept;

    /// Which bucket `source` draws on, 0 .. bucket_count() - 1.
    [[nodiscard]] std::size_t bucket_index(const stun::Address& source) const noexcept;
    [[nodiscard]] std::size_t bucket_count() const noexcept { return mask_ + 1; }

private:
    RateLimit limit_;
    std::unique_ptr<TokenBucket[]> buckets_;
    std::size_t mask_;
    std::uint64_t seed_;
    std::uint64_t ipv6_mask_[2];
};

}  // namespace engine
