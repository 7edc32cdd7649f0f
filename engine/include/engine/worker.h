// The worker loop (design.md §3): rx_burst → steer → handle → buffer tx → flush → quiescent
// state. punchlined runs worker_main() on each worker lcore; the pipeline benchmark calls
// worker_poll() itself between feeding its rings, so that it measures this very code.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/counters.h"
#include "engine/handler.h"
#include "engine/port_context.h"
#include "engine/relay_role.h"
#include "engine/steer.h"

struct rte_mbuf;
struct rte_ring;

namespace engine {

inline constexpr unsigned max_burst = 512;

struct DataplanePort {
    std::uint16_t id = 0;
    // Read by the workers with rcu_dereference; published by the control thread with
    // rcu_assign_pointer (release) and reclaimed only after synchronize_rcu() or once the
    // workers have stopped.
    PortContext* context = nullptr;
    /// Whether workers steer this port's packets themselves (owner_worker(), handoff rings):
    /// false where the port's rte_flow rules deliver each packet to its owner's queue
    /// (engine/flow_steering.h).
    bool steer_in_software = true;
};

/// What the workers share: set up by the control thread before they start, read-only after
/// (except `stop`, and what RCU publishes).
struct Dataplane {
    std::vector<DataplanePort> ports;
    unsigned workers = 1;
    unsigned burst = 32;
    /// rings[from * workers + to]: single producer `from`, single consumer `to`.
    std::vector<rte_ring*> rings;
    /// hairpin_rings[from * workers + to], the same way round: datagrams worker `from`'s relay
    /// addressed to a relayed address on worker `to`'s relay ports (Verdict::hairpin), `port`
    /// set. Empty, or a null ring: such frames are dropped as handoff_ring_full.
    std::vector<rte_ring*> hairpin_rings;
    /// to_control[w]: single producer worker w, single consumer the control thread: frames with
    /// the to_control verdict (neighbour replies), `port` set. Missing (empty vector or null):
    /// such frames are dropped as control_ring_full.
    std::vector<rte_ring*> to_control;
    /// Single producer the control thread, single consumer worker 0: frames the control thread
    /// sends (neighbour probes), each on the port its mbuf's `port` names, through worker 0's
    /// TX queue. The control thread has no TX queue of its own: an extra queue pair would have
    /// RX queues nobody polls, and net_af_packet and net_tap spread received flows over every
    /// queue the device has. Null: none.
    rte_ring* from_control = nullptr;
    std::unique_ptr<CoreCounters[]> counters;  ///< one per worker, written only by it
    /// The relay role: relay_shards[w] is worker w's (written only by it); empty where no port
    /// relays. Steering gives each worker the datagrams to its share of the relay ports. One
    /// shard serves its worker's one relaying port (relay address index 0): punchlined refuses
    /// a relay over several ports, which would need an index per port.
    std::vector<std::unique_ptr<RelayShard>> relay_shards;
    RelayPortPartition relay_ports;
    /// The relay's clock: TSC ticks (RelayLimits::ticks_per_second is the TSC rate) and Unix
    /// seconds as the TSC counts them from start-up, so that no worker reads the time of day.
    std::uint64_t tsc_hz = 1;
    std::uint64_t start_tsc = 0;
    std::uint64_t start_unix_s = 0;
    /// The relay's clock in place of the TSC, for tests that inject the time (the golden
    /// ring test); null in punchlined.
    std::uint64_t (*relay_clock)() noexcept = nullptr;
    /// Set by the control thread to stop the workers; read relaxed each loop (they only need
    /// to see it eventually; their exit is joined by rte_eal_mp_wait_lcore).
    std::atomic<bool> stop{false};
};

/// A worker's private state: its index and TX buffers. Built before the loop (it allocates).
class Worker {
public:
    Worker(Dataplane& dataplane, unsigned index);
    /// One loop iteration without the quiescent state: every port's RX queue `index`, then the
    /// handoff and hairpin rings into this worker, then the TX flush, then (worker 0) the
    /// control thread's frames to send. Returns the packets taken in. An iteration that took
    /// any adds its TSC cycles up to the flush's end to the counters' busy cycles and their
    /// rx/tx split, or, past 1 ms, to the stalled ones (counters.h).
    unsigned poll() noexcept;

private:
    struct TxBuffer {
        rte_mbuf* packets[max_burst];
        unsigned count = 0;
    };
    /// `hairpin`: `m` came on a hairpin ring (handle_hairpin()), not from a port.
    void handle(rte_mbuf* m, const PortContext& context, TxBuffer& tx, RelayState* relay,
                bool hairpin = false) noexcept;
    void hand_to_hairpin(rte_mbuf* m, const TxBuffer& tx) noexcept;
    void hand_to_control(rte_mbuf* m, const TxBuffer& tx) noexcept;
    void send_for_control() noexcept;
    void flush(TxBuffer& tx, std::uint16_t port) noexcept;

    Dataplane& dataplane_;
    unsigned index_;
    CoreCounters& counters_;
    std::vector<TxBuffer> tx_;
    /// An iteration longer than this (1 ms of TSC) counts as stalled, not busy.
    std::uint64_t stall_cycles_;
};

/// rte_eal_remote_launch entry: `argument` is the worker index. Registers with QSBR RCU,
/// polls until Dataplane::stop, announcing a quiescent state every iteration.
int worker_main(void* argument);

/// The Dataplane worker_main() serves; set once before any worker is launched.
void set_dataplane(Dataplane* dataplane) noexcept;

}  // namespace engine
