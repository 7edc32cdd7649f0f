// Google Benchmarks of the relay's allocation set-up rate on one core (issue 4, style rule 19):
// what a worker pays to give a client a working channel, Allocate + CreatePermission +
// ChannelBind, each authenticated (USERNAME, REALM, a valid NONCE, MESSAGE-INTEGRITY,
// FINGERPRINT), each through engine::handle_frame() on its Ethernet/IPv4/UDP frame, answered
// in the frame with a success response carrying MESSAGE-INTEGRITY and FINGERPRINT.
//
// The 401 round trip is done beforehand: each client's frames carry the nonce the server makes
// for that client's address (make_nonce, as the 401 would give it). Clients are distinct
// (bench/relay_workload.h: --clients of them, 4096 by default, each its own address and
// MAC), taken in turn; every frame is restored from its template before it is handled (a copy
// of 190-210 bytes). The table stays at `clients` allocations: the injected clock jumps one
// maximum lifetime ahead at each pass over the clients, so that each Allocate finds its
// client's previous allocation expired and removes it first (RFC 8656 §6), as a server at a
// steady size pays for an expiry per allocation. The Unix-seconds clock does not move, so the
// nonces stay fresh.
//
// Baseline: BM_Baseline_ParseAndSwapRelayRequests restores the same three frames and does
// environment.md's parse-and-swap on each (Ethernet/IPv4/UDP checks, MACs, IPs and ports
// swapped, a new IPv4 header checksum); both count one item per client, an allocation.
//
// Run: build/bench/relay_setup_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true        (or scripts/bench)
// Goal (issue 4): ≥ 200k allocations/s per core: items_per_second of BM_Relay_AllocationSetup.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/counters.h"
#include "engine/frame.h"
#include "engine/handler.h"
#include "relay_workload.h"

namespace {

namespace lab = relay_workload;

constexpr std::uint64_t ticks_per_second = 1'000'000'000;
constexpr std::uint64_t start_s = 1'800'000'000;
constexpr std::size_t frame_stride = 256;  // each request frame's template slot
constexpr const char* baseline_name = "BM_Baseline_ParseAndSwapRelayRequests";
constexpr lab::Request requests[] = {lab::Request::allocate, lab::Request::create_permission,
                                     lab::Request::channel_bind};

const engine::MacAddress port_mac = {std::byte{0x02}, std::byte{0x50}, std::byte{0},
                                     std::byte{0},    std::byte{0},    std::byte{2}};

// The three request frames of every client, in order.
struct Frames {
    explicit Frames(unsigned clients) : bytes(std::size_t{clients} * 3 * frame_stride) {
        lengths.resize(std::size_t{clients} * 3);
        for (unsigned i = 0; i < clients; ++i)
            for (unsigned r = 0; r < 3; ++r) {
                const std::size_t index = std::size_t{i} * 3 + r;
                lengths[index] = lab::frame_request(bytes.data() + index * frame_stride,
                                                    frame_stride, port_mac, i, requests[r],
                                                    start_s, 1);
            }
    }
    [[nodiscard]] const std::byte* frame(std::size_t index) const {
        return bytes.data() + index * frame_stride;
    }
    std::vector<std::byte> bytes;
    std::vector<std::size_t> lengths;
};

struct alignas(64) PacketBuffer {
    std::array<std::byte, 2048> bytes{};
};

// environment.md's parse-and-swap on one frame; false when it is not Ethernet/IPv4/UDP.
bool parse_and_swap(std::byte* f) noexcept {
    if (stun::load_be16(f + 12) != engine::ethertype::ipv4) return false;
    std::byte* ip = f + 14;
    const std::size_t ip_length = (std::to_integer<std::size_t>(ip[0]) & 0xF) * 4;
    if (ip[9] != std::byte{engine::ip_protocol::udp} || ip_length < 20) return false;
    std::byte* udp = ip + ip_length;
    std::byte mac[6];
    std::memcpy(mac, f, 6);
    std::memcpy(f, f + 6, 6);
    std::memcpy(f + 6, mac, 6);
    std::byte address[4];
    std::memcpy(address, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, address, 4);
    std::byte ports[2];
    std::memcpy(ports, udp, 2);
    std::memcpy(udp, udp + 2, 2);
    std::memcpy(udp + 2, ports, 2);
    ip[8] = std::byte{64};
    stun::store_be16(ip + 10, 0);
    stun::store_be16(ip + 10, engine::ipv4_header_checksum({ip, 20}));
    return true;
}

void BM_Baseline_ParseAndSwapRelayRequests(benchmark::State& state) {
    const auto clients = static_cast<unsigned>(state.range(0));
    const Frames frames(clients);
    PacketBuffer buffer;
    std::uint64_t swapped = 0;
    unsigned i = 0;
    for (auto _ : state) {
        for (std::size_t r = 0; r < 3; ++r) {
            const std::size_t index = std::size_t{i} * 3 + r;
            std::memcpy(buffer.bytes.data(), frames.frame(index), frames.lengths[index]);
            std::byte* f = buffer.bytes.data();
            benchmark::DoNotOptimize(f);
            swapped += parse_and_swap(f) ? 1 : 0;
            benchmark::ClobberMemory();
        }
        if (++i == clients) i = 0;
    }
    if (swapped != 3 * static_cast<std::uint64_t>(state.iterations()))
        state.SkipWithError("a frame was not parsed");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_ParseAndSwapRelayRequests)->Arg(4096);

// Allocate + CreatePermission + ChannelBind for one client per iteration; an item is one
// allocation with its permission and channel. Argument: clients (the table's steady size).
void BM_Relay_AllocationSetup(benchmark::State& state) {
    const auto clients = static_cast<unsigned>(state.range(0));
    const Frames frames(clients);
    const auto relay = lab::make_context(ticks_per_second, clients);
    const engine::PortContext port = lab::make_port(port_mac, relay);
    const auto shard = lab::make_shard(2 * clients, ticks_per_second);
    // One pass over the clients moves the clock past every lifetime (RFC 8656 §7.2: the
    // server's maximum bounds them all).
    const std::uint64_t pass_ticks = (relay->limits().max_lifetime_s + 1) * ticks_per_second;
    engine::RelayState relay_state{*shard, 100 * ticks_per_second, start_s};
    engine::CoreCounters counters;
    PacketBuffer buffer;
    std::uint64_t successes = 0;
    unsigned i = 0;
    for (auto _ : state) {
        for (std::size_t r = 0; r < 3; ++r) {
            const std::size_t index = std::size_t{i} * 3 + r;
            std::memcpy(buffer.bytes.data(), frames.frame(index), frames.lengths[index]);
            engine::Frame f{buffer.bytes.data(), static_cast<std::uint16_t>(frames.lengths[index]),
                            static_cast<std::uint16_t>(buffer.bytes.size())};
            const engine::Verdict verdict = engine::handle_frame(f, port, counters, &relay_state);
            successes += verdict.transmits() && lab::is_success(f, requests[r]) ? 1 : 0;
            benchmark::ClobberMemory();
        }
        if (++i == clients) {
            i = 0;
            relay_state.now_ticks += pass_ticks;
        }
    }
    if (successes != 3 * static_cast<std::uint64_t>(state.iterations()) ||
        counters.dropped() != 0 || !counters.conserved())
        state.SkipWithError(("not every request was answered with a success: " +
                             std::to_string(successes) + " successes, " +
                             std::to_string(counters.dropped()) + " dropped")
                                .c_str());
    state.counters["allocations"] = static_cast<double>(shard->table().size());
    state.SetItemsProcessed(state.iterations());
    // The baseline's run name: its name and the same argument.
    state.SetLabel(std::string("baseline=") + baseline_name + "/" +
                   std::to_string(state.range(0)));
}
BENCHMARK(BM_Relay_AllocationSetup)->Arg(4096);

}  // namespace
BENCHMARK_MAIN();
