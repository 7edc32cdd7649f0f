#include "punch/timer_queue.h"

namespace punch {

TimerId TimerQueue::schedule(Time deadline, Callback callback) {
    const TimerId id = next_id_++;
    by_deadline_.emplace(std::make_pair(deadline, id), std::move(callback));
    deadline_of_.emplace(id, deadline);
    return id;
}

bool TimerQueue::cancel(TimerId id) {
    const auto it = deadline_of_.find(id);
    if (it == deadline_of_.end()) return false;
    by_deadline_.erase(std::make_pair(it->second, id));
    deadline_of_.erase(it);
    return true;
}

std::optional<Time> TimerQueue::next_deadline() const {
    if (by_deadline_.empty()) return std::nullopt;
    return by_deadline_.begin()->first.first;
}

std::size_t TimerQueue::run_due(Time now) {
    std::size_t fired = 0;
    while (!by_deadline_.empty() && by_deadline_.begin()->first.first <= now) {
        auto node = by_deadline_.extract(by_deadline_.begin());
        deadline_of_.erase(node.key().second);
        // Out of the queue before it runs: the callback may schedule or cancel freely.
        node.mapped()();
        ++fired;
    }
    return fired;
}

}  // namespace punch
