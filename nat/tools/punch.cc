// punch: the client side of the ladder, from the command line.
//
//   punch probe --stun HOST:PORT [--stun HOST:PORT ...] [--json] [--timeout S]
//       Binding requests to every server at once; the nearest (fastest valid answer) gives the
//       reflexive address; RFC 5780 tests against the nearest server that offers OTHER-ADDRESS
//       give mapping, filtering, hairpinning and the NAT type.
//
// Exit status: 0 the NAT type is known; 3 a reflexive address was found but the type is
// unknown (no server offers OTHER-ADDRESS, or a test it needs failed); 1 no server gave a valid
// answer (blocked, or all down); 2 a usage error (bad option, a name that does not resolve).
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "punch/event_loop.h"
#include "punch/probe.h"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_no_answer = 1;
constexpr int exit_usage = 2;
constexpr int exit_type_unknown = 3;

std::string text(const stun::Address& a) {
    char buffer[48];
    return {buffer, a.format(buffer)};
}

double ms(punch::Time t) { return static_cast<double>(t.count()) / 1000.0; }

std::string ms_text(punch::Time t) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1f ms", ms(t));
    return buffer;
}

// What one server's transaction came to, in words.
std::string outcome_text(const punch::BindingResult& r) {
    switch (r.status) {
    case punch::TransactionStatus::success:
        return "ok " + ms_text(r.elapsed) + ", mapped " + text(r.mapped) +
               (r.other_address ? ", other " + text(*r.other_address) : ", no OTHER-ADDRESS");
    case punch::TransactionStatus::error_response:
        return "error " + std::to_string(r.error_code) + " " + r.error_reason + " after " +
               ms_text(r.elapsed);
    case punch::TransactionStatus::timeout:
        return "no answer after " + ms_text(r.elapsed) + " (" + std::to_string(r.sends) +
               (r.sends == 1 ? " request)" : " requests)");
    case punch::TransactionStatus::send_failed: return "could not send (no route?)";
    }
    return "?";
}

std::string test_text(const punch::TestResult& t) {
    std::string s(punch::to_string(t.outcome));
    if (t.outcome == punch::TestOutcome::success)
        s += ": mapped " + text(t.mapped) + " from " + text(t.from);
    return s;
}

// The words a person reads; the JSON has the enum names.
const char* type_words(punch::NatType t) {
    switch (t) {
    case punch::NatType::unknown: return "unknown";
    case punch::NatType::blocked: return "blocked (no STUN server answered)";
    case punch::NatType::none: return "no NAT";
    case punch::NatType::full_cone: return "full cone";
    case punch::NatType::address_restricted: return "address-restricted cone";
    case punch::NatType::port_restricted: return "port-restricted cone";
    case punch::NatType::symmetric: return "symmetric";
    }
    return "?";
}

nlohmann::json address_json(const stun::Address& a) { return text(a); }

nlohmann::json test_json(const punch::TestResult& t) {
    nlohmann::json j{{"outcome", punch::to_string(t.outcome)}};
    if (t.outcome == punch::TestOutcome::success) {
        j["mapped"] = address_json(t.mapped);
        j["from"] = address_json(t.from);
    }
    return j;
}

nlohmann::json report_json(const punch::ProbeReport& r) {
    using nlohmann::json;
    json servers = json::array();
    for (const auto& s : r.servers) {
        json j{{"server", s.server.name},
               {"address", address_json(s.server.address)},
               {"status", punch::to_string(s.result.status)},
               {"elapsed_ms", ms(s.result.elapsed)},
               {"requests", s.result.sends}};
        if (s.result.status == punch::TransactionStatus::success) {
            j["rtt_ms"] = ms(s.result.elapsed);
            j["mapped"] = address_json(s.result.mapped);
            if (s.result.other_address) j["other_address"] = address_json(*s.result.other_address);
            if (s.result.response_origin)
                j["response_origin"] = address_json(*s.result.response_origin);
        }
        if (s.result.status == punch::TransactionStatus::error_response) {
            j["error_code"] = s.result.error_code;
            j["error_reason"] = s.result.error_reason;
        }
        servers.push_back(std::move(j));
    }
    const auto& c = r.classification;
    json out{{"servers", servers},
             {"nearest", r.nearest ? json(r.servers[*r.nearest].server.name) : json(nullptr)},
             {"reflexive", r.nearest ? address_json(r.reflexive) : json(nullptr)},
             {"classifier",
              r.classifier ? json(r.servers[*r.classifier].server.name) : json(nullptr)},
             {"local", r.classifier ? address_json(r.local) : json(nullptr)},
             {"mapping", punch::to_string(c.mapping)},
             {"filtering", punch::to_string(c.filtering)},
             {"hairpinning", punch::to_string(c.hairpinning)},
             {"nat_type", punch::to_string(c.type)},
             {"elapsed_ms", ms(r.elapsed)}};
    if (r.classifier) {
        const auto& t = r.tests;
        out["tests"] = {{"mapping1", test_json(t.mapping1)},   {"mapping2", test_json(t.mapping2)},
                        {"mapping3", test_json(t.mapping3)},   {"filtering1", test_json(t.filtering1)},
                        {"filtering2", test_json(t.filtering2)}, {"filtering3", test_json(t.filtering3)},
                        {"hairpin", punch::to_string(t.hairpin)}};
    }
    json rejected = json::object();
    for (std::size_t i = 0; i < r.rejected.size(); ++i)
        if (r.rejected[i] != 0)
            rejected[std::string(punch::to_string(static_cast<punch::ResponseRejection>(i)))] =
                r.rejected[i];
    out["rejected_responses"] = rejected;
    return out;
}

void print_report(const punch::ProbeReport& r) {
    const auto& c = r.classification;
    if (r.nearest) {
        const auto& n = r.servers[*r.nearest];
        std::printf("nearest      %s (%s), %s\n", n.server.name.c_str(),
                    text(n.server.address).c_str(), ms_text(n.result.elapsed).c_str());
        std::printf("reflexive    %s\n", text(r.reflexive).c_str());
    } else {
        std::printf("nearest      none: no server gave a valid answer\n");
    }
    if (r.classifier) {
        std::printf("local        %s\n", text(r.local).c_str());
        std::printf("classified   against %s\n", r.servers[*r.classifier].server.name.c_str());
    } else if (r.nearest) {
        std::printf("classified   not: no server answered with OTHER-ADDRESS (RFC 5780)\n");
    }
    std::printf("mapping      %s\n", std::string(punch::to_string(c.mapping)).c_str());
    std::printf("filtering    %s\n", std::string(punch::to_string(c.filtering)).c_str());
    std::printf("hairpinning  %s\n", std::string(punch::to_string(c.hairpinning)).c_str());
    std::printf("NAT type     %s\n", type_words(c.type));
    std::printf("servers:\n");
    for (const auto& s : r.servers)
        std::printf("  %-24s %s\n", s.server.name.c_str(), outcome_text(s.result).c_str());
    if (r.classifier) {
        const auto& t = r.tests;
        std::printf("RFC 5780 tests:\n");
        std::printf("  mapping I     %s\n", test_text(t.mapping1).c_str());
        std::printf("  mapping II    %s\n", test_text(t.mapping2).c_str());
        std::printf("  mapping III   %s\n", test_text(t.mapping3).c_str());
        std::printf("  filtering I   %s\n", test_text(t.filtering1).c_str());
        std::printf("  filtering II  %s\n", test_text(t.filtering2).c_str());
        std::printf("  filtering III %s\n", test_text(t.filtering3).c_str());
        std::printf("  hairpin       %s\n", std::string(punch::to_string(t.hairpin)).c_str());
    }
    for (std::size_t i = 0; i < r.rejected.size(); ++i)
        if (r.rejected[i] != 0)
            std::printf("ignored      %llu responses: %s\n",
                        static_cast<unsigned long long>(r.rejected[i]),
                        std::string(punch::to_string(static_cast<punch::ResponseRejection>(i)))
                            .c_str());
    std::printf("took         %s\n", ms_text(r.elapsed).c_str());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"punch: the client side of punchline's ladder"};
    app.require_subcommand(1);
    auto* probe = app.add_subcommand(
        "probe", "find the nearest STUN server, the reflexive address and the NAT type");
    std::vector<std::string> servers;
    bool json = false;
    double timeout_s = 3.0;
    probe->add_option("--stun", servers, "a STUN server, HOST:PORT (repeat for several)")
        ->required();
    probe->add_flag("--json", json, "print the report as JSON");
    probe->add_option("--timeout", timeout_s,
                      "seconds each STUN transaction may take, retransmissions included "
                      "(RFC 8489 §6.2.1; 0.1..39.5)")
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_ok : exit_usage;
    }
    if (!(timeout_s >= 0.1 && timeout_s <= 39.5)) {
        std::fprintf(stderr, "punch probe: --timeout %g: expected seconds from 0.1 to 39.5 "
                             "(RFC 8489's whole schedule), like --timeout 3\n", timeout_s);
        return exit_usage;
    }
    punch::ProbeConfig config;
    config.policy.max_duration = punch::Time{static_cast<long long>(std::llround(timeout_s * 1e6))};
    for (const auto& s : servers) {
        punch::ProbeServer server{s, {}};
        if (auto error = punch::resolve_host_port(s, server.address); !error.empty()) {
            std::fprintf(stderr, "punch probe: --stun %s\n", error.c_str());
            return exit_usage;
        }
        config.servers.push_back(std::move(server));
    }
    punch::SteadyClock clock;
    punch::EventLoop loop(clock);
    punch::ProbeReport report;
    if (auto error = punch::run_probe(loop, config, report); !error.empty()) {
        std::fprintf(stderr, "punch probe: %s\n", error.c_str());
        return exit_usage;
    }
    if (json)
        std::cout << report_json(report).dump(2) << "\n";
    else
        print_report(report);
    if (!report.nearest) return exit_no_answer;
    return report.classification.type == punch::NatType::unknown ? exit_type_unknown : exit_ok;
}
