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
#include "engine/sfu_role.h"
#include "engine/steer.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace engine {

inline constexpr unsigned max_burst = 512;

/// The per-lcore cache of Dataplane::sfu_copy_pool: DPDK's largest (RTE_MEMPOOL_CACHE_MAX_SIZE).
/// A fan-out takes two mbufs a copy, and the driver gives them back 32 to 64 at a time; with
/// 256 (the other pools'), the cache overflowed to the pool's ring between the two, and the
/// copies' mbufs came back cold from it: at fan-out 8, 16.9-17.8 M frames out a second against
/// 23.2-23.9 M with 512 (docs/benchmarks.md, "SFU (issue 7)").
inline constexpr unsigned sfu_copy_pool_cache = 512;

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

/// A worker's acknowledgement of the control thread's orders (Dataplane::command_rings), on
/// a cache line of its own: the worker stores, the control thread polls.
struct alignas(64) CommandAck {
    /// RelayKill::sequence << 32 | allocations it deleted, of the last order finished; 0
    /// before the first. One word, so that the count read is that order's. The worker
    /// stores it with release after the table changes; the control thread loads it with
    /// acquire (a later listing sees the allocations gone).
    std::atomic<std::uint64_t> done{0};
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
    /// command_rings[w]: single producer the control thread, single consumer worker w: the
    /// operator's orders to w's relay (RelayKill, by value: rte_ring_create_elem with its
    /// size), so that the control thread never writes a worker's table. Worker w takes the
    /// next when it has finished the last, and acknowledges each in command_acks[w]. Empty,
    /// or a null ring: none (punchlined makes them with a relay).
    std::vector<rte_ring*> command_rings;
    /// command_acks[w]: the last order worker w has carried out (CommandAck). Present when
    /// command_rings is.
    std::unique_ptr<CommandAck[]> command_acks;
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
    /// The relay's and the SFU's clock in place of the TSC, for tests that inject the time
    /// (the golden ring test); null in punchlined.
    std::uint64_t (*relay_clock)() noexcept = nullptr;
    /// The SFU role (engine/sfu_role.h): sfu_shards[w] is worker w's (written only by it);
    /// empty, or no context, where the role is off. The context's ticks are the TSC's
    /// (SfuLimits::ticks_per_second = tsc_hz), as the relay's.
    std::vector<std::unique_ptr<SfuShard>> sfu_shards;
    /// The SFU's context, owned by the control thread, which publishes a new one for a drain
    /// or an undrain as it publishes the membership below (rcu_assign_pointer, a release
    /// store: the context is whole before a worker sees it; the old one freed after
    /// synchronize_rcu()). Read by the workers with rcu_dereference once per loop iteration
    /// (SfuState::context). Null: the role is off.
    SfuContext* sfu_context = nullptr;
    /// The published SFU membership. Read by the workers with rcu_dereference once per loop
    /// iteration (SfuState::membership); published by the control thread with
    /// rcu_assign_pointer (a release store: the snapshot is whole before a worker sees it) and
    /// the old one freed after synchronize_rcu(), or once the workers have stopped. Null: none
    /// published yet (no leg has anyone to send to).
    SfuMembership* sfu_membership = nullptr;
    /// sfu_messages[w]: single producer worker w, single consumer the control thread: the
    /// join and leave messages of w's legs (SfuMessage, by value: rte_ring_create_elem with
    /// its size). Missing (empty or null): they stay in the shard's outbox, which then fills
    /// and refuses admissions (sfu_join_backlog).
    std::vector<rte_ring*> sfu_messages;
    /// sfu_command_rings[w]: single producer the control thread, single consumer worker w:
    /// SfuKill orders (by value), the control thread's verdict on a join that lost a race
    /// (SfuMembershipBuilder::join()) or the operator's. Empty, or a null ring: none.
    std::vector<rte_ring*> sfu_command_rings;
    /// The mbufs of fan-out copies (Verdict::fan_out): per copy one for its headers and one
    /// indirect mbuf on the payload (as rte_pktmbuf_attach() makes it), chained; a small data
    /// room (the headers are 62 bytes at most). Shared by the workers (a mempool is
    /// multi-producer and multi-consumer, with per-lcore caches of sfu_copy_pool_cache). Null:
    /// a fan-out sends the frame's own copy only, the others dropped as fan_out_no_buffer.
    /// Ports must take chained mbufs (RTE_ETH_TX_OFFLOAD_MULTI_SEGS).
    rte_mempool* sfu_copy_pool = nullptr;
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
    /// rx/tx split, or, past 1 ms, to the stalled ones (counters.h). Last, the control
    /// thread's orders to the relay, if any (run_command()).
    unsigned poll() noexcept;

private:
    struct TxBuffer {
        rte_mbuf* packets[max_burst];
        unsigned count = 0;
    };
    /// `hairpin`: `m` came on a hairpin ring (handle_hairpin()), not from a port.
    /// Inline in poll(): the call's register saves were a sixth of its instructions a frame.
    [[gnu::always_inline]] inline void handle(rte_mbuf* m, const PortContext& context,
                                              TxBuffer& tx, RelayState* relay, SfuState* sfu,
                                              bool hairpin = false) noexcept;
    /// A frame sfu_look_ahead() passed, by the SFU's express lane (sfu_express_ahead()):
    /// counted as handle_frame() counts it, then as handle() goes on.
    [[gnu::always_inline]] inline void handle_express(rte_mbuf* m, Frame& frame,
                                                      const SfuAhead& ahead,
                                                      const PortContext& context, TxBuffer& tx,
                                                      SfuState& sfu) noexcept;
    /// What handle() does after the handler: `m` (its start and length from `frame`) freed,
    /// handed on or buffered for TX as `verdict` says, with its fan-out copies.
    [[gnu::always_inline]] inline void dispatch(rte_mbuf* m, const Frame& frame, Verdict verdict,
                                                TxBuffer& tx, SfuState* sfu) noexcept;
    /// The copies of a fanned-out frame other than `m` itself (SfuShard::fan_out()): a header
    /// mbuf from Dataplane::sfu_copy_pool chained to an indirect clone of `m`'s payload each,
    /// buffered for TX. `m` is final (its data offset and length set); not yet buffered.
    void fan_out(rte_mbuf* m, const SfuFanOut& fan, TxBuffer& tx) noexcept;
    /// One copy the slow way (rte_pktmbuf_alloc, rte_pktmbuf_clone), for what fan_out() cannot
    /// take in bulk: a frame not in a direct mbuf, a pool short of a chunk's mbufs. A copy
    /// without its mbufs is dropped as fan_out_no_buffer.
    void fan_out_one(rte_mbuf* m, const SfuFanOut& fan, const SfuDestination& d,
                     TxBuffer& tx) noexcept;
    /// The shard's join and leave messages onto Dataplane::sfu_messages, as many as it takes.
    void post_sfu_messages(SfuShard& shard) noexcept;
    /// A few SfuKill orders from Dataplane::sfu_command_rings, carried out (kill_leg()).
    void run_sfu_commands(SfuShard& shard) noexcept;
    void hand_to_hairpin(rte_mbuf* m, const TxBuffer& tx) noexcept;
    void hand_to_control(rte_mbuf* m, const TxBuffer& tx) noexcept;
    void send_for_control() noexcept;
    /// The operator's orders (Dataplane::command_rings): takes the next one when none is
    /// under way, carries out a bounded step of it, and acknowledges it once done.
    void run_command(RelayShard& shard) noexcept;
    void flush(TxBuffer& tx, std::uint16_t port) noexcept;

    Dataplane& dataplane_;
    unsigned index_;
    CoreCounters& counters_;
    std::vector<TxBuffer> tx_;
    /// A burst's frames and what sfu_look_ahead() found of them (max_burst each):
    /// kept here, not made on the stack each iteration (a FiveTuple starts zeroed).
    std::vector<Frame> frames_;
    std::vector<SfuAhead> ahead_;
    /// An iteration longer than this (1 ms of TSC) counts as stalled, not busy.
    std::uint64_t stall_cycles_;
    /// This worker's command ring and its acknowledgement (null: none), and the order under
    /// way: a user's kill walks the table a few slots an iteration (run_command()).
    rte_ring* commands_ = nullptr;
    CommandAck* ack_ = nullptr;
    RelayKill command_;
    bool command_running_ = false;
    std::uint32_t command_cursor_ = 0;
    std::uint32_t command_killed_ = 0;
};

/// rte_eal_remote_launch entry: `argument` is the worker index. Registers with QSBR RCU,
/// polls until Dataplane::stop, announcing a quiescent state every iteration.
int worker_main(void* argument);

/// The Dataplane worker_main() serves; set once before any worker is launched.
void set_dataplane(Dataplane* dataplane) noexcept;

}  // namespace engine
