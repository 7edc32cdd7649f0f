#include "punch/event_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace punch {

EventLoop::EventLoop(const Clock& clock) : clock_(clock) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

EventLoop::~EventLoop() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

std::string EventLoop::watch(UdpSocket& socket, std::function<void()> readable) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = socket.fd();
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, socket.fd(), &event) != 0)
        return std::string("epoll_ctl: ") + std::strerror(errno);
    readable_[socket.fd()] = std::move(readable);
    return {};
}

void EventLoop::unwatch(UdpSocket& socket) {
    if (readable_.erase(socket.fd()) != 0)
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket.fd(), nullptr);
}

std::size_t EventLoop::run_once(Time max_wait) {
    std::size_t ran = timers_.run_due(now());
    // The wait ends at the next deadline: rounded up to whole milliseconds (epoll's unit), so
    // that a timer is never woken for early and spun on.
    Time wait = max_wait;
    if (const auto next = timers_.next_deadline()) wait = std::min(wait, *next - now());
    if (ran != 0 || wait < Time{0}) wait = Time{0};
    const auto wait_ms = static_cast<int>((wait.count() + 999) / 1000);
    std::array<epoll_event, 16> events;
    const int ready = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                   wait_ms);
    for (int i = 0; i < ready; ++i) {
        // Looked up per event: an earlier callback may have unwatched this socket.
        const auto it = readable_.find(events[static_cast<std::size_t>(i)].data.fd);
        if (it == readable_.end()) continue;
        auto callback = it->second;  // a copy: the callback may unwatch itself
        callback();
        ++ran;
    }
    return ran + timers_.run_due(now());
}

void EventLoop::run_until(const std::function<bool()>& done) {
    constexpr Time idle_wait = std::chrono::seconds(1);
    while (!done()) {
        if (timers_.size() == 0) return;
        run_once(idle_wait);
    }
}

}  // namespace punch
