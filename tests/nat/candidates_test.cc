// order_candidates(): the peer's candidates in checking order (nat/include/punch/candidates.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "punch/candidates.h"

namespace {

using punch::CoordCandidate;
using punch::order_candidates;

stun::Address v4(const char* text, std::uint16_t port) {
    stun::Address a;
    EXPECT_TRUE(stun::Address::from_string(text, port, a)) << text;
    return a;
}

std::vector<std::string> texts(const std::vector<stun::Address>& list) {
    std::vector<std::string> out;
    for (const auto& a : list) {
        char buffer[48];
        out.emplace_back(buffer, a.format(buffer));
    }
    return out;
}

const stun::Address us = v4("198.18.1.10", 40000);

TEST(OrderCandidates, ReflexiveBeforeAHostOnAnotherLan) {
    // The usual call: the peer behind its NAT sends its LAN address, then its NAT's.
    const std::vector<CoordCandidate> peer{{"host", v4("198.18.2.10", 5000)},
                                           {"srflx", v4("198.51.100.12", 6000)}};
    EXPECT_EQ(texts(order_candidates(us, peer)),
              (std::vector<std::string>{"198.51.100.12:6000", "198.18.2.10:5000"}));
}

TEST(OrderCandidates, AHostOnOurSubnetFirst) {
    // Two hosts behind one NAT: the LAN path needs no NAT (and the NAT may not hairpin).
    const std::vector<CoordCandidate> peer{{"srflx", v4("198.51.100.11", 6000)},
                                           {"host", v4("198.18.1.11", 5000)}};
    EXPECT_EQ(texts(order_candidates(us, peer)),
              (std::vector<std::string>{"198.18.1.11:5000", "198.51.100.11:6000"}));
}

TEST(OrderCandidates, APeerWithoutNatHasOnlyItsHostAddress) {
    const std::vector<CoordCandidate> peer{{"host", v4("198.51.100.20", 5000)}};
    EXPECT_EQ(texts(order_candidates(us, peer)),
              (std::vector<std::string>{"198.51.100.20:5000"}));
}

TEST(OrderCandidates, RanksKeepTheCoordinatorsOrderWithin) {
    const std::vector<CoordCandidate> peer{
        {"host", v4("10.0.0.1", 1)},        {"srflx", v4("203.0.113.9", 2)},
        {"host", v4("198.18.1.20", 3)},     {"prflx", v4("203.0.113.10", 4)},
        {"host", v4("10.0.0.2", 5)},        {"host", v4("198.18.1.21", 6)}};
    EXPECT_EQ(texts(order_candidates(us, peer)),
              (std::vector<std::string>{"198.18.1.20:3", "198.18.1.21:6", "203.0.113.9:2",
                                        "203.0.113.10:4", "10.0.0.1:1", "10.0.0.2:5"}));
}

TEST(OrderCandidates, LeavesOutWhatALegCannotCheck) {
    stun::Address v6;
    ASSERT_TRUE(stun::Address::from_string("2001:db8::1", 5000, v6));
    const std::vector<CoordCandidate> peer{
        {"relay", v4("203.0.113.2", 50000)},  // the relay rung's
        {"host", v6},                          // another family than our socket's
        {"srflx", v4("198.51.100.12", 0)},     // no port
        {"srflx", v4("0.0.0.0", 6000)},        // unspecified
        {"srflx", v4("198.51.100.12", 6000)},
        {"srflx", v4("198.51.100.12", 6000)},  // a duplicate
        {"host", v4("198.51.100.12", 6000)},   // the same address under another type
        {"mdns", v4("198.51.100.13", 6000)}};  // a type this version does not know
    EXPECT_EQ(texts(order_candidates(us, peer)),
              (std::vector<std::string>{"198.51.100.12:6000"}));
    EXPECT_TRUE(order_candidates(us, {}).empty());
}

TEST(OrderCandidates, Ipv6SubnetIsTheSlash64) {
    stun::Address local, near, far;
    ASSERT_TRUE(stun::Address::from_string("2001:db8:0:1::10", 40000, local));
    ASSERT_TRUE(stun::Address::from_string("2001:db8:0:1::20", 5000, near));
    ASSERT_TRUE(stun::Address::from_string("2001:db8:0:2::20", 5000, far));
    const std::vector<CoordCandidate> peer{{"host", far}, {"host", near}};
    EXPECT_EQ(texts(order_candidates(local, peer)),
              (std::vector<std::string>{"[2001:db8:0:1::20]:5000", "[2001:db8:0:2::20]:5000"}));
}

}  // namespace
