// SFU node selection (nat/include/punch/sfu_select.h): the NAT filter on both legs, the preset
// rule's order (RTT, region, load, id), what is left out and why, and racing the first k.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "punch/nat_matrix.h"
#include "punch/sfu_select.h"

namespace {

using punch::NatType;
using punch::SfuClient;
using punch::SfuDrop;
using punch::SfuNode;
using punch::SfuSelectConfig;
using punch::SfuSelection;
using punch::select_sfu_nodes;

constexpr std::uint64_t now = 100'000;

SfuNode node(std::uint64_t id, NatType nat = NatType::none, std::string region = "eu-west",
             std::uint32_t load = 0, std::uint64_t last_heard_ms = now) {
    return SfuNode{id, "203.0.113." + std::to_string(id) + ":3479", nat, std::move(region), load,
                   last_heard_ms};
}

SfuClient client(NatType nat, std::string region = "eu-west") {
    return SfuClient{nat, std::move(region), {}};
}

std::vector<std::uint64_t> ids(const SfuSelection& s) {
    std::vector<std::uint64_t> out;
    for (const auto& c : s.candidates) out.push_back(c.id);
    return out;
}

std::vector<std::pair<std::uint64_t, std::string>> dropped(const SfuSelection& s) {
    std::vector<std::pair<std::uint64_t, std::string>> out;
    for (const auto& d : s.dropped) out.emplace_back(d.id, std::string(punch::to_string(d.reason)));
    return out;
}

using Drops = std::vector<std::pair<std::uint64_t, std::string>>;
using Ids = std::vector<std::uint64_t>;

// One node of each of the seven types, in nat_matrix_order, ids 1..7.
std::vector<SfuNode> one_of_each() {
    std::vector<SfuNode> nodes;
    std::uint64_t id = 1;
    for (const NatType t : punch::nat_matrix_order) nodes.push_back(node(id++, t));
    return nodes;
}

TEST(SfuSelect, SymmetricPairKeepsOnlyNodesThatTakeAnUnknownPort) {
    // The call the rung exists for: neither client can punch to the other. A node must accept
    // each symmetric client's unknown port: no NAT, full cone or address-restricted.
    const auto s = select_sfu_nodes(client(NatType::symmetric), client(NatType::symmetric),
                                    one_of_each(), now);
    EXPECT_EQ(ids(s), (Ids{1, 2, 3}));
    EXPECT_EQ(dropped(s), (Drops{{4, "nat_both"}, {5, "nat_both"}, {6, "nat_both"},
                                 {7, "nat_both"}}));
}

TEST(SfuSelect, SymmetricAndPortRestrictedPair) {
    // A port-restricted node punches with the port-restricted client, not the symmetric one.
    const auto s = select_sfu_nodes(client(NatType::symmetric), client(NatType::port_restricted),
                                    one_of_each(), now);
    EXPECT_EQ(ids(s), (Ids{1, 2, 3}));
    EXPECT_EQ(dropped(s), (Drops{{4, "nat_client_a"}, {5, "nat_both"}, {6, "nat_both"},
                                 {7, "nat_both"}}));
    const auto mirrored = select_sfu_nodes(client(NatType::port_restricted),
                                           client(NatType::symmetric), one_of_each(), now);
    EXPECT_EQ(dropped(mirrored), (Drops{{4, "nat_client_b"}, {5, "nat_both"}, {6, "nat_both"},
                                        {7, "nat_both"}}));
}

TEST(SfuSelect, ConeClientsTakeEveryNodeButTheBlockedOne) {
    const auto s = select_sfu_nodes(client(NatType::full_cone), client(NatType::none),
                                    one_of_each(), now);
    EXPECT_EQ(ids(s), (Ids{1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(dropped(s), (Drops{{7, "nat_both"}}));
}

// Over every pair of client types and every node type: kept exactly when the node punches with
// both, and otherwise dropped naming the leg (or legs) that cannot.
TEST(SfuSelect, KeptExactlyWhenBothLegsPunch) {
    for (const NatType a : punch::nat_matrix_order)
        for (const NatType b : punch::nat_matrix_order) {
            const auto s = select_sfu_nodes(client(a), client(b), one_of_each(), now);
            ASSERT_EQ(s.candidates.size() + s.dropped.size(), 7u);
            const Ids kept_ids = ids(s);
            const std::set<std::uint64_t> kept(kept_ids.begin(), kept_ids.end());
            for (const auto& n : one_of_each()) {
                const bool with_a = punch::can_punch(n.nat_type, a);
                const bool with_b = punch::can_punch(n.nat_type, b);
                EXPECT_EQ(kept.contains(n.id), with_a && with_b)
                    << punch::to_string(a) << "/" << punch::to_string(b) << " node "
                    << punch::to_string(n.nat_type);
            }
            for (const auto& d : s.dropped) {
                const NatType t = punch::nat_matrix_order[d.id - 1];
                const bool with_a = punch::can_punch(t, a);
                const bool with_b = punch::can_punch(t, b);
                const SfuDrop expected = !with_a && !with_b ? SfuDrop::nat_both
                                         : !with_a          ? SfuDrop::nat_client_a
                                                            : SfuDrop::nat_client_b;
                EXPECT_EQ(d.reason, expected) << "node " << punch::to_string(t);
            }
        }
}

TEST(SfuSelect, NoNodeServesBothGivesNothingToTry) {
    // The ladder goes to the relay.
    const std::vector<SfuNode> nodes = {node(1, NatType::symmetric),
                                        node(2, NatType::port_restricted)};
    const auto s = select_sfu_nodes(client(NatType::symmetric), client(NatType::symmetric), nodes,
                                    now);
    EXPECT_TRUE(s.candidates.empty());
    EXPECT_TRUE(s.attempts.empty());
    EXPECT_EQ(s.dropped.size(), 2u);
    const auto none = select_sfu_nodes(client(NatType::none), client(NatType::none), {}, now);
    EXPECT_TRUE(none.candidates.empty());
    EXPECT_TRUE(none.dropped.empty());
}

TEST(SfuSelect, MeasuredRttFirstBySum) {
    auto a = client(NatType::symmetric);
    auto b = client(NatType::symmetric);
    // Sums: node 1 30 ms, node 2 10 ms, node 3 20 ms. Node 4 is in both clients' region but
    // unmeasured; node 5 measured by one client only, which says nothing of the other leg.
    a.rtt_us = {{1, 10'000}, {2, 5'000}, {3, 15'000}, {5, 1'000}};
    b.rtt_us = {{1, 20'000}, {2, 5'000}, {3, 5'000}};
    const std::vector<SfuNode> nodes = {node(1), node(2), node(3), node(4), node(5, NatType::none,
                                                                             "us-east")};
    const auto s = select_sfu_nodes(a, b, nodes, now);
    EXPECT_EQ(ids(s), (Ids{2, 3, 1, 4, 5}));
    ASSERT_TRUE(s.candidates[0].rtt_us.has_value());
    EXPECT_EQ(*s.candidates[0].rtt_us, 10'000u);
    EXPECT_FALSE(s.candidates[3].rtt_us.has_value());
    EXPECT_FALSE(s.candidates[4].rtt_us.has_value());
}

TEST(SfuSelect, SumNotMaxOfTheTwoLegs) {
    // Max would rank node 1 (max 12) before node 2 (max 14); the media's round trip through the
    // node is the sum: 24 against 16.
    auto a = client(NatType::none);
    auto b = client(NatType::none);
    a.rtt_us = {{1, 12'000}, {2, 2'000}};
    b.rtt_us = {{1, 12'000}, {2, 14'000}};
    const auto s = select_sfu_nodes(a, b, std::vector<SfuNode>{node(1), node(2)}, now);
    EXPECT_EQ(ids(s), (Ids{2, 1}));
}

TEST(SfuSelect, UnmeasuredByRegionBothThenOneThenNone) {
    const auto a = client(NatType::symmetric, "eu-west");
    const auto b = client(NatType::symmetric, "us-east");
    const auto c = client(NatType::symmetric, "eu-west");
    const std::vector<SfuNode> nodes = {node(1, NatType::none, "ap-south"),
                                        node(2, NatType::none, "us-east"),
                                        node(3, NatType::none, "eu-west"),
                                        node(4, NatType::none, "")};
    // Clients in two regions: a node in either region beats one in neither.
    auto s = select_sfu_nodes(a, b, nodes, now);
    EXPECT_EQ(ids(s), (Ids{2, 3, 1, 4}));
    EXPECT_EQ(s.candidates[0].region_match, 1);
    // Both in eu-west: that node first, then the others, none matching: by id.
    s = select_sfu_nodes(a, c, nodes, now);
    EXPECT_EQ(ids(s), (Ids{3, 1, 2, 4}));
    EXPECT_EQ(s.candidates[0].region_match, 2);
    // An empty region matches nothing, not even clients without a region.
    s = select_sfu_nodes(client(NatType::none, ""), client(NatType::none, ""),
                         std::vector<SfuNode>{node(2, NatType::none, ""), node(1, NatType::none, "x")},
                         now);
    EXPECT_EQ(s.candidates[0].region_match, 0);
    EXPECT_EQ(ids(s), (Ids{1, 2}));
}

TEST(SfuSelect, RegionBeforeLoad) {
    const auto a = client(NatType::none, "eu-west");
    const auto b = client(NatType::none, "eu-west");
    const std::vector<SfuNode> nodes = {node(1, NatType::none, "us-east", 0),
                                        node(2, NatType::none, "eu-west", 900)};
    EXPECT_EQ(ids(select_sfu_nodes(a, b, nodes, now)), (Ids{2, 1}));
}

TEST(SfuSelect, LeastLoadedWhenEquallyNear) {
    const std::vector<SfuNode> nodes = {node(1, NatType::none, "eu-west", 500),
                                        node(2, NatType::full_cone, "eu-west", 100),
                                        node(3, NatType::none, "eu-west", 300)};
    auto s = select_sfu_nodes(client(NatType::none), client(NatType::none), nodes, now);
    EXPECT_EQ(ids(s), (Ids{2, 3, 1}));
    // Among measured nodes with equal sums too.
    auto a = client(NatType::none);
    auto b = client(NatType::none);
    a.rtt_us = {{1, 5'000}, {2, 5'000}, {3, 5'000}};
    b.rtt_us = a.rtt_us;
    s = select_sfu_nodes(a, b, nodes, now);
    EXPECT_EQ(ids(s), (Ids{2, 3, 1}));
}

TEST(SfuSelect, TiesBrokenByIdWhateverTheInputOrder) {
    const std::vector<SfuNode> nodes = {node(9), node(4), node(7), node(5)};
    const auto s = select_sfu_nodes(client(NatType::none), client(NatType::none), nodes, now);
    EXPECT_EQ(ids(s), (Ids{4, 5, 7, 9}));
}

TEST(SfuSelect, ExpiredNodesLeftOut) {
    SfuSelectConfig config;
    config.ttl_ms = 15'000;
    const std::vector<SfuNode> nodes = {
        node(1, NatType::none, "eu-west", 0, now - 15'001),  // silent for more than the ttl
        node(2, NatType::none, "eu-west", 0, now - 15'000),  // exactly the ttl: still listed
        node(3, NatType::none, "eu-west", 0, now + 5),       // heard after the caller read now
        node(4, NatType::symmetric, "eu-west", 2000, 0),     // expired is the first reason
    };
    const auto s = select_sfu_nodes(client(NatType::symmetric), client(NatType::none), nodes, now,
                                    config);
    EXPECT_EQ(ids(s), (Ids{2, 3}));
    EXPECT_EQ(dropped(s), (Drops{{1, "expired"}, {4, "expired"}}));
}

TEST(SfuSelect, FullNodesLeftOut) {
    const std::vector<SfuNode> nodes = {node(1, NatType::none, "eu-west", 1000),
                                        node(2, NatType::none, "eu-west", 999),
                                        node(3, NatType::none, "eu-west", 800),
                                        node(4, NatType::symmetric, "eu-west", 5000)};
    auto s = select_sfu_nodes(client(NatType::symmetric), client(NatType::none), nodes, now);
    EXPECT_EQ(ids(s), (Ids{3, 2}));
    EXPECT_EQ(dropped(s), (Drops{{1, "full"}, {4, "full"}}));
    SfuSelectConfig config;
    config.full_load = 800;
    s = select_sfu_nodes(client(NatType::symmetric), client(NatType::none), nodes, now, config);
    EXPECT_TRUE(s.candidates.empty());
    EXPECT_EQ(dropped(s), (Drops{{1, "full"}, {2, "full"}, {3, "full"}, {4, "full"}}));
}

TEST(SfuSelect, RaceTheFirstKThenOneByOne) {
    const std::vector<SfuNode> nodes = {node(1), node(2), node(3), node(4), node(5)};
    const auto a = client(NatType::none);
    SfuSelectConfig config;
    EXPECT_EQ(select_sfu_nodes(a, a, nodes, now, config).attempts,
              (std::vector<Ids>{{1}, {2}, {3}, {4}, {5}}));
    config.race = 3;
    EXPECT_EQ(select_sfu_nodes(a, a, nodes, now, config).attempts,
              (std::vector<Ids>{{1, 2, 3}, {4}, {5}}));
    config.race = 10;
    EXPECT_EQ(select_sfu_nodes(a, a, nodes, now, config).attempts,
              (std::vector<Ids>{{1, 2, 3, 4, 5}}));
    // The group follows the order, not the input.
    auto far = client(NatType::none);
    far.rtt_us = {{5, 1}, {4, 2}};
    config.race = 2;
    EXPECT_EQ(select_sfu_nodes(far, far, nodes, now, config).attempts,
              (std::vector<Ids>{{5, 4}, {1}, {2}, {3}}));
}

TEST(SfuSelect, CandidatesCarryTheNodesAddressAndFigures) {
    const auto s = select_sfu_nodes(client(NatType::none), client(NatType::none),
                                    std::vector<SfuNode>{node(12, NatType::full_cone, "eu-west", 42)},
                                    now);
    ASSERT_EQ(s.candidates.size(), 1u);
    EXPECT_EQ(s.candidates[0].address, "203.0.113.12:3479");
    EXPECT_EQ(s.candidates[0].nat_type, NatType::full_cone);
    EXPECT_EQ(s.candidates[0].load, 42u);
    EXPECT_EQ(s.candidates[0].region_match, 2);
}

// Rooms of more than two: every member's leg goes to the node, so it must punch with each.
TEST(SfuSelect, RoomKeepsOnlyNodesThatPunchWithEveryMember) {
    // A and B are cones (every node but the blocked one would do); C is symmetric, which the
    // port-restricted, symmetric and unknown nodes cannot take.
    const std::vector<SfuClient> room = {client(NatType::full_cone), client(NatType::none),
                                         client(NatType::symmetric)};
    const auto s = select_sfu_nodes(room, one_of_each(), now);
    EXPECT_EQ(ids(s), (Ids{1, 2, 3}));
    EXPECT_EQ(dropped(s), (Drops{{4, "nat_member"}, {5, "nat_member"}, {6, "nat_member"},
                                 {7, "nat_both"}}));
    // The first two clients' reasons come first: A and B are checked before later members.
    const std::vector<SfuClient> later_cone = {client(NatType::symmetric),
                                               client(NatType::port_restricted),
                                               client(NatType::none)};
    EXPECT_EQ(dropped(select_sfu_nodes(later_cone, one_of_each(), now)),
              (Drops{{4, "nat_client_a"}, {5, "nat_both"}, {6, "nat_both"}, {7, "nat_both"}}));
}

TEST(SfuSelect, TwoClientsInASpanAreThePair) {
    // Over every pair: the room form with two members gives exactly the pair's selection.
    for (const NatType a : punch::nat_matrix_order)
        for (const NatType b : punch::nat_matrix_order) {
            auto x = client(a, "eu-west");
            auto y = client(b, "us-east");
            x.rtt_us = {{2, 7'000}, {3, 1'000}};
            y.rtt_us = {{2, 1'000}, {3, 9'000}};
            const auto pair = select_sfu_nodes(x, y, one_of_each(), now);
            const auto room = select_sfu_nodes(std::vector<SfuClient>{x, y}, one_of_each(), now);
            EXPECT_EQ(ids(room), ids(pair));
            EXPECT_EQ(dropped(room), dropped(pair));
            EXPECT_EQ(room.attempts, pair.attempts);
        }
}

TEST(SfuSelect, RoomRttIsMeasuredByEveryMemberAndSummed) {
    auto a = client(NatType::none);
    auto b = client(NatType::none);
    auto c = client(NatType::none);
    // Node 1: 3 + 3 + 3 = 9 ms; node 2: 1 + 1 + 10 = 12 ms; node 3 measured by two of three:
    // unmeasured, after both.
    a.rtt_us = {{1, 3'000}, {2, 1'000}, {3, 100}};
    b.rtt_us = {{1, 3'000}, {2, 1'000}, {3, 100}};
    c.rtt_us = {{1, 3'000}, {2, 10'000}};
    const auto s = select_sfu_nodes(std::vector<SfuClient>{a, b, c},
                                    std::vector<SfuNode>{node(1), node(2), node(3)}, now);
    EXPECT_EQ(ids(s), (Ids{1, 2, 3}));
    EXPECT_EQ(*s.candidates[0].rtt_us, 9'000u);
    EXPECT_FALSE(s.candidates[2].rtt_us.has_value());
}

TEST(SfuSelect, RoomRegionCountsEveryMember) {
    const std::vector<SfuClient> room = {client(NatType::none, "eu-west"),
                                         client(NatType::none, "us-east"),
                                         client(NatType::none, "us-east")};
    // Node 1 shares its region with one member, node 2 with two: node 2 first despite its load.
    const auto s = select_sfu_nodes(
        room, std::vector<SfuNode>{node(1, NatType::none, "eu-west", 0),
                                   node(2, NatType::none, "us-east", 500)},
        now);
    EXPECT_EQ(ids(s), (Ids{2, 1}));
    EXPECT_EQ(s.candidates[0].region_match, 2);
}

TEST(SfuSelect, RoomOfFewerThanTwoIsRefused) {
    const std::vector<SfuClient> alone = {client(NatType::none)};
    try {
        (void)select_sfu_nodes(alone, one_of_each(), now);
        FAIL() << "one client accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("two or more"), std::string::npos) << e.what();
    }
}

TEST(SfuSelect, BadConfigNamesTheField) {
    const auto a = client(NatType::none);
    SfuSelectConfig config;
    config.race = 0;
    try {
        (void)select_sfu_nodes(a, a, {}, now, config);
        FAIL() << "race 0 accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("race"), std::string::npos) << e.what();
    }
    config = {};
    config.full_load = 0;
    try {
        (void)select_sfu_nodes(a, a, {}, now, config);
        FAIL() << "full_load 0 accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("full_load"), std::string::npos) << e.what();
    }
}

TEST(SfuSelect, DropReasonTable) {
    std::set<std::string_view> names;
    for (const auto& r : punch::sfu_drop_reasons) {
        EXPECT_FALSE(r.help.empty()) << r.name;
        EXPECT_TRUE(names.insert(r.name).second) << r.name;
    }
    EXPECT_EQ(punch::to_string(SfuDrop::nat_client_b), "nat_client_b");
    EXPECT_EQ(names.size(), punch::sfu_drop_count);
}

}  // namespace
