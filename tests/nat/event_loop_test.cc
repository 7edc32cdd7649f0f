// The event loop (nat/event_loop.cc), its timers (timer_queue.cc) and kernel UDP sockets
// (udp_socket.cc) on loopback. Timers run on a ManualClock: nothing here sleeps.
#include <gtest/gtest.h>

#include <vector>

#include "punch/event_loop.h"

namespace punch {
namespace {

using std::chrono::milliseconds;

TEST(TimerQueue, FiresInDeadlineOrderAndOnlyWhenDue) {
    TimerQueue q;
    std::vector<int> fired;
    q.schedule(Time{300}, [&] { fired.push_back(3); });
    q.schedule(Time{100}, [&] { fired.push_back(1); });
    q.schedule(Time{200}, [&] { fired.push_back(2); });
    q.schedule(Time{100}, [&] { fired.push_back(11); });  // same deadline: after the first
    EXPECT_EQ(q.next_deadline(), Time{100});
    EXPECT_EQ(q.run_due(Time{99}), 0u);
    EXPECT_EQ(q.run_due(Time{200}), 3u);
    EXPECT_EQ(fired, (std::vector<int>{1, 11, 2}));
    EXPECT_EQ(q.next_deadline(), Time{300});
}

TEST(TimerQueue, CancelAndRescheduleFromACallback) {
    TimerQueue q;
    int fired = 0;
    const TimerId gone = q.schedule(Time{50}, [&] { fired += 100; });
    EXPECT_TRUE(q.cancel(gone));
    EXPECT_FALSE(q.cancel(gone));
    EXPECT_FALSE(q.cancel(0));
    // A callback that schedules a timer already due runs it in the same run_due().
    q.schedule(Time{10}, [&] {
        ++fired;
        q.schedule(Time{5}, [&] { ++fired; });
    });
    EXPECT_EQ(q.run_due(Time{10}), 2u);
    EXPECT_EQ(fired, 2);
    EXPECT_FALSE(q.next_deadline());
}

TEST(EventLoop, TimersOnAnInjectedClock) {
    ManualClock clock(Time{1'000'000});
    EventLoop loop(clock);
    int fired = 0;
    loop.after(milliseconds(500), [&] { ++fired; });
    EXPECT_EQ(loop.run_once(Time{0}), 0u);
    clock.advance(milliseconds(499));
    EXPECT_EQ(loop.run_once(Time{0}), 0u);
    clock.advance(milliseconds(1));
    EXPECT_EQ(loop.run_once(Time{0}), 1u);
    EXPECT_EQ(fired, 1);
    // No timer left: run_until does not wait on sockets alone.
    loop.run_until([] { return false; });
}

TEST(EventLoop, DeliversDatagramsBetweenTwoSockets) {
    SteadyClock clock;
    EventLoop loop(clock);
    UdpSocket a;
    UdpSocket b;
    const auto loopback = stun::Address::v4(0x7F000001, 0);
    ASSERT_EQ(a.open(loopback), "");
    ASSERT_EQ(b.open(loopback), "");
    const stun::Address b_address = b.local_address();
    ASSERT_NE(b_address.port, 0);
    std::vector<std::byte> received;
    stun::Address from;
    ASSERT_EQ(loop.watch(b, [&] {
        std::array<std::byte, 64> buffer;
        for (long n; (n = b.receive_from(buffer, from)) >= 0;)
            received.assign(buffer.begin(), buffer.begin() + n);
    }), "");
    const std::byte payload[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
    ASSERT_TRUE(a.send_to(b_address, payload));
    // Bounded by a timer, not by a sleep: the loop waits on epoll until either comes.
    bool gave_up = false;
    loop.after(std::chrono::seconds(5), [&] { gave_up = true; });
    loop.run_until([&] { return !received.empty() || gave_up; });
    ASSERT_FALSE(gave_up);
    EXPECT_EQ(received, (std::vector<std::byte>{payload, payload + 3}));
    EXPECT_EQ(from, a.local_address());
    loop.unwatch(b);
}

TEST(UdpSocket, ErrorsNameWhatFailed) {
    UdpSocket a;
    UdpSocket b;
    const auto loopback = stun::Address::v4(0x7F000001, 0);
    ASSERT_EQ(a.open(loopback), "");
    const auto taken = a.local_address();
    const std::string error = b.open(taken);
    EXPECT_NE(error.find("bind 127.0.0.1:"), std::string::npos) << error;
    EXPECT_NE(error.find("in use"), std::string::npos) << error;
}

TEST(ResolveHostPort, LiteralsAndErrors) {
    stun::Address a;
    ASSERT_EQ(resolve_host_port("203.0.113.2:3478", a), "");
    EXPECT_EQ(a, stun::Address::v4(0xCB007102, 3478));
    ASSERT_EQ(resolve_host_port("[::1]:3479", a), "");
    EXPECT_EQ(a.family, stun::AddressFamily::ipv6);
    EXPECT_EQ(a.port, 3479);
    EXPECT_NE(resolve_host_port("203.0.113.2", a).find("expected HOST:PORT"), std::string::npos);
    EXPECT_NE(resolve_host_port("203.0.113.2:0", a).find("1 to 65535"), std::string::npos);
    EXPECT_NE(resolve_host_port("203.0.113.2:x", a).find("1 to 65535"), std::string::npos);
    EXPECT_NE(resolve_host_port("::1:3478", a).find("expected HOST:PORT"), std::string::npos);
    EXPECT_NE(resolve_host_port("[::1]3478", a).find("[IPv6]:PORT"), std::string::npos);
}

}  // namespace
}  // namespace punch
