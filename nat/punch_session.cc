#include "punch/punch_session.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "stun/attributes.h"
#include "stun/crypto.h"
#include "stun/integrity.h"
#include "stun/writer.h"

namespace punch {

namespace {

constexpr std::size_t max_message = 512;

std::span<const std::byte> key_of(const std::string& password) noexcept {
    // RFC 8445 §7.2.2 / RFC 8489 §9.1.1: the short-term key is the password itself (ICE
    // passwords are ice-chars, which SASLprep leaves as they are).
    return std::as_bytes(std::span<const char>(password.data(), password.size()));
}

std::string format(const stun::Address& a) {
    std::array<char, 48> text{};
    return std::string(text.data(), a.format(text));
}

void check_field(const std::string& value, const char* name, bool is_ufrag) {
    if (value.empty())
        throw std::invalid_argument(std::string("punch credentials: ") + name +
                                    " is empty; the coordinator must send one");
    if (is_ufrag && value.find(':') != std::string::npos)
        throw std::invalid_argument(std::string("punch credentials: ") + name + " \"" + value +
                                    "\" contains ':', which USERNAME uses as the separator");
}

}  // namespace

std::string_view to_string(PunchState state) noexcept {
    switch (state) {
        case PunchState::idle: return "idle";
        case PunchState::checking: return "checking";
        case PunchState::connected: return "connected";
        case PunchState::failed: return "failed";
    }
    return "?";
}

PunchSession::PunchSession(PunchConfig config, PunchCredentials credentials,
                           std::vector<stun::Address> remote_candidates)
    : config_(config), credentials_(std::move(credentials)) {
    check_field(credentials_.local_ufrag, "local_ufrag", true);
    check_field(credentials_.remote_ufrag, "remote_ufrag", true);
    check_field(credentials_.local_password, "local_password", false);
    check_field(credentials_.remote_password, "remote_password", false);
    if (config_.pace <= Time{0}) throw std::invalid_argument("punch config: pace must be > 0");
    if (config_.retransmit <= Time{0})
        throw std::invalid_argument("punch config: retransmit must be > 0");
    if (config_.timeout <= Time{0})
        throw std::invalid_argument("punch config: timeout must be > 0");
    for (const auto& c : remote_candidates)
        if (pair_of(c) == pairs_.size()) add_pair(c, false, Time{0});
}

std::size_t PunchSession::pair_of(const stun::Address& remote) const noexcept {
    for (std::size_t i = 0; i < pairs_.size(); ++i)
        if (pairs_[i].remote == remote) return i;
    return pairs_.size();
}

std::size_t PunchSession::add_pair(const stun::Address& remote, bool peer_reflexive, Time now) {
    pairs_.push_back(
        PairReport{.remote = remote, .peer_reflexive = peer_reflexive, .rtt = {}, .mapped = {}});
    timers_.push_back(PairTimers{.next_send = now});
    return pairs_.size() - 1;
}

std::vector<Outgoing> PunchSession::start(Time now) {
    std::vector<Outgoing> out;
    if (state_ != PunchState::idle) return out;
    state_ = PunchState::checking;
    deadline_ = now + config_.timeout;
    next_pace_ = now;
    for (auto& t : timers_) t.next_send = now;
    pace(now, out);
    return out;
}

std::optional<Time> PunchSession::next_timer() const noexcept {
    if (state_ != PunchState::checking) return std::nullopt;
    Time due = deadline_;
    for (const auto& t : timers_) due = std::min(due, std::max(t.next_send, next_pace_));
    return due;
}

std::optional<stun::Address> PunchSession::selected() const noexcept {
    if (!selected_) return std::nullopt;
    return pairs_[*selected_].remote;
}

std::vector<Outgoing> PunchSession::on_timer(Time now) {
    std::vector<Outgoing> out;
    if (state_ != PunchState::checking) return out;
    if (now >= deadline_) {
        state_ = PunchState::failed;
        return out;
    }
    pace(now, out);
    return out;
}

void PunchSession::pace(Time now, std::vector<Outgoing>& out) {
    if (now < next_pace_ || pairs_.empty()) return;
    // Round-robin from the pair after the last one sent, so that a pair due again (every
    // `retransmit`) never starves the others when pace × pairs > retransmit.
    for (std::size_t k = 0; k < pairs_.size(); ++k) {
        const std::size_t i = (cursor_ + k) % pairs_.size();
        if (timers_[i].next_send > now) continue;
        send_request(i, now, out);
        cursor_ = (i + 1) % pairs_.size();
        next_pace_ = now + config_.pace;
        return;
    }
}

void PunchSession::send_request(std::size_t pair, Time now, std::vector<Outgoing>& out) {
    Pending p{.id = {}, .pair = pair, .sent_at = now, .nomination = timers_[pair].nominating};
    // RFC 8489 §6: random IDs. A new one per transmission (not per pair) so that every ACK gives
    // an unambiguous RTT; the peer treats each as a fresh request, which costs it nothing.
    if (!stun::random_bytes(p.id)) return;  // the next pace slot tries again
    std::array<std::byte, max_message> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request, p.id);
    // RFC 8445 §7.2.2: USERNAME "remote_ufrag:local_ufrag", signed with the remote password.
    w.add_text(stun::attr::username, credentials_.remote_ufrag + ":" + credentials_.local_ufrag);
    if (p.nomination) w.add_flag(stun::attr::use_candidate);
    w.add_message_integrity(key_of(credentials_.remote_password));
    w.add_fingerprint();
    const auto bytes = w.finish();
    if (bytes.empty()) return;
    out.push_back(Outgoing{pairs_[pair].remote, {bytes.begin(), bytes.end()}});
    pending_.push_back(p);
    ++pairs_[pair].sent;
    timers_[pair].next_send = now + config_.retransmit;
}

std::vector<Outgoing> PunchSession::on_datagram(const stun::Address& from,
                                                std::span<const std::byte> datagram, Time now) {
    std::vector<Outgoing> out;
    stun::Message m;
    if (stun::Message::parse(datagram, m) != stun::ParseError::ok) {
        ++drops_.not_stun;
        return out;
    }
    if (stun::verify_fingerprint(m) != stun::IntegrityResult::ok) {
        ++drops_.bad_fingerprint;
        return out;
    }
    if (state_ == PunchState::idle || state_ == PunchState::failed) {
        ++drops_.after_done;
        return out;
    }
    if (m.method() != static_cast<std::uint16_t>(stun::Method::binding) ||
        m.message_class() == stun::MessageClass::indication) {
        ++drops_.not_binding;
        return out;
    }
    if (m.message_class() == stun::MessageClass::request)
        handle_request(from, m, now, out);
    else
        handle_response(from, m, now);
    return out;
}

void PunchSession::reject(const stun::Address& from, const stun::Message& m, std::uint16_t code,
                          std::vector<Outgoing>& out) {
    // RFC 8489 §9.1.3 (RFC 8445 §7.3): 400 without USERNAME or MESSAGE-INTEGRITY, 401 when
    // either is wrong; unsigned, since the sender's credentials are what is in doubt.
    std::array<std::byte, max_message> buffer{};
    auto w = stun::begin_error_response(buffer, m, code);
    w.add_fingerprint();
    const auto bytes = w.finish();
    if (bytes.empty()) return;
    out.push_back(Outgoing{from, {bytes.begin(), bytes.end()}});
    ++rejected_;
}

void PunchSession::handle_request(const stun::Address& from, const stun::Message& m, Time now,
                                  std::vector<Outgoing>& out) {
    const auto username = m.find(stun::attr::username);
    if (!username || !m.message_integrity()) {
        ++drops_.request_no_credentials;
        reject(from, m, 400, out);
        return;
    }
    std::string_view name;
    if (stun::decode_text(*username, name) != stun::ParseError::ok ||
        name != credentials_.local_ufrag + ":" + credentials_.remote_ufrag) {
        ++drops_.request_wrong_username;
        reject(from, m, 401, out);
        return;
    }
    if (stun::verify_message_integrity(m, key_of(credentials_.local_password)) !=
        stun::IntegrityResult::ok) {
        ++drops_.request_bad_integrity;
        reject(from, m, 401, out);
        return;
    }
    std::size_t pair = pair_of(from);
    if (pair == pairs_.size()) {
        if (!config_.peer_reflexive) {
            ++drops_.unknown_source;
            return;
        }
        // RFC 8445 §7.3.1.3: a peer-reflexive candidate. With a symmetric NAT in front of the
        // peer this is the only address of it that works: its NAT made a fresh port for us.
        pair = add_pair(from, true, now);
    }
    ++pairs_[pair].received;
    const bool use_candidate = m.find(stun::attr::use_candidate).has_value();

    // The ACK, to the source address, whatever the candidates said (RFC 8445 §7.3.1.2).
    std::array<std::byte, max_message> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::success_response,
                          m.transaction_id());
    w.add_xor_address(stun::attr::xor_mapped_address, from);
    w.add_message_integrity(key_of(credentials_.local_password));
    w.add_fingerprint();
    const auto bytes = w.finish();
    if (!bytes.empty()) out.push_back(Outgoing{from, {bytes.begin(), bytes.end()}});

    if (state_ != PunchState::checking) return;
    if (!config_.controlling && use_candidate) {
        // The controlling side holds an ACK on this pair and nominated it: agreed.
        selected_ = pair;
        state_ = PunchState::connected;
        return;
    }
    // RFC 8445 §7.3.1.4: a triggered check, due at the next pace slot.
    if (pairs_[pair].acked == 0) timers_[pair].next_send = std::min(timers_[pair].next_send, now);
}

void PunchSession::handle_response(const stun::Address& from, const stun::Message& m,
                                   Time now) {
    const auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
        return std::memcmp(p.id.data(), m.transaction_id().data(), p.id.size()) == 0;
    });
    if (it == pending_.end()) {
        ++drops_.unknown_transaction;
        return;
    }
    if (m.message_class() == stun::MessageClass::error_response) {
        // Unauthenticated (a 401 cannot be signed): anyone could send one, so it changes nothing.
        ++drops_.error_response;
        return;
    }
    const Pending p = *it;
    if (!(pairs_[p.pair].remote == from)) {
        ++drops_.response_wrong_source;
        return;
    }
    if (stun::verify_message_integrity(m, key_of(credentials_.remote_password)) !=
        stun::IntegrityResult::ok) {
        ++drops_.response_bad_integrity;
        return;
    }
    pending_.erase(it);
    auto& report = pairs_[p.pair];
    ++report.acked;
    report.rtt = now - p.sent_at;
    if (const auto mapped = m.find(stun::attr::xor_mapped_address)) {
        stun::Address a;
        if (stun::decode_xor_address(*mapped, m.transaction_id(), a) == stun::ParseError::ok)
            report.mapped = a;
    }
    if (state_ != PunchState::checking) return;
    if (!config_.controlling) {
        // Holds an ACK; the pair is the controlling side's to nominate. No more plain checks
        // on it: its requests would only echo.
        timers_[p.pair].next_send = deadline_;
        return;
    }
    if (p.nomination) {
        selected_ = p.pair;
        state_ = PunchState::connected;
        return;
    }
    if (!nominated_) {
        nominated_ = p.pair;
        timers_[p.pair].nominating = true;
        timers_[p.pair].next_send = now;
    }
}

std::string PunchSession::report() const {
    std::string text;
    for (const auto& p : pairs_) {
        text += format(p.remote) + (p.peer_reflexive ? " prflx" : " candidate") + " sent " +
                std::to_string(p.sent) + " received " + std::to_string(p.received) +
                " acked " + std::to_string(p.acked) + " rtt " +
                (p.rtt ? std::to_string(p.rtt->count() / 1000) + " ms" : std::string("-")) +
                "\n";
    }
    return text;
}

PunchDriver::PunchDriver(EventLoop& loop, UdpSocket& socket, PunchSession& session)
    : loop_(loop), socket_(socket), session_(session) {}

PunchDriver::~PunchDriver() {
    if (timer_) loop_.cancel(*timer_);
    if (watching_) loop_.unwatch(socket_);
}

std::string PunchDriver::start(std::function<void()> done) {
    done_ = std::move(done);
    auto error = loop_.watch(socket_, [this] { readable(); });
    if (!error.empty()) return error;
    watching_ = true;
    flush(session_.start(loop_.now()));
    rearm();
    return "";
}

void PunchDriver::flush(const std::vector<Outgoing>& out) {
    for (const auto& o : out)
        if (!socket_.send_to(o.to, o.bytes)) ++send_failures_;
}

void PunchDriver::rearm() {
    if (timer_) loop_.cancel(*timer_);
    timer_.reset();
    check_done();
    const auto due = session_.next_timer();
    if (!due) return;
    timer_ = loop_.at(*due, [this] {
        timer_.reset();
        flush(session_.on_timer(loop_.now()));
        rearm();
    });
}

void PunchDriver::readable() {
    std::array<std::byte, 1500> buffer{};
    stun::Address from;
    for (;;) {
        const long n = socket_.receive_from(buffer, from);
        if (n < 0) break;
        flush(session_.on_datagram(from, std::span(buffer).first(static_cast<std::size_t>(n)),
                                   loop_.now()));
    }
    rearm();
}

void PunchDriver::check_done() {
    if (!done_ || session_.state() == PunchState::checking ||
        session_.state() == PunchState::idle)
        return;
    auto done = std::move(done_);
    done_ = nullptr;
    done();
}

}  // namespace punch
