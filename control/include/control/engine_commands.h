// The engine's commands on the management socket (design.md §4): /status, /stats,
// /allocations and /allocations/kill. They read what punchlined describes in an EngineView;
// nothing here touches DPDK, so that the commands build and test without EAL (style rule 4),
// and nothing here writes what a worker reads: counters are read as plain loads, relay tables
// through their seqlock listing (engine/relay_table.h), which never makes the owner wait; a
// kill is an order on the worker's command ring, which the worker carries out itself.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/metrics.h"
#include "control/registry.h"
#include "control/stats.h"
#include "engine/config.h"
#include "engine/counters.h"
#include "engine/relay_role.h"
#include "engine/sfu_role.h"

namespace control {

/// One worker as the commands see it.
struct CoreView {
    unsigned lcore = 0;
    const engine::CoreCounters* counters = nullptr;  ///< written by the worker only
    const engine::RelayShard* relay = nullptr;       ///< null: no relay on this engine
    const engine::SfuShard* sfu = nullptr;           ///< null: no SFU role on this core
};

/// A port's state at the moment of the request (punchlined reads the link without waiting).
struct PortView {
    std::string device;
    std::uint16_t id = 0;
    std::string mac;
    bool link_up = false;
    std::uint32_t speed_mbps = 0;  ///< 0: unknown
    bool full_duplex = false;
    unsigned queues = 0;
    bool steer_in_software = true;
};

/// What punchlined gives the commands. Every callback runs on the control thread.
struct EngineView {
    std::string version;
    const engine::EngineConfig* config = nullptr;
    unsigned main_lcore = 0;
    std::vector<CoreView> cores;
    std::function<std::vector<PortView>()> ports;
    /// The control thread's clock (CLOCK_MONOTONIC in punchlined, injected in tests).
    std::function<std::uint64_t()> now_ms;
    std::uint64_t start_ms = 0;
    /// The start in Unix milliseconds (the metrics' start time).
    std::uint64_t start_unix_ms = 0;
    /// The rate of the workers' busy cycle counters (the TSC); 0: unknown.
    std::uint64_t cycles_per_second = 0;
    /// The relay's clock, in which allocation expiries are written (the TSC in punchlined),
    /// and its rate.
    std::function<std::uint64_t()> relay_now;
    std::uint64_t relay_ticks_per_second = 1;
    /// The management socket, for /status (set once the server exists; may stay null).
    std::function<nlohmann::json()> control_status;
    /// The relay's drain state and the allocations left (RelayCommands::drain_progress), for
    /// /status; may stay null.
    std::function<nlohmann::json()> relay_drain;
    /// The SFU's drain state and the legs left (SfuCommands::drain_progress), for /status;
    /// may stay null.
    std::function<nlohmann::json()> sfu_drain;
    /// The workers' command rings (engine/worker.h), for /allocations/kill; null where the
    /// engine does not relay. send_kill posts `kill` to the worker cores[core] and returns
    /// false when its ring is full; kill_done reads that worker's CommandAck::done; pause
    /// passes a moment between two reads while /allocations/kill waits, at most kill_wait_ms
    /// of now_ms's clock, for the acknowledgements.
    std::function<bool(std::size_t core, const engine::RelayKill& kill)> send_kill;
    std::function<std::uint64_t(std::size_t core)> kill_done;
    std::function<void()> pause;
    std::uint64_t kill_wait_ms = 250;
};

/// The commands' state: the view and the counters' history (kept by the control loop).
class EngineCommands {
public:
    /// `view` must outlive this; takes the history's first sample now.
    explicit EngineCommands(const EngineView& view);

    /// Registers /status, /stats, /allocations and /allocations/kill in `registry` (which must
    /// not outlive this).
    void register_in(Registry& registry);

    /// The control loop's tick: feeds the rates' history.
    void tick();

    [[nodiscard]] nlohmann::json status() const;
    [[nodiscard]] nlohmann::json stats(const Arguments& arguments) const;
    /// /stats's report: the counters now, rates over `window_s`, the tables' occupancy.
    [[nodiscard]] StatsReport report(unsigned window_s) const;
    /// What the Prometheus endpoint shows (control/metrics.h), from report().
    [[nodiscard]] MetricsInput metrics() const;
    [[nodiscard]] nlohmann::json allocations(const Arguments& arguments) const;
    /// Deletes one allocation (by "id", LCORE:SLOT as the listing shows it, or by "client",
    /// its IP:port) or every allocation of a "user", on every worker or the "core" given,
    /// through the workers' command rings, and waits a bounded time for them. Throws
    /// CommandError: not_available (no relay), missing_argument / bad_argument (none or
    /// several of id, client and user; a malformed one; an unknown core), not_found (nothing
    /// to kill).
    [[nodiscard]] nlohmann::json kill(const Arguments& arguments);

    /// The largest page /allocations returns.
    static constexpr std::int64_t max_page = 1000;

private:
    [[nodiscard]] std::vector<engine::CoreCounters> current() const;

    const EngineView& view_;
    StatsHistory history_;
    // The last RelayKill::sequence sent to each worker (the view's cores).
    std::vector<std::uint32_t> kill_sequence_;
};

}  // namespace control
