// punchlined: the DPDK poll-mode engine (design.md §3).
//
//   punchlined --config FILE          run until SIGINT/SIGTERM; SIGUSR1 prints the counters
//   punchlined --config FILE --check  validate the configuration and exit
//
// Threads: the main lcore is the control thread (signals, counters report; later the
// management socket and RCU publications). Each worker lcore owns one RX and one TX queue on
// every port, its counters, and a handoff ring from every other worker. A worker never locks,
// allocates, logs or makes a syscall in its loop.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <urcu-qsbr.h>  // rcu_assign_pointer

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/counters.h"
#include "engine/port_context.h"
#include "engine/worker.h"

namespace {

using engine::CoreCounters;

constexpr std::uint16_t queue_descriptors = 1024;
constexpr unsigned handoff_ring_size = 4096;

struct Engine {
    engine::EngineConfig config;
    std::vector<std::string> devices;  // parallel to dataplane.ports
    std::vector<unsigned> worker_lcores;
    engine::Dataplane dataplane;
};

[[noreturn]] void fail(const std::string& message) {
    std::fprintf(stderr, "punchlined: %s\n", message.c_str());
    std::exit(1);
}

void setup_port(Engine& e, const std::string& device, engine::DataplanePort& port,
                rte_mempool* pool) {
    if (rte_eth_dev_get_port_by_name(device.c_str(), &port.id) != 0)
        fail("port.device \"" + device +
             "\": no such DPDK port (name it in eal.args, e.g. --vdev=" + device +
             ",iface=..., or give a PCI address bound to a DPDK driver)");
    const auto queues = static_cast<std::uint16_t>(e.worker_lcores.size());
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port.id, &info) != 0) fail("cannot query " + device);
    if (queues > info.max_rx_queues || queues > info.max_tx_queues)
        fail("port " + device + " has " + std::to_string(info.max_rx_queues) +
             " RX queues; engine.workers asks for " + std::to_string(queues));
    rte_eth_conf conf{};
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
        rcu_assign_pointer(port.context, context);
    }
    std::printf("punchlined: port %s (id %u) %02x:%02x:%02x:%02x:%02x:%02x, %u queue(s)\n",
                device.c_str(), port.id, mac.addr_bytes[0], mac.addr_bytes[1],
                mac.addr_bytes[2], mac.addr_bytes[3], mac.addr_bytes[4], mac.addr_bytes[5],
                queues);
}

// `final`: the workers have stopped, so the counters are at rest and the conservation law
// must hold exactly. A live report (SIGUSR1) can catch a worker between two increments.
void print_counters(const Engine& e, bool final) {
    CoreCounters total;
    auto line = [final](const char* name, const CoreCounters& c) {
        std::printf("%-7s rx %llu pkts %llu B | tx %llu pkts %llu B | handed off %llu | "
                    "dropped %llu | stun ok %llu err %llu | busy cycles %llu | %s\n",
                    name, static_cast<unsigned long long>(c.rx_packets),
                    static_cast<unsigned long long>(c.rx_bytes),
                    static_cast<unsigned long long>(c.tx_packets),
                    static_cast<unsigned long long>(c.tx_bytes),
                    static_cast<unsigned long long>(c.handed_off),
                    static_cast<unsigned long long>(c.dropped()),
                    static_cast<unsigned long long>(c.stun_success),
                    static_cast<unsigned long long>(c.stun_error),
                    static_cast<unsigned long long>(c.busy_cycles),
                    !final ? "live" : c.conserved() ? "conserved" : "NOT CONSERVED");
    };
    for (std::size_t w = 0; w < e.worker_lcores.size(); ++w) {
        const CoreCounters& c = e.dataplane.counters[w];
        char name[16];
        std::snprintf(name, sizeof name, "lcore%u", e.worker_lcores[w]);
        line(name, c);
        total.rx_packets += c.rx_packets;
        total.rx_bytes += c.rx_bytes;
        total.tx_packets += c.tx_packets;
        total.tx_bytes += c.tx_bytes;
        total.handed_off += c.handed_off;
        total.stun_success += c.stun_success;
        total.stun_error += c.stun_error;
        total.busy_cycles += c.busy_cycles;
        for (std::size_t r = 0; r < engine::drop_reason_count; ++r) total.drops[r] += c.drops[r];
    }
    line("total", total);
    std::printf("tsc_hz %llu\n", static_cast<unsigned long long>(rte_get_tsc_hz()));
    for (std::size_t r = 0; r < engine::drop_reason_count; ++r)
        if (total.drops[r] != 0)
            std::printf("  drop %-24s %llu  (%s)\n",
                        std::string(engine::drop_reasons[r].name).c_str(),
                        static_cast<unsigned long long>(total.drops[r]),
                        std::string(engine::drop_reasons[r].help).c_str());
    std::fflush(stdout);
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
    try {
        e.config = engine::load_config(config_path);
    } catch (const engine::ConfigError& error) {
        std::fprintf(stderr, "punchlined: %s\n", error.what());
        return 1;
    }
    if (check_only) {
        std::printf("punchlined: %s is valid\n", config_path.c_str());
        return 0;
    }

    // Signals are taken by the control thread with sigtimedwait; block them before EAL
    // creates its threads so that they inherit the mask and none runs a handler.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals, s);
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

    rte_mempool* pool = rte_pktmbuf_pool_create(
        "punchline_mbufs", e.config.mbufs * static_cast<unsigned>(e.config.ports.size()), 256, 0,
        RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (pool == nullptr)
        fail(std::string("cannot create the mbuf pool (engine.mbufs, EAL -m): ") +
             rte_strerror(rte_errno));
    e.dataplane.ports.resize(e.config.ports.size());
    for (std::size_t p = 0; p < e.config.ports.size(); ++p) {
        e.devices.push_back(e.config.ports[p].device);
        setup_port(e, e.devices[p], e.dataplane.ports[p], pool);
    }
    e.dataplane.rings.assign(static_cast<std::size_t>(workers) * workers, nullptr);
    for (unsigned from = 0; from < workers; ++from)
        for (unsigned to = 0; to < workers; ++to) {
            if (from == to) continue;
            const std::string name = "handoff_" + std::to_string(from) + "_" + std::to_string(to);
            e.dataplane.rings[from * workers + to] = rte_ring_create(
                name.c_str(), handoff_ring_size, static_cast<int>(rte_socket_id()),
                RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (e.dataplane.rings[from * workers + to] == nullptr)
                fail("cannot create handoff ring " + name + ": " + rte_strerror(rte_errno));
        }

    engine::set_dataplane(&e.dataplane);
    for (unsigned w = 0; w < workers; ++w)
        rte_eal_remote_launch(engine::worker_main,
                              reinterpret_cast<void*>(static_cast<std::uintptr_t>(w)),
                              e.worker_lcores[w]);
    std::printf("punchlined: running, %u worker(s); SIGUSR1 prints counters, SIGINT stops\n",
                workers);
    std::fflush(stdout);

    for (;;) {
        const int s = sigwaitinfo(&signals, nullptr);
        if (s == SIGUSR1) {
            print_counters(e, false);
        } else if (s == SIGINT || s == SIGTERM) {
            break;
        }
    }
    e.dataplane.stop.store(true, std::memory_order_relaxed);
    rte_eal_mp_wait_lcore();
    print_counters(e, true);

    for (engine::DataplanePort& port : e.dataplane.ports) {
        rte_eth_dev_stop(port.id);
        rte_eth_dev_close(port.id);
        // Workers are gone (unregistered), so no reader can hold the context any more.
        delete port.context;
        port.context = nullptr;
    }
    for (rte_ring* ring : e.dataplane.rings) rte_ring_free(ring);
    rte_mempool_free(pool);
    rte_eal_cleanup();
    return 0;
}
