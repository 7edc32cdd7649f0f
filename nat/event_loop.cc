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
    return watch_fd(socket.fd(), std::move(readable));
}

void EventLoop::unwatch(UdpSocket& socket) { unwatch_fd(socket.fd()); }

std::string EventLoop::watch_fd(int fd, std::function<void()> readable) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0)
        return std::string("epoll_ctl: ") + std::strerror(errno);
    watches_[fd] = Watch{std::move(readable), {}};
    return {};
}

std::string EventLoop::set_writable(int fd, std::function<void()> writable) {
    const auto it = watches_.find(fd);
    if (it == watches_.end()) return "set_writable: descriptor " + std::to_string(fd) +
                                     " is not watched";
    const bool had = static_cast<bool>(it->second.writable);
    it->second.writable = std::move(writable);
    const bool has = static_cast<bool>(it->second.writable);
    if (had == has) return {};
    epoll_event event{};
    event.events = EPOLLIN | (has ? EPOLLOUT : 0u);
    event.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0)
        return std::string("epoll_ctl: ") + std::strerror(errno);
    return {};
}

void EventLoop::unwatch_fd(int fd) {
    if (watches_.erase(fd) != 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
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
        const epoll_event& event = events[static_cast<std::size_t>(i)];
        // Looked up before each callback: an earlier one may have unwatched this descriptor.
        auto it = watches_.find(event.data.fd);
        if (it == watches_.end()) continue;
        // An error or hang-up wakes the writer too (a TCP connect that failed), else the
        // reader; the reader sees the end of stream or the error when it reads.
        if ((event.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0 && it->second.writable) {
            auto callback = it->second.writable;  // a copy: the callback may unwatch itself
            callback();
            ++ran;
            it = watches_.find(event.data.fd);
            if (it == watches_.end()) continue;
        }
        if ((event.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 && it->second.readable) {
            auto callback = it->second.readable;
            callback();
            ++ran;
        }
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
