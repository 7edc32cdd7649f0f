// One-shot timers ordered by deadline, on an injected clock's time.
//
// The event loop owns one and fires what is due after every wait; nothing here reads a clock or
// sleeps, so a test drives it with any `now` it likes. Callbacks may schedule and cancel timers,
// their own included.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include "punch/clock.h"

namespace punch {

/// Names a scheduled timer; 0 is never a live timer's, so it can mean "none".
using TimerId = std::uint64_t;

class TimerQueue {
public:
    using Callback = std::function<void()>;

    /// Runs `callback` at the first run_due() whose `now` is at or past `deadline`. Timers with
    /// the same deadline fire in the order they were scheduled.
    TimerId schedule(Time deadline, Callback callback);

    /// Forgets the timer; false if it already fired or was cancelled (or `id` is 0).
    bool cancel(TimerId id);

    /// The earliest deadline of a live timer; nullopt when there is none.
    [[nodiscard]] std::optional<Time> next_deadline() const;

    /// Fires every timer due at `now`, including those a callback schedules for `now` or
    /// earlier; returns how many fired.
    std::size_t run_due(Time now);

    [[nodiscard]] std::size_t size() const noexcept { return by_deadline_.size(); }

private:
    // Keyed by (deadline, id): ids grow, so equal deadlines fire in scheduling order.
    std::map<std::pair<Time, TimerId>, Callback> by_deadline_;
    std::unordered_map<TimerId, Time> deadline_of_;
    TimerId next_id_ = 1;
};

}  // namespace punch
