// The engine's counters in Prometheus's text exposition format 0.0.4 (design.md §4), served by
// control/metrics_server.h. The numbers are /stats's (control/stats.h): EngineCommands::
// metrics() fills a MetricsInput from the same make_report() that /stats answers from, so the
// endpoint and `punchctl stats` never disagree about a counter at rest.
//
// Every series of the workers' counters is per worker, labelled core="LCORE", and none is a
// total: Prometheus's guidance is that an aggregate beside its parts is double-counted by any
// sum(), and the total is `sum without (core) (...)` exactly (CoreCounters::add is a plain
// sum). Labels are bounded: cores, the fixed tables of drop reasons, TURN outcomes,
// authentication verdicts and SFU admission outcomes, and the version; never a user, an
// address or a session (an SFU session per label would grow the series without bound).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/stats.h"
#include "engine/relay_role.h"
#include "engine/sfu_role.h"

namespace control {

/// One worker's SFU as a scrape shows it.
struct SfuCoreMetrics {
    engine::SfuCounters counters;
    /// The legs its table holds now, counted through the table's seqlock listing (those its
    /// worker kept changing while they were listed are not counted), and the most it can hold.
    std::size_t legs = 0;
    std::size_t leg_capacity = 0;
};

/// What one scrape shows.
struct MetricsInput {
    std::string version;
    double start_time_s = 0;  ///< Unix time of the engine's start
    double uptime_s = 0;
    /// The rate of the busy cycle counters (the TSC), to give them in seconds; 0: unknown,
    /// and the busy-time families are left out.
    std::uint64_t cycles_per_second = 0;
    /// Per core: the counters and the relay table's occupancy (the rates are not used:
    /// Prometheus computes its own).
    StatsReport stats;
    /// The relay's counters, parallel to stats.cores; empty: the engine does not relay.
    std::vector<engine::RelayCounters> relay;
    /// The SFU's counters and legs, parallel to stats.cores; empty: the engine has no SFU role.
    std::vector<SfuCoreMetrics> sfu;
};

/// The exposition: for each family a # HELP line, a # TYPE line, then its samples; counters
/// end in _total, quantities are in base units (bytes, seconds). Every drop reason, TURN
/// outcome, verdict and SFU outcome is present, zero or not, so that rate() has a series from
/// the start.
[[nodiscard]] std::string exposition(const MetricsInput& input);

/// The Content-Type of exposition()'s text.
inline constexpr std::string_view exposition_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

/// A label value as the format writes it between its quotes: \ " and line feed escaped.
[[nodiscard]] std::string escape_label_value(std::string_view value);
/// HELP text as the format writes it: \ and line feed escaped.
[[nodiscard]] std::string escape_help(std::string_view help);

}  // namespace control
