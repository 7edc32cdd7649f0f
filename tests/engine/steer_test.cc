// owner_worker(): the owner of a packet is a pure function of its source (design.md §3), so
// that whichever core receives a flow's packets hands them to the same core.
#include "engine/steer.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

#include "stun/bytes.h"

namespace {

// An Ethernet/IPv4/UDP frame from src_ip:src_port (only the fields steering reads are set).
std::vector<std::byte> udp4(std::uint32_t src_ip, std::uint16_t src_port,
                            std::uint8_t protocol = 17, std::uint16_t dst_port = 3478) {
    std::vector<std::byte> f(14 + 20 + 8);
    stun::store_be16(f.data() + 12, 0x0800);
    f[14] = std::byte{0x45};
    f[14 + 9] = static_cast<std::byte>(protocol);
    stun::store_be32(f.data() + 14 + 12, src_ip);
    stun::store_be32(f.data() + 14 + 16, 0xC6120002);
    stun::store_be16(f.data() + 34, src_port);
    stun::store_be16(f.data() + 36, dst_port);
    return f;
}

std::vector<std::byte> udp6(std::uint8_t last_byte, std::uint16_t src_port,
                            std::uint16_t dst_port = 3478) {
    std::vector<std::byte> f(14 + 40 + 8);
    stun::store_be16(f.data() + 12, 0x86DD);
    f[14] = std::byte{0x60};
    f[14 + 6] = std::byte{17};
    f[14 + 8] = std::byte{0x20};
    f[14 + 9] = std::byte{0x01};
    f[14 + 23] = std::byte{last_byte};
    stun::store_be16(f.data() + 54, src_port);
    stun::store_be16(f.data() + 56, dst_port);
    return f;
}

TEST(OwnerWorker, OneWorkerOwnsNothingInParticular) {
    EXPECT_EQ(engine::owner_worker(udp4(0xC6120064, 40000), 1), -1);
}

TEST(OwnerWorker, SameSourceSameOwnerWhateverTheDestination) {
    auto a = udp4(0xC6120064, 40000);
    auto b = udp4(0xC6120064, 40000);
    stun::store_be32(b.data() + 14 + 16, 0xC6120003);  // another destination address
    stun::store_be16(b.data() + 36, 3479);             // and port
    for (unsigned workers = 2; workers <= 16; ++workers) {
        const int owner = engine::owner_worker(a, workers);
        ASSERT_GE(owner, 0);
        ASSERT_LT(owner, static_cast<int>(workers));
        EXPECT_EQ(engine::owner_worker(b, workers), owner) << workers << " workers";
    }
}

TEST(OwnerWorker, SourcesSpreadOverEveryWorker) {
    constexpr unsigned workers = 4;
    std::array<unsigned, workers> counts{};
    for (std::uint32_t i = 0; i < 4000; ++i) {
        const int owner = engine::owner_worker(
            udp4(0xC6120000 + (i % 250), static_cast<std::uint16_t>(30000 + i)), workers);
        ASSERT_GE(owner, 0);
        ++counts[static_cast<unsigned>(owner)];
    }
    // A fair hash puts ~1000 on each; allow wide slack, but every worker must get a share.
    for (unsigned w = 0; w < workers; ++w) EXPECT_GT(counts[w], 700u) << "worker " << w;
}

TEST(OwnerWorker, Ipv6SourcesAreSteeredToo) {
    std::set<int> owners;
    for (unsigned i = 0; i < 64; ++i)
        owners.insert(engine::owner_worker(udp6(static_cast<std::uint8_t>(i), 40000), 4));
    EXPECT_EQ(owners.count(-1), 0u);
    EXPECT_GT(owners.size(), 1u);
}

TEST(OwnerWorker, ArpIcmpAndShortFramesBelongToAnyWorker) {
    std::vector<std::byte> arp(42);
    stun::store_be16(arp.data() + 12, 0x0806);
    EXPECT_EQ(engine::owner_worker(arp, 4), -1);
    EXPECT_EQ(engine::owner_worker(udp4(0xC6120064, 40000, 1), 4), -1);  // ICMP
    EXPECT_EQ(engine::owner_worker(std::vector<std::byte>(10), 4), -1);
    auto truncated = udp4(0xC6120064, 40000);
    truncated.resize(14 + 21);  // cut before the UDP source port
    EXPECT_EQ(engine::owner_worker(truncated, 4), -1);
}

}  // namespace

namespace {

// Relay ports: the port number names the owner, whoever the source (design.md §3), so that a
// peer's datagram reaches the worker that allocated the port; other ports hash the source.
TEST(OwnerWorker, RelayPortsBelongToTheWorkerThatTheirNumberEncodes) {
    const engine::RelayPortPartition relay{49152, 1000};  // 4 workers: 49152 .. 53151
    for (unsigned w = 0; w < 4; ++w) {
        for (const std::uint16_t offset : {0, 1, 500, 999}) {
            const auto port = static_cast<std::uint16_t>(49152 + w * 1000 + offset);
            for (std::uint32_t source = 0; source < 50; ++source) {
                EXPECT_EQ(engine::owner_worker(udp4(0xCB007100 + source, 40000 + source, 17,
                                                    port),
                                               4, relay),
                          static_cast<int>(w))
                    << port;
                EXPECT_EQ(engine::owner_worker(udp6(static_cast<std::uint8_t>(source), 40000,
                                                    port),
                                               4, relay),
                          static_cast<int>(w))
                    << port;
            }
        }
    }
    // Past the last worker's ports, and below the first: hashed by source like any port.
    for (const std::uint16_t port : {49151, 53152, 3478}) {
        const auto frame = udp4(0xCB007107, 40007, 17, port);
        EXPECT_EQ(engine::owner_worker(frame, 4, relay),
                  engine::owner_worker(udp4(0xCB007107, 40007, 17, 3478), 4))
            << port;
    }
    EXPECT_EQ(relay.owner_of(53152, 4), -1);
    EXPECT_EQ(engine::RelayPortPartition{}.owner_of(49152, 4), -1);
}

}  // namespace
