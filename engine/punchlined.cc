// punchlined: the DPDK poll-mode engine (design.md §3).
//
//   punchlined --config FILE          run until SIGINT/SIGTERM; SIGUSR1 prints the counters,
//                                     SIGHUP re-reads FILE (as punchctl reload)
//   punchlined --config FILE --check  validate the configuration and exit
//
// Threads: the main lcore is the control thread (signals, counters report, the neighbour cache
// and its RCU publications, the management socket of control/server.h, the relay's live
// changes and reload, published through RCU too, the Prometheus endpoint of
// control/metrics_server.h, the log of control/log.h). Each worker lcore owns one RX and one TX
// queue on every port, its counters, a handoff ring from every other worker, a ring to the
// control thread and, with the relay, a command ring from it (the operator's kills, which the
// worker carries out on its own table). A worker never locks, allocates, logs or makes a
// syscall in its loop.
//
// The control loop waits in poll() on a signalfd and the epoll sets of the management socket
// and the metrics endpoint, and ticks every 50 ms: it takes the neighbour replies the workers
// handed over, advances each port's NeighbourTable, gives the probes to worker 0 to send,
// republishes a port's PortContext when its neighbours changed, and samples the counters for
// punchctl's rates.
// The sockets' clients are served between ticks, never blocking; the metrics endpoint's are
// dropped at their deadline on a tick. Events go to the log (stderr or syslog, [log]); the
// counters reports (SIGUSR1, exit) go to stdout, which scripts parse.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <urcu-qsbr.h>  // rcu_assign_pointer

#include <CLI/CLI.hpp>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "control/engine_commands.h"
#include "control/log.h"
#include "control/metrics_server.h"
#include "control/node_agent.h"
#include "control/node_config.h"
#include "control/node_frames.h"
#include "control/registry.h"
#include "control/relay_commands.h"
#include "control/sfu_commands.h"
#include "control/server.h"
#include "engine/config.h"
#include "engine/flow_steering.h"
#include "engine/counters.h"
#include "engine/neighbour.h"
#include "engine/port_context.h"
#include "engine/relay_setup.h"
#include "engine/sfu_role.h"
#include "engine/sfu_table.h"
#include "engine/worker.h"
#include "stun/address.h"
#include "stun/crypto.h"

namespace {

using engine::CoreCounters;

constexpr std::uint16_t queue_descriptors = 1024;
constexpr unsigned handoff_ring_size = 4096;
// Neighbour replies and probes: a few a second per port; the rings only need to absorb a burst
// of gratuitous ARP.
constexpr unsigned control_ring_size = 512;
// The control loop's period: the granularity of the neighbour timers (config.h).
constexpr long control_tick_ms = 50;
// The operator's orders to a worker's relay (punchctl allocations kill): one at a time per
// worker from a control thread that waits for each, so a few slots are plenty.
constexpr unsigned command_ring_size = 64;
// How long the control thread waits for the workers to acknowledge a kill, and its pause
// between two looks: a worker takes an order within one loop iteration (microseconds), a
// user's kill walks 64 slots an iteration (a 100k-allocation table in some 10 ms). Past the
// wait the reply names the workers still at it, and the management socket moves on.
constexpr std::uint64_t kill_wait_ms = 250;
// The SFU's join and leave messages: a worker's outbox holds 1024 (SfuShard); the ring as
// many again, for the ticks between two control loops.
constexpr unsigned sfu_message_ring_size = 1024;
constexpr long kill_pause_us = 50;

struct Engine {
    engine::EngineConfig config;
    std::vector<std::string> devices;  // parallel to dataplane.ports
    std::vector<unsigned> worker_lcores;
    engine::Dataplane dataplane;
    // One per port, parallel to dataplane.ports; the control thread's alone.
    std::vector<std::unique_ptr<engine::NeighbourTable>> neighbours;
    rte_mempool* pool = nullptr;
    // What the control thread could not do with neighbour frames (for the report).
    std::uint64_t neighbour_frames_invalid = 0;
    std::uint64_t probes_unsent = 0;  // no mbuf, or the ring to worker 0 was full
    // The relay's nonce keys (random at start); its contexts live in the PortContexts.
    engine::NonceKeys nonce_keys;
    // The SFU role: the control thread's model of the sessions, the membership the workers
    // read (Dataplane::sfu_membership points at it), and the mbufs of fan-out copies.
    std::unique_ptr<engine::SfuMembershipBuilder> sfu_builder;
    std::shared_ptr<const engine::SfuMembership> sfu_published;
    // The SFU context the workers read (Dataplane::sfu_context points at it): a new one for
    // each drain and undrain (publish_sfu_context()).
    std::shared_ptr<const engine::SfuContext> sfu_context;
    rte_mempool* sfu_copy_pool = nullptr;
    std::uint64_t sfu_kills_unsent = 0;  // a race's loser the command ring could not take
    // The engine as an SFU node of punchcoord ([node], docs/sfu.md "Wiring into punchlined"):
    // the agent, its datagrams' way out (frames on from_control), the SFU address it speaks
    // from, and the clock it runs on. Absent without [node].
    std::unique_ptr<control::NodeAgent> node;
    // The agent waits to be made until the port resolves its next hop to the STUN server:
    // discovery's first answer would otherwise be lost to an unresolved gateway, and the next
    // try is node.discovery_retry_ms away.
    std::optional<control::NodeAgentConfig> node_pending;
    std::uint64_t node_pending_since_ms = 0;
    std::unique_ptr<control::FrameSender> node_sender;
    stun::Address sfu_address;
    punch::SteadyClock node_clock;
    std::function<std::uint32_t()> node_load;
    std::uint64_t node_frames_unsent = 0;  // no mbuf, or the ring to worker 0 was full
};

std::uint64_t monotonic_ms() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000 +
           static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
}

std::string mac_text(const engine::MacAddress& mac) {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x",
                  std::to_integer<unsigned>(mac[0]), std::to_integer<unsigned>(mac[1]),
                  std::to_integer<unsigned>(mac[2]), std::to_integer<unsigned>(mac[3]),
                  std::to_integer<unsigned>(mac[4]), std::to_integer<unsigned>(mac[5]));
    return text;
}

std::string ip_text(const stun::Address& address) {
    std::array<char, 48> text{};
    const std::size_t n = address.format(text);
    std::string out(text.data(), n);
    // format() writes "ip:port" or "[ip]:port": keep the address alone.
    out.erase(out.rfind(':'));
    if (!out.empty() && out.front() == '[') out = out.substr(1, out.size() - 2);
    return out;
}

// printf's formatting into a string, for the log.
__attribute__((format(printf, 1, 2))) std::string text(const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    char buffer[512];
    const int n = std::vsnprintf(buffer, sizeof buffer, format, arguments);
    va_end(arguments);
    if (n < 0) return {};
    return {buffer, std::min(static_cast<std::size_t>(n), sizeof buffer - 1)};
}

[[noreturn]] void fail(const std::string& message) {
    control::log_error(message);
    std::exit(1);
}

void setup_port(Engine& e, const std::string& device, engine::DataplanePort& port,
                rte_mempool* pool) {
    if (rte_eth_dev_get_port_by_name(device.c_str(), &port.id) != 0)
        fail("port.device \"" + device +
             "\": no such DPDK port (name it in eal.args, e.g. --vdev=" + device +
             ",iface=..., or give a PCI address bound to a DPDK driver)");
    // One RX and one TX queue per worker; the control thread sends through worker 0's
    // (Dataplane::from_control says why it has none of its own).
    const auto queues = static_cast<std::uint16_t>(e.worker_lcores.size());
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port.id, &info) != 0) fail("cannot query " + device);
    if (queues > info.max_rx_queues || queues > info.max_tx_queues)
        fail("port " + device + " has " + std::to_string(info.max_rx_queues) +
             " RX queues; engine.workers asks for " + std::to_string(queues));
    rte_eth_conf conf{};
    // Where the device checks UDP checksums itself, the mbuf says so and the handlers do not
    // check again (Frame::l4_checksum); a port without the offload leaves it to them.
    const bool checksum_offload = (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0;
    if (checksum_offload) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
    // The SFU's fan-out copies are a header mbuf chained to a clone of the payload: a port that
    // cannot send chained mbufs gets the frame's own copy only (the others dropped as
    // fan_out_no_buffer: no copy pool).
    if (e.config.sfu.enabled()) {
        if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0) {
            conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
        } else {
            e.dataplane.sfu_copy_pool = nullptr;
            control::log_warn(text("port %s cannot send chained mbufs: SFU fan-out sends one "
                                   "copy per datagram",
                                   device.c_str()));
        }
    }
    if (int rc = rte_eth_dev_configure(port.id, queues, queues, &conf); rc != 0)
        fail("rte_eth_dev_configure(" + device + "): " + rte_strerror(-rc));
    std::uint16_t rx_descriptors = queue_descriptors;
    std::uint16_t tx_descriptors = queue_descriptors;
    rte_eth_dev_adjust_nb_rx_tx_desc(port.id, &rx_descriptors, &tx_descriptors);
    const int socket = rte_eth_dev_socket_id(port.id);
    const unsigned socket_id = socket < 0 ? 0 : static_cast<unsigned>(socket);
    for (std::uint16_t q = 0; q < queues; ++q) {
        if (int rc = rte_eth_rx_queue_setup(port.id, q, rx_descriptors, socket_id, nullptr, pool);
            rc != 0)
            fail("RX queue setup on " + device + ": " + rte_strerror(-rc));
        if (int rc = rte_eth_tx_queue_setup(port.id, q, tx_descriptors, socket_id, nullptr);
            rc != 0)
            fail("TX queue setup on " + device + ": " + rte_strerror(-rc));
    }
    if (int rc = rte_eth_dev_start(port.id); rc != 0)
        fail("rte_eth_dev_start(" + device + "): " + rte_strerror(-rc));
    // Neighbour solicitations go to solicited-node multicast groups.
    rte_eth_allmulticast_enable(port.id);
    // design.md §3: the NIC steers by rule where it can; otherwise the workers do.
    engine::SteeringResult steering;
    if (e.config.steering == engine::Steering::automatic) {
        steering = engine::install_steering_rules(port.id, queues);
    } else {
        steering.reason = "engine.steering = \"software\"";
    }
    port.steer_in_software = steering.mode == engine::SteeringMode::software;
    control::log_info(text("port %s steering: %s (%s); RX UDP checksum offload %s",
                           device.c_str(), port.steer_in_software ? "software" : "rules",
                           steering.reason.c_str(), checksum_offload ? "on" : "off"));
    rte_ether_addr mac{};
    rte_eth_macaddr_get(port.id, &mac);
    engine::MacAddress port_mac;
    std::memcpy(port_mac.data(), mac.addr_bytes, 6);
    std::uint16_t mtu = 1500;
    rte_eth_dev_get_mtu(port.id, &mtu);
    for (const auto& pc : e.config.ports) {
        if (pc.device != device) continue;
        auto* context = new engine::PortContext(
            engine::PortContext::from_config(e.config, pc, port_mac));
        context->mtu = mtu;
        if (e.config.relay.enabled) {
            try {
                context->relay = engine::make_relay_context(e.config.relay, pc, e.nonce_keys,
                                                            e.dataplane.tsc_hz);
            } catch (const std::exception& error) {
                fail(error.what());
            }
        }
        auto table = std::make_unique<engine::NeighbourTable>(e.config.neighbour, pc, port_mac,
                                                              monotonic_ms());
        context->neighbours = table->snapshot();
        table->take_changed();  // this snapshot is the one published
        e.neighbours.push_back(std::move(table));
        rcu_assign_pointer(port.context, context);
    }
    control::log_info(text("port %s (id %u) %02x:%02x:%02x:%02x:%02x:%02x, %u queue(s)",
                           device.c_str(), port.id, mac.addr_bytes[0], mac.addr_bytes[1],
                           mac.addr_bytes[2], mac.addr_bytes[3], mac.addr_bytes[4],
                           mac.addr_bytes[5], queues));
}

// The relay role (engine/relay_setup.h): nonce keys and table seeds from the system's random
// source, the TSC as the relay's clock (the workers read no time of day), one shard per
// worker with its share of the relay ports. The PortContexts get their RelayContext in
// setup_port().
void setup_relay(Engine& e, unsigned workers) {
    // One shard per worker holds the allocations of one port's relay address.
    if (e.config.ports.size() != 1)
        fail("relay.enabled = true with " + std::to_string(e.config.ports.size()) +
             " [[port]] tables: the relay runs on one port; keep one, or set "
             "relay.enabled = false");
    auto random64 = [] {
        std::uint64_t value = 0;
        if (!stun::random_bytes({reinterpret_cast<std::byte*>(&value), sizeof value}))
            fail("relay: the system's random source failed");
        return value;
    };
    e.nonce_keys.current.id = 1;
    if (!stun::random_bytes(e.nonce_keys.current.secret))
        fail("relay: the system's random source failed");
    e.dataplane.tsc_hz = rte_get_tsc_hz();
    e.dataplane.start_tsc = rte_rdtsc();
    e.dataplane.start_unix_s = static_cast<std::uint64_t>(std::time(nullptr));
    e.dataplane.relay_ports = engine::relay_port_partition(e.config.relay, workers);
    try {
        const engine::RateLimit limit =
            engine::unauthenticated_limit(e.config.relay, e.dataplane.tsc_hz);
        for (unsigned w = 0; w < workers; ++w) {
            const std::uint64_t seed = random64();
            e.dataplane.relay_shards.push_back(std::make_unique<engine::RelayShard>(
                engine::relay_table_limits(e.config.relay, w, workers, e.dataplane.tsc_hz, seed),
                limit, 4096,
                seed));
        }
    } catch (const std::exception& error) {
        fail(std::string("relay: ") + error.what());
    }
    control::log_info(
        text("relay on: ports %u-%u, %u per worker, realm \"%s\"", e.config.relay.port_first,
             e.config.relay.port_first + e.dataplane.relay_ports.per_worker * workers - 1,
             e.dataplane.relay_ports.per_worker, e.config.relay.realm.c_str()));
}

// `final`: the workers have stopped, so the counters are at rest and the conservation law
// must hold exactly. A live report (SIGUSR1) can catch a worker between two increments.
void print_counters(const Engine& e, bool final) {
    CoreCounters total;
    auto line = [final](const char* name, const CoreCounters& c) {
        std::printf("%-7s rx %llu pkts %llu B | tx %llu pkts %llu B | handed off %llu | "
                    "dropped %llu | stun ok %llu err %llu | busy cycles %llu = rx %llu + tx %llu "
                    "+ handling %llu, stalled %llu in %llu iterations | %s\n",
                    name, static_cast<unsigned long long>(c.rx_packets),
                    static_cast<unsigned long long>(c.rx_bytes),
                    static_cast<unsigned long long>(c.tx_packets),
                    static_cast<unsigned long long>(c.tx_bytes),
                    static_cast<unsigned long long>(c.handed_off),
                    static_cast<unsigned long long>(c.dropped()),
                    static_cast<unsigned long long>(c.stun_success),
                    static_cast<unsigned long long>(c.stun_error),
                    static_cast<unsigned long long>(c.busy_cycles),
                    static_cast<unsigned long long>(c.busy_rx_cycles),
                    static_cast<unsigned long long>(c.busy_tx_cycles),
                    static_cast<unsigned long long>(c.handling_cycles()),
                    static_cast<unsigned long long>(c.stalled_cycles),
                    static_cast<unsigned long long>(c.stalled_iterations),
                    !final ? "live" : c.conserved() ? "conserved" : "NOT CONSERVED");
    };
    for (std::size_t w = 0; w < e.worker_lcores.size(); ++w) {
        const CoreCounters& c = e.dataplane.counters[w];
        char name[16];
        std::snprintf(name, sizeof name, "lcore%u", e.worker_lcores[w]);
        line(name, c);
        total.add(c);
    }
    line("total", total);
    std::printf("tsc_hz %llu\n", static_cast<unsigned long long>(rte_get_tsc_hz()));
    // The relay's allocations, listed as the control thread may while workers run, and what
    // each worker relayed since start-up.
    engine::RelayCounters relay_total;
    for (std::size_t w = 0; w < e.dataplane.relay_shards.size(); ++w) {
        const engine::RelayShard& shard = *e.dataplane.relay_shards[w];
        const auto summary = shard.table().list([](const engine::AllocationSnapshot&) {});
        const engine::RelayCounters& c = shard.counters();
        // Of "handed off", the datagrams relayed to another worker's relayed address.
        std::printf("relay lcore%u: %zu allocations (%zu skipped) | relayed %llu to peers, "
                    "%llu to clients (%llu B, %llu B) | %llu hairpinned to other workers | "
                    "%llu killed by the operator\n",
                    e.worker_lcores[w], summary.listed, summary.skipped,
                    static_cast<unsigned long long>(c.to_peer_packets),
                    static_cast<unsigned long long>(c.to_client_packets),
                    static_cast<unsigned long long>(c.to_peer_bytes),
                    static_cast<unsigned long long>(c.to_client_bytes),
                    static_cast<unsigned long long>(e.dataplane.counters[w].hairpinned),
                    static_cast<unsigned long long>(c.killed));
        relay_total.add(c);
    }
    // What the TURN messages got (all workers): "  turn NAME COUNT  (CODE: help)", and the
    // refused authentications by verdict.
    for (std::size_t o = 0; o < engine::turn_outcome_count; ++o)
        if (relay_total.outcomes[o] != 0)
            std::printf("  turn %-30s %llu  (%u: %s)\n",
                        std::string(engine::turn_outcomes[o].name).c_str(),
                        static_cast<unsigned long long>(relay_total.outcomes[o]),
                        unsigned{engine::turn_outcome_codes[o]},
                        std::string(engine::turn_outcomes[o].help).c_str());
    for (std::size_t a = 0; a < engine::auth_verdict_count; ++a)
        if (relay_total.auth_failures[a] != 0)
            std::printf("  turn auth %-25s %llu  (%u: %s)\n",
                        std::string(engine::auth_verdicts[a].name).c_str(),
                        static_cast<unsigned long long>(relay_total.auth_failures[a]),
                        unsigned{engine::error_code(static_cast<engine::AuthVerdict>(a))},
                        std::string(engine::auth_verdicts[a].help).c_str());
    // The SFU's legs (listed as the control thread may while workers run), forwarding and
    // admissions: "  sfu NAME COUNT  (CODE: help)".
    engine::SfuCounters sfu_total;
    for (std::size_t w = 0; w < e.dataplane.sfu_shards.size(); ++w) {
        const engine::SfuShard& shard = *e.dataplane.sfu_shards[w];
        const auto summary = shard.table().list([](const engine::SfuLegSnapshot&) {});
        const engine::SfuCounters& c = shard.counters();
        std::printf("sfu lcore%u: %zu legs (%zu skipped) | forwarded %llu (%llu B), %llu "
                    "fan-outs, %llu filtered | %llu expired, %llu killed\n",
                    e.worker_lcores[w], summary.listed, summary.skipped,
                    static_cast<unsigned long long>(c.forwarded_packets),
                    static_cast<unsigned long long>(c.forwarded_bytes),
                    static_cast<unsigned long long>(c.fan_outs),
                    static_cast<unsigned long long>(c.filtered),
                    static_cast<unsigned long long>(c.legs_expired),
                    static_cast<unsigned long long>(c.legs_killed));
        sfu_total.add(c);
    }
    // The sessions as the membership has them: how many, the largest, the drain (one line:
    // per-session figures are punchctl sfu sessions', not a report's).
    if (e.sfu_builder) {
        std::size_t largest = 0;
        for (const auto& [id, session] : e.sfu_builder->sessions())
            largest = std::max(largest, session.members.size());
        std::printf("sfu sessions: %zu, the largest with %zu leg(s)%s\n",
                    e.sfu_builder->sessions().size(), largest,
                    e.sfu_context && e.sfu_context->draining() ? " | draining" : "");
    }
    for (std::size_t o = 0; o < engine::sfu_outcome_count; ++o)
        if (sfu_total.outcomes[o] != 0)
            std::printf("  sfu %-30s %llu  (%u: %s)\n",
                        std::string(engine::sfu_outcomes[o].name).c_str(),
                        static_cast<unsigned long long>(sfu_total.outcomes[o]),
                        unsigned{engine::sfu_outcome_codes[o]},
                        std::string(engine::sfu_outcomes[o].help).c_str());
    // Of "handed off", what went to the control thread; and the probes it sent (never
    // received: outside the conservation law).
    std::printf("control: %llu frames handed to it | %llu sent for it, %llu refused by TX\n",
                static_cast<unsigned long long>(total.to_control),
                static_cast<unsigned long long>(total.control_sent),
                static_cast<unsigned long long>(total.control_refused));
    for (std::size_t r = 0; r < engine::drop_reason_count; ++r)
        if (total.drops[r] != 0)
            std::printf("  drop %-24s %llu  (%s)\n",
                        std::string(engine::drop_reasons[r].name).c_str(),
                        static_cast<unsigned long long>(total.drops[r]),
                        std::string(engine::drop_reasons[r].help).c_str());
    std::fflush(stdout);
}

// One line per entry, then one per port with the table's own counters:
//   neighbour port net_tap0 198.18.0.1 lladdr 02:00:00:00:00:01 REACHABLE gateway
//   neighbour port net_tap0 2001:db8::1 FAILED gateway
//   neighbour port net_tap0: 2 entries, 0 refused (table full), 0 unsolicited replies ignored
void print_neighbours(const Engine& e) {
    for (std::size_t p = 0; p < e.neighbours.size(); ++p) {
        const engine::NeighbourTable& table = *e.neighbours[p];
        for (const engine::NeighbourEntry& entry : table.entries())
            std::printf("neighbour port %s %s%s%s %s%s\n", e.devices[p].c_str(),
                        ip_text(entry.ip).c_str(), entry.usable() ? " lladdr " : "",
                        entry.usable() ? mac_text(entry.mac).c_str() : "",
                        std::string(engine::to_string(entry.state)).c_str(),
                        entry.gateway ? " gateway" : "");
        std::printf("neighbour port %s: %zu entries, %llu refused (table full), %llu unsolicited "
                    "replies ignored\n",
                    e.devices[p].c_str(), table.entries().size(),
                    static_cast<unsigned long long>(table.refused()),
                    static_cast<unsigned long long>(table.ignored_replies()));
    }
    std::printf("neighbour frames: %llu invalid, %llu probes unsent\n",
                static_cast<unsigned long long>(e.neighbour_frames_invalid),
                static_cast<unsigned long long>(e.probes_unsent));
    std::fflush(stdout);
}

// Republishes port `p`'s context with the table's current snapshot. RCU: the workers read
// ports[p].context with rcu_dereference inside a loop iteration; rcu_assign_pointer (a release
// store) makes the new context whole before any worker can see it, and synchronize_rcu()
// returns once every registered worker has passed a quiescent state, after which none holds the
// old one. The control thread is not a QSBR reader (never registered), so it may wait here.
void publish_neighbours(Engine& e, std::size_t p) {
    engine::DataplanePort& port = e.dataplane.ports[p];
    engine::PortContext* old = port.context;
    auto* next = new engine::PortContext(*old);
    next->neighbours = e.neighbours[p]->snapshot();
    rcu_assign_pointer(port.context, next);
    synchronize_rcu();
    delete old;
}

// A live change of the relay's settings (control/relay_commands.h): a new RelayContext for
// every relaying port, all built before any is published (a context that cannot be built throws
// and leaves the engine as it was), each in a copy of its port's PortContext published as
// publish_neighbours() publishes (rcu_assign_pointer's release store orders the new context's
// contents before the pointer; each worker reads it with rcu_dereference once per port per
// loop iteration), one synchronize_rcu() for them all, then the old copies freed (and with the
// last of them the old RelayContext). The nonce keys are the engine's own, so a nonce issued
// before the change verifies after it. The workers never wait for any of this.
void publish_relay(Engine& e, const engine::RelayConfig& relay, bool draining) {
    std::vector<std::shared_ptr<const engine::RelayContext>> contexts;
    for (std::size_t p = 0; p < e.dataplane.ports.size(); ++p)
        contexts.push_back(e.dataplane.ports[p].context->relay == nullptr
                               ? nullptr
                               : engine::make_relay_context(relay, e.config.ports[p],
                                                            e.nonce_keys, e.dataplane.tsc_hz,
                                                            draining));
    std::vector<engine::PortContext*> old;
    for (std::size_t p = 0; p < e.dataplane.ports.size(); ++p) {
        if (contexts[p] == nullptr) continue;
        engine::DataplanePort& port = e.dataplane.ports[p];
        old.push_back(port.context);
        auto* next = new engine::PortContext(*port.context);
        next->relay = std::move(contexts[p]);
        rcu_assign_pointer(port.context, next);
    }
    synchronize_rcu();
    for (engine::PortContext* context : old) delete context;
}

// Frees every mbuf left in `ring` (shutdown, or a frame for a port the engine does not have).
void drain(rte_ring* ring) {
    void* object = nullptr;
    while (ring != nullptr && rte_ring_dequeue(ring, &object) == 0)
        rte_pktmbuf_free(static_cast<rte_mbuf*>(object));
}

// The SFU role (engine/sfu_role.h, docs/sfu.md): one shard per worker, the TSC as its clock
// (as the relay's), the rings between the workers and the control thread, the copy pool. No
// membership is published until the first join.
void setup_sfu(Engine& e, unsigned workers) {
    const engine::SfuConfig& config = e.config.sfu;
    if (e.dataplane.start_tsc == 0) {
        e.dataplane.tsc_hz = rte_get_tsc_hz();
        e.dataplane.start_tsc = rte_rdtsc();
        e.dataplane.start_unix_s = static_cast<std::uint64_t>(std::time(nullptr));
    }
    const std::optional<engine::RateLimit> limit = engine::RateLimit::make(
        config.unauthenticated_requests_per_s, config.unauthenticated_burst, e.dataplane.tsc_hz);
    if (!limit)
        fail("sfu.unauthenticated_burst: too large for this clock (" +
             std::to_string(e.dataplane.tsc_hz) + " ticks a second)");
    try {
        // No worker runs yet: a plain store, no RCU to wait for.
        e.sfu_context = std::make_shared<const engine::SfuContext>(
            config.token_secrets, engine::SfuLimits::from(config, e.dataplane.tsc_hz));
        e.dataplane.sfu_context = const_cast<engine::SfuContext*>(e.sfu_context.get());
        for (unsigned w = 0; w < workers; ++w) {
            std::uint64_t seed = 0;
            if (!stun::random_bytes({reinterpret_cast<std::byte*>(&seed), sizeof seed}))
                fail("sfu: the system's random source failed");
            e.dataplane.sfu_shards.push_back(std::make_unique<engine::SfuShard>(
                config.max_legs, config.max_legs_per_session, *limit, 4096,
                static_cast<std::uint16_t>(w), seed));
        }
    } catch (const std::exception& error) {
        fail(std::string("sfu: ") + error.what());
    }
    e.sfu_builder = std::make_unique<engine::SfuMembershipBuilder>(config.max_legs_per_session);
    const int socket = static_cast<int>(rte_socket_id());
    for (unsigned w = 0; w < workers; ++w) {
        const std::string messages = "sfu_messages_" + std::to_string(w);
        const std::string commands = "sfu_commands_" + std::to_string(w);
        rte_ring* to_control =
            rte_ring_create_elem(messages.c_str(), sizeof(engine::SfuMessage),
                                 sfu_message_ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        rte_ring* from_control =
            rte_ring_create_elem(commands.c_str(), sizeof(engine::SfuKill), command_ring_size,
                                 socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (to_control == nullptr || from_control == nullptr)
            fail("cannot create the SFU rings of worker " + std::to_string(w) + ": " +
                 rte_strerror(rte_errno));
        e.dataplane.sfu_messages.push_back(to_control);
        e.dataplane.sfu_command_rings.push_back(from_control);
    }
    // Two mbufs a copy (its header, its payload's clone), with a header's room only.
    e.sfu_copy_pool = rte_pktmbuf_pool_create("sfu_copies", e.config.mbufs,
                                              engine::sfu_copy_pool_cache, 0,
                                              RTE_PKTMBUF_HEADROOM + 64, socket);
    if (e.sfu_copy_pool == nullptr)
        fail(std::string("cannot create the SFU copy pool (engine.mbufs, EAL -m): ") +
             rte_strerror(rte_errno));
    e.dataplane.sfu_copy_pool = e.sfu_copy_pool;
    control::log_info(text("sfu on: port %u, %u legs per worker, %u per session, legs expire "
                           "after %u s",
                           unsigned{config.port}, config.max_legs, config.max_legs_per_session,
                           config.leg_timeout_s));
}

// A new membership from the model (the joins and leaves below, punchctl sfu pause|resume|select
// in control/sfu_commands.h), published as the header comment of apply_sfu_messages() says.
void publish_sfu_membership(Engine& e) {
    std::shared_ptr<const engine::SfuMembership> next = e.sfu_builder->build();
    rcu_assign_pointer(e.dataplane.sfu_membership, const_cast<engine::SfuMembership*>(next.get()));
    synchronize_rcu();
    e.sfu_published = std::move(next);
}

// A drain or an undrain of the SFU (punchctl drain, control/sfu_commands.h): a copy of the
// context with the new state, published as the membership is (rcu_assign_pointer's release
// store orders the copy's contents before the pointer; each worker reads it with
// rcu_dereference once per loop iteration), the old one freed once synchronize_rcu() says no
// worker holds it. The node agent tells punchcoord at once (NodeAgent::set_draining()); one
// made later learns it in start_node_when_ready().
void publish_sfu_context(Engine& e, bool draining) {
    auto next = std::make_shared<const engine::SfuContext>(e.sfu_context->with_draining(draining));
    rcu_assign_pointer(e.dataplane.sfu_context, const_cast<engine::SfuContext*>(next.get()));
    synchronize_rcu();
    e.sfu_context = std::move(next);
    if (e.node) e.node->set_draining(draining);
}

// The workers' join and leave messages applied to the model; a join that lost a race (a
// replayed participant, a full session: SfuMembershipBuilder::join()) sent back to its worker
// as a kill; a new membership published when anything changed. RCU: rcu_assign_pointer is a
// release store (the snapshot is whole before a worker sees it); synchronize_rcu() waits until
// every worker has passed a quiescent state (the end of a loop iteration), after which none
// holds the old snapshot, which is then freed.
void apply_sfu_messages(Engine& e) {
    if (!e.sfu_builder) return;
    bool changed = false;
    for (rte_ring* ring : e.dataplane.sfu_messages) {
        engine::SfuMessage m;
        while (rte_ring_sc_dequeue_elem(ring, &m, sizeof m) == 0) {
            if (m.kind == engine::SfuMessage::Kind::leave) {
                changed |= e.sfu_builder->leave(m);
                continue;
            }
            using Result = engine::SfuMembershipBuilder::JoinResult;
            const Result result = e.sfu_builder->join(m);
            changed |= result == Result::joined;
            if (result != Result::replayed && result != Result::full) continue;
            engine::SfuKill kill;
            kill.key = m.key;
            kill.slot = m.slot;
            kill.cause = result == Result::replayed ? engine::SfuKill::Cause::replayed
                                                    : engine::SfuKill::Cause::session_full;
            if (m.worker >= e.dataplane.sfu_command_rings.size() ||
                rte_ring_sp_enqueue_elem(e.dataplane.sfu_command_rings[m.worker], &kill,
                                         sizeof kill) != 0)
                ++e.sfu_kills_unsent;
        }
    }
    if (changed) publish_sfu_membership(e);
}

// The engine as an SFU node ([node]; docs/sfu.md, "Wiring into punchlined"): the agent speaks
// from the first port's first address of the coordinator's family and sfu.port; its datagrams
// go out as frames through worker 0 (from_control, as the neighbour probes do), and the STUN
// responses that reach the SFU port come back through control_tick(). Its load is the legs in
// use per mille of sfu.max_legs over all workers, listed as punchctl lists them.
void setup_node(Engine& e, control::NodeAgentConfig config) {
    const engine::PortConfig& port = e.config.ports.front();
    const bool v6 = config.coordinator_address.family == stun::AddressFamily::ipv6;
    const std::vector<stun::Address>& addresses = v6 ? port.ipv6 : port.ipv4;
    if (addresses.empty())
        fail(std::string("node.coordinator: an IPv") + (v6 ? "6" : "4") +
             " address, but port " + port.device + " has no " + (v6 ? "ipv6" : "ipv4") +
             " address to be an SFU node from; give the coordinator's address in the port's "
             "family");
    e.sfu_address = addresses.front();
    e.sfu_address.port = e.config.sfu.port;
    config.local = e.sfu_address;
    const std::string& secret = e.config.sfu.token_secrets.front();
    config.token_secret.assign(reinterpret_cast<const std::byte*>(secret.data()),
                               reinterpret_cast<const std::byte*>(secret.data()) + secret.size());
    engine::MacAddress port_mac{};
    rte_ether_addr mac{};
    if (rte_eth_macaddr_get(e.dataplane.ports.front().id, &mac) != 0)
        fail("node: cannot read the MAC address of port " + port.device);
    std::memcpy(port_mac.data(), mac.addr_bytes, 6);
    e.node_sender = std::make_unique<control::FrameSender>(
        e.sfu_address, port_mac,
        // The control thread publishes the port's context (the RCU writer): it reads it as is.
        [&e](const stun::Address& to) {
            return e.dataplane.ports.front().context->neighbours.next_hop_mac(to);
        },
        [&e](std::span<const std::byte> frame) {
            rte_mbuf* m = rte_pktmbuf_alloc(e.pool);
            if (m == nullptr || frame.size() > rte_pktmbuf_tailroom(m)) {
                ++e.node_frames_unsent;
                if (m != nullptr) rte_pktmbuf_free(m);
                return false;
            }
            std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size())),
                        frame.data(), frame.size());
            m->port = e.dataplane.ports.front().id;  // before the enqueue: worker 0 reads it
            if (rte_ring_sp_enqueue(e.dataplane.from_control, m) != 0) {
                ++e.node_frames_unsent;
                rte_pktmbuf_free(m);
                return false;
            }
            return true;
        });
    const std::uint32_t max_legs = e.config.sfu.max_legs;
    auto load = [&e, max_legs] {
        std::uint64_t legs = 0;
        for (const auto& shard : e.dataplane.sfu_shards)
            legs += shard->table().list([](const engine::SfuLegSnapshot&) {}).listed;
        const std::uint64_t capacity = std::uint64_t{max_legs} * e.dataplane.sfu_shards.size();
        return static_cast<std::uint32_t>(capacity == 0 ? 0 : legs * 1000 / capacity);
    };
    e.node_load = load;
    e.node_pending = std::move(config);
    e.node_pending_since_ms = monotonic_ms();
}

// The agent made once the first port can reach the STUN server (its gateway resolved), or
// after node_resolve_wait_ms all the same (discovery then retries on its schedule).
constexpr std::uint64_t node_resolve_wait_ms = 10000;
void start_node_when_ready(Engine& e) {
    if (!e.node_pending) return;
    const std::optional<stun::Address>& stun = e.node_pending->stun_server;
    const bool resolved =
        !stun || e.dataplane.ports.front().context->neighbours.next_hop_mac(*stun) != nullptr;
    const bool waited = monotonic_ms() - e.node_pending_since_ms >= node_resolve_wait_ms;
    if (!resolved && !waited) return;
    if (!resolved)
        control::log_warn(text("node: no next hop towards the STUN server after %llu ms; "
                               "starting all the same",
                               static_cast<unsigned long long>(node_resolve_wait_ms)));
    auto unix_now = [] { return static_cast<std::uint64_t>(std::time(nullptr)); };
    e.node = std::make_unique<control::NodeAgent>(std::move(*e.node_pending), e.node_clock,
                                                  *e.node_sender, e.node_load, unix_now);
    e.node->set_draining(e.sfu_context->draining());  // a drain ordered before it was made
    e.node_pending.reset();
}

// One tick of the control loop: replies in, timers, probes out, events logged, publications.
void control_tick(Engine& e) {
    const std::uint64_t now = monotonic_ms();
    // 0. The SFU's joins and leaves, and the membership they make.
    apply_sfu_messages(e);
    // 1. The workers' hand-overs: parse (the handlers checked, the control thread trusts no
    //    one), apply, free.
    for (rte_ring* ring : e.dataplane.to_control) {
        rte_mbuf* frames[32];
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(frames), 32,
                                              nullptr)) != 0) {
            for (unsigned i = 0; i < n; ++i) {
                rte_mbuf* m = frames[i];
                std::size_t p = 0;
                while (p < e.dataplane.ports.size() && e.dataplane.ports[p].id != m->port) ++p;
                engine::NeighbourReply reply;
                const std::span<const std::byte> frame{rte_pktmbuf_mtod(m, const std::byte*),
                                                       rte_pktmbuf_data_len(m)};
                if (p < e.dataplane.ports.size() &&
                    engine::parse_neighbour_frame(frame, reply) == engine::NeighbourFrame::reply) {
                    e.neighbours[p]->on_reply(reply, now);
                } else if (e.node) {
                    // The sfu handler hands over the STUN responses that reach the SFU port:
                    // answers to the agent's discovery and test packets.
                    const auto datagram = control::parse_udp_frame(frame);
                    if (!datagram || !(datagram->to == e.sfu_address) ||
                        !e.node->on_datagram(datagram->from, datagram->payload))
                        ++e.neighbour_frames_invalid;
                } else {
                    ++e.neighbour_frames_invalid;
                }
                rte_pktmbuf_free(m);
            }
        }
    }
    for (std::size_t p = 0; p < e.neighbours.size(); ++p) {
        engine::NeighbourTable& table = *e.neighbours[p];
        // 2. Timers, and the probes they call for, through worker 0.
        for (const engine::NeighbourProbe& probe : table.tick(now)) {
            rte_mbuf* m = rte_pktmbuf_alloc(e.pool);
            if (m == nullptr) {
                ++e.probes_unsent;
                continue;
            }
            const std::size_t length = table.build_probe(
                probe, {rte_pktmbuf_mtod(m, std::byte*), rte_pktmbuf_tailroom(m)});
            m->port = e.dataplane.ports[p].id;  // before the enqueue: worker 0 reads it
            if (length == 0 ||
                rte_pktmbuf_append(m, static_cast<std::uint16_t>(length)) == nullptr ||
                e.dataplane.from_control == nullptr ||
                rte_ring_sp_enqueue(e.dataplane.from_control, m) != 0) {
                ++e.probes_unsent;
                rte_pktmbuf_free(m);
            }
        }
        // 3. A gateway resolved, changed its MAC, or failed: one line each.
        for (const engine::NeighbourEvent& event : table.take_events()) {
            if (!event.gateway) continue;
            if (event.kind == engine::NeighbourEvent::Kind::resolved)
                control::log_info(text("port %s gateway %s resolved: lladdr %s",
                                       e.devices[p].c_str(), ip_text(event.ip).c_str(),
                                       mac_text(event.mac).c_str()));
            else
                control::log_warn(text("port %s gateway %s FAILED: no answer to %u probes",
                                       e.devices[p].c_str(), ip_text(event.ip).c_str(),
                                       e.config.neighbour.max_probes));
        }
        // 4. The workers see the change.
        if (table.take_changed()) publish_neighbours(e, p);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"punchlined: the punchline DPDK engine (STUN, relay and SFU roles)"};
    std::string config_path;
    bool check_only = false;
    app.add_option("--config", config_path, "the TOML configuration file")->required();
    app.add_flag("--check", check_only, "validate the configuration and exit");
    CLI11_PARSE(app, argc, argv);

    Engine e;
    std::optional<control::NodeAgentConfig> node_config;
    try {
        e.config = engine::load_config(config_path);
        // [node] in the same file, read by its own reader (control/node_config.h).
        std::ifstream file(config_path);
        std::stringstream text;
        text << file.rdbuf();
        node_config = control::parse_node_config(text.str(), config_path);
        if (node_config && !e.config.sfu.enabled())
            throw engine::ConfigError("node", 0,
                                      "[node] registers the engine as an SFU node, but the sfu "
                                      "role is off: set sfu.token_secrets (or remove [node])");
    } catch (const engine::ConfigError& error) {
        control::log_error(error.what());
        return 1;
    }
    if (check_only) {
        std::printf("punchlined: %s is valid\n", config_path.c_str());
        return 0;
    }
    // From here on the configured level and target; before, errors went to stderr.
    control::configure_log(e.config.log);

    // Signals are taken by the control thread with sigtimedwait; block them before EAL
    // creates its threads so that they inherit the mask and none runs a handler.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGHUP}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::vector<std::string> eal_strings = {"punchlined"};
    eal_strings.insert(eal_strings.end(), e.config.eal_args.begin(), e.config.eal_args.end());
    std::vector<char*> eal_argv;
    for (auto& s : eal_strings) eal_argv.push_back(s.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0)
        fail(std::string("EAL initialisation failed (eal.args): ") + rte_strerror(rte_errno));

    for (unsigned lcore : e.config.workers) {
        if (lcore == rte_get_main_lcore() || !rte_lcore_is_enabled(lcore))
            fail("engine.workers: lcore " + std::to_string(lcore) +
                 " is not a worker lcore in eal.args (-l lists the main lcore first, then the "
                 "workers; e.g. -l 0-1 with workers = [1])");
        e.worker_lcores.push_back(lcore);
    }
    const unsigned workers = static_cast<unsigned>(e.worker_lcores.size());
    e.dataplane.workers = workers;
    e.dataplane.burst = e.config.burst;
    e.dataplane.counters = std::make_unique<CoreCounters[]>(workers);
    if (e.config.relay.enabled) setup_relay(e, workers);
    if (e.config.sfu.enabled()) setup_sfu(e, workers);

    rte_mempool* pool = rte_pktmbuf_pool_create(
        "punchline_mbufs", e.config.mbufs * static_cast<unsigned>(e.config.ports.size()), 256, 0,
        RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (pool == nullptr)
        fail(std::string("cannot create the mbuf pool (engine.mbufs, EAL -m): ") +
             rte_strerror(rte_errno));
    e.pool = pool;
    e.dataplane.ports.resize(e.config.ports.size());
    for (std::size_t p = 0; p < e.config.ports.size(); ++p) {
        e.devices.push_back(e.config.ports[p].device);
        setup_port(e, e.devices[p], e.dataplane.ports[p], pool);
    }
    // A ring from every worker to every other: the packets steering hands over and, with a
    // relay, the datagrams relayed to another worker's relay port (hairpin).
    auto make_rings = [&](std::vector<rte_ring*>& rings, const std::string& prefix) {
        rings.assign(static_cast<std::size_t>(workers) * workers, nullptr);
        for (unsigned from = 0; from < workers; ++from)
            for (unsigned to = 0; to < workers; ++to) {
                if (from == to) continue;
                const std::string name = prefix + std::to_string(from) + "_" + std::to_string(to);
                rings[from * workers + to] = rte_ring_create(name.c_str(), handoff_ring_size,
                                                             static_cast<int>(rte_socket_id()),
                                                             RING_F_SP_ENQ | RING_F_SC_DEQ);
                if (rings[from * workers + to] == nullptr)
                    fail("cannot create ring " + name + ": " + rte_strerror(rte_errno));
            }
    };
    make_rings(e.dataplane.rings, "handoff_");
    if (!e.dataplane.relay_shards.empty()) make_rings(e.dataplane.hairpin_rings, "hairpin_");
    for (unsigned w = 0; w < workers; ++w) {
        const std::string name = "to_control_" + std::to_string(w);
        rte_ring* ring = rte_ring_create(name.c_str(), control_ring_size,
                                         static_cast<int>(rte_socket_id()),
                                         RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (ring == nullptr)
            fail("cannot create ring " + name + ": " + rte_strerror(rte_errno));
        e.dataplane.to_control.push_back(ring);
    }
    if (!e.dataplane.relay_shards.empty()) {
        e.dataplane.command_acks = std::make_unique<engine::CommandAck[]>(workers);
        for (unsigned w = 0; w < workers; ++w) {
            const std::string name = "commands_" + std::to_string(w);
            rte_ring* ring = rte_ring_create_elem(
                name.c_str(), sizeof(engine::RelayKill), command_ring_size,
                static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (ring == nullptr)
                fail("cannot create ring " + name + ": " + rte_strerror(rte_errno));
            e.dataplane.command_rings.push_back(ring);
        }
    }
    e.dataplane.from_control = rte_ring_create("from_control", control_ring_size,
                                               static_cast<int>(rte_socket_id()),
                                               RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (e.dataplane.from_control == nullptr)
        fail(std::string("cannot create ring from_control: ") + rte_strerror(rte_errno));
    if (node_config) setup_node(e, std::move(*node_config));

    // The management socket (control/server.h), before the workers start: a socket path
    // another engine holds stops this one before it forwards anything. The commands read the
    // workers' counters and relay tables without locks (control/engine_commands.h).
    control::EngineView view;
    view.version = PUNCHLINE_VERSION;
    view.config = &e.config;
    view.main_lcore = rte_get_main_lcore();
    for (unsigned w = 0; w < workers; ++w)
        view.cores.push_back({e.worker_lcores[w], &e.dataplane.counters[w],
                              e.dataplane.relay_shards.empty()
                                  ? nullptr
                                  : e.dataplane.relay_shards[w].get(),
                              e.dataplane.sfu_shards.empty() ? nullptr
                                                             : e.dataplane.sfu_shards[w].get()});
    view.ports = [&e, workers] {
        std::vector<control::PortView> ports;
        for (std::size_t p = 0; p < e.dataplane.ports.size(); ++p) {
            const engine::DataplanePort& port = e.dataplane.ports[p];
            rte_eth_link link{};
            rte_eth_link_get_nowait(port.id, &link);  // never waits for the link
            rte_ether_addr mac{};
            rte_eth_macaddr_get(port.id, &mac);
            engine::MacAddress port_mac;
            std::memcpy(port_mac.data(), mac.addr_bytes, 6);
            ports.push_back({e.devices[p], port.id, mac_text(port_mac),
                             link.link_status == RTE_ETH_LINK_UP,
                             link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed,
                             link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX, workers,
                             port.steer_in_software});
        }
        return ports;
    };
    view.now_ms = monotonic_ms;
    view.start_ms = monotonic_ms();
    timespec wall{};
    clock_gettime(CLOCK_REALTIME, &wall);
    view.start_unix_ms = static_cast<std::uint64_t>(wall.tv_sec) * 1000 +
                         static_cast<std::uint64_t>(wall.tv_nsec) / 1000000;
    view.cycles_per_second = rte_get_tsc_hz();
    // The relay's clock (Dataplane::relay_clock is null here: the workers read the TSC).
    view.relay_now = [] { return rte_rdtsc(); };
    view.relay_ticks_per_second = rte_get_tsc_hz();
    if (!e.dataplane.command_rings.empty()) {
        view.send_kill = [&e](std::size_t core, const engine::RelayKill& kill) {
            return rte_ring_sp_enqueue_elem(e.dataplane.command_rings[core],
                                            const_cast<engine::RelayKill*>(&kill),
                                            sizeof kill) == 0;
        };
        view.kill_done = [&e](std::size_t core) {
            return e.dataplane.command_acks[core].done.load(std::memory_order_acquire);
        };
        view.pause = [] {
            const timespec pause{0, kill_pause_us * 1000};
            nanosleep(&pause, nullptr);
        };
        view.kill_wait_ms = kill_wait_ms;
    }
    control::EngineCommands commands(view);
    control::Registry registry;
    commands.register_in(registry);
    // Users, secrets, peer policy, drain and reload: new RelayContexts through RCU.
    control::RelayCommands relay_commands(
        view, e.config,
        {[&e](const engine::RelayConfig& relay, bool draining) {
             publish_relay(e, relay, draining);
         },
         [&config_path] { return engine::load_config(config_path); }, config_path});
    relay_commands.register_in(registry);
    view.relay_drain = [&relay_commands] { return relay_commands.drain_progress(); };
    // The SFU's sessions: listed from the workers' tables, kills on their command rings,
    // selections published through RCU (control/sfu_commands.h).
    control::SfuControl sfu_control;
    if (e.sfu_builder) {
        for (const auto& shard : e.dataplane.sfu_shards) sfu_control.shards.push_back(shard.get());
        sfu_control.builder = e.sfu_builder.get();
        sfu_control.publish = [&e] { publish_sfu_membership(e); };
        sfu_control.send_kill = [&e](std::size_t worker, const engine::SfuKill& kill) {
            return rte_ring_sp_enqueue_elem(e.dataplane.sfu_command_rings[worker],
                                            const_cast<engine::SfuKill*>(&kill),
                                            sizeof kill) == 0;
        };
        sfu_control.now_ticks = [] { return rte_rdtsc(); };
        sfu_control.ticks_per_second = e.dataplane.tsc_hz;
        sfu_control.publish_draining = [&e](bool draining) { publish_sfu_context(e, draining); };
    }
    control::SfuCommands sfu_commands(view, std::move(sfu_control));
    sfu_commands.register_in(registry);
    // punchctl drain covers the SFU's legs too (control/relay_commands.h).
    relay_commands.cover_sfu(sfu_commands);
    view.sfu_drain = [&sfu_commands] { return sfu_commands.drain_progress(); };
    // The engine as an SFU node: the agent's state and counters (NodeAgent::status()).
    registry.add({"/node",
                  "the engine as an SFU node of punchcoord ([node]): state, node id, public "
                  "address, NAT type, discovery, test packets, counters",
                  {},
                  [&e](const control::Arguments&) -> nlohmann::json {
                      if (e.node_pending)
                          return {{"state", "waiting_for_next_hop"},
                                  {"message", "the agent starts once the port reaches the STUN "
                                              "server's next hop (at most 10 s)"}};
                      if (!e.node)
                          throw control::CommandError(
                              control::ErrorCode::not_available,
                              "this engine is no SFU node: it has no [node] table",
                              "add [node] with coordinator = \"host:port\" (and the sfu role) "
                              "to its configuration; docs/operations.md");
                      nlohmann::json status = e.node->status();
                      status["frames_unsent"] = e.node_frames_unsent;
                      return status;
                  }});
    std::unique_ptr<control::Server> server;
    try {
        server = std::make_unique<control::Server>(
            control::ServerOptions{e.config.control.socket, e.config.control.group, {}}, registry);
    } catch (const control::ServerError& error) {
        fail(error.what());
    }
    // The Prometheus endpoint (control/metrics_server.h), when [metrics] listen is set: its
    // body is EngineCommands::metrics(), the numbers /stats gives.
    std::unique_ptr<control::MetricsServer> metrics;
    if (e.config.metrics.listen) {
        try {
            metrics = std::make_unique<control::MetricsServer>(
                *e.config.metrics.listen, control::MetricsServerLimits{},
                [&commands] { return control::exposition(commands.metrics()); }, monotonic_ms);
        } catch (const control::MetricsServerError& error) {
            fail(error.what());
        }
    }
    view.control_status = [&server, &metrics] {
        const control::ServerCounters& c = server->counters();
        nlohmann::json status{{"socket", server->path()},
                              {"clients", server->client_count()},
                              {"accepted", c.accepted},
                              {"refused_credentials", c.refused_credentials},
                              {"refused_too_many", c.refused_too_many},
                              {"dropped_slow", c.dropped_slow},
                              {"requests", c.requests}};
        status["metrics"] = nullptr;
        if (metrics) {
            const control::MetricsServerCounters& m = metrics->counters();
            std::array<char, 48> address{};
            status["metrics"] = {{"listen", std::string(address.data(),
                                                        metrics->address().format(address))},
                                 {"clients", metrics->client_count()},
                                 {"accepted", m.accepted},
                                 {"scrapes", m.scrapes},
                                 {"bad_requests", m.bad_requests},
                                 {"refused_too_many", m.refused_too_many},
                                 {"timed_out", m.timed_out}};
        }
        return status;
    };
    control::log_info("management socket " + server->path() + " (mode " +
                      (e.config.control.group.empty() ? std::string("0600")
                                                      : "0660, group " + e.config.control.group) +
                      ")");
    if (metrics) {
        std::array<char, 48> address{};
        control::log_info("metrics on http://" +
                          std::string(address.data(), metrics->address().format(address)) +
                          "/metrics");
    }
    // The signals stay blocked (above): the control loop reads them from this descriptor.
    const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) fail(std::string("signalfd(): ") + std::strerror(errno));

    engine::set_dataplane(&e.dataplane);
    for (unsigned w = 0; w < workers; ++w)
        rte_eal_remote_launch(engine::worker_main,
                              reinterpret_cast<void*>(static_cast<std::uintptr_t>(w)),
                              e.worker_lcores[w]);
    control::log_info(
        text("running, %u worker(s); SIGUSR1 prints counters, SIGINT stops", workers));

    // A signal, a management socket event, or every control_tick_ms the tick's turn.
    std::uint64_t next_tick = monotonic_ms() + control_tick_ms;
    for (bool running = true; running;) {
        const std::uint64_t now = monotonic_ms();
        // poll() skips a negative descriptor: no metrics endpoint, no coordinator connection,
        // nothing to watch.
        pollfd ready[4] = {{signal_fd, POLLIN, 0},
                           {server->fd(), POLLIN, 0},
                           {metrics ? metrics->fd() : -1, POLLIN, 0},
                           {e.node ? e.node->fd() : -1, e.node ? e.node->events() : short{0}, 0}};
        std::uint64_t wake = next_tick;
        if (e.node) {
            // The agent's timers (its test packets' pacing, retransmissions) on their own
            // deadlines, not the tick's 50 ms.
            if (const auto deadline = e.node->next_deadline()) {
                const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
                    *deadline - e.node_clock.now());
                wake = std::min<std::uint64_t>(
                    wake, now + static_cast<std::uint64_t>(std::max<std::int64_t>(
                                    0, remaining.count())));
            }
        }
        const int timeout = wake > now ? static_cast<int>(wake - now) : 0;
        if (poll(ready, 4, timeout) < 0 && errno != EINTR)
            fail(std::string("poll(): ") + std::strerror(errno));
        if (ready[1].revents != 0) server->serve();
        if (ready[2].revents != 0) metrics->serve();
        start_node_when_ready(e);
        if (e.node) e.node->poll();
        signalfd_siginfo received{};
        while (read(signal_fd, &received, sizeof received) ==
               static_cast<ssize_t>(sizeof received)) {
            if (received.ssi_signo == SIGUSR1) {
                print_counters(e, false);
                print_neighbours(e);
            } else if (received.ssi_signo == SIGHUP) {
                // As `punchctl reload`: the same function, its answer in the log (a refusal
                // as a warning: the engine runs on, on the configuration it had).
                const nlohmann::json reply = registry.handle_line(R"({"command": "/reload"})");
                const std::string line = "SIGHUP: reload " + reply.dump();
                if (reply.contains("error"))
                    control::log_warn(line);
                else
                    control::log_info(line);
            } else {
                running = false;
            }
        }
        if (monotonic_ms() >= next_tick) {
            control_tick(e);
            commands.tick();
            if (metrics) metrics->expire();
            next_tick += control_tick_ms;
            // Late (a slow tick, a long command): the next one a full period from now.
            if (next_tick <= monotonic_ms()) next_tick = monotonic_ms() + control_tick_ms;
        }
    }
    close(signal_fd);
    metrics.reset();
    server.reset();  // clients disconnected, the socket file removed
    e.dataplane.stop.store(true, std::memory_order_relaxed);
    rte_eal_mp_wait_lcore();
    print_counters(e, true);
    print_neighbours(e);
    if (e.node) std::printf("node: %s\n", e.node->status().dump().c_str());

    for (engine::DataplanePort& port : e.dataplane.ports) {
        if (!port.steer_in_software) engine::remove_steering_rules(port.id);
        rte_eth_dev_stop(port.id);
        rte_eth_dev_close(port.id);
        // Workers are gone (unregistered), so no reader can hold the context any more.
        delete port.context;
        port.context = nullptr;
    }
    for (rte_ring* ring : e.dataplane.rings) rte_ring_free(ring);
    for (rte_ring* ring : e.dataplane.hairpin_rings) rte_ring_free(ring);
    for (rte_ring* ring : e.dataplane.command_rings) rte_ring_free(ring);
    for (rte_ring* ring : e.dataplane.sfu_messages) rte_ring_free(ring);
    for (rte_ring* ring : e.dataplane.sfu_command_rings) rte_ring_free(ring);
    // What the workers handed over or were yet to send when they stopped.
    for (rte_ring* ring : e.dataplane.to_control) {
        drain(ring);
        rte_ring_free(ring);
    }
    drain(e.dataplane.from_control);
    rte_ring_free(e.dataplane.from_control);
    rte_mempool_free(pool);
    rte_mempool_free(e.sfu_copy_pool);
    rte_eal_cleanup();
    return 0;
}
