// The time libpunch's timers read: injected, so that every timer is testable without sleeping.
//
// The event loop, the STUN transactions and the probe never call a system clock themselves; they
// ask a Clock. Programs pass SteadyClock; tests pass ManualClock and move it by hand.
#pragma once

#include <chrono>

namespace punch {

/// Monotonic microseconds from an arbitrary origin.
using Time = std::chrono::microseconds;

class Clock {
public:
    virtual ~Clock() = default;
    [[nodiscard]] virtual Time now() const noexcept = 0;
};

/// std::chrono::steady_clock: never jumps with the wall clock (NTP, a user's date change).
class SteadyClock final : public Clock {
public:
    [[nodiscard]] Time now() const noexcept override {
        return std::chrono::duration_cast<Time>(
            std::chrono::steady_clock::now().time_since_epoch());
    }
};

/// A clock that moves only when told to (tests).
class ManualClock final : public Clock {
public:
    explicit ManualClock(Time start = Time{0}) noexcept : now_(start) {}
    [[nodiscard]] Time now() const noexcept override { return now_; }
    void advance(Time by) noexcept { now_ += by; }
    void set(Time at) noexcept { now_ = at; }

private:
    Time now_;
};

}  // namespace punch
