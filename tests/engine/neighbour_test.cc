// Tests for engine/neighbour.cc: the neighbour cache's state machine on an injected clock, the
// probe frames byte for byte, the reply parser with one named case per refusal, and the
// workers' next-hop lookup. The expected frames were written by scapy 2.5 (the commands are
// beside each), independently of this code.
#include "engine/neighbour.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <random>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/checksum.h"
#include "engine/config.h"
#include "test_support.h"
#include "stun/address.h"

namespace engine {
namespace {

using test::address;

std::vector<std::byte> hex(std::string_view text) {
    std::vector<std::byte> out;
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < text.size(); i += 2)
        out.push_back(static_cast<std::byte>(nibble(text[i]) * 16 + nibble(text[i + 1])));
    return out;
}

constexpr MacAddress port_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                                 std::byte{0},    std::byte{0}, std::byte{0x01}};
constexpr MacAddress gateway_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                                    std::byte{0},    std::byte{0}, std::byte{0xFE}};
constexpr MacAddress other_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                                  std::byte{0},    std::byte{0}, std::byte{0x77}};

NeighbourConfig settings() {
    NeighbourConfig config;
    config.reachable_ms = 30000;
    config.retransmit_ms = 1000;
    config.max_probes = 3;
    config.failed_retry_ms = 10000;
    config.capacity = 8;
    return config;
}

// 198.18.0.2/24 and 2001:db8::2/64, with or without the gateways .1 and ::1.
PortConfig port(bool gateways) {
    PortConfig p;
    p.device = "net_ring0";
    p.ipv4 = {address("198.18.0.2")};
    p.ipv6 = {address("2001:db8::2")};
    p.prefix4 = 24;
    p.prefix6 = 64;
    if (gateways) {
        p.gateway4 = address("198.18.0.1");
        p.gateway6 = address("2001:db8::1");
    }
    return p;
}

NeighbourReply reply(std::string_view ip, const MacAddress& mac, bool solicited = true,
                     bool override_mac = true) {
    NeighbourReply out;
    out.ip = address(ip);
    out.mac = mac;
    out.solicited = solicited;
    out.override_mac = override_mac;
    return out;
}

NeighbourState state_of(const NeighbourTable& table, std::string_view ip) {
    const NeighbourEntry* entry = table.find(address(ip));
    EXPECT_NE(entry, nullptr) << ip;
    return entry != nullptr ? entry->state : NeighbourState::failed;
}

// ---------------------------------------------------------------------------------------------
// The state machine.

TEST(NeighbourTable, ResolveProbesEveryRetransmitIntervalThenFails) {
    NeighbourTable table(settings(), port(false), port_mac, 0);
    EXPECT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    EXPECT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::present);
    EXPECT_TRUE(table.snapshot().watches(address("198.18.0.50").ip_bytes()));

    for (const std::uint64_t at : {0u, 1000u, 2000u}) {
        SCOPED_TRACE("at " + std::to_string(at) + " ms");
        if (at > 0) {
            EXPECT_TRUE(table.tick(at - 1).empty());
        }
        const std::vector<NeighbourProbe> probes = table.tick(at);
        ASSERT_EQ(probes.size(), 1u);
        EXPECT_EQ(probes[0].ip, address("198.18.0.50"));
        EXPECT_FALSE(probes[0].unicast.has_value()) << "INCOMPLETE probes are broadcast";
        EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::incomplete);
    }
    EXPECT_TRUE(table.tick(2999).empty());
    // RFC 4861 §7.3.3: RetransTimer after the last probe, the entry gives up.
    EXPECT_TRUE(table.tick(3000).empty());
    EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::failed);
    const std::vector<NeighbourEvent> events = table.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, NeighbourEvent::Kind::failed);
    EXPECT_FALSE(events[0].gateway);
}

TEST(NeighbourTable, ReplyMakesReachableThenStaleIsProbedByUnicastThenFails) {
    NeighbourTable table(settings(), port(false), port_mac, 0);
    ASSERT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    table.take_changed();
    ASSERT_EQ(table.tick(0).size(), 1u);
    EXPECT_FALSE(table.snapshot().find(address("198.18.0.50").ip_bytes())->usable);

    EXPECT_TRUE(table.on_reply(reply("198.18.0.50", other_mac), 100));
    EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::reachable);
    EXPECT_TRUE(table.take_changed()) << "a resolved MAC must be published";
    const std::vector<NeighbourEvent> events = table.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, NeighbourEvent::Kind::resolved);
    EXPECT_EQ(events[0].mac, other_mac);
    const NeighbourSnapshot resolved = table.snapshot();
    ASSERT_NE(resolved.next_hop_mac(address("198.18.0.50")), nullptr);
    EXPECT_EQ(*resolved.next_hop_mac(address("198.18.0.50")), other_mac);

    // No probes while REACHABLE; reachable_ms after the reply, STALE and a unicast probe.
    EXPECT_TRUE(table.tick(1100).empty());
    EXPECT_TRUE(table.tick(30099).empty());
    EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::reachable);
    for (const std::uint64_t at : {30100u, 31100u, 32100u}) {
        SCOPED_TRACE("at " + std::to_string(at) + " ms");
        const std::vector<NeighbourProbe> probes = table.tick(at);
        ASSERT_EQ(probes.size(), 1u);
        ASSERT_TRUE(probes[0].unicast.has_value()) << "a STALE entry is probed by unicast";
        EXPECT_EQ(*probes[0].unicast, other_mac);
        EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::stale);
        EXPECT_TRUE(table.tick(at + 999).empty());
    }
    EXPECT_FALSE(table.take_changed()) << "STALE still uses the MAC: nothing to republish";
    ASSERT_NE(table.snapshot().next_hop_mac(address("198.18.0.50")), nullptr);

    EXPECT_TRUE(table.tick(33100).empty());
    EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::failed);
    EXPECT_TRUE(table.take_changed()) << "the workers must stop using a failed MAC";
    EXPECT_EQ(table.snapshot().next_hop_mac(address("198.18.0.50")), nullptr);
}

TEST(NeighbourTable, ReplyToStaleProbeMakesReachableAgain) {
    NeighbourTable table(settings(), port(false), port_mac, 0);
    ASSERT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    table.tick(0);
    table.on_reply(reply("198.18.0.50", other_mac), 0);
    ASSERT_EQ(table.tick(30000).size(), 1u);
    EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::stale);
    table.take_changed();
    EXPECT_TRUE(table.on_reply(reply("198.18.0.50", other_mac), 30500));
    EXPECT_EQ(state_of(table, "198.18.0.50"), NeighbourState::reachable);
    EXPECT_FALSE(table.take_changed()) << "same MAC, still usable";
    EXPECT_TRUE(table.take_events().size() == 1u) << "only the first resolution is an event";
    EXPECT_TRUE(table.tick(60499).empty());
    EXPECT_EQ(table.tick(60500).size(), 1u);
}

TEST(NeighbourTable, FailedGatewayIsRetriedAfterADoublingBackOff) {
    NeighbourTable table(settings(), port(true), port_mac, 0);
    ASSERT_EQ(table.entries().size(), 2u);
    // Both gateways are probed at the first tick; no answer.
    EXPECT_EQ(table.tick(0).size(), 2u);
    EXPECT_EQ(table.tick(1000).size(), 2u);
    EXPECT_EQ(table.tick(2000).size(), 2u);
    EXPECT_TRUE(table.tick(3000).empty());
    EXPECT_EQ(state_of(table, "198.18.0.1"), NeighbourState::failed);
    EXPECT_EQ(state_of(table, "2001:db8::1"), NeighbourState::failed);
    std::vector<NeighbourEvent> events = table.take_events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(events[0].gateway);
    EXPECT_EQ(events[0].kind, NeighbourEvent::Kind::failed);

    // failed_retry_ms later: a new round of broadcast probes.
    EXPECT_TRUE(table.tick(12999).empty());
    const std::vector<NeighbourProbe> retry = table.tick(13000);
    ASSERT_EQ(retry.size(), 2u);
    EXPECT_FALSE(retry[0].unicast.has_value());
    EXPECT_EQ(state_of(table, "198.18.0.1"), NeighbourState::incomplete);
    table.tick(14000);
    table.tick(15000);
    EXPECT_TRUE(table.tick(16000).empty());
    EXPECT_EQ(state_of(table, "198.18.0.1"), NeighbourState::failed);
    EXPECT_TRUE(table.take_events().empty()) << "one line per loss, not per failed retry";
    // The second failure in a row doubles the wait.
    EXPECT_TRUE(table.tick(35999).empty());
    EXPECT_EQ(table.tick(36000).size(), 2u);
    EXPECT_EQ(table.entries().size(), 2u) << "gateways are never removed";

    // An answer at last.
    EXPECT_TRUE(table.on_reply(reply("198.18.0.1", gateway_mac), 36100));
    EXPECT_EQ(state_of(table, "198.18.0.1"), NeighbourState::reachable);
    events = table.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, NeighbourEvent::Kind::resolved);
    EXPECT_TRUE(events[0].gateway);
}

TEST(NeighbourTable, FailedEntryThatIsNoGatewayIsRemovedAfterTheHold) {
    NeighbourTable table(settings(), port(false), port_mac, 0);
    ASSERT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    for (const std::uint64_t at : {0u, 1000u, 2000u, 3000u}) table.tick(at);
    ASSERT_EQ(state_of(table, "198.18.0.50"), NeighbourState::failed);
    table.take_changed();
    EXPECT_TRUE(table.tick(12999).empty());
    EXPECT_EQ(table.entries().size(), 1u);
    EXPECT_TRUE(table.tick(13000).empty());
    EXPECT_TRUE(table.entries().empty());
    EXPECT_TRUE(table.take_changed()) << "the workers must stop watching it";
    EXPECT_FALSE(table.snapshot().watches(address("198.18.0.50").ip_bytes()));
}

TEST(NeighbourTable, UnsolicitedReplyForAnUnknownAddressIsIgnored) {
    NeighbourTable table(settings(), port(true), port_mac, 0);
    table.take_changed();
    EXPECT_FALSE(table.on_reply(reply("198.18.0.66", other_mac), 10));
    EXPECT_FALSE(table.on_reply(reply("2001:db8::66", other_mac), 10));
    EXPECT_EQ(table.ignored_replies(), 2u);
    EXPECT_EQ(table.entries().size(), 2u) << "RFC 826's merge: no entry from a reply";
    EXPECT_EQ(table.find(address("198.18.0.66")), nullptr);
    EXPECT_FALSE(table.take_changed());
    EXPECT_TRUE(table.take_events().empty());
}

TEST(NeighbourTable, UnsolicitedAnnouncementMakesStaleAndUnicastProbesConfirm) {
    NeighbourTable table(settings(), port(true), port_mac, 0);
    EXPECT_TRUE(table.on_reply(reply("198.18.0.1", gateway_mac, false), 10));
    EXPECT_EQ(state_of(table, "198.18.0.1"), NeighbourState::stale);
    ASSERT_NE(table.snapshot().next_hop_mac(address("203.0.113.9")), nullptr)
        << "a STALE MAC is used";
    std::vector<NeighbourProbe> probes = table.tick(10);
    ASSERT_EQ(probes.size(), 2u);  // the IPv4 gateway by unicast, the IPv6 one by multicast
    EXPECT_EQ(probes[0].ip, address("198.18.0.1"));
    ASSERT_TRUE(probes[0].unicast.has_value());
    EXPECT_EQ(*probes[0].unicast, gateway_mac);
    EXPECT_FALSE(probes[1].unicast.has_value());
    EXPECT_TRUE(table.on_reply(reply("198.18.0.1", gateway_mac, true), 20));
    EXPECT_EQ(state_of(table, "198.18.0.1"), NeighbourState::reachable);
}

TEST(NeighbourTable, AdvertisementWithoutOverrideDoesNotReplaceAMac) {
    NeighbourTable table(settings(), port(true), port_mac, 0);
    table.on_reply(reply("2001:db8::1", gateway_mac), 0);
    ASSERT_EQ(state_of(table, "2001:db8::1"), NeighbourState::reachable);
    table.take_changed();
    // RFC 4861 §7.2.5: O clear and a different address: REACHABLE becomes STALE, MAC kept.
    EXPECT_TRUE(table.on_reply(reply("2001:db8::1", other_mac, true, false), 10));
    EXPECT_EQ(state_of(table, "2001:db8::1"), NeighbourState::stale);
    EXPECT_EQ(table.find(address("2001:db8::1"))->mac, gateway_mac);
    EXPECT_FALSE(table.take_changed());
    // With O set, the new MAC replaces the old one.
    EXPECT_TRUE(table.on_reply(reply("2001:db8::1", other_mac, true, true), 20));
    EXPECT_EQ(table.find(address("2001:db8::1"))->mac, other_mac);
    EXPECT_EQ(state_of(table, "2001:db8::1"), NeighbourState::reachable);
    EXPECT_TRUE(table.take_changed());
}

// RFC 4861 §7.2.5: an NA without a Target Link-Layer Address (Linux's answer to a unicast
// probe) confirms an entry that has a MAC, and teaches an INCOMPLETE one nothing.
TEST(NeighbourTable, AdvertisementWithoutAddressConfirmsButNeverResolves) {
    NeighbourTable table(settings(), port(true), port_mac, 0);
    NeighbourReply bare = reply("2001:db8::1", {}, true, true);
    bare.has_mac = false;
    EXPECT_TRUE(table.on_reply(bare, 10));
    EXPECT_EQ(state_of(table, "2001:db8::1"), NeighbourState::incomplete);
    EXPECT_TRUE(table.take_events().empty());

    table.on_reply(reply("2001:db8::1", gateway_mac), 20);
    ASSERT_EQ(table.tick(30020).size(), 2u);  // the IPv6 gateway STALE and probed
    ASSERT_EQ(state_of(table, "2001:db8::1"), NeighbourState::stale);
    EXPECT_TRUE(table.on_reply(bare, 30030));
    EXPECT_EQ(state_of(table, "2001:db8::1"), NeighbourState::reachable);
    EXPECT_EQ(table.find(address("2001:db8::1"))->mac, gateway_mac);
    // Unsolicited and bare: nothing.
    table.tick(60030);
    ASSERT_EQ(state_of(table, "2001:db8::1"), NeighbourState::stale);
    bare.solicited = false;
    EXPECT_TRUE(table.on_reply(bare, 60040));
    EXPECT_EQ(state_of(table, "2001:db8::1"), NeighbourState::stale);
}

TEST(NeighbourTable, FullTableRefusesNewEntriesAndKeepsItsGateways) {
    NeighbourConfig config = settings();
    config.capacity = 3;
    NeighbourTable table(config, port(true), port_mac, 0);
    EXPECT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    EXPECT_EQ(table.resolve(address("198.18.0.51"), 0), ResolveResult::table_full);
    EXPECT_EQ(table.resolve(address("2001:db8::51"), 0), ResolveResult::table_full);
    EXPECT_EQ(table.refused(), 2u);
    EXPECT_EQ(table.entries().size(), 3u);
    EXPECT_FALSE(table.forget(address("198.18.0.1"))) << "a gateway is never removed";
    EXPECT_FALSE(table.forget(address("2001:db8::1")));
    EXPECT_TRUE(table.forget(address("198.18.0.50")));
    EXPECT_EQ(table.resolve(address("198.18.0.51"), 0), ResolveResult::added);
    EXPECT_NE(table.find(address("198.18.0.1")), nullptr);
    EXPECT_NE(table.find(address("2001:db8::1")), nullptr);
}

TEST(NeighbourTable, FamilyWithoutAnAddressCannotBeResolved) {
    PortConfig v4_only = port(false);
    v4_only.ipv6.clear();
    NeighbourTable table(settings(), v4_only, port_mac, 0);
    EXPECT_EQ(table.resolve(address("2001:db8::50"), 0), ResolveResult::no_source_address);
    EXPECT_TRUE(table.entries().empty());
}

TEST(NeighbourTable, PortFieldIsNotPartOfTheKey) {
    NeighbourTable table(settings(), port(false), port_mac, 0);
    stun::Address with_port = address("198.18.0.50");
    with_port.port = 3478;
    EXPECT_EQ(table.resolve(with_port, 0), ResolveResult::added);
    EXPECT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::present);
    EXPECT_TRUE(table.on_reply(reply("198.18.0.50", other_mac), 0));
}

// ---------------------------------------------------------------------------------------------
// Probe frames, byte for byte against scapy.

TEST(NeighbourProbeFrame, BroadcastArpRequestMatchesScapy) {
    // Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01") / ARP(op=1,
    //   hwsrc="02:00:00:00:00:01", psrc="198.18.0.2", hwdst="00:00:00:00:00:00",
    //   pdst="198.18.0.1") / Padding(b"\0" * 18)
    const std::vector<std::byte> expected =
        hex("ffffffffffff02000000000108060001080006040001020000000001c6120002000000000000c6120001"
            "000000000000000000000000000000000000");
    NeighbourTable table(settings(), port(true), port_mac, 0);
    std::array<std::byte, 128> buffer{};
    const std::size_t n =
        table.build_probe({address("198.18.0.1"), std::nullopt}, buffer);
    ASSERT_EQ(n, arp_request_size);
    EXPECT_EQ(std::vector<std::byte>(buffer.begin(), buffer.begin() + n), expected);
}

TEST(NeighbourProbeFrame, UnicastArpRequestMatchesScapy) {
    // The same to dst="02:00:00:00:00:fe".
    const std::vector<std::byte> expected =
        hex("0200000000fe02000000000108060001080006040001020000000001c6120002000000000000c6120001"
            "000000000000000000000000000000000000");
    NeighbourTable table(settings(), port(true), port_mac, 0);
    std::array<std::byte, 128> buffer{};
    const std::size_t n = table.build_probe({address("198.18.0.1"), gateway_mac}, buffer);
    ASSERT_EQ(n, arp_request_size);
    EXPECT_EQ(std::vector<std::byte>(buffer.begin(), buffer.begin() + n), expected);
}

TEST(NeighbourProbeFrame, SolicitationToTheSolicitedNodeGroupMatchesScapy) {
    // Ether(dst="33:33:ff:ab:cd:ef", src="02:00:00:00:00:01") / IPv6(src="2001:db8::2",
    //   dst="ff02::1:ffab:cdef", hlim=255) / ICMPv6ND_NS(tgt="2001:db8::12ab:cdef") /
    //   ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    const std::vector<std::byte> expected = hex(
        "3333ffabcdef02000000000186dd6000000000203aff20010db8000000000000000000000002ff0200000000"
        "000000000001ffabcdef87006cf40000000020010db8000000000000000012abcdef0101020000000001");
    NeighbourTable table(settings(), port(true), port_mac, 0);
    std::array<std::byte, 128> buffer{};
    const std::size_t n =
        table.build_probe({address("2001:db8::12ab:cdef"), std::nullopt}, buffer);
    ASSERT_EQ(n, neighbour_solicitation_size);
    const std::vector<std::byte> frame(buffer.begin(), buffer.begin() + n);
    EXPECT_EQ(frame, expected);
    // RFC 4443 §2.3 over the pseudo-header: a valid checksum sums to zero.
    EXPECT_EQ(transport_checksum({frame.data() + 22, 32}, 58, {frame.data() + 54, 32}), 0);
}

TEST(NeighbourProbeFrame, GatewaySolicitationMatchesScapy) {
    // ... dst="33:33:ff:00:00:01", IPv6 dst="ff02::1:ff00:1", tgt="2001:db8::1"
    const std::vector<std::byte> expected = hex(
        "3333ff00000102000000000186dd6000000000203aff20010db8000000000000000000000002ff0200000000"
        "000000000001ff00000187001c280000000020010db80000000000000000000000010101020000000001");
    std::array<std::byte, 128> buffer{};
    const stun::Address source = address("2001:db8::2");
    const stun::Address target = address("2001:db8::1");
    const std::size_t n = build_neighbour_solicitation(
        buffer, port_mac, std::span<const std::byte, 16>(source.ip),
        std::span<const std::byte, 16>(target.ip), nullptr);
    ASSERT_EQ(n, neighbour_solicitation_size);
    EXPECT_EQ(std::vector<std::byte>(buffer.begin(), buffer.begin() + n), expected);
}

TEST(NeighbourProbeFrame, UnicastSolicitationMatchesScapy) {
    // Ether(dst="02:00:00:00:00:fe", ...) / IPv6(src="2001:db8::2", dst="2001:db8::1",
    //   hlim=255) / ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(...)
    const std::vector<std::byte> expected = hex(
        "0200000000fe02000000000186dd6000000000203aff20010db800000000000000000000000220010db80000"
        "000000000000000000018700ec730000000020010db80000000000000000000000010101020000000001");
    NeighbourTable table(settings(), port(true), port_mac, 0);
    std::array<std::byte, 128> buffer{};
    const std::size_t n = table.build_probe({address("2001:db8::1"), gateway_mac}, buffer);
    ASSERT_EQ(n, neighbour_solicitation_size);
    EXPECT_EQ(std::vector<std::byte>(buffer.begin(), buffer.begin() + n), expected);
}

TEST(NeighbourProbeFrame, ShortBufferWritesNothing) {
    std::array<std::byte, neighbour_solicitation_size - 1> small{};
    NeighbourTable table(settings(), port(true), port_mac, 0);
    EXPECT_EQ(table.build_probe({address("2001:db8::1"), std::nullopt}, small), 0u);
    std::array<std::byte, arp_request_size - 1> smaller{};
    EXPECT_EQ(table.build_probe({address("198.18.0.1"), std::nullopt}, smaller), 0u);
}

TEST(NeighbourProbeFrame, ProbeOfAFamilyThePortLacksWritesNothing) {
    PortConfig v4_only = port(false);
    v4_only.ipv6.clear();
    NeighbourTable table(settings(), v4_only, port_mac, 0);
    std::array<std::byte, 128> buffer{};
    EXPECT_EQ(table.build_probe({address("2001:db8::1"), std::nullopt}, buffer), 0u);
}

// ---------------------------------------------------------------------------------------------
// Parsing replies: one named case per outcome.

struct ParseCase {
    std::string name;
    std::string frame_hex;  // scapy, see the comment of each
    NeighbourFrame expected;
    std::string ip = {};     // for reply: what it says
    MacAddress mac = {};
    bool solicited = false;
    bool override_mac = false;
    bool has_mac = true;
};

void PrintTo(const ParseCase& c, std::ostream* out) { *out << c.name; }

// GW = 02:00:00:00:00:fe at 198.18.0.1 / 2001:db8::1; the port 02:00:00:00:00:01 at .2 / ::2.
const std::string na_valid =  // ICMPv6ND_NA(R=1, S=1, O=1, tgt=GW) / TLLA(GW), to the port
    "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
    "0000000000000000000288000976e000000020010db800000000000000000000000102010200000000fe";

const std::vector<ParseCase> parse_cases = {
    {"ArpReply",  // ARP(op=2, hwsrc=GW, psrc=198.18.0.1, hwdst=port, pdst=198.18.0.2)
     "0200000000010200000000fe080600010800060400020200000000fec6120001020000000001c6120002",
     NeighbourFrame::reply, "198.18.0.1", gateway_mac, true, true},
    {"ArpGratuitousReply",  // op=2, broadcast, psrc = pdst = 198.18.0.1: not solicited
     "ffffffffffff0200000000fe080600010800060400020200000000fec6120001ffffffffffffc6120001",
     NeighbourFrame::reply, "198.18.0.1", gateway_mac, false, true},
    {"ArpRequestIsNotAReply",  // op=1 for 198.18.0.2
     "ffffffffffff0200000000fe080600010800060400010200000000fec6120001000000000000c6120002",
     NeighbourFrame::not_neighbour},
    {"ArpProbeIsNotAReply",  // RFC 5227 probe: psrc 0.0.0.0, pdst 198.18.0.1
     "ffffffffffff0200000000fe080600010800060400010200000000fe00000000000000000000c6120001",
     NeighbourFrame::not_neighbour},
    {"ArpReplyFromMulticastMacIsInvalid",
     "0200000000010200000000fe08060001080006040002010000000000c6120001020000000001c6120002",
     NeighbourFrame::invalid},
    {"ArpReplyWithHardwareLength8IsInvalid",
     "0200000000010200000000fe080600010800080400020200000000fec6120001020000000001c6120002",
     NeighbourFrame::invalid},
    {"ArpTruncated", "0200000000010200000000fe080600010800060400020200000000fec6120001",
     NeighbourFrame::truncated},
    {"NeighbourAdvertisement", na_valid, NeighbourFrame::reply, "2001:db8::1", gateway_mac, true,
     true},
    {"UnsolicitedAdvertisementWithoutOverride",  // S=0, O=0, to ff02::1
     "3333000000010200000000fe86dd6000000000203aff20010db8000000000000000000000001ff0200000000"
     "000000000000000000018800982d8000000020010db800000000000000000000000102010200000000fe",
     NeighbourFrame::reply, "2001:db8::1", gateway_mac, false, false},
    // RFC 4861 §7.2.4: an answer to a unicast solicitation may leave the option out.
    {"AdvertisementWithoutTargetLinkLayerAddress",
     "0200000000010200000000fe86dd6000000000183aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288000e7de000000020010db8000000000000000000000001",
     NeighbourFrame::reply, "2001:db8::1", {}, true, true, false},
    {"AdvertisementWithOnlyASourceLinkLayerOption",
     "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288000a76e000000020010db800000000000000000000000101010200000000fe",
     NeighbourFrame::reply, "2001:db8::1", {}, true, true, false},
    {"AdvertisementHopLimit64",  // na_valid with hop limit 64 (not in the checksum)
     "0200000000010200000000fe86dd6000000000203a4020010db800000000000000000000000120010db80000"
     "0000000000000000000288000976e000000020010db800000000000000000000000102010200000000fe",
     NeighbourFrame::invalid},
    {"AdvertisementBadChecksum",  // na_valid with its checksum's last byte 0x6e -> 0x6f
     "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288000976f000000020010db800000000000000000000000102010200000000fe",
     NeighbourFrame::invalid},
    {"AdvertisementCode1",
     "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288010975e000000020010db800000000000000000000000102010200000000fe",
     NeighbourFrame::invalid},
    {"AdvertisementSolicitedToMulticast",
     "3333000000010200000000fe86dd6000000000203aff20010db8000000000000000000000001ff0200000000"
     "000000000000000000018800382de000000020010db800000000000000000000000102010200000000fe",
     NeighbourFrame::invalid},
    {"AdvertisementZeroLengthOption",
     "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288000977e000000020010db800000000000000000000000102000200000000fe",
     NeighbourFrame::invalid},
    {"AdvertisementMulticastTarget",
     "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
     "000000000000000000028800382ce0000000ff02000000000000000000000000000102010200000000fe",
     NeighbourFrame::invalid},
    {"AdvertisementTruncated",  // na_valid cut 8 bytes short of its payload length
     "0200000000010200000000fe86dd6000000000203aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288000976e000000020010db8000000000000000000000001",
     NeighbourFrame::truncated},
    {"AdvertisementShorterThan24Bytes",  // payload length 16: the first 16 bytes of an NA
     "0200000000010200000000fe86dd6000000000103aff20010db800000000000000000000000120010db80000"
     "0000000000000000000288000976e000000020010db800000000",
     NeighbourFrame::invalid},
    {"Ipv6UdpIsNotNeighbourDiscovery",
     "0200000000010200000000fe86dd6000000000081140" + std::string(64, '0') + "0001000200080000",
     NeighbourFrame::not_neighbour},
    {"Ipv4IsNotNeighbourDiscovery", "0200000000010200000000fe0800" + std::string(40, '0'),
     NeighbourFrame::not_neighbour},
    {"ShorterThanEthernet", "020000000001", NeighbourFrame::truncated},
};

class ParseNeighbourFrame : public testing::TestWithParam<ParseCase> {};

TEST_P(ParseNeighbourFrame, GivesTheExpectedOutcome) {
    const ParseCase& c = GetParam();
    const std::vector<std::byte> frame = hex(c.frame_hex);
    NeighbourReply out;
    out.ip = address("192.0.2.99");
    const NeighbourFrame result = parse_neighbour_frame(frame, out);
    ASSERT_EQ(static_cast<int>(result), static_cast<int>(c.expected));
    if (c.expected != NeighbourFrame::reply) {
        EXPECT_EQ(out.ip, address("192.0.2.99")) << "out is written only for a reply";
        return;
    }
    EXPECT_EQ(out.ip, address(c.ip));
    EXPECT_EQ(out.mac, c.mac);
    EXPECT_EQ(out.solicited, c.solicited);
    EXPECT_EQ(out.override_mac, c.override_mac);
    EXPECT_EQ(out.has_mac, c.has_mac);
}

INSTANTIATE_TEST_SUITE_P(Cases, ParseNeighbourFrame, testing::ValuesIn(parse_cases),
                         [](const testing::TestParamInfo<ParseCase>& info) {
                             return info.param.name;
                         });

// Every prefix of a valid advertisement is refused without a read past its end (run under the
// sanitizers in build-san).
TEST(ParseNeighbourFrameEdges, EveryTruncationOfAnAdvertisementIsRefused) {
    const std::vector<std::byte> frame = hex(na_valid);
    for (std::size_t n = 0; n < frame.size(); ++n) {
        const std::vector<std::byte> cut(frame.begin(), frame.begin() + n);
        NeighbourReply out;
        EXPECT_NE(parse_neighbour_frame(cut, out), NeighbourFrame::reply) << n << " bytes";
    }
}

// ---------------------------------------------------------------------------------------------
// The workers' lookup.

TEST(NeighbourSnapshot, NextHopIsTheGatewayOffLinkAndTheDestinationOnLink) {
    NeighbourTable table(settings(), port(true), port_mac, 0);
    ASSERT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    ASSERT_EQ(table.resolve(address("2001:db8::50"), 0), ResolveResult::added);
    // Nothing resolved yet: no MAC for anyone.
    NeighbourSnapshot snapshot = table.snapshot();
    EXPECT_EQ(snapshot.next_hop_mac(address("203.0.113.9")), nullptr);
    EXPECT_EQ(snapshot.next_hop_mac(address("198.18.0.50")), nullptr);

    table.on_reply(reply("198.18.0.1", gateway_mac), 0);
    table.on_reply(reply("198.18.0.50", other_mac), 0);
    table.on_reply(reply("2001:db8::1", gateway_mac), 0);
    snapshot = table.snapshot();
    auto mac_of = [&](std::string_view destination) -> std::optional<MacAddress> {
        const MacAddress* mac = snapshot.next_hop_mac(address(destination));
        return mac != nullptr ? std::optional<MacAddress>(*mac) : std::nullopt;
    };
    EXPECT_EQ(mac_of("203.0.113.9"), gateway_mac) << "off-link: the gateway";
    EXPECT_EQ(mac_of("198.19.0.50"), gateway_mac) << "outside the /24";
    EXPECT_EQ(mac_of("198.18.0.50"), other_mac) << "on-link: the destination itself";
    EXPECT_EQ(mac_of("198.18.0.51"), std::nullopt) << "on-link and not resolved";
    EXPECT_EQ(mac_of("2001:db8:1::9"), gateway_mac) << "off-link IPv6";
    EXPECT_EQ(mac_of("2001:db8::50"), std::nullopt) << "on-link IPv6, not resolved yet";
}

TEST(NeighbourSnapshot, NoGatewayMeansNoRouteOffLink) {
    NeighbourTable table(settings(), port(false), port_mac, 0);
    ASSERT_EQ(table.resolve(address("198.18.0.50"), 0), ResolveResult::added);
    table.on_reply(reply("198.18.0.50", other_mac), 0);
    const NeighbourSnapshot snapshot = table.snapshot();
    EXPECT_EQ(snapshot.next_hop_mac(address("203.0.113.9")), nullptr);
    ASSERT_NE(snapshot.next_hop_mac(address("198.18.0.50")), nullptr);
    EXPECT_EQ(NeighbourSnapshot{}.next_hop_mac(address("198.18.0.50")), nullptr)
        << "an empty snapshot resolves nothing";
}

TEST(NeighbourSnapshot, FindsEveryEntryOfBothFamiliesAndNothingElse) {
    NeighbourConfig config = settings();
    config.capacity = 64;
    NeighbourTable table(config, port(true), port_mac, 0);
    std::vector<stun::Address> added;
    for (int i = 60; i > 10; i -= 7) {
        added.push_back(address("198.18.0." + std::to_string(i)));
        added.push_back(address("2001:db8::" + std::to_string(i)));
    }
    for (const stun::Address& ip : added) ASSERT_EQ(table.resolve(ip, 0), ResolveResult::added);
    const NeighbourSnapshot snapshot = table.snapshot();
    for (const stun::Address& ip : added) EXPECT_TRUE(snapshot.watches(ip.ip_bytes()));
    EXPECT_TRUE(snapshot.watches(address("198.18.0.1").ip_bytes()));
    EXPECT_TRUE(snapshot.watches(address("2001:db8::1").ip_bytes()));
    EXPECT_FALSE(snapshot.watches(address("198.18.0.2").ip_bytes()));
    EXPECT_FALSE(snapshot.watches(address("2001:db8::2").ip_bytes()));
    // An IPv4 address's bytes at the front of an IPv6 one do not match it.
    EXPECT_FALSE(snapshot.watches(address("c612:1::").ip_bytes()));
    const std::array<std::byte, 5> odd{};
    EXPECT_FALSE(snapshot.watches(odd));
}

TEST(NeighbourState, PrintsAsIpNeighDoes) {
    EXPECT_EQ(to_string(NeighbourState::incomplete), "INCOMPLETE");
    EXPECT_EQ(to_string(NeighbourState::reachable), "REACHABLE");
    EXPECT_EQ(to_string(NeighbourState::stale), "STALE");
    EXPECT_EQ(to_string(NeighbourState::failed), "FAILED");
}

// The IPv4 next hop three ways: the snapshot's rule spelled out (shares_prefix(), find()),
// next_hop_mac_ipv4() on the snapshot as built, and on it prepared (prepare(): the rule as
// integers and the gateway's MAC). All three agree on random subnets, gateways and entries.
TEST(NeighbourSnapshotTest, PreparedIpv4NextHopAgreesWithTheRule) {
    std::mt19937 random(5);
    const auto v4 = [&random](std::uint32_t base, std::uint32_t spread) {
        return stun::Address::v4(base + static_cast<std::uint32_t>(random() % spread), 0);
    };
    std::size_t off_link = 0, resolved = 0;
    for (int round = 0; round < 2000; ++round) {
        NeighbourSnapshot snapshot;
        const auto prefix = static_cast<std::uint8_t>(random() % 33);
        std::optional<stun::Address> gateway;
        if (random() % 8 != 0) gateway = v4(0xC6120000, 256);
        snapshot.ipv4 = {v4(0xC6120000, 256), prefix, gateway};
        const int count = static_cast<int>(random() % 6);
        for (int i = 0; i < count; ++i) {
            MacAddress mac{};
            for (auto& b : mac) b = static_cast<std::byte>(random());
            const stun::Address ip = i == 0 && gateway ? *gateway : v4(0xC6120000, 256);
            snapshot.entries.push_back({ip, mac, random() % 4 != 0});
        }
        snapshot.entries.push_back({address("2001:db8::1"), {}, true});
        // As NeighbourTable::snapshot() sorts them: IPv4 first, then by address; one entry an
        // address.
        std::sort(snapshot.entries.begin(), snapshot.entries.end(),
                  [](const NeighbourSnapshot::Entry& a, const NeighbourSnapshot::Entry& b) {
                      if (a.ip.family != b.ip.family)
                          return a.ip.family == stun::AddressFamily::ipv4;
                      return a.ip.ip < b.ip.ip;
                  });
        snapshot.entries.erase(
            std::unique(snapshot.entries.begin(), snapshot.entries.end(),
                        [](const NeighbourSnapshot::Entry& a, const NeighbourSnapshot::Entry& b) {
                            return a.ip == b.ip;
                        }),
            snapshot.entries.end());
        NeighbourSnapshot prepared = snapshot;
        prepared.prepare();
        for (int d = 0; d < 20; ++d) {
            const stun::Address destination =
                random() % 2 == 0 ? v4(0xC6120000, 256) : v4(0xCB007100, 256);
            const bool on_link = shares_prefix(destination, *snapshot.ipv4.local, prefix);
            const stun::Address* hop = on_link ? &destination : gateway ? &*gateway : nullptr;
            const NeighbourSnapshot::Entry* entry =
                hop != nullptr ? snapshot.find(hop->ip_bytes()) : nullptr;
            const MacAddress* expected = entry != nullptr && entry->usable ? &entry->mac : nullptr;
            off_link += on_link ? 0 : 1;
            resolved += expected != nullptr ? 1 : 0;
            for (const NeighbourSnapshot* s : {&snapshot, &prepared}) {
                const MacAddress* mac = s->next_hop_mac_ipv4(destination.ip.data());
                ASSERT_EQ(mac == nullptr, expected == nullptr) << "round " << round;
                if (mac != nullptr) {
                    ASSERT_EQ(*mac, *expected) << "round " << round;
                }
                const MacAddress* general = s->next_hop_mac(destination);
                ASSERT_EQ(general == nullptr, expected == nullptr) << "round " << round;
            }
        }
    }
    EXPECT_GT(off_link, 5000u);
    EXPECT_GT(resolved, 5000u);
}

}  // namespace
}  // namespace engine
