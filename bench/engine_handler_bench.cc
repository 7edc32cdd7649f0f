// Google Benchmarks of the engine's packet handlers on one hot buffer (style rule 19): what
// handle_frame() costs per packet with the worker loop, the rings and the cache misses of a
// pool of mbufs taken away, so that the pipeline benchmark's figure can be split into handler
// and loop.
//
// Every iteration restores the request frame (a 70-byte copy) and handles it. The floor,
// BM_Baseline_ParseAndSwapFrame, restores the same frame and does environment.md's
// "parse-and-swap": Ethernet/IPv4/UDP checks, MACs, IPs and ports swapped, a new IPv4 header
// checksum. Each handler benchmark names it in its label ("baseline=...").
//
// Run: build/bench/engine_handler_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true        (or scripts/bench)
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "engine/checksum.h"
#include "engine/counters.h"
#include "engine/frame.h"
#include "engine/handler.h"
#include "engine/port_context.h"
#include "stun/address.h"
#include "stun/bytes.h"
#include "stun/writer.h"

namespace {

constexpr std::string_view baseline_label = "baseline=BM_Baseline_ParseAndSwapFrame";

struct alignas(64) PacketBuffer {
    std::array<std::byte, 2048> bytes{};
};

engine::PortContext make_port(bool alternate, bool software) {
    engine::PortContext port;
    port.mac = {std::byte{0x02}, std::byte{0x50}, std::byte{0}, std::byte{0}, std::byte{0},
                std::byte{2}};
    port.ipv4.primary = stun::Address::v4(0xC6120002, 0);  // 198.18.0.2
    if (alternate) {
        port.ipv4.alternate = stun::Address::v4(0xC6120003, 0);
        port.stun_alternate_port = 3479;
    } else {
        port.stun_alternate_port = 0;
    }
    port.stun_port = 3478;
    port.software = software ? "punchline" : "";
    port.rx_checksum = engine::RxChecksum::verify;
    port.prepare();
    return port;
}

// Ethernet/IPv4/UDP/STUN Binding request with FINGERPRINT from 198.18.1.7:40000, checksums
// filled in. Returns its length.
std::size_t make_request(std::byte* f, const engine::PortContext& port, bool fingerprint = true) {
    std::memcpy(f, port.mac.data(), 6);
    const std::byte client_mac[6] = {std::byte{0x02}, std::byte{0}, std::byte{0},
                                     std::byte{0},    std::byte{0}, std::byte{7}};
    std::memcpy(f + 6, client_mac, 6);
    stun::store_be16(f + 12, engine::ethertype::ipv4);
    std::byte* ip = f + 14;
    const std::size_t stun_length = fingerprint ? 28 : 20;
    ip[0] = std::byte{0x45};
    stun::store_be16(ip + 2, static_cast<std::uint16_t>(20 + 8 + stun_length));
    stun::store_be16(ip + 6, 0x4000);
    ip[8] = std::byte{64};
    ip[9] = std::byte{engine::ip_protocol::udp};
    stun::store_be32(ip + 12, 0xC6120107);
    stun::store_be32(ip + 16, 0xC6120002);
    stun::store_be16(ip + 10, engine::ipv4_header_checksum({ip, 20}));
    std::byte* udp = ip + 20;
    stun::store_be16(udp, 40000);
    stun::store_be16(udp + 2, 3478);
    stun::store_be16(udp + 4, static_cast<std::uint16_t>(8 + stun_length));
    stun::TransactionId txid;
    for (std::size_t i = 0; i < txid.size(); ++i) txid[i] = static_cast<std::byte>(i * 37 + 5);
    stun::MessageWriter w(std::span<std::byte>(udp + 8, stun_length), stun::Method::binding,
                          stun::MessageClass::request, txid);
    if (fingerprint) w.add_fingerprint();
    const std::uint16_t sum =
        engine::transport_checksum({ip + 12, 8}, engine::ip_protocol::udp, {udp, 8 + stun_length});
    stun::store_be16(udp + 6, sum == 0 ? 0xFFFF : sum);
    return 14 + 20 + 8 + stun_length;
}

void BM_Baseline_ParseAndSwapFrame(benchmark::State& state) {
    const engine::PortContext port = make_port(true, true);
    PacketBuffer request;
    PacketBuffer frame;
    const std::size_t length = make_request(request.bytes.data(), port);
    std::uint64_t sent = 0;
    for (auto _ : state) {
        std::memcpy(frame.bytes.data(), request.bytes.data(), length);
        std::byte* f = frame.bytes.data();
        benchmark::DoNotOptimize(f);
        if (stun::load_be16(f + 12) != engine::ethertype::ipv4) continue;
        std::byte* ip = f + 14;
        const std::size_t ip_length = (std::to_integer<std::size_t>(ip[0]) & 0xF) * 4;
        if (ip[9] != std::byte{engine::ip_protocol::udp} || ip_length < 20) continue;
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
        benchmark::ClobberMemory();
        ++sent;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(sent));
}
BENCHMARK(BM_Baseline_ParseAndSwapFrame);

// handle_frame() on the Binding request. Arguments: port (0: the demo's, with an RFC 5780
// alternate and SOFTWARE; 1: neither), checksum (0: verified, 1: trusted), FINGERPRINT (1: the
// request has one, as browsers send it; 0: none).
void BM_HandleFrame_Binding(benchmark::State& state) {
    const bool plain = state.range(0) == 1;
    engine::PortContext port = make_port(!plain, !plain);
    if (state.range(1) == 1) port.rx_checksum = engine::RxChecksum::trust;
    PacketBuffer request;
    PacketBuffer frame;
    const std::size_t length = make_request(request.bytes.data(), port, state.range(2) == 1);
    engine::CoreCounters counters;
    for (auto _ : state) {
        std::memcpy(frame.bytes.data(), request.bytes.data(), length);
        engine::Frame f{frame.bytes.data(), static_cast<std::uint16_t>(length),
                        static_cast<std::uint16_t>(frame.bytes.size())};
        benchmark::DoNotOptimize(engine::handle_frame(f, port, counters));
        benchmark::ClobberMemory();
    }
    if (counters.stun_success != static_cast<std::uint64_t>(state.iterations()))
        state.SkipWithError("a request was not answered");
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(std::string(baseline_label));
}
BENCHMARK(BM_HandleFrame_Binding)
    ->Args({0, 0, 1})
    ->Args({1, 0, 1})
    ->Args({0, 1, 1})
    ->Args({0, 0, 0});

}  // namespace
BENCHMARK_MAIN();
