// punch: the client side of the ladder, from the command line.
//
//   punch probe --stun HOST:PORT [--stun HOST:PORT ...] [--json] [--timeout S]
//       Binding requests to every server at once; the nearest (fastest valid answer) gives the
//       reflexive address; RFC 5780 tests against the nearest server that offers OTHER-ADDRESS
//       give mapping, filtering, hairpinning and the NAT type. With --lifetime [--lifetime-max S],
//       then the mapping's lifetime against the same server (RFC 5780 §4.6, punch/lifetime.h).
//
//   punch call --coord HOST:PORT --room ROOM --name NAME [--duration S] [--bitrate BPS]
//              [--rate PPS] [--force p2p|sfu|relay] [--sfu-timeout S] [--json] ...
//       The ladder (design.md §5) for one call: the coordinator names the STUN and relay
//       servers, the probe finds the reflexive address and the NAT type from the call's socket,
//       the room pairs us with the peer, punching tries P2P for the preset time, an SFU node
//       that both sides reach carries the call when it fails, the relay when no node does;
//       then synthetic media for --duration, keepalives and fall-back to the relay if the P2P
//       or SFU path dies. Prints the rung, the time to connect and
//       the media figures (loss, RTT, jitter).
//
//   punch bridge --coord HOST:PORT --room ROOM --name NAME --listen HOST:PORT --forward HOST:PORT
//       The same ladder, carrying what arrives on a local UDP port (RTP from ffmpeg or
//       GStreamer) to the peer, whose punch bridge sends it to its --forward address.
//
// Exit status of probe: 0 the NAT type is known; 3 a reflexive address was found but the type
// is unknown (no server offers OTHER-ADDRESS, or a test it needs failed); 1 no server gave a
// valid answer (blocked, or all down); 2 a usage error (bad option, a name that does not
// resolve); 4 --lifetime could not measure (the report says why). Of call and bridge: 0 the call connected and ended normally; 1 it failed (the
// report says where); 2 a usage error.
#include <CLI/CLI.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "punch/call.h"
#include "punch/event_loop.h"
#include "punch/lifetime.h"
#include "punch/probe.h"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_no_answer = 1;
constexpr int exit_usage = 2;
constexpr int exit_type_unknown = 3;
constexpr int exit_lifetime_failed = 4;

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

double seconds(punch::Time t) { return static_cast<double>(t.count()) / 1e6; }

// --lifetime: {"alive_s", "dead_s" (null: alive up to max), "max_s", "trials", ...}.
nlohmann::json lifetime_json(const punch::LifetimeReport& r, punch::Time max) {
    using nlohmann::json;
    json trials = json::array();
    for (const auto& t : r.trials) trials.push_back({{"wait_s", seconds(t.wait)}, {"alive", t.alive}});
    const auto& b = r.bounds;
    return {{"alive_s", b.alive ? json(seconds(*b.alive)) : json(nullptr)},
            {"dead_s", b.dead ? json(seconds(*b.dead)) : json(nullptr)},
            {"max_s", seconds(max)},
            {"trials", trials},
            {"rounds", r.rounds},
            {"elapsed_ms", ms(r.elapsed)},
            {"error", r.error.empty() ? json(nullptr) : json(r.error)}};
}

std::string seconds_text(punch::Time t) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%g s", seconds(t));
    return buffer;
}

void print_lifetime(const punch::LifetimeReport& r, punch::Time max) {
    const auto& b = r.bounds;
    const std::string alive = b.alive ? "alive after " + seconds_text(*b.alive) : "never alive";
    const std::string dead =
        b.dead ? "dead after " + seconds_text(*b.dead) : "> " + seconds_text(max) + " (max)";
    if (!r.error.empty()) std::printf("lifetime     not measured: %s\n", r.error.c_str());
    if (r.trials.empty()) return;
    std::printf("lifetime     %s, %s (%zu trials, %u %s, %.1f s)\n", alive.c_str(),
                dead.c_str(), r.trials.size(), r.rounds, r.rounds == 1 ? "round" : "rounds",
                seconds(r.elapsed));
}

// ---------------------------------------------------------------------------------------------
// call and bridge

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted = true; }

std::optional<double> ms_opt(const std::optional<punch::Time>& t) {
    if (!t) return std::nullopt;
    return ms(*t);
}

nlohmann::json opt_json(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json opt_json(const std::optional<stun::Address>& a) {
    return a ? nlohmann::json(text(*a)) : nlohmann::json(nullptr);
}

// The TURN client's figures, when this side allocated: counters, and drops by reason.
nlohmann::json turn_json(const punch::CallReport& r) {
    if (!r.turn) return nullptr;
    const auto& c = *r.turn;
    nlohmann::json drops = nlohmann::json::object();
    for (std::size_t i = 0; i < r.turn_drops.size(); ++i)
        if (r.turn_drops[i] != 0)
            drops[std::string(punch::to_string(static_cast<punch::TurnDrop>(i)))] =
                r.turn_drops[i];
    return {{"requests_sent", c.requests_sent},
            {"retransmissions", c.retransmissions},
            {"stale_nonce_retries", c.stale_nonce_retries},
            {"channel_data_sent", c.channel_data_sent},
            {"send_indications_sent", c.send_indications_sent},
            {"channel_data_received", c.channel_data_received},
            {"data_indications_received", c.data_indications_received},
            {"drops", drops}};
}

// The SFU rung, when it was tried: the chosen node, each candidate's outcome and timing, what
// the coordinator left out and why, and what the rung dropped by reason.
nlohmann::json sfu_json(const punch::CallReport& r) {
    using nlohmann::json;
    if (r.sfu_session.empty() && r.sfu_legs.empty()) return nullptr;
    json candidates = json::array();
    for (const auto& l : r.sfu_legs)
        candidates.push_back(
            {{"node_id", l.node.node_id},
             {"address", text(l.node.address)},
             {"target", text(l.target)},
             {"peer_reflexive", l.peer_reflexive},
             {"nat_type", l.node.nat_type},
             {"region", l.node.region},
             {"load", l.node.load},
             {"state", punch::to_string(l.state)},
             {"peer", l.peer == punch::SfuPeerLeg::up       ? "up"
                      : l.peer == punch::SfuPeerLeg::failed ? "failed"
                                                            : "unknown"},
             {"outcome", l.outcome},
             {"started_ms", opt_json(ms_opt(l.started))},
             {"up_after_ms", opt_json(ms_opt(l.up_after))},
             {"rtt_ms", opt_json(ms_opt(l.rtt))},
             {"sent", l.sent},
             {"node_requests", l.node_requests},
             {"latched", l.latched}});
    json dropped = json::array();
    for (const auto& d : r.sfu_dropped)
        dropped.push_back({{"node_id", d.node_id}, {"reason", d.reason}});
    json drops = json::object();
    for (std::size_t i = 0; i < r.sfu_drops.size(); ++i)
        if (r.sfu_drops[i] != 0)
            drops[std::string(punch::to_string(static_cast<punch::SfuLegDrop>(i)))] =
                r.sfu_drops[i];
    return {{"session", r.sfu_session},
            {"node", r.sfu_node ? json(*r.sfu_node) : json(nullptr)},
            {"candidates", candidates},
            {"dropped", dropped},
            {"drops", drops}};
}

nlohmann::json call_json(const punch::CallReport& r) {
    using nlohmann::json;
    const auto& m = r.media;
    json paths = json::array();
    for (const auto& p : m.paths)
        paths.push_back({{"name", p.name},
                         {"since_ms", ms(p.since)},
                         {"sent", p.data_sent},
                         {"received", p.data_received},
                         {"pings_sent", p.pings_sent},
                         {"pongs_received", p.pongs_received},
                         {"rtt_min_ms", opt_json(ms_opt(p.rtt_min))},
                         {"srtt_ms", opt_json(ms_opt(p.srtt))}});
    json drops = json::object();
    for (std::size_t i = 0; i < m.drops.size(); ++i)
        if (m.drops[i] != 0) drops[std::string(punch::media_drop_reasons[i].name)] = m.drops[i];
    json media{{"sent", m.data_sent},
               {"peer_received",
                m.peer_received ? json(*m.peer_received) : json(nullptr)},
               {"peer_final", m.peer_final},
               {"received", m.data_received},
               {"expected", m.expected},
               {"lost", m.lost},
               {"peer_sent", m.peer_sent ? json(*m.peer_sent) : json(nullptr)},
               {"duplicates", m.duplicates},
               {"reordered", m.reordered},
               {"jitter_ms", m.jitter_ms},
               {"rtt_ms", opt_json(ms_opt(m.srtt))},
               {"rtt_min_ms", opt_json(ms_opt(m.rtt_min))},
               {"bytes_sent", m.bytes_sent},
               {"bytes_received", m.bytes_received},
               {"path_changes", m.path_changes},
               {"paths", paths},
               {"drops", drops},
               {"text", punch::to_string(m)}};
    json steps = json::array();
    for (const auto& s : r.steps)
        steps.push_back({{"step", s.name},
                         {"outcome", s.outcome},
                         {"started_ms", ms(s.started)},
                         {"elapsed_ms", ms(s.elapsed)}});
    return {{"connected", r.connected},
            {"rung", punch::to_string(r.rung)},
            {"first_rung", punch::to_string(r.first_rung)},
            {"error", r.error},
            {"time_to_connect_ms", opt_json(ms_opt(r.time_to_connect))},
            {"controlling", r.controlling},
            {"peer", r.peer_name},
            {"local", text(r.local)},
            {"reflexive", text(r.reflexive)},
            {"relayed", opt_json(r.relayed)},
            {"remote", opt_json(r.remote)},
            {"local_nat", punch::to_string(r.local_nat)},
            {"remote_nat", r.remote_nat},
            {"fallbacks", r.fallbacks},
            {"fallback_ms", opt_json(ms_opt(r.fallback_time))},
            {"steps", steps},
            {"media", media},
            {"punch", r.punch_report},
            {"sfu", sfu_json(r)},
            {"stray_media", r.stray_media},
            {"stray_other", r.stray_other},
            {"turn", turn_json(r)}};
}

void print_call(const punch::CallReport& r) {
    if (!r.connected && r.first_rung == punch::Rung::none)
        std::printf("call         FAILED: %s\n", r.error.c_str());
    else if (!r.error.empty())
        std::printf("call         ended early: %s\n", r.error.c_str());
    std::printf("rung         %s", std::string(punch::to_string(r.rung)).c_str());
    if (r.first_rung != r.rung && r.first_rung != punch::Rung::none)
        std::printf(" (began %s, moved after %s)",
                    std::string(punch::to_string(r.first_rung)).c_str(),
                    r.fallback_time ? ms_text(*r.fallback_time).c_str() : "?");
    if (r.sfu_node && r.rung == punch::Rung::sfu)
        std::printf(", node %llu", static_cast<unsigned long long>(*r.sfu_node));
    if (r.remote) std::printf(", to %s", text(*r.remote).c_str());
    std::printf("%s\n", r.controlling ? ", controlling" : "");
    std::printf("connect      %s\n",
                r.time_to_connect ? ms_text(*r.time_to_connect).c_str() : "never");
    std::printf("peer         %s, NAT %s\n", r.peer_name.c_str(), r.remote_nat.c_str());
    std::printf("us           %s, reflexive %s, NAT %s%s%s\n", text(r.local).c_str(),
                text(r.reflexive).c_str(), std::string(punch::to_string(r.local_nat)).c_str(),
                r.relayed ? ", relayed " : "", r.relayed ? text(*r.relayed).c_str() : "");
    std::printf("media        %s\n", punch::to_string(r.media).c_str());
    std::printf("steps:\n");
    for (const auto& s : r.steps)
        std::printf("  %-12s at %9s  took %9s  %s\n", s.name.c_str(), ms_text(s.started).c_str(),
                    ms_text(s.elapsed).c_str(), s.outcome.c_str());
    const auto lines = [](const std::string& text) {
        std::string line;
        for (const char c : text) {
            if (c == '\n') {
                std::printf("  %s\n", line.c_str());
                line.clear();
            } else {
                line += c;
            }
        }
        if (!line.empty()) std::printf("  %s\n", line.c_str());
    };
    if (!r.sfu_report.empty()) {
        std::printf("sfu nodes (session %s):\n", r.sfu_session.c_str());
        lines(r.sfu_report);
    }
    if (!r.punch_report.empty()) {
        std::printf("punch pairs:\n");
        lines(r.punch_report);
    }
}

// The options call and bridge share, parsed into a CallConfig.
struct CallOptions {
    std::string coordinator;
    std::string room;
    std::string name;
    std::string region;
    std::vector<std::string> stun;
    std::string force;
    double sfu_timeout_s = 2;
    double duration_s = 10;
    std::uint64_t bitrate = 64000;
    std::uint32_t rate = 50;
    double punch_timeout_s = 3;
    double dead_after_s = 2;
    double peer_wait_s = 30;
    bool json = false;
};

void add_call_options(CLI::App* app, CallOptions& o, bool synthetic) {
    app->add_option("--coord", o.coordinator, "the coordinator, HOST:PORT")->required();
    app->add_option("--room", o.room, "the room to meet the peer in")->required();
    app->add_option("--name", o.name, "our name in the room")->required();
    app->add_option("--region", o.region, "our region, for the coordinator");
    app->add_option("--stun", o.stun,
                    "a STUN server, HOST:PORT, instead of the coordinator's (repeatable)");
    app->add_option("--force", o.force,
                    "take only this rung: p2p, sfu (no punching, no relay) or relay (for tests)")
        ->check(CLI::IsMember({"p2p", "sfu", "relay"}));
    app->add_option("--duration", o.duration_s,
                    synthetic ? "seconds of media once connected"
                              : "seconds to carry the port once connected (0: until Ctrl-C)")
        ->capture_default_str();
    if (synthetic) {
        app->add_option("--bitrate", o.bitrate, "synthetic media, bits per second")
            ->capture_default_str();
        app->add_option("--rate", o.rate, "synthetic media, packets per second")
            ->capture_default_str();
    }
    app->add_option("--punch-timeout", o.punch_timeout_s,
                    "the preset time: seconds to punch before the relay")
        ->capture_default_str();
    app->add_option("--sfu-timeout", o.sfu_timeout_s,
                    "seconds to wait for an SFU node's admission ACK before its next candidate")
        ->capture_default_str();
    app->add_option("--dead-after", o.dead_after_s,
                    "seconds of silence after which the path is dead and the call falls back")
        ->capture_default_str();
    app->add_option("--peer-wait", o.peer_wait_s, "seconds to wait for the peer to join")
        ->capture_default_str();
    app->add_flag("--json", o.json, "print the report as JSON");
}

punch::Time seconds(double s) {
    return punch::Time{static_cast<long long>(std::llround(s * 1e6))};
}

// Returns "" or the usage error, naming the option and what to type.
std::string make_call_config(const CallOptions& o, bool synthetic, punch::CallConfig& c) {
    if (stun::Address a; !punch::resolve_host_port(o.coordinator, a).empty())
        return "--coord " + punch::resolve_host_port(o.coordinator, a);
    c.coordinator = o.coordinator;
    for (const auto& s : o.stun) {
        punch::ProbeServer server{s, {}};
        if (auto e = punch::resolve_host_port(s, server.address); !e.empty()) return "--stun " + e;
        c.stun_servers.push_back(server);
    }
    const auto in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
    if (!in(o.duration_s, synthetic ? 0.1 : 0, 86400))
        return "--duration " + std::to_string(o.duration_s) + ": expected seconds, " +
               (synthetic ? "0.1" : "0") + " to 86400, like --duration 10";
    if (!in(o.punch_timeout_s, 0.1, 60))
        return "--punch-timeout: expected seconds from 0.1 to 60, like --punch-timeout 3";
    if (!in(o.sfu_timeout_s, 0.1, 60))
        return "--sfu-timeout: expected seconds from 0.1 to 60, like --sfu-timeout 2";
    if (!in(o.dead_after_s, 0.2, 60))
        return "--dead-after: expected seconds from 0.2 to 60, like --dead-after 2";
    if (!in(o.peer_wait_s, 1, 3600))
        return "--peer-wait: expected seconds from 1 to 3600, like --peer-wait 30";
    c.room = o.room;
    c.name = o.name;
    c.region = o.region;
    c.force = o.force == "p2p"     ? punch::ForceRung::p2p
              : o.force == "sfu"   ? punch::ForceRung::sfu
              : o.force == "relay" ? punch::ForceRung::relay
                                   : punch::ForceRung::none;
    c.sfu.timeout = seconds(o.sfu_timeout_s);
    c.duration = seconds(o.duration_s);
    c.punch.timeout = seconds(o.punch_timeout_s);
    c.peer_wait = seconds(o.peer_wait_s);
    c.media.dead_after = seconds(o.dead_after_s);
    if (synthetic) {
        c.media.bitrate_bps = o.bitrate;
        c.media.packet_rate = o.rate;
    } else {
        c.media.bitrate_bps = 0;
        c.media.packet_rate = 0;
    }
    try {
        punch::MediaSession check(c.media);
    } catch (const std::invalid_argument& e) {
        return std::string("--bitrate/--rate: ") + e.what();
    }
    return {};
}

// Runs the call on `loop` until it ends; Ctrl-C hangs up (bye, report).
int run_call(punch::EventLoop& loop, punch::Call& call, const CallOptions& o,
             const char* command) {
    std::optional<punch::CallReport> report;
    if (auto error = call.start([&](const punch::CallReport& r) { report = r; });
        !error.empty()) {
        std::fprintf(stderr, "punch %s: %s\n", command, error.c_str());
        return exit_no_answer;
    }
    bool hung_up = false;
    while (!report) {
        loop.run_once(std::chrono::milliseconds(100));
        if (interrupted && !hung_up) {
            hung_up = true;
            call.hang_up();
        }
    }
    if (o.json)
        std::cout << call_json(*report).dump(2) << "\n";
    else
        print_call(*report);
    return report->connected && report->error.empty() ? exit_ok : exit_no_answer;
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
    bool lifetime = false;
    double lifetime_max_s = 120;
    probe->add_flag("--lifetime", lifetime,
                    "then measure the NAT mapping's lifetime (RFC 5780 §4.6) against the server "
                    "that classified (else the nearest); takes up to about twice --lifetime-max");
    probe->add_option("--lifetime-max", lifetime_max_s,
                      "the longest idle time --lifetime tries, seconds (2..3600)")
        ->capture_default_str();

    CallOptions call_options;
    auto* call = app.add_subcommand(
        "call", "meet a peer in a room, connect by the cheapest rung, stream synthetic media");
    add_call_options(call, call_options, true);

    CallOptions bridge_options;
    bridge_options.duration_s = 0;
    std::string listen_text;
    std::string forward_text;
    auto* bridge = app.add_subcommand(
        "bridge", "carry a local UDP port (RTP, ...) to the peer's, over the ladder");
    add_call_options(bridge, bridge_options, false);
    bridge->add_option("--listen", listen_text,
                       "the local UDP address to read from, HOST:PORT (e.g. 127.0.0.1:5004)")
        ->required();
    bridge->add_option("--forward", forward_text,
                       "where the peer's datagrams go, HOST:PORT (e.g. 127.0.0.1:5006)")
        ->required();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_ok : exit_usage;
    }
    punch::SteadyClock clock;
    punch::EventLoop loop(clock);
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);

    if (*call || *bridge) {
        const bool synthetic = call->parsed();
        const char* command = synthetic ? "call" : "bridge";
        const CallOptions& o = synthetic ? call_options : bridge_options;
        punch::CallConfig config;
        if (auto error = make_call_config(o, synthetic, config); !error.empty()) {
            std::fprintf(stderr, "punch %s: %s\n", command, error.c_str());
            return exit_usage;
        }
        punch::Call the_call(loop, config);
        if (synthetic) return run_call(loop, the_call, o, command);

        // The bridge's local side: datagrams from --listen go to the peer; the peer's go to
        // --forward from the same socket (so an RTP tool can send and receive on one port).
        stun::Address listen;
        stun::Address forward;
        if (auto e = punch::resolve_host_port(listen_text, listen); !e.empty()) {
            std::fprintf(stderr, "punch bridge: --listen %s\n", e.c_str());
            return exit_usage;
        }
        if (auto e = punch::resolve_host_port(forward_text, forward); !e.empty()) {
            std::fprintf(stderr, "punch bridge: --forward %s\n", e.c_str());
            return exit_usage;
        }
        punch::UdpSocket local;
        if (auto e = local.open(listen); !e.empty()) {
            std::fprintf(stderr, "punch bridge: --listen %s\n", e.c_str());
            return exit_usage;
        }
        std::uint64_t carried = 0;
        std::uint64_t not_connected = 0;
        std::uint64_t delivered = 0;
        the_call.on_payload([&](std::span<const std::byte> payload) {
            if (local.send_to(forward, payload)) ++delivered;
        });
        if (auto e = loop.watch(local, [&] {
                std::array<std::byte, 2048> buffer;
                stun::Address from;
                for (long n; (n = local.receive_from(buffer, from)) >= 0;) {
                    const auto d =
                        std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
                    if (the_call.send_payload(d)) ++carried;
                    else ++not_connected;
                }
            });
            !e.empty()) {
            std::fprintf(stderr, "punch bridge: --listen %s\n", e.c_str());
            return exit_usage;
        }
        const int status = run_call(loop, the_call, o, command);
        loop.unwatch(local);
        std::fprintf(o.json ? stderr : stdout,
                     "bridge       %llu datagrams carried to the peer, %llu before the path was "
                     "up (dropped), %llu from the peer forwarded to %s\n",
                     static_cast<unsigned long long>(carried),
                     static_cast<unsigned long long>(not_connected),
                     static_cast<unsigned long long>(delivered), forward_text.c_str());
        return status;
    }

    if (!(timeout_s >= 0.1 && timeout_s <= 39.5)) {
        std::fprintf(stderr, "punch probe: --timeout %g: expected seconds from 0.1 to 39.5 "
                             "(RFC 8489's whole schedule), like --timeout 3\n", timeout_s);
        return exit_usage;
    }
    if (!(lifetime_max_s >= 2 && lifetime_max_s <= 3600)) {
        std::fprintf(stderr, "punch probe: --lifetime-max %g: expected seconds from 2 to 3600, "
                             "like --lifetime-max 120\n", lifetime_max_s);
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
    punch::ProbeReport report;
    if (auto error = punch::run_probe(loop, config, report); !error.empty()) {
        std::fprintf(stderr, "punch probe: %s\n", error.c_str());
        return exit_usage;
    }
    // The lifetime against the classifier (an RFC 5780 server, so RESPONSE-PORT is likely
    // honoured), else the nearest.
    std::optional<punch::LifetimeReport> lifetime_report;
    punch::LifetimeConfig lifetime_config;
    lifetime_config.policy = config.policy;
    lifetime_config.search.max =
        punch::Time{static_cast<long long>(std::llround(lifetime_max_s * 1e6))};
    if (lifetime) {
        lifetime_report.emplace();
        if (const auto server = report.classifier ? report.classifier : report.nearest) {
            lifetime_config.server = report.servers[*server].server.address;
            if (auto e = punch::run_lifetime(loop, lifetime_config, *lifetime_report); !e.empty())
                lifetime_report->error = e;
        } else {
            lifetime_report->error = "no server answered the probe";
        }
    }
    if (json) {
        auto out = report_json(report);
        if (lifetime_report)
            out["mapping_lifetime"] = lifetime_json(*lifetime_report, lifetime_config.search.max);
        std::cout << out.dump(2) << "\n";
    } else {
        print_report(report);
        if (lifetime_report) print_lifetime(*lifetime_report, lifetime_config.search.max);
    }
    if (!report.nearest) return exit_no_answer;
    if (lifetime_report && !lifetime_report->error.empty()) return exit_lifetime_failed;
    return report.classification.type == punch::NatType::unknown ? exit_type_unknown : exit_ok;
}
