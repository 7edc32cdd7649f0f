// Prometheus text exposition 0.0.4 of the engine's counters (control/metrics.h).
#include "control/metrics.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <initializer_list>
#include <utility>

#include "engine/drop_reason.h"
#include "engine/reason_table.h"
#include "engine/turn_auth.h"

namespace control {
namespace {

using Label = std::pair<std::string_view, std::string_view>;

class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}

    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_.append("# HELP ").append(name).append(" ").append(escape_help(help)).append("\n");
        out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value) {
        begin(name, labels);
        std::array<char, 24> text{};
        const auto end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
        out_.append(text.data(), end).append("\n");
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, double value) {
        begin(name, labels);
        // The shortest text that reads back as the same double (Go's ParseFloat does).
        std::array<char, 32> text{};
        const auto end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
        out_.append(text.data(), end).append("\n");
    }

private:
    void begin(std::string_view name, std::initializer_list<Label> labels) {
        out_.append(name);
        if (labels.size() == 0) {
            out_.append(" ");
            return;
        }
        char separator = '{';
        for (const auto& [label, value] : labels) {
            out_.push_back(separator);
            out_.append(label).append("=\"").append(escape_label_value(value)).append("\"");
            separator = ',';
        }
        out_.append("} ");
    }

    std::string& out_;
};

// The per-core families: one sample per core of what `value` reads from it.
template <typename Value>
void per_core(Writer& writer, const MetricsInput& input, std::string_view name,
              std::string_view type, std::string_view help, Value value) {
    writer.family(name, type, help);
    for (const CoreStats& core : input.stats.cores) {
        const std::string lcore = std::to_string(core.lcore);
        writer.sample(name, {{"core", lcore}}, value(core));
    }
}

// The families of a role's counters, role[i] being stats.cores[i]'s: one sample per core
// that has them, of what `value` reads from its role[i].
template <typename Role, typename Value>
void per_role_core(Writer& writer, const MetricsInput& input, const std::vector<Role>& role,
                   std::string_view name, std::string_view type, std::string_view help,
                   Value value) {
    writer.family(name, type, help);
    const std::size_t cores = std::min(role.size(), input.stats.cores.size());
    for (std::size_t i = 0; i < cores; ++i) {
        const std::string lcore = std::to_string(input.stats.cores[i].lcore);
        writer.sample(name, {{"core", lcore}}, static_cast<std::uint64_t>(value(role[i])));
    }
}

// As per_role_core, split by a second label of two values: value(role[i], true) is `first`'s,
// value(role[i], false) `second`'s.
template <typename Role, typename Value>
void per_role_core_split(Writer& writer, const MetricsInput& input, const std::vector<Role>& role,
                         std::string_view name, std::string_view help, std::string_view label,
                         std::string_view first, std::string_view second, Value value) {
    writer.family(name, "counter", help);
    const std::size_t cores = std::min(role.size(), input.stats.cores.size());
    for (std::size_t i = 0; i < cores; ++i) {
        const std::string lcore = std::to_string(input.stats.cores[i].lcore);
        writer.sample(name, {{"core", lcore}, {label, first}}, value(role[i], true));
        writer.sample(name, {{"core", lcore}, {label, second}}, value(role[i], false));
    }
}

// As per_role_core, with one series per entry of a reason table from `from` on (a table's
// entry 0 may be no failure, never counted): value(role[i], r) is entry r's.
template <typename Role, std::size_t count, typename Value>
void per_role_core_table(Writer& writer, const MetricsInput& input, const std::vector<Role>& role,
                         std::string_view name, std::string_view help, std::string_view label,
                         const std::array<engine::ReasonInfo, count>& table, std::size_t from,
                         Value value) {
    writer.family(name, "counter", help);
    const std::size_t cores = std::min(role.size(), input.stats.cores.size());
    for (std::size_t i = 0; i < cores; ++i) {
        const std::string lcore = std::to_string(input.stats.cores[i].lcore);
        for (std::size_t r = from; r < count; ++r)
            writer.sample(name, {{"core", lcore}, {label, table[r].name}}, value(role[i], r));
    }
}

void relay_families(Writer& writer, const MetricsInput& input) {
    per_core(writer, input, "punchline_relay_allocations", "gauge",
             "TURN allocations the worker's relay table holds now (those its worker kept "
             "changing while they were listed are not counted).",
             [](const CoreStats& c) { return static_cast<std::uint64_t>(c.table.allocations); });
    per_core(writer, input, "punchline_relay_allocation_capacity", "gauge",
             "TURN allocations the worker's relay table can hold.",
             [](const CoreStats& c) { return static_cast<std::uint64_t>(c.table.capacity); });

    per_role_core_split(writer, input, input.relay, "punchline_relay_packets_total",
                        "Datagrams the relay forwarded, by direction: to_peer (from a client, "
                        "out of its relayed address) or to_client (from a peer, to its client).",
                        "direction", "to_peer", "to_client",
                        [](const engine::RelayCounters& r, bool to_peer) {
                            return to_peer ? r.to_peer_packets : r.to_client_packets;
                        });
    per_role_core_split(writer, input, input.relay, "punchline_relay_bytes_total",
                        "UDP payload bytes the relay forwarded, by direction (as "
                        "punchline_relay_packets_total).",
                        "direction", "to_peer", "to_client",
                        [](const engine::RelayCounters& r, bool to_peer) {
                            return to_peer ? r.to_peer_bytes : r.to_client_bytes;
                        });
    per_role_core(writer, input, input.relay, "punchline_relay_killed_total", "counter",
                  "Allocations the operator deleted (punchctl allocations kill).",
                  [](const engine::RelayCounters& r) { return r.killed; });

    per_role_core_table(writer, input, input.relay, "punchline_turn_messages_total",
                        "TURN messages the worker handled, by outcome (engine/include/engine/"
                        "relay_role.h gives each outcome's meaning and error code).",
                        "outcome", engine::turn_outcomes, 0,
                        [](const engine::RelayCounters& r, std::size_t o) {
                            return r.outcomes[o];
                        });
    static_assert(static_cast<std::size_t>(engine::AuthVerdict::ok) == 0);
    // Verdict 0 is ok: not a failure, never counted.
    per_role_core_table(writer, input, input.relay, "punchline_turn_auth_failures_total",
                        "TURN requests whose authentication failed, by verdict (engine/include/"
                        "engine/turn_auth.h).",
                        "verdict", engine::auth_verdicts, 1,
                        [](const engine::RelayCounters& r, std::size_t a) {
                            return r.auth_failures[a];
                        });
}

// Per worker, as the relay's; never per session or per participant: their number is the
// clients', not the operator's, and each would be a series of its own.
void sfu_families(Writer& writer, const MetricsInput& input) {
    per_role_core(writer, input, input.sfu, "punchline_sfu_legs", "gauge",
                  "SFU legs (a participant's 5-tuple in a session) the worker's table holds now "
                  "(those its worker kept changing while they were listed are not counted).",
                  [](const SfuCoreMetrics& s) { return s.legs; });
    per_role_core(writer, input, input.sfu, "punchline_sfu_leg_capacity", "gauge",
                  "SFU legs the worker's table can hold (sfu.max_legs).",
                  [](const SfuCoreMetrics& s) { return s.leg_capacity; });
    per_role_core(writer, input, input.sfu, "punchline_sfu_forwarded_packets_total", "counter",
                  "Datagrams the SFU sent to subscribers, each copy counted.",
                  [](const SfuCoreMetrics& s) { return s.counters.forwarded_packets; });
    per_role_core(writer, input, input.sfu, "punchline_sfu_forwarded_bytes_total", "counter",
                  "UDP payload bytes of the datagrams the SFU sent to subscribers, each copy "
                  "counted.",
                  [](const SfuCoreMetrics& s) { return s.counters.forwarded_bytes; });
    per_role_core(writer, input, input.sfu, "punchline_sfu_fan_outs_total", "counter",
                  "Received datagrams the SFU sent to two subscribers or more.",
                  [](const SfuCoreMetrics& s) { return s.counters.fan_outs; });
    per_role_core_split(writer, input, input.sfu, "punchline_sfu_copies_not_sent_total",
                        "Copies for a subscriber the SFU did not send, by reason: filtered (the "
                        "subscriber paused the publisher or did not select its SSRC) or "
                        "unforwardable (over the port's MTU, or no headroom for the headers).",
                        "reason", "filtered", "unforwardable",
                        [](const SfuCoreMetrics& s, bool filtered) {
                            return filtered ? s.counters.filtered : s.counters.unforwardable;
                        });
    per_role_core_split(writer, input, input.sfu, "punchline_sfu_legs_ended_total",
                        "SFU legs the worker removed, by cause: expired (silent for "
                        "sfu.leg_timeout_s) or killed (punchctl's kill, or the control thread's "
                        "for a replayed token or a full session).",
                        "cause", "expired", "killed",
                        [](const SfuCoreMetrics& s, bool expired) {
                            return expired ? s.counters.legs_expired : s.counters.legs_killed;
                        });
    per_role_core_table(writer, input, input.sfu, "punchline_sfu_admissions_total",
                        "Binding requests to the SFU port, by what admission made of them, "
                        "and legs the control thread removed as replayed or beyond their "
                        "session's room (sfu_token_replayed, sfu_session_full); engine/include/"
                        "engine/sfu_role.h gives each outcome's meaning and error code.",
                        "outcome", engine::sfu_outcomes, 0,
                        [](const SfuCoreMetrics& s, std::size_t o) {
                            return s.counters.outcomes[o];
                        });
    per_role_core(writer, input, input.sfu, "punchline_sfu_probe_answers_total", "counter",
                  "STUN responses on the SFU port that the worker handed to the control thread "
                  "(answers to the node's own NAT discovery and test packets).",
                  [](const SfuCoreMetrics& s) { return s.counters.probe_answers; });
}

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escape_help(std::string_view help) {
    std::string out;
    out.reserve(help.size());
    for (const char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string exposition(const MetricsInput& input) {
    std::string out;
    // ≈ 150 bytes a series; a core has about 130 with the relay, 21 more with the SFU.
    out.reserve(4096 + input.stats.cores.size() * 20000);
    Writer writer(out);

    writer.family("punchline_build_info", "gauge",
                  "Always 1; the label gives the version of the running punchlined.");
    writer.sample("punchline_build_info", {{"version", input.version}}, std::uint64_t{1});
    writer.family("punchline_start_time_seconds", "gauge",
                  "When the engine started, in seconds since the Unix epoch.");
    writer.sample("punchline_start_time_seconds", {}, input.start_time_s);
    writer.family("punchline_uptime_seconds", "gauge", "Seconds since the engine started.");
    writer.sample("punchline_uptime_seconds", {}, input.uptime_s);

    per_core(writer, input, "punchline_rx_packets_total", "counter",
             "Packets the worker received on its RX queues (every port).",
             [](const CoreStats& c) { return c.counters.rx_packets; });
    per_core(writer, input, "punchline_rx_bytes_total", "counter",
             "Bytes of the packets the worker received, Ethernet header included.",
             [](const CoreStats& c) { return c.counters.rx_bytes; });
    per_core(writer, input, "punchline_tx_packets_total", "counter",
             "Packets the worker's TX queues accepted.",
             [](const CoreStats& c) { return c.counters.tx_packets; });
    per_core(writer, input, "punchline_tx_bytes_total", "counter",
             "Bytes of the packets the worker's TX queues accepted, Ethernet header included.",
             [](const CoreStats& c) { return c.counters.tx_bytes; });
    per_core(writer, input, "punchline_handed_off_packets_total", "counter",
             "Packets the worker handed to another worker (steering, relay hairpin) or to the "
             "control thread. rx = tx + handed off + dropped.",
             [](const CoreStats& c) { return c.counters.handed_off; });
    per_core(writer, input, "punchline_hairpinned_packets_total", "counter",
             "Of the packets handed off, datagrams the relay sent to another worker's relay "
             "port.",
             [](const CoreStats& c) { return c.counters.hairpinned; });
    per_core(writer, input, "punchline_fan_out_copies_total", "counter",
             "Packets the SFU sent beyond the one it received (fan-out copies), each also in "
             "tx. rx + fan-out copies = tx + handed off + dropped.",
             [](const CoreStats& c) { return c.counters.fan_out_copies; });
    per_core(writer, input, "punchline_to_control_packets_total", "counter",
             "Of the packets handed off, frames given to the control thread (ARP replies, "
             "neighbour advertisements).",
             [](const CoreStats& c) { return c.counters.to_control; });
    per_core(writer, input, "punchline_control_sent_packets_total", "counter",
             "Frames the control thread sent through the worker's TX queues (ARP requests, "
             "neighbour solicitations); never received, so not in rx.",
             [](const CoreStats& c) { return c.counters.control_sent; });
    per_core(writer, input, "punchline_control_refused_packets_total", "counter",
             "Frames of the control thread that the worker's TX queue refused.",
             [](const CoreStats& c) { return c.counters.control_refused; });

    writer.family("punchline_dropped_packets_total", "counter",
                  "Packets the worker dropped, by reason (engine/include/engine/drop_reason.h "
                  "gives each reason's meaning).");
    for (const CoreStats& core : input.stats.cores) {
        const std::string lcore = std::to_string(core.lcore);
        for (std::size_t r = 0; r < engine::drop_reason_count; ++r)
            writer.sample("punchline_dropped_packets_total",
                          {{"core", lcore}, {"reason", engine::drop_reasons[r].name}},
                          core.counters.drops[r]);
    }

    writer.family("punchline_stun_responses_total", "counter",
                  "STUN Binding responses the worker built, by result (success or error).");
    for (const CoreStats& core : input.stats.cores) {
        const std::string lcore = std::to_string(core.lcore);
        writer.sample("punchline_stun_responses_total", {{"core", lcore}, {"result", "success"}},
                      core.counters.stun_success);
        writer.sample("punchline_stun_responses_total", {{"core", lcore}, {"result", "error"}},
                      core.counters.stun_error);
    }

    if (input.cycles_per_second != 0) {
        const auto hz = static_cast<double>(input.cycles_per_second);
        writer.family("punchline_busy_seconds_total", "counter",
                      "Time the worker spent in loop iterations that took in packets (idle "
                      "polling excluded), by part: rx (inside rte_eth_rx_burst), tx (the TX "
                      "flush), handling (the rest: the engine's own work).");
        for (const CoreStats& core : input.stats.cores) {
            const std::string lcore = std::to_string(core.lcore);
            const engine::CoreCounters& c = core.counters;
            writer.sample("punchline_busy_seconds_total", {{"core", lcore}, {"part", "rx"}},
                          static_cast<double>(c.busy_rx_cycles) / hz);
            writer.sample("punchline_busy_seconds_total", {{"core", lcore}, {"part", "tx"}},
                          static_cast<double>(c.busy_tx_cycles) / hz);
            writer.sample("punchline_busy_seconds_total", {{"core", lcore}, {"part", "handling"}},
                          static_cast<double>(c.handling_cycles()) / hz);
        }
        per_core(writer, input, "punchline_stalled_seconds_total", "counter",
                 "Time in iterations that took in packets but lasted over 1 ms (the worker was "
                 "preempted); not in punchline_busy_seconds_total.",
                 [hz](const CoreStats& c) {
                     return static_cast<double>(c.counters.stalled_cycles) / hz;
                 });
    }
    per_core(writer, input, "punchline_stalled_iterations_total", "counter",
             "Iterations that took in packets but lasted over 1 ms (non-zero on a worker core "
             "shared with other threads).",
             [](const CoreStats& c) { return c.counters.stalled_iterations; });

    if (!input.relay.empty()) relay_families(writer, input);
    if (!input.sfu.empty()) sfu_families(writer, input);
    return out;
}

}  // namespace control
