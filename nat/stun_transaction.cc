#include "punch/stun_transaction.h"

#include <cstring>

#include "stun/attributes.h"
#include "stun/crypto.h"
#include "stun/integrity.h"
#include "stun/writer.h"

namespace punch {

RetransmissionSchedule retransmission_schedule(const RetransmissionPolicy& policy) {
    RetransmissionSchedule schedule;
    Time at{0};
    Time rto = policy.initial_rto;
    for (unsigned i = 0; i < policy.max_sends; ++i) {
        if (policy.max_duration > Time{0} && at >= policy.max_duration) break;
        schedule.sends.push_back(at);
        if (i + 1 < policy.max_sends) {
            at += rto;
            rto *= 2;
        }
    }
    // "If, after the last request, a duration equal to Rm times the RTO has passed without a
    // response": the RTO here is the initial one (the RFC's 39500 ms = 31500 + 16 × 500).
    schedule.give_up = at + policy.initial_rto * policy.last_wait_factor;
    if (policy.max_duration > Time{0} && schedule.give_up > policy.max_duration)
        schedule.give_up = policy.max_duration;
    return schedule;
}

std::string_view to_string(TransactionStatus status) noexcept {
    switch (status) {
    case TransactionStatus::success: return "success";
    case TransactionStatus::error_response: return "error_response";
    case TransactionStatus::timeout: return "timeout";
    case TransactionStatus::send_failed: return "send_failed";
    }
    return "?";
}

namespace {

constexpr std::string_view rejection_names[] = {
#define PUNCH_REJECTION_NAME(name, help) #name,
    PUNCH_RESPONSE_REJECTIONS(PUNCH_REJECTION_NAME)
#undef PUNCH_REJECTION_NAME
};
constexpr std::string_view rejection_help[] = {
#define PUNCH_REJECTION_HELP(name, help) help,
    PUNCH_RESPONSE_REJECTIONS(PUNCH_REJECTION_HELP)
#undef PUNCH_REJECTION_HELP
};

}  // namespace

std::string_view to_string(ResponseRejection rejection) noexcept {
    const auto i = static_cast<std::size_t>(rejection);
    return i < std::size(rejection_names) ? rejection_names[i] : "?";
}

std::string_view help(ResponseRejection rejection) noexcept {
    const auto i = static_cast<std::size_t>(rejection);
    return i < std::size(rejection_help) ? rejection_help[i] : "?";
}

std::size_t StunClient::IdHash::operator()(const stun::TransactionId& id) const noexcept {
    // The IDs are random (RFC 8489 §6: "uniformly and randomly"): any 8 of their bytes hash well.
    std::size_t h;
    std::memcpy(&h, id.data(), sizeof h);
    return h;
}

StunClient::StunClient(const Clock& clock, TimerQueue& timers, DatagramSender& socket,
                       RetransmissionPolicy policy)
    : clock_(clock), timers_(timers), socket_(socket),
      schedule_(retransmission_schedule(policy)) {}

StunClient::~StunClient() { cancel_all(); }

bool StunClient::cancel(const stun::TransactionId& id) {
    const auto it = pending_.find(id);
    if (it == pending_.end()) return false;
    timers_.cancel(it->second.timer);
    pending_.erase(it);
    return true;
}

void StunClient::cancel_all() {
    for (auto& [id, t] : pending_) timers_.cancel(t.timer);
    pending_.clear();
}

std::optional<stun::TransactionId> StunClient::start_binding(const stun::Address& to,
                                                             std::uint32_t change_flags,
                                                             std::uint16_t response_port,
                                                             Callback done) {
    stun::TransactionId id;
    // RFC 8489 §6: a new, cryptographically random ID per transaction; a second draw on the
    // (astronomically unlikely) collision with a pending one.
    do {
        if (!stun::random_bytes(id)) return std::nullopt;
    } while (pending_.contains(id));
    Transaction t;
    t.to = to;
    stun::MessageWriter writer(t.request, stun::Method::binding, stun::MessageClass::request, id);
    if (change_flags != 0) writer.add_u32(stun::attr::change_request, change_flags);
    if (response_port != 0) writer.add_response_port(response_port);
    writer.add_fingerprint();
    t.request_size = writer.finish().size();
    t.started = clock_.now();
    t.done = std::move(done);
    auto& placed = pending_.emplace(id, std::move(t)).first->second;
    // The first send happens on a timer due now, so that `done` never runs inside this call
    // (a send failure included): callers may start transactions from any callback.
    placed.timer = timers_.schedule(placed.started, [this, id] { on_timer(id); });
    return id;
}

void StunClient::arm(const stun::TransactionId& id, Transaction& t) {
    const Time next = t.next_send < schedule_.sends.size() ? schedule_.sends[t.next_send]
                                                           : schedule_.give_up;
    t.timer = timers_.schedule(t.started + next, [this, id] { on_timer(id); });
}

void StunClient::on_timer(const stun::TransactionId& id) {
    const auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Transaction& t = it->second;
    if (t.next_send < schedule_.sends.size()) {
        const bool sent = socket_.send_to(t.to, std::span(t.request).first(t.request_size));
        if (!sent && t.sends == 0) {
            BindingResult result;
            result.status = TransactionStatus::send_failed;
            result.server = t.to;
            finish(id, std::move(result));
            return;
        }
        // A later send that fails is like a lost datagram: the schedule goes on.
        ++t.next_send;
        ++t.sends;
        arm(id, t);
        return;
    }
    BindingResult result;
    result.status = TransactionStatus::timeout;
    result.server = t.to;
    result.sends = t.sends;
    result.elapsed = clock_.now() - t.started;
    finish(id, std::move(result));
}

void StunClient::finish(const stun::TransactionId& id, BindingResult result) {
    const auto it = pending_.find(id);
    Callback done = std::move(it->second.done);
    timers_.cancel(it->second.timer);
    pending_.erase(it);
    // Out of the table before the callback: it may start new transactions.
    if (done) done(result);
}

DatagramVerdict StunClient::reject(ResponseRejection why) {
    ++rejected_[static_cast<std::size_t>(why)];
    return DatagramVerdict::rejected;
}

DatagramVerdict StunClient::on_datagram(const stun::Address& from,
                                        std::span<const std::byte> datagram) {
    // Cheap before dear: the first-byte and cookie test before a full parse.
    if (!stun::Message::looks_like_stun(datagram)) return DatagramVerdict::not_stun;
    stun::Message m;
    if (stun::Message::parse(datagram, m) != stun::ParseError::ok)
        return reject(ResponseRejection::malformed);
    const auto cls = m.message_class();
    if (cls != stun::MessageClass::success_response && cls != stun::MessageClass::error_response)
        return DatagramVerdict::not_response;
    stun::TransactionId id;
    std::memcpy(id.data(), m.transaction_id().data(), id.size());
    const auto it = pending_.find(id);
    // RFC 8489 §6.3.3: a response whose transaction ID matches no outstanding transaction is
    // discarded (a late answer to a transaction that ended, or someone else's).
    if (it == pending_.end()) return reject(ResponseRejection::unknown_transaction);
    if (m.method() != static_cast<std::uint16_t>(stun::Method::binding))
        return reject(ResponseRejection::wrong_method);
    // RFC 8489 §7.3: FINGERPRINT is checked when present; a message that fails is discarded,
    // and the transaction keeps waiting for a good answer (a retransmission's).
    if (m.fingerprint() && stun::verify_fingerprint(m) != stun::IntegrityResult::ok)
        return reject(ResponseRejection::bad_fingerprint);
    // RFC 8489 §6.3.3, §6.3.4: an unknown comprehension-required attribute in a response
    // makes it unusable. It is discarded here; the transaction then ends by its schedule.
    std::array<std::uint16_t, 1> unknown;
    if (m.unknown_comprehension_required(unknown) != 0)
        return reject(ResponseRejection::unknown_comprehension_required);

    BindingResult result;
    result.server = it->second.to;
    result.from = from;
    result.sends = it->second.sends;
    result.elapsed = clock_.now() - it->second.started;
    if (cls == stun::MessageClass::error_response) {
        const auto error = m.find(stun::attr::error_code);
        stun::ErrorCodeValue value;
        if (!error || stun::decode_error_code(*error, value) != stun::ParseError::ok)
            return reject(ResponseRejection::bad_error_code);
        result.status = TransactionStatus::error_response;
        result.error_code = value.code;
        result.error_reason = std::string(value.reason);
        finish(id, std::move(result));
        return DatagramVerdict::answered;
    }
    // RFC 8489 §14.2: XOR-MAPPED-ADDRESS is what a Binding success response carries; a client
    // that finds none has learnt nothing (MAPPED-ADDRESS alone is RFC 3489's, not taken).
    const auto mapped = m.find(stun::attr::xor_mapped_address);
    if (!mapped) return reject(ResponseRejection::missing_xor_mapped_address);
    if (stun::decode_xor_address(*mapped, m.transaction_id(), result.mapped) !=
        stun::ParseError::ok)
        return reject(ResponseRejection::bad_address_attribute);
    for (const auto& [type, out] : {std::pair{stun::attr::other_address, &result.other_address},
                                   std::pair{stun::attr::response_origin,
                                             &result.response_origin}}) {
        if (const auto a = m.find(type)) {
            stun::Address address;
            if (stun::decode_address(*a, address) != stun::ParseError::ok)
                return reject(ResponseRejection::bad_address_attribute);
            *out = address;
        }
    }
    result.status = TransactionStatus::success;
    finish(id, std::move(result));
    return DatagramVerdict::answered;
}

}  // namespace punch
