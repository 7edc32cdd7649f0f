// Internet checksums (RFC 1071) and their incremental update (RFC 1624), against the RFCs'
// own examples and against values scapy computes. The scapy packets were produced with
// (Debian python3-scapy 2.5):
//
//   /usr/bin/python3 -c "
//   from scapy.all import *
//   p = (IP(src='198.18.0.100', dst='198.18.0.2', id=0x5a17, ttl=57)
//        / UDP(sport=40000, dport=3478) / Raw(b'punchline checksum'))
//   print(bytes(p).hex(), hex(IP(bytes(p)).chksum), hex(IP(bytes(p))[UDP].chksum))
//   q = (IPv6(src='2001:db8::100', dst='2001:db8::2', hlim=57)
//        / UDP(sport=40000, dport=3478) / Raw(b'odd'))
//   print(bytes(q).hex(), hex(IPv6(bytes(q))[UDP].chksum))
//   e = (IPv6(src='2001:db8::2', dst='2001:db8::100')
//        / ICMPv6EchoRequest(id=0x1234, seq=1, data=b'abc'))
//   print(bytes(e).hex(), hex(IPv6(bytes(e))[ICMPv6EchoRequest].cksum))"
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "engine/checksum.h"
#include "stun/bytes.h"

namespace engine {
namespace {

std::vector<std::byte> from_hex(std::string_view hex) {
    std::vector<std::byte> out;
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<std::byte>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    return out;
}

std::uint16_t full_checksum(std::span<const std::byte> bytes) {
    return checksum_finish(checksum_add(0, bytes));
}

// scapy: IPv4/UDP, 18 bytes of payload; IP checksum 0x9b1d, UDP checksum 0x09d8.
constexpr std::string_view scapy_udp4 =
    "4500002e5a17000039119b1dc6120064c61200029c400d96001a09d8"
    "70756e63686c696e6520636865636b73756d";
// scapy: IPv6/UDP with 3 bytes of payload (an odd-length segment); UDP checksum 0x2629.
constexpr std::string_view scapy_udp6 =
    "60000000000b113920010db800000000000000000000010020010db8000000000000000000000002"
    "9c400d96000b26296f6464";
// scapy: IPv6/ICMPv6 echo request with 3 bytes of data; ICMPv6 checksum 0x4cae.
constexpr std::string_view scapy_icmp6 =
    "60000000000b3a4020010db800000000000000000000000220010db8000000000000000000000100"
    "80004cae12340001616263";

// RFC 1071 §3, numerical example: the words 0001 f203 f4f5 f6f7 sum to ddf2 (after the
// end-around carry), whose complement 220d is the checksum.
TEST(ChecksumTest, Rfc1071Example) {
    const auto bytes = from_hex("0001f203f4f5f6f7");
    const std::uint32_t sum = checksum_add(0, bytes);
    EXPECT_EQ((sum & 0xFFFF) + (sum >> 16), 0xDDF2u);
    EXPECT_EQ(checksum_finish(sum), 0x220D);
}

// RFC 1071 §2 (B): the sum is associative, so it can be computed in (even-length) pieces and
// added, as transport_checksum() does with the pseudo-header.
TEST(ChecksumTest, SumsInEvenPiecesAddUp) {
    const auto bytes = from_hex(scapy_udp4);
    for (std::size_t split = 0; split <= bytes.size(); split += 2) {
        const std::span<const std::byte> all(bytes);
        const std::uint32_t pieces = checksum_add(checksum_add(0, all.first(split)),
                                                  all.subspan(split));
        EXPECT_EQ(checksum_finish(pieces), full_checksum(all)) << "split at " << split;
    }
}

// RFC 1071 §4.1: an odd byte count is summed as if followed by a zero byte.
TEST(ChecksumTest, OddLengthIsPaddedWithZero) {
    const auto odd = from_hex("0102030405");
    const auto padded = from_hex("010203040500");
    EXPECT_EQ(checksum_add(0, odd), checksum_add(0, padded));
    EXPECT_EQ(checksum_add(0, odd), 0x0102u + 0x0304u + 0x0500u);
    const auto one = from_hex("ab");
    EXPECT_EQ(checksum_add(0, one), 0xAB00u);
    EXPECT_EQ(checksum_finish(checksum_add(0, one)), 0x54FF);
}

TEST(ChecksumTest, EmptyInputSumsToZero) {
    EXPECT_EQ(checksum_add(0, {}), 0u);
    EXPECT_EQ(checksum_add(0x1234, {}), 0x1234u);
    EXPECT_EQ(checksum_finish(0), 0xFFFF);
}

// Carries out of 32 bits must not be lost: 128 KiB of 0xFF sums to a multiple of 0xFFFF.
TEST(ChecksumTest, LongInputKeepsEveryCarry) {
    const std::vector<std::byte> ones(128 * 1024, std::byte{0xFF});
    EXPECT_EQ(checksum_finish(checksum_add(0, ones)), 0x0000);
    std::vector<std::byte> almost = ones;
    almost.back() = std::byte{0xFE};  // one less than a multiple of 0xFFFF
    EXPECT_EQ(checksum_finish(checksum_add(0, almost)), 0x0001);
}

// checksum_native_sum folds to the byte-swapped big-endian sum, for data of every kind
// (all ones, so that the carries out of 64 bits are at their most; random).
template <std::size_t N>
void expect_native_sum_matches(std::mt19937& random) {
    for (int round = 0; round < 2000; ++round) {
        std::vector<std::byte> data(N, std::byte{0xFF});
        if (round > 0)
            for (auto& b : data) b = static_cast<std::byte>(random());
        const std::uint32_t folded = checksum_fold(checksum_native_sum<N>(data.data()));
        const auto swapped = static_cast<std::uint32_t>(((folded & 0xFF) << 8) | (folded >> 8));
        const std::uint32_t expected = checksum_add(0, data);
        // Zero and 0xFFFF are the same sum in ones' complement; either fold may give either.
        EXPECT_EQ(swapped % 0xFFFF, expected % 0xFFFF) << "N " << N << ", round " << round;
    }
}

TEST(ChecksumTest, NativeSumFoldsToTheSwappedSum) {
    std::mt19937 random(11);
    expect_native_sum_matches<4>(random);
    expect_native_sum_matches<8>(random);
    expect_native_sum_matches<12>(random);
    expect_native_sum_matches<28>(random);
    expect_native_sum_matches<36>(random);
    expect_native_sum_matches<64>(random);
}

TEST(Ipv4HeaderChecksumTest, MatchesScapy) {
    auto header = from_hex(scapy_udp4.substr(0, 40));
    EXPECT_EQ(ipv4_header_checksum(header), 0) << "a correct header verifies to 0";
    EXPECT_EQ(stun::load_be16(header.data() + 10), 0x9B1D);
    stun::store_be16(header.data() + 10, 0);
    EXPECT_EQ(ipv4_header_checksum(header), 0x9B1D);
}

// The header used as the example in many textbooks (192.168.0.1 -> 192.168.0.199).
TEST(Ipv4HeaderChecksumTest, TextbookExample) {
    auto header = from_hex("450000730000400040110000c0a80001c0a800c7");
    EXPECT_EQ(ipv4_header_checksum(header), 0xB861);
    stun::store_be16(header.data() + 10, 0xB861);
    EXPECT_EQ(ipv4_header_checksum(header), 0);
}

TEST(Ipv4HeaderChecksumTest, DetectsAFlippedBit) {
    auto header = from_hex(scapy_udp4.substr(0, 40));
    for (std::size_t bit = 0; bit < header.size() * 8; ++bit) {
        header[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
        EXPECT_NE(ipv4_header_checksum(header), 0) << "bit " << bit;
        header[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    }
}

TEST(TransportChecksumTest, UdpOverIpv4MatchesScapy) {
    auto packet = from_hex(scapy_udp4);
    const std::span<const std::byte> addresses(packet.data() + 12, 8);
    const std::span<std::byte> udp(packet.data() + 20, packet.size() - 20);
    EXPECT_EQ(transport_checksum(addresses, 17, udp), 0) << "a correct datagram verifies to 0";
    stun::store_be16(udp.data() + 6, 0);
    EXPECT_EQ(transport_checksum(addresses, 17, udp), 0x09D8);
}

TEST(TransportChecksumTest, UdpOverIpv6OddLengthMatchesScapy) {
    auto packet = from_hex(scapy_udp6);
    const std::span<const std::byte> addresses(packet.data() + 8, 32);
    const std::span<std::byte> udp(packet.data() + 40, packet.size() - 40);
    ASSERT_EQ(udp.size() % 2, 1u);
    EXPECT_EQ(transport_checksum(addresses, 17, udp), 0);
    stun::store_be16(udp.data() + 6, 0);
    EXPECT_EQ(transport_checksum(addresses, 17, udp), 0x2629);
}

TEST(TransportChecksumTest, Icmpv6MatchesScapy) {
    auto packet = from_hex(scapy_icmp6);
    const std::span<const std::byte> addresses(packet.data() + 8, 32);
    const std::span<std::byte> icmp(packet.data() + 40, packet.size() - 40);
    EXPECT_EQ(transport_checksum(addresses, 58, icmp), 0);
    stun::store_be16(icmp.data() + 2, 0);
    EXPECT_EQ(transport_checksum(addresses, 58, icmp), 0x4CAE);
}

// The pseudo-header is symmetric in source and destination: swapping them (as a reply does)
// leaves the checksum valid.
TEST(TransportChecksumTest, SwappingAddressesKeepsTheChecksum) {
    auto packet = from_hex(scapy_udp6);
    std::vector<std::byte> swapped(packet.begin() + 24, packet.begin() + 40);
    swapped.insert(swapped.end(), packet.begin() + 8, packet.begin() + 24);
    const std::span<const std::byte> udp(packet.data() + 40, packet.size() - 40);
    EXPECT_EQ(transport_checksum(swapped, 17, udp), 0);
}

// RFC 1624 §4: HC = 0xdd2f, m = 0x5555, m' = 0x3285. Eqn. 3 gives 0x0000 (RFC 1141's eqn. 2
// would give the wrong 0xffff).
TEST(ChecksumUpdateTest, Rfc1624Example) {
    EXPECT_EQ(checksum_update16(0xDD2F, 0x5555, 0x3285), 0x0000);
}

// What the ICMP echo handler does: type 8 -> 0 in the first word.
TEST(ChecksumUpdateTest, EchoRequestToReply) {
    auto icmp = from_hex("0800e5ca12340001");  // type 8, code 0, id 0x1234, seq 1
    ASSERT_EQ(full_checksum(icmp), 0);
    const std::uint16_t updated = checksum_update16(0xE5CA, 0x0800, 0x0000);
    stun::store_be16(icmp.data(), 0x0000);
    stun::store_be16(icmp.data() + 2, 0);
    EXPECT_EQ(updated, full_checksum(icmp));
}

// For any buffer that is not all zeros, changing one 16-bit field and updating the checksum
// by RFC 1624 eqn. 3 gives exactly what a full recompute gives. (Data that becomes all zeros
// is the one exception: eqn. 3 then yields +0, 0x0000, where a full recompute yields -0,
// 0xffff, and only the latter verifies; see the golden case icmp_echo_all_zero_reply.)
TEST(ChecksumUpdateTest, MatchesFullRecompute) {
    std::mt19937 random(1624);  // fixed seed: reproducible
    std::uniform_int_distribution<unsigned> word(0, 0xFFFF);
    for (int round = 0; round < 20000; ++round) {
        // A header-like buffer: checksum field at offset 10, a non-zero word at offset 0.
        std::vector<std::byte> bytes(20 + 2 * (round % 16));
        for (std::size_t i = 0; i < bytes.size(); i += 2)
            stun::store_be16(bytes.data() + i, static_cast<std::uint16_t>(word(random)));
        stun::store_be16(bytes.data(), static_cast<std::uint16_t>(word(random) | 1));
        stun::store_be16(bytes.data() + 10, 0);
        const std::uint16_t before = full_checksum(bytes);
        stun::store_be16(bytes.data() + 10, before);

        std::size_t field = 2 * (1 + random() % (bytes.size() / 2 - 1));
        if (field == 10) field = 12;
        const std::uint16_t old_value = stun::load_be16(bytes.data() + field);
        // Now and then the edge values, which is where eqn. 2 went wrong.
        auto new_value = static_cast<std::uint16_t>(word(random));
        if (round % 7 == 0) new_value = 0x0000;
        if (round % 11 == 0) new_value = 0xFFFF;
        stun::store_be16(bytes.data() + field, new_value);
        const std::uint16_t updated = checksum_update16(before, old_value, new_value);

        stun::store_be16(bytes.data() + 10, 0);
        ASSERT_EQ(updated, full_checksum(bytes))
            << "round " << round << ", field " << field << ": " << old_value << " -> "
            << new_value;
        stun::store_be16(bytes.data() + 10, updated);
        ASSERT_EQ(full_checksum(bytes), 0);
    }
}

}  // namespace
}  // namespace engine
