// Tests for stun/demux.h (and the names in stun/demux.cc): RFC 7983 §7 as updated by
// RFC 9443 §3, for every first byte.
#include "stun/demux.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

namespace stun {
namespace {

// The RFC 9443 §3 table, written out independently of classify_first_byte().
PacketKind expected_kind(unsigned b) {
    if (b <= 3) return PacketKind::stun;
    if (b >= 16 && b <= 19) return PacketKind::zrtp;
    if (b >= 20 && b <= 63) return PacketKind::dtls;
    if (b >= 64 && b <= 79) return PacketKind::turn_channel;
    if (b >= 128 && b <= 191) return PacketKind::rtp_rtcp;
    return PacketKind::unknown;
}

TEST(Demux, EveryFirstByte) {
    for (unsigned b = 0; b < 256; ++b) {
        EXPECT_EQ(classify_first_byte(static_cast<std::uint8_t>(b)), expected_kind(b)) << b;
        const std::byte datagram[2] = {static_cast<std::byte>(b), std::byte{0}};
        EXPECT_EQ(classify(datagram), expected_kind(b)) << b;
    }
}

TEST(Demux, RangeBoundaries) {
    EXPECT_EQ(classify_first_byte(0), PacketKind::stun);
    EXPECT_EQ(classify_first_byte(3), PacketKind::stun);
    EXPECT_EQ(classify_first_byte(4), PacketKind::unknown);
    EXPECT_EQ(classify_first_byte(15), PacketKind::unknown);
    EXPECT_EQ(classify_first_byte(16), PacketKind::zrtp);
    EXPECT_EQ(classify_first_byte(19), PacketKind::zrtp);
    EXPECT_EQ(classify_first_byte(20), PacketKind::dtls);
    EXPECT_EQ(classify_first_byte(63), PacketKind::dtls);
    EXPECT_EQ(classify_first_byte(64), PacketKind::turn_channel);
    EXPECT_EQ(classify_first_byte(79), PacketKind::turn_channel);
    EXPECT_EQ(classify_first_byte(80), PacketKind::unknown);
    EXPECT_EQ(classify_first_byte(127), PacketKind::unknown);
    EXPECT_EQ(classify_first_byte(128), PacketKind::rtp_rtcp);
    EXPECT_EQ(classify_first_byte(191), PacketKind::rtp_rtcp);
    EXPECT_EQ(classify_first_byte(192), PacketKind::unknown);
    EXPECT_EQ(classify_first_byte(255), PacketKind::unknown);
}

TEST(Demux, EmptyDatagram) {
    EXPECT_EQ(classify({}), PacketKind::empty);
    static_assert(classify({}) == PacketKind::empty, "usable at compile time");
}

TEST(Demux, KindNamesAreDistinctAndNonEmpty) {
    std::set<std::string_view> names;
    for (auto k : {PacketKind::empty, PacketKind::stun, PacketKind::zrtp, PacketKind::dtls,
                   PacketKind::turn_channel, PacketKind::rtp_rtcp, PacketKind::unknown}) {
        EXPECT_FALSE(to_string(k).empty());
        names.insert(to_string(k));
    }
    EXPECT_EQ(names.size(), 7u);
}

}  // namespace
}  // namespace stun
