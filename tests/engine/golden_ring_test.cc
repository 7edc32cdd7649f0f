// Golden packets (style rule 17) through the real DPDK path: the same tests/engine/golden/
// files as golden_test.cc, but each frame is an mbuf that arrives on an ethdev, runs through
// engine::Worker::poll() (rx_burst, steer, handle, buffer tx, flush: the loop punchlined's
// workers run) and leaves by rte_eth_tx_burst. golden_test.cc proves the handlers right on
// plain buffers; this suite proves the worker loop hands them the frame, its length and its
// capacity as the mbuf has them, sends back exactly the bytes and length they produced, counts
// every packet once, and returns every mbuf to its pool.
//
// The port is net_ring, built with rte_eth_from_rings(): the test enqueues mbufs into the RX
// ring (the port's RX queue 0) and dequeues what the port transmitted from the TX ring (its TX
// queue 0). One worker, one port, burst 32, no handoff rings: a one-worker Dataplane never
// hands off, so steering is exercised only as "mine". The `relay` cases run with their shard
// as the worker's and the relay's clock injected (Dataplane::relay_clock). A frame with the verdict to_control (a
// neighbour reply) must come out of the worker's ring to the control thread, unchanged and
// with its port set, and not out of the TX ring. The port's own MAC does not matter: the
// PortContext carries the MAC the golden frames are addressed to.
//
// A case with `capacity:` gets an mbuf whose tailroom after the frame is capacity - length
// (the data is placed that far into the buffer): the worker gives the handlers length +
// tailroom as the frame's capacity, so this is the same buffer golden_test.cc gives them.
//
// EAL is initialised once per process (a GoogleTest global environment) with
// -l 0 --no-pci --no-huge -m 256 --no-shconf --no-telemetry: no hugepages, no NIC, and safe
// beside other test processes. When EAL cannot start and the process is not root, every test
// is skipped and says why; as root, that is a failure. GOLDEN_DIR names the folder (meson sets
// it).
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/checksum.h"
#include "engine/counters.h"
#include "engine/drop_reason.h"
#include "engine/frame.h"
#include "engine/neighbour.h"
#include "engine/port_context.h"
#include "engine/sfu_role.h"
#include "engine/steer.h"
#include "engine/worker.h"
#include "golden/golden_cases.h"
#include "sfu_frames.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/message.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace engine {
namespace {

using golden::camel_case;
using golden::expect_stun_counters;
using golden::corpus;
using golden::Corpus;
using golden::expected_verdict;
using golden::GoldenCase;
using golden::hex_dump;
using golden::make_context;

// 2^n - 1 mbufs: the size rte_mempool stores best. No per-lcore cache, so that
// rte_mempool_avail_count() is exact and "every mbuf is back" is a plain comparison.
constexpr unsigned pool_size = 511;
// Room for the burst test's frames, and small enough that filling the TX ring (the tx_full
// test) takes fewer mbufs than the pool has.
constexpr unsigned ring_size = 256;
constexpr unsigned burst = 32;
constexpr unsigned burst_test_frames = 64;

// The net_ring port and the one-worker Dataplane over it: built once per process by
// RingPortEnvironment, used by every test on the main lcore (this thread).
struct RingPort {
    rte_mempool* pool = nullptr;
    rte_ring* rx = nullptr;  // the port receives from here: the test enqueues
    rte_ring* tx = nullptr;  // the port transmits into here: the test dequeues
    rte_ring* control = nullptr;  // the worker's ring to the control thread: the test dequeues
    rte_ring* from_control = nullptr;  // what "the control thread" sends: the test enqueues
    std::uint16_t port_id = 0;
    bool port_started = false;
    Dataplane dataplane;
    std::unique_ptr<Worker> worker;
    std::unique_ptr<PortContext> context;  // the one published to the worker

    // Publishes `next` as the port's context. RCU: the worker reads ports[0].context with
    // rcu_dereference, but only inside poll(), which runs on this thread between publications;
    // so once rcu_assign_pointer (a release store) has returned, the previous context has no
    // reader and is freed at once, with no synchronize_rcu(). (punchlined's control thread,
    // which runs beside its workers, must wait for a grace period instead.)
    void publish(const PortContext& next) {
        auto fresh = std::make_unique<PortContext>(next);
        rcu_assign_pointer(dataplane.ports[0].context, fresh.get());
        context = std::move(fresh);
    }

    [[nodiscard]] const CoreCounters& counters() const { return dataplane.counters[0]; }
};

RingPort* ring_port = nullptr;  // null until the environment has built it
std::string ring_port_missing = "the global test environment did not run";
bool ring_port_missing_is_skip = false;  // EAL refused a non-root process

// What the worker's relay clock (Dataplane::relay_clock, a plain function) reads: a second
// after golden_cases.h made the shard, unless a case sets its own relay_time for one poll.
// Written and read on this thread only.
constexpr std::uint64_t default_relay_now =
    golden::relay_setup_ticks + golden::relay_ticks_per_second;
std::uint64_t relay_now = default_relay_now;

// EAL starts once per process and cannot restart after rte_eal_cleanup(), so the environment
// builds the port on its first SetUp only (--gtest_repeat calls SetUp and TearDown once per
// iteration) and main() takes it down after the last test.
class RingPortEnvironment : public testing::Environment {
public:
    void SetUp() override {
        if (attempted_) return;
        attempted_ = true;
        std::vector<std::string> arguments = {
            "engine_golden_ring_test", "-l", "0", "--no-pci", "--no-huge", "-m", "256",
            "--no-shconf", "--no-telemetry", "--log-level=lib.eal:error"};
        std::vector<char*> argv;
        for (std::string& argument : arguments) argv.push_back(argument.data());
        if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
            ring_port_missing = std::string("EAL initialisation failed: ") +
                                rte_strerror(rte_errno);
            if (geteuid() != 0) {
                ring_port_missing += " (DPDK's EAL needs root on these machines: run the suite "
                                     "as root to replay the golden packets on net_ring)";
                ring_port_missing_is_skip = true;
            }
            return;
        }
        eal_started_ = true;
        port_ = std::make_unique<RingPort>();
        if (const std::string error = build(*port_); !error.empty()) {
            ring_port_missing = error;
            return;
        }
        ring_port = port_.get();
    }

    // After RUN_ALL_TESTS(): everything back to DPDK, so that LeakSanitizer (build-san) sees a
    // clean exit.
    void stop() {
        ring_port = nullptr;
        ring_port_missing = "stopped";
        if (port_) {
            port_->worker.reset();
            if (port_->port_started) {
                rte_eth_dev_stop(port_->port_id);
                rte_eth_dev_close(port_->port_id);
            }
            // Closing the port leaves the rings to their creator; an mbuf a failed test left
            // in one goes back to the pool before the pool goes.
            for (rte_ring* ring : {port_->rx, port_->tx, port_->control, port_->from_control}) {
                if (ring == nullptr) continue;
                void* left = nullptr;
                while (rte_ring_dequeue(ring, &left) == 0)
                    rte_pktmbuf_free(static_cast<rte_mbuf*>(left));
                rte_ring_free(ring);
            }
            rte_mempool_free(port_->pool);
            port_.reset();
        }
        if (eal_started_) rte_eal_cleanup();
        eal_started_ = false;
    }

private:
    // Returns an empty string, or what could not be set up.
    static std::string build(RingPort& p) {
        const int socket = static_cast<int>(rte_socket_id());
        p.pool = rte_pktmbuf_pool_create("golden_ring_mbufs", pool_size, 0, 0,
                                         RTE_MBUF_DEFAULT_BUF_SIZE, socket);
        if (p.pool == nullptr) return std::string("mbuf pool: ") + rte_strerror(rte_errno);
        p.rx = rte_ring_create("golden_ring_rx", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        p.tx = rte_ring_create("golden_ring_tx", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        p.control = rte_ring_create("golden_ring_control", ring_size, socket,
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
        p.from_control = rte_ring_create("golden_ring_from_control", ring_size, socket,
                                         RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (p.rx == nullptr || p.tx == nullptr || p.control == nullptr ||
            p.from_control == nullptr)
            return std::string("rings: ") + rte_strerror(rte_errno);
        const int created = rte_eth_from_rings("golden_ring", &p.rx, 1, &p.tx, 1,
                                               static_cast<unsigned>(socket));
        if (created < 0) return std::string("rte_eth_from_rings: ") + rte_strerror(rte_errno);
        p.port_id = static_cast<std::uint16_t>(created);
        rte_eth_conf conf{};
        if (rte_eth_dev_configure(p.port_id, 1, 1, &conf) != 0 ||
            rte_eth_rx_queue_setup(p.port_id, 0, ring_size, static_cast<unsigned>(socket),
                                   nullptr, p.pool) != 0 ||
            rte_eth_tx_queue_setup(p.port_id, 0, ring_size, static_cast<unsigned>(socket),
                                   nullptr) != 0 ||
            rte_eth_dev_start(p.port_id) != 0)
            return "cannot configure and start the net_ring port";
        p.port_started = true;

        const std::optional<PortContext> full = make_context("full");
        if (!full) return "no `full` context";
        p.dataplane.ports = {DataplanePort{p.port_id, nullptr}};
        p.publish(*full);
        p.dataplane.workers = 1;
        // The relay's clock, for the `relay` cases (their shard is the worker's while each
        // runs): relay_now, in ticks since golden_cases.h made the shard at relay_setup_ticks,
        // relay_setup_s.
        p.dataplane.tsc_hz = golden::relay_ticks_per_second;
        p.dataplane.start_tsc = golden::relay_setup_ticks;
        p.dataplane.start_unix_s = golden::relay_setup_s;
        p.dataplane.relay_clock = []() noexcept { return relay_now; };
        p.dataplane.burst = burst;
        p.dataplane.rings.assign(1, nullptr);  // rings[0 * 1 + 0]: a worker never hands to itself
        p.dataplane.to_control = {p.control};
        p.dataplane.from_control = p.from_control;
        p.dataplane.counters = std::make_unique<CoreCounters[]>(1);
        p.worker = std::make_unique<Worker>(p.dataplane, 0);
        return {};
    }

    bool attempted_ = false;
    bool eal_started_ = false;
    std::unique_ptr<RingPort> port_;
};

// Every test needs the port; without it each one is skipped (no root) or fails (a real
// set-up error), saying which.
class RingPortTest : public testing::Test {
protected:
    void SetUp() override {
        if (ring_port == nullptr) {
            if (ring_port_missing_is_skip) GTEST_SKIP() << ring_port_missing;
            FAIL() << ring_port_missing;
        }
        ASSERT_EQ(rte_ring_count(ring_port->rx), 0u) << "a previous test left frames to receive";
        ASSERT_EQ(rte_ring_count(ring_port->tx), 0u) << "a previous test left frames sent";
        ASSERT_EQ(rte_ring_count(ring_port->control), 0u)
            << "a previous test left frames for the control thread";
        ASSERT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size)
            << "a previous test left mbufs out of the pool";
    }

    // An mbuf holding `golden.input`, placed so that its tailroom is capacity - length: the
    // capacity the worker then gives the handlers is the golden file's. The whole data room is
    // poisoned first (as golden_test.cc poisons its buffer), so that a response relying on
    // zeroed tailroom shows. Null (with a failure) when the pool is empty.
    static rte_mbuf* make_mbuf(const GoldenCase& golden) {
        rte_mbuf* m = rte_pktmbuf_alloc(ring_port->pool);
        EXPECT_NE(m, nullptr) << "mbuf pool empty";
        if (m == nullptr) return nullptr;
        std::memset(m->buf_addr, 0xA5, m->buf_len);
        m->data_off = static_cast<std::uint16_t>(m->buf_len - golden.capacity);
        char* data = rte_pktmbuf_append(m, static_cast<std::uint16_t>(golden.input.size()));
        EXPECT_NE(data, nullptr) << golden.file << ": no room for the input";
        if (data == nullptr) {
            rte_pktmbuf_free(m);
            return nullptr;
        }
        std::memcpy(data, golden.input.data(), golden.input.size());
        EXPECT_EQ(std::size_t{rte_pktmbuf_data_len(m)} + rte_pktmbuf_tailroom(m),
                  golden.capacity);
        return m;
    }

    // The largest capacity make_mbuf() can give: the whole data room, no headroom.
    static std::size_t largest_capacity() {
        return rte_pktmbuf_data_room_size(ring_port->pool);
    }
};

// One frame the port transmitted, copied out of its mbuf before the mbuf was freed.
struct Sent {
    std::vector<std::byte> bytes;  // data_len bytes from the data pointer
    std::uint32_t pkt_len = 0;
    std::uint16_t data_len = 0;
    std::uint16_t segments = 0;
    std::uint64_t offload_flags = 0;
};

// Fills `ring` with fresh mbufs from the port's pool, as if a full queue held them. Returns how
// many (0 if the pool or the ring refused them).
std::size_t fill_ring(rte_ring* ring) {
    std::vector<rte_mbuf*> fillers(rte_ring_free_count(ring));
    const auto n = static_cast<unsigned>(fillers.size());
    if (rte_pktmbuf_alloc_bulk(ring_port->pool, fillers.data(), n) != 0) return 0;
    if (rte_ring_enqueue_bulk(ring, reinterpret_cast<void* const*>(fillers.data()), n,
                              nullptr) != n) {
        rte_pktmbuf_free_bulk(fillers.data(), n);
        return 0;
    }
    return n;
}

// Dequeues everything the port transmitted, in order, and frees it.
std::vector<Sent> take_transmitted() {
    std::vector<Sent> sent;
    void* object = nullptr;
    while (rte_ring_dequeue(ring_port->tx, &object) == 0) {
        auto* m = static_cast<rte_mbuf*>(object);
        const auto* data = rte_pktmbuf_mtod(m, const std::byte*);
        sent.push_back(Sent{{data, data + rte_pktmbuf_data_len(m)},
                            rte_pktmbuf_pkt_len(m),
                            rte_pktmbuf_data_len(m),
                            m->nb_segs,
                            m->ol_flags});
        rte_pktmbuf_free(m);
    }
    return sent;
}

// One frame the worker handed to the control thread, copied out before its mbuf was freed.
struct Handed {
    std::vector<std::byte> bytes;
    std::uint16_t port = 0;
};

// Dequeues everything in the worker's ring to the control thread, in order, and frees it.
std::vector<Handed> take_handed_to_control() {
    std::vector<Handed> handed;
    void* object = nullptr;
    while (rte_ring_dequeue(ring_port->control, &object) == 0) {
        auto* m = static_cast<rte_mbuf*>(object);
        const auto* data = rte_pktmbuf_mtod(m, const std::byte*);
        handed.push_back(Handed{{data, data + rte_pktmbuf_data_len(m)}, m->port});
        rte_pktmbuf_free(m);
    }
    return handed;
}

// What the counters moved by between two snapshots.
CoreCounters difference(const CoreCounters& after, const CoreCounters& before) {
    CoreCounters d;
    d.rx_packets = after.rx_packets - before.rx_packets;
    d.rx_bytes = after.rx_bytes - before.rx_bytes;
    d.tx_packets = after.tx_packets - before.tx_packets;
    d.tx_bytes = after.tx_bytes - before.tx_bytes;
    d.handed_off = after.handed_off - before.handed_off;
    d.to_control = after.to_control - before.to_control;
    for (std::size_t i = 0; i < drop_reason_count; ++i)
        d.drops[i] = after.drops[i] - before.drops[i];
    d.stun_success = after.stun_success - before.stun_success;
    d.stun_error = after.stun_error - before.stun_error;
    return d;
}

// The verdict one received frame got, as the port, the control ring and the counters show it:
// "transmit" (one frame sent, nothing dropped), "to_control" (one frame in the control ring,
// counted as handed off to it), "drop <reason>" (nothing sent, one drop), or what happened
// instead.
std::string verdict_of(const CoreCounters& delta, std::size_t sent, std::size_t handed = 0) {
    if (sent == 1 && handed == 0 && delta.dropped() == 0) return "transmit";
    if (sent == 0 && handed == 1 && delta.dropped() == 0 && delta.to_control == 1 &&
        delta.handed_off == 1)
        return "to_control";
    if (sent == 0 && handed == 0 && delta.dropped() == 1) {
        for (std::size_t i = 0; i < drop_reason_count; ++i)
            if (delta.drops[i] == 1) return "drop " + std::string(drop_reasons[i].name);
    }
    return std::to_string(sent) + " frames sent, " + std::to_string(handed) +
           " handed to the control thread and " + std::to_string(delta.dropped()) + " dropped";
}

// Fails with a hex dump of both at the first difference.
void expect_bytes(const std::vector<std::byte>& got, const std::vector<std::byte>& expected) {
    if (got == expected) return;
    const auto [first, ignored] =
        std::mismatch(got.begin(), got.end(), expected.begin(), expected.end());
    const auto offset = static_cast<std::size_t>(first - got.begin());
    ADD_FAILURE() << "output differs at offset " << offset << " (0x" << std::hex << offset
                  << std::dec << "); got " << got.size() << " bytes, expected " << expected.size()
                  << "\nexpected:\n"
                  << hex_dump(expected, offset) << "\ngot:\n"
                  << hex_dump(got, offset);
}

class GoldenRingTest : public RingPortTest, public testing::WithParamInterface<GoldenCase> {};

TEST_P(GoldenRingTest, ProducesExpectedVerdictAndBytes) {
    const GoldenCase& golden = GetParam();
    SCOPED_TRACE(golden.file + ": " + golden.description);
    const std::optional<PortContext> context = make_context(golden.context);
    ASSERT_TRUE(context.has_value()) << "unknown context `" << golden.context << "`";
    if (golden.capacity > largest_capacity())
        GTEST_SKIP() << "capacity " << golden.capacity << " exceeds the mbuf's data room ("
                     << largest_capacity() << "): golden_test.cc covers this case";
    ring_port->publish(*context);
    // A relay context's cases meet a shard in the state golden_cases.h makes, a second later
    // (or the case's relay_time later) on the worker's clock, as golden_test.cc gives them.
    std::unique_ptr<RelayShard> shard;
    if (context->relay) {
        shard = golden::make_relay_shard(*context->relay, 49152, 40000,
                                         golden.context == "relay_reservation");
        golden::sweep_relay_shard(*shard, golden::relay_case_ticks(golden));
        ring_port->dataplane.relay_shards.push_back(std::move(shard));
        relay_now = golden::relay_case_ticks(golden);
    }
    struct Unrelay {
        ~Unrelay() {
            ring_port->dataplane.relay_shards.clear();
            relay_now = default_relay_now;
        }
    } unrelay;
    // The requests that come first, each through the loop and answered as the file says.
    for (const golden::PreludeFrame& prelude : golden.prelude) {
        GoldenCase first;
        first.input = prelude.input;
        first.capacity = golden.capacity;
        rte_mbuf* m = make_mbuf(first);
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(rte_ring_enqueue(ring_port->rx, m), 0);
        ASSERT_EQ(ring_port->worker->poll(), 1u);
        const std::vector<Sent> answers = take_transmitted();
        ASSERT_EQ(answers.size(), 1u) << "a prelude request was not answered";
        EXPECT_EQ(answers[0].bytes, prelude.output)
            << "a prelude request was not answered as the file says";
    }

    rte_mbuf* m = make_mbuf(golden);
    ASSERT_NE(m, nullptr);
    const CoreCounters before = ring_port->counters();
    ASSERT_EQ(rte_ring_enqueue(ring_port->rx, m), 0);
    const unsigned taken = ring_port->worker->poll();
    const std::vector<Sent> sent = take_transmitted();
    const std::vector<Handed> handed = take_handed_to_control();
    const CoreCounters delta = difference(ring_port->counters(), before);

    // Whatever the verdict: one frame taken in, accounted for once, no mbuf kept or lost.
    EXPECT_EQ(taken, 1u);
    EXPECT_EQ(rte_ring_count(ring_port->rx), 0u);
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "an mbuf leaked";
    EXPECT_TRUE(ring_port->counters().conserved());
    EXPECT_TRUE(delta.conserved());
    EXPECT_EQ(delta.rx_packets, 1u);
    EXPECT_EQ(delta.rx_bytes, golden.input.size());
    EXPECT_EQ(delta.handed_off, golden.to_control ? 1u : 0u);

    const std::string verdict = verdict_of(delta, sent.size(), handed.size());
    if (!golden.pending.empty()) {
        const bool matches = verdict == expected_verdict(golden) &&
                             (!golden.transmit || sent[0].bytes == golden.output);
        ASSERT_FALSE(matches)
            << "pending case now passes: remove its `pending:` mark in make_golden.py";
        GTEST_SKIP() << "pending: " << golden.pending << " (worker gave: " << verdict << ")";
    }
    ASSERT_EQ(verdict, expected_verdict(golden));

    if (golden.to_control) {
        // The control thread parses the frame as it came, and learns its port from the mbuf.
        EXPECT_EQ(handed[0].port, ring_port->port_id);
        expect_bytes(handed[0].bytes, golden.input);
        EXPECT_EQ(delta.tx_packets, 0u);
        return;
    }
    if (!golden.transmit) {
        EXPECT_EQ(delta.drops[static_cast<std::size_t>(golden.reason)], 1u);
        EXPECT_EQ(delta.tx_packets, 0u);
        EXPECT_EQ(delta.tx_bytes, 0u);
        EXPECT_EQ(delta.stun_success + delta.stun_error, 0u);
        return;
    }
    EXPECT_EQ(delta.tx_packets, 1u);
    EXPECT_EQ(delta.tx_bytes, golden.output.size());
    EXPECT_EQ(delta.dropped(), 0u);
    const Sent& out = sent[0];
    EXPECT_EQ(out.segments, 1u);
    EXPECT_EQ(out.data_len, golden.output.size());
    EXPECT_EQ(out.pkt_len, golden.output.size());
    EXPECT_EQ(out.offload_flags, 0u) << "a response must not inherit the request's RX flags";
    expect_bytes(out.bytes, golden.output);

    expect_stun_counters(golden, delta);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenRingTest, testing::ValuesIn(corpus().cases),
                         [](const testing::TestParamInfo<GoldenCase>& info) {
                             return camel_case(info.param.name);
                         });
// A missing or empty folder is reported by GoldenRingCorpusTest.LoadsEveryFile.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenRingTest);

TEST(GoldenRingCorpusTest, LoadsEveryFile) {
    const Corpus& c = corpus();
    for (const std::string& error : c.errors) ADD_FAILURE() << error;
    EXPECT_FALSE(c.cases.empty()) << "no golden case was loaded";
}

// The cases a burst on the `full` port can carry: settled, with the default buffer.
std::vector<const GoldenCase*> burstable_cases() {
    std::vector<const GoldenCase*> out;
    for (const GoldenCase& golden : corpus().cases)
        if (golden.context == "full" && golden.pending.empty() &&
            golden.capacity == golden::default_capacity)
            out.push_back(&golden);
    return out;
}

class GoldenRingBurstTest : public RingPortTest {};

// 64 frames spread over the whole corpus (ARP, ICMP, NDP, IPv4/IPv6 errors, STUN answers and
// STUN drops, neighbour replies) in one RX ring: two full bursts of 32. Every frame is
// accounted for once, each drop under its own reason, the answers leave in the order their
// requests came, and the neighbour replies reach the control ring in theirs.
TEST_F(GoldenRingBurstTest, SixtyFourMixedFramesAreAccountedForInOrder) {
    const std::vector<const GoldenCase*> eligible = burstable_cases();
    ASSERT_FALSE(eligible.empty()) << "no settled `full` case with the default capacity";
    const std::optional<PortContext> full = make_context("full");
    ASSERT_TRUE(full.has_value());
    ring_port->publish(*full);

    std::vector<const GoldenCase*> frames;
    for (std::size_t i = 0; i < burst_test_frames; ++i) {
        const std::size_t n = eligible.size();
        frames.push_back(eligible[n >= burst_test_frames ? i * n / burst_test_frames : i % n]);
    }
    std::vector<const GoldenCase*> answered;
    std::vector<const GoldenCase*> for_control;
    std::map<DropReason, std::uint64_t> expected_drops;
    std::uint64_t rx_bytes = 0;
    for (const GoldenCase* golden : frames) {
        rx_bytes += golden->input.size();
        if (golden->transmit)
            answered.push_back(golden);
        else if (golden->to_control)
            for_control.push_back(golden);
        else
            ++expected_drops[golden->reason];
    }
    ASSERT_FALSE(answered.empty()) << "the burst needs frames that are answered";
    ASSERT_FALSE(for_control.empty()) << "the burst needs frames for the control thread";
    ASSERT_FALSE(expected_drops.empty()) << "the burst needs frames that are dropped";

    std::vector<rte_mbuf*> mbufs;
    for (const GoldenCase* golden : frames) {
        mbufs.push_back(make_mbuf(*golden));
        ASSERT_NE(mbufs.back(), nullptr);
    }
    const CoreCounters before = ring_port->counters();
    ASSERT_EQ(rte_ring_enqueue_bulk(ring_port->rx, reinterpret_cast<void* const*>(mbufs.data()),
                                    burst_test_frames, nullptr),
              burst_test_frames);

    unsigned taken = 0;
    unsigned polls = 0;
    while (rte_ring_count(ring_port->rx) != 0 && polls < burst_test_frames) {
        taken += ring_port->worker->poll();
        ++polls;
    }
    const std::vector<Sent> sent = take_transmitted();
    const std::vector<Handed> handed = take_handed_to_control();
    const CoreCounters delta = difference(ring_port->counters(), before);

    EXPECT_EQ(taken, burst_test_frames);
    EXPECT_EQ(polls, burst_test_frames / burst) << "each poll takes one full burst";
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "an mbuf leaked";
    EXPECT_TRUE(ring_port->counters().conserved());
    EXPECT_EQ(delta.rx_packets, burst_test_frames);
    EXPECT_EQ(delta.rx_bytes, rx_bytes);
    EXPECT_EQ(delta.handed_off, for_control.size());
    EXPECT_EQ(delta.to_control, for_control.size());
    EXPECT_EQ(delta.tx_packets + delta.handed_off + delta.dropped(), burst_test_frames);
    EXPECT_EQ(delta.tx_packets, answered.size());
    for (std::size_t i = 0; i < drop_reason_count; ++i) {
        const auto reason = static_cast<DropReason>(i);
        const auto it = expected_drops.find(reason);
        EXPECT_EQ(delta.drops[i], it == expected_drops.end() ? 0u : it->second)
            << drop_reasons[i].name;
    }

    ASSERT_EQ(sent.size(), answered.size());
    std::uint64_t tx_bytes = 0;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        SCOPED_TRACE("answer " + std::to_string(i) + ", to " + answered[i]->file);
        EXPECT_EQ(sent[i].data_len, answered[i]->output.size());
        EXPECT_EQ(sent[i].pkt_len, answered[i]->output.size());
        expect_bytes(sent[i].bytes, answered[i]->output);
        tx_bytes += answered[i]->output.size();
    }
    EXPECT_EQ(delta.tx_bytes, tx_bytes);

    ASSERT_EQ(handed.size(), for_control.size());
    for (std::size_t i = 0; i < handed.size(); ++i) {
        SCOPED_TRACE("hand-over " + std::to_string(i) + ", of " + for_control[i]->file);
        expect_bytes(handed[i].bytes, for_control[i]->input);
    }
}

// The worker loop's own drop reasons, which only the mbuf path can reach (handle_frame()
// never gives them, so no golden file names them).
class RingWorkerLoopTest : public RingPortTest {
protected:
    // The first settled case the `full` port answers with the default buffer.
    static const GoldenCase* answered_case() {
        for (const GoldenCase* golden : burstable_cases())
            if (golden->transmit) return golden;
        return nullptr;
    }
    // Puts `golden`'s input on the port's RX ring (its mbuf marked with `offload_flags`, as a
    // NIC marks what it checked), runs one loop iteration, and returns what it added to the
    // worker's counters.
    static CoreCounters poll_one(const GoldenCase& golden, std::uint64_t offload_flags = 0) {
        rte_mbuf* m = make_mbuf(golden);
        EXPECT_NE(m, nullptr);
        if (m != nullptr) m->ol_flags |= offload_flags;
        const CoreCounters before = ring_port->counters();
        EXPECT_EQ(rte_ring_enqueue(ring_port->rx, m), 0);
        EXPECT_EQ(ring_port->worker->poll(), 1u);
        return difference(ring_port->counters(), before);
    }
};

// A chained mbuf is dropped before the handlers see it, both segments freed.
TEST_F(RingWorkerLoopTest, ChainedMbufIsDroppedAsMultiSegment) {
    const GoldenCase* golden = answered_case();
    ASSERT_NE(golden, nullptr);
    ring_port->publish(*make_context("full"));
    const std::size_t split = golden->input.size() / 2;
    GoldenCase head = *golden;
    head.input.resize(split);
    GoldenCase tail = *golden;
    tail.input.erase(tail.input.begin(), tail.input.begin() + static_cast<std::ptrdiff_t>(split));
    rte_mbuf* m = make_mbuf(head);
    ASSERT_NE(m, nullptr);
    rte_mbuf* second = make_mbuf(tail);
    ASSERT_NE(second, nullptr);
    ASSERT_EQ(rte_pktmbuf_chain(m, second), 0);
    ASSERT_EQ(rte_pktmbuf_pkt_len(m), golden->input.size());

    const CoreCounters before = ring_port->counters();
    ASSERT_EQ(rte_ring_enqueue(ring_port->rx, m), 0);
    EXPECT_EQ(ring_port->worker->poll(), 1u);
    const CoreCounters delta = difference(ring_port->counters(), before);

    EXPECT_EQ(rte_ring_count(ring_port->tx), 0u);
    EXPECT_EQ(verdict_of(delta, 0), "drop multi_segment");
    EXPECT_EQ(delta.rx_packets, 1u);
    EXPECT_EQ(delta.rx_bytes, golden->input.size());
    EXPECT_TRUE(ring_port->counters().conserved());
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "a segment leaked";
}

// A neighbour reply that the full ring to the control thread refuses moves from handed_off
// (and to_control) to control_ring_full, and its mbuf is freed.
TEST_F(RingWorkerLoopTest, ReplyRefusedByFullControlRingCountsAsControlRingFull) {
    const GoldenCase* golden = nullptr;
    for (const GoldenCase* candidate : burstable_cases())
        if (candidate->to_control) golden = candidate;
    ASSERT_NE(golden, nullptr) << "no settled to_control case";
    ring_port->publish(*make_context("full"));
    const std::size_t fillers = fill_ring(ring_port->control);
    ASSERT_NE(fillers, 0u);

    CoreCounters delta;
    ASSERT_NO_FATAL_FAILURE(delta = poll_one(*golden));
    EXPECT_EQ(take_handed_to_control().size(), fillers) << "the full ring took the reply";

    EXPECT_EQ(verdict_of(delta, 0), "drop control_ring_full");
    EXPECT_EQ(delta.handed_off, 0u);
    EXPECT_EQ(delta.to_control, 0u);
    EXPECT_EQ(rte_ring_count(ring_port->tx), 0u);
    EXPECT_TRUE(ring_port->counters().conserved());
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "the reply leaked";
}

// What the control thread sends (a neighbour probe) leaves by worker 0's TX queue on the port
// its mbuf names, counted as control_sent: never received, so not in tx_packets, and the
// conservation law is untouched.
TEST_F(RingWorkerLoopTest, ControlThreadFramesLeaveThroughWorkerZero) {
    ring_port->publish(*make_context("full"));
    rte_mbuf* m = rte_pktmbuf_alloc(ring_port->pool);
    ASSERT_NE(m, nullptr);
    const std::array<std::byte, 4> sender = {std::byte{198}, std::byte{18}, std::byte{0},
                                             std::byte{2}};
    const std::array<std::byte, 4> target = {std::byte{198}, std::byte{18}, std::byte{0},
                                             std::byte{1}};
    const std::size_t length = build_arp_request(
        {rte_pktmbuf_mtod(m, std::byte*), rte_pktmbuf_tailroom(m)}, golden::port_mac, sender,
        target, nullptr);
    ASSERT_EQ(length, arp_request_size);
    ASSERT_NE(rte_pktmbuf_append(m, static_cast<std::uint16_t>(length)), nullptr);
    const std::vector<std::byte> probe(rte_pktmbuf_mtod(m, const std::byte*),
                                       rte_pktmbuf_mtod(m, const std::byte*) + length);
    m->port = ring_port->port_id;

    const CoreCounters before = ring_port->counters();
    ASSERT_EQ(rte_ring_enqueue(ring_port->from_control, m), 0);
    EXPECT_EQ(ring_port->worker->poll(), 0u) << "nothing was received";
    const std::vector<Sent> sent = take_transmitted();
    const CoreCounters after = ring_port->counters();

    ASSERT_EQ(sent.size(), 1u);
    expect_bytes(sent[0].bytes, probe);
    EXPECT_EQ(after.control_sent - before.control_sent, 1u);
    EXPECT_EQ(after.control_refused - before.control_refused, 0u);
    EXPECT_EQ(after.tx_packets, before.tx_packets);
    EXPECT_EQ(after.rx_packets, before.rx_packets);
    EXPECT_TRUE(after.conserved());
    EXPECT_EQ(rte_ring_count(ring_port->from_control), 0u);
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "the probe leaked";
}

// The busy cycles and their split (counters.h): an iteration that takes nothing adds none; one
// that answers a frame adds busy cycles, some inside the RX burst and some inside the TX
// flush, or, were this thread preempted in it for over 1 ms, one stalled iteration instead.
// (Counts of TSC cycles, not a timing threshold: only which of them moved.)
TEST_F(RingWorkerLoopTest, BusyCyclesCountOnlyIterationsThatTookPackets) {
    const GoldenCase* golden = answered_case();
    ASSERT_NE(golden, nullptr);
    ring_port->publish(*make_context("full"));
    const CoreCounters idle_before = ring_port->counters();
    EXPECT_EQ(ring_port->worker->poll(), 0u);
    const CoreCounters idle_after = ring_port->counters();
    EXPECT_EQ(idle_after.busy_cycles, idle_before.busy_cycles);
    EXPECT_EQ(idle_after.busy_rx_cycles, idle_before.busy_rx_cycles);
    EXPECT_EQ(idle_after.busy_tx_cycles, idle_before.busy_tx_cycles);
    EXPECT_EQ(idle_after.stalled_iterations, idle_before.stalled_iterations);

    const CoreCounters before = ring_port->counters();
    CoreCounters delta;
    ASSERT_NO_FATAL_FAILURE(delta = poll_one(*golden));
    ASSERT_EQ(delta.tx_packets, 1u);
    const CoreCounters after = ring_port->counters();
    if (after.stalled_iterations == before.stalled_iterations) {
        EXPECT_GT(after.busy_rx_cycles, before.busy_rx_cycles);
        EXPECT_GT(after.busy_tx_cycles, before.busy_tx_cycles);
        EXPECT_GE(after.busy_cycles - before.busy_cycles,
                  (after.busy_rx_cycles - before.busy_rx_cycles) +
                      (after.busy_tx_cycles - before.busy_tx_cycles));
    } else {
        EXPECT_EQ(after.stalled_iterations, before.stalled_iterations + 1);
        EXPECT_GT(after.stalled_cycles, before.stalled_cycles);
        EXPECT_EQ(after.busy_cycles, before.busy_cycles);
    }
    EXPECT_EQ(take_transmitted().size(), 1u);
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size);
}

// The golden case of that name, or null.
const GoldenCase* case_named(std::string_view name) {
    for (const GoldenCase& golden : corpus().cases)
        if (golden.name == name) return &golden;
    return nullptr;
}

// A NIC with RX checksum offload marks the mbuf (RTE_MBUF_F_RX_L4_CKSUM_*), and its word is
// taken over the software check: BAD drops a request whose checksum is right...
TEST_F(RingWorkerLoopTest, ChecksumMarkedBadByThePortIsDropped) {
    const GoldenCase* golden = case_named("stun_binding_ipv4");
    ASSERT_NE(golden, nullptr);
    ASSERT_TRUE(golden->transmit) << "the case is answered without the mark";
    ring_port->publish(*make_context("full"));
    CoreCounters delta;
    ASSERT_NO_FATAL_FAILURE(delta = poll_one(*golden, RTE_MBUF_F_RX_L4_CKSUM_BAD));
    EXPECT_EQ(verdict_of(delta, 0), "drop bad_udp_checksum");
    EXPECT_TRUE(take_transmitted().empty());
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "the request leaked";
}

// ... and GOOD answers, on a verifying port, a request whose checksum is wrong: the same answer
// a port that trusts the NIC gives (the golden case of the trust_checksum context).
TEST_F(RingWorkerLoopTest, ChecksumMarkedGoodByThePortIsNotCheckedAgain) {
    const GoldenCase* golden = case_named("stun_trust_checksum_wrong_udp_checksum");
    ASSERT_NE(golden, nullptr);
    ASSERT_TRUE(golden->transmit);
    ring_port->publish(*make_context("full"));
    CoreCounters delta;
    ASSERT_NO_FATAL_FAILURE(delta = poll_one(*golden, RTE_MBUF_F_RX_L4_CKSUM_GOOD));
    EXPECT_EQ(delta.tx_packets, 1u);
    const std::vector<Sent> sent = take_transmitted();
    ASSERT_EQ(sent.size(), 1u) << "not answered";
    EXPECT_EQ(sent[0].bytes, golden->output);
}

// An answer the TX queue refuses moves from tx_packets to tx_full, and its mbuf is freed.
TEST_F(RingWorkerLoopTest, AnswerRefusedByFullTxQueueCountsAsTxFull) {
    const GoldenCase* golden = answered_case();
    ASSERT_NE(golden, nullptr);
    ring_port->publish(*make_context("full"));
    // Fill the TX ring with mbufs the port "already sent".
    const std::size_t fillers = fill_ring(ring_port->tx);
    ASSERT_NE(fillers, 0u);

    CoreCounters delta;
    ASSERT_NO_FATAL_FAILURE(delta = poll_one(*golden));
    EXPECT_EQ(take_transmitted().size(), fillers) << "the full ring took the answer";

    EXPECT_EQ(verdict_of(delta, 0), "drop tx_full");
    EXPECT_EQ(delta.rx_packets, 1u);
    EXPECT_EQ(delta.tx_packets, 0u);
    EXPECT_EQ(delta.tx_bytes, 0u);
    EXPECT_TRUE(ring_port->counters().conserved());
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "the answer leaked";
}

// A hairpin across two workers (relay_path.cc): the client's worker relays its Send
// indication to a relayed address on the other worker's relay port; the frame goes on the
// hairpin ring to that worker, which delivers it to the allocation there, whose client gets
// it as a Data indication, on the owner's TX queue. A port of its own with two queue pairs
// (one per worker), steering in software by the relay port partition {49152, 1}: worker 0
// owns 49152, worker 1 owns 49153. The client's source port is chosen so that its 5-tuple
// hashes to worker 1, which holds its allocation on 49153; worker 0 holds another client's
// (port 40001) on 49152, the Send indication's peer.
TEST_F(RingWorkerLoopTest, HairpinToAnotherWorkersRelayPortGoesThroughItsHairpinRing) {
    const GoldenCase* golden = case_named("relay_send_hairpin");
    ASSERT_NE(golden, nullptr);
    const std::optional<PortContext> context = make_context("relay");
    ASSERT_TRUE(context && context->relay);

    // The input with a source port whose 5-tuple is worker 1's, its UDP checksum summed anew.
    const RelayPortPartition partition{49152, 1};
    std::vector<std::byte> input = golden->input;
    constexpr std::size_t ip = ethernet_header_size;
    constexpr std::size_t udp = ip + ipv4_header_size;
    std::uint16_t client_port = 40000;
    for (; client_port < 40100; ++client_port) {
        stun::store_be16(input.data() + udp, client_port);
        if (owner_worker(input, 2, partition) == 1) break;
    }
    ASSERT_LT(client_port, 40100) << "no source port hashes to worker 1";
    stun::store_be16(input.data() + udp + 6, 0);
    const std::size_t udp_length = stun::load_be16(input.data() + udp + 4);
    const std::uint16_t sum = transport_checksum({input.data() + ip + 12, 8}, ip_protocol::udp,
                                                 {input.data() + udp, udp_length});
    stun::store_be16(input.data() + udp + 6, sum == 0 ? 0xFFFF : sum);

    // Two queue pairs on a port of its own; the worker-to-worker rings.
    const int socket = static_cast<int>(rte_socket_id());
    std::array<rte_ring*, 2> rx{};
    std::array<rte_ring*, 2> tx{};
    std::vector<rte_ring*> created;
    for (unsigned q = 0; q < 2; ++q) {
        rx[q] = rte_ring_create(("hp_rx" + std::to_string(q)).c_str(), 64, socket,
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
        tx[q] = rte_ring_create(("hp_tx" + std::to_string(q)).c_str(), 64, socket,
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
        created.push_back(rx[q]);
        created.push_back(tx[q]);
    }
    Dataplane d;
    d.workers = 2;
    d.rings.assign(4, nullptr);
    d.hairpin_rings.assign(4, nullptr);
    for (unsigned from = 0; from < 2; ++from) {
        const unsigned to = 1 - from;
        const std::string suffix = std::to_string(from) + std::to_string(to);
        d.rings[from * 2 + to] = rte_ring_create(("hp_handoff" + suffix).c_str(), 64, socket,
                                                 RING_F_SP_ENQ | RING_F_SC_DEQ);
        d.hairpin_rings[from * 2 + to] = rte_ring_create(
            ("hp_hairpin" + suffix).c_str(), 64, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        created.push_back(d.rings[from * 2 + to]);
        created.push_back(d.hairpin_rings[from * 2 + to]);
    }
    for (rte_ring* ring : created) ASSERT_NE(ring, nullptr) << rte_strerror(rte_errno);
    const int port = rte_eth_from_rings("hairpin_ring", rx.data(), 2, tx.data(), 2,
                                        static_cast<unsigned>(socket));
    ASSERT_GE(port, 0) << rte_strerror(rte_errno);
    const auto port_id = static_cast<std::uint16_t>(port);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(port_id, 2, 2, &conf), 0);
    for (std::uint16_t q = 0; q < 2; ++q) {
        ASSERT_EQ(rte_eth_rx_queue_setup(port_id, q, 64, static_cast<unsigned>(socket), nullptr,
                                         ring_port->pool),
                  0);
        ASSERT_EQ(rte_eth_tx_queue_setup(port_id, q, 64, static_cast<unsigned>(socket), nullptr),
                  0);
    }
    ASSERT_EQ(rte_eth_dev_start(port_id), 0);
    struct Teardown {
        std::uint16_t port;
        std::vector<rte_ring*>& rings;
        ~Teardown() {
            rte_eth_dev_stop(port);
            rte_eth_dev_close(port);
            for (rte_ring* ring : rings) {
                void* object = nullptr;
                while (rte_ring_dequeue(ring, &object) == 0)
                    rte_pktmbuf_free(static_cast<rte_mbuf*>(object));
                rte_ring_free(ring);
            }
        }
    } teardown{port_id, created};

    auto published = std::make_unique<PortContext>(*context);
    d.ports = {DataplanePort{port_id, published.get()}};
    d.counters = std::make_unique<CoreCounters[]>(2);
    d.relay_ports = partition;
    d.relay_shards.push_back(golden::make_relay_shard(*context->relay, 49152, 40001));
    d.relay_shards.push_back(golden::make_relay_shard(*context->relay, 49153, client_port));
    d.tsc_hz = golden::relay_ticks_per_second;
    d.start_tsc = golden::relay_setup_ticks;
    d.start_unix_s = golden::relay_setup_s;
    d.relay_clock = []() noexcept {
        return golden::relay_setup_ticks + golden::relay_ticks_per_second;
    };
    Worker worker0(d, 0);
    Worker worker1(d, 1);

    // Worker 0 receives it and hands it to worker 1 (steering), which relays it to 49152:
    // worker 0's relay port, through the hairpin ring; worker 0 sends the Data indication.
    rte_mbuf* m = rte_pktmbuf_alloc(ring_port->pool);
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(input.size())), input.data(),
                input.size());
    ASSERT_EQ(rte_ring_enqueue(rx[0], m), 0);
    EXPECT_EQ(worker0.poll(), 1u);
    EXPECT_EQ(d.counters[0].handed_off, 1u);
    EXPECT_EQ(worker1.poll(), 1u);
    EXPECT_EQ(d.counters[1].hairpinned, 1u);
    EXPECT_EQ(rte_ring_count(d.hairpin_rings[1 * 2 + 0]), 1u);
    EXPECT_EQ(worker0.poll(), 1u);
    EXPECT_EQ(rte_ring_count(tx[1]), 0u);
    ASSERT_EQ(rte_ring_count(tx[0]), 1u) << "nothing left through worker 0's TX queue";
    void* object = nullptr;
    ASSERT_EQ(rte_ring_dequeue(tx[0], &object), 0);
    auto* out = static_cast<rte_mbuf*>(object);
    const std::vector<std::byte> frame(rte_pktmbuf_mtod(out, const std::byte*),
                                       rte_pktmbuf_mtod(out, const std::byte*) +
                                           rte_pktmbuf_data_len(out));
    rte_pktmbuf_free(out);
    for (unsigned w = 0; w < 2; ++w) EXPECT_TRUE(d.counters[w].conserved()) << "worker " << w;
    EXPECT_EQ(d.counters[0].tx_packets, 1u);
    EXPECT_EQ(d.relay_shards[1]->counters().to_peer_packets, 1u);
    EXPECT_EQ(d.relay_shards[0]->counters().to_client_packets, 1u);
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "an mbuf leaked";

    // To the client of 49152's allocation, a Data indication from the first relayed address.
    ASSERT_GT(frame.size(), udp + udp_header_size + 20);
    EXPECT_EQ(stun::load_be16(frame.data() + udp), 3478);
    EXPECT_EQ(stun::load_be16(frame.data() + udp + 2), 40001);
    stun::Message indication;
    ASSERT_EQ(stun::Message::parse({frame.data() + udp + udp_header_size,
                                    stun::load_be16(frame.data() + udp + 4) - udp_header_size},
                                   indication),
              stun::ParseError::ok);
    EXPECT_EQ(indication.method(), static_cast<std::uint16_t>(stun::Method::data));
    const auto peer_attribute = indication.find(stun::attr::xor_peer_address);
    ASSERT_TRUE(peer_attribute);
    stun::Address peer;
    ASSERT_EQ(stun::decode_xor_address(*peer_attribute, indication.transaction_id(), peer),
              stun::ParseError::ok);
    EXPECT_EQ(peer, stun::Address::v4(0xC6120002, 49153));
}

// The SFU's fan-out through the worker loop (engine/sfu_role.h, Verdict::fan_out): a leg's
// datagram to two other legs leaves as two mbufs, the frame itself rewritten for one, and for
// the other a header mbuf from the copy pool chained to an indirect clone of the same payload;
// every mbuf returns to its pool once sent. And the admission's join goes on the worker's
// message ring to the control thread. A port and a one-worker Dataplane of their own.
TEST_F(RingWorkerLoopTest, SfuFanOutChainsAHeaderToACloneOfThePayload) {
    using test::at;
    using test::build_udp_frame;
    const int socket = static_cast<int>(rte_socket_id());
    rte_ring* rx = rte_ring_create("sfu_rx", 64, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* tx = rte_ring_create("sfu_tx", 64, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* messages = rte_ring_create_elem("sfu_messages", sizeof(SfuMessage), 64, socket,
                                              RING_F_SP_ENQ | RING_F_SC_DEQ);
    constexpr unsigned copy_pool_size = 63;
    rte_mempool* copies = rte_pktmbuf_pool_create("sfu_copies", copy_pool_size, 0, 0,
                                                  RTE_PKTMBUF_HEADROOM + 64, socket);
    ASSERT_TRUE(rx != nullptr && tx != nullptr && messages != nullptr && copies != nullptr)
        << rte_strerror(rte_errno);
    const int port = rte_eth_from_rings("sfu_ring", &rx, 1, &tx, 1, static_cast<unsigned>(socket));
    ASSERT_GE(port, 0) << rte_strerror(rte_errno);
    const auto port_id = static_cast<std::uint16_t>(port);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(port_id, 1, 1, &conf), 0);
    ASSERT_EQ(rte_eth_rx_queue_setup(port_id, 0, 64, static_cast<unsigned>(socket), nullptr,
                                     ring_port->pool),
              0);
    ASSERT_EQ(rte_eth_tx_queue_setup(port_id, 0, 64, static_cast<unsigned>(socket), nullptr), 0);
    ASSERT_EQ(rte_eth_dev_start(port_id), 0);
    struct Teardown {
        std::uint16_t port;
        std::vector<rte_ring*> rings;
        rte_mempool* pool;
        ~Teardown() {
            rte_eth_dev_stop(port);
            rte_eth_dev_close(port);
            for (rte_ring* ring : rings) rte_ring_free(ring);
            rte_mempool_free(pool);
        }
    } teardown{port_id, {rx, tx, messages}, copies};

    const MacAddress engine_mac = test::mac(1);
    PortContext context;
    context.mac = engine_mac;
    context.ipv4.primary = at("192.0.2.1", 0);
    context.prepare();
    const stun::Address sfu = at("192.0.2.1", 3480);
    const stun::Address alice = at("198.51.100.10", 6000);
    const stun::Address bob = at("203.0.113.20", 7000);
    const stun::Address carol = at("198.51.100.30", 8000);
    const std::string secret = "the coordinator's secret, 32 B.";

    Dataplane d;
    d.ports = {DataplanePort{port_id, &context}};
    d.counters = std::make_unique<CoreCounters[]>(1);
    d.tsc_hz = 1000;
    d.start_tsc = 0;
    d.start_unix_s = 1'795'531'000;
    d.relay_clock = []() noexcept -> std::uint64_t { return 5000; };
    SfuContext sfu_context(std::vector<std::string>{secret}, SfuLimits{3480, 4, 15, 1000});
    d.sfu_context = &sfu_context;
    d.sfu_shards.push_back(
        std::make_unique<SfuShard>(8, 4, *RateLimit::make(20, 40, 1000), 64, 0, 7));
    d.sfu_messages = {messages};
    d.sfu_copy_pool = copies;
    SfuShard& shard = *d.sfu_shards[0];
    // Three legs of one session; the membership as the control thread would publish it.
    SfuMembershipBuilder builder(4);
    for (const auto& [client, name] : {std::pair{alice, "alice"}, std::pair{bob, "bob"},
                                       std::pair{carol, "carol"}}) {
        SfuMessage join;
        join.key = *FiveTuple::make(client, sfu);
        join.session = 9;
        join.participant = SfuParticipant::from(name);
        join.client_mac = test::mac(static_cast<std::uint8_t>(client.port / 1000));
        join.slot = shard.table().insert(join.key, 9, join.participant, join.client_mac, 5000);
        ASSERT_EQ(builder.join(join), SfuMembershipBuilder::JoinResult::joined);
    }
    const std::shared_ptr<const SfuMembership> membership = builder.build();
    // RCU: this thread is the only reader (poll() below), between publications.
    rcu_assign_pointer(d.sfu_membership, const_cast<SfuMembership*>(membership.get()));
    Worker worker(d, 0);

    std::vector<std::byte> media(60, std::byte{0x5A});
    media[0] = std::byte{0x80};
    const std::vector<std::byte> input =
        build_udp_frame(test::mac(6), engine_mac, alice, sfu, media, 0x77);
    auto enqueue = [&](const std::vector<std::byte>& frame) {
        rte_mbuf* m = rte_pktmbuf_alloc(ring_port->pool);
        ASSERT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size())),
                    frame.data(), frame.size());
        ASSERT_EQ(rte_ring_enqueue(rx, m), 0);
    };
    enqueue(input);
    EXPECT_EQ(worker.poll(), 1u);
    ASSERT_EQ(rte_ring_count(tx), 2u);
    std::vector<std::vector<std::byte>> sent;
    unsigned chained = 0;
    for (void* object = nullptr; rte_ring_dequeue(tx, &object) == 0;) {
        auto* m = static_cast<rte_mbuf*>(object);
        if (m->nb_segs == 2) ++chained;
        // rte_pktmbuf_read() copies into the buffer only what spans segments; else it
        // returns where the bytes lie.
        std::vector<std::byte> buffer(rte_pktmbuf_pkt_len(m));
        const auto* bytes = static_cast<const std::byte*>(rte_pktmbuf_read(
            m, 0, static_cast<std::uint32_t>(buffer.size()), buffer.data()));
        ASSERT_NE(bytes, nullptr);
        sent.emplace_back(bytes, bytes + buffer.size());
        rte_pktmbuf_free(m);
    }
    EXPECT_EQ(chained, 1u) << "one copy a header chained to the payload's clone";
    const std::vector<std::vector<std::byte>> expected = {
        build_udp_frame(engine_mac, test::mac(7), sfu, bob, media, 0x77),
        build_udp_frame(engine_mac, test::mac(8), sfu, carol, media, 0x77)};
    EXPECT_EQ(sent, expected);
    EXPECT_EQ(d.counters[0].tx_packets, 2u);
    EXPECT_EQ(d.counters[0].fan_out_copies, 1u);
    EXPECT_TRUE(d.counters[0].conserved());
    EXPECT_EQ(rte_mempool_avail_count(copies), copy_pool_size) << "a copy's mbuf leaked";
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "the frame leaked";

    // An admission: the ACK back, and the join on the message ring.
    std::array<char, stun::sfu_username_max> username;
    std::size_t length = 0;
    ASSERT_EQ(stun::make_sfu_username({1'795'531'100, 9, "dave"}, username, length),
              stun::SfuTokenError::ok);
    std::array<char, stun::sfu_password_size> password;
    stun::make_sfu_password({reinterpret_cast<const std::byte*>(secret.data()), secret.size()},
                            {username.data(), length}, password);
    std::vector<std::byte> request(256);
    stun::MessageWriter w(request, stun::Method::binding, stun::MessageClass::request,
                          stun::TransactionId{});
    w.add_text(stun::attr::username, {username.data(), length});
    w.add_message_integrity({reinterpret_cast<const std::byte*>(password.data()), password.size()});
    w.add_fingerprint();
    request.resize(w.size());
    enqueue(build_udp_frame(test::mac(9), engine_mac, at("203.0.113.40", 9000), sfu, request));
    EXPECT_EQ(worker.poll(), 1u);
    EXPECT_EQ(rte_ring_count(tx), 1u);
    for (void* object = nullptr; rte_ring_dequeue(tx, &object) == 0;)
        rte_pktmbuf_free(static_cast<rte_mbuf*>(object));
    SfuMessage join;
    ASSERT_EQ(rte_ring_dequeue_elem(messages, &join, sizeof join), 0);
    EXPECT_EQ(join.kind, SfuMessage::Kind::join);
    EXPECT_EQ(join.participant.view(), "dave");
    EXPECT_EQ(shard.queued(), 0u);

    // A burst (the SFU's burst lane, sfu_look_ahead(), then each frame in turn): media from
    // each leg, one with Ethernet padding, fanned out; a stranger's media, a multi-segment
    // frame and the admission's retransmission each take the general path. Out in the order
    // they came, each frame's copies before it; the counters as frame by frame.
    const CoreCounters before = d.counters[0];
    const auto media_of = [&](std::uint8_t tag) {
        std::vector<std::byte> m(40, std::byte{tag});
        m[0] = std::byte{0x80};
        return m;
    };
    std::vector<std::byte> padded = build_udp_frame(test::mac(7), engine_mac, bob, sfu,
                                                    media_of(0xB0));
    padded.resize(padded.size() + 10, std::byte{0xEE});
    const stun::Address eve = at("198.51.100.66", 6600);
    enqueue(build_udp_frame(test::mac(6), engine_mac, alice, sfu, media_of(0xA0)));
    enqueue(padded);
    enqueue(build_udp_frame(test::mac(9), engine_mac, eve, sfu, media_of(0xE0)));
    {
        rte_mbuf* head = rte_pktmbuf_alloc(ring_port->pool);
        rte_mbuf* tail = rte_pktmbuf_alloc(ring_port->pool);
        ASSERT_TRUE(head != nullptr && tail != nullptr);
        const std::vector<std::byte> whole =
            build_udp_frame(test::mac(8), engine_mac, carol, sfu, media_of(0xC1));
        std::memcpy(rte_pktmbuf_append(head, 40), whole.data(), 40);
        std::memcpy(rte_pktmbuf_append(tail, static_cast<std::uint16_t>(whole.size() - 40)),
                    whole.data() + 40, whole.size() - 40);
        ASSERT_EQ(rte_pktmbuf_chain(head, tail), 0);
        ASSERT_EQ(rte_ring_enqueue(rx, head), 0);
    }
    enqueue(build_udp_frame(test::mac(9), engine_mac, at("203.0.113.40", 9000), sfu, request));
    enqueue(build_udp_frame(test::mac(8), engine_mac, carol, sfu, media_of(0xC0)));
    EXPECT_EQ(worker.poll(), 6u);
    // Each frame sent: the tag of the input it came from (its first payload byte after RTP's,
    // or 0x01 for a STUN success), and its bytes.
    std::vector<std::pair<int, std::vector<std::byte>>> out;
    for (void* object = nullptr; rte_ring_dequeue(tx, &object) == 0;) {
        auto* m = static_cast<rte_mbuf*>(object);
        std::vector<std::byte> buffer(rte_pktmbuf_pkt_len(m));
        const auto* bytes = static_cast<const std::byte*>(rte_pktmbuf_read(
            m, 0, static_cast<std::uint32_t>(buffer.size()), buffer.data()));
        ASSERT_NE(bytes, nullptr);
        out.emplace_back(std::to_integer<int>(bytes[42 + 1]),
                         std::vector<std::byte>(bytes, bytes + buffer.size()));
        rte_pktmbuf_free(m);
    }
    std::vector<int> tags;
    for (const auto& [tag, frame] : out) tags.push_back(tag);
    EXPECT_EQ(tags, (std::vector<int>{0xA0, 0xA0, 0xB0, 0xB0, 0x01, 0xC0, 0xC0}));
    // Frames `first` and `first + 1` are the copies to x and y, in either order.
    const auto sent_to = [&](std::size_t first, const stun::Address& x, std::uint8_t mx,
                             const stun::Address& y, std::uint8_t my, std::uint8_t tag) {
        const std::vector<std::byte> to_x =
            build_udp_frame(engine_mac, test::mac(mx), sfu, x, media_of(tag));
        const std::vector<std::byte> to_y =
            build_udp_frame(engine_mac, test::mac(my), sfu, y, media_of(tag));
        const auto& a = out[first].second;
        const auto& b = out[first + 1].second;
        return (a == to_x && b == to_y) || (a == to_y && b == to_x);
    };
    ASSERT_EQ(out.size(), 7u);
    EXPECT_TRUE(sent_to(0, bob, 7, carol, 8, 0xA0));
    EXPECT_TRUE(sent_to(2, alice, 6, carol, 8, 0xB0)) << "the padding trimmed";
    EXPECT_TRUE(sent_to(5, alice, 6, bob, 7, 0xC0));
    const CoreCounters& after = d.counters[0];
    EXPECT_EQ(after.rx_packets - before.rx_packets, 6u);
    std::uint64_t in_bytes = 0;
    for (const std::size_t size :
         {std::size_t{82}, padded.size(), std::size_t{82}, std::size_t{82},
          build_udp_frame(test::mac(9), engine_mac, at("203.0.113.40", 9000), sfu, request).size(),
          std::size_t{82}})
        in_bytes += size;
    EXPECT_EQ(after.rx_bytes - before.rx_bytes, in_bytes) << "as received, padding included";
    EXPECT_EQ(after.tx_packets - before.tx_packets, 7u);
    EXPECT_EQ(after.fan_out_copies - before.fan_out_copies, 3u);
    EXPECT_EQ(after.drops[static_cast<std::size_t>(DropReason::sfu_not_a_leg)] -
                  before.drops[static_cast<std::size_t>(DropReason::sfu_not_a_leg)],
              1u);
    EXPECT_EQ(after.drops[static_cast<std::size_t>(DropReason::multi_segment)] -
                  before.drops[static_cast<std::size_t>(DropReason::multi_segment)],
              1u);
    EXPECT_TRUE(after.conserved());
    EXPECT_EQ(rte_mempool_avail_count(copies), copy_pool_size) << "a copy's mbuf leaked";
    EXPECT_EQ(rte_mempool_avail_count(ring_port->pool), pool_size) << "a frame leaked";
}

}  // namespace
}  // namespace engine

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    auto* environment = new engine::RingPortEnvironment;
    testing::AddGlobalTestEnvironment(environment);  // gtest owns it
    const int failed = RUN_ALL_TESTS();
    environment->stop();
    return failed;
}
