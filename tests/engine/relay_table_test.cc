// RelayTable: insert, find and erase by 5-tuple (IPv4 and IPv6) and by relay port, the full
// table, the index under churn against a std::map, permissions and channels on an injected
// clock, the peer entry pool (run dry, refilled, shared by a channel and its permission), peer
// expiries across the 32-bit wrap and in coarse units, usernames by keyed hash (SipHash's
// reference vectors, 512-byte names), the retransmission cache, expiry, port reservations
// (claimed once, skipped by the free queue, expired, bounded, churned against a std::map), the
// memory per allocation, no allocation after construction, and a listing thread that checks
// every snapshot it takes while a writer thread churns the table.
#include "engine/relay_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "allocation_count.h"
#include "test_support.h"

namespace {

using engine::AllocationSnapshot;
using engine::ChannelResult;
using engine::FiveTuple;
using engine::PermissionResult;
using engine::relay_ipv4;
using engine::relay_ipv6;
using engine::RelayTable;
using engine::RelayTableLimits;
using engine::test::address;
using InsertStatus = RelayTable::InsertStatus;

constexpr std::array<std::byte, 16> md5_key = {
    std::byte{1}, std::byte{2},  std::byte{3},  std::byte{4},  std::byte{5},  std::byte{6},
    std::byte{7}, std::byte{8},  std::byte{9},  std::byte{10}, std::byte{11}, std::byte{12},
    std::byte{13}, std::byte{14}, std::byte{15}, std::byte{16}};

stun::Address with_port(std::string_view ip, std::uint16_t port) {
    stun::Address a = address(ip);
    a.port = port;
    return a;
}

FiveTuple tuple(std::string_view client, std::uint16_t client_port, std::string_view server,
                std::uint16_t server_port) {
    const auto key =
        FiveTuple::make(with_port(client, client_port), with_port(server, server_port));
    EXPECT_TRUE(key.has_value()) << client << " " << server;
    return key.value_or(FiveTuple{});
}

// Key number `i`: IPv4 for even i, IPv6 for odd, the number in the client address and port.
FiveTuple numbered_key(std::uint32_t i) {
    stun::Address client;
    stun::Address server;
    if (i % 2 == 0) {
        client = stun::Address::v4(i, static_cast<std::uint16_t>(i * 7));
        server = stun::Address::v4(0xCB007101, 3478);  // 203.0.113.1
    } else {
        std::array<std::byte, 16> ip{std::byte{0x20}, std::byte{0x01}, std::byte{0x0d},
                                     std::byte{0xb8}};
        for (int b = 0; b < 4; ++b) ip[12 + b] = static_cast<std::byte>(i >> (24 - 8 * b));
        client = stun::Address::v6(ip, static_cast<std::uint16_t>(i * 7));
        server = with_port("2001:db8::1", 3478);
    }
    return *FiveTuple::make(client, server);
}

RelayTable::NewAllocation allocation(const FiveTuple& key, std::string_view username = "alice",
                                     std::uint64_t expiry = 1000) {
    RelayTable::NewAllocation a;
    a.key = key;
    a.username = username;
    a.integrity_key = md5_key;
    a.expiry = expiry;
    return a;
}

// An allocation with an IPv4 and an IPv6 relayed address (ADDITIONAL-ADDRESS-FAMILY).
RelayTable::NewAllocation dual_allocation(const FiveTuple& key, std::string_view username,
                                          std::uint64_t expiry) {
    RelayTable::NewAllocation a = allocation(key, username, expiry);
    a.families = relay_ipv4 | relay_ipv6;
    return a;
}

RelayTableLimits limits(std::uint32_t capacity, std::uint32_t ports,
                        std::uint16_t max_permissions = 4, std::uint16_t max_channels = 4) {
    RelayTableLimits l;
    l.capacity = capacity;
    l.first_relay_port = 50000;
    l.relay_port_count = ports;
    l.max_permissions = max_permissions;
    l.max_channels = max_channels;
    // Room for every allocation's largest set of peers: the pool's own limit has tests of
    // its own. Reservations as many as allocations, ticks as small as a test's numbers.
    l.peer_entries = capacity * (max_permissions + max_channels);
    l.reservations = capacity;
    l.ticks_per_second = 1000;
    l.seed = 0x5EED;
    return l;
}

std::uint32_t insert_ok(RelayTable& table, const RelayTable::NewAllocation& a) {
    const RelayTable::InsertResult r = table.insert(a);
    EXPECT_EQ(r.status, InsertStatus::inserted);
    return r.slot;
}

TEST(FiveTuple, KeepsBothAddressesOfEitherFamily) {
    for (const auto& [client, server] :
         {std::pair{"198.51.100.7", "203.0.113.1"}, std::pair{"2001:db8::7", "2001:db8::1"}}) {
        const FiveTuple key = tuple(client, 40000, server, 3478);
        EXPECT_EQ(key.client(), with_port(client, 40000));
        EXPECT_EQ(key.server(), with_port(server, 3478));
    }
    EXPECT_FALSE(FiveTuple::make(with_port("198.51.100.7", 1), with_port("2001:db8::1", 2)));
    // Ports are in the key: swapping them makes another key.
    EXPECT_NE(tuple("198.51.100.7", 1, "203.0.113.1", 2),
              tuple("198.51.100.7", 2, "203.0.113.1", 1));
}

TEST(RelayTable, InsertFindEraseIpv4AndIpv6) {
    RelayTable table(limits(8, 16));
    const FiveTuple v4 = tuple("198.51.100.7", 40000, "203.0.113.1", 3478);
    const FiveTuple v6 = tuple("2001:db8::7", 40000, "2001:db8::1", 3478);
    // The IPv4 address as the first bytes of an IPv6 one is another key.
    const FiveTuple lookalike = tuple("c633:6407::", 40000, "cb00:7101::", 3478);

    const std::uint32_t s4 = insert_ok(table, allocation(v4, "alice"));
    std::array<std::byte, 32> sha_key{};
    sha_key[31] = std::byte{0xAB};
    RelayTable::NewAllocation dual = dual_allocation(v6, "bob", 1000);
    dual.password_algorithm = stun::PasswordAlgorithm::sha256;
    dual.integrity_key = sha_key;
    const std::uint32_t s6 = insert_ok(table, dual);
    EXPECT_NE(s4, s6);
    EXPECT_EQ(table.size(), 2u);

    EXPECT_EQ(table.find(v4), s4);
    EXPECT_EQ(table.find(v6), s6);
    EXPECT_EQ(table.find(lookalike), RelayTable::no_slot);
    EXPECT_EQ(table.at(s4).key(), v4);
    EXPECT_TRUE(table.username_equals(s4, "alice"));
    EXPECT_FALSE(table.username_equals(s4, "alicE"));
    EXPECT_FALSE(table.username_equals(s4, "alice2"));
    EXPECT_EQ(table.at(s4).password_algorithm(), stun::PasswordAlgorithm::md5);
    EXPECT_TRUE(std::ranges::equal(table.at(s4).integrity_key(), md5_key));
    EXPECT_EQ(table.at(s4).families(), relay_ipv4);
    EXPECT_EQ(table.at(s6).families(), relay_ipv4 | relay_ipv6);
    EXPECT_EQ(table.at(s6).integrity_key().size(), 32u);
    EXPECT_EQ(table.at(s6).integrity_key()[31], std::byte{0xAB});
    EXPECT_EQ(table.at(s6).username_length(), 3u);
    EXPECT_EQ(table.at(s6).username_hash(), table.username_hash("bob"));

    table.erase(s4);
    EXPECT_EQ(table.find(v4), RelayTable::no_slot);
    EXPECT_EQ(table.find(v6), s6);
    EXPECT_EQ(table.size(), 1u);
    table.erase(s4);  // already erased: nothing happens
    EXPECT_EQ(table.size(), 1u);
    table.erase(s6);
    EXPECT_EQ(table.find(v6), RelayTable::no_slot);
    EXPECT_EQ(table.size(), 0u);
}

TEST(RelayTable, SecondInsertOfOneTupleReportsTheFirst) {
    RelayTable table(limits(4, 4));
    const FiveTuple key = numbered_key(1);
    const std::uint32_t slot = insert_ok(table, allocation(key));
    const RelayTable::InsertResult again = table.insert(allocation(key, "mallory"));
    EXPECT_EQ(again.status, InsertStatus::exists);
    EXPECT_EQ(again.slot, slot);
    EXPECT_TRUE(table.username_equals(slot, "alice"));
}

TEST(RelayTable, RelayPortIndex) {
    RelayTable table(limits(8, 8));
    std::set<std::uint16_t> ports;
    std::vector<std::uint32_t> slots;
    for (std::uint32_t i = 0; i < 6; ++i) {
        const std::uint32_t slot = insert_ok(table, allocation(numbered_key(i)));
        const std::uint16_t port = table.at(slot).relay_port();
        EXPECT_GE(port, 50000);
        EXPECT_LT(port, 50008);
        EXPECT_TRUE(ports.insert(port).second) << port;
        EXPECT_EQ(table.find_by_relay_port(0, port), slot);
        EXPECT_FALSE(table.relay_port_available(0, port));
        slots.push_back(slot);
    }
    EXPECT_EQ(table.find_by_relay_port(0, 49999), RelayTable::no_slot);
    EXPECT_EQ(table.find_by_relay_port(0, 50008), RelayTable::no_slot);
    EXPECT_EQ(table.find_by_relay_port(0, 0), RelayTable::no_slot);
    EXPECT_EQ(table.find_by_relay_port(1, 50000), RelayTable::no_slot);  // one address only
    EXPECT_FALSE(table.relay_port_available(0, 50008));

    const std::uint16_t freed = table.at(slots[2]).relay_port();
    table.erase(slots[2]);
    EXPECT_EQ(table.find_by_relay_port(0, freed), RelayTable::no_slot);
    EXPECT_TRUE(table.relay_port_available(0, freed));

    // A port asked for by number (RESERVATION-TOKEN, EVEN-PORT).
    RelayTable::NewAllocation by_number = allocation(numbered_key(100));
    by_number.relay_port = freed;
    const std::uint32_t slot = insert_ok(table, by_number);
    EXPECT_EQ(table.at(slot).relay_port(), freed);
    EXPECT_EQ(table.find_by_relay_port(0, freed), slot);
    by_number.key = numbered_key(101);
    EXPECT_EQ(table.insert(by_number).status, InsertStatus::port_unavailable);
    by_number.relay_port = 50008;
    EXPECT_EQ(table.insert(by_number).status, InsertStatus::port_unavailable);
}

TEST(RelayTable, PortsOnSeveralRelayAddresses) {
    // Two relay addresses × 3 ports: six allocations, each (address, port) once.
    RelayTableLimits l = limits(8, 3);
    l.relay_addresses = 2;
    RelayTable table(l);
    std::set<std::pair<int, int>> endpoints;
    for (std::uint32_t i = 0; i < 6; ++i) {
        const std::uint32_t slot = insert_ok(table, allocation(numbered_key(i)));
        const engine::Allocation& a = table.at(slot);
        EXPECT_LT(a.relay_address(), 2);
        EXPECT_TRUE(endpoints.emplace(a.relay_address(), a.relay_port()).second);
        EXPECT_EQ(table.find_by_relay_port(a.relay_address(), a.relay_port()), slot);
        AllocationSnapshot copy;
        ASSERT_EQ(table.snapshot(slot, copy), RelayTable::SnapshotStatus::live);
        EXPECT_EQ(copy.relay_address, a.relay_address());
    }
    EXPECT_EQ(table.insert(allocation(numbered_key(6))).status, InsertStatus::no_relay_port);
    EXPECT_EQ(table.find_by_relay_port(2, 50000), RelayTable::no_slot);

    const std::uint32_t slot = table.find_by_relay_port(1, 50001);
    table.erase(slot);
    RelayTable::NewAllocation by_number = allocation(numbered_key(7));
    by_number.relay_address = 0;
    by_number.relay_port = 50001;
    EXPECT_EQ(table.insert(by_number).status, InsertStatus::port_unavailable);  // taken on 0
    by_number.relay_address = 2;
    EXPECT_EQ(table.insert(by_number).status, InsertStatus::port_unavailable);  // no address 2
    by_number.relay_address = 1;
    EXPECT_EQ(table.at(insert_ok(table, by_number)).relay_address(), 1);
    EXPECT_EQ(table.find_by_relay_port(1, 50001), table.find(numbered_key(7)));
}

TEST(RelayTable, AFreedPortIsHandedOutLast) {
    // One allocation at a time over 8 ports: each freed port goes to the back of the queue,
    // so eight cycles use eight different ports, and the ninth reuses the first.
    RelayTable table(limits(2, 8));
    std::vector<std::uint16_t> order;
    for (std::uint32_t i = 0; i < 16; ++i) {
        const std::uint32_t slot = insert_ok(table, allocation(numbered_key(i)));
        order.push_back(table.at(slot).relay_port());
        table.erase(slot);
    }
    EXPECT_EQ(std::set<std::uint16_t>(order.begin(), order.begin() + 8).size(), 8u);
    for (std::size_t i = 8; i < 16; ++i) EXPECT_EQ(order[i], order[i - 8]);
}

TEST(RelayTable, APortTakenByNumberIsSkippedInTheQueue) {
    RelayTable table(limits(8, 4));
    RelayTable::NewAllocation by_number = allocation(numbered_key(0));
    by_number.relay_port = 50002;
    insert_ok(table, by_number);
    std::set<std::uint16_t> others;
    for (std::uint32_t i = 1; i < 4; ++i)
        others.insert(table.at(insert_ok(table, allocation(numbered_key(i)))).relay_port());
    EXPECT_EQ(others, (std::set<std::uint16_t>{50000, 50001, 50003}));
    EXPECT_EQ(table.insert(allocation(numbered_key(4))).status, InsertStatus::no_relay_port);
    // Freed while still in the queue, it is handed out once, not twice.
    table.erase(table.find(numbered_key(0)));
    insert_ok(table, allocation(numbered_key(5)));
    EXPECT_EQ(table.insert(allocation(numbered_key(6))).status, InsertStatus::no_relay_port);
}

// --- Reservations (RFC 8656 §7.2: EVEN-PORT's R bit, RESERVATION-TOKEN) ---

// An allocation on `port` that reserves port + 1 under `token` until `expiry`.
RelayTable::NewAllocation reserving(const FiveTuple& key, std::uint16_t port,
                                    std::uint64_t token, std::uint64_t expiry) {
    RelayTable::NewAllocation a = allocation(key);
    a.relay_port = port;
    a.reserve_token = token;
    a.reservation_expiry = expiry;
    return a;
}

// An allocation that claims the port reserved under `token`, at `now`.
RelayTable::NewAllocation claiming(const FiveTuple& key, std::uint64_t token,
                                   std::uint64_t now) {
    RelayTable::NewAllocation a = allocation(key);
    a.claim_token = token;
    a.now = now;
    return a;
}

TEST(RelayTable, ReservedPortIsClaimedOnceByItsToken) {
    RelayTable table(limits(8, 8));
    RelayTable::NewAllocation first = reserving(numbered_key(0), 50002, 0xABCDEF, 500);
    first.families = relay_ipv6;
    insert_ok(table, first);
    EXPECT_FALSE(table.relay_port_available(0, 50003));
    EXPECT_TRUE(table.relay_port_reserved(0, 50003));
    EXPECT_EQ(table.find_by_relay_port(0, 50003), RelayTable::no_slot);  // no allocation
    EXPECT_EQ(table.reservation_count(), 1u);
    EXPECT_TRUE(table.has_reservation(0xABCDEF, 499));
    EXPECT_FALSE(table.has_reservation(0xABCDEF, 500));
    EXPECT_FALSE(table.has_reservation(0xABCDEE, 0));

    // Another token, even one off by a bit, names nothing.
    EXPECT_EQ(table.insert(claiming(numbered_key(2), 0xABCDEE, 100)).status,
              InsertStatus::unknown_reservation);
    // The token's allocation gets the reserved port and the reservation's family (its own
    // `families` are ignored).
    const std::uint32_t slot = insert_ok(table, claiming(numbered_key(2), 0xABCDEF, 100));
    EXPECT_EQ(table.at(slot).relay_port(), 50003);
    EXPECT_EQ(table.at(slot).families(), relay_ipv6);
    EXPECT_EQ(table.find_by_relay_port(0, 50003), slot);
    EXPECT_FALSE(table.relay_port_reserved(0, 50003));
    EXPECT_EQ(table.reservation_count(), 0u);
    // Consumed: a second claim is refused.
    EXPECT_EQ(table.insert(claiming(numbered_key(4), 0xABCDEF, 100)).status,
              InsertStatus::unknown_reservation);
    // The claimed port is an allocation's like any other: freed with it.
    table.erase(slot);
    EXPECT_TRUE(table.relay_port_available(0, 50003));
}

TEST(RelayTable, ReservedPortIsSkippedByTheFreeQueue) {
    // Four ports: 50000 allocated with 50001 reserved; the two others go, then none.
    RelayTable table(limits(8, 4));
    insert_ok(table, reserving(numbered_key(0), 50000, 7, 500));
    std::set<std::uint16_t> others;
    for (std::uint32_t i = 1; i < 3; ++i)
        others.insert(table.at(insert_ok(table, allocation(numbered_key(i)))).relay_port());
    EXPECT_EQ(others, (std::set<std::uint16_t>{50002, 50003}));
    EXPECT_EQ(table.insert(allocation(numbered_key(3))).status, InsertStatus::no_relay_port);
    // Nor can it be asked for by number.
    RelayTable::NewAllocation by_number = allocation(numbered_key(3));
    by_number.relay_port = 50001;
    EXPECT_EQ(table.insert(by_number).status, InsertStatus::port_unavailable);
    // Expired and swept, it is free again, handed out once.
    EXPECT_EQ(table.expire_reservations(499, 8), 0u);
    EXPECT_EQ(table.expire_reservations(500, 8), 1u);
    EXPECT_EQ(table.reservation_count(), 0u);
    EXPECT_EQ(table.at(insert_ok(table, allocation(numbered_key(3)))).relay_port(), 50001);
    EXPECT_EQ(table.insert(allocation(numbered_key(4))).status, InsertStatus::no_relay_port);
}

TEST(RelayTable, ExpiredReservationIsUnknownAndItsPortReturns) {
    RelayTable table(limits(8, 4));
    insert_ok(table, reserving(numbered_key(0), 50002, 99, 500));
    // At its expiry the token is refused, and the port is released at once.
    EXPECT_EQ(table.insert(claiming(numbered_key(2), 99, 500)).status,
              InsertStatus::unknown_reservation);
    EXPECT_EQ(table.reservation_count(), 0u);
    EXPECT_TRUE(table.relay_port_available(0, 50003));
    // sweep() releases them too.
    table.erase(table.find(numbered_key(0)));
    insert_ok(table, reserving(numbered_key(0), 50002, 100, 600));
    EXPECT_EQ(table.sweep(599, 8), 0u);
    EXPECT_TRUE(table.relay_port_reserved(0, 50003));
    // The allocation (expiry 1000) stays; the reservation goes.
    EXPECT_EQ(table.sweep(600, 8), 0u);
    EXPECT_FALSE(table.relay_port_reserved(0, 50003));
    EXPECT_EQ(table.reservation_count(), 0u);
}

TEST(RelayTable, ReservationRefusals) {
    RelayTable table(limits(2, 8));
    // The next port taken, or not this worker's (the last port is 50007).
    RelayTable::NewAllocation taken = allocation(numbered_key(0));
    taken.relay_port = 50005;
    insert_ok(table, taken);
    EXPECT_EQ(table.insert(reserving(numbered_key(1), 50004, 1, 500)).status,
              InsertStatus::port_unavailable);
    EXPECT_EQ(table.insert(reserving(numbered_key(1), 50007, 1, 500)).status,
              InsertStatus::port_unavailable);
    // Without a port of its own, with token 0, or with a claim too.
    EXPECT_EQ(table.insert(reserving(numbered_key(1), 0, 1, 500)).status,
              InsertStatus::port_unavailable);
    EXPECT_EQ(table.insert(reserving(numbered_key(1), 50000, 0, 500)).status,
              InsertStatus::port_unavailable);
    RelayTable::NewAllocation both = reserving(numbered_key(1), 50000, 1, 500);
    both.claim_token = 2;
    EXPECT_EQ(table.insert(both).status, InsertStatus::port_unavailable);
    // Nothing refused changed a port or made a reservation.
    EXPECT_EQ(table.reservation_count(), 0u);
    EXPECT_TRUE(table.relay_port_available(0, 50000));
    EXPECT_TRUE(table.relay_port_available(0, 50001));
    // A token in use.
    insert_ok(table, reserving(numbered_key(1), 50000, 1, 500));
    table.erase(table.find(numbered_key(1)));
    EXPECT_EQ(table.insert(reserving(numbered_key(1), 50002, 1, 500)).status,
              InsertStatus::token_in_use);
}

TEST(RelayTable, ReservationsAreBoundedByTheirRecords) {
    // Capacity 8, 3 reservation records, 16 ports: three reservations, each of an allocation
    // later erased, fill the records; a fourth is refused until one expires.
    RelayTableLimits l = limits(8, 16);
    l.reservations = 3;
    RelayTable table(l);
    EXPECT_EQ(table.reservation_capacity(), 3u);
    for (std::uint32_t i = 0; i < 3; ++i) {
        const auto port = static_cast<std::uint16_t>(50000 + 2 * i);
        insert_ok(table, reserving(numbered_key(i), port, 10 + i, 500 + i));
        table.erase(table.find(numbered_key(i)));
    }
    EXPECT_EQ(table.reservation_count(), 3u);
    EXPECT_EQ(table.insert(reserving(numbered_key(3), 50008, 13, 600)).status,
              InsertStatus::reservations_full);
    EXPECT_TRUE(table.relay_port_available(0, 50008));
    EXPECT_EQ(table.expire_reservations(500, 3), 1u);
    insert_ok(table, reserving(numbered_key(3), 50008, 13, 600));
    // The others are still found after the index shifted (backward-shift erase).
    EXPECT_TRUE(table.has_reservation(11, 0));
    EXPECT_TRUE(table.has_reservation(12, 0));
    EXPECT_TRUE(table.has_reservation(13, 0));
    EXPECT_FALSE(table.has_reservation(10, 0));
}

TEST(RelayTable, ReservationChurnAgainstASet) {
    // Reserve, claim and expire at random against a std::map of token → (port, expiry); the
    // table must agree on every token and port, and release every port in the end.
    constexpr std::uint32_t ports = 64;
    RelayTable table(limits(16, ports));
    std::mt19937_64 random(5);
    std::map<std::uint64_t, std::pair<std::uint16_t, std::uint64_t>> live;
    std::uint32_t key = 0;
    for (std::uint64_t now = 1; now < 5000; ++now) {
        const std::uint64_t choice = random() % 3;
        if (choice == 0) {
            const auto port = static_cast<std::uint16_t>(50000 + 2 * (random() % (ports / 2)));
            const std::uint64_t token = random() | 1;
            const RelayTable::InsertResult r =
                table.insert(reserving(numbered_key(key++), port, token, now + 20));
            if (r.status == InsertStatus::inserted) {
                live[token] = {static_cast<std::uint16_t>(port + 1), now + 20};
                table.erase(r.slot);
            } else {
                EXPECT_TRUE(r.status == InsertStatus::port_unavailable ||
                            r.status == InsertStatus::reservations_full ||
                            r.status == InsertStatus::table_full)
                    << static_cast<int>(r.status);
            }
        } else if (choice == 1 && !live.empty()) {
            auto it = std::next(live.begin(), static_cast<long>(random() % live.size()));
            const RelayTable::InsertResult r =
                table.insert(claiming(numbered_key(key++), it->first, now));
            if (it->second.second > now) {
                ASSERT_EQ(r.status, InsertStatus::inserted);
                EXPECT_EQ(table.at(r.slot).relay_port(), it->second.first);
                table.erase(r.slot);
            } else {
                EXPECT_EQ(r.status, InsertStatus::unknown_reservation);
            }
            live.erase(it);
        } else {
            const std::size_t released = table.expire_reservations(now, 4);
            static_cast<void>(released);
            std::erase_if(live, [&](const auto& entry) {
                return entry.second.second <= now && !table.has_reservation(entry.first, 0);
            });
        }
        ASSERT_EQ(table.reservation_count(), live.size());
        for (const auto& [token, held] : live) {
            ASSERT_TRUE(table.has_reservation(token, 0));
            ASSERT_TRUE(table.relay_port_reserved(0, held.first));
        }
    }
    table.expire_reservations(1'000'000, 16);
    EXPECT_EQ(table.reservation_count(), 0u);
    for (std::uint16_t port = 50000; port < 50000 + ports; ++port)
        EXPECT_TRUE(table.relay_port_available(0, port)) << port;
}

TEST(RelayTable, FullTable) {
    RelayTable table(limits(3, 8));
    for (std::uint32_t i = 0; i < 3; ++i) insert_ok(table, allocation(numbered_key(i)));
    const RelayTable::InsertResult full = table.insert(allocation(numbered_key(3)));
    EXPECT_EQ(full.status, InsertStatus::table_full);
    EXPECT_EQ(full.slot, RelayTable::no_slot);
    // An existing key is still reported as existing, not as a full table.
    EXPECT_EQ(table.insert(allocation(numbered_key(1))).status, InsertStatus::exists);
    table.erase(table.find(numbered_key(1)));
    insert_ok(table, allocation(numbered_key(3)));
    EXPECT_EQ(table.size(), 3u);
}

TEST(RelayTable, RefusesBadArguments) {
    RelayTable table(limits(4, 4));
    const std::string longest(engine::max_username_length, 'u');
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(0), longest));
    EXPECT_TRUE(table.username_equals(slot, longest));
    EXPECT_EQ(table.insert(allocation(numbered_key(1), longest + "u")).status,
              InsertStatus::bad_username);

    RelayTable::NewAllocation a = allocation(numbered_key(1));
    a.password_algorithm = stun::PasswordAlgorithm::sha256;  // with a 16-byte key
    EXPECT_EQ(table.insert(a).status, InsertStatus::bad_integrity_key);
    a = allocation(numbered_key(1));
    a.integrity_key = std::span<const std::byte>(md5_key).first(15);
    EXPECT_EQ(table.insert(a).status, InsertStatus::bad_integrity_key);
    a.integrity_key = md5_key;
    a.password_algorithm = static_cast<stun::PasswordAlgorithm>(3);
    EXPECT_EQ(table.insert(a).status, InsertStatus::bad_integrity_key);
    a = allocation(numbered_key(1));
    a.families = 0;
    EXPECT_EQ(table.insert(a).status, InsertStatus::bad_families);
    a.families = 4;
    EXPECT_EQ(table.insert(a).status, InsertStatus::bad_families);
    EXPECT_EQ(table.size(), 1u);
}

TEST(RelayTable, ConstructorRefusesBadLimits) {
    EXPECT_THROW(RelayTable(limits(0, 4)), std::invalid_argument);
    EXPECT_THROW(RelayTable(limits((1u << 24) + 1, 4)), std::invalid_argument);
    EXPECT_THROW(RelayTable(limits(4, 0)), std::invalid_argument);
    EXPECT_THROW(RelayTable(limits(4, 15537)), std::invalid_argument);  // past 65535
    EXPECT_NO_THROW(RelayTable(limits(4, 15536)));                      // up to 65535
    EXPECT_THROW(RelayTable(limits(4, 4, 0)), std::invalid_argument);
    EXPECT_THROW(RelayTable(limits(4, 4, 4097)), std::invalid_argument);
    EXPECT_THROW(RelayTable(limits(4, 4, 4, 4097)), std::invalid_argument);
    EXPECT_NO_THROW(RelayTable(limits(4, 4, 1, 0)));
    RelayTableLimits addresses = limits(4, 4);
    addresses.relay_addresses = 0;
    EXPECT_THROW(RelayTable{addresses}, std::invalid_argument);
    addresses.relay_addresses = 257;
    EXPECT_THROW(RelayTable{addresses}, std::invalid_argument);
    RelayTableLimits zero_port = limits(4, 4);
    zero_port.first_relay_port = 0;
    EXPECT_THROW(RelayTable{zero_port}, std::invalid_argument);

    RelayTableLimits pool = limits(4, 4);
    pool.peer_entries = 0;
    EXPECT_THROW(RelayTable{pool}, std::invalid_argument);
    pool.peer_entries = (1u << 26) + 1;
    EXPECT_THROW(RelayTable{pool}, std::invalid_argument);
    // An entry's offset from a record must fit 28 bits: 6 units a record, then the pool.
    pool.capacity = 1u << 24;
    pool.peer_entries = (1u << 28) - 6 * (1u << 24);
    EXPECT_THROW(RelayTable{pool}, std::invalid_argument);
    RelayTableLimits reservations = limits(4, 4);
    reservations.reservations = 0;
    EXPECT_THROW(RelayTable{reservations}, std::invalid_argument);
    reservations.reservations = 5;  // more than capacity
    EXPECT_THROW(RelayTable{reservations}, std::invalid_argument);
    RelayTableLimits clock = limits(4, 4);
    clock.ticks_per_second = 0;  // no default: the caller must name its clock
    EXPECT_THROW(RelayTable{clock}, std::invalid_argument);
    clock.ticks_per_second = (std::uint64_t{1} << 40) + 1;
    EXPECT_THROW(RelayTable{clock}, std::invalid_argument);
}

// Random inserts, erases and look-ups against a std::map, on a small index (long probe chains
// and wrap-around at half load), so that every backward shift is checked by the look-ups of
// every key after it.
void churn(std::uint32_t capacity, std::uint32_t universe, std::uint32_t steps,
           std::uint64_t seed) {
    RelayTableLimits l = limits(capacity, capacity + 16);
    l.seed = seed;
    RelayTable table(l);
    struct Entry {
        std::uint32_t slot;
        std::uint16_t port;
    };
    std::map<std::uint32_t, Entry> model;
    std::mt19937_64 random(seed);
    for (std::uint32_t step = 0; step < steps; ++step) {
        const auto i = static_cast<std::uint32_t>(random() % universe);
        const FiveTuple key = numbered_key(i);
        const auto it = model.find(i);
        if (random() % 2 == 0) {
            const RelayTable::InsertResult r = table.insert(allocation(key));
            if (it != model.end()) {
                ASSERT_EQ(r.status, InsertStatus::exists) << step;
                ASSERT_EQ(r.slot, it->second.slot) << step;
            } else if (model.size() == capacity) {
                ASSERT_EQ(r.status, InsertStatus::table_full) << step;
            } else {
                ASSERT_EQ(r.status, InsertStatus::inserted) << step;
                model[i] = {r.slot, table.at(r.slot).relay_port()};
            }
        } else if (it != model.end()) {
            ASSERT_EQ(table.find(key), it->second.slot) << step;
            table.erase(it->second.slot);
            model.erase(it);
            ASSERT_EQ(table.find(key), RelayTable::no_slot) << step;
        } else {
            ASSERT_EQ(table.find(key), RelayTable::no_slot) << step;
        }
        ASSERT_EQ(table.size(), model.size());
        if (step % 97 == 0) {
            std::set<std::uint16_t> ports;
            for (const auto& [number, entry] : model) {
                ASSERT_EQ(table.find(numbered_key(number)), entry.slot) << step << " " << number;
                ASSERT_EQ(table.find_by_relay_port(0, entry.port), entry.slot) << step;
                ASSERT_TRUE(ports.insert(entry.port).second) << step;
            }
            for (std::uint32_t absent = 0; absent < universe; absent += 7) {
                if (model.contains(absent)) continue;
                ASSERT_EQ(table.find(numbered_key(absent)), RelayTable::no_slot) << step;
            }
        }
    }
}

TEST(RelayTable, ChurnAgainstAMapSmallIndex) { churn(24, 64, 20000, 1); }
TEST(RelayTable, ChurnAgainstAMapAtCapacity) { churn(200, 260, 20000, 2); }
TEST(RelayTable, ChurnAgainstAMapLargeUniverse) { churn(1000, 5000, 20000, 3); }

TEST(RelayTable, PermissionsByIpOnAnInjectedClock) {
    RelayTable table(limits(2, 2, 2));
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(0)));
    const engine::Allocation& a = table.at(slot);
    const stun::Address peer = with_port("198.51.100.20", 5000);
    const stun::Address other_port = with_port("198.51.100.20", 6000);
    const stun::Address mapped = with_port("::ffff:198.51.100.20", 5000);

    EXPECT_FALSE(a.permits(peer, 100));
    EXPECT_EQ(table.install_permission(slot, peer, 400, 100), PermissionResult::installed);
    // RFC 8656 §9: "only addresses are compared and port numbers are not considered".
    EXPECT_TRUE(a.permits(other_port, 399));
    EXPECT_FALSE(a.permits(mapped, 399));  // another family, another address
    EXPECT_FALSE(a.permits(peer, 400));    // expired at its expiry
    EXPECT_EQ(table.install_permission(slot, other_port, 700, 300), PermissionResult::refreshed);
    EXPECT_TRUE(a.permits(peer, 699));
    EXPECT_EQ(a.permission_count(), 1u);
    // An expired one installed again counts as new.
    EXPECT_EQ(table.install_permission(slot, peer, 1000, 700), PermissionResult::installed);

    EXPECT_EQ(table.install_permission(slot, mapped, 800, 700), PermissionResult::installed);
    const stun::Address third = with_port("2001:db8::20", 1);
    EXPECT_EQ(table.install_permission(slot, third, 900, 700), PermissionResult::full);
    // Once one has expired, its place is taken.
    EXPECT_EQ(table.install_permission(slot, third, 1200, 800), PermissionResult::installed);
    EXPECT_FALSE(a.permits(mapped, 800));
    EXPECT_TRUE(a.permits(third, 800));
    EXPECT_TRUE(a.permits(peer, 800));
    EXPECT_EQ(a.permission_count(), 2u);
    table.expire_peers(slot, 1000);
    EXPECT_EQ(a.permission_count(), 1u);
    EXPECT_TRUE(a.permits(third, 1000));
    table.expire_peers(slot, 1200);
    EXPECT_EQ(a.permission_count(), 0u);
}

TEST(RelayTable, ChannelsBothWaysOnAnInjectedClock) {
    RelayTable table(limits(2, 2, 2, 2));
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(1)));
    const engine::Allocation& a = table.at(slot);
    const stun::Address peer_a = with_port("198.51.100.20", 5000);
    const stun::Address peer_b = with_port("198.51.100.20", 5001);  // same IP, another port
    const stun::Address peer_c = with_port("2001:db8::30", 5000);

    EXPECT_EQ(table.bind_channel(slot, 0x3FFF, peer_a, 600, 0), ChannelResult::bad_number);
    EXPECT_EQ(table.bind_channel(slot, 0x8000, peer_a, 600, 0), ChannelResult::bad_number);
    EXPECT_EQ(table.bind_channel(slot, 0x4000, peer_a, 600, 0), ChannelResult::bound);
    ASSERT_TRUE(a.channel(0x4000, 0));
    EXPECT_EQ(a.channel(0x4000, 0)->peer, peer_a);
    ASSERT_TRUE(a.channel_to(peer_a, 0));
    EXPECT_EQ(a.channel_to(peer_a, 0)->number, 0x4000);
    EXPECT_FALSE(a.channel_to(peer_b, 0));  // channels are per transport address
    EXPECT_FALSE(a.channel(0x4001, 0));

    EXPECT_EQ(table.bind_channel(slot, 0x4000, peer_a, 900, 300), ChannelResult::refreshed);
    EXPECT_EQ(table.bind_channel(slot, 0x4000, peer_b, 900, 300), ChannelResult::number_in_use);
    EXPECT_EQ(table.bind_channel(slot, 0x7FFF, peer_a, 900, 300), ChannelResult::peer_in_use);
    EXPECT_EQ(table.bind_channel(slot, 0x7FFF, peer_b, 900, 300), ChannelResult::bound);
    EXPECT_EQ(table.bind_channel(slot, 0x4001, peer_c, 900, 300), ChannelResult::full);
    EXPECT_EQ(a.channel_count(), 2u);

    // At 900 both expired: unbound, their numbers and peers free (RFC 8656 §12).
    EXPECT_FALSE(a.channel(0x4000, 900));
    EXPECT_FALSE(a.channel_to(peer_b, 900));
    EXPECT_EQ(table.bind_channel(slot, 0x4000, peer_c, 1500, 900), ChannelResult::bound);
    EXPECT_EQ(table.bind_channel(slot, 0x4001, peer_a, 1500, 900), ChannelResult::bound);
    EXPECT_EQ(a.channel(0x4000, 900)->peer, peer_c);
    EXPECT_EQ(a.channel_to(peer_a, 900)->number, 0x4001);
    EXPECT_FALSE(a.channel_to(peer_b, 900));
    EXPECT_FALSE(a.channel(0x7FFF, 900));
    EXPECT_EQ(a.channel_count(), 2u);
    table.expire_peers(slot, 1500);
    EXPECT_EQ(a.channel_count(), 0u);

    RelayTable no_channels(limits(1, 1, 1, 0));
    const std::uint32_t b_slot = insert_ok(no_channels, allocation(numbered_key(2)));
    const engine::Allocation& b = no_channels.at(b_slot);
    EXPECT_EQ(no_channels.bind_channel(b_slot, 0x4000, peer_a, 600, 0), ChannelResult::full);
    EXPECT_FALSE(b.channel(0x4000, 0));
}

// The peer entry pool: shared by the table's allocations, exhausted (no_entry, the 508 the
// caller answers), refilled by expiry and by erase, and reused.
TEST(RelayTable, PeerEntryPoolRunsDryAndRefills) {
    RelayTableLimits l = limits(4, 4, 4, 4);
    l.peer_entries = 3;
    RelayTable table(l);
    const std::uint32_t a = insert_ok(table, allocation(numbered_key(0)));
    const std::uint32_t b = insert_ok(table, allocation(numbered_key(2)));
    const stun::Address p1 = with_port("198.51.100.1", 1);
    const stun::Address p2 = with_port("198.51.100.2", 1);
    const stun::Address p3 = with_port("2001:db8::3", 1);
    EXPECT_EQ(table.free_peer_entries(), 3u);
    EXPECT_EQ(table.install_permission(a, p1, 100, 0), PermissionResult::installed);
    EXPECT_EQ(table.install_permission(a, p2, 200, 0), PermissionResult::installed);
    EXPECT_EQ(table.install_permission(b, p1, 100, 0), PermissionResult::installed);
    EXPECT_EQ(table.free_peer_entries(), 0u);
    // Dry: a new IP gets nothing, below both allocations' own limits.
    EXPECT_EQ(table.install_permission(b, p3, 100, 0), PermissionResult::no_entry);
    EXPECT_EQ(table.bind_channel(b, 0x4000, p3, 100, 0), ChannelResult::no_entry);
    EXPECT_FALSE(table.at(b).permits(p3, 0));
    EXPECT_EQ(table.at(b).permission_count(), 1u);
    EXPECT_EQ(table.at(b).channel_count(), 0u);
    // A channel to an IP with a permission shares its entry: no new entry.
    EXPECT_EQ(table.bind_channel(b, 0x4000, p1, 150, 0), ChannelResult::bound);
    EXPECT_EQ(table.at(b).channel(0x4000, 0)->peer, p1);
    EXPECT_EQ(table.free_peer_entries(), 0u);
    // Refreshing takes nothing either.
    EXPECT_EQ(table.install_permission(a, p2, 300, 50), PermissionResult::refreshed);

    // a's p1 expires at 100: expire_peers() gives its entry back, and b takes it.
    table.expire_peers(a, 100);
    EXPECT_EQ(table.free_peer_entries(), 1u);
    EXPECT_EQ(table.at(a).permission_count(), 1u);
    EXPECT_TRUE(table.at(a).permits(p2, 100));
    EXPECT_EQ(table.install_permission(b, p3, 400, 100), PermissionResult::installed);
    EXPECT_TRUE(table.at(b).permits(p3, 100));
    EXPECT_EQ(table.free_peer_entries(), 0u);
    // An allocation that finds the pool dry gives back its own expired entries first: b's
    // p1 permission expired at 100, its channel at 150; at 150 its entry is free again.
    EXPECT_EQ(table.install_permission(b, p2, 400, 150), PermissionResult::installed);
    EXPECT_FALSE(table.at(b).permits(p1, 150));
    EXPECT_FALSE(table.at(b).channel(0x4000, 150));
    EXPECT_EQ(table.at(b).permission_count(), 2u);

    // Erasing an allocation returns all its entries; a new allocation in its slot has none.
    table.erase(a);
    EXPECT_EQ(table.free_peer_entries(), 1u);
    const std::uint32_t c = insert_ok(table, allocation(numbered_key(4)));
    EXPECT_EQ(table.at(c).permission_count(), 0u);
    EXPECT_FALSE(table.at(c).permits(p2, 150));
    EXPECT_EQ(table.bind_channel(c, 0x4001, p2, 400, 150), ChannelResult::bound);
    EXPECT_EQ(table.free_peer_entries(), 0u);
    // The ChannelBind's permission (RFC 8656 §12.2) goes into the channel's entry.
    EXPECT_EQ(table.install_permission(c, p2, 400, 150), PermissionResult::installed);
    EXPECT_TRUE(table.at(c).permits(p2, 150));
    EXPECT_EQ(table.at(c).channel_to(p2, 150)->number, 0x4001);
    EXPECT_EQ(table.at(c).permission_count(), 1u);
    EXPECT_EQ(table.at(c).channel_count(), 1u);
}

// Two channels to two ports of one IP: two entries, one permission between them, which
// outlives the channel whose entry holds it.
TEST(RelayTable, ChannelsToOneIpShareItsPermission) {
    RelayTable table(limits(1, 1, 4, 4));
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(0)));
    const engine::Allocation& a = table.at(slot);
    const stun::Address port_1 = with_port("198.51.100.7", 1);
    const stun::Address port_2 = with_port("198.51.100.7", 2);
    const std::size_t free = table.free_peer_entries();
    EXPECT_EQ(table.bind_channel(slot, 0x4000, port_1, 100, 0), ChannelResult::bound);
    EXPECT_EQ(table.install_permission(slot, port_1, 300, 0), PermissionResult::installed);
    EXPECT_EQ(table.bind_channel(slot, 0x4001, port_2, 200, 0), ChannelResult::bound);
    EXPECT_EQ(table.install_permission(slot, port_2, 300, 0), PermissionResult::refreshed);
    EXPECT_EQ(table.free_peer_entries(), free - 2);
    EXPECT_EQ(a.permission_count(), 1u);
    EXPECT_EQ(a.channel_count(), 2u);
    EXPECT_EQ(a.channel_to(port_2, 0)->number, 0x4001);
    // The first channel ends at 100; the permission, in its entry, lives on to 300.
    table.expire_peers(slot, 150);
    EXPECT_FALSE(a.channel(0x4000, 150));
    EXPECT_TRUE(a.channel(0x4001, 150));
    EXPECT_TRUE(a.permits(port_2, 299));
    EXPECT_EQ(a.channel_count(), 1u);
    EXPECT_EQ(table.free_peer_entries(), free - 2);
    table.expire_peers(slot, 250);
    EXPECT_TRUE(a.permits(port_1, 250));
    EXPECT_EQ(table.free_peer_entries(), free - 1);
    table.expire_peers(slot, 300);
    EXPECT_FALSE(a.permits(port_1, 300));
    EXPECT_EQ(table.free_peer_entries(), free);
    EXPECT_EQ(a.permission_count(), 0u);
}

// Peer expiries are 32-bit units compared wrap-aware: right across the 2^32 boundary of the
// unit count, and in 2^k-tick units on a fast clock, where a permission ends within a unit
// before its expiry, never after.
TEST(RelayTable, PeerExpiriesWrapAndRoundDown) {
    RelayTable table(limits(1, 1, 2, 2));  // 1000 ticks a second: one tick a unit
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(0)));
    const engine::Allocation& a = table.at(slot);
    const stun::Address peer = with_port("198.51.100.7", 9);
    const std::uint64_t wrap = std::uint64_t{1} << 32;
    EXPECT_EQ(table.install_permission(slot, peer, wrap + 300, wrap - 300),
              PermissionResult::installed);
    EXPECT_EQ(table.bind_channel(slot, 0x4000, peer, wrap + 600, wrap - 300),
              ChannelResult::bound);
    EXPECT_TRUE(a.permits(peer, wrap - 1));
    EXPECT_TRUE(a.permits(peer, wrap + 299));
    EXPECT_FALSE(a.permits(peer, wrap + 300));
    EXPECT_TRUE(a.channel(0x4000, wrap + 599));
    EXPECT_FALSE(a.channel(0x4000, wrap + 600));
    table.expire_peers(slot, wrap + 300);
    EXPECT_EQ(a.permission_count(), 0u);
    EXPECT_EQ(a.channel_count(), 1u);

    RelayTableLimits fast = limits(1, 1, 2, 2);
    fast.ticks_per_second = 3'000'000'000;  // a 3 GHz TSC: units of 2^21 ticks (0.7 ms)
    RelayTable gigahertz(fast);
    const std::uint32_t g = insert_ok(gigahertz, allocation(numbered_key(0)));
    const std::uint64_t unit = std::uint64_t{1} << 21;
    // Past the wrap of the 32-bit unit count (2^53 ticks, some 35 days of uptime).
    const std::uint64_t now = (std::uint64_t{1} << 53) - 100 * unit + 12345;
    const std::uint64_t expiry = now + 300 * fast.ticks_per_second;
    EXPECT_EQ(gigahertz.install_permission(g, peer, expiry, now), PermissionResult::installed);
    EXPECT_TRUE(gigahertz.at(g).permits(peer, now));
    EXPECT_TRUE(gigahertz.at(g).permits(peer, expiry - (expiry & (unit - 1)) - 1));
    EXPECT_FALSE(gigahertz.at(g).permits(peer, expiry - (expiry & (unit - 1))));
    EXPECT_FALSE(gigahertz.at(g).permits(peer, expiry));
}

// Usernames up to RFC 5389's 512 bytes, told apart by their last byte or their length, and
// listed by length and hash.
TEST(RelayTable, LongUsernamesByKeyedHash) {
    RelayTable table(limits(4, 4));
    std::string longest(engine::max_username_length, 'u');
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(0), longest));
    EXPECT_TRUE(table.username_equals(slot, longest));
    std::string last_byte = longest;
    last_byte.back() = 'v';
    EXPECT_FALSE(table.username_equals(slot, last_byte));
    EXPECT_FALSE(table.username_equals(slot, longest.substr(1)));
    EXPECT_FALSE(table.username_equals(slot, ""));
    const std::uint32_t empty = insert_ok(table, allocation(numbered_key(1), ""));
    EXPECT_TRUE(table.username_equals(empty, ""));
    EXPECT_FALSE(table.username_equals(empty, "u"));

    AllocationSnapshot copy;
    ASSERT_EQ(table.snapshot(slot, copy), RelayTable::SnapshotStatus::live);
    EXPECT_EQ(copy.username_length, engine::max_username_length);
    EXPECT_EQ(copy.username_hash, table.username_hash(longest));
    EXPECT_NE(copy.username_hash, table.username_hash(last_byte));
    // The hash is keyed by the seed: another table hashes the name otherwise.
    RelayTableLimits other_seed = limits(4, 4);
    other_seed.seed = 0x5EED + 1;
    EXPECT_NE(RelayTable(other_seed).username_hash(longest), table.username_hash(longest));
}

// SipHash-2-4's reference vectors (Aumasson and Bernstein, appendix A, and the reference
// implementation's vectors.h): key 00..0f, input 00..0e, then the empty input and 00..3f.
TEST(SipHash, ReferenceVectors) {
    const std::array<std::uint64_t, 2> key = {0x0706050403020100, 0x0f0e0d0c0b0a0908};
    std::string input;
    for (int i = 0; i < 64; ++i) input.push_back(static_cast<char>(i));
    EXPECT_EQ(engine::detail::siphash24(key, std::string_view(input).substr(0, 15)),
              0xa129ca6149be45e5u);
    EXPECT_EQ(engine::detail::siphash24(key, ""), 0x726fdb47dd0e0e31u);
    EXPECT_EQ(engine::detail::siphash24(key, std::string_view(input).substr(0, 8)),
              0x93f5f5799a932462u);
}

// The table's username hash: 64 lengths of one name give 64 hashes, and a name the same
// hash each time.
TEST(RelayTable, UsernameHashIsAFunctionOfTheWholeName) {
    RelayTable table(limits(4, 4));
    std::set<std::uint64_t> hashes;
    std::string name;
    for (int length = 0; length < 64; ++length) {
        hashes.insert(table.username_hash(name));
        EXPECT_EQ(table.username_hash(name), table.username_hash(std::string(name)));
        name.push_back(static_cast<char>('a' + length % 26));
    }
    EXPECT_EQ(hashes.size(), 64u);
}

// The answer's error code and the key's algorithm share a word: neither disturbs the other.
TEST(RelayTable, RememberedAnswerKeepsTheKeyAlgorithm) {
    RelayTable table(limits(1, 2));
    std::array<std::byte, 32> sha_key{};
    sha_key[0] = std::byte{7};
    RelayTable::NewAllocation sha = allocation(numbered_key(0));
    sha.password_algorithm = stun::PasswordAlgorithm::sha256;
    sha.integrity_key = sha_key;
    engine::Allocation& a = table.at(insert_ok(table, sha));
    stun::TransactionId txid{};
    txid[5] = std::byte{9};
    a.remember_answer({txid, stun::Method::channel_bind, 699, 0, 0});
    EXPECT_EQ(a.password_algorithm(), stun::PasswordAlgorithm::sha256);
    EXPECT_EQ(a.integrity_key().size(), 32u);
    const std::optional<engine::CachedAnswer> answer =
        a.answer_for(txid, stun::Method::channel_bind);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->error_code, 699);
    EXPECT_EQ(answer->transaction_id, txid);
    EXPECT_EQ(answer->method, stun::Method::channel_bind);
    a.remember_answer({txid, stun::Method::allocate, 0, 3600, 0x1122334455667788});
    EXPECT_EQ(a.answer_for(txid, stun::Method::allocate)->reservation_token,
              0x1122334455667788u);
    EXPECT_EQ(a.answer_for(txid, stun::Method::allocate)->lifetime, 3600u);
    EXPECT_EQ(a.password_algorithm(), stun::PasswordAlgorithm::sha256);
}

// Issue 4's goal at the benchmark's shape (bench/relay_table_bench.cc): everything the table
// allocates, over its capacity, at most 256 bytes.
TEST(RelayTable, AllocatesAtMost256BytesPerAllocation) {
    RelayTableLimits l = limits(65536, 15000, 8, 8);
    l.relay_addresses = 65536 / 15000 + 2;
    l.peer_entries = l.capacity;
    l.reservations = l.capacity / 16;
    const RelayTable table(l);
    EXPECT_EQ(table.slot_bytes(), 192u);
    EXPECT_LE(table.allocated_bytes(), std::size_t{256} * l.capacity);
    // And the count is of what was allocated: at least the records and the pool.
    EXPECT_GE(table.allocated_bytes(), std::size_t{192 + 32} * l.capacity);
}

TEST(RelayTable, RetransmissionGetsTheRememberedAnswer) {
    RelayTable table(limits(1, 2));
    const FiveTuple key = numbered_key(0);
    engine::Allocation& a = table.at(insert_ok(table, allocation(key)));
    stun::TransactionId txid{};
    txid[0] = std::byte{0x42};
    EXPECT_FALSE(a.answer_for(txid, stun::Method::allocate));
    a.remember_answer({txid, stun::Method::allocate, 0, 600});
    const std::optional<engine::CachedAnswer> answer = a.answer_for(txid, stun::Method::allocate);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->error_code, 0);
    EXPECT_EQ(answer->lifetime, 600u);
    EXPECT_FALSE(a.answer_for(txid, stun::Method::refresh));
    stun::TransactionId other = txid;
    other[11] = std::byte{1};
    EXPECT_FALSE(a.answer_for(other, stun::Method::allocate));
    a.remember_answer({other, stun::Method::create_permission, 403, 0});
    EXPECT_FALSE(a.answer_for(txid, stun::Method::allocate));
    EXPECT_EQ(a.answer_for(other, stun::Method::create_permission)->error_code, 403);

    // A new allocation in the slot remembers nothing of the old one.
    const std::uint32_t slot = table.find(key);
    table.erase(slot);
    EXPECT_EQ(insert_ok(table, allocation(numbered_key(2))), slot);
    EXPECT_FALSE(table.at(slot).answer_for(other, stun::Method::create_permission));
}

TEST(RelayTable, ExpiryRefreshAndSweep) {
    RelayTable table(limits(4, 4));
    const RelayTable::NewAllocation dual = dual_allocation(numbered_key(0), "dual", 100);
    const std::uint32_t d = insert_ok(table, dual);
    const std::uint32_t single = insert_ok(table, allocation(numbered_key(1), "one", 100));
    engine::Allocation& a = table.at(d);
    EXPECT_EQ(a.expiry(relay_ipv4), 100u);
    EXPECT_EQ(a.expiry(relay_ipv6), 100u);
    a.refresh(relay_ipv6, 300);
    EXPECT_EQ(a.expiry(relay_ipv4), 100u);
    EXPECT_EQ(a.expiry(), 300u);
    table.at(single).refresh(relay_ipv6, 900);  // it has no IPv6 address: unchanged
    EXPECT_EQ(table.at(single).expiry(), 100u);
    EXPECT_EQ(table.at(single).expiry(relay_ipv6), 0u);

    // At 100 the single allocation goes, the dual one keeps its IPv6 address.
    EXPECT_EQ(table.sweep(100, 1), 0u);  // one slot a call: slot 0 (dual), still live
    EXPECT_EQ(a.families(), relay_ipv6);
    AllocationSnapshot copy;
    ASSERT_EQ(table.snapshot(d, copy), RelayTable::SnapshotStatus::live);
    EXPECT_EQ(copy.expiry_ipv4, 0u);
    EXPECT_EQ(copy.expiry_ipv6, 300u);
    EXPECT_EQ(table.sweep(100, 1), 1u);
    EXPECT_EQ(table.find(numbered_key(1)), RelayTable::no_slot);
    EXPECT_EQ(table.sweep(299, 8), 0u);
    EXPECT_EQ(table.sweep(300, 8), 1u);
    EXPECT_EQ(table.size(), 0u);

    const std::uint32_t again = insert_ok(table, dual);
    table.at(again).drop_families(relay_ipv4 | relay_ipv6);
    EXPECT_EQ(table.sweep(0, 8), 1u);
}

TEST(RelayTable, CountersAndBucket) {
    RelayTable table(limits(2, 2));
    const std::uint32_t slot = insert_ok(table, allocation(numbered_key(0)));
    engine::Allocation& a = table.at(slot);
    a.count_to_peer(100);
    a.count_to_peer(50);
    a.count_to_client(1200);
    const engine::AllocationCounters c = a.counters();
    EXPECT_EQ(c.to_peer_packets, 2u);
    EXPECT_EQ(c.to_peer_bytes, 150u);
    EXPECT_EQ(c.to_client_packets, 1u);
    EXPECT_EQ(c.to_client_bytes, 1200u);
    const auto rate = engine::RateLimit::make(1000, 1500, 1000);
    ASSERT_TRUE(rate.has_value());
    EXPECT_TRUE(a.bandwidth().take(*rate, 1500, 5));
    EXPECT_FALSE(a.bandwidth().take(*rate, 1, 5));

    // The next allocation in the slot starts from zero, with a full bucket.
    table.erase(slot);
    engine::Allocation& b = table.at(insert_ok(table, allocation(numbered_key(1))));
    EXPECT_EQ(b.counters().to_peer_bytes, 0u);
    EXPECT_TRUE(b.bandwidth().take(*rate, 1500, 5));
}

TEST(RelayTable, SnapshotsAndListing) {
    RelayTable table(limits(8, 8));
    const std::uint32_t s1 =
        insert_ok(table, dual_allocation(numbered_key(1), "carol", 700));
    const std::uint32_t s2 = insert_ok(table, allocation(numbered_key(2), "dave", 500));
    const std::uint32_t s3 = insert_ok(table, allocation(numbered_key(3), "erin", 500));
    table.erase(s2);
    engine::Allocation& a = table.at(s1);
    table.install_permission(s1, with_port("198.51.100.9", 1), 800, 0);
    table.bind_channel(s1, 0x4002, with_port("198.51.100.9", 1), 800, 0);
    table.bind_channel(s1, 0x4003, with_port("198.51.100.9", 2), 800, 0);
    a.count_to_client(33);

    AllocationSnapshot copy;
    ASSERT_EQ(table.snapshot(s1, copy), RelayTable::SnapshotStatus::live);
    EXPECT_EQ(copy.slot, s1);
    EXPECT_EQ(copy.key, numbered_key(1));
    EXPECT_EQ(copy.username_length, 5u);
    EXPECT_EQ(copy.username_hash, table.username_hash("carol"));
    EXPECT_EQ(copy.relay_port, a.relay_port());
    EXPECT_EQ(copy.families, relay_ipv4 | relay_ipv6);
    EXPECT_EQ(copy.expiry_ipv4, 700u);
    EXPECT_EQ(copy.expiry_ipv6, 700u);
    EXPECT_EQ(copy.permission_count, 1u);
    EXPECT_EQ(copy.channel_count, 2u);
    EXPECT_EQ(copy.counters.to_client_bytes, 33u);
    EXPECT_EQ(table.snapshot(s2, copy), RelayTable::SnapshotStatus::empty);
    EXPECT_EQ(table.snapshot(7, copy), RelayTable::SnapshotStatus::empty);
    EXPECT_EQ(table.snapshot(s1, copy, 0), RelayTable::SnapshotStatus::skipped);

    // A listing filtered by name compares hashes: the table's hash of the name asked for.
    std::vector<std::uint32_t> erins;
    const std::uint64_t erin = table.username_hash("erin");
    const RelayTable::ListSummary summary = table.list([&](const AllocationSnapshot& s) {
        if (s.username_hash == erin && s.username_length == 4) erins.push_back(s.slot);
    });
    EXPECT_EQ(summary.listed, 2u);
    EXPECT_EQ(summary.skipped, 0u);
    EXPECT_EQ(erins, (std::vector<std::uint32_t>{s3}));
}

TEST(RelayTable, NoAllocationAfterConstruction) {
    RelayTable table(limits(64, 64, 4, 4));
    AllocationSnapshot copy;
    std::size_t listed = 0;
    stun::TransactionId txid{};
    const std::size_t before = engine::test::allocations();
    for (std::uint32_t round = 0; round < 4; ++round) {
        for (std::uint32_t i = 0; i < 64; ++i) {
            const RelayTable::InsertResult r =
                table.insert(allocation(numbered_key(i + round), "user", 1000 + round));
            if (r.status != InsertStatus::inserted) continue;
            engine::Allocation& a = table.at(r.slot);
            const std::uint32_t slot = r.slot;
            (void)table.install_permission(slot, with_port("198.51.100.9", 1), 2000, 0);
            (void)table.bind_channel(slot, 0x4000, with_port("198.51.100.9", 1), 2000, 0);
            (void)a.permits(with_port("198.51.100.9", 7), 5);
            (void)a.channel(0x4000, 5);
            (void)a.channel_to(with_port("198.51.100.9", 1), 5);
            a.count_to_peer(100);
            a.remember_answer({txid, stun::Method::allocate, 0, 600, 42});
            (void)a.answer_for(txid, stun::Method::allocate);
            (void)table.find_by_relay_port(0, a.relay_port());
            (void)table.snapshot(r.slot, copy);
        }
        listed += table.list([&](const AllocationSnapshot&) {}).listed;
        for (std::uint32_t i = 0; i < 64; i += 2) {
            const std::uint32_t slot = table.find(numbered_key(i + round));
            if (slot != RelayTable::no_slot) table.erase(slot);
        }
        // Reservations: made, claimed, expired.
        for (std::uint32_t i = 0; i < 8; ++i) {
            const auto port = static_cast<std::uint16_t>(50000 + 2 * i);
            const std::uint32_t slot = table.find(numbered_key(1 + 2 * i + round));
            if (slot != RelayTable::no_slot) table.erase(slot);
            RelayTable::NewAllocation r = allocation(numbered_key(1000 + i), "user", 2000);
            r.relay_port = port;
            r.reserve_token = 1 + i;
            r.reservation_expiry = 1000 + round + i % 2;
            const RelayTable::InsertResult made = table.insert(r);
            if (made.status == InsertStatus::inserted) table.erase(made.slot);
        }
        for (std::uint64_t token = 1; token <= 8; token += 2) {
            RelayTable::NewAllocation c = allocation(numbered_key(2000), "user", 2000);
            c.claim_token = token;
            c.now = 999 + round;
            const RelayTable::InsertResult claimed = table.insert(c);
            if (claimed.status == InsertStatus::inserted) table.erase(claimed.slot);
        }
        (void)table.sweep(1000 + round, 64);
        (void)table.expire_reservations(5000, 64);
    }
    EXPECT_EQ(engine::test::allocations(), before);
    EXPECT_GT(listed, 0u);
}

// The username of allocation number `i`: its length and bytes follow from i, so that a
// snapshot that mixed two allocations (or two versions of one) shows.
std::string username_of(std::uint32_t i) {
    std::string name = "user-" + std::to_string(i) + "-";
    name.resize(6 + i % 300, static_cast<char>('a' + i % 26));
    return name;
}

// A writer thread (the worker) inserts, refreshes, erases and counts for about half a second
// while a reader thread (the control thread) lists the table over and over. Every snapshot
// must be one allocation at one moment: the key names number i, and the username, the
// expiries (both families, always refreshed together, i in their top bits) and the counts
// must all be i's.
TEST(RelayTable, ConcurrentListingSeesConsistentSnapshots) {
    constexpr std::uint32_t capacity = 256;
    RelayTable table(limits(capacity, 512, 4, 4));
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> passes{0};
    std::uint64_t checked = 0;
    std::uint64_t skipped = 0;
    std::vector<std::string> failures;

    std::thread reader([&] {
        const auto check = [&](const AllocationSnapshot& s) {
            ++checked;
            const stun::Address client = s.key.client();
            std::uint32_t i = 0;
            if (client.family == stun::AddressFamily::ipv4) {
                i = static_cast<std::uint32_t>(client.ip[0]) << 24 |
                    static_cast<std::uint32_t>(client.ip[1]) << 16 |
                    static_cast<std::uint32_t>(client.ip[2]) << 8 |
                    static_cast<std::uint32_t>(client.ip[3]);
            } else {
                for (int b = 0; b < 4; ++b)
                    i = i << 8 | static_cast<std::uint32_t>(client.ip[12 + b]);
            }
            const std::string name = username_of(i);
            const bool ok = s.key == numbered_key(i) && s.username_length == name.size() &&
                            s.username_hash == table.username_hash(name) &&
                            s.families == (relay_ipv4 | relay_ipv6) &&
                            s.expiry_ipv4 == s.expiry_ipv6 && s.expiry_ipv4 >> 32 == i &&
                            s.permission_count <= 4 && s.channel_count <= 4 &&
                            s.relay_port >= 50000 && s.relay_port < 50512;
            if (!ok && failures.size() < 10)
                failures.push_back("slot " + std::to_string(s.slot) + " number " +
                                   std::to_string(i) + " username length " +
                                   std::to_string(s.username_length));
        };
        while (!done.load(std::memory_order_acquire)) {
            skipped += table.list(check).skipped;
            passes.fetch_add(1, std::memory_order_relaxed);
        }
        skipped += table.list(check).skipped;
    });

    std::mt19937_64 random(7);
    std::vector<std::uint32_t> live_slots;
    std::vector<std::uint32_t> number_of(capacity);
    std::uint32_t next = 0;
    std::uint64_t operations = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::steady_clock::now() - start; };
    // About half a second, and at least 50 listing passes unless 5 seconds go first.
    while (elapsed() < std::chrono::seconds(5) &&
           (elapsed() < std::chrono::milliseconds(500) ||
            passes.load(std::memory_order_relaxed) < 50)) {
        ++operations;
        const std::uint64_t choice = random() % 8;
        if (choice < 2 && live_slots.size() < capacity) {
            const std::uint32_t i = next++;
            const std::string name = username_of(i);
            const RelayTable::InsertResult r =
                table.insert(dual_allocation(numbered_key(i), name, std::uint64_t{i} << 32));
            if (r.status != InsertStatus::inserted) {
                ADD_FAILURE() << "insert " << i;
                break;
            }
            live_slots.push_back(r.slot);
            number_of[r.slot] = i;
        } else if (choice < 4 && !live_slots.empty()) {
            const std::size_t k = random() % live_slots.size();
            table.erase(live_slots[k]);
            live_slots[k] = live_slots.back();
            live_slots.pop_back();
        } else if (!live_slots.empty()) {
            const std::uint32_t slot = live_slots[random() % live_slots.size()];
            engine::Allocation& a = table.at(slot);
            const std::uint64_t stamp = operations & 0xFFFFFFFF;
            switch (choice) {
            case 4:
                a.refresh(relay_ipv4 | relay_ipv6,
                          std::uint64_t{number_of[slot]} << 32 | stamp);
                break;
            case 5:
                table.install_permission(slot, stun::Address::v4(static_cast<std::uint32_t>(stamp), 1),
                                     stamp + 3, stamp);
                break;
            case 6:
                table.bind_channel(slot, static_cast<std::uint16_t>(0x4000 + stamp % 8),
                               stun::Address::v4(static_cast<std::uint32_t>(stamp % 8), 1),
                               stamp + 3, stamp);
                break;
            default: a.count_to_peer(stamp % 1500); break;
            }
        }
    }
    done.store(true, std::memory_order_release);
    reader.join();

    EXPECT_TRUE(failures.empty()) << failures.size() << " bad snapshots, first: "
                                  << (failures.empty() ? "" : failures.front());
    EXPECT_GT(checked, 0u);
    std::printf("writer: %llu operations; reader: %llu passes, %llu snapshots checked, "
                "%llu skipped\n",
                static_cast<unsigned long long>(operations),
                static_cast<unsigned long long>(passes.load()),
                static_cast<unsigned long long>(checked),
                static_cast<unsigned long long>(skipped));
}

}  // namespace
