// An SFU node's own test packets (control/node_punch.h).
#include "control/node_punch.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "stun/constants.h"
#include "stun/crypto.h"
#include "stun/integrity.h"
#include "stun/writer.h"

namespace control {

NodePuncher::NodePuncher(const punch::Clock& clock, punch::DatagramSender& transport,
                         std::vector<std::byte> secret, PunchPacing pacing)
    : clock_(clock), transport_(transport), secret_(std::move(secret)), pacing_(pacing) {}

bool NodePuncher::build(Target& target) {
    // RFC 8489 §6: a new, cryptographically random transaction ID per transaction.
    if (!stun::random_bytes(target.id)) return false;
    stun::MessageWriter writer(target.request, stun::Method::binding,
                               stun::MessageClass::request, target.id);
    writer.add_text(stun::attr::username, target.username);
    // RFC 8489 §9.1.2: short-term credentials key MESSAGE-INTEGRITY with the password itself
    // (OpaqueString leaves base64 unchanged).
    writer.add_message_integrity(std::as_bytes(std::span(target.password)));
    writer.add_fingerprint();
    target.request_size = writer.finish().size();
    return writer.ok() && target.request_size != 0;
}

std::size_t NodePuncher::start(const PunchOrder& order) {
    ++counters_.orders;
    const punch::Time now = clock_.now();
    std::size_t started = 0;
    for (const stun::Address& address : order.addresses) {
        auto it = std::find_if(targets_.begin(), targets_.end(), [&](const Target& t) {
            return t.to == address && t.username == order.username;
        });
        if (it == targets_.end()) {
            if (targets_.size() >= pacing_.max_targets) {
                ++counters_.targets_refused;
                continue;
            }
            Target target;
            target.to = address;
            target.username = order.username;
            stun::make_sfu_password(secret_, target.username, target.password);
            if (!build(target)) {
                // No transaction ID (the random generator failed) or a username too long for
                // the buffer (the caller validated it): nothing can be sent for it.
                ++counters_.send_failures;
                continue;
            }
            targets_.push_back(std::move(target));
            it = targets_.end() - 1;
        }
        it->next_send = now;
        it->ends = now + pacing_.duration;
        ++counters_.targets;
        ++started;
    }
    return started;
}

void NodePuncher::poll() {
    const punch::Time now = clock_.now();
    std::erase_if(targets_, [&](const Target& t) {
        if (now < t.ends) return false;
        ++counters_.targets_unanswered;
        return true;
    });
    for (Target& target : targets_) {
        if (now < target.next_send) continue;
        if (transport_.send_to(target.to,
                               std::span(target.request).first(target.request_size)))
            ++counters_.requests_sent;
        else
            ++counters_.send_failures;
        // Paced from the schedule, not from now: a late poll sends once, not a burst.
        while (target.next_send <= now) target.next_send += pacing_.interval;
    }
}

bool NodePuncher::on_datagram(const stun::Address& /*from*/,
                              std::span<const std::byte> datagram) {
    stun::Message message;
    if (!stun::Message::looks_like_stun(datagram) ||
        stun::Message::parse(datagram, message) != stun::ParseError::ok)
        return false;
    if (message.method() != static_cast<std::uint16_t>(stun::Method::binding) ||
        (message.message_class() != stun::MessageClass::success_response &&
         message.message_class() != stun::MessageClass::error_response))
        return false;
    const auto id = message.transaction_id();
    const auto it = std::find_if(targets_.begin(), targets_.end(), [&](const Target& t) {
        return std::equal(t.id.begin(), t.id.end(), id.begin());
    });
    if (it == targets_.end()) return false;
    // The answer comes from wherever the participant's NAT maps it (peer-reflexive, as in
    // punching), so its source is not checked; the transaction ID (96 random bits) ties it to
    // our request. RFC 8489 §9.1.4: a response that carries MESSAGE-INTEGRITY with the wrong
    // key is discarded as if never received.
    if (message.message_integrity() &&
        stun::verify_message_integrity(message, std::as_bytes(std::span(it->password))) !=
            stun::IntegrityResult::ok) {
        ++counters_.answers_bad_integrity;
        return true;
    }
    ++counters_.answers;
    ++counters_.targets_answered;
    targets_.erase(it);
    return true;
}

std::optional<punch::Time> NodePuncher::next_deadline() const noexcept {
    std::optional<punch::Time> earliest;
    for (const Target& t : targets_) {
        const punch::Time due = std::min(t.next_send, t.ends);
        if (!earliest || due < *earliest) earliest = due;
    }
    return earliest;
}

}  // namespace control
