// The relay's express lane (engine/relay_express.cc) against the general path: two shards
// made alike (the same allocations, made the way a client makes them), the same frames, a
// few bytes of them changed anywhere and their checksums then made right or left wrong. The
// shard that sees the express lane first (as handle_frame() does) and the shard that sees
// only the general path give every frame the same verdict, drop reason and bytes, and end
// with the same counters: the worker's, the relay's and every allocation's.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../bench/relay_workload.h"
#include "engine/checksum.h"
#include "engine/handler.h"
#include "stun/bytes.h"

namespace {

using namespace engine;
namespace lab = relay_workload;

constexpr std::uint64_t ticks_per_second = 1'000'000'000;
constexpr std::uint64_t now_s = 1'800'000'000;
constexpr unsigned clients = 64;
constexpr std::size_t room = 2048;   // each frame's buffer
constexpr std::size_t headroom = 128;  // an mbuf's

const MacAddress port_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                             std::byte{0},    std::byte{0}, std::byte{2}};

// One shard with `clients` allocations (relay_workload::allocate: Allocate, CreatePermission,
// ChannelBind 0x4000 to its peer), the port and the clock it was made with.
struct Relay {
    std::unique_ptr<RelayShard> shard;
    std::vector<std::uint16_t> relay_ports;
};

Relay make_relay(const PortContext& port, std::uint64_t now_ticks) {
    Relay relay{lab::make_shard(clients, ticks_per_second), {}};
    std::string why;
    for (unsigned i = 0; i < clients; ++i) {
        const auto relay_port = lab::allocate(port, *relay.shard, i, now_ticks, now_s, why);
        if (!relay_port) throw std::runtime_error(why);
        relay.relay_ports.push_back(*relay_port);
    }
    return relay;
}

enum class Kind : std::uint8_t { channel_out, channel_in, data_indication, padded_channel_data };

// A frame of `kind` for client `i`, at `headroom` in `buffer`: what a client or its peer sends.
std::size_t make_frame(std::byte* f, Kind kind, unsigned i, std::uint16_t relay_port,
                       std::size_t payload, std::mt19937& random) {
    std::byte* udp_payload = f + 42;
    const stun::Address server = stun::Address::v4(lab::server_ip, lab::turn_port);
    switch (kind) {
    case Kind::channel_out:
    case Kind::padded_channel_data: {
        const std::size_t pad = kind == Kind::padded_channel_data ? 1 + random() % 3 : 0;
        stun::store_be16(udp_payload, lab::channel_number);
        stun::store_be16(udp_payload + 2, static_cast<std::uint16_t>(payload));
        lab::fill_payload(udp_payload + 4, payload, i);
        for (std::size_t b = 0; b < pad; ++b) udp_payload[4 + payload + b] = std::byte{0};
        return lab::frame_udp(f, port_mac, lab::client_mac(i), lab::client(i), server,
                              4 + payload + pad);
    }
    case Kind::channel_in:
    case Kind::data_indication: {
        const stun::Address peer =
            kind == Kind::channel_in ? lab::peer(i) : lab::unbound_peer(i);
        lab::fill_payload(udp_payload, payload, i);
        return lab::frame_udp(f, port_mac, lab::gateway_mac, peer,
                              stun::Address::v4(lab::server_ip, relay_port), payload);
    }
    }
    return 0;
}

struct Tally {
    std::size_t express = 0;  // frames the express lane relayed
    std::size_t relayed = 0;  // frames either shard transmitted
};

// `rounds` frames through both shards, counted in `run`; fails the test at the first
// disagreement.
void compare(const PortContext& port, std::uint64_t start_ticks, int rounds, unsigned seed,
             Tally& run) {
    Relay fast = make_relay(port, start_ticks);
    Relay general = make_relay(port, start_ticks);
    EXPECT_EQ(fast.relay_ports, general.relay_ports);
    std::mt19937 random(seed);
    CoreCounters fast_counters, general_counters;
    std::uint64_t now_ticks = start_ticks;
    for (int round = 0; round < rounds; ++round) {
        now_ticks += random() % (ticks_per_second / 1000);  // up to a millisecond between frames
        const unsigned i = static_cast<unsigned>(random() % clients);
        const auto kind = static_cast<Kind>(random() % 4);
        const std::size_t payload = random() % 4 == 0 ? random() % 1400 : 1 + random() % 160;
        std::vector<std::byte> a(room);
        std::size_t length =
            make_frame(a.data() + headroom, kind, i, fast.relay_ports[i], payload, random);
        std::byte* f = a.data() + headroom;
        // Changes: bytes anywhere in the headers and the ChannelData header, Ethernet
        // padding, a TTL of 1, no UDP checksum; then the checksums made right, mostly.
        const int changes = static_cast<int>(random() % 3);
        for (int c = 0; c < changes; ++c)
            f[random() % std::min<std::size_t>(length, 50)] ^=
                static_cast<std::byte>(1 + random() % 255);
        if (random() % 16 == 0) f[14 + 8] = std::byte{1};
        if (random() % 16 == 0) length += 1 + random() % 8;  // Ethernet padding
        const bool no_checksum = random() % 8 == 0;
        if (random() % 4 != 0) {
            std::byte* h = f + 14;
            stun::store_be16(h + 10, 0);
            stun::store_be16(h + 10, ipv4_header_checksum({h, 20}));
        }
        if (no_checksum) {
            stun::store_be16(f + 34 + 6, 0);
        } else if (random() % 4 != 0) {
            std::byte* u = f + 34;
            const std::size_t udp_length = std::min<std::size_t>(stun::load_be16(u + 4),
                                                                 length - 34);
            stun::store_be16(u + 6, 0);
            const std::uint16_t sum =
                transport_checksum({f + 26, 8}, ip_protocol::udp, {u, udp_length});
            stun::store_be16(u + 6, sum == 0 ? 0xFFFF : sum);
        }
        std::vector<std::byte> b = a;
        const auto capacity = static_cast<std::uint16_t>(room - headroom);
        Frame x{a.data() + headroom, static_cast<std::uint16_t>(length), capacity, headroom};
        Frame y{b.data() + headroom, static_cast<std::uint16_t>(length), capacity, headroom};
        RelayState fast_state{*fast.shard, now_ticks, now_s};
        RelayState general_state{*general.shard, now_ticks, now_s};
        // handle_frame(), its express lane counted; and the general path alone.
        ++fast_counters.rx_packets;
        fast_counters.rx_bytes += x.length;
        Verdict fast_verdict;
        if (relay_express_ipv4(x, port, fast_state)) {
            ++run.express;
            ++fast_counters.tx_packets;
            fast_counters.tx_bytes += x.length;
            fast_verdict = Verdict::transmit();
        } else {
            fast_verdict = handle_frame_generally(x, port, fast_counters, &fast_state);
        }
        ++general_counters.rx_packets;
        general_counters.rx_bytes += y.length;
        const Verdict general_verdict =
            handle_frame_generally(y, port, general_counters, &general_state);
        ASSERT_EQ(fast_verdict.action, general_verdict.action) << "round " << round;
        if (!fast_verdict.transmits()) {
            ASSERT_EQ(fast_verdict.reason, general_verdict.reason) << "round " << round;
            continue;
        }
        ++run.relayed;
        ASSERT_EQ(x.data - a.data(), y.data - b.data()) << "round " << round;
        ASSERT_EQ(x.length, y.length) << "round " << round;
        ASSERT_EQ(x.headroom, y.headroom) << "round " << round;
        ASSERT_EQ(x.capacity, y.capacity) << "round " << round;
        ASSERT_EQ(a, b) << "round " << round;
    }
    EXPECT_EQ(fast_counters.rx_packets, general_counters.rx_packets);
    EXPECT_EQ(fast_counters.tx_packets, general_counters.tx_packets);
    EXPECT_EQ(fast_counters.tx_bytes, general_counters.tx_bytes);
    EXPECT_EQ(fast_counters.drops, general_counters.drops);
    const RelayCounters& x = fast.shard->counters();
    const RelayCounters& y = general.shard->counters();
    EXPECT_EQ(x.to_peer_packets, y.to_peer_packets);
    EXPECT_EQ(x.to_peer_bytes, y.to_peer_bytes);
    EXPECT_EQ(x.to_client_packets, y.to_client_packets);
    EXPECT_EQ(x.to_client_bytes, y.to_client_bytes);
    for (unsigned i = 0; i < clients; ++i) {
        const auto key = FiveTuple::make(lab::client(i), stun::Address::v4(lab::server_ip,
                                                                           lab::turn_port));
        const AllocationCounters p =
            fast.shard->table().at(fast.shard->table().find(*key)).counters();
        const AllocationCounters q =
            general.shard->table().at(general.shard->table().find(*key)).counters();
        EXPECT_EQ(p.to_peer_packets, q.to_peer_packets) << "client " << i;
        EXPECT_EQ(p.to_peer_bytes, q.to_peer_bytes) << "client " << i;
        EXPECT_EQ(p.to_client_packets, q.to_client_packets) << "client " << i;
        EXPECT_EQ(p.to_client_bytes, q.to_client_bytes) << "client " << i;
    }
}

TEST(RelayExpressLaneTest, AgreesWithTheGeneralPathOnAlteredFrames) {
    const PortContext port = lab::make_port(port_mac, lab::make_context(ticks_per_second, clients));
    Tally run;
    compare(port, 1'000 * ticks_per_second, 20000, 11, run);
    // Most unaltered ChannelData and bound peers' datagrams take the express lane; the rest
    // (Data indications, padding, changed bytes) exercise its declines.
    EXPECT_GT(run.express, 4000u);
    EXPECT_GT(run.relayed, run.express + 2000);
}

// Partial checksums (rx_checksum = trust, a veth's): summed anew on both paths, never updated.
TEST(RelayExpressLaneTest, AgreesWithTheGeneralPathWhenChecksumsArePartial) {
    PortContext port = lab::make_port(port_mac, lab::make_context(ticks_per_second, clients));
    port.rx_checksum = RxChecksum::trust;
    Tally run;
    compare(port, 1'000 * ticks_per_second, 5000, 12, run);
    EXPECT_GT(run.express, 1000u);
}

// A bandwidth cap that refuses some of what is sent: both paths charge and refuse alike.
TEST(RelayExpressLaneTest, AgreesWithTheGeneralPathUnderABandwidthCap) {
    const PortContext port = lab::make_port(
        port_mac, lab::make_context(ticks_per_second, clients,
                                    RateLimit::make(20'000, 3'000, ticks_per_second)));
    Tally run;
    compare(port, 1'000 * ticks_per_second, 20000, 13, run);
    EXPECT_GT(run.express, 1000u);
}

// An hour after the allocations were made, past every lifetime (the allocation's, the
// permission's, the channel's), the express lane takes nothing, and the general path drops it.
TEST(RelayExpressLaneTest, TakesNothingOnceTheAllocationExpired) {
    const PortContext port = lab::make_port(port_mac, lab::make_context(ticks_per_second, clients));
    const std::uint64_t made = 1'000 * ticks_per_second;
    Relay relay = make_relay(port, made);
    std::mt19937 random(14);
    for (const Kind kind : {Kind::channel_out, Kind::channel_in}) {
        std::vector<std::byte> buffer(room);
        const std::size_t length = make_frame(buffer.data() + headroom, kind, 3,
                                              relay.relay_ports[3], 100, random);
        std::vector<std::byte> copy = buffer;
        const auto capacity = static_cast<std::uint16_t>(room - headroom);
        Frame live{buffer.data() + headroom, static_cast<std::uint16_t>(length), capacity,
                   headroom};
        Frame late{copy.data() + headroom, static_cast<std::uint16_t>(length), capacity,
                   headroom};
        RelayState soon{*relay.shard, made + ticks_per_second, now_s};
        EXPECT_TRUE(relay_express_ipv4(live, port, soon));
        RelayState hour{*relay.shard, made + 3'601 * ticks_per_second, now_s};
        EXPECT_FALSE(relay_express_ipv4(late, port, hour));
        CoreCounters counters;
        EXPECT_FALSE(handle_frame(late, port, counters, &hour).transmits());
    }
}

}  // namespace
