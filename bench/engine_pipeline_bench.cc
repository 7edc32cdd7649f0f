// engine_pipeline_bench: the engine's real worker loop on net_ring loopback, beside the same
// run's bare parse-and-swap loop (design.md §6). A benchmark, not a test (style rule 19):
// scripts/bench runs it and records its RESULT lines; nothing in `meson test` does.
//
//   engine_pipeline_bench [--mode both|engine|baseline] [--runs 3] [--seconds 2] [--warmup 0.5]
//                         [--workload binding|channel-out|channel-in|data-indication|sfu]
//                         [--fanout 1] [--payload 100] [--flows 4096] [--inflight 512]
//                         [--burst 32] [--no-huge]
//                         [--trust-checksum] [--no-alternate] [--no-software]
//                         [--control-load none|list|reload|both|rcu] [--control-page 1000]
//                         [--control-cpu N] [--realtime] [-- EAL ARGUMENTS]
//
// One lcore, run to completion. Two rte_rings are an ethdev (rte_eth_from_rings): what the
// port transmits lands in the TX ring, what it receives is read from the RX ring. Each loop
// iteration is
//
//   refill   dequeue the transmitted mbufs from the TX ring, copy a pre-generated Binding
//            request (Ethernet/IPv4/UDP/STUN with FINGERPRINT, correct checksums, one of
//            --flows source addresses, taken in turn) over each, enqueue them into the RX ring
//   step     engine:   engine::Worker::poll(): rx_burst, steer, handle_frame, tx flush, the
//                      very code punchlined's workers run (one worker, one port, burst 32)
//            baseline: rx_burst, parse Ethernet/IPv4/UDP, swap MACs, IPs and ports, new IPv4
//                      header checksum (rte_ipv4_cksum), tx_burst: environment.md's
//                      "parse-and-swap" loop, the ceiling of any per-packet work here
//
// so both modes pay the same feeder and ring costs and their ratio is the engine's price per
// packet. A run is --warmup seconds, then --seconds counted: Mpps = responses / seconds, where
// a response is a STUN success (CoreCounters::stun_success) for the engine and a packet that
// tx_burst took for the baseline. The modes alternate, --runs times each, in this process;
// the medians and their ratio are printed as a table and as JSON lines prefixed "RESULT ".
//
// After each engine run every packet in flight is drained and checked: it parses as a Binding
// success response (stun::Message::parse), its FINGERPRINT and its IP and UDP checksums verify,
// and its XOR-MAPPED-ADDRESS is the source of the request it answers (found by the flow index
// in the transaction ID). At the end the worker's counters must be conserved with no drop and
// no error response. Exit status: 0; 1 when a check failed (figures then are not printed as
// RESULT lines); 2 on a usage or set-up error.
//
// The port is 198.18.0.2 with the RFC 5780 alternate 198.18.0.3, STUN on 3478 and 3479,
// SOFTWARE "punchline", UDP checksums verified; --trust-checksum, --no-alternate (no
// RESPONSE-ORIGIN and OTHER-ADDRESS) and --no-software take those costs out, to see what each
// costs; their RESULT lines say "port" so. The figures scripts/bench records use the defaults.
//
// Relay workloads (issue 4, RFC 8656; --workload other than binding). Before the runs, every
// flow's client makes its allocation the way a client does, through handle_frame() on the
// port (bench/relay_workload.h): Allocate, CreatePermission and ChannelBind 0x4000 to its peer,
// each with USERNAME, REALM, the nonce the server makes for that client, MESSAGE-INTEGRITY and
// FINGERPRINT, each answered with a success; the worker's shard then holds --flows
// allocations (4096 by default, each its own client, relay port and peer). The feeder's frames
// carry --payload bytes of application data (100 by default: an audio frame) whose first 4
// bytes name the flow:
//   channel-out       ChannelData (channel 0x4000) from each client to the TURN port: relayed
//                     to the peer from the allocation's relayed address (RFC 8656 §12.6)
//   channel-in        a datagram from each client's peer to its relay port: relayed to the
//                     client as ChannelData (§12.5)
//   data-indication   a datagram from the peer's IP on another port (a permission, no channel)
//                     to the relay port: relayed to the client in a Data indication (§11.3)
// The engine's figure counts the frames the worker transmitted (CoreCounters::tx_packets);
// after each run every frame in flight is checked (addresses, MACs, IPv4 and UDP checksums,
// the ChannelData header or the Data indication's XOR-PEER-ADDRESS and DATA, the payload
// intact), and at the end every frame received must have been relayed, none dropped, the
// allocations' own relayed counters summing to what the worker sent. Their RESULT lines are
// engine_relay_<workload>_mpps and parse_and_swap_<workload>_mpps, the latter the
// parse-and-swap loop of the same run on the same frames.
//
// The SFU workload (issue 7, docs/sfu.md; --workload sfu --fanout N). The port has the sfu
// role as punchlined's setup_sfu() makes it (bench/sfu_workload.h: one token secret,
// sfu.max_legs_per_session N + 1, legs that outlive the runs, the rest the defaults): the
// context, the worker's shard, its message and command rings, the copy pool of engine.mbufs
// header-sized mbufs (engine::sfu_copy_pool_cache a lcore), the port asked for chained mbufs
// (RTE_ETH_TX_OFFLOAD_MULTI_SEGS).
// Sessions of N + 1 legs, --flows of them (by default as many as make ≈ 4096 legs: 2048 1:1
// calls, 455 rooms of 9 for N = 8). Before the runs every leg is admitted as a participant
// is: a Binding request with the coordinator's token (USERNAME, MESSAGE-INTEGRITY keyed with
// its password, FINGERPRINT) through the worker's loop, each answered with a success that is
// checked (integrity, XOR-MAPPED-ADDRESS); the joins the worker posts on its message ring are
// applied and the membership published as punchlined's control thread does
// (SfuMembershipBuilder::join(), build(), rcu_assign_pointer, synchronize_rcu). The feeder then
// sends --payload bytes of RTP (100 by default; the SSRC names the publisher) from each
// publisher in turn: both legs of a 1:1 call, a room's first participant. One frame in leaves
// as N frames: the frame itself rewritten for one subscriber, and N - 1 copies, each a header
// mbuf chained to an indirect clone of its payload (Worker::fan_out), which the feeder frees as
// a driver frees what it sent. The figure counts the frames transmitted (copies included).
// After each run every frame in flight is checked: a single mbuf or a copy-pool header
// chained to a clone of a received frame (the payload shared, not copied), from the port's MAC
// and the SFU address to the subscriber's MAC, address and port, IPv4 (the publisher's
// identification, DF, TTL 64, header checksum), the UDP checksum summed over the chain, the
// payload byte for byte; and each frame's group reaches every other leg of its session once.
// At the end: the counters conserved (rx + fan_out_copies = tx), nothing dropped, N frames
// sent for each received, the legs' and the SFU's counters agreeing, every copy-pool mbuf
// back. RESULT lines engine_sfu_1to1_mpps (N = 1: goal ≥ 0.5 of the baseline) and
// engine_sfu_fanout_<N>_output_mpps (goal ≥ 20 Mpps out), each with its input Mpps, and their
// baselines parse_and_swap_sfu_1to1_mpps, parse_and_swap_sfu_fanout_<N>_mpps: the
// parse-and-swap loop of the same run on the same frames (one frame out for each in).
//
// The control plane under load (issue 5; --control-load, relay workloads only). Beside the
// worker, on another CPU (--control-cpu; by default the first this process may use that is not
// the worker's), runs punchlined's control thread with the management socket and the real
// commands, and a client that hammers the socket (bench/control_load.h): list pages through
// every allocation with /allocations (1000 a page, --control-page to change it; each page is
// one walk of the table's seqlock listing) then asks /stats; reload adds a user with
// /users/add then re-reads the file with /reload, each a new RelayContext published through
// RCU with synchronize_rcu(), as punchlined's publish_relay(); both does the two in turn; rcu
// calls synchronize_rcu() alone, to tell the quiescent states' cost from the rest. The
// worker is then a registered QSBR reader announcing a quiescent state after every poll, as
// worker_main does. The runs alternate the engine with the control thread idle (polling its
// socket, ticking every 50 ms) and hammered, --runs times each, in this process; the
// parse-and-swap loop does not run.
// Each hammered run counts the requests answered in its counted seconds. Every reply must be
// ok and the relayed frames pass the same checks. The figures: Mpps idle and hammered, their
// ratio (goal ≥ 0.95), the requests per second; and both Mpps again per second that the
// worker's thread had its CPU (its CPU time less the hypervisor's steal), because on a machine
// that others share the control plane's CPU work pushes their processes onto the worker's CPU:
// --realtime (SCHED_FIFO priority 1 for the worker and the control plane's threads, root)
// keeps them off both, as cores of their own would. RESULT lines
// engine_relay_<workload>_control_idle_mpps, engine_relay_<workload>_control_<load>_mpps
// (baseline: the idle one) and control_<load>_requests_per_s_<workload> (for rcu,
// control_rcu_grace_periods_per_s_<workload>).
//
// EAL arguments: everything after "--"; default -l 1 --no-pci --in-memory --no-telemetry
// --log-level=lib.eal:error, which needs reserved hugepages (dpdk-hugepages.py -p 2M --setup
// 1G). --no-huge switches the default to --no-huge -m 512 --no-shconf: slower whenever
// packet data is touched (1.4-5x, environment.md), and labelled so in the output.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include <sched.h>
#include <urcu-qsbr.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/counters.h"
#include "engine/port_context.h"
#include "engine/sfu_role.h"
#include "engine/sfu_table.h"
#include "engine/worker.h"
#include "control_load.h"
#include "relay_workload.h"
#include "sfu_workload.h"
#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/writer.h"

namespace {

constexpr std::uint32_t server_ip = 0xC6120002;            // 198.18.0.2, the port's primary
constexpr std::uint32_t server_alternate_ip = 0xC6120003;  // 198.18.0.3 (RFC 5780)
constexpr std::uint16_t stun_port = 3478;
constexpr std::uint16_t stun_alternate_port = 3479;
// Ethernet 14 + IPv4 20 + UDP 8 + STUN header 20 + FINGERPRINT 8.
constexpr std::size_t stun_request_size = stun::header_size + 8;
constexpr std::size_t request_frame_size = 14 + 20 + 8 + stun_request_size;
// Binding request templates are stored in slots of this stride (16-byte aligned copies); relay
// frames in slots of their size rounded up to 64.
constexpr std::size_t template_stride = 80;
static_assert(request_frame_size <= template_stride);
// Transmitted mbufs moved back to the RX ring per refill: more than a burst, so the feeder
// never falls behind the loop it feeds.
constexpr unsigned feed_batch = 2 * engine::max_burst;
// --workload sfu: the most subscribers per publisher (rooms of 17).
constexpr unsigned max_fanout = 16;

struct Options {
    std::string mode = "both";
    // binding: Binding requests (the STUN role). The relay's data path (issue 4), on
    // allocations made beforehand, one per flow: channel-out, ChannelData from clients to the
    // TURN port (to their peers); channel-in, datagrams from peers with a channel bound to the
    // relay ports (to the clients as ChannelData); data-indication, the same from a permitted
    // peer without a channel (to the clients in Data indications).
    // sfu: the SFU role's forwarding (issue 7): media from publishers to --fanout
    // subscribers each (1: 1:1 calls).
    std::string workload = "binding";
    unsigned payload = 100;  // relay and sfu workloads: the application bytes per packet
    unsigned fanout = 1;     // sfu: subscribers per publisher
    unsigned runs = 3;
    double seconds = 2.0;
    double warmup = 0.5;
    unsigned flows = 4096;  // sfu: sessions (default: 4096 legs' worth)
    unsigned inflight = 512;
    unsigned burst = 32;
    bool no_huge = false;
    // The port's configuration, for measuring what each feature costs (defaults: the demo's).
    bool trust_checksum = false;
    bool no_alternate = false;
    bool no_software = false;
    // Relay workloads: what the control plane does during the engine's runs
    // (bench/control_load.h): none (no control plane: the figures above), or the idle engine
    // against the engine while a client hammers the management socket with list, reload or
    // both (or rcu: grace periods alone); and the CPU that the control thread and its client
    // run on (-1: the first one allowed that is not the worker's).
    std::string control_load = "none";
    int control_cpu = -1;
    // The hammer's /allocations page size: 1000 (the largest); 1 makes every request a walk
    // of the whole table with next to no JSON, to tell the walks' cost from the replies'.
    unsigned control_page = 1000;
    // The worker's thread at SCHED_FIFO priority 1, as on a core of its own: on a machine
    // that others share, nothing else then runs on its CPU but in the kernel's real-time
    // throttling window (by default 50 ms of each second, sched_rt_runtime_us). With
    // --control-load, the control thread and its client too, on theirs.
    bool realtime = false;
};

[[noreturn]] void fail_setup(const std::string& message) {
    std::fprintf(stderr, "engine_pipeline_bench: %s\n", message.c_str());
    std::exit(2);
}

// The pre-generated frames (Binding requests, or a relay workload's datagrams), and the
// source address each one carries.
struct Requests {
    std::vector<std::byte> frames;  // flows * stride
    std::vector<stun::Address> sources;
    std::size_t stride = template_stride;
    std::size_t frame_size = request_frame_size;
    unsigned next = 0;

    [[nodiscard]] const std::byte* frame(unsigned flow) const noexcept {
        return frames.data() + std::size_t{flow} * stride;
    }
};

Requests generate_requests(unsigned flows, const rte_ether_addr& port_mac) {
    Requests r;
    r.frames.assign(std::size_t{flows} * template_stride, std::byte{0});
    r.sources.resize(flows);
    std::mt19937 random(20240517);  // fixed: every run sees the same sources
    std::uniform_int_distribution<unsigned> port_number(1024, 65535);
    for (unsigned flow = 0; flow < flows; ++flow) {
        std::byte* f = r.frames.data() + std::size_t{flow} * template_stride;
        // Sources 198.18.1.0 onwards (198.18.0.0/24 is the server's LAN), random ports.
        const std::uint32_t source_ip = 0xC6120100 + flow;
        const auto source_port = static_cast<std::uint16_t>(port_number(random));
        r.sources[flow] = stun::Address::v4(source_ip, source_port);

        // Ethernet: to the port, from a locally administered MAC per flow.
        std::memcpy(f, port_mac.addr_bytes, 6);
        const std::byte client_mac[6] = {std::byte{0x02},
                                         std::byte{0x00},
                                         static_cast<std::byte>(flow >> 24),
                                         static_cast<std::byte>(flow >> 16),
                                         static_cast<std::byte>(flow >> 8),
                                         static_cast<std::byte>(flow)};
        std::memcpy(f + 6, client_mac, 6);
        stun::store_be16(f + 12, RTE_ETHER_TYPE_IPV4);

        // IPv4, no options, DF.
        std::byte* ip = f + 14;
        ip[0] = std::byte{0x45};
        stun::store_be16(ip + 2, static_cast<std::uint16_t>(20 + 8 + stun_request_size));
        stun::store_be16(ip + 4, static_cast<std::uint16_t>(flow));
        stun::store_be16(ip + 6, 0x4000);
        ip[8] = std::byte{64};
        ip[9] = std::byte{IPPROTO_UDP};
        stun::store_be32(ip + 12, source_ip);
        stun::store_be32(ip + 16, server_ip);

        // UDP to the STUN port.
        std::byte* udp = ip + 20;
        stun::store_be16(udp, source_port);
        stun::store_be16(udp + 2, stun_port);
        stun::store_be16(udp + 4, static_cast<std::uint16_t>(8 + stun_request_size));

        // STUN Binding request with FINGERPRINT; the transaction ID starts with the flow.
        stun::TransactionId txid;
        stun::store_be32(txid.data(), flow);
        for (std::size_t i = 4; i < txid.size(); ++i)
            txid[i] = static_cast<std::byte>(random());
        stun::MessageWriter w(std::span<std::byte>(udp + 8, stun_request_size),
                              stun::Method::binding, stun::MessageClass::request, txid);
        w.add_fingerprint();
        if (!w.ok() || w.size() != stun_request_size) fail_setup("cannot build a Binding request");

        // Checksums from DPDK's own functions, not the engine's.
        auto* ip_header = reinterpret_cast<rte_ipv4_hdr*>(ip);
        ip_header->hdr_checksum = 0;
        ip_header->hdr_checksum = rte_ipv4_cksum(ip_header);
        auto* udp_header = reinterpret_cast<rte_udp_hdr*>(udp);
        udp_header->dgram_cksum = 0;
        udp_header->dgram_cksum = rte_ipv4_udptcp_cksum(ip_header, udp_header);
    }
    return r;
}

// Copies the next request over `m`: the whole frame, its start and its lengths, as if it had
// just arrived (the relay moves a frame's start when its headers shrink or grow).
inline void restore(rte_mbuf* m, Requests& requests) noexcept {
    m->data_off = RTE_PKTMBUF_HEADROOM;
    rte_memcpy(rte_pktmbuf_mtod(m, void*), requests.frame(requests.next), requests.frame_size);
    if (++requests.next == requests.sources.size()) requests.next = 0;
    m->data_len = static_cast<std::uint16_t>(requests.frame_size);
    m->pkt_len = static_cast<std::uint32_t>(requests.frame_size);
}

// Whether `m` is a frame the feeder sent (or the engine's rewrite of one), not a fan-out copy:
// those are a header mbuf chained to an indirect clone of a frame's payload (Worker::fan_out).
inline bool is_frame(const rte_mbuf* m) noexcept {
    return m->nb_segs == 1 && RTE_MBUF_DIRECT(m);
}

struct Feeder {
    rte_ring* rx = nullptr;  // the port receives from here
    rte_ring* tx = nullptr;  // the port transmits into here
    Requests* requests = nullptr;
    // --workload sfu: each frame leaves as up to `fanout` frames, so a refill takes that many
    // times a batch; the fan-out copies are freed (rte_pktmbuf_free_bulk: the header mbufs and
    // the clones, whose frees give back the payload's reference), as a driver frees what it
    // has sent. 0: every transmitted mbuf is a frame.
    unsigned fanout = 0;

    // What the port transmitted goes back to its RX ring as fresh requests. Returns how many.
    unsigned refill() noexcept {
        if (fanout != 0) return refill_fanned_out();
        void* packets[feed_batch];
        const unsigned n = rte_ring_sc_dequeue_burst(tx, packets, feed_batch, nullptr);
        for (unsigned i = 0; i < n; ++i) restore(static_cast<rte_mbuf*>(packets[i]), *requests);
        // The RX ring holds every mbuf there is, so this never comes up short.
        rte_ring_sp_enqueue_burst(rx, packets, n, nullptr);
        return n;
    }

    unsigned refill_fanned_out() noexcept {
        void* packets[feed_batch * max_fanout];
        rte_mbuf* copies[feed_batch * max_fanout];
        const unsigned n = rte_ring_sc_dequeue_burst(tx, packets, feed_batch * fanout, nullptr);
        unsigned frames = 0, sent_copies = 0;
        for (unsigned i = 0; i < n; ++i) {
            auto* m = static_cast<rte_mbuf*>(packets[i]);
            if (is_frame(m))
                packets[frames++] = m;
            else
                copies[sent_copies++] = m;
        }
        // The copies first: a frame's payload is theirs until they are freed (they precede it
        // in the TX ring, so they are in this batch or an earlier one).
        rte_pktmbuf_free_bulk(copies, sent_copies);
        for (unsigned i = 0; i < frames; ++i)
            restore(static_cast<rte_mbuf*>(packets[i]), *requests);
        rte_ring_sp_enqueue_burst(rx, packets, frames, nullptr);
        return frames;
    }
};

// The bare loop the engine is measured against: no classification beyond Ethernet/IPv4/UDP,
// no STUN, one IPv4 header checksum. Returns the packets transmitted.
struct ParseAndSwap {
    std::uint16_t port = 0;
    std::uint16_t burst = 32;
    std::uint64_t sent = 0;
    std::uint64_t dropped = 0;

    void poll() noexcept {
        rte_mbuf* packets[engine::max_burst];
        const std::uint16_t n = rte_eth_rx_burst(port, 0, packets, burst);
        std::uint16_t out = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = packets[i];
            auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
            if (m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) ||
                eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
                ++dropped;
                rte_pktmbuf_free(m);
                continue;
            }
            auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
            const std::uint8_t ip_length = rte_ipv4_hdr_len(ip);
            if (ip->next_proto_id != IPPROTO_UDP || ip_length < sizeof(rte_ipv4_hdr) ||
                m->data_len < sizeof(rte_ether_hdr) + ip_length + sizeof(rte_udp_hdr)) {
                ++dropped;
                rte_pktmbuf_free(m);
                continue;
            }
            auto* udp =
                reinterpret_cast<rte_udp_hdr*>(reinterpret_cast<std::byte*>(ip) + ip_length);
            const rte_ether_addr mac = eth->dst_addr;
            eth->dst_addr = eth->src_addr;
            eth->src_addr = mac;
            const rte_be32_t address = ip->src_addr;
            ip->src_addr = ip->dst_addr;
            ip->dst_addr = address;
            const rte_be16_t udp_port = udp->src_port;
            udp->src_port = udp->dst_port;
            udp->dst_port = udp_port;
            ip->time_to_live = 64;
            ip->hdr_checksum = 0;
            ip->hdr_checksum = rte_ipv4_cksum(ip);
            packets[out++] = m;
        }
        const std::uint16_t taken = rte_eth_tx_burst(port, 0, packets, out);
        sent += taken;
        for (std::uint16_t i = taken; i < out; ++i) {
            ++dropped;
            rte_pktmbuf_free(packets[i]);
        }
    }
};

// One timed run: warm-up, then `seconds` counted. `count` reads the running total of
// responses; `mark` (if any) is called as the counted seconds begin (true) and end (false).
// Returns Mpps.
template <typename Step, typename Count>
double timed_run(Feeder& feeder, Step step, Count count, double warmup, double seconds,
                 const std::function<void(bool)>& mark = {}) {
    const std::uint64_t hz = rte_get_tsc_hz();
    const std::uint64_t warm_end = rte_rdtsc() + static_cast<std::uint64_t>(warmup * double(hz));
    while (rte_rdtsc() < warm_end) {
        for (int i = 0; i < 16; ++i) {
            feeder.refill();
            step();
        }
    }
    if (mark) mark(true);
    const std::uint64_t first = count();
    const std::uint64_t start = rte_rdtsc();
    const std::uint64_t end = start + static_cast<std::uint64_t>(seconds * double(hz));
    std::uint64_t now = start;
    do {
        // The clock is read once per 16 bursts (≈ 500 packets): its cost stays out of the figure.
        for (int i = 0; i < 16; ++i) {
            feeder.refill();
            step();
        }
        now = rte_rdtsc();
    } while (now < end);
    const double elapsed = double(now - start) / double(hz);
    const std::uint64_t last = count();
    if (mark) mark(false);
    return double(last - first) / elapsed / 1e6;
}

// Lets `step` consume everything in the RX ring, so that every mbuf in flight ends in the TX
// ring (or was dropped).
template <typename Step>
void drain(rte_ring* rx, Step step) {
    for (int idle = 0; idle < 4;) {
        step();
        idle = rte_ring_count(rx) == 0 ? idle + 1 : 0;
    }
}

// Checks one engine response against the request of the flow its transaction ID names.
// Returns an empty string when it is right, else what is wrong.
std::string check_response(const rte_mbuf* m, const Requests& requests,
                           const rte_ether_addr& port_mac) {
    const auto* f = rte_pktmbuf_mtod(m, const std::byte*);
    const std::size_t length = rte_pktmbuf_data_len(m);
    if (length < 14 + 20 + 8 + stun::header_size) return "shorter than a STUN response";
    if (stun::load_be16(f + 12) != RTE_ETHER_TYPE_IPV4) return "not IPv4";
    if (std::memcmp(f + 6, port_mac.addr_bytes, 6) != 0) return "not from the port's MAC";
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(f + 14);
    if (rte_ipv4_hdr_len(ip) != 20 || ip->next_proto_id != IPPROTO_UDP) return "not UDP/IPv4";
    // Summed over a header whose checksum is right, the ones' complement sum is all ones.
    if (const std::uint16_t sum = rte_ipv4_cksum(ip); sum != 0 && sum != 0xFFFF)
        return "IPv4 header checksum does not verify";
    const std::size_t ip_total = stun::load_be16(f + 14 + 2);
    if (14 + ip_total != length) return "IPv4 total length disagrees with the frame";
    const std::size_t udp_length = stun::load_be16(f + 34 + 4);
    if (udp_length != ip_total - 20) return "UDP length disagrees with IPv4";
    // RFC 768: pseudo-header plus datagram, checksum field included, sums to all ones.
    std::uint32_t sum =
        std::uint32_t{rte_ipv4_phdr_cksum(ip, 0)} + rte_raw_cksum(f + 34, udp_length);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    if (stun::load_be16(f + 34 + 6) == 0 || sum != 0xFFFF) return "UDP checksum does not verify";
    stun::Message message;
    const std::span<const std::byte> datagram(f + 42, udp_length - 8);
    if (const auto e = stun::Message::parse(datagram, message); e != stun::ParseError::ok)
        return std::string("STUN parse: ") + std::string(stun::to_string(e));
    if (!message.is(stun::Method::binding, stun::MessageClass::success_response))
        return "not a Binding success response";
    if (stun::verify_fingerprint(message) != stun::IntegrityResult::ok)
        return "FINGERPRINT does not verify";
    const std::uint32_t flow = stun::load_be32(message.transaction_id().data());
    if (flow >= requests.sources.size()) return "transaction ID names no flow";
    if (std::memcmp(message.transaction_id().data(),
                    requests.frame(flow) + 42 + 8, stun::transaction_id_size) != 0)
        return "transaction ID is not the request's";
    const auto xor_mapped = message.find(stun::attr::xor_mapped_address);
    if (!xor_mapped) return "no XOR-MAPPED-ADDRESS";
    stun::Address mapped;
    if (stun::decode_xor_address(*xor_mapped, message.transaction_id(), mapped) !=
        stun::ParseError::ok)
        return "XOR-MAPPED-ADDRESS does not decode";
    if (!(mapped == requests.sources[flow]))
        return "XOR-MAPPED-ADDRESS is not the request's source";
    // Back to the client: its address and port are the destination.
    if (stun::load_be32(f + 14 + 16) != stun::load_be32(requests.sources[flow].ip.data()) ||
        stun::load_be16(f + 34 + 2) != requests.sources[flow].port)
        return "not addressed to the request's source";
    return {};
}

// The relay workloads (Options::workload). Each flow is one client with an allocation made
// beforehand (relay_workload::allocate: Allocate, CreatePermission, ChannelBind 0x4000 to its
// peer, each authenticated, through handle_frame()), whose relay port is relay_ports[flow].
// The sfu workload (issue 7): sessions of --fanout + 1 legs admitted beforehand
// (bench/sfu_workload.h), media from their publishers.
enum class Workload : std::uint8_t { binding, channel_out, channel_in, data_indication, sfu };

Workload workload_of(const std::string& name) {
    if (name == "channel-out") return Workload::channel_out;
    if (name == "channel-in") return Workload::channel_in;
    if (name == "data-indication") return Workload::data_indication;
    if (name == "sfu") return Workload::sfu;
    return Workload::binding;
}

// Where a relayed frame's payload starts, and so its first 4 bytes, the flow
// (relay_workload::fill_payload): after the UDP header (to a peer), the ChannelData header, or
// the Data indication's header, XOR-PEER-ADDRESS (IPv4) and DATA's attribute header.
constexpr std::size_t relayed_payload_offset(Workload w) {
    return w == Workload::channel_out  ? 42
           : w == Workload::channel_in ? 42 + 4
                                       : 42 + stun::header_size + 12 + 4;
}

// One frame per flow: ChannelData from its client (channel-out), or a datagram from its peer
// (channel-in) or from its unbound peer (data-indication) to its relay port. `payload` bytes
// of application data, fill_payload()'s pattern.
Requests generate_relay_frames(Workload workload, unsigned flows, unsigned payload,
                               const engine::MacAddress& port_mac,
                               const std::vector<std::uint16_t>& relay_ports) {
    namespace lab = relay_workload;
    Requests r;
    const std::size_t udp_payload =
        payload + (workload == Workload::channel_out ? stun::channel_data_header_size : 0);
    r.frame_size = 42 + udp_payload;
    r.stride = (r.frame_size + 63) / 64 * 64;
    r.frames.assign(std::size_t{flows} * r.stride, std::byte{0});
    r.sources.resize(flows);
    const stun::Address server = stun::Address::v4(lab::server_ip, lab::turn_port);
    for (unsigned flow = 0; flow < flows; ++flow) {
        std::byte* f = r.frames.data() + std::size_t{flow} * r.stride;
        const stun::Address relayed = stun::Address::v4(lab::server_ip, relay_ports[flow]);
        std::size_t length = 0;
        if (workload == Workload::channel_out) {
            // RFC 8656 §12.4: channel number, length; over UDP no padding is needed.
            stun::store_be16(f + 42, lab::channel_number);
            stun::store_be16(f + 44, static_cast<std::uint16_t>(payload));
            lab::fill_payload(f + 46, payload, flow);
            r.sources[flow] = lab::client(flow);
            length = lab::frame_udp(f, port_mac, lab::client_mac(flow), lab::client(flow), server,
                                    udp_payload);
        } else {
            lab::fill_payload(f + 42, payload, flow);
            r.sources[flow] =
                workload == Workload::channel_in ? lab::peer(flow) : lab::unbound_peer(flow);
            length = lab::frame_udp(f, port_mac, lab::gateway_mac, r.sources[flow], relayed,
                                    udp_payload);
        }
        if (length != r.frame_size) fail_setup("relay frame of the wrong size");
    }
    return r;
}

// Checks one relayed frame: from the port, IPv4 and UDP checksums right, addressed as RFC 8656
// says for its workload (§12.6 to the peer from the relayed address; §12.5 ChannelData or
// §11.3 Data indication to the client from the TURN port), the payload intact. Returns an
// empty string when it is right, else what is wrong.
std::string check_relayed(const rte_mbuf* m, Workload workload, unsigned payload,
                          const Requests& requests, const rte_ether_addr& port_mac,
                          const std::vector<std::uint16_t>& relay_ports) {
    namespace lab = relay_workload;
    const auto* f = rte_pktmbuf_mtod(m, const std::byte*);
    const std::size_t length = rte_pktmbuf_data_len(m);
    const std::size_t at = relayed_payload_offset(workload);
    if (length < at + 4) return "shorter than a relayed frame";
    if (stun::load_be16(f + 12) != RTE_ETHER_TYPE_IPV4) return "not IPv4";
    if (std::memcmp(f + 6, port_mac.addr_bytes, 6) != 0) return "not from the port's MAC";
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(f + 14);
    if (rte_ipv4_hdr_len(ip) != 20 || ip->next_proto_id != IPPROTO_UDP) return "not UDP/IPv4";
    if (const std::uint16_t sum = rte_ipv4_cksum(ip); sum != 0 && sum != 0xFFFF)
        return "IPv4 header checksum does not verify";
    const std::size_t ip_total = stun::load_be16(f + 14 + 2);
    if (14 + ip_total != length) return "IPv4 total length disagrees with the frame";
    const std::size_t udp_length = stun::load_be16(f + 34 + 4);
    if (udp_length != ip_total - 20) return "UDP length disagrees with IPv4";
    std::uint32_t sum =
        std::uint32_t{rte_ipv4_phdr_cksum(ip, 0)} + rte_raw_cksum(f + 34, udp_length);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    if (stun::load_be16(f + 34 + 6) == 0 || sum != 0xFFFF) return "UDP checksum does not verify";
    const std::uint32_t flow = stun::load_be32(f + at);
    if (flow >= requests.sources.size()) return "payload names no flow";
    if (length != at + payload + (workload == Workload::data_indication ? (4 - payload % 4) % 4
                                                                         : 0))
        return "wrong length for the payload";
    const std::byte* sent = requests.frame(flow) + 42 +
                            (workload == Workload::channel_out ? stun::channel_data_header_size
                                                               : 0);
    if (std::memcmp(f + at, sent, payload) != 0) return "payload changed";
    stun::Address from = stun::Address::v4(stun::load_be32(f + 14 + 12), stun::load_be16(f + 34));
    stun::Address to = stun::Address::v4(stun::load_be32(f + 14 + 16), stun::load_be16(f + 36));
    if (workload == Workload::channel_out) {
        if (std::memcmp(f, lab::gateway_mac.data(), 6) != 0) return "not to the gateway's MAC";
        if (!(from == stun::Address::v4(lab::server_ip, relay_ports[flow])))
            return "not from the allocation's relayed address";
        if (!(to == lab::peer(flow))) return "not to the channel's peer";
        return {};
    }
    if (std::memcmp(f, lab::client_mac(flow).data(), 6) != 0) return "not to the client's MAC";
    if (!(from == stun::Address::v4(lab::server_ip, lab::turn_port)))
        return "not from the TURN port";
    if (!(to == lab::client(flow))) return "not to the allocation's client";
    if (workload == Workload::channel_in) {
        if (stun::load_be16(f + 42) != lab::channel_number ||
            stun::load_be16(f + 44) != payload)
            return "wrong ChannelData header";
        return {};
    }
    stun::Message message;
    if (const auto e = stun::Message::parse({f + 42, udp_length - 8}, message);
        e != stun::ParseError::ok)
        return std::string("Data indication parse: ") + std::string(stun::to_string(e));
    if (!message.is(stun::Method::data, stun::MessageClass::indication))
        return "not a Data indication";
    const auto peer_attribute = message.find(stun::attr::xor_peer_address);
    stun::Address peer;
    if (!peer_attribute || stun::decode_xor_address(*peer_attribute, message.transaction_id(),
                                                    peer) != stun::ParseError::ok)
        return "no XOR-PEER-ADDRESS";
    if (!(peer == lab::unbound_peer(flow))) return "XOR-PEER-ADDRESS is not the peer";
    const auto data = message.find(stun::attr::data);
    if (!data || data->value.size() != payload || data->value.data() != f + at)
        return "DATA is not the payload";
    return {};
}

// One frame per publisher (sfu_workload::Layout::publishers(), in that order): its media to
// the SFU address, `payload` bytes of RTP, the frame's index its IPv4 identification.
// `frame_of_leg[leg]` is set to the publisher's frame (-1: a subscriber only).
Requests generate_sfu_frames(const sfu_workload::Layout& layout, unsigned payload,
                             const engine::MacAddress& port_mac, std::vector<int>& frame_of_leg) {
    const std::vector<unsigned> publishers = layout.publishers();
    Requests r;
    r.frame_size = 42 + payload;
    r.stride = (r.frame_size + 63) / 64 * 64;
    r.frames.assign(publishers.size() * r.stride, std::byte{0});
    r.sources.resize(publishers.size());
    frame_of_leg.assign(layout.legs(), -1);
    for (unsigned i = 0; i < publishers.size(); ++i) {
        std::byte* f = r.frames.data() + std::size_t{i} * r.stride;
        r.sources[i] = relay_workload::client(publishers[i]);
        frame_of_leg[publishers[i]] = static_cast<int>(i);
        if (sfu_workload::frame_media(f, port_mac, publishers[i], payload,
                                      static_cast<std::uint16_t>(i)) != r.frame_size)
            fail_setup("media frame of the wrong size");
    }
    return r;
}

// Checks one frame the engine sent in the sfu workload: a single mbuf (the received frame
// rewritten for one subscriber) or a header mbuf from the copy pool chained to an indirect
// clone of a received frame (the payload not copied); then the bytes, as
// sfu_workload::check_forwarded() says, and the UDP checksum over the chain. Sets
// `publisher` and `subscriber`; returns an empty string when it is right.
std::string check_sfu_frame(const rte_mbuf* m, const sfu_workload::Layout& layout,
                            unsigned payload, const Requests& requests,
                            const std::vector<int>& frame_of_leg, const rte_ether_addr& port_mac,
                            const rte_mempool* frame_pool, const rte_mempool* copy_pool,
                            unsigned& publisher, unsigned& subscriber) {
    if (m->nb_segs == 1) {
        if (!RTE_MBUF_DIRECT(m) || m->pool != frame_pool) return "a single mbuf not a frame's";
    } else {
        const rte_mbuf* clone = m->next;
        if (m->nb_segs != 2 || clone == nullptr || clone->next != nullptr || m->pool != copy_pool)
            return "a copy that is not a copy-pool header and one segment";
        if (!RTE_MBUF_CLONED(clone) || clone->pool != copy_pool ||
            rte_mbuf_from_indirect(const_cast<rte_mbuf*>(clone))->pool != frame_pool)
            return "a copy's payload is not an indirect clone of a received frame";
        if (rte_pktmbuf_pkt_len(m) != std::uint32_t{m->data_len} + clone->data_len)
            return "the chain's length is not its segments'";
    }
    std::array<std::byte, 2048> buffer;
    const std::uint32_t length = rte_pktmbuf_pkt_len(m);
    if (length > buffer.size()) return "longer than any frame sent";
    const auto* bytes =
        static_cast<const std::byte*>(rte_pktmbuf_read(m, 0, length, buffer.data()));
    if (bytes == nullptr) return "rte_pktmbuf_read failed";
    engine::MacAddress mac;
    std::memcpy(mac.data(), port_mac.addr_bytes, 6);
    std::string problem = sfu_workload::check_forwarded(
        {bytes, length}, layout, mac, payload,
        [&](unsigned leg) -> const std::byte* {
            static const std::byte none[2048] = {};
            return frame_of_leg[leg] < 0 ? none
                                         : requests.frame(static_cast<unsigned>(frame_of_leg[leg]));
        },
        publisher, subscriber);
    if (!problem.empty()) return problem;
    // RFC 768 over the chain as it lies (rte_raw_cksum_mbuf() walks the segments): the
    // pseudo-header plus the datagram, its checksum included, sums to all ones. The IPv4
    // header lies in the first segment (a copy's header mbuf holds all 42 bytes).
    if (m->data_len < 42) return "the headers are not in the first segment";
    std::uint16_t raw = 0;
    if (rte_raw_cksum_mbuf(m, 34, length - 34, &raw) != 0) return "cannot sum the chain";
    std::uint32_t sum = std::uint32_t{rte_ipv4_phdr_cksum(
                            rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, 14), 0)} +
                        raw;
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    if (sum != 0xFFFF) return "UDP checksum does not verify over the chain";
    return {};
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The calling thread's time on its CPU in ns (CLOCK_THREAD_CPUTIME_ID): the wall-clock time
// less the time the kernel gave other threads.
std::uint64_t thread_cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<std::uint64_t>(t.tv_sec) * 1000000000 +
           static_cast<std::uint64_t>(t.tv_nsec);
}

// The time the hypervisor ran something else while `cpu` had work, in ns (/proc/stat's
// "steal", kept in clock ticks; 0 when it cannot be read). The guest counts it as the running
// thread's.
std::uint64_t steal_ns(unsigned cpu) {
    std::FILE* file = std::fopen("/proc/stat", "r");
    if (file == nullptr) return 0;
    const std::string name = "cpu" + std::to_string(cpu) + " ";
    char line[512];
    unsigned long long steal = 0;
    while (std::fgets(line, sizeof line, file) != nullptr) {
        if (std::strncmp(line, name.c_str(), name.size()) != 0) continue;
        unsigned long long field[8] = {};
        if (std::sscanf(line + name.size(), "%llu %llu %llu %llu %llu %llu %llu %llu", &field[0],
                        &field[1], &field[2], &field[3], &field[4], &field[5], &field[6],
                        &field[7]) == 8)
            steal = field[7];
        break;
    }
    std::fclose(file);
    return steal * 1000000000ULL / static_cast<unsigned long long>(sysconf(_SC_CLK_TCK));
}

std::string json_list(const std::vector<double>& values) {
    std::string out = "[";
    char buffer[32];
    for (std::size_t i = 0; i < values.size(); ++i) {
        std::snprintf(buffer, sizeof buffer, "%s%.3f", i == 0 ? "" : ",", values[i]);
        out += buffer;
    }
    return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
    // Our options before "--", EAL's after it.
    int split = argc;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--") == 0) {
            split = i;
            break;
        }

    Options options;
    CLI::App app{"engine_pipeline_bench: engine::Worker::poll() on net_ring loopback vs a bare "
                 "parse-and-swap loop, Mpps (EAL arguments after --)"};
    app.add_option("--mode", options.mode, "both (alternating), engine or baseline")
        ->check(CLI::IsMember({"both", "engine", "baseline"}));
    app.add_option("--workload", options.workload,
                   "binding (STUN), the relay's channel-out, channel-in, data-indication, or "
                   "sfu (the SFU role's forwarding, --fanout subscribers per publisher)")
        ->check(CLI::IsMember({"binding", "channel-out", "channel-in", "data-indication", "sfu"}));
    app.add_option("--payload", options.payload,
                   "relay and sfu workloads: application bytes per packet (sfu: 12 or more, "
                   "an RTP header)")
        ->check(CLI::Range(4, 1200));
    app.add_option("--fanout", options.fanout,
                   "sfu: subscribers per publisher: 1, 1:1 calls (sessions of 2 legs, both "
                   "publishing); N, rooms of N + 1 legs, one publishing")
        ->check(CLI::Range(1u, max_fanout));
    app.add_option("--runs", options.runs, "timed runs of each mode")->check(CLI::Range(1, 99));
    app.add_option("--seconds", options.seconds, "counted seconds per run")
        ->check(CLI::Range(0.05, 600.0));
    app.add_option("--warmup", options.warmup, "uncounted seconds before each run")
        ->check(CLI::Range(0.0, 60.0));
    app.add_option("--flows", options.flows,
                   "distinct source addresses (request templates); sfu: sessions (default: "
                   "4096 legs' worth)")
        ->check(CLI::Range(1, 65000));
    app.add_option("--inflight", options.inflight, "mbufs circulating between feeder and port")
        ->check(CLI::Range(64, 16384));
    app.add_option("--burst", options.burst, "rx/tx burst size")
        ->check(CLI::Range(1u, engine::max_burst));
    app.add_flag("--trust-checksum", options.trust_checksum,
                 "rx_checksum = trust: the engine does not verify UDP checksums");
    app.add_flag("--no-alternate", options.no_alternate,
                 "no RFC 5780 alternate address and port (no RESPONSE-ORIGIN, OTHER-ADDRESS)");
    app.add_flag("--no-software", options.no_software, "no SOFTWARE attribute in responses");
    app.add_option("--control-load", options.control_load,
                   "relay workloads: none, or the idle engine against the engine while a client "
                   "hammers the management socket: list (/allocations pages, /stats), reload "
                   "(/users/add, /reload: RCU publications), both; or rcu (synchronize_rcu() "
                   "alone, no socket)")
        ->check(CLI::IsMember({"none", "list", "reload", "both", "rcu"}));
    app.add_option("--control-page", options.control_page,
                   "the hammer's /allocations page size (each page walks the whole table)")
        ->check(CLI::Range(1, 1000));
    app.add_option("--control-cpu", options.control_cpu,
                   "the CPU of the control thread and its client (default: the first allowed "
                   "that is not the worker's)")
        ->check(CLI::Range(0, CPU_SETSIZE - 1));
    app.add_flag("--realtime", options.realtime,
                 "the worker's thread (and --control-load's threads) at SCHED_FIFO priority 1 "
                 "(root or CAP_SYS_NICE): no other process shares their CPUs but in the "
                 "kernel's real-time throttling window");
    app.add_flag("--no-huge", options.no_huge,
                 "default EAL arguments without hugepages (slower; labelled in the output)");
    try {
        app.parse(split, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    const control_load::Load load = *control_load::load_of(options.control_load);
    const bool controlled = load != control_load::Load::none;
    if (options.workload == "sfu" && (controlled || options.trust_checksum ||
                                      options.no_alternate || options.no_software))
        fail_setup("--control-load, --trust-checksum, --no-alternate and --no-software are not "
                   "for --workload sfu: leave them out");
    if (options.workload != "sfu" && app.count("--fanout") != 0)
        fail_setup("--fanout is for --workload sfu");
    if (options.workload == "sfu" && options.payload < sfu_workload::rtp_header_size)
        fail_setup("--payload: the sfu workload sends RTP, 12 bytes or more");
    if (controlled && options.workload == "binding")
        fail_setup("--control-load needs a relay workload (the control plane lists allocations "
                   "and publishes relay contexts): add --workload channel-out or channel-in");
    if (controlled && app.count("--mode") != 0)
        fail_setup("--control-load compares the engine with itself, idle and hammered, and "
                   "runs no parse-and-swap: leave out --mode");
    // The CPUs this process may use, before EAL pins this thread to the worker's lcore.
    cpu_set_t allowed_cpus;
    CPU_ZERO(&allowed_cpus);
    if (sched_getaffinity(0, sizeof allowed_cpus, &allowed_cpus) != 0)
        fail_setup(std::string("sched_getaffinity(): ") + std::strerror(errno));

    std::vector<std::string> eal_strings = {argv[0]};
    if (split < argc) {
        for (int i = split + 1; i < argc; ++i) eal_strings.emplace_back(argv[i]);
    } else if (options.no_huge) {
        eal_strings.insert(eal_strings.end(),
                           {"-l", "1", "--no-pci", "--no-huge", "-m", "512", "--no-shconf",
                            "--no-telemetry", "--log-level=lib.eal:error"});
    } else {
        eal_strings.insert(eal_strings.end(), {"-l", "1", "--no-pci", "--in-memory",
                                               "--no-telemetry", "--log-level=lib.eal:error"});
    }
    const bool hugepages =
        std::find(eal_strings.begin(), eal_strings.end(), "--no-huge") == eal_strings.end();
    std::vector<char*> eal_argv;
    for (auto& s : eal_strings) eal_argv.push_back(s.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0)
        fail_setup(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
                   (hugepages ? " (reserve hugepages: dpdk-hugepages.py -p 2M --setup 1G, "
                                "or pass --no-huge)"
                              : ""));

    const int socket = static_cast<int>(rte_socket_id());
    const Workload workload = workload_of(options.workload);
    const bool sfu = workload == Workload::sfu;
    const bool relaying = workload != Workload::binding && !sfu;
    const unsigned ring_size = rte_align32pow2(2 * options.inflight);
    // The sfu workload's frames leave as --fanout frames each: the TX ring holds them all when
    // a run's end drains every frame in flight.
    const unsigned tx_ring_size =
        rte_align32pow2(2 * options.inflight * (sfu ? options.fanout : 1));
    const unsigned pool_size = options.inflight + 1024;
    rte_mempool* pool = rte_pktmbuf_pool_create("pipeline_mbufs", pool_size, 0, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (pool == nullptr) fail_setup(std::string("mbuf pool: ") + rte_strerror(rte_errno));
    Feeder feeder;
    feeder.rx = rte_ring_create("pipeline_rx", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    feeder.tx =
        rte_ring_create("pipeline_tx", tx_ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (feeder.rx == nullptr || feeder.tx == nullptr)
        fail_setup(std::string("rings: ") + rte_strerror(rte_errno));
    const int created = rte_eth_from_rings("pipeline", &feeder.rx, 1, &feeder.tx, 1,
                                           static_cast<unsigned>(socket));
    if (created < 0) fail_setup(std::string("rte_eth_from_rings: ") + rte_strerror(rte_errno));
    const auto port_id = static_cast<std::uint16_t>(created);
    rte_eth_conf conf{};
    // The SFU's fan-out copies are chained mbufs: punchlined asks a port to take them
    // (setup_port(): RTE_ETH_TX_OFFLOAD_MULTI_SEGS), and fans out on none that cannot.
    if (sfu) {
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(port_id, &info) != 0 ||
            (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) == 0)
            fail_setup("the ring port cannot send chained mbufs: punchlined would not fan out");
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    }
    if (rte_eth_dev_configure(port_id, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(port_id, 0, 1024, static_cast<unsigned>(socket), nullptr, pool) !=
            0 ||
        rte_eth_tx_queue_setup(port_id, 0, 1024, static_cast<unsigned>(socket), nullptr) != 0 ||
        rte_eth_dev_start(port_id) != 0)
        fail_setup("cannot configure and start the ring port");
    rte_ether_addr port_mac{};
    rte_eth_macaddr_get(port_id, &port_mac);

    // One allocation per flow, each on a relay port of its own (49152-65535).
    if (relaying && options.flows > 65536 - relay_workload::first_relay_port)
        fail_setup("a relay workload has at most 16384 flows (one relay port each)");
    engine::MacAddress mac;
    std::memcpy(mac.data(), port_mac.addr_bytes, 6);
    engine::PortContext context;
    std::memcpy(context.mac.data(), port_mac.addr_bytes, 6);
    context.ipv4.primary = stun::Address::v4(server_ip, 0);
    if (!options.no_alternate) context.ipv4.alternate = stun::Address::v4(server_alternate_ip, 0);
    context.rx_checksum =
        options.trust_checksum ? engine::RxChecksum::trust : engine::RxChecksum::verify;
    context.stun_port = stun_port;
    context.stun_alternate_port = options.no_alternate ? 0 : stun_alternate_port;
    context.software = options.no_software ? "" : "punchline";
    context.prepare();
    // The relay workloads: the relay's port (relay_workload.h: no RFC 5780 alternate, no
    // SOFTWARE, which relayed frames never use), on the TSC clock as punchlined runs it.
    if (relaying) {
        if (options.trust_checksum || options.no_alternate || options.no_software)
            fail_setup("--trust-checksum, --no-alternate and --no-software are for binding");
        context = relay_workload::make_port(mac, relay_workload::make_context(
                                                     rte_get_tsc_hz(), options.flows));
    }

    engine::Dataplane dataplane;
    dataplane.ports = {engine::DataplanePort{port_id, &context}};
    dataplane.workers = 1;
    dataplane.burst = options.burst;
    dataplane.rings.assign(1, nullptr);  // one worker: no handoff rings
    dataplane.counters = std::make_unique<engine::CoreCounters[]>(1);
    std::vector<std::uint16_t> relay_ports;
    if (relaying) {
        dataplane.tsc_hz = rte_get_tsc_hz();
        dataplane.start_tsc = rte_rdtsc();
        dataplane.start_unix_s = static_cast<std::uint64_t>(std::time(nullptr));
        dataplane.relay_shards.push_back(
            relay_workload::make_shard(2 * options.flows, dataplane.tsc_hz));
        // Every flow's allocation, permission and channel, made as its client makes them.
        std::string why;
        for (unsigned flow = 0; flow < options.flows; ++flow) {
            const std::optional<std::uint16_t> relay_port =
                relay_workload::allocate(context, *dataplane.relay_shards[0], flow,
                                         rte_rdtsc(), dataplane.start_unix_s, why);
            if (!relay_port) fail_setup("allocation set-up failed: " + why);
            relay_ports.push_back(*relay_port);
        }
    }
    if (relaying) {
        // The operator's command ring (punchctl allocations kill), empty, as punchlined gives
        // each relaying worker: the loop's look at it is part of the engine's cost.
        dataplane.command_acks = std::make_unique<engine::CommandAck[]>(1);
        dataplane.command_rings.push_back(
            rte_ring_create_elem("pipeline_commands", sizeof(engine::RelayKill), 64, socket,
                                 RING_F_SP_ENQ | RING_F_SC_DEQ));
        if (dataplane.command_rings[0] == nullptr)
            fail_setup(std::string("command ring: ") + rte_strerror(rte_errno));
    }
    // --workload sfu: the role as punchlined's setup_sfu() makes it from the configuration
    // (sfu_workload::make_config(): punchlined's defaults but for rooms of --fanout + 1 legs
    // and legs that outlive the runs): the context, worker 0's shard, its message and command
    // rings, the copy pool; and the control thread's model of the sessions.
    sfu_workload::Layout layout;
    layout.fanout = options.fanout;
    layout.sessions = app.count("--flows") != 0
                          ? options.flows
                          : std::max(1u, 4096 / layout.legs_per_session());
    rte_mempool* copy_pool = nullptr;
    unsigned copy_pool_size = 0;
    std::shared_ptr<const engine::SfuContext> sfu_context;
    std::unique_ptr<engine::SfuMembershipBuilder> sfu_builder;
    std::shared_ptr<const engine::SfuMembership> sfu_published;
    if (sfu) {
        const engine::SfuConfig config = sfu_workload::make_config(layout);
        if (layout.legs() > config.max_legs)
            fail_setup("--flows: " + std::to_string(layout.legs()) +
                       " legs, more than sfu.max_legs (" + std::to_string(config.max_legs) +
                       "): give fewer sessions");
        dataplane.tsc_hz = rte_get_tsc_hz();
        dataplane.start_tsc = rte_rdtsc();
        dataplane.start_unix_s = static_cast<std::uint64_t>(std::time(nullptr));
        const std::optional<engine::RateLimit> limit = engine::RateLimit::make(
            config.unauthenticated_requests_per_s, config.unauthenticated_burst,
            dataplane.tsc_hz);
        if (!limit) fail_setup("sfu.unauthenticated_burst: too large for this clock");
        // Owned here, read by the worker through Dataplane::sfu_context as punchlined
        // publishes it (never replaced in the bench: no drain).
        sfu_context = std::make_shared<const engine::SfuContext>(
            config.token_secrets, engine::SfuLimits::from(config, dataplane.tsc_hz));
        dataplane.sfu_context = const_cast<engine::SfuContext*>(sfu_context.get());
        dataplane.sfu_shards.push_back(std::make_unique<engine::SfuShard>(
            config.max_legs, config.max_legs_per_session, *limit, 4096, 0, 0x5EED5F00D));
        // punchlined's ring sizes (sfu_message_ring_size, command_ring_size).
        dataplane.sfu_messages.push_back(rte_ring_create_elem(
            "pipeline_sfu_messages", sizeof(engine::SfuMessage), 1024, socket,
            RING_F_SP_ENQ | RING_F_SC_DEQ));
        dataplane.sfu_command_rings.push_back(
            rte_ring_create_elem("pipeline_sfu_commands", sizeof(engine::SfuKill), 64, socket,
                                 RING_F_SP_ENQ | RING_F_SC_DEQ));
        if (dataplane.sfu_messages[0] == nullptr || dataplane.sfu_command_rings[0] == nullptr)
            fail_setup(std::string("sfu rings: ") + rte_strerror(rte_errno));
        // As setup_sfu(): engine.mbufs of them, each with a header's room only. A frame in
        // flight holds up to 2 × (fanout - 1) until the feeder frees its copies.
        copy_pool_size = engine::EngineConfig{}.mbufs;
        if (std::uint64_t{options.inflight} * 2 * (options.fanout - 1) +
                3 * engine::sfu_copy_pool_cache / 2 >
            copy_pool_size)
            fail_setup("--inflight: " + std::to_string(options.inflight) + " frames × " +
                       std::to_string(options.fanout - 1) +
                       " copies × 2 mbufs do not fit the copy pool (engine.mbufs, " +
                       std::to_string(copy_pool_size) + "): try --inflight 512");
        copy_pool = rte_pktmbuf_pool_create("sfu_copies", copy_pool_size,
                                            engine::sfu_copy_pool_cache, 0,
                                            RTE_PKTMBUF_HEADROOM + 64, socket);
        if (copy_pool == nullptr) fail_setup(std::string("copy pool: ") + rte_strerror(rte_errno));
        dataplane.sfu_copy_pool = copy_pool;
        sfu_builder = std::make_unique<engine::SfuMembershipBuilder>(config.max_legs_per_session);
    }
    engine::Worker worker(dataplane, 0);
    const engine::CoreCounters& counters = dataplane.counters[0];

    // Every leg admitted as its participant joins: a Binding request with its token through
    // the worker's loop (handle_frame(): the token verified, the leg inserted, the ACK sent,
    // the join posted on the message ring), each answered with a success; then the joins
    // applied and the membership published as punchlined's control thread does
    // (apply_sfu_messages(): SfuMembershipBuilder::join(), build(), rcu_assign_pointer,
    // synchronize_rcu), a batch at a time.
    if (sfu) {
        // A batch the RX ring holds whatever --inflight sized it for.
        const unsigned admission_batch = std::min(256u, options.inflight);
        std::vector<sfu_workload::Token> tokens(layout.legs());
        for (unsigned first = 0; first < layout.legs(); first += admission_batch) {
            const unsigned count = std::min(admission_batch, layout.legs() - first);
            for (unsigned leg = first; leg < first + count; ++leg) {
                tokens[leg] = sfu_workload::make_token(layout, leg, dataplane.start_unix_s);
                rte_mbuf* m = rte_pktmbuf_alloc(pool);
                if (m == nullptr) fail_setup("no mbuf for an admission request");
                const std::size_t length = sfu_workload::frame_admission(
                    rte_pktmbuf_mtod(m, std::byte*), rte_pktmbuf_tailroom(m), mac, tokens[leg],
                    leg);
                rte_pktmbuf_append(m, static_cast<std::uint16_t>(length));
                if (rte_ring_sp_enqueue(feeder.rx, m) != 0)
                    fail_setup("the RX ring refused an admission request");
            }
            drain(feeder.rx, [&] { worker.poll(); });
            unsigned answered = 0;
            for (void* object = nullptr; rte_ring_sc_dequeue(feeder.tx, &object) == 0;) {
                auto* m = static_cast<rte_mbuf*>(object);
                const std::span<const std::byte> frame(rte_pktmbuf_mtod(m, const std::byte*),
                                                       rte_pktmbuf_data_len(m));
                const unsigned leg = frame.size() >= 42 + stun::header_size
                                         ? stun::load_be32(frame.data() + 42 + 8)
                                         : layout.legs();
                const std::string problem =
                    leg < layout.legs() ? sfu_workload::check_admission(frame, tokens[leg], leg)
                                        : "an answer to no admission request";
                if (!problem.empty())
                    fail_setup("admission of leg " + std::to_string(leg) + ": " + problem);
                ++answered;
                rte_pktmbuf_free(m);
            }
            if (answered != count)
                fail_setup("admission: " + std::to_string(count - answered) +
                           " requests unanswered");
            engine::SfuMessage join;
            unsigned joined = 0;
            while (rte_ring_sc_dequeue_elem(dataplane.sfu_messages[0], &join, sizeof join) == 0) {
                if (join.kind != engine::SfuMessage::Kind::join ||
                    sfu_builder->join(join) != engine::SfuMembershipBuilder::JoinResult::joined)
                    fail_setup("a join that did not make a new member: " +
                               std::string(join.participant.view()));
                ++joined;
            }
            if (joined != count)
                fail_setup("admission: " + std::to_string(joined) + " joins for " +
                           std::to_string(count) + " legs");
            std::shared_ptr<const engine::SfuMembership> next = sfu_builder->build();
            // RCU: the release store publishes a whole snapshot; synchronize_rcu() waits for
            // the readers (this thread, the worker, is none between its polls: it is not
            // registered) before the old one goes.
            rcu_assign_pointer(dataplane.sfu_membership,
                               const_cast<engine::SfuMembership*>(next.get()));
            synchronize_rcu();
            sfu_published = std::move(next);
        }
        const engine::SfuShard& shard = *dataplane.sfu_shards[0];
        if (shard.counters().outcome(engine::SfuOutcome::sfu_admitted) != layout.legs() ||
            shard.table().size() != layout.legs() ||
            sfu_published->sessions().size() != layout.sessions)
            fail_setup("admission: not every leg is a member");
        for (const engine::SfuSession& session : sfu_published->sessions())
            if (session.members.size() != layout.legs_per_session())
                fail_setup("admission: a session without all its legs");
    }
    // What the admissions counted, so that the checks below see the media alone.
    const engine::CoreCounters admission_counters = counters;

    ParseAndSwap baseline;
    baseline.port = port_id;
    baseline.burst = static_cast<std::uint16_t>(options.burst);

    std::vector<int> frame_of_leg;  // sfu: the publisher's frame in `requests`
    Requests requests =
        relaying ? generate_relay_frames(workload, options.flows, options.payload, mac, relay_ports)
        : sfu    ? generate_sfu_frames(layout, options.payload, mac, frame_of_leg)
                 : generate_requests(options.flows, port_mac);
    feeder.requests = &requests;
    feeder.fanout = sfu ? options.fanout : 0;
    {
        std::vector<rte_mbuf*> initial(options.inflight);
        if (rte_pktmbuf_alloc_bulk(pool, initial.data(), options.inflight) != 0)
            fail_setup("cannot allocate the mbufs in flight");
        for (rte_mbuf* m : initial) restore(m, requests);
        rte_ring_sp_enqueue_burst(feeder.rx, reinterpret_cast<void* const*>(initial.data()),
                                  options.inflight, nullptr);
    }

    std::printf("engine_pipeline_bench: net_ring loopback, 1 worker on lcore %u, %s, burst %u, "
                "%u flows, %u mbufs in flight, %g s per run after %g s warm-up\n",
                rte_lcore_id(),
                hugepages ? "hugepages" : "NO HUGEPAGES (--no-huge: figures 1.4-5x low)",
                options.burst, options.flows, options.inflight, options.seconds, options.warmup);
    if (relaying)
        std::printf("engine_pipeline_bench: relay workload %s, %u allocations (one per flow, "
                    "channel 0x4000 bound), %u-byte payload, %zu-byte frames in\n",
                    options.workload.c_str(), options.flows, options.payload, requests.frame_size);
    if (sfu)
        std::printf("engine_pipeline_bench: sfu workload, %u sessions of %u legs (%u legs, each "
                    "admitted with a token), %zu publishers, %u-byte RTP payload, %zu-byte "
                    "frames in, %u out for each\n",
                    layout.sessions, layout.legs_per_session(), layout.legs(),
                    requests.sources.size(), options.payload, requests.frame_size,
                    options.fanout);
    std::string port_variant;  // empty: the default port
    for (const auto& [set, name] : {std::pair{options.trust_checksum, "trust_checksum"},
                                    std::pair{options.no_alternate, "no_alternate"},
                                    std::pair{options.no_software, "no_software"}})
        if (set) port_variant += (port_variant.empty() ? "" : ",") + std::string(name);
    if (!port_variant.empty())
        std::printf("engine_pipeline_bench: NOT the default port: %s\n", port_variant.c_str());

    // --control-load: punchlined's control thread and a client hammering its socket, on a CPU
    // other than the worker's (bench/control_load.h); the worker a QSBR reader as in
    // worker_main, offline outside the engine's runs so that a publication never waits for a
    // thread that is not polling.
    std::unique_ptr<control_load::ControlPlane> plane;
    if (controlled) {
        cpu_set_t worker_cpus;
        CPU_ZERO(&worker_cpus);
        pthread_getaffinity_np(pthread_self(), sizeof worker_cpus, &worker_cpus);
        int control_cpu = options.control_cpu;
        if (control_cpu < 0) {
            for (int cpu = 0; cpu < CPU_SETSIZE && control_cpu < 0; ++cpu)
                if (CPU_ISSET(cpu, &allowed_cpus) && !CPU_ISSET(cpu, &worker_cpus))
                    control_cpu = cpu;
            if (control_cpu < 0)
                fail_setup("--control-load needs a CPU for the control thread other than the "
                           "worker's (lcore " + std::to_string(rte_lcore_id()) +
                           "), and this process may use no other: run it without taskset, "
                           "on a machine with two CPUs or more");
        } else if (!CPU_ISSET(control_cpu, &allowed_cpus) ||
                   CPU_ISSET(control_cpu, &worker_cpus)) {
            fail_setup("--control-cpu " + std::to_string(control_cpu) +
                       ": expected a CPU this process may use other than the worker's (lcore " +
                       std::to_string(rte_lcore_id()) + ")");
        }
        char device[RTE_ETH_NAME_MAX_LEN] = "pipeline";
        rte_eth_dev_get_name_by_port(port_id, device);
        try {
            plane = std::make_unique<control_load::ControlPlane>(
                dataplane, device, rte_lcore_id(), options.flows,
                static_cast<unsigned>(control_cpu), options.realtime);
        } catch (const std::exception& error) {
            fail_setup(std::string("the control plane: ") + error.what());
        }
        rcu_register_thread();
        rcu_thread_offline();
        std::printf("engine_pipeline_bench: control plane on CPU %d: management socket, "
                    "control thread and a client hammering it with \"%s\", against idle; the "
                    "worker a QSBR reader\n",
                    control_cpu, options.control_load.c_str());
    }
    std::fflush(stdout);

    if (options.realtime) {
        const sched_param priority{1};
        if (const int error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &priority);
            error != 0)
            fail_setup(std::string("--realtime: SCHED_FIFO for the worker's thread: ") +
                       std::strerror(error) +
                       " (needs root or CAP_SYS_NICE; leave out --realtime)");
        std::printf("engine_pipeline_bench: the worker's thread at SCHED_FIFO priority 1\n");
        std::fflush(stdout);
    }

    const bool run_engine = !controlled && options.mode != "baseline";
    const bool run_baseline = !controlled && options.mode != "engine";
    std::vector<double> engine_mpps, baseline_mpps;
    unsigned bad_responses = 0;
    std::string first_problem;
    std::uint64_t lost = 0;

    auto engine_step = [&] { worker.poll(); };
    auto baseline_step = [&] { baseline.poll(); };
    // After a run: everything in flight is in the TX ring; check it (engine responses) and
    // turn it back into requests for the next run.
    auto settle = [&](bool check) {
        void* packets[feed_batch];
        unsigned total = 0;
        for (;;) {
            const unsigned n = rte_ring_sc_dequeue_burst(feeder.tx, packets, feed_batch, nullptr);
            if (n == 0) break;
            for (unsigned i = 0; i < n; ++i) {
                auto* m = static_cast<rte_mbuf*>(packets[i]);
                if (check) {
                    if (std::string problem =
                            relaying ? check_relayed(m, workload, options.payload, requests,
                                                     port_mac, relay_ports)
                                     : check_response(m, requests, port_mac);
                        !problem.empty()) {
                        if (bad_responses++ == 0) first_problem = problem;
                    }
                }
                restore(m, requests);
            }
            rte_ring_sp_enqueue_burst(feeder.rx, packets, n, nullptr);
            total += n;
        }
        if (total < options.inflight) lost += options.inflight - total;
    };
    // The sfu workload's: each frame the engine received left as its copies then itself
    // (Worker::handle() buffers the frame after fan_out()'s copies): each output checked, and
    // each frame's group must reach every other leg of its publisher's session once. The
    // copies freed, the frames turned back into media frames.
    auto settle_sfu = [&](bool check) {
        std::vector<unsigned> group;  // the subscribers of the frame whose copies are coming
        unsigned group_publisher = 0;
        unsigned total = 0;
        auto note = [&](const std::string& problem) {
            if (bad_responses++ == 0) first_problem = problem;
        };
        for (;;) {
            void* packets[feed_batch * max_fanout];
            rte_mbuf* copies[feed_batch * max_fanout];
            const unsigned n =
                rte_ring_sc_dequeue_burst(feeder.tx, packets, feed_batch * max_fanout, nullptr);
            if (n == 0) break;
            unsigned frames = 0, sent_copies = 0;
            for (unsigned i = 0; i < n; ++i) {
                auto* m = static_cast<rte_mbuf*>(packets[i]);
                if (check) {
                    unsigned publisher = 0, subscriber = 0;
                    if (std::string problem =
                            check_sfu_frame(m, layout, options.payload, requests, frame_of_leg,
                                            port_mac, pool, copy_pool, publisher, subscriber);
                        !problem.empty()) {
                        note(problem);
                    } else {
                        if (!group.empty() && publisher != group_publisher)
                            note("a frame's copies carry two publishers' media");
                        group_publisher = publisher;
                        group.push_back(subscriber);
                    }
                    if (is_frame(m)) {
                        std::sort(group.begin(), group.end());
                        if (group.size() != options.fanout ||
                            std::adjacent_find(group.begin(), group.end()) != group.end())
                            note("a frame did not reach each of its " +
                                 std::to_string(options.fanout) + " subscribers once");
                        group.clear();
                    }
                }
                if (is_frame(m))
                    packets[frames++] = m;
                else
                    copies[sent_copies++] = m;
            }
            rte_pktmbuf_free_bulk(copies, sent_copies);
            for (unsigned i = 0; i < frames; ++i)
                restore(static_cast<rte_mbuf*>(packets[i]), requests);
            rte_ring_sp_enqueue_burst(feeder.rx, packets, frames, nullptr);
            total += frames;
        }
        if (!group.empty()) note("fan-out copies without their frame");
        if (total < options.inflight) lost += options.inflight - total;
    };

    // --control-load: the idle engine and the hammered one, in turns (idle first in odd runs,
    // hammered first in even ones, so that a drift of the machine's load falls on both).
    std::vector<double> idle_mpps, hammered_mpps;
    // The same, per second that the worker had its CPU (the thread's CPU time less the
    // hypervisor's steal), and that share of the wall-clock time: on this shared machine the
    // control plane's CPU work can push other processes onto the worker's CPU, which is the
    // scheduler's doing, not a cost the control plane puts on the worker's loop.
    std::vector<double> idle_on_cpu_mpps, hammered_on_cpu_mpps, idle_on_cpu, hammered_on_cpu;
    std::vector<double> requests_per_s, pages_per_s, listings_per_s, stats_per_s,
        publications_per_s, grace_periods_per_s;
    const unsigned worker_cpu = static_cast<unsigned>(sched_getcpu());
    // worker_main's loop: a quiescent state after every poll.
    auto quiescent_step = [&] {
        worker.poll();
        rcu_quiescent_state();
    };
    for (unsigned run = 0; controlled && run < options.runs; ++run) {
        for (const bool hammered : {run % 2 == 1, run % 2 == 0}) {
            struct Edge {
                control_load::Operations::Counts operations;
                std::uint64_t tsc = 0, cpu_ns = 0, steal_ns = 0;
            } first, last;
            if (hammered) plane->hammer(load, options.control_page);
            rcu_thread_online();
            const double mpps = timed_run(
                feeder, quiescent_step, [&] { return counters.tx_packets; }, options.warmup,
                options.seconds, [&](bool start) {
                    Edge& edge = start ? first : last;
                    edge.operations = plane->operations().read();
                    edge.cpu_ns = thread_cpu_ns();
                    edge.steal_ns = steal_ns(worker_cpu);
                    edge.tsc = rte_rdtsc();
                });
            // Offline before waiting for the client: its request in flight may be a
            // publication, whose synchronize_rcu() would wait for this thread.
            rcu_thread_offline();
            plane->calm();
            rcu_thread_online();
            drain(feeder.rx, quiescent_step);
            rcu_thread_offline();
            settle(true);
            (hammered ? hammered_mpps : idle_mpps).push_back(mpps);
            const double seconds = double(last.tsc - first.tsc) / double(rte_get_tsc_hz());
            const double on_cpu_seconds =
                double(last.cpu_ns - first.cpu_ns) / 1e9 -
                double(last.steal_ns - first.steal_ns) / 1e9;
            (hammered ? hammered_on_cpu : idle_on_cpu).push_back(on_cpu_seconds / seconds);
            (hammered ? hammered_on_cpu_mpps : idle_on_cpu_mpps)
                .push_back(on_cpu_seconds > 0 ? mpps * seconds / on_cpu_seconds : 0);
            if (hammered) {
                const control_load::Operations::Counts done = last.operations - first.operations;
                requests_per_s.push_back(double(done.requests) / seconds);
                pages_per_s.push_back(double(done.pages) / seconds);
                listings_per_s.push_back(double(done.listings) / seconds);
                stats_per_s.push_back(double(done.stats) / seconds);
                publications_per_s.push_back(double(done.publications) / seconds);
                grace_periods_per_s.push_back(double(done.grace_periods) / seconds);
            }
        }
        std::printf("run %u:  engine idle %7.3f Mpps (%.3f per second on CPU, %4.1f%% of the "
                    "time)  hammered %7.3f Mpps (%.3f, %4.1f%%)  %.0f control requests/s: %.0f "
                    "/allocations pages, %.1f listings of every allocation, %.1f /stats, %.0f "
                    "publications; %.0f bare grace periods/s\n",
                    run + 1, idle_mpps.back(), idle_on_cpu_mpps.back(),
                    100 * idle_on_cpu.back(), hammered_mpps.back(), hammered_on_cpu_mpps.back(),
                    100 * hammered_on_cpu.back(), requests_per_s.back(), pages_per_s.back(),
                    listings_per_s.back(), stats_per_s.back(), publications_per_s.back(),
                    grace_periods_per_s.back());
        std::fflush(stdout);
    }

    for (unsigned run = 0; !controlled && run < options.runs; ++run) {
        if (run_engine) {
            // Binding: the success responses built; relay: the frames relayed; sfu: the frames
            // sent to subscribers, copies included (every one the worker transmitted; the
            // checks below prove none was anything else).
            engine_mpps.push_back(timed_run(
                feeder, engine_step,
                [&] { return relaying || sfu ? counters.tx_packets : counters.stun_success; },
                options.warmup, options.seconds));
            drain(feeder.rx, engine_step);
            sfu ? settle_sfu(true) : settle(true);
        }
        if (run_baseline) {
            baseline_mpps.push_back(timed_run(
                feeder, baseline_step, [&] { return baseline.sent; }, options.warmup,
                options.seconds));
            drain(feeder.rx, baseline_step);
            sfu ? settle_sfu(false) : settle(false);
        }
        std::printf("run %u:", run + 1);
        if (run_engine && sfu)
            std::printf("  engine %7.3f Mpps out (%.3f in)", engine_mpps.back(),
                        engine_mpps.back() / options.fanout);
        else if (run_engine)
            std::printf("  engine %7.3f Mpps", engine_mpps.back());
        if (run_baseline) std::printf("  parse-and-swap %7.3f Mpps", baseline_mpps.back());
        std::printf("\n");
        std::fflush(stdout);
    }

    // The checks: every packet answered correctly and accounted for.
    std::vector<std::string> problems;
    if (run_engine || controlled) {
        if (!counters.conserved()) problems.emplace_back("worker counters not conserved");
        for (std::size_t r = 0; r < engine::drop_reason_count; ++r)
            if (counters.drops[r] != 0)
                problems.push_back("dropped " + std::to_string(counters.drops[r]) + " as " +
                                   std::string(engine::drop_reasons[r].name));
        if (counters.stun_error != 0)
            problems.push_back(std::to_string(counters.stun_error) + " STUN error responses");
        if (!relaying && !sfu && counters.stun_success != counters.rx_packets)
            problems.emplace_back("not every packet received was answered with a success");
        if (sfu) {
            // Every media frame received went to each of its --fanout subscribers: sent, and
            // counted by its publisher's leg; nothing filtered, unforwardable, expired.
            const std::uint64_t received = counters.rx_packets - admission_counters.rx_packets;
            const std::uint64_t sent = counters.tx_packets - admission_counters.tx_packets;
            const std::uint64_t copies =
                counters.fan_out_copies - admission_counters.fan_out_copies;
            if (sent != received * options.fanout || copies != received * (options.fanout - 1))
                problems.push_back("received " + std::to_string(received) + " media frames, sent " +
                                   std::to_string(sent) + " (" + std::to_string(copies) +
                                   " fan-out copies): not " + std::to_string(options.fanout) +
                                   " each");
            const engine::SfuShard& shard = *dataplane.sfu_shards[0];
            const engine::SfuCounters& c = shard.counters();
            if (c.forwarded_packets != sent || c.filtered != 0 || c.unforwardable != 0 ||
                c.legs_expired != 0 || c.legs_killed != 0 ||
                c.fan_outs != (options.fanout > 1 ? received : 0))
                problems.emplace_back("the SFU's counters disagree with the frames sent");
            std::uint64_t forwarded = 0;
            for (unsigned leg = 0; leg < layout.legs(); ++leg) {
                const auto key = engine::FiveTuple::make(
                    relay_workload::client(leg),
                    stun::Address::v4(sfu_workload::server_ip, sfu_workload::sfu_port));
                const std::uint32_t slot = shard.table().find(*key);
                if (slot == engine::SfuTable::no_slot) {
                    problems.push_back("leg " + std::to_string(leg) + " is gone");
                    continue;
                }
                // Its admission request, then its media.
                const engine::SfuLegCounters lc = shard.table().at(slot).counters();
                if (lc.forwarded_packets != (lc.rx_packets - 1) * options.fanout ||
                    (frame_of_leg[leg] < 0 && lc.rx_packets != 1))
                    problems.push_back("leg " + std::to_string(leg) + " received " +
                                       std::to_string(lc.rx_packets) + " and forwarded " +
                                       std::to_string(lc.forwarded_packets));
                forwarded += lc.forwarded_packets;
            }
            if (forwarded != sent)
                problems.push_back("the legs counted " + std::to_string(forwarded) +
                                   " forwarded, the worker sent " + std::to_string(sent));
        }
        if (relaying) {
            // Every frame received was relayed: transmitted, and counted by its allocation in
            // the direction of its workload.
            if (counters.tx_packets != counters.rx_packets || counters.stun_success != 0)
                problems.emplace_back("not every packet received was relayed");
            std::uint64_t relayed = 0;
            const engine::RelayTable& table = dataplane.relay_shards[0]->table();
            for (unsigned flow = 0; flow < options.flows; ++flow) {
                const std::uint32_t slot = table.find_by_relay_port(0, relay_ports[flow]);
                if (slot == engine::RelayTable::no_slot) {
                    problems.push_back("flow " + std::to_string(flow) + " lost its allocation");
                    continue;
                }
                const engine::AllocationCounters c = table.at(slot).counters();
                relayed += workload == Workload::channel_out ? c.to_peer_packets
                                                             : c.to_client_packets;
            }
            if (relayed != counters.tx_packets)
                problems.push_back("the allocations counted " + std::to_string(relayed) +
                                   " relayed, the worker transmitted " +
                                   std::to_string(counters.tx_packets));
        }
        if (bad_responses != 0)
            problems.push_back(std::to_string(bad_responses) + " wrong responses, first: " +
                               first_problem);
    }
    if (baseline.dropped != 0)
        problems.push_back("parse-and-swap dropped " + std::to_string(baseline.dropped));
    if (lost != 0) problems.push_back(std::to_string(lost) + " mbufs did not come back");
    if (copy_pool != nullptr && rte_mempool_avail_count(copy_pool) != copy_pool_size)
        problems.push_back(std::to_string(copy_pool_size - rte_mempool_avail_count(copy_pool)) +
                           " mbufs of the copy pool did not come back");
    const bool publishing =
        load == control_load::Load::reload || load == control_load::Load::both;
    const bool listing = load == control_load::Load::list || load == control_load::Load::both;
    if (controlled) {
        // A hammer that did nothing, or failed, would make "hammered" mean idle.
        if (plane->operations().failures.load() != 0)
            problems.push_back("a control request failed: " + plane->first_failure());
        const bool bare = load == control_load::Load::rcu;
        if (!bare && std::count(requests_per_s.begin(), requests_per_s.end(), 0.0) != 0)
            problems.emplace_back("a hammered run completed no control request");
        if (bare && std::count(grace_periods_per_s.begin(), grace_periods_per_s.end(), 0.0))
            problems.emplace_back("a hammered run waited for no grace period");
        if (publishing && std::count(publications_per_s.begin(), publications_per_s.end(), 0.0))
            problems.emplace_back("a hammered run published no relay context");
        if (listing && std::count(listings_per_s.begin(), listings_per_s.end(), 0.0))
            problems.emplace_back("a hammered run listed the allocations not once");
    }

    std::printf("\n%-36s %10s %10s   runs (Mpps)\n", "loop (1 core, net_ring)", "Mpps", "ns/pkt");
    const double idle_median = controlled ? median(idle_mpps) : 0;
    const double hammered_median = controlled ? median(hammered_mpps) : 0;
    const double hammered_ratio = idle_median > 0 ? hammered_median / idle_median : 0;
    const double idle_on_cpu_median = controlled ? median(idle_on_cpu_mpps) : 0;
    const double hammered_on_cpu_median = controlled ? median(hammered_on_cpu_mpps) : 0;
    const double on_cpu_ratio =
        idle_on_cpu_median > 0 ? hammered_on_cpu_median / idle_on_cpu_median : 0;
    if (controlled) {
        std::printf("%-36s %10.3f %10.2f   %s\n",
                    ("engine " + options.workload + ", control idle").c_str(), idle_median,
                    1e3 / idle_median, json_list(idle_mpps).c_str());
        std::printf("%-36s %10.3f %10.2f   %s\n",
                    ("engine " + options.workload + ", control " + options.control_load).c_str(),
                    hammered_median, 1e3 / hammered_median, json_list(hammered_mpps).c_str());
        std::printf("hammered / idle: %.3f  (%.1f%% of the throughput lost; goal < 5%%; "
                    "%.1f ns/pkt more)\n",
                    hammered_ratio, 100.0 * (1.0 - hammered_ratio),
                    1e3 / hammered_median - 1e3 / idle_median);
        std::printf("per second on the worker's CPU: idle %.3f Mpps (%.1f%% of the time on "
                    "CPU), hammered %.3f Mpps (%.1f%%): %.3f  (%.1f%% lost)\n",
                    idle_on_cpu_median, 100 * median(idle_on_cpu), hammered_on_cpu_median,
                    100 * median(hammered_on_cpu), on_cpu_ratio, 100.0 * (1.0 - on_cpu_ratio));
        std::printf("control requests answered per second while hammered (median of the runs): "
                    "%.0f: %.0f /allocations pages (%.1f listings of all %u allocations), %.1f "
                    "/stats, %.0f publications through RCU; %.0f bare grace periods\n",
                    median(requests_per_s), median(pages_per_s), median(listings_per_s),
                    options.flows, median(stats_per_s), median(publications_per_s),
                    median(grace_periods_per_s));
        std::printf("engine counters: rx %llu tx %llu dropped %llu, %s; relay contexts "
                    "published %llu\n",
                    static_cast<unsigned long long>(counters.rx_packets),
                    static_cast<unsigned long long>(counters.tx_packets),
                    static_cast<unsigned long long>(counters.dropped()),
                    counters.conserved() ? "conserved" : "NOT CONSERVED",
                    static_cast<unsigned long long>(plane->publications()));
    }
    const double engine_median = run_engine ? median(engine_mpps) : 0;
    const double baseline_median = run_baseline ? median(baseline_mpps) : 0;
    if (run_engine)
        std::printf("%-36s %10.3f %10.2f   %s\n",
                    ("engine Worker::poll, " + options.workload).c_str(), engine_median,
                    1e3 / engine_median, json_list(engine_mpps).c_str());
    if (run_baseline)
        std::printf("%-36s %10.3f %10.2f   %s\n", "parse-and-swap baseline", baseline_median,
                    1e3 / baseline_median, json_list(baseline_mpps).c_str());
    const bool both = run_engine && run_baseline;
    const double ratio = both && baseline_median > 0 ? engine_median / baseline_median : 0;
    if (both && !sfu)
        std::printf("engine / parse-and-swap: %.3f  (goal >= 0.5; engine costs %.1f ns/pkt more)\n",
                    ratio, 1e3 / engine_median - 1e3 / baseline_median);
    // Issue 7's goals: 1:1 forwarding at half the parse-and-swap loop's rate or more; a
    // fan-out of 20 M frames a second or more out of one core.
    if (both && sfu && options.fanout == 1)
        std::printf("engine / parse-and-swap: %.3f  (goal >= 0.5: %s; engine costs %.1f ns/pkt "
                    "more)\n",
                    ratio, ratio >= 0.5 ? "met" : "MISSED",
                    1e3 / engine_median - 1e3 / baseline_median);
    if (run_engine && sfu && options.fanout > 1)
        std::printf("output: %.3f Mpps, %.3f Mpps in  (goal >= 20 Mpps out: %s); "
                    "engine out / parse-and-swap: %.3f, %.1f ns per frame out\n",
                    engine_median, engine_median / options.fanout,
                    engine_median >= 20 ? "met" : "MISSED", ratio, 1e3 / engine_median);
    if (run_engine)
        std::printf("engine counters: rx %llu tx %llu dropped %llu stun ok %llu err %llu, %s\n",
                    static_cast<unsigned long long>(counters.rx_packets),
                    static_cast<unsigned long long>(counters.tx_packets),
                    static_cast<unsigned long long>(counters.dropped()),
                    static_cast<unsigned long long>(counters.stun_success),
                    static_cast<unsigned long long>(counters.stun_error),
                    counters.conserved() ? "conserved" : "NOT CONSERVED");

    if (run_baseline)
        std::printf("parse-and-swap: sent %llu, dropped %llu\n",
                    static_cast<unsigned long long>(baseline.sent),
                    static_cast<unsigned long long>(baseline.dropped));

    if (!problems.empty()) {
        for (const auto& p : problems)
            std::fprintf(stderr, "engine_pipeline_bench: FAIL: %s\n", p.c_str());
    } else {
        if (relaying)
            std::printf("checks: every frame relayed, addressed as RFC 8656 says, checksums "
                        "right, payload intact; allocation counters agree; counters conserved, "
                        "nothing dropped\n");
        else if (sfu)
            std::printf("checks: every leg admitted with a success; every frame sent to each "
                        "other leg of its session once, addressed as docs/sfu.md says, "
                        "checksums right over the chain, payload intact and shared, not "
                        "copied; leg and SFU counters agree; copies all freed; counters "
                        "conserved, nothing dropped\n");
        else
            std::printf("checks: every response parsed, verified and mapped to its request's "
                        "source; counters conserved, nothing dropped\n");
        const char* huge = hugepages ? "true" : "false";
        // Figure names: binding keeps the names it had; a relay workload's carry its name,
        // and so does its same-run baseline (scripts/bench runs each workload in a process
        // of its own).
        std::string suffix;
        for (const char c : options.workload) suffix += c == '-' ? '_' : c;
        // sfu: engine_sfu_1to1_mpps, engine_sfu_fanout_<N>_output_mpps (frames sent,
        // copies included), beside parse_and_swap_sfu_1to1_mpps or _fanout_<N>_mpps.
        const std::string sfu_shape =
            options.fanout == 1 ? "1to1" : "fanout_" + std::to_string(options.fanout);
        const std::string engine_name =
            relaying ? "engine_relay_" + suffix + "_mpps"
            : sfu    ? "engine_sfu_" + sfu_shape + (options.fanout == 1 ? "_mpps" : "_output_mpps")
                     : "engine_pipeline_binding_mpps";
        const std::string baseline_name = relaying ? "parse_and_swap_" + suffix + "_mpps"
                                           : sfu ? "parse_and_swap_sfu_" + sfu_shape + "_mpps"
                                                 : "parse_and_swap_mpps";
        if (controlled) {
            // engine_relay_<workload>_control_idle_mpps, and _control_<load>_mpps with the
            // idle one as its baseline; the control requests per second beside them.
            const std::string idle_name = "engine_relay_" + suffix + "_control_idle_mpps";
            const std::string hammered_name =
                "engine_relay_" + suffix + "_control_" + options.control_load + "_mpps";
            std::printf("RESULT {\"name\":\"%s\",\"value\":%.3f,\"unit\":\"Mpps\","
                        "\"on_cpu_mpps\":%.3f,\"on_cpu_share\":%.3f,\"payload_bytes\":%u,"
                        "\"allocations\":%u,\"runs\":%s,\"hugepages\":%s}\n",
                        idle_name.c_str(), idle_median, idle_on_cpu_median,
                        median(idle_on_cpu), options.payload, options.flows,
                        json_list(idle_mpps).c_str(), huge);
            std::printf("RESULT {\"name\":\"%s\",\"value\":%.3f,\"unit\":\"Mpps\","
                        "\"baseline\":\"%s\",\"ratio\":%.3f,\"on_cpu_mpps\":%.3f,"
                        "\"on_cpu_share\":%.3f,\"on_cpu_ratio\":%.3f,\"control_load\":\"%s\","
                        "\"control_requests_per_s\":%.1f,\"control_per_s\":{"
                        "\"allocations_pages\":%.1f,\"listings\":%.2f,\"stats\":%.2f,"
                        "\"publications\":%.1f,\"grace_periods\":%.1f},\"payload_bytes\":%u,"
                        "\"allocations\":%u,"
                        "\"runs\":%s,\"hugepages\":%s}\n",
                        hammered_name.c_str(), hammered_median, idle_name.c_str(),
                        hammered_ratio, hammered_on_cpu_median, median(hammered_on_cpu),
                        on_cpu_ratio, options.control_load.c_str(), median(requests_per_s),
                        median(pages_per_s), median(listings_per_s), median(stats_per_s),
                        median(publications_per_s), median(grace_periods_per_s), options.payload,
                        options.flows,
                        json_list(hammered_mpps).c_str(), huge);
            // What the hammer did, per second of the hammered runs: requests answered on the
            // socket, or (rcu) grace periods waited for.
            const bool bare = load == control_load::Load::rcu;
            const std::vector<double>& done = bare ? grace_periods_per_s : requests_per_s;
            std::printf("RESULT {\"name\":\"control_%s_%s_per_s_%s\",\"value\":%.1f,"
                        "\"unit\":\"%s\",\"runs\":%s}\n",
                        options.control_load.c_str(), bare ? "grace_periods" : "requests",
                        suffix.c_str(), median(done), bare ? "1/s" : "req/s",
                        json_list(done).c_str());
        }
        if (run_engine) {
            std::printf("RESULT {\"name\":\"%s\",\"value\":%.3f,\"unit\":\"Mpps\",",
                        engine_name.c_str(), engine_median);
            if (both)
                std::printf("\"baseline\":\"%s\",\"ratio\":%.3f,", baseline_name.c_str(),
                            ratio);
            if (relaying)
                std::printf("\"payload_bytes\":%u,\"allocations\":%u,", options.payload,
                            options.flows);
            if (sfu) {
                std::printf("\"input_mpps\":%.3f,\"fanout\":%u,\"payload_bytes\":%u,"
                            "\"sessions\":%u,\"legs\":%u,",
                            engine_median / options.fanout, options.fanout, options.payload,
                            layout.sessions, layout.legs());
                // Issue 7's goal, where this run can judge it (1:1's needs the baseline).
                if (options.fanout > 1)
                    std::printf("\"goal\":\"value >= 20\",\"met\":%s,",
                                engine_median >= 20 ? "true" : "false");
                else if (both)
                    std::printf("\"goal\":\"ratio >= 0.5\",\"met\":%s,",
                                ratio >= 0.5 ? "true" : "false");
            }
            if (!port_variant.empty()) std::printf("\"port\":\"%s\",", port_variant.c_str());
            std::printf("\"compare\":[\"testpmd_macswap_null_mpps\"],\"runs\":%s,"
                        "\"hugepages\":%s}\n",
                        json_list(engine_mpps).c_str(), huge);
        }
        if (run_baseline)
            std::printf("RESULT {\"name\":\"%s\",\"value\":%.3f,\"unit\":"
                        "\"Mpps\",\"runs\":%s,\"hugepages\":%s}\n",
                        baseline_name.c_str(), baseline_median, json_list(baseline_mpps).c_str(),
                        huge);
    }
    std::fflush(stdout);

    if (controlled) {
        plane.reset();  // the worker polls no more: the last published context can go
        rcu_unregister_thread();
    }
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
    rte_ring_free(feeder.rx);
    rte_ring_free(feeder.tx);
    for (rte_ring* ring : dataplane.command_rings) rte_ring_free(ring);
    for (rte_ring* ring : dataplane.sfu_messages) rte_ring_free(ring);
    for (rte_ring* ring : dataplane.sfu_command_rings) rte_ring_free(ring);
    // The mbufs still in flight belonged to the rings; the pools go with them.
    rte_mempool_free(copy_pool);
    rte_mempool_free(pool);
    rte_eal_cleanup();
    return problems.empty() ? 0 : 1;
}
