// Tests for engine/sfu_table.h: the leg table (look-ups, the sessions' local lists, capacity,
// sweeping, the listing) and the membership builder (joins, the replay race, full sessions,
// leaves, selection).
#include "engine/sfu_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "allocation_count.h"
#include "test_support.h"

namespace engine {
namespace {

stun::Address at(std::string_view ip, std::uint16_t port) {
    stun::Address a = test::address(ip);
    a.port = port;
    return a;
}

const stun::Address sfu_address = at("192.0.2.1", 3480);

FiveTuple key_of(std::uint16_t client_port, std::string_view client_ip = "198.51.100.9") {
    return *FiveTuple::make(at(client_ip, client_port), sfu_address);
}

const MacAddress mac = {std::byte{2}, std::byte{0}, std::byte{0},
                        std::byte{0}, std::byte{0}, std::byte{9}};

// "p1", "x7": a participant name (GCC 12 warns falsely of "p" + std::to_string()).
std::string name(char first, unsigned n) {
    std::string out(1, first);
    out += std::to_string(n);
    return out;
}

TEST(SfuTable, InsertFindAndErase) {
    SfuTable table(4, 1);
    EXPECT_EQ(table.find(key_of(6000)), SfuTable::no_slot);
    const std::uint32_t a = table.insert(key_of(6000), 7, SfuParticipant::from("alice"), mac, 100);
    ASSERT_NE(a, SfuTable::no_slot);
    EXPECT_EQ(table.find(key_of(6000)), a);
    EXPECT_EQ(table.find(key_of(6001)), SfuTable::no_slot);
    const SfuLeg& leg = table.at(a);
    EXPECT_TRUE(leg.live());
    EXPECT_EQ(leg.key(), key_of(6000));
    EXPECT_EQ(leg.session(), 7u);
    EXPECT_EQ(leg.participant().view(), "alice");
    EXPECT_EQ(leg.client_mac(), mac);
    EXPECT_EQ(leg.last_heard(), 100u);
    EXPECT_EQ(table.size(), 1u);
    table.erase(a);
    EXPECT_EQ(table.find(key_of(6000)), SfuTable::no_slot);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.session_legs(7), 0u);
}

TEST(SfuTable, SessionListsFindParticipantsAndCountLegs) {
    SfuTable table(8, 2);
    const std::uint32_t a = table.insert(key_of(6000), 7, SfuParticipant::from("alice"), mac, 0);
    const std::uint32_t b = table.insert(key_of(6001), 7, SfuParticipant::from("bob"), mac, 0);
    const std::uint32_t c = table.insert(key_of(6002), 9, SfuParticipant::from("alice"), mac, 0);
    EXPECT_EQ(table.session_legs(7), 2u);
    EXPECT_EQ(table.session_legs(9), 1u);
    EXPECT_EQ(table.session_legs(8), 0u);
    EXPECT_EQ(table.find_participant(7, "alice"), a);
    EXPECT_EQ(table.find_participant(7, "bob"), b);
    EXPECT_EQ(table.find_participant(9, "alice"), c);
    EXPECT_EQ(table.find_participant(9, "bob"), SfuTable::no_slot);
    // Unlinking from the middle, the head and the tail keeps the others findable.
    table.erase(b);
    EXPECT_EQ(table.session_legs(7), 1u);
    EXPECT_EQ(table.find_participant(7, "alice"), a);
    EXPECT_EQ(table.find_participant(7, "bob"), SfuTable::no_slot);
    table.erase(a);
    EXPECT_EQ(table.session_legs(7), 0u);
    EXPECT_EQ(table.find_participant(9, "alice"), c);
}

TEST(SfuTable, FullTableRefusesThenTakesAFreedSlot) {
    SfuTable table(2, 3);
    ASSERT_NE(table.insert(key_of(1), 1, SfuParticipant::from("a"), mac, 0), SfuTable::no_slot);
    const std::uint32_t b = table.insert(key_of(2), 1, SfuParticipant::from("b"), mac, 0);
    ASSERT_NE(b, SfuTable::no_slot);
    EXPECT_EQ(table.insert(key_of(3), 1, SfuParticipant::from("c"), mac, 0), SfuTable::no_slot);
    table.erase(b);
    EXPECT_EQ(table.insert(key_of(3), 1, SfuParticipant::from("c"), mac, 0), b);
    EXPECT_EQ(table.find(key_of(2)), SfuTable::no_slot);
    EXPECT_EQ(table.find(key_of(3)), b);
}

TEST(SfuTable, CapacityOutOfRangeThrows) {
    EXPECT_THROW(SfuTable(0, 0), std::invalid_argument);
    EXPECT_THROW(SfuTable((1u << 20) + 1, 0), std::invalid_argument);
}

// Many inserts and erases in a mixed order: the index's backward shift keeps every live key
// findable and no erased key findable.
TEST(SfuTable, IndexSurvivesChurn) {
    SfuTable table(256, 4);
    std::set<std::uint16_t> live;
    for (std::uint16_t round = 0; round < 2000; ++round) {
        const std::uint16_t port = static_cast<std::uint16_t>(1 + (round * 7919) % 400);
        const std::uint32_t slot = table.find(key_of(port));
        if (slot == SfuTable::no_slot) {
            if (table.insert(key_of(port), port % 5, SfuParticipant::from(std::to_string(port)),
                             mac, round) != SfuTable::no_slot)
                live.insert(port);
        } else {
            table.erase(slot);
            live.erase(port);
        }
    }
    for (std::uint16_t port = 1; port <= 400; ++port) {
        const std::uint32_t slot = table.find(key_of(port));
        EXPECT_EQ(slot != SfuTable::no_slot, live.count(port) == 1) << port;
        if (slot != SfuTable::no_slot) {
            EXPECT_EQ(table.find_participant(port % 5, std::to_string(port)), slot);
        }
    }
    EXPECT_EQ(table.size(), live.size());
}

TEST(SfuTable, SweepFindsLegsSilentForTheTimeout) {
    SfuTable table(4, 5);
    const std::uint32_t a = table.insert(key_of(1), 1, SfuParticipant::from("a"), mac, 100);
    const std::uint32_t b = table.insert(key_of(2), 1, SfuParticipant::from("b"), mac, 100);
    table.at(b).heard(150, 10);
    std::vector<std::uint32_t> expired;
    auto collect = [&](std::uint32_t slot) { expired.push_back(slot); };
    table.sweep(199, 100, 8, collect);
    EXPECT_TRUE(expired.empty()) << "99 ticks of silence is not 100";
    table.sweep(200, 100, 8, collect);
    EXPECT_EQ(expired, std::vector<std::uint32_t>{a});
    EXPECT_EQ(table.at(b).counters().rx_packets, 1u);
    EXPECT_EQ(table.at(b).counters().rx_bytes, 10u);
}

TEST(SfuTable, SweepVisitsAtMostMaxSlotsRoundRobin) {
    SfuTable table(4, 6);
    for (std::uint16_t p = 1; p <= 4; ++p)
        table.insert(key_of(p), 1, SfuParticipant::from(name('p', p)), mac, 0);
    std::vector<std::uint32_t> seen;
    auto collect = [&](std::uint32_t slot) { seen.push_back(slot); };
    EXPECT_EQ(table.sweep(1000, 10, 3, collect), 3u);
    EXPECT_EQ(seen.size(), 3u);
    table.sweep(1000, 10, 1, collect);
    EXPECT_EQ(std::set<std::uint32_t>(seen.begin(), seen.end()).size(), 4u);
}

TEST(SfuTable, ListingShowsEveryLiveLeg) {
    SfuTable table(4, 7);
    table.insert(key_of(1), 1, SfuParticipant::from("a"), mac, 5);
    const std::uint32_t b = table.insert(key_of(2), 2, SfuParticipant::from("b"), mac, 6);
    table.at(b).count_forwarded(3, 100);
    table.at(b).count_filtered(2);
    table.at(b).heard(9, 10);  // heard later: admitted stays
    std::vector<SfuLegSnapshot> seen;
    const auto summary = table.list([&](const SfuLegSnapshot& s) { seen.push_back(s); });
    EXPECT_EQ(summary.listed, 2u);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1].participant.view(), "b");
    EXPECT_EQ(seen[1].session, 2u);
    EXPECT_EQ(seen[1].key, key_of(2));
    EXPECT_EQ(seen[1].last_heard, 9u);
    EXPECT_EQ(seen[1].admitted, 6u);
    EXPECT_EQ(seen[0].admitted, 5u);
    EXPECT_EQ(seen[1].counters.forwarded_packets, 3u);
    EXPECT_EQ(seen[1].counters.forwarded_bytes, 300u);
    EXPECT_EQ(seen[1].counters.filtered, 2u);
}

TEST(SfuTable, OwnerOperationsDoNotAllocate) {
    SfuTable table(64, 8);
    const std::size_t before = test::allocations();
    for (std::uint16_t p = 1; p <= 32; ++p) {
        const std::uint32_t slot =
            table.insert(key_of(p), p % 3, SfuParticipant::from(name('x', p % 10)),
                         mac, p);
        table.at(slot).heard(p, 100);
        (void)table.find_participant(p % 3, "x1");
    }
    table.sweep(1000, 1, 64, [&](std::uint32_t slot) { table.erase(slot); });
    EXPECT_EQ(test::allocations(), before);
    EXPECT_EQ(table.size(), 0u);
}

SfuMessage join_of(std::uint64_t session, std::string_view participant, std::uint16_t port,
                   std::uint16_t worker = 0) {
    SfuMessage m;
    m.kind = SfuMessage::Kind::join;
    m.key = key_of(port);
    m.session = session;
    m.participant = SfuParticipant::from(participant);
    m.worker = worker;
    return m;
}

TEST(SfuMembershipBuilder, JoinsRepeatsReplaysAndFullSessions) {
    SfuMembershipBuilder builder(2);
    using R = SfuMembershipBuilder::JoinResult;
    EXPECT_EQ(builder.join(join_of(5, "alice", 6000)), R::joined);
    EXPECT_EQ(builder.join(join_of(5, "alice", 6000)), R::repeated);
    // The same participant from another 5-tuple, or the same 5-tuple on another worker: the
    // first join wins.
    EXPECT_EQ(builder.join(join_of(5, "alice", 6001)), R::replayed);
    EXPECT_EQ(builder.join(join_of(5, "alice", 6000, 1)), R::replayed);
    EXPECT_EQ(builder.join(join_of(5, "bob", 6002, 1)), R::joined);
    EXPECT_EQ(builder.join(join_of(5, "carol", 6003)), R::full);
    EXPECT_EQ(builder.join(join_of(6, "carol", 6003)), R::joined);

    const auto membership = builder.build();
    ASSERT_EQ(membership->sessions().size(), 2u);
    const SfuSession* five = membership->find(5);
    ASSERT_NE(five, nullptr);
    ASSERT_EQ(five->members.size(), 2u);
    EXPECT_EQ(five->members[0].participant.view(), "alice");
    EXPECT_EQ(five->members[1].participant.view(), "bob");
    EXPECT_EQ(five->members[1].worker, 1);
    EXPECT_EQ(membership->find(7), nullptr);
    EXPECT_EQ(membership->find(4), nullptr);
}

TEST(SfuMembershipBuilder, LeaveRemovesTheMemberAndTheLastEndsTheSession) {
    SfuMembershipBuilder builder(8);
    builder.join(join_of(5, "alice", 6000));
    builder.join(join_of(5, "bob", 6001));
    builder.pause(5, "bob", "alice", true);
    SfuMessage leave = join_of(5, "alice", 6000);
    leave.kind = SfuMessage::Kind::leave;
    // Another worker's leave of the same 5-tuple (a stale one) removes nothing.
    SfuMessage stale = leave;
    stale.worker = 3;
    EXPECT_FALSE(builder.leave(stale));
    EXPECT_TRUE(builder.leave(leave));
    EXPECT_FALSE(builder.leave(leave));
    const auto after = builder.build();
    ASSERT_NE(after->find(5), nullptr);
    ASSERT_EQ(after->find(5)->members.size(), 1u);
    EXPECT_TRUE(after->find(5)->members[0].selection.paused.empty())
        << "a publisher that left is paused no more";
    SfuMessage bob_leaves = join_of(5, "bob", 6001);
    bob_leaves.kind = SfuMessage::Kind::leave;
    EXPECT_TRUE(builder.leave(bob_leaves));
    EXPECT_EQ(builder.build()->find(5), nullptr);
}

TEST(SfuMembershipBuilder, PauseAndSelectAreASubscribersOwn) {
    SfuMembershipBuilder builder(8);
    builder.join(join_of(5, "alice", 6000));
    builder.join(join_of(5, "bob", 6001));
    EXPECT_TRUE(builder.pause(5, "bob", "alice", true));
    EXPECT_FALSE(builder.pause(5, "bob", "nobody", true));
    EXPECT_FALSE(builder.pause(6, "bob", "alice", true));
    EXPECT_TRUE(builder.select(5, "alice", {0x11111111}));
    EXPECT_FALSE(builder.select(5, "nobody", {}));
    const auto membership = builder.build();
    const SfuSession& s = *membership->find(5);
    const SfuParticipant alice = SfuParticipant::from("alice");
    const SfuParticipant bob = SfuParticipant::from("bob");
    EXPECT_FALSE(s.members[1].selection.allows(alice, std::nullopt));
    EXPECT_TRUE(s.members[0].selection.allows(bob, 0x11111111));
    EXPECT_FALSE(s.members[0].selection.allows(bob, 0x22222222));
    EXPECT_TRUE(s.members[0].selection.allows(bob, std::nullopt)) << "RTCP is not filtered";
    EXPECT_TRUE(builder.pause(5, "bob", "alice", false));
    EXPECT_TRUE(builder.build()->find(5)->members[1].selection.allows(alice, std::nullopt));
}

// The forwarding plans (SfuMembership::plan()): per worker and slot, each publisher's
// destinations in order of admission, itself left out, the pauses of it applied as a count,
// an SSRC allow-list pointed at, IPv4 address terms summed.
TEST(SfuMembership, PlansPerWorkerAndSlot) {
    SfuMembershipBuilder builder(8);
    auto join = [&](std::uint64_t session, std::string_view who, std::uint16_t port,
                    std::uint16_t worker, std::uint32_t slot) {
        SfuMessage m = join_of(session, who, port, worker);
        m.slot = slot;
        m.client_mac = mac;
        m.client_mac[5] = static_cast<std::byte>(port);
        ASSERT_EQ(builder.join(m), SfuMembershipBuilder::JoinResult::joined);
    };
    join(5, "alice", 6000, 0, 3);
    join(5, "bob", 6001, 1, 0);
    join(5, "carol", 6002, 0, 7);
    join(9, "dave", 6003, 0, 1);
    ASSERT_TRUE(builder.pause(5, "carol", "alice", true));
    ASSERT_TRUE(builder.select(5, "bob", {0x22, 0x33}));
    const auto membership = builder.build();

    const SfuPlan* alice = membership->plan(0, 3);
    ASSERT_NE(alice, nullptr);
    EXPECT_EQ(alice->publisher, key_of(6000));
    EXPECT_EQ(alice->session, 5u);
    EXPECT_EQ(alice->paused, 1u) << "carol paused alice";
    EXPECT_EQ(alice->participant->view(), "alice");
    ASSERT_EQ(alice->count, 1u);
    const SfuPlanDestination* to = &membership->destination(*alice, 0);
    EXPECT_EQ(to[0].key, key_of(6001));
    EXPECT_EQ(to[0].client_mac[5], static_cast<std::byte>(6001 & 0xFF));
    ASSERT_EQ(to[0].ssrc_count, 2u);
    EXPECT_EQ(to[0].ssrcs[1], 0x33u);
    // 198.51.100.9 and 192.0.2.1 (key_of's server) as 16-bit words (RFC 1071).
    EXPECT_EQ(to[0].address_terms, 0xC633u + 0x6409u + 0xC000u + 0x0201u);

    const SfuPlan* carol = membership->plan(0, 7);
    ASSERT_NE(carol, nullptr);
    ASSERT_EQ(carol->count, 2u);
    EXPECT_EQ(membership->destination(*carol, 0).key, key_of(6000));
    EXPECT_EQ(membership->destination(*carol, 1).key, key_of(6001));
    EXPECT_EQ(carol->paused, 0u);

    ASSERT_NE(membership->plan(1, 0), nullptr);
    ASSERT_EQ(membership->plan(1, 0)->count, 2u);
    EXPECT_EQ(membership->destination(*membership->plan(1, 0), 1).key, key_of(6002));
    EXPECT_EQ(membership->plan(0, 1)->count, 0u) << "dave is alone";
    // A slot no member has: a plan that matches no leg; beyond the last, none.
    EXPECT_EQ(membership->plan(0, 0)->publisher, FiveTuple{});
    EXPECT_EQ(membership->plan(0, 8), nullptr);
    EXPECT_EQ(membership->plan(2, 0), nullptr);
}

}  // namespace
}  // namespace engine
