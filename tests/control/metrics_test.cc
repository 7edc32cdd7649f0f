// Tests for control/metrics.cc: the exposition of a hand-built MetricsInput — every family with
// its HELP and TYPE before its samples, counters ending in _total, labels escaped, numbers as
// given, the relay's and the SFU's families only with their role — without EAL. promtool
// checks the real engine's output (tests/control/metrics_endpoint_test.sh).
#include "control/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/drop_reason.h"
#include "engine/sfu_role.h"
#include "engine/turn_auth.h"

namespace control {
namespace {

MetricsInput two_cores(bool relay, bool sfu = false) {
    MetricsInput input;
    input.version = "1.2.3";
    input.start_time_s = 1790000000.5;
    input.uptime_s = 61.5;
    input.cycles_per_second = 1000;
    for (unsigned lcore : {1u, 3u}) {
        CoreStats core;
        core.lcore = lcore;
        core.counters.rx_packets = 100 * lcore;
        core.counters.rx_bytes = 6400 * lcore;
        core.counters.tx_packets = 90 * lcore;
        core.counters.tx_bytes = 5000 * lcore;
        core.counters.handed_off = 4 * lcore;
        core.counters.hairpinned = lcore;
        core.counters.drop(engine::DropReason::no_service);
        core.counters.busy_cycles = 5000;
        core.counters.busy_rx_cycles = 1000;
        core.counters.busy_tx_cycles = 1500;
        core.counters.stun_success = 7;
        if (relay) core.table = {true, lcore, 512, 0};
        input.stats.cores.push_back(core);
    }
    if (relay) {
        input.relay.resize(2);
        input.relay[1].outcomes[0] = 11;
        input.relay[1].auth_failures[static_cast<std::size_t>(engine::AuthVerdict::stale_nonce)] =
            4;
        input.relay[0].to_peer_packets = 20;
        input.relay[0].to_client_bytes = 3000;
        input.relay[0].killed = 2;
    }
    if (sfu) {
        input.sfu.resize(2);
        SfuCoreMetrics& first = input.sfu[0];
        first.legs = 5;
        first.leg_capacity = 1024;
        first.counters.forwarded_packets = 40;
        first.counters.forwarded_bytes = 48000;
        first.counters.fan_outs = 12;
        first.counters.filtered = 3;
        first.counters.unforwardable = 1;
        first.counters.legs_expired = 6;
        first.counters.legs_killed = 2;
        first.counters.probe_answers = 9;
        first.counters.outcomes[static_cast<std::size_t>(engine::SfuOutcome::sfu_admitted)] = 7;
        input.sfu[1].leg_capacity = 1024;
        input.sfu[1].counters.outcomes[static_cast<std::size_t>(
            engine::SfuOutcome::sfu_token_forged)] = 4;
    }
    return input;
}

struct Parsed {
    std::vector<std::string> order;  // families in the order of their HELP lines
    std::map<std::string, std::string> type;
    std::map<std::string, std::string> help;
    std::map<std::string, std::string> samples;  // "name{labels}" -> value
    std::vector<std::string> problems;
};

// A strict reading of format 0.0.4 as this exporter writes it: HELP, then TYPE, then the
// family's samples, each named as the family.
Parsed parse(const std::string& text) {
    Parsed out;
    std::istringstream lines(text);
    std::string line;
    std::string current;
    bool typed = false;
    while (std::getline(lines, line)) {
        if (line.starts_with("# HELP ")) {
            const std::string rest = line.substr(7);
            current = rest.substr(0, rest.find(' '));
            if (out.help.count(current) != 0) out.problems.push_back("two HELP: " + current);
            out.help[current] = rest.substr(rest.find(' ') + 1);
            out.order.push_back(current);
            typed = false;
        } else if (line.starts_with("# TYPE ")) {
            const std::string rest = line.substr(7);
            if (rest.substr(0, rest.find(' ')) != current)
                out.problems.push_back("TYPE without its HELP: " + line);
            out.type[current] = rest.substr(rest.find(' ') + 1);
            typed = true;
        } else {
            const std::size_t space = line.rfind(' ');
            const std::string series = line.substr(0, space);
            const std::string name = series.substr(0, series.find('{'));
            if (name != current || !typed)
                out.problems.push_back("sample outside its family: " + line);
            if (out.samples.count(series) != 0) out.problems.push_back("duplicate: " + series);
            out.samples[series] = line.substr(space + 1);
        }
    }
    return out;
}

TEST(MetricsExposition, EveryFamilyHasHelpTypeAndSamplesInOrder) {
    const std::string text = exposition(two_cores(true, true));
    ASSERT_TRUE(text.ends_with("\n"));
    const Parsed p = parse(text);
    EXPECT_TRUE(p.problems.empty()) << p.problems.front();
    for (const std::string& family : p.order) {
        ASSERT_EQ(p.type.count(family), 1u) << family;
        const std::string& type = p.type.at(family);
        EXPECT_TRUE(type == "counter" || type == "gauge") << family << " " << type;
        EXPECT_EQ(type == "counter", family.ends_with("_total")) << family;
        EXPECT_TRUE(family.starts_with("punchline_")) << family;
        EXPECT_FALSE(p.help.at(family).empty()) << family;
    }
    // Base units: no abbreviations, no cycles, no milliseconds.
    for (const std::string& family : p.order) {
        EXPECT_EQ(family.find("cycles"), std::string::npos) << family;
        EXPECT_EQ(family.find("_ms"), std::string::npos) << family;
    }
}

TEST(MetricsExposition, NumbersAndLabelsAsGiven) {
    const Parsed p = parse(exposition(two_cores(true)));
    const auto& s = p.samples;
    EXPECT_EQ(s.at(R"(punchline_build_info{version="1.2.3"})"), "1");
    EXPECT_EQ(s.at("punchline_start_time_seconds"), "1790000000.5");
    EXPECT_EQ(s.at("punchline_uptime_seconds"), "61.5");
    EXPECT_EQ(s.at(R"(punchline_rx_packets_total{core="1"})"), "100");
    EXPECT_EQ(s.at(R"(punchline_rx_packets_total{core="3"})"), "300");
    EXPECT_EQ(s.at(R"(punchline_rx_bytes_total{core="3"})"), "19200");
    EXPECT_EQ(s.at(R"(punchline_tx_packets_total{core="3"})"), "270");
    EXPECT_EQ(s.at(R"(punchline_tx_bytes_total{core="1"})"), "5000");
    EXPECT_EQ(s.at(R"(punchline_handed_off_packets_total{core="3"})"), "12");
    EXPECT_EQ(s.at(R"(punchline_hairpinned_packets_total{core="3"})"), "3");
    EXPECT_EQ(s.at(R"(punchline_dropped_packets_total{core="1",reason="no_service"})"), "1");
    EXPECT_EQ(s.at(R"(punchline_dropped_packets_total{core="1",reason="ip_fragment"})"), "0");
    EXPECT_EQ(s.at(R"(punchline_stun_responses_total{core="1",result="success"})"), "7");
    // Cycles at 1000 a second: 1000 rx, 1500 tx, 2500 handling.
    EXPECT_EQ(s.at(R"(punchline_busy_seconds_total{core="1",part="rx"})"), "1");
    EXPECT_EQ(s.at(R"(punchline_busy_seconds_total{core="1",part="tx"})"), "1.5");
    EXPECT_EQ(s.at(R"(punchline_busy_seconds_total{core="1",part="handling"})"), "2.5");
    EXPECT_EQ(s.at(R"(punchline_relay_allocations{core="3"})"), "3");
    EXPECT_EQ(s.at(R"(punchline_relay_allocation_capacity{core="3"})"), "512");
    EXPECT_EQ(s.at(R"(punchline_relay_packets_total{core="1",direction="to_peer"})"), "20");
    EXPECT_EQ(s.at(R"(punchline_relay_bytes_total{core="1",direction="to_client"})"), "3000");
    EXPECT_EQ(s.at(R"(punchline_relay_killed_total{core="1"})"), "2");
    EXPECT_EQ(s.at(R"(punchline_relay_killed_total{core="3"})"), "0");
    const std::string outcome(engine::turn_outcomes[0].name);
    EXPECT_EQ(s.at(R"(punchline_turn_messages_total{core="3",outcome=")" + outcome + "\"}"),
              "11");
    EXPECT_EQ(s.at(R"(punchline_turn_auth_failures_total{core="3",verdict="stale_nonce"})"), "4");
    // ok is no failure.
    EXPECT_EQ(s.count(R"(punchline_turn_auth_failures_total{core="3",verdict="ok"})"), 0u);
}

TEST(MetricsExposition, EveryReasonOutcomeAndVerdictIsASeries) {
    const Parsed p = parse(exposition(two_cores(true, true)));
    std::size_t drops = 0, outcomes = 0, verdicts = 0, admissions = 0;
    for (const auto& [series, value] : p.samples) {
        drops += series.starts_with("punchline_dropped_packets_total{") ? 1 : 0;
        outcomes += series.starts_with("punchline_turn_messages_total{") ? 1 : 0;
        verdicts += series.starts_with("punchline_turn_auth_failures_total{") ? 1 : 0;
        admissions += series.starts_with("punchline_sfu_admissions_total{") ? 1 : 0;
    }
    EXPECT_EQ(drops, 2 * engine::drop_reason_count);
    EXPECT_EQ(outcomes, 2 * engine::turn_outcome_count);
    EXPECT_EQ(verdicts, 2 * (engine::auth_verdict_count - 1));
    EXPECT_EQ(admissions, 2 * engine::sfu_outcome_count);
    // Each by its name, zero or not, on both cores.
    for (const engine::ReasonInfo& outcome : engine::sfu_outcomes)
        for (const char* core : {"1", "3"})
            EXPECT_EQ(p.samples.count("punchline_sfu_admissions_total{core=\"" +
                                      std::string(core) + "\",outcome=\"" +
                                      std::string(outcome.name) + "\"}"),
                      1u)
                << outcome.name << " on core " << core;
}

TEST(MetricsExposition, SfuNumbersAndLabelsAsGiven) {
    const Parsed p = parse(exposition(two_cores(false, true)));
    const auto& s = p.samples;
    EXPECT_EQ(p.type.at("punchline_sfu_legs"), "gauge");
    EXPECT_EQ(p.type.at("punchline_sfu_leg_capacity"), "gauge");
    EXPECT_EQ(s.at(R"(punchline_sfu_legs{core="1"})"), "5");
    EXPECT_EQ(s.at(R"(punchline_sfu_legs{core="3"})"), "0");
    EXPECT_EQ(s.at(R"(punchline_sfu_leg_capacity{core="1"})"), "1024");
    EXPECT_EQ(s.at(R"(punchline_sfu_leg_capacity{core="3"})"), "1024");
    EXPECT_EQ(s.at(R"(punchline_sfu_forwarded_packets_total{core="1"})"), "40");
    EXPECT_EQ(s.at(R"(punchline_sfu_forwarded_packets_total{core="3"})"), "0");
    EXPECT_EQ(s.at(R"(punchline_sfu_forwarded_bytes_total{core="1"})"), "48000");
    EXPECT_EQ(s.at(R"(punchline_sfu_fan_outs_total{core="1"})"), "12");
    EXPECT_EQ(s.at(R"(punchline_sfu_copies_not_sent_total{core="1",reason="filtered"})"), "3");
    EXPECT_EQ(s.at(R"(punchline_sfu_copies_not_sent_total{core="1",reason="unforwardable"})"),
              "1");
    EXPECT_EQ(s.at(R"(punchline_sfu_copies_not_sent_total{core="3",reason="filtered"})"), "0");
    EXPECT_EQ(s.at(R"(punchline_sfu_legs_ended_total{core="1",cause="expired"})"), "6");
    EXPECT_EQ(s.at(R"(punchline_sfu_legs_ended_total{core="1",cause="killed"})"), "2");
    EXPECT_EQ(s.at(R"(punchline_sfu_legs_ended_total{core="3",cause="killed"})"), "0");
    EXPECT_EQ(s.at(R"(punchline_sfu_admissions_total{core="1",outcome="sfu_admitted"})"), "7");
    EXPECT_EQ(s.at(R"(punchline_sfu_admissions_total{core="3",outcome="sfu_token_forged"})"),
              "4");
    EXPECT_EQ(s.at(R"(punchline_sfu_admissions_total{core="3",outcome="sfu_admitted"})"), "0");
    EXPECT_EQ(s.at(R"(punchline_sfu_probe_answers_total{core="1"})"), "9");
    EXPECT_EQ(s.at(R"(punchline_sfu_probe_answers_total{core="3"})"), "0");
    // The SFU alone: no relay family.
    for (const std::string& family : p.order) {
        EXPECT_FALSE(family.starts_with("punchline_relay_")) << family;
        EXPECT_FALSE(family.starts_with("punchline_turn_")) << family;
    }
}

TEST(MetricsExposition, NoTotalsAndNoPerSessionLabels) {
    // Every labelled series of the workers' counters names its core: none is an aggregate
    // that a sum() would count twice; and no label but the bounded ones.
    const Parsed p = parse(exposition(two_cores(true, true)));
    const std::set<std::string> allowed = {"core",    "reason",  "result", "part", "direction",
                                           "outcome", "verdict", "cause",  "version"};
    for (const auto& [series, value] : p.samples) {
        const std::string name = series.substr(0, series.find('{'));
        if (name.starts_with("punchline_build_info") || name == "punchline_start_time_seconds" ||
            name == "punchline_uptime_seconds")
            continue;
        EXPECT_NE(series.find("{core=\""), std::string::npos) << series;
        std::size_t at = series.find('{');
        while (at != std::string::npos && at + 1 < series.size()) {
            const std::size_t equals = series.find('=', at + 1);
            EXPECT_EQ(allowed.count(series.substr(at + 1, equals - at - 1)), 1u) << series;
            at = series.find(',', series.find('"', equals + 2));
        }
    }
}

TEST(MetricsExposition, WithoutARelayNoRelayFamilies) {
    const std::string text = exposition(two_cores(false));
    EXPECT_EQ(text.find("punchline_relay_"), std::string::npos);
    EXPECT_EQ(text.find("punchline_turn_"), std::string::npos);
    EXPECT_NE(text.find("punchline_rx_packets_total{core=\"3\"} 300\n"), std::string::npos);
}

TEST(MetricsExposition, WithoutAnSfuNoSfuFamilies) {
    const std::string text = exposition(two_cores(true));
    EXPECT_EQ(text.find("punchline_sfu_"), std::string::npos);
    EXPECT_NE(text.find("punchline_relay_killed_total{core=\"1\"} 2\n"), std::string::npos);
}

TEST(MetricsExposition, WithoutTheCycleRateNoBusySeconds) {
    MetricsInput input = two_cores(false);
    input.cycles_per_second = 0;
    const std::string text = exposition(input);
    EXPECT_EQ(text.find("punchline_busy_seconds_total"), std::string::npos);
    EXPECT_NE(text.find("punchline_stalled_iterations_total"), std::string::npos);
}

TEST(MetricsExposition, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label_value(R"(a"b\c)"), R"(a\"b\\c)");
    EXPECT_EQ(escape_label_value("two\nlines"), R"(two\nlines)");
    EXPECT_EQ(escape_label_value("plain-1.0"), "plain-1.0");
    EXPECT_EQ(escape_help("back\\slash \"quoted\"\nnext"), R"(back\\slash "quoted"\nnext)");
    MetricsInput input = two_cores(false);
    input.version = "1.0\"\n\\";
    const std::string text = exposition(input);
    EXPECT_NE(text.find(R"(punchline_build_info{version="1.0\"\n\\"} 1)" "\n"),
              std::string::npos)
        << text.substr(0, 300);
}

}  // namespace
}  // namespace control
