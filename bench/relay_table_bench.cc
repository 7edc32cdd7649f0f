// Google Benchmarks of the relay's session table (style rule 19), the structures it was
// chosen from (docs/architecture.md, "Relay session table"), at 10k, 100k and 1M allocations:
//   RelayTable   engine/relay_table.h: open addressing, linear probing, backward-shift erase
//   RteHash      DPDK's rte_hash, lock-free readers (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF),
//                CRC32-C hash (rte_hash_crc)
//   Lfht         liburcu's cds_lfht (QSBR flavour), CRC32-C hash, no auto-resize
//   Baseline     std::unordered_map with the CRC32-C hash: the same-run baseline each figure
//                names in its label ("baseline=...")
// Every structure maps a 5-tuple (engine::FiveTuple, 40 bytes) to a slot of a RelayTable
// filled with the same allocations, and a look-up reads that slot's relay port, so each
// figure is what a worker pays to reach the allocation record, not the index alone. Keys are
// random IPv4 clients to one listener; a hit walks the present keys in insertion order (a
// random order in every index), a miss walks keys that are absent.
//
// InsertErase replaces one allocation per iteration (erase a present key, insert a spare
// one), so the table stays at N. RelayTable's figure includes the whole allocation: its
// record (key, port, expiries, counts, a 22-byte username's keyed hash), the free-slot stack
// and the port FIFO; the others change only their index. Neither rte_hash nor cds_lfht may reuse an
// erased entry before every reader is past it (rte_hash_free_key_with_position after a
// grace period, or call_rcu for a node); here nothing reads concurrently, so they reuse it
// at once, which flatters them: a worker would also pay for a deferred-free queue.
//
// Memory (issue 4: bytes per allocation): RelayTable's benchmarks report counters
// slot_bytes (RelayTable::slot_bytes(): the Allocation record) and bytes_per_allocation:
// RelayTable::allocated_bytes(), every byte its constructor allocated (the records, the peer
// entry pool, the 5-tuple index, the relay-port index, its free FIFO and flags, the
// reservation records, their stack and index), over the allocations it holds, full
// (capacity = N), with max_permissions 8, max_channels 8 and the pool and reservations
// punchlined's defaults give (engine/relay_setup.cc: a peer entry per allocation, a
// reservation per sixteen).
//
// The per-packet paths past the look-up (BM_RelayTable_PeerToClientPath, _ChannelDataPath)
// run on a table whose every allocation has one peer with a permission and a channel: the
// record's lines and the peer entry a datagram touches, as engine/relay_path.cc reads them.
//
// Run: build/bench/relay_table_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true [-- EAL arguments]
// EAL arguments default to "-l 1 --no-pci --in-memory --no-telemetry" when 512 MiB of 2 MiB
// hugepages are free, else "--no-huge -m 512 --no-shconf" (environment.md); the context line
// "eal_memory" says which.
#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/relay_table.h"
#include "stun/address.h"

namespace {

using engine::FiveTuple;
using engine::RelayTable;

constexpr std::string_view username = "1700000000:user-123456";
constexpr std::array<std::byte, 16> integrity_key{};

// present: in the structure; spare: not (misses, and the next inserts).
struct Keys {
    std::vector<FiveTuple> present;
    std::vector<FiveTuple> spare;
};

Keys make_keys(std::size_t n) {
    std::mt19937_64 random(n);
    std::unordered_set<std::uint64_t> seen;
    const stun::Address server = stun::Address::v4(0xCB007101, 3478);  // 203.0.113.1
    std::vector<FiveTuple> all;
    while (all.size() < 2 * n) {
        const std::uint64_t r = random();
        if (!seen.insert(r & 0xFFFFFFFFFFFF).second) continue;
        const auto client = stun::Address::v4(static_cast<std::uint32_t>(r),
                                              static_cast<std::uint16_t>(r >> 32));
        all.push_back(*FiveTuple::make(client, server));
    }
    Keys keys;
    keys.present.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    keys.spare.assign(all.begin() + static_cast<std::ptrdiff_t>(n), all.end());
    return keys;
}

engine::RelayTableLimits limits(std::size_t n) {
    engine::RelayTableLimits l;
    l.capacity = static_cast<std::uint32_t>(n);
    l.first_relay_port = 50000;
    l.relay_port_count = 15000;
    // One address holds 15000 ports: enough addresses for n, and a spare one.
    l.relay_addresses = static_cast<std::uint16_t>(n / 15000 + 2);
    l.max_permissions = 8;
    l.max_channels = 8;
    l.peer_entries = l.capacity;
    l.reservations = std::max<std::uint32_t>(1, l.capacity / 16);
    l.ticks_per_second = 1000000000;  // the expiries below are 1: any clock will do
    l.seed = 0xB5AD4ECEDA1CE2A9;
    return l;
}

RelayTable::NewAllocation new_allocation(const FiveTuple& key) {
    RelayTable::NewAllocation a;
    a.key = key;
    a.username = username;
    a.integrity_key = integrity_key;
    a.expiry = 1;
    return a;
}

std::uint32_t crc(const FiveTuple& key) {
    return rte_hash_crc(&key, sizeof key, 0);
}

// A RelayTable holding the present keys: the table under test, or the records the other
// structures point into.
struct Records {
    explicit Records(std::size_t n) : keys(make_keys(n)), table(limits(n)) {
        for (const FiveTuple& key : keys.present)
            slots.push_back(table.insert(new_allocation(key)).slot);
    }
    Keys keys;
    RelayTable table;
    std::vector<std::uint32_t> slots;  // of keys.present[i]
};

struct CrcHash {
    std::size_t operator()(const FiveTuple& key) const noexcept { return crc(key); }
};

struct UnorderedMap : Records {
    explicit UnorderedMap(std::size_t n) : Records(n) {
        map.reserve(2 * n);
        for (std::size_t i = 0; i < n; ++i) map.emplace(keys.present[i], slots[i]);
    }
    std::uint32_t find(const FiveTuple& key) const {
        const auto it = map.find(key);
        return it == map.end() ? RelayTable::no_slot : it->second;
    }
    void replace(const FiveTuple& old_key, const FiveTuple& new_key) {
        const auto it = map.find(old_key);
        const std::uint32_t slot = it->second;
        map.erase(it);
        map.emplace(new_key, slot);
    }
    std::unordered_map<FiveTuple, std::uint32_t, CrcHash> map;
};

struct RteHash : Records {
    explicit RteHash(std::size_t n) : Records(n) {
        static int tables = 0;
        const std::string name = "relay_bench_" + std::to_string(tables++);
        rte_hash_parameters p{};
        p.name = name.c_str();
        p.entries = static_cast<std::uint32_t>(2 * n);  // at most half full, as RelayTable
        p.key_len = sizeof(FiveTuple);
        p.hash_func = rte_hash_crc;
        p.socket_id = static_cast<int>(rte_socket_id());
        p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
        hash = rte_hash_create(&p);
        if (hash == nullptr) throw std::runtime_error("rte_hash_create failed");
        for (std::size_t i = 0; i < n; ++i)
            if (rte_hash_add_key_data(hash, &keys.present[i], slot_data(slots[i])) != 0)
                throw std::runtime_error("rte_hash_add_key_data failed");
    }
    ~RteHash() { rte_hash_free(hash); }
    static void* slot_data(std::uint32_t slot) {
        return reinterpret_cast<void*>(static_cast<std::uintptr_t>(slot));
    }
    std::uint32_t find(const FiveTuple& key) const {
        void* data = nullptr;
        if (rte_hash_lookup_data(hash, &key, &data) < 0) return RelayTable::no_slot;
        return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(data));
    }
    void replace(const FiveTuple& old_key, const FiveTuple& new_key) {
        void* data = nullptr;
        (void)rte_hash_lookup_data(hash, &old_key, &data);
        // RW_CONCURRENCY_LF implies NO_FREE_ON_DEL: the key slot is freed by hand, at once
        // here (no concurrent reader), after a grace period in a real worker.
        const std::int32_t position = rte_hash_del_key(hash, &old_key);
        (void)rte_hash_free_key_with_position(hash, position);
        (void)rte_hash_add_key_data(hash, &new_key, data);
    }
    rte_hash* hash = nullptr;
};

struct LfhtNode {
    cds_lfht_node node;
    FiveTuple key;
    std::uint32_t slot;
};

int lfht_match(cds_lfht_node* node, const void* key) {
    const auto* n = caa_container_of(node, LfhtNode, node);
    return n->key == *static_cast<const FiveTuple*>(key) ? 1 : 0;
}

struct Lfht : Records {
    explicit Lfht(std::size_t n) : Records(n), nodes(n) {
        // Fixed size, no resize worker: as many buckets as RelayTable has index entries.
        lfht = cds_lfht_new(std::bit_ceil(2 * n), 1, 0, 0, nullptr);
        if (lfht == nullptr) throw std::runtime_error("cds_lfht_new failed");
        rcu_read_lock();
        for (std::size_t i = 0; i < n; ++i) {
            cds_lfht_node_init(&nodes[i].node);
            nodes[i].key = keys.present[i];
            nodes[i].slot = slots[i];
            cds_lfht_add_unique(lfht, crc(nodes[i].key), lfht_match, &nodes[i].key,
                                &nodes[i].node);
        }
        rcu_read_unlock();
    }
    ~Lfht() {
        rcu_read_lock();
        for (LfhtNode& node : nodes) (void)cds_lfht_del(lfht, &node.node);
        rcu_read_unlock();
        (void)cds_lfht_destroy(lfht, nullptr);
    }
    LfhtNode* lookup(const FiveTuple& key) const {
        cds_lfht_iter iter;
        cds_lfht_lookup(lfht, crc(key), lfht_match, &key, &iter);
        cds_lfht_node* node = cds_lfht_iter_get_node(&iter);
        return node == nullptr ? nullptr : caa_container_of(node, LfhtNode, node);
    }
    std::uint32_t find(const FiveTuple& key) const {
        // QSBR: the read-side lock is free; the worker's quiescent state per loop is what a
        // writer waits for.
        rcu_read_lock();
        const LfhtNode* node = lookup(key);
        rcu_read_unlock();
        return node == nullptr ? RelayTable::no_slot : node->slot;
    }
    void replace(const FiveTuple& old_key, const FiveTuple& new_key) {
        rcu_read_lock();
        LfhtNode* node = lookup(old_key);
        (void)cds_lfht_del(lfht, &node->node);
        // Reused at once: no concurrent reader here (call_rcu in a real worker).
        cds_lfht_node_init(&node->node);
        node->key = new_key;
        cds_lfht_add_unique(lfht, crc(new_key), lfht_match, &node->key, &node->node);
        rcu_read_unlock();
    }
    cds_lfht* lfht = nullptr;
    std::vector<LfhtNode> nodes;
};

struct Ours : Records {
    explicit Ours(std::size_t n) : Records(n) {}
    std::uint32_t find(const FiveTuple& key) const { return table.find(key); }
    void replace(const FiveTuple& old_key, const FiveTuple& new_key) {
        table.erase(table.find(old_key));
        (void)table.insert(new_allocation(new_key));
    }
};

// One fixture per structure and size, built on first use and kept (building a 100k table
// takes longer than a run), destroyed by main() before EAL is.
template <class Structure>
std::map<std::size_t, std::unique_ptr<Structure>>& fixtures() {
    static std::map<std::size_t, std::unique_ptr<Structure>> built;
    return built;
}

template <class Structure>
Structure& fixture(std::size_t n) {
    auto& slot = fixtures<Structure>()[n];
    if (!slot) slot = std::make_unique<Structure>(n);
    return *slot;
}

std::string baseline(const char* name, const benchmark::State& state) {
    return std::string("baseline=") + name + "/" + std::to_string(state.range(0));
}

// RelayTable's memory counters (see the header comment); none for the other structures.
template <class Structure>
void memory_counters(benchmark::State& state, const Structure& s) {
    if constexpr (std::is_same_v<Structure, Ours>) {
        state.counters["slot_bytes"] = double(s.table.slot_bytes());
        state.counters["bytes_per_allocation"] =
            double(s.table.allocated_bytes()) / double(s.table.capacity());
    }
}

// Look-ups of present (hit) or absent (miss) keys; a hit reads the record's relay port.
template <class Structure>
void find(benchmark::State& state, bool hit, const char* baseline_name) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const Structure& s = fixture<Structure>(n);
    const std::vector<FiveTuple>& keys = hit ? s.keys.present : s.keys.spare;
    std::size_t i = 0;
    std::uint64_t found = 0;
    for (auto _ : state) {
        const std::uint32_t slot = s.find(keys[i]);
        if (slot != RelayTable::no_slot) {
            benchmark::DoNotOptimize(s.table.at(slot).relay_port());
            ++found;
        }
        if (++i == n) i = 0;
    }
    if (found != (hit ? static_cast<std::uint64_t>(state.iterations()) : 0))
        state.SkipWithError("a look-up gave the wrong answer");
    state.SetItemsProcessed(state.iterations());
    memory_counters(state, s);
    if (baseline_name != nullptr) state.SetLabel(baseline(baseline_name, state));
}

// Erase a present key, insert a spare one: the table stays at n.
template <class Structure>
void insert_erase(benchmark::State& state, const char* baseline_name) {
    const auto n = static_cast<std::size_t>(state.range(0));
    Structure& s = fixture<Structure>(n);
    std::size_t i = 0;
    for (auto _ : state) {
        s.replace(s.keys.present[i], s.keys.spare[i]);
        std::swap(s.keys.present[i], s.keys.spare[i]);
        if (++i == n) i = 0;
    }
    if (s.find(s.keys.present[0]) == RelayTable::no_slot)
        state.SkipWithError("an inserted key is missing");
    state.SetItemsProcessed(state.iterations());
    if (baseline_name != nullptr) state.SetLabel(baseline(baseline_name, state));
}

constexpr const char* find_baseline = "BM_Baseline_UnorderedMapFind";
constexpr const char* insert_baseline = "BM_Baseline_UnorderedMapInsertErase";

// Allocations in the table: 10k, 100k and 1M (issue 4's look-up cost at 1M; a 1M table is
// 253 MB per structure, each candidate holding its own RelayTable records).
void sizes(benchmark::internal::Benchmark* b) { b->Arg(10000)->Arg(100000)->Arg(1000000); }

// BM_<name>_FindHit, _FindMiss and _InsertErase, each against its baseline.
template <class Structure>
void register_candidate(const std::string& name) {
    benchmark::RegisterBenchmark(("BM_" + name + "_FindHit").c_str(), find<Structure>, true,
                                 find_baseline)
        ->Apply(sizes);
    benchmark::RegisterBenchmark(("BM_" + name + "_FindMiss").c_str(), find<Structure>, false,
                                 find_baseline)
        ->Apply(sizes);
    benchmark::RegisterBenchmark(("BM_" + name + "_InsertErase").c_str(),
                                 insert_erase<Structure>, insert_baseline)
        ->Apply(sizes);
}

void register_structures() {
    benchmark::RegisterBenchmark(find_baseline, find<UnorderedMap>, true, nullptr)
        ->Apply(sizes);
    benchmark::RegisterBenchmark(insert_baseline, insert_erase<UnorderedMap>, nullptr)
        ->Apply(sizes);
    register_candidate<Ours>("RelayTable");
    register_candidate<RteHash>("RteHash");
    register_candidate<Lfht>("Lfht");
}

// Datagrams from peers: the relay-port index, then the record.
void BM_RelayTable_FindByRelayPort(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const Ours& s = fixture<Ours>(n);
    std::vector<std::pair<std::uint8_t, std::uint16_t>> ports;
    for (const FiveTuple& key : s.keys.present) {
        const engine::Allocation& a = s.table.at(s.table.find(key));
        ports.emplace_back(a.relay_address(), a.relay_port());
    }
    std::size_t i = 0;
    for (auto _ : state) {
        const std::uint32_t slot = s.table.find_by_relay_port(ports[i].first, ports[i].second);
        benchmark::DoNotOptimize(s.table.at(slot).key());
        if (++i == n) i = 0;
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(baseline(find_baseline, state));
}

// The control thread's listing: ns per allocation listed (a consistent snapshot of each).
void BM_RelayTable_ListPerAllocation(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const Ours& s = fixture<Ours>(n);
    std::size_t listed = 0;
    for (auto _ : state) {
        listed += s.table.list([](const engine::AllocationSnapshot& snapshot) {
            benchmark::DoNotOptimize(snapshot.relay_port);
        }).listed;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(listed));
}

// The per-packet paths past the look-up, on a table whose every allocation has the WebRTC
// shape: one peer with a permission and a channel. The peer of allocation i is 198.0.0.0 + i:
// the address varies with i, as a real table's do. Peers expire at 2^40 ticks, and packets
// come at tick 1.
stun::Address peer_of(std::size_t i) {
    return stun::Address::v4(0xC6000000 | static_cast<std::uint32_t>(i & 0xFFFFFF),
                             static_cast<std::uint16_t>(5000 + i % 1000));
}
constexpr std::uint64_t peer_expiry = std::uint64_t{1} << 40;

struct WithPeers : Ours {
    explicit WithPeers(std::size_t n) : Ours(n) {
        for (std::size_t i = 0; i < n; ++i) {
            const stun::Address peer = peer_of(i);
            (void)table.bind_channel(slots[i], 0x4000, peer, peer_expiry, 0);
            (void)table.install_permission(slots[i], peer, peer_expiry, 0);
        }
    }
};

// Calls `relay(i)` for allocation i = 0, 1, ... round robin, once per iteration; every call
// must relay (return true).
template <class Relay>
void relay_round_robin(benchmark::State& state, std::size_t n, Relay&& relay) {
    std::size_t i = 0;
    std::uint64_t relayed = 0;
    for (auto _ : state) {
        relayed += relay(i) ? 1 : 0;
        if (++i == n) i = 0;
    }
    if (relayed != static_cast<std::uint64_t>(state.iterations()))
        state.SkipWithError("a datagram was not relayed");
    state.SetItemsProcessed(state.iterations());
}

// A datagram from the peer (engine/relay_path.cc's relay_from_peer): the relay-port index,
// the relayed address's expiry, the permission, the channel, the client's hop and address,
// the counters.
void BM_RelayTable_PeerToClientPath(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    WithPeers& s = fixture<WithPeers>(n);
    std::vector<std::pair<std::uint8_t, std::uint16_t>> ports;
    for (const std::uint32_t slot : s.slots)
        ports.emplace_back(s.table.at(slot).relay_address(), s.table.at(slot).relay_port());
    relay_round_robin(state, n, [&](std::size_t i) {
        engine::Allocation& a =
            s.table.at(s.table.find_by_relay_port(ports[i].first, ports[i].second));
        const stun::Address peer = peer_of(i);
        if (a.expiry(engine::relay_ipv4) == 0 || !a.permits(peer, 1)) return false;
        const auto channel = a.channel_to(peer, 1);
        benchmark::DoNotOptimize(channel->number);
        benchmark::DoNotOptimize(a.client_hop());
        benchmark::DoNotOptimize(a.key().client());
        a.count_to_client(100);
        return true;
    });
}

// ChannelData from the client (engine/relay_path.cc): the 5-tuple look-up, the channel, the
// relayed address's expiry, the permission, the counters.
void BM_RelayTable_ChannelDataPath(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    WithPeers& s = fixture<WithPeers>(n);
    relay_round_robin(state, n, [&](std::size_t i) {
        engine::Allocation& a = s.table.at(s.table.find(s.keys.present[i]));
        const auto channel = a.channel(0x4000, 1);
        if (!channel || a.expiry(engine::relay_ipv4) == 0 || !a.permits(channel->peer, 1))
            return false;
        benchmark::DoNotOptimize(channel->peer);
        a.count_to_peer(100);
        return true;
    });
}

BENCHMARK(BM_RelayTable_FindByRelayPort)->Apply(sizes);
BENCHMARK(BM_RelayTable_PeerToClientPath)->Apply(sizes);
BENCHMARK(BM_RelayTable_ChannelDataPath)->Apply(sizes);
BENCHMARK(BM_RelayTable_ListPerAllocation)->Apply(sizes)->Unit(benchmark::kMicrosecond);

std::size_t free_hugepage_mib() {
    std::ifstream meminfo("/proc/meminfo");
    std::string name;
    std::size_t value = 0;
    std::size_t free_pages = 0;
    std::size_t page_kib = 0;
    while (meminfo >> name >> value) {
        if (name == "HugePages_Free:") free_pages = value;
        if (name == "Hugepagesize:") page_kib = value;
        meminfo.ignore(256, '\n');
    }
    return free_pages * page_kib / 1024;
}

}  // namespace

int main(int argc, char** argv) {
    register_structures();
    benchmark::Initialize(&argc, argv);
    // What Google Benchmark left: the program name, then "--" and EAL arguments, if any.
    std::vector<std::string> eal{argv[0]};
    int first = 1;
    if (argc > 1 && std::string(argv[1]) == "--") first = 2;
    for (int i = first; i < argc; ++i) eal.emplace_back(argv[i]);
    const bool hugepages = free_hugepage_mib() >= 512;
    if (eal.size() == 1) {
        if (hugepages)
            eal.insert(eal.end(), {"-l", "1", "--no-pci", "--in-memory", "--no-telemetry"});
        else
            eal.insert(eal.end(), {"-l", "1", "--no-pci", "--no-huge", "-m", "512",
                                   "--no-shconf", "--no-telemetry"});
        eal.emplace_back("--log-level=lib.eal:error");
    }
    std::vector<char*> eal_argv;
    for (std::string& arg : eal) eal_argv.push_back(arg.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "relay_table_bench: rte_eal_init: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    bool no_huge = false;
    for (const std::string& arg : eal) no_huge = no_huge || arg == "--no-huge";
    benchmark::AddCustomContext("eal_memory", no_huge ? "no-huge (4 KiB pages)" : "hugepages");
    rcu_register_thread();

    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();

    fixtures<UnorderedMap>().clear();
    fixtures<Ours>().clear();
    fixtures<WithPeers>().clear();
    fixtures<RteHash>().clear();
    fixtures<Lfht>().clear();
    rcu_unregister_thread();
    rte_eal_cleanup();
    return 0;
}
