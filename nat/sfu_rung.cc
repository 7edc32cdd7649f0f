#include "punch/sfu_rung.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "stun/attributes.h"
#include "stun/crypto.h"
#include "stun/integrity.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace punch {

namespace {

constexpr std::size_t max_message = 512;

constexpr std::string_view drop_names[] = {
#define PUNCH_SFU_LEG_DROP_NAME(name, help) #name,
    PUNCH_SFU_LEG_DROPS(PUNCH_SFU_LEG_DROP_NAME)
#undef PUNCH_SFU_LEG_DROP_NAME
};
constexpr std::string_view drop_help[] = {
#define PUNCH_SFU_LEG_DROP_HELP(name, help) help,
    PUNCH_SFU_LEG_DROPS(PUNCH_SFU_LEG_DROP_HELP)
#undef PUNCH_SFU_LEG_DROP_HELP
};

// docs/sfu.md: MESSAGE-INTEGRITY is keyed with the password's 44 bytes as they are (base64 is
// unchanged by OpaqueString, RFC 8489 §9.1.1).
std::span<const std::byte> key_of(const std::string& password) noexcept {
    return std::as_bytes(std::span<const char>(password.data(), password.size()));
}

std::string format(const stun::Address& a) {
    std::array<char, 48> text{};
    return std::string(text.data(), a.format(text));
}

std::string ms(Time t) { return std::to_string(t.count() / 1000) + " ms"; }

bool same_ip(const stun::Address& a, const stun::Address& b) noexcept {
    return a.family == b.family && a.ip == b.ip;
}

}  // namespace

std::string_view to_string(SfuLegDrop drop) noexcept {
    const auto i = static_cast<std::size_t>(drop);
    return i < std::size(drop_names) ? drop_names[i] : "?";
}

std::string_view help(SfuLegDrop drop) noexcept {
    const auto i = static_cast<std::size_t>(drop);
    return i < std::size(drop_help) ? drop_help[i] : "?";
}

std::string_view to_string(SfuLegState state) noexcept {
    switch (state) {
        case SfuLegState::untried: return "untried";
        case SfuLegState::admitting: return "admitting";
        case SfuLegState::up: return "up";
        case SfuLegState::failed: return "failed";
    }
    return "?";
}

std::string_view to_string(SfuRungState state) noexcept {
    switch (state) {
        case SfuRungState::idle: return "idle";
        case SfuRungState::trying: return "trying";
        case SfuRungState::up: return "up";
        case SfuRungState::failed: return "failed";
    }
    return "?";
}

SfuRung::SfuRung(SfuRungConfig config, std::string username, std::string password,
                 std::vector<SfuOffer> candidates)
    : config_(config), username_(std::move(username)), password_(std::move(password)) {
    stun::SfuUsername parsed;
    if (stun::parse_sfu_username(username_, parsed) != stun::SfuTokenError::ok)
        throw std::invalid_argument("SFU token: username \"" + username_ +
                                    "\" is not \"<expiry>:<16 hex digits>:<participant>\"");
    if (password_.size() != stun::sfu_password_size)
        throw std::invalid_argument("SFU token: password must be 44 characters, not " +
                                    std::to_string(password_.size()));
    const std::pair<Time, const char*> times[] = {
        {config_.pace, "pace"},           {config_.rto, "rto"},
        {config_.rto_max, "rto_max"},     {config_.timeout, "timeout"},
        {config_.peer_wait, "peer_wait"}, {config_.keepalive, "keepalive"}};
    for (const auto& [t, name] : times)
        if (t <= Time{0})
            throw std::invalid_argument(std::string("SFU rung config: ") + name + " must be > 0");
    if (config_.race == 0) throw std::invalid_argument("SFU rung config: race must be >= 1");
    for (auto& c : candidates) {
        SfuLegReport leg;
        leg.target = c.address;
        leg.node = std::move(c);
        legs_.push_back(std::move(leg));
        timers_.push_back({});
    }
}

std::vector<Outgoing> SfuRung::start(Time now) {
    std::vector<Outgoing> out;
    if (state_ != SfuRungState::idle) return out;
    state_ = SfuRungState::trying;
    started_ = now;
    next_pace_ = now;
    refill(now);
    decide(now);
    pace(now, out);
    return out;
}

// A node is out when either side's leg on it failed.
bool SfuRung::out(std::size_t leg) const noexcept {
    return legs_[leg].state == SfuLegState::failed || legs_[leg].peer == SfuPeerLeg::failed;
}

void SfuRung::start_leg(std::size_t leg, Time now) {
    legs_[leg].state = SfuLegState::admitting;
    legs_[leg].outcome = "admitting";
    legs_[leg].started = now;
    timers_[leg] = {now, config_.rto, now + config_.timeout, Time{0}};
}

void SfuRung::fail_leg(std::size_t leg, std::string outcome, bool tell_peer, Time now) {
    auto& l = legs_[leg];
    if (l.state == SfuLegState::failed) return;
    if (l.state != SfuLegState::untried) l.ended = now;
    const bool was_started = l.state != SfuLegState::untried;
    l.state = SfuLegState::failed;
    l.outcome = std::move(outcome);
    // The peer needs our word only where it may still be waiting for it.
    if (tell_peer && was_started && l.peer != SfuPeerLeg::failed)
        events_.push_back({l.node.node_id, false});
}

// Keeps `race` nodes in play: started on our side and not out.
void SfuRung::refill(Time now) {
    if (state_ != SfuRungState::trying) return;
    std::size_t in_play = 0;
    for (std::size_t i = 0; i < legs_.size(); ++i)
        if (legs_[i].state != SfuLegState::untried && !out(i)) ++in_play;
    for (std::size_t i = 0; i < legs_.size() && in_play < config_.race; ++i) {
        if (legs_[i].state != SfuLegState::untried) continue;
        if (legs_[i].peer == SfuPeerLeg::failed) {
            // The peer already found it out (it raced further): no need to try it.
            fail_leg(i, "the peer's leg failed", false, now);
            continue;
        }
        start_leg(i, now);
        ++in_play;
    }
}

// The first node in candidate order with both legs up, once every node before it is out: both
// sides hold the same order and the same outcomes, so they choose the same node.
void SfuRung::decide(Time now) {
    if (state_ != SfuRungState::trying) return;
    for (std::size_t i = 0; i < legs_.size(); ++i) {
        if (out(i)) continue;
        if (legs_[i].state == SfuLegState::up && legs_[i].peer == SfuPeerLeg::up) {
            chosen_ = i;
            state_ = SfuRungState::up;
            next_keepalive_ = now + config_.keepalive;
            // The other legs stop here: their nodes expire them after their silence.
            for (std::size_t j = 0; j < legs_.size(); ++j)
                if (j != i && legs_[j].state == SfuLegState::admitting) {
                    legs_[j].outcome = "stopped: node " + std::to_string(legs_[i].node.node_id) +
                                       " chosen";
                    legs_[j].ended = now;
                }
            return;
        }
        return;  // undecided: a later node must wait for this one
    }
    state_ = SfuRungState::failed;
}

std::vector<Outgoing> SfuRung::on_timer(Time now) {
    std::vector<Outgoing> out;
    if (state_ == SfuRungState::idle || state_ == SfuRungState::failed) return out;
    if (state_ == SfuRungState::up) {
        if (now >= next_keepalive_) {
            send_request(*chosen_, now, out);
            next_keepalive_ = now + config_.keepalive;
        }
        return out;
    }
    bool changed = false;
    for (std::size_t i = 0; i < legs_.size(); ++i) {
        auto& l = legs_[i];
        if (l.state == SfuLegState::admitting && now >= timers_[i].deadline) {
            fail_leg(i, "timeout: no ACK within " + ms(config_.timeout), true, now);
            changed = true;
        } else if (l.state == SfuLegState::up && l.peer == SfuPeerLeg::unknown &&
                   now >= timers_[i].peer_deadline) {
            fail_leg(i, "no word from the peer within " + ms(config_.peer_wait), true, now);
            changed = true;
        }
    }
    if (changed) {
        refill(now);
        decide(now);
    }
    if (state_ == SfuRungState::trying) pace(now, out);
    return out;
}

std::optional<Time> SfuRung::next_timer() const noexcept {
    if (state_ == SfuRungState::up) return next_keepalive_;
    if (state_ != SfuRungState::trying) return std::nullopt;
    std::optional<Time> due;
    const auto at = [&](Time t) { due = due ? std::min(*due, t) : t; };
    for (std::size_t i = 0; i < legs_.size(); ++i) {
        if (legs_[i].state == SfuLegState::admitting) {
            at(timers_[i].deadline);
            at(std::max(timers_[i].next_send, next_pace_));
        } else if (legs_[i].state == SfuLegState::up && legs_[i].peer == SfuPeerLeg::unknown) {
            at(timers_[i].peer_deadline);
        }
    }
    return due;
}

void SfuRung::pace(Time now, std::vector<Outgoing>& out) {
    if (now < next_pace_ || legs_.empty()) return;
    // Round-robin from the leg after the last one sent (as PunchSession): a leg due again
    // never starves the others.
    for (std::size_t k = 0; k < legs_.size(); ++k) {
        const std::size_t i = (cursor_ + k) % legs_.size();
        if (legs_[i].state != SfuLegState::admitting || timers_[i].next_send > now) continue;
        send_request(i, now, out);
        // RFC 8489 §6.2.1: the interval doubles after each transmission, capped (see rto_max).
        timers_[i].next_send = now + timers_[i].rto;
        timers_[i].rto = std::min(timers_[i].rto * 2, config_.rto_max);
        cursor_ = (i + 1) % legs_.size();
        next_pace_ = now + config_.pace;
        return;
    }
}

void SfuRung::send_request(std::size_t leg, Time now, std::vector<Outgoing>& out) {
    Pending p{.id = {}, .leg = leg, .sent_at = now};
    // RFC 8489 §6: random IDs; a new one per transmission, so every ACK gives its own RTT.
    if (!stun::random_bytes(p.id)) return;  // the next slot tries again
    std::array<std::byte, max_message> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request, p.id);
    w.add_text(stun::attr::username, username_);
    w.add_message_integrity(key_of(password_));
    w.add_fingerprint();
    const auto bytes = w.finish();
    if (bytes.empty()) return;
    out.push_back(Outgoing{legs_[leg].target, {bytes.begin(), bytes.end()}});
    // Old transactions stay answerable (a late ACK is still an ACK); the list is bounded by
    // the window: at most timeout / pace requests per leg, and one per keepalive once up.
    if (pending_.size() >= 256) pending_.erase(pending_.begin());
    pending_.push_back(p);
    ++legs_[leg].sent;
}

bool SfuRung::claims(const stun::Address& from,
                     std::span<const std::byte> datagram) const noexcept {
    for (const auto& l : legs_)
        if (l.target == from || l.node.address == from) return true;
    // A node behind a NAT, from a port we do not know yet: its request names our username.
    stun::Message m;
    if (stun::Message::parse(datagram, m) != stun::ParseError::ok ||
        m.message_class() != stun::MessageClass::request)
        return false;
    const auto username = m.find(stun::attr::username);
    std::string_view name;
    return username && stun::decode_text(*username, name) == stun::ParseError::ok &&
           name == username_;
}

std::vector<Outgoing> SfuRung::on_datagram(const stun::Address& from,
                                           std::span<const std::byte> datagram, Time now) {
    std::vector<Outgoing> out;
    stun::Message m;
    if (stun::Message::parse(datagram, m) != stun::ParseError::ok) {
        drop(SfuLegDrop::not_stun);
        return out;
    }
    if (stun::verify_fingerprint(m) != stun::IntegrityResult::ok) {
        drop(SfuLegDrop::bad_fingerprint);
        return out;
    }
    if (state_ == SfuRungState::idle || state_ == SfuRungState::failed) {
        drop(SfuLegDrop::after_done);
        return out;
    }
    if (m.method() != static_cast<std::uint16_t>(stun::Method::binding) ||
        m.message_class() == stun::MessageClass::indication) {
        drop(SfuLegDrop::not_binding);
        return out;
    }
    if (m.message_class() == stun::MessageClass::request) {
        handle_request(from, m, now, out);
    } else {
        const SfuRungState before = state_;
        handle_response(from, m, now);
        refill(now);
        decide(now);
        if (before == SfuRungState::trying && state_ == SfuRungState::trying) pace(now, out);
    }
    return out;
}

void SfuRung::handle_request(const stun::Address& from, const stun::Message& m, Time now,
                             std::vector<Outgoing>& out) {
    const auto username = m.find(stun::attr::username);
    if (!username || !m.message_integrity()) {
        drop(SfuLegDrop::request_no_credentials);
        return;
    }
    std::string_view name;
    if (stun::decode_text(*username, name) != stun::ParseError::ok || name != username_) {
        drop(SfuLegDrop::request_wrong_username);
        return;
    }
    // docs/sfu.md: the node signs with the password it derives from its secret, which is ours.
    if (stun::verify_message_integrity(m, key_of(password_)) != stun::IntegrityResult::ok) {
        drop(SfuLegDrop::request_bad_integrity);
        return;
    }
    // Which node: the one this source already is, else the first by IP address (see the
    // header), preferring one that is not up yet.
    std::optional<std::size_t> leg;
    for (std::size_t i = 0; i < legs_.size() && !leg; ++i)
        if (legs_[i].target == from) leg = i;
    for (std::size_t i = 0; i < legs_.size() && !leg; ++i)
        if (same_ip(legs_[i].node.address, from) && legs_[i].state != SfuLegState::up) leg = i;
    for (std::size_t i = 0; i < legs_.size() && !leg; ++i)
        if (same_ip(legs_[i].node.address, from)) leg = i;
    if (!leg) {
        drop(SfuLegDrop::request_unknown_node);
        return;
    }
    auto& l = legs_[*leg];
    ++l.node_requests;
    // The ACK, to the source (RFC 8445 §7.3.1.2): it opens our NAT towards the node's.
    std::array<std::byte, max_message> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::success_response,
                          m.transaction_id());
    w.add_xor_address(stun::attr::xor_mapped_address, from);
    w.add_message_integrity(key_of(password_));
    w.add_fingerprint();
    const auto bytes = w.finish();
    if (!bytes.empty()) out.push_back(Outgoing{from, {bytes.begin(), bytes.end()}});
    if (!(l.target == from)) {
        // RFC 8445 §7.3.1.3: peer-reflexive. Admission (and media) goes there from now on, at
        // once: the node's NAT has just opened towards us.
        l.target = from;
        l.peer_reflexive = true;
        if (l.state == SfuLegState::admitting) {
            timers_[*leg].next_send = now;
            timers_[*leg].rto = config_.rto;
            if (state_ == SfuRungState::trying) pace(now, out);
        }
    }
}

void SfuRung::handle_response(const stun::Address& from, const stun::Message& m, Time now) {
    const auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
        return std::memcmp(p.id.data(), m.transaction_id().data(), p.id.size()) == 0;
    });
    if (it == pending_.end()) {
        drop(SfuLegDrop::unknown_transaction);
        return;
    }
    const Pending p = *it;
    auto& l = legs_[p.leg];
    // RFC 8489 §6.3.3 is silent on the source for UDP; a response from elsewhere than where
    // its request went is someone else's guess at our transaction.
    if (!(l.target == from) && !(l.node.address == from)) {
        drop(SfuLegDrop::wrong_source);
        return;
    }
    if (m.message_class() == stun::MessageClass::error_response) {
        stun::ErrorCodeValue error;
        const auto attribute = m.find(stun::attr::error_code);
        if (!attribute || stun::decode_error_code(*attribute, error) != stun::ParseError::ok) {
            drop(SfuLegDrop::bad_error_code);
            return;
        }
        // docs/sfu.md: 403 and 508 come signed, 400 and 401 cannot be (the node doubts our
        // key). A signature that is there must verify.
        if (m.message_integrity() &&
            stun::verify_message_integrity(m, key_of(password_)) != stun::IntegrityResult::ok) {
            drop(SfuLegDrop::bad_integrity);
            return;
        }
        pending_.erase(it);
        if (l.state != SfuLegState::admitting) return;  // a keepalive's: media decides
        l.error_code = error.code;
        fail_leg(p.leg, std::to_string(error.code) + " " + std::string(error.reason), true,
                 now);
        return;
    }
    if (!m.message_integrity() ||
        stun::verify_message_integrity(m, key_of(password_)) != stun::IntegrityResult::ok) {
        drop(SfuLegDrop::bad_integrity);
        return;
    }
    pending_.erase(it);
    l.rtt = now - p.sent_at;
    if (const auto mapped = m.find(stun::attr::xor_mapped_address)) {
        stun::Address a;
        if (stun::decode_xor_address(*mapped, m.transaction_id(), a) == stun::ParseError::ok)
            l.mapped = a;
    }
    if (l.state != SfuLegState::admitting) return;
    // The ACK: the leg is up (docs/sfu.md, "Admission").
    l.state = SfuLegState::up;
    l.outcome = "ok";
    l.up_after = now - *l.started;
    l.ended = now;
    timers_[p.leg].peer_deadline = now + config_.peer_wait;
    events_.push_back({l.node.node_id, true});
}

std::vector<Outgoing> SfuRung::on_peer_leg(std::uint64_t node_id, bool up, Time now) {
    std::vector<Outgoing> out;
    for (std::size_t i = 0; i < legs_.size(); ++i) {
        auto& l = legs_[i];
        if (l.node.node_id != node_id) continue;
        // A failure is final: an up after it (reordered signals cannot happen on one TCP
        // connection, but a peer may retry) changes nothing.
        if (l.peer == SfuPeerLeg::failed) return out;
        l.peer = up ? SfuPeerLeg::up : SfuPeerLeg::failed;
        if (!up && state_ == SfuRungState::trying && l.state != SfuLegState::failed &&
            l.state != SfuLegState::untried) {
            // Skipped: the node cannot serve both. Our leg stops; the peer knows already.
            l.state = SfuLegState::failed;
            l.ended = now;
            l.outcome = l.outcome == "ok" ? "up, but the peer's leg failed"
                                          : "stopped: the peer's leg failed";
        }
        break;
    }
    if (state_ != SfuRungState::trying) return out;
    refill(now);
    decide(now);
    if (state_ == SfuRungState::trying) pace(now, out);
    return out;
}

std::vector<SfuLegEvent> SfuRung::take_events() {
    std::vector<SfuLegEvent> events;
    events.swap(events_);
    return events;
}

const SfuLegReport* SfuRung::chosen() const noexcept {
    return chosen_ ? &legs_[*chosen_] : nullptr;
}

std::optional<stun::Address> SfuRung::media_address() const noexcept {
    if (!chosen_) return std::nullopt;
    return legs_[*chosen_].target;
}

bool SfuRung::latch(const stun::Address& from) noexcept {
    if (state_ != SfuRungState::up || !chosen_) return false;
    SfuLegReport& l = legs_[*chosen_];
    if (!l.peer_reflexive || l.target == from || !(l.node.address == from)) return false;
    l.target = from;
    ++l.latched;
    return true;
}

std::string SfuRung::failure() const {
    if (state_ != SfuRungState::failed) return "";
    if (legs_.empty()) return "no candidate node";
    std::string text;
    for (const auto& l : legs_)
        text += (text.empty() ? "node " : "; node ") + std::to_string(l.node.node_id) + ": " +
                l.outcome;
    return text;
}

std::string SfuRung::report() const {
    std::string text;
    for (const auto& l : legs_) {
        text += std::to_string(l.node.node_id) + " " + format(l.target) +
                (l.peer_reflexive ? " prflx " : " ") + std::string(to_string(l.state)) +
                " peer " +
                (l.peer == SfuPeerLeg::up       ? "up"
                 : l.peer == SfuPeerLeg::failed ? "failed"
                                                : "-") +
                " sent " + std::to_string(l.sent) + " rtt " +
                (l.rtt ? ms(*l.rtt) : std::string("-")) + ": " + l.outcome + "\n";
    }
    return text;
}

}  // namespace punch
