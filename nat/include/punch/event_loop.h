// The event loop under libpunch: kernel UDP sockets and timers on one thread, the caller's.
//
// One epoll set; one callback per socket ("datagrams are waiting"), one per timer; any other
// descriptor (a TCP connection) may be watched for readable and writable too. The time
// comes from an injected Clock, and run_once() waits only as long as the next timer allows, so
// the loop itself never decides what time it is. Punching, the TURN client and the media
// channel are meant to build on the same loop: a socket per call leg, every step a timer.
//
// Not thread-safe: everything runs on the thread that calls run_once().
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>

#include "punch/clock.h"
#include "punch/timer_queue.h"
#include "punch/udp_socket.h"

namespace punch {

class EventLoop {
public:
    /// Throws std::system_error when epoll_create1 fails (start-up only).
    explicit EventLoop(const Clock& clock);
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    ~EventLoop();

    [[nodiscard]] const Clock& clock() const noexcept { return clock_; }
    [[nodiscard]] Time now() const noexcept { return clock_.now(); }
    [[nodiscard]] TimerQueue& timers() noexcept { return timers_; }

    /// Calls `readable` whenever `socket` has datagrams waiting (level-triggered: the callback
    /// reads until receive_from() says none). The socket must outlive its registration.
    /// Returns "" or why epoll refused it.
    [[nodiscard]] std::string watch(UdpSocket& socket, std::function<void()> readable);
    void unwatch(UdpSocket& socket);

    /// Any descriptor (a TCP socket: the coordinator's client): `readable` when it is readable
    /// or hung up, and, while one is set with set_writable(), `writable` when it can take
    /// more. Level-triggered. The descriptor must stay open while watched. Returns "" or why
    /// epoll refused it.
    [[nodiscard]] std::string watch_fd(int fd, std::function<void()> readable);
    /// Starts (a callback) or stops (an empty one) the writable callback of a watched fd.
    /// Returns "" or why epoll refused it.
    std::string set_writable(int fd, std::function<void()> writable);
    void unwatch_fd(int fd);

    TimerId at(Time deadline, TimerQueue::Callback callback) {
        return timers_.schedule(deadline, std::move(callback));
    }
    TimerId after(Time delay, TimerQueue::Callback callback) {
        return timers_.schedule(now() + delay, std::move(callback));
    }
    bool cancel(TimerId id) { return timers_.cancel(id); }

    /// Fires due timers, waits for a socket at most until the next timer or `max_wait` (0: do
    /// not wait), runs the callbacks of the sockets that became readable, then fires due timers
    /// again. Returns how many callbacks ran.
    std::size_t run_once(Time max_wait);

    /// run_once() until `done()` holds, or until no timer is left: a loop with sockets alone
    /// could wait forever, and every step of libpunch is bounded by a timer.
    void run_until(const std::function<bool()>& done);

private:
    const Clock& clock_;
    TimerQueue timers_;
    int epoll_fd_ = -1;
    struct Watch {
        std::function<void()> readable;
        std::function<void()> writable;  // empty: EPOLLOUT not asked for
    };
    std::unordered_map<int, Watch> watches_;
};

}  // namespace punch
