// The SFU node agent's frames (control/node_frames.h): built byte for byte as scapy builds them
// (the expected bytes below are scapy's, from the command beside them), parsed back, and
// refused when truncated, fragmented or not UDP; FrameSender's next hop and refusals.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "control/node_frames.h"

namespace {

stun::Address address(const char* ip, std::uint16_t port) {
    stun::Address out;
    EXPECT_TRUE(stun::Address::from_string(ip, port, out)) << ip;
    return out;
}

std::vector<std::byte> from_hex(std::string_view hex) {
    std::vector<std::byte> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(
            static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return out;
}

const engine::MacAddress port_mac{std::byte{2}, {}, {}, {}, {}, std::byte{1}};
const engine::MacAddress gateway_mac{std::byte{2}, {}, {}, {}, {}, std::byte{2}};
const std::string payload_text = "hello stun";
const auto payload = std::as_bytes(std::span(payload_text));

// /usr/bin/python3 -c "from scapy.all import *; print(bytes(Ether(dst='02:00:00:00:00:02',
//   src='02:00:00:00:00:01')/IP(src='198.18.0.2',dst='198.51.100.9',id=0,ttl=64)/
//   UDP(sport=3480,dport=6000)/Raw(b'hello stun')).hex())"   (and IPv6(..., hlim=64) likewise)
constexpr std::string_view ipv4_frame =
    "0200000000020200000000010800450000260000000040118a76c6120002c63364090d9817700012bd9b68656c"
    "6c6f207374756e";
constexpr std::string_view ipv6_frame =
    "02000000000202000000000186dd600000000012114020010db800000000000000000000000220010db8000100"
    "0000000000000000090d9817700012526f68656c6c6f207374756e";

TEST(NodeFrames, BuildsIpv4AndIpv6AsScapyDoes) {
    std::array<std::byte, 256> out{};
    std::size_t n = control::build_udp_frame(out, port_mac, gateway_mac,
                                             address("198.18.0.2", 3480),
                                             address("198.51.100.9", 6000), payload);
    EXPECT_EQ(std::vector<std::byte>(out.begin(), out.begin() + n), from_hex(ipv4_frame));
    n = control::build_udp_frame(out, port_mac, gateway_mac, address("2001:db8::2", 3480),
                                 address("2001:db8:1::9", 6000), payload);
    EXPECT_EQ(std::vector<std::byte>(out.begin(), out.begin() + n), from_hex(ipv6_frame));
}

TEST(NodeFrames, RefusesWhatDoesNotFit) {
    std::array<std::byte, 40> small{};
    EXPECT_EQ(control::build_udp_frame(small, port_mac, gateway_mac, address("198.18.0.2", 3480),
                                       address("198.51.100.9", 6000), payload),
              0u);
    std::array<std::byte, 256> out{};
    EXPECT_EQ(control::build_udp_frame(out, port_mac, gateway_mac, address("198.18.0.2", 3480),
                                       address("2001:db8::9", 6000), payload),
              0u);
}

TEST(NodeFrames, ParsesWhatItBuildsAndNothingElse) {
    for (const std::string_view hex : {ipv4_frame, ipv6_frame}) {
        const std::vector<std::byte> frame = from_hex(hex);
        const auto datagram = control::parse_udp_frame(frame);
        ASSERT_TRUE(datagram);
        EXPECT_EQ(datagram->from.port, 3480);
        EXPECT_EQ(datagram->to.port, 6000);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(datagram->payload.data()),
                              datagram->payload.size()),
                  payload_text);
    }
    EXPECT_EQ(control::parse_udp_frame(from_hex(ipv4_frame))->from, address("198.18.0.2", 3480));
    EXPECT_EQ(control::parse_udp_frame(from_hex(ipv6_frame))->to, address("2001:db8:1::9", 6000));
    struct Case {
        const char* name;
        std::string_view hex;
        std::size_t offset;  // a byte to change (from the Ethernet header on), or the cut
        int value;           // -1: cut the frame at `offset`
    };
    const std::vector<Case> cases = {
        {"Ipv4Truncated", ipv4_frame, 30, -1},
        {"Ipv6Truncated", ipv6_frame, 60, -1},
        {"NotIp", ipv4_frame, 12, 0x09},
        {"Ipv4NotUdp", ipv4_frame, 14 + 9, 6},
        {"Ipv4MoreFragments", ipv4_frame, 14 + 6, 0x20},
        {"Ipv4TotalPastFrame", ipv4_frame, 14 + 3, 0x40},
        {"Ipv4HeaderTooShort", ipv4_frame, 14, 0x44},
        {"Ipv6NotUdp", ipv6_frame, 14 + 6, 44},
        {"Ipv6PayloadPastFrame", ipv6_frame, 14 + 5, 0x40},
        {"UdpLengthPastIp", ipv4_frame, 14 + 20 + 5, 0x40},
        {"UdpLengthBelowHeader", ipv4_frame, 14 + 20 + 5, 0x04},
    };
    for (const Case& c : cases) {
        std::vector<std::byte> frame = from_hex(c.hex);
        if (c.value < 0)
            frame.resize(c.offset);
        else
            frame[c.offset] = static_cast<std::byte>(c.value);
        EXPECT_FALSE(control::parse_udp_frame(frame)) << c.name;
    }
}

TEST(NodeFrames, SenderNeedsTheNextHopAndCountsRefusals) {
    std::vector<std::vector<std::byte>> emitted;
    bool accept = true;
    const engine::MacAddress* next_hop = nullptr;
    control::FrameSender sender(
        address("198.18.0.2", 3480), port_mac,
        [&](const stun::Address&) { return next_hop; },
        [&](std::span<const std::byte> frame) {
            emitted.emplace_back(frame.begin(), frame.end());
            return accept;
        });
    const stun::Address to = address("198.51.100.9", 6000);
    EXPECT_FALSE(sender.send_to(to, payload));  // the gateway not resolved yet
    EXPECT_EQ(sender.unresolved(), 1u);
    EXPECT_TRUE(emitted.empty());
    next_hop = &gateway_mac;
    EXPECT_TRUE(sender.send_to(to, payload));
    ASSERT_EQ(emitted.size(), 1u);
    EXPECT_EQ(emitted[0], from_hex(ipv4_frame));
    accept = false;  // the ring is full
    EXPECT_FALSE(sender.send_to(to, payload));
    EXPECT_EQ(sender.refused(), 1u);
    EXPECT_EQ(sender.sent(), 1u);
}

}  // namespace
