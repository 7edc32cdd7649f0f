// rewrite_for_relay (engine/relay_forward.h): on random datagrams of both families, relayed to
// both families, in each of the relay's shapes (ChannelData stripped or prepended, a Data
// indication's header prepended and padded, a Send indication's DATA kept), the new frame's
// checksums verify by a full recomputation, its payload is the kept bytes untouched, and its
// IP header follows RFC 8656 §14. And what it refuses, it leaves as it was.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/checksum.h"
#include "engine/relay_forward.h"
#include "stun/bytes.h"
#include "test_support.h"

namespace engine {
namespace {

constexpr std::size_t headroom = 128;

// A buffer holding, after `headroom` bytes, an Ethernet/IP/UDP frame from `from` to `to`
// with `payload`, TTL 64, TOS/traffic class 0xB9 (DSCP 46, ECN 01), checksums right (or the
// UDP checksum zero, "none", over IPv4 when `no_checksum`).
struct Received {
    std::vector<std::byte> buffer;
    Frame frame;
    RelayDatagram datagram;
};

Received make_datagram(const stun::Address& from, const stun::Address& to,
                       const std::vector<std::byte>& payload, bool no_checksum,
                       std::size_t tailroom) {
    const bool ipv6 = from.family == stun::AddressFamily::ipv6;
    const std::size_t ip_header = ipv6 ? 40 : 20;
    const std::size_t length = 14 + ip_header + 8 + payload.size();
    Received r;
    r.buffer.assign(headroom + length + tailroom, std::byte{0xEE});
    std::byte* f = r.buffer.data() + headroom;
    std::memset(f, 0x22, 12);
    stun::store_be16(f + 12, ipv6 ? ethertype::ipv6 : ethertype::ipv4);
    std::byte* h = f + 14;
    std::memset(h, 0, ip_header);
    const std::size_t size = ipv6 ? 16 : 4;
    if (ipv6) {
        stun::store_be32(h, 0x60000000u | 0xB9u << 20 | 0x12345);
        stun::store_be16(h + 4, static_cast<std::uint16_t>(8 + payload.size()));
        h[6] = std::byte{ip_protocol::udp};
        h[7] = std::byte{64};
    } else {
        h[0] = std::byte{0x45};
        h[1] = std::byte{0xB9};
        stun::store_be16(h + 2, static_cast<std::uint16_t>(20 + 8 + payload.size()));
        stun::store_be16(h + 4, 0x4242);
        h[8] = std::byte{64};
        h[9] = std::byte{ip_protocol::udp};
    }
    std::memcpy(h + (ipv6 ? 8 : 12), from.ip.data(), size);
    std::memcpy(h + (ipv6 ? 24 : 16), to.ip.data(), size);
    if (!ipv6) stun::store_be16(h + 10, ipv4_header_checksum({h, 20}));
    std::byte* u = h + ip_header;
    stun::store_be16(u, from.port);
    stun::store_be16(u + 2, to.port);
    stun::store_be16(u + 4, static_cast<std::uint16_t>(8 + payload.size()));
    stun::store_be16(u + 6, 0);
    std::copy(payload.begin(), payload.end(), u + 8);
    if (!no_checksum) {
        const std::uint16_t sum = transport_checksum({h + (ipv6 ? 8 : 12), 2 * size},
                                                     ip_protocol::udp, {u, 8 + payload.size()});
        stun::store_be16(u + 6, sum == 0 ? 0xFFFF : sum);
    }
    r.frame = Frame{f, static_cast<std::uint16_t>(length),
                    static_cast<std::uint16_t>(length + tailroom)};
    r.frame.headroom = headroom;
    r.datagram.ip = 14;
    r.datagram.udp = 14 + ip_header;
    r.datagram.ipv6 = ipv6;
    return r;
}

stun::Address random_address(std::mt19937& random, bool ipv6, std::uint16_t port) {
    stun::Address a;
    a.family = ipv6 ? stun::AddressFamily::ipv6 : stun::AddressFamily::ipv4;
    for (std::size_t i = 0; i < a.ip_size(); ++i) a.ip[i] = static_cast<std::byte>(random());
    a.port = port;
    return a;
}

std::vector<std::byte> random_bytes(std::mt19937& random, std::size_t n) {
    std::vector<std::byte> out(n);
    for (auto& b : out) b = static_cast<std::byte>(random());
    return out;
}

// The relay's four shapes, and any cut and prefix at all (odd ones too, which move the kept
// bytes by an odd count: the sum's bytes swap).
enum class Shape {
    strip_channel_data,
    prepend_channel_data,
    data_indication,
    send_indication,
    arbitrary,
};

TEST(RelayForwardTest, ChecksumsVerifyAndThePayloadIsUntouched) {
    std::mt19937 random(5);
    const MacAddress source_mac = {std::byte{2}, std::byte{0x50}, std::byte{0}, std::byte{0},
                                   std::byte{0}, std::byte{2}};
    const MacAddress next_hop = {std::byte{2}, std::byte{0}, std::byte{0}, std::byte{0},
                                 std::byte{0}, std::byte{0xFE}};
    for (int round = 0; round < 4000; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        const bool in6 = random() % 2 == 1;
        const bool out6 = random() % 2 == 1;
        const auto shape = static_cast<Shape>(random() % 5);
        const std::size_t data_length = random() % 1300;
        // The received payload, and which part of it is relayed.
        std::vector<std::byte> payload;
        std::size_t keep = 0;
        std::size_t keep_length = data_length;
        std::vector<std::byte> prefix;
        std::size_t pad = 0;
        switch (shape) {
        case Shape::strip_channel_data: {
            payload = random_bytes(random, 4 + data_length + random() % 4);  // maybe padded
            keep = 4;
            break;
        }
        case Shape::prepend_channel_data:
            payload = random_bytes(random, data_length);
            prefix = random_bytes(random, 4);
            break;
        case Shape::data_indication:
            payload = random_bytes(random, data_length);
            prefix = random_bytes(random, 20 + (out6 ? 24 : 12) + 4);
            pad = (4 - data_length % 4) % 4;
            break;
        case Shape::send_indication: {
            // DATA's value at an attribute boundary, anything after it (padding, FINGERPRINT).
            keep = 4 * (random() % 12);
            payload = random_bytes(random, keep + data_length + random() % 12);
            break;
        }
        case Shape::arbitrary:
            keep = random() % 9;
            payload = random_bytes(random, keep + data_length + random() % 5);
            prefix = random_bytes(random, random() % 6);
            pad = random() % 4;
            break;
        }
        const bool no_checksum = !in6 && random() % 8 == 0;
        // A partial checksum (a veth's): summed anew, never updated.
        const bool unverified = random() % 8 == 0;
        const stun::Address from = random_address(random, in6, 40000);
        const stun::Address to = random_address(random, in6, 3478);
        Received r = make_datagram(from, to, payload, no_checksum, 8);
        r.datagram.keep = r.datagram.udp + 8 + keep;
        r.datagram.keep_length = keep_length;
        if (unverified) {
            r.datagram.checksum_complete = false;
            r.frame.data[r.datagram.udp + 6] ^= std::byte{0x5A};  // wrong, as partial ones are
        }
        const std::vector<std::byte> kept(payload.begin() + static_cast<std::ptrdiff_t>(keep),
                                          payload.begin() +
                                              static_cast<std::ptrdiff_t>(keep + keep_length));

        if (shape == Shape::arbitrary && keep_length + pad > 1300) pad = 0;
        RelayHop hop;
        hop.source_mac = source_mac;
        hop.destination_mac = next_hop;
        hop.source = random_address(random, out6, 50000);
        hop.destination = random_address(random, out6, 61000);
        hop.dont_fragment = random() % 2 == 1;
        Frame f = r.frame;
        ASSERT_EQ(rewrite_for_relay(f, r.datagram, prefix, pad, hop, 1500),
                  RelayRewriteResult::ok);

        const std::size_t ip_header = out6 ? 40 : 20;
        const std::size_t udp_length = 8 + prefix.size() + keep_length + pad;
        ASSERT_EQ(f.length, 14 + ip_header + udp_length);
        EXPECT_EQ(f.data - r.buffer.data(), static_cast<std::ptrdiff_t>(f.headroom));
        EXPECT_EQ(std::memcmp(f.data, next_hop.data(), 6), 0);
        EXPECT_EQ(std::memcmp(f.data + 6, source_mac.data(), 6), 0);
        const std::byte* h = f.data + 14;
        const std::byte* u = h + ip_header;
        const std::size_t size = out6 ? 16 : 4;
        EXPECT_EQ(std::memcmp(h + (out6 ? 8 : 12), hop.source.ip.data(), size), 0);
        EXPECT_EQ(std::memcmp(h + (out6 ? 24 : 16), hop.destination.ip.data(), size), 0);
        // RFC 8656 §14: TTL one less; DSCP and ECN copied; DF as asked.
        if (out6) {
            EXPECT_EQ(std::to_integer<int>(h[7]), 63);
            EXPECT_EQ((stun::load_be16(h) >> 4) & 0xFF, 0xB9);
        } else {
            EXPECT_EQ(std::to_integer<int>(h[8]), 63);
            EXPECT_EQ(std::to_integer<int>(h[1]), 0xB9);
            EXPECT_EQ(stun::load_be16(h + 6), hop.dont_fragment ? 0x4000 : 0);
            EXPECT_EQ(ipv4_header_checksum({h, 20}), 0);
        }
        EXPECT_EQ(stun::load_be16(u), 50000);
        EXPECT_EQ(stun::load_be16(u + 2), 61000);
        EXPECT_EQ(stun::load_be16(u + 4), udp_length);
        EXPECT_NE(stun::load_be16(u + 6), 0);
        EXPECT_EQ(transport_checksum({h + (out6 ? 8 : 12), 2 * size}, ip_protocol::udp,
                                     {u, udp_length}),
                  0)
            << "shape " << static_cast<int>(shape) << ", in6 " << in6 << ", out6 " << out6
            << ", no_checksum " << no_checksum;
        EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), u + 8));
        EXPECT_TRUE(std::equal(kept.begin(), kept.end(), u + 8 + prefix.size()));
        EXPECT_TRUE(std::all_of(u + 8 + prefix.size() + keep_length, u + udp_length,
                                [](std::byte b) { return b == std::byte{0}; }));
    }
}

class RelayForwardRefusalTest : public ::testing::Test {
protected:
    void expect_refused(Received& r, std::span<const std::byte> prefix, std::size_t pad,
                        std::uint16_t mtu, RelayRewriteResult expected) {
        const std::vector<std::byte> before = r.buffer;
        Frame f = r.frame;
        RelayHop hop;
        hop.source = test::address("198.51.100.1");
        hop.destination = test::address("203.0.113.9");
        EXPECT_EQ(rewrite_for_relay(f, r.datagram, prefix, pad, hop, mtu), expected);
        EXPECT_EQ(r.buffer, before) << "a refused rewrite changed the frame";
        EXPECT_EQ(f.data, r.frame.data);
        EXPECT_EQ(f.length, r.frame.length);
    }
};

TEST_F(RelayForwardRefusalTest, TtlOfOneIsNotForwarded) {
    Received r = make_datagram(test::address("192.0.2.1"), test::address("192.0.2.2"),
                               std::vector<std::byte>(40, std::byte{1}), false, 8);
    r.frame.data[14 + 8] = std::byte{1};
    r.datagram.keep = r.datagram.udp + 8;
    r.datagram.keep_length = 40;
    expect_refused(r, {}, 0, 1500, RelayRewriteResult::ttl_expired);
}

TEST_F(RelayForwardRefusalTest, OverTheMtuIsRefused) {
    Received r = make_datagram(test::address("192.0.2.1"), test::address("192.0.2.2"),
                               std::vector<std::byte>(1472, std::byte{1}), false, 8);
    r.datagram.keep = r.datagram.udp + 8;
    r.datagram.keep_length = 1472;
    const std::byte channel_header[4] = {std::byte{0x40}, std::byte{0}, std::byte{5},
                                         std::byte{0xC0}};
    expect_refused(r, channel_header, 0, 1500, RelayRewriteResult::too_big);
}

TEST_F(RelayForwardRefusalTest, NoHeadroomForLongerHeaders) {
    Received r = make_datagram(test::address("192.0.2.1"), test::address("192.0.2.2"),
                               std::vector<std::byte>(40, std::byte{1}), false, 8);
    r.frame.headroom = 3;
    r.datagram.keep = r.datagram.udp + 8;
    r.datagram.keep_length = 40;
    const std::byte channel_header[4] = {std::byte{0x40}, std::byte{0}, std::byte{0},
                                         std::byte{40}};
    expect_refused(r, channel_header, 0, 1500, RelayRewriteResult::no_room);
}

TEST_F(RelayForwardRefusalTest, NoTailroomForPadding) {
    Received r = make_datagram(test::address("192.0.2.1"), test::address("192.0.2.2"),
                               std::vector<std::byte>(41, std::byte{1}), false, 0);
    r.datagram.keep = r.datagram.udp + 8;
    r.datagram.keep_length = 41;
    expect_refused(r, {}, 3, 1500, RelayRewriteResult::no_room);
}

}  // namespace
}  // namespace engine
