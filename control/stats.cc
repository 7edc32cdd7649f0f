// /stats: counters, rates over a window, table occupancy (control/stats.h).
#include "control/stats.h"

#include <string>

#include "engine/drop_reason.h"

namespace control {

StatsHistory::StatsHistory(std::uint64_t now_ms, std::span<const engine::CoreCounters> cores) {
    samples_.push_back({now_ms, {cores.begin(), cores.end()}});
}

void StatsHistory::tick(std::uint64_t now_ms, std::span<const engine::CoreCounters> cores) {
    if (!due(now_ms)) return;
    samples_.push_back({now_ms, {cores.begin(), cores.end()}});
    // The baseline of the longest window must stay: the newest sample at least
    // max_window_s old, and nothing older.
    const std::uint64_t horizon = std::uint64_t{max_window_s} * 1000;
    while (samples_.size() > 2 && now_ms >= samples_[1].ms + horizon) samples_.pop_front();
}

const CounterSample& StatsHistory::baseline(std::uint64_t now_ms,
                                            std::uint64_t window_ms) const noexcept {
    // Newest first: the first sample at least window_ms old.
    for (auto it = samples_.rbegin(); it != samples_.rend(); ++it)
        if (it->ms + window_ms <= now_ms) return *it;
    return samples_.front();
}

Rates rates_between(const engine::CoreCounters& before, const engine::CoreCounters& after,
                    double seconds) noexcept {
    Rates rates;
    if (seconds <= 0) return rates;
    // A counter read while its worker wrote it may be an increment behind a later sample's
    // neighbour field, never behind its own earlier value: counters only grow.
    auto per_second = [seconds](std::uint64_t a, std::uint64_t b) {
        return b >= a ? static_cast<double>(b - a) / seconds : 0.0;
    };
    rates.rx_pps = per_second(before.rx_packets, after.rx_packets);
    rates.rx_bps = per_second(before.rx_bytes, after.rx_bytes) * 8;
    rates.tx_pps = per_second(before.tx_packets, after.tx_packets);
    rates.tx_bps = per_second(before.tx_bytes, after.tx_bytes) * 8;
    rates.handed_off_per_s = per_second(before.handed_off, after.handed_off);
    rates.dropped_per_s = per_second(before.dropped(), after.dropped());
    for (std::size_t r = 0; r < engine::drop_reason_count; ++r)
        rates.drops_per_s[r] = per_second(before.drops[r], after.drops[r]);
    return rates;
}

StatsReport make_report(std::uint64_t now_ms, std::span<const engine::CoreCounters> current,
                        std::span<const unsigned> lcores, std::span<const TableOccupancy> tables,
                        const StatsHistory& history, unsigned window_s) {
    const CounterSample& base = history.baseline(now_ms, std::uint64_t{window_s} * 1000);
    StatsReport report;
    report.window_s = now_ms > base.ms ? static_cast<double>(now_ms - base.ms) / 1000.0 : 0.0;
    engine::CoreCounters total_before;
    for (std::size_t c = 0; c < current.size(); ++c) {
        CoreStats core;
        core.lcore = c < lcores.size() ? lcores[c] : 0;
        core.counters = current[c];
        const engine::CoreCounters before =
            c < base.cores.size() ? base.cores[c] : engine::CoreCounters{};
        core.rates = rates_between(before, core.counters, report.window_s);
        if (c < tables.size()) {
            core.table = tables[c];
            report.total.table.relay = report.total.table.relay || tables[c].relay;
            report.total.table.allocations += tables[c].allocations;
            report.total.table.capacity += tables[c].capacity;
            report.total.table.skipped += tables[c].skipped;
        }
        report.total.counters.add(core.counters);
        total_before.add(before);
        report.cores.push_back(core);
    }
    report.total.rates = rates_between(total_before, report.total.counters, report.window_s);
    return report;
}

namespace {

nlohmann::json core_json(const CoreStats& core, bool with_lcore) {
    const engine::CoreCounters& c = core.counters;
    nlohmann::json drops = nlohmann::json::array();
    for (std::size_t r = 0; r < engine::drop_reason_count; ++r)
        if (c.drops[r] != 0)
            drops.push_back({{"reason", std::string(engine::drop_reasons[r].name)},
                             {"count", c.drops[r]},
                             {"per_s", core.rates.drops_per_s[r]}});
    nlohmann::json out = {
        {"rx",
         {{"packets", c.rx_packets},
          {"bytes", c.rx_bytes},
          {"pps", core.rates.rx_pps},
          {"bps", core.rates.rx_bps}}},
        {"tx",
         {{"packets", c.tx_packets},
          {"bytes", c.tx_bytes},
          {"pps", core.rates.tx_pps},
          {"bps", core.rates.tx_bps}}},
        {"handed_off", {{"packets", c.handed_off}, {"per_s", core.rates.handed_off_per_s}}},
        {"dropped", {{"packets", c.dropped()}, {"per_s", core.rates.dropped_per_s}}},
        {"drops", std::move(drops)},
        {"stun", {{"success", c.stun_success}, {"error", c.stun_error}}},
    };
    if (core.table.relay)
        out["allocations"] = {{"count", core.table.allocations},
                              {"capacity", core.table.capacity},
                              {"skipped", core.table.skipped}};
    else
        out["allocations"] = nullptr;
    if (with_lcore) out["lcore"] = core.lcore;
    return out;
}

}  // namespace

nlohmann::json to_json(const StatsReport& report) {
    nlohmann::json cores = nlohmann::json::array();
    for (const CoreStats& core : report.cores) cores.push_back(core_json(core, true));
    return {{"window_s", report.window_s},
            {"cores", std::move(cores)},
            {"total", core_json(report.total, false)}};
}

}  // namespace control
