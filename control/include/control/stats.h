// The workers' counters as /stats reports them (design.md §4): totals per core and in all,
// and rates over a window, computed by the control thread from periodic copies of the
// counters. The workers do nothing for it: each copy is a plain read of their per-core
// counters (engine/counters.h says why that is enough). punchctl, the socket and (later) the
// Prometheus exporter all go through collect_stats() (style rule 14).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/counters.h"

namespace control {

/// The counters of every worker at one instant of the control thread's clock.
struct CounterSample {
    std::uint64_t ms = 0;
    std::vector<engine::CoreCounters> cores;
};

/// A bounded history of samples, one per sample period, for rates over a window.
class StatsHistory {
public:
    static constexpr std::uint64_t sample_period_ms = 1000;
    /// The longest window /stats takes, in seconds; the history holds one more sample.
    static constexpr unsigned max_window_s = 300;

    /// Takes its first sample at `now_ms`.
    StatsHistory(std::uint64_t now_ms, std::span<const engine::CoreCounters> cores);

    /// Called every control tick: keeps a copy of `cores` when sample_period_ms has passed
    /// since the last sample, dropping those older than max_window_s. Cost: nothing on most
    /// ticks, a copy of every core's counters once a second.
    void tick(std::uint64_t now_ms, std::span<const engine::CoreCounters> cores);

    /// Whether tick() at `now_ms` would take a sample (so that the caller copies the counters
    /// only then).
    [[nodiscard]] bool due(std::uint64_t now_ms) const noexcept {
        return now_ms >= samples_.back().ms + sample_period_ms;
    }

    /// The newest sample taken at least `window_ms` before `now_ms`, or the oldest one when
    /// the history is younger than the window. Never null (the constructor's sample).
    [[nodiscard]] const CounterSample& baseline(std::uint64_t now_ms,
                                                std::uint64_t window_ms) const noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return samples_.size(); }

private:
    std::deque<CounterSample> samples_;
};

struct Rates {
    double rx_pps = 0;
    double rx_bps = 0;  ///< bits per second
    double tx_pps = 0;
    double tx_bps = 0;
    double handed_off_per_s = 0;
    double dropped_per_s = 0;
    std::array<double, engine::drop_reason_count> drops_per_s{};
};

/// The relay table's occupancy on one core.
struct TableOccupancy {
    bool relay = false;  ///< false: this engine does not relay
    std::size_t allocations = 0;
    std::size_t capacity = 0;
    std::size_t skipped = 0;  ///< slots the owner kept changing while they were read
};

struct CoreStats {
    unsigned lcore = 0;
    engine::CoreCounters counters;  ///< totals since start-up
    Rates rates;
    TableOccupancy table;
};

struct StatsReport {
    double window_s = 0;  ///< the window the rates were computed over (the history's age at most)
    std::vector<CoreStats> cores;
    CoreStats total;  ///< lcore unused
};

/// Rates between `before` and `after`, `seconds` apart (0: all rates 0).
[[nodiscard]] Rates rates_between(const engine::CoreCounters& before,
                                  const engine::CoreCounters& after, double seconds) noexcept;

/// The report from the workers' counters now (`current`, one per core, `lcores` parallel),
/// the history's baseline `window_s` back, and each core's table occupancy (`tables`,
/// parallel, may be empty).
[[nodiscard]] StatsReport make_report(std::uint64_t now_ms,
                                      std::span<const engine::CoreCounters> current,
                                      std::span<const unsigned> lcores,
                                      std::span<const TableOccupancy> tables,
                                      const StatsHistory& history, unsigned window_s);

[[nodiscard]] nlohmann::json to_json(const StatsReport& report);

}  // namespace control
