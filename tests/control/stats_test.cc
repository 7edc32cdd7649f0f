// Tests for control/stats.cc: the counters' history and the rates over a window, on an
// injected clock.
#include "control/stats.h"

#include <gtest/gtest.h>

#include <vector>

namespace control {
namespace {

engine::CoreCounters counters(std::uint64_t rx, std::uint64_t bytes) {
    engine::CoreCounters c;
    c.rx_packets = rx;
    c.rx_bytes = bytes;
    c.tx_packets = rx / 2;
    c.tx_bytes = bytes / 2;
    c.handed_off = rx / 4;
    c.drops[static_cast<std::size_t>(engine::DropReason::no_service)] = rx / 4;
    return c;
}

TEST(StatsHistory, KeepsOneSampleAPeriod) {
    std::vector<engine::CoreCounters> cores = {counters(0, 0)};
    StatsHistory history(1000, cores);
    unsigned due = 0;
    for (std::uint64_t ms = 1050; ms < 5000; ms += 50) {
        due += history.due(ms) ? 1 : 0;
        history.tick(ms, cores);
    }
    // Samples at 1000, 2000, 3000, 4000.
    EXPECT_EQ(due, 3u);
    EXPECT_EQ(history.size(), 4u);
    EXPECT_EQ(history.baseline(4999, 1000).ms, 3000u);
    EXPECT_EQ(history.baseline(4999, 2500).ms, 2000u);
    EXPECT_EQ(history.baseline(4000, 0).ms, 4000u);
}

TEST(StatsHistory, ABaselineOlderThanTheHistoryIsTheOldestSample) {
    std::vector<engine::CoreCounters> cores = {counters(0, 0)};
    StatsHistory history(1000, cores);
    history.tick(2000, cores);
    EXPECT_EQ(history.baseline(2500, 60000).ms, 1000u);
}

TEST(StatsHistory, ForgetsSamplesBeyondTheLongestWindow) {
    std::vector<engine::CoreCounters> cores = {counters(0, 0)};
    StatsHistory history(0, cores);
    const std::uint64_t end = (StatsHistory::max_window_s + 100) * 1000ull;
    for (std::uint64_t ms = 1000; ms <= end; ms += 1000) history.tick(ms, cores);
    EXPECT_LE(history.size(), StatsHistory::max_window_s + 2);
    // The longest window still has its baseline.
    EXPECT_EQ(history.baseline(end, StatsHistory::max_window_s * 1000ull).ms,
              end - StatsHistory::max_window_s * 1000ull);
}

TEST(Rates, PerSecondOverTheWindowInBitsForBytes) {
    const Rates rates = rates_between(counters(1000, 100000), counters(3000, 300000), 2.0);
    EXPECT_DOUBLE_EQ(rates.rx_pps, 1000);
    EXPECT_DOUBLE_EQ(rates.rx_bps, 800000);
    EXPECT_DOUBLE_EQ(rates.tx_pps, 500);
    EXPECT_DOUBLE_EQ(rates.tx_bps, 400000);
    EXPECT_DOUBLE_EQ(rates.handed_off_per_s, 250);
    EXPECT_DOUBLE_EQ(rates.dropped_per_s, 250);
    EXPECT_DOUBLE_EQ(rates.drops_per_s[static_cast<std::size_t>(engine::DropReason::no_service)],
                     250);
}

TEST(Rates, AnEmptyWindowHasNoRates) {
    const Rates rates = rates_between(counters(0, 0), counters(3000, 300000), 0.0);
    EXPECT_EQ(rates.rx_pps, 0);
}

TEST(Rates, ACounterThatWentBackwardsIsNoNegativeRate) {
    const Rates rates = rates_between(counters(3000, 300000), counters(1000, 100000), 1.0);
    EXPECT_EQ(rates.rx_pps, 0);
}

TEST(StatsReport, PerCoreAndTotalOverTheActualWindow) {
    std::vector<engine::CoreCounters> before = {counters(0, 0), counters(100, 1000)};
    StatsHistory history(10000, before);
    std::vector<engine::CoreCounters> now = {counters(4000, 400000), counters(2100, 21000)};
    const std::vector<unsigned> lcores = {1, 2};
    const std::vector<TableOccupancy> tables = {{true, 3, 100, 0}, {true, 4, 100, 1}};
    // Asked for 5 s; the history is 4 s old.
    const StatsReport report = make_report(14000, now, lcores, tables, history, 5);
    EXPECT_DOUBLE_EQ(report.window_s, 4.0);
    ASSERT_EQ(report.cores.size(), 2u);
    EXPECT_EQ(report.cores[1].lcore, 2u);
    EXPECT_DOUBLE_EQ(report.cores[0].rates.rx_pps, 1000);
    EXPECT_DOUBLE_EQ(report.cores[1].rates.rx_pps, 500);
    EXPECT_DOUBLE_EQ(report.total.rates.rx_pps, 1500);
    EXPECT_EQ(report.total.counters.rx_packets, 6100u);
    EXPECT_EQ(report.total.counters.dropped(), 1000u + 525u);
    EXPECT_EQ(report.total.table.allocations, 7u);
    EXPECT_EQ(report.total.table.capacity, 200u);
    EXPECT_EQ(report.total.table.skipped, 1u);

    const nlohmann::json json = to_json(report);
    EXPECT_EQ(json["window_s"], 4.0);
    EXPECT_EQ(json["cores"][0]["lcore"], 1);
    EXPECT_EQ(json["total"]["rx"]["packets"], 6100);
    EXPECT_EQ(json["total"]["allocations"]["count"], 7);
    ASSERT_EQ(json["total"]["drops"].size(), 1u);
    EXPECT_EQ(json["total"]["drops"][0]["reason"], "no_service");
    EXPECT_EQ(json["total"]["drops"][0]["count"], 1525);
    EXPECT_FALSE(json["total"].contains("lcore"));
}

TEST(StatsReport, WithoutARelayTheAllocationsAreNull) {
    std::vector<engine::CoreCounters> cores = {counters(0, 0)};
    StatsHistory history(0, cores);
    const std::vector<unsigned> lcores = {1};
    const std::vector<TableOccupancy> tables = {{}};
    const nlohmann::json json = to_json(make_report(0, cores, lcores, tables, history, 5));
    EXPECT_TRUE(json["total"]["allocations"].is_null());
    EXPECT_EQ(json["window_s"], 0.0);
    EXPECT_EQ(json["total"]["rx"]["pps"], 0.0);
}

}  // namespace
}  // namespace control
