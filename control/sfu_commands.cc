// /sfu/sessions, /sfu/kill, /sfu/pause, /sfu/resume, /sfu/select (control/sfu_commands.h).
#include "control/sfu_commands.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <map>
#include <utility>

#include "stun/address.h"
#include "stun/sfu_token.h"

namespace control {
namespace {

using nlohmann::json;

std::string address_text(const stun::Address& address) {
    std::array<char, 48> text{};
    return {text.data(), address.format(text)};
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& word : words) out += (out.empty() ? "" : ", ") + word;
    return out.empty() ? "none" : out;
}

// One session's traffic, summed over its legs as listed: what it received from its
// participants, what it sent them, what the selections held back. The oldest leg's age is
// the session's on this node.
json session_summary(const json& legs) {
    std::uint64_t rx_packets = 0, rx_bytes = 0, forwarded_packets = 0, forwarded_bytes = 0,
                  filtered = 0;
    double age_s = 0;
    json participants = json::array();
    for (const json& leg : legs) {
        rx_packets += leg["rx_packets"].get<std::uint64_t>();
        rx_bytes += leg["rx_bytes"].get<std::uint64_t>();
        forwarded_packets += leg["forwarded_packets"].get<std::uint64_t>();
        forwarded_bytes += leg["forwarded_bytes"].get<std::uint64_t>();
        filtered += leg["filtered"].get<std::uint64_t>();
        age_s = std::max(age_s, leg["age_s"].get<double>());
        participants.push_back(leg["participant"]);
    }
    return {{"legs", legs.size()},
            {"participants", std::move(participants)},
            {"age_s", age_s},
            {"rx_packets", rx_packets},
            {"rx_bytes", rx_bytes},
            {"forwarded_packets", forwarded_packets},
            {"forwarded_bytes", forwarded_bytes},
            {"filtered", filtered}};
}

const engine::SfuMember* find_member(const engine::SfuMembershipBuilder& builder,
                                     std::uint64_t session, std::string_view participant) {
    const auto it = builder.sessions().find(session);
    if (it == builder.sessions().end()) return nullptr;
    for (const engine::SfuMember& m : it->second.members)
        if (m.participant.view() == participant) return &m;
    return nullptr;
}

}  // namespace

SfuCommands::SfuCommands(const EngineView& view, SfuControl control)
    : view_(view), control_(std::move(control)) {}

std::string SfuCommands::session_text(std::uint64_t session) {
    std::array<char, 17> text{};
    std::snprintf(text.data(), text.size(), "%016llx", static_cast<unsigned long long>(session));
    return text.data();
}

std::optional<std::uint64_t> SfuCommands::parse_session(std::string_view text) {
    if (text.empty() || text.size() > 16) return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::vector<std::uint32_t>> SfuCommands::parse_ssrcs(std::string_view text) {
    std::vector<std::uint32_t> out;
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        std::string_view word = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        if (comma != std::string_view::npos && text.empty()) return std::nullopt;  // "1,"
        int base = 10;
        if (word.starts_with("0x") || word.starts_with("0X")) {
            word.remove_prefix(2);
            base = 16;
        }
        std::uint32_t ssrc = 0;
        const auto [end, error] =
            std::from_chars(word.data(), word.data() + word.size(), ssrc, base);
        if (word.empty() || error != std::errc() || end != word.data() + word.size())
            return std::nullopt;
        if (std::find(out.begin(), out.end(), ssrc) == out.end()) out.push_back(ssrc);
        if (out.size() > max_ssrcs) return std::nullopt;
    }
    return out;
}

void SfuCommands::register_in(Registry& registry) {
    const ArgumentSpec session{"session", ArgumentType::string,
                               "the SFU session id: 16 hex digits, as punchctl sfu lists it",
                               "00000000000000a1", true, 1, 16};
    ArgumentSpec session_filter = session;
    session_filter.required = false;
    session_filter.help = "only this session (16 hex digits)";
    const auto participant = [](std::string name, std::string help, bool required) {
        return ArgumentSpec{std::move(name), ArgumentType::string, std::move(help), "alice",
                            required, 1,
                            static_cast<std::int64_t>(stun::sfu_participant_max)};
    };
    registry.add({"/sfu/sessions",
                  "the SFU's sessions (each one's legs and traffic summed) and legs: "
                  "participant, client, worker, age, idle time, packets and bytes in and out, "
                  "paused publishers, selected SSRCs",
                  {session_filter},
                  [this](const Arguments& arguments) { return sessions(arguments); }});
    registry.add({"/sfu/kill",
                  "remove a whole SFU session, or one leg with \"participant\" (the owner "
                  "worker erases it; its client must be admitted again)",
                  {session, participant("participant", "only this participant's leg", false)},
                  [this](const Arguments& arguments) { return kill(arguments); }});
    const std::vector<ArgumentSpec> pair = {
        session, participant("subscriber", "the participant that receives", true),
        participant("publisher", "the participant whose media it receives", true)};
    registry.add({"/sfu/pause", "stop forwarding a publisher's media to one subscriber", pair,
                  [this](const Arguments& arguments) { return pause(arguments, true); }});
    registry.add({"/sfu/resume", "forward a paused publisher's media to the subscriber again",
                  pair, [this](const Arguments& arguments) { return pause(arguments, false); }});
    registry.add({"/sfu/select",
                  "the RTP SSRCs a subscriber receives (comma-separated; empty: all again)",
                  {session, participant("subscriber", "the participant that receives", true),
                   {"ssrcs", ArgumentType::string,
                    "comma-separated SSRCs, decimal or 0x hex; \"\" clears the selection",
                    "1234,0x5678", true, 0, 1024}},
                  [this](const Arguments& arguments) { return select(arguments); }});
}

void SfuCommands::require_sfu(std::string_view path) const {
    if (control_.builder == nullptr || control_.shards.empty())
        throw CommandError(ErrorCode::not_available,
                           std::string(path) +
                               ": this engine runs no SFU (no [sfu] token_secrets in its "
                               "configuration)",
                           "punchctl status");
}

std::uint64_t SfuCommands::session_argument(const Arguments& arguments, std::string_view path,
                                            std::string_view example) const {
    const std::string text = *arguments.string("session");
    const std::optional<std::uint64_t> session = parse_session(text);
    if (!session)
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"session\" of " + std::string(path) +
                               ": expected 1 to 16 hex digits (as punchctl sfu lists it), got \"" +
                               text + "\"",
                           std::string(example));
    return *session;
}

void SfuCommands::require_member(std::uint64_t session, const std::string& participant,
                                 std::string_view path, std::string_view argument) const {
    const auto it = control_.builder->sessions().find(session);
    if (it == control_.builder->sessions().end())
        throw CommandError(ErrorCode::not_found,
                           std::string(path) + ": no SFU session " + session_text(session) +
                               " on this engine",
                           "punchctl sfu");
    if (find_member(*control_.builder, session, participant) != nullptr) return;
    std::vector<std::string> names;
    for (const engine::SfuMember& m : it->second.members)
        names.emplace_back(m.participant.view());
    throw CommandError(ErrorCode::not_found,
                       "argument \"" + std::string(argument) + "\" of " + std::string(path) +
                           ": session " + session_text(session) + " has no participant \"" +
                           participant + "\"; its participants: " + joined(names),
                       "punchctl sfu --session " + session_text(session));
}

json SfuCommands::sessions(const Arguments& arguments) const {
    require_sfu("/sfu/sessions");
    std::optional<std::uint64_t> only;
    if (arguments.string("session"))
        only = session_argument(arguments, "/sfu/sessions",
                                "punchctl sfu --session 00000000000000a1");
    const std::uint64_t now = control_.now_ticks();
    const double rate = static_cast<double>(std::max<std::uint64_t>(control_.ticks_per_second, 1));
    std::map<std::uint64_t, json> legs;  // by session
    std::uint64_t skipped = 0;
    for (std::size_t w = 0; w < control_.shards.size(); ++w) {
        const unsigned lcore = w < view_.cores.size() ? view_.cores[w].lcore : 0;
        const auto summary = control_.shards[w]->table().list([&](const engine::SfuLegSnapshot& l) {
            if (only && l.session != *only) return;
            const std::string name(l.participant.view());
            const engine::SfuMember* member = find_member(*control_.builder, l.session, name);
            json paused = json::array();
            json ssrcs = json::array();
            // The model's member is this leg only when it has its key: a replayed leg that
            // lost the race is listed until its worker removes it, as not a member.
            const bool published = member != nullptr && member->key == l.key &&
                                   member->worker == w;
            if (published) {
                for (const engine::SfuParticipant& p : member->selection.paused)
                    paused.push_back(std::string(p.view()));
                for (const std::uint32_t ssrc : member->selection.ssrcs) ssrcs.push_back(ssrc);
            }
            legs[l.session].push_back(
                {{"participant", name},
                 {"client", address_text(l.key.client())},
                 {"server", address_text(l.key.server())},
                 {"lcore", lcore},
                 {"slot", l.slot},
                 {"member", published},
                 {"idle_s", static_cast<double>(now - std::min(now, l.last_heard)) / rate},
                 {"age_s", static_cast<double>(now - std::min(now, l.admitted)) / rate},
                 {"rx_packets", l.counters.rx_packets},
                 {"rx_bytes", l.counters.rx_bytes},
                 {"forwarded_packets", l.counters.forwarded_packets},
                 {"forwarded_bytes", l.counters.forwarded_bytes},
                 {"filtered", l.counters.filtered},
                 {"paused", std::move(paused)},
                 {"ssrcs", std::move(ssrcs)}});
        });
        skipped += summary.skipped;
    }
    if (only && legs.empty())
        throw CommandError(ErrorCode::not_found,
                           "/sfu/sessions: no SFU session " + session_text(*only) +
                               " on this engine",
                           "punchctl sfu");
    json list = json::array();
    std::uint64_t leg_count = 0;
    for (auto& [session, session_legs] : legs) {
        leg_count += session_legs.size();
        list.push_back({{"session", session_text(session)},
                        {"summary", session_summary(session_legs)},
                        {"legs", std::move(session_legs)}});
    }
    return {{"sessions", std::move(list)}, {"legs", leg_count}, {"skipped", skipped}};
}

bool SfuCommands::set_draining(bool draining) {
    if (draining == draining_ || !enabled()) return false;
    try {
        if (control_.publish_draining) control_.publish_draining(draining);
    } catch (const std::exception& error) {
        throw CommandError(ErrorCode::refused,
                           std::string("sfu: ") + error.what() + "; nothing changed");
    }
    draining_ = draining;
    return true;
}

json SfuCommands::drain_progress() const {
    json cores = json::array();
    std::uint64_t total = 0;
    for (std::size_t w = 0; w < control_.shards.size(); ++w) {
        const auto summary =
            control_.shards[w]->table().list([](const engine::SfuLegSnapshot&) {});
        const unsigned lcore = w < view_.cores.size() ? view_.cores[w].lcore : 0;
        cores.push_back({{"lcore", lcore}, {"legs", summary.listed}});
        total += summary.listed;
    }
    return {{"draining", draining_}, {"legs", total}, {"cores", std::move(cores)}};
}

json SfuCommands::kill(const Arguments& arguments) {
    require_sfu("/sfu/kill");
    const std::uint64_t session =
        session_argument(arguments, "/sfu/kill", "punchctl sfu kill --session 00000000000000a1");
    const std::optional<std::string> participant = arguments.string("participant");
    std::vector<std::pair<std::size_t, engine::SfuKill>> orders;
    std::vector<std::string> names;  // the session's participants, for a participant not found
    for (std::size_t w = 0; w < control_.shards.size(); ++w)
        (void)control_.shards[w]->table().list([&](const engine::SfuLegSnapshot& l) {
            if (l.session != session) return;
            names.emplace_back(l.participant.view());
            if (participant && l.participant.view() != *participant) return;
            engine::SfuKill order;
            order.key = l.key;
            order.slot = l.slot;
            order.cause = engine::SfuKill::Cause::operator_kill;
            orders.emplace_back(w, order);
        });
    if (names.empty())
        throw CommandError(ErrorCode::not_found,
                           "/sfu/kill: no SFU session " + session_text(session) +
                               " on this engine",
                           "punchctl sfu");
    if (orders.empty())
        throw CommandError(ErrorCode::not_found,
                           "argument \"participant\" of /sfu/kill: session " +
                               session_text(session) + " has no participant \"" + *participant +
                               "\"; its participants: " + joined(names),
                           "punchctl sfu kill --session " + session_text(session) +
                               " --participant " + names.front());
    json sent = json::array();
    json unsent = json::array();
    for (auto& [worker, order] : orders) {
        if (++kill_sequence_ == 0) ++kill_sequence_;
        order.sequence = kill_sequence_;
        const unsigned lcore = worker < view_.cores.size() ? view_.cores[worker].lcore : 0;
        const bool ok = control_.send_kill && control_.send_kill(worker, order);
        (ok ? sent : unsent).push_back(
            {{"lcore", lcore}, {"slot", order.slot}, {"client", address_text(order.key.client())}});
    }
    if (sent.empty())
        throw CommandError(ErrorCode::refused,
                           "/sfu/kill: the workers' command rings are full, nothing was sent; "
                           "try again",
                           "punchctl sfu kill --session " + session_text(session));
    return {{"session", session_text(session)},
            {"participant", participant ? json(*participant) : json(nullptr)},
            {"sent", std::move(sent)},
            {"unsent", std::move(unsent)},
            {"note", "each owner worker removes its leg at its next loop iteration; the "
                     "clients must be admitted again (a new Binding request with a token)"}};
}

json SfuCommands::pause(const Arguments& arguments, bool paused) {
    const std::string path = paused ? "/sfu/pause" : "/sfu/resume";
    const std::string verb = paused ? "pause" : "resume";
    require_sfu(path);
    const std::uint64_t session = session_argument(
        arguments, path,
        "punchctl sfu " + verb + " --session 00000000000000a1 --subscriber bob --publisher alice");
    const std::string subscriber = *arguments.string("subscriber");
    const std::string publisher = *arguments.string("publisher");
    require_member(session, subscriber, path, "subscriber");
    require_member(session, publisher, path, "publisher");
    if (subscriber == publisher)
        throw CommandError(ErrorCode::bad_argument,
                           path + ": subscriber and publisher are both \"" + subscriber +
                               "\"; a participant never receives its own media",
                           "punchctl sfu --session " + session_text(session));
    const engine::SfuMember* member = find_member(*control_.builder, session, subscriber);
    const auto& list = member->selection.paused;
    const bool was = std::find(list.begin(), list.end(),
                               engine::SfuParticipant::from(publisher)) != list.end();
    const bool changed = was != paused;
    if (changed) {
        (void)control_.builder->pause(session, subscriber, publisher, paused);
        control_.publish();
    }
    json now = json::array();
    for (const engine::SfuParticipant& p :
         find_member(*control_.builder, session, subscriber)->selection.paused)
        now.push_back(std::string(p.view()));
    return {{"session", session_text(session)},
            {"subscriber", subscriber},
            {"publisher", publisher},
            {"changed", changed},
            {"paused", std::move(now)}};
}

json SfuCommands::select(const Arguments& arguments) {
    require_sfu("/sfu/select");
    const std::uint64_t session = session_argument(
        arguments, "/sfu/select",
        "punchctl sfu select --session 00000000000000a1 --subscriber bob --ssrcs 1234");
    const std::string subscriber = *arguments.string("subscriber");
    const std::string text = *arguments.string("ssrcs");
    const std::optional<std::vector<std::uint32_t>> ssrcs = parse_ssrcs(text);
    if (!ssrcs)
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"ssrcs\" of /sfu/select: expected at most " +
                               std::to_string(max_ssrcs) +
                               " comma-separated SSRCs (decimal or 0x hex, below 2^32), or \"\" "
                               "for all, got \"" + text + "\"",
                           "punchctl sfu select --session " + session_text(session) +
                               " --subscriber " + subscriber + " --ssrcs 1234,0x5678");
    require_member(session, subscriber, "/sfu/select", "subscriber");
    (void)control_.builder->select(session, subscriber, *ssrcs);
    control_.publish();
    json list = json::array();
    for (const std::uint32_t ssrc : *ssrcs) list.push_back(ssrc);
    return {{"session", session_text(session)},
            {"subscriber", subscriber},
            {"ssrcs", std::move(list)},
            {"note", ssrcs->empty() ? "every SSRC is forwarded again" : "only these SSRCs are "
                                                                        "forwarded to it"}};
}

}  // namespace control
