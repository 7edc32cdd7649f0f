// STUN client transactions over UDP (RFC 8489 §6.2.1, §6.3.3, §6.3.4): Binding requests sent
// and retransmitted on a timer, responses matched to them by transaction ID and validated.
//
// A StunClient serves one socket (one call leg). It owns nothing but its pending transactions:
// the socket comes in as a DatagramSender, the time as a Clock and a TimerQueue, so a test
// drives the whole retransmission schedule with a ManualClock and a recording sender.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "punch/clock.h"
#include "punch/timer_queue.h"
#include "punch/udp_socket.h"
#include "stun/address.h"
#include "stun/message.h"

namespace punch {

/// RFC 8489 §6.2.1's retransmission parameters, and the caller's bound on the whole.
struct RetransmissionPolicy {
    /// The initial retransmission timeout (RFC 8489 §6.2.1: configurable, 500 ms unless the
    /// path's RTT is known); it doubles after every send.
    Time initial_rto = std::chrono::milliseconds(500);
    /// Rc: requests sent in all, the first included. Default 7.
    unsigned max_sends = 7;
    /// Rm: after the last send, the client waits Rm × RTO (the initial RTO) for an answer.
    /// Default 16.
    unsigned last_wait_factor = 16;
    /// The longest a transaction may take, whatever the schedule says (0: the schedule's own
    /// 39.5 s with the defaults). A send that would fall at or after it is not made.
    Time max_duration{0};
};

/// When a transaction sends (offsets from its start) and when it gives up.
struct RetransmissionSchedule {
    std::vector<Time> sends;
    Time give_up{0};
};

/// RFC 8489 §6.2.1: "with an RTO of 500 ms, requests would be sent at times 0 ms, 500 ms,
/// 1500 ms, 3500 ms, 7500 ms, 15500 ms, and 31500 ms. If the client has not received a
/// response after 39500 ms, the client will consider the transaction to have timed out."
/// Cut at `max_duration` when it is set.
[[nodiscard]] RetransmissionSchedule retransmission_schedule(const RetransmissionPolicy& policy);

enum class TransactionStatus : std::uint8_t {
    success,         ///< a valid success response
    error_response,  ///< a valid error response (error_code, error_reason)
    timeout,         ///< no valid response by the schedule's end
    send_failed,     ///< the first request could not be handed to the kernel
};

[[nodiscard]] std::string_view to_string(TransactionStatus status) noexcept;

/// What a Binding transaction found.
struct BindingResult {
    TransactionStatus status = TransactionStatus::timeout;
    stun::Address server;  ///< where the request went
    stun::Address from;    ///< where the response came from (success or error)
    /// From the first send to the response. A response to a retransmission is timed from the
    /// first send too: which send it answers cannot be known (Karn), and "fastest to answer"
    /// is what the caller ranks servers by.
    Time elapsed{0};
    unsigned sends = 0;
    stun::Address mapped;                         ///< XOR-MAPPED-ADDRESS (success)
    std::optional<stun::Address> other_address;    ///< RFC 5780 §7.4 OTHER-ADDRESS
    std::optional<stun::Address> response_origin;  ///< RFC 5780 §7.3 RESPONSE-ORIGIN
    std::uint16_t error_code = 0;
    std::string error_reason;
};

/// Why a datagram that looked like a response to us was ignored. One table, name and help.
#define PUNCH_RESPONSE_REJECTIONS(X)                                                          \
    X(malformed, "not a well-formed STUN message (RFC 8489 §6.3)")                           \
    X(unknown_transaction, "a response whose transaction ID matches no pending request")     \
    X(wrong_method, "a response of another method than its request's")                       \
    X(bad_fingerprint, "FINGERPRINT present and wrong (RFC 8489 §7.3)")                       \
    X(missing_xor_mapped_address, "a Binding success response without XOR-MAPPED-ADDRESS")   \
    X(bad_address_attribute,                                                                 \
      "XOR-MAPPED-ADDRESS, OTHER-ADDRESS or RESPONSE-ORIGIN that does not decode")            \
    X(unknown_comprehension_required,                                                        \
      "an unknown comprehension-required attribute (RFC 8489 §6.3.3, §6.3.4)")                \
    X(bad_error_code, "an error response whose ERROR-CODE is missing or does not decode")

enum class ResponseRejection : std::uint8_t {
#define PUNCH_REJECTION_ENUM(name, help) name,
    PUNCH_RESPONSE_REJECTIONS(PUNCH_REJECTION_ENUM)
#undef PUNCH_REJECTION_ENUM
        count
};

[[nodiscard]] std::string_view to_string(ResponseRejection rejection) noexcept;
[[nodiscard]] std::string_view help(ResponseRejection rejection) noexcept;

/// What on_datagram() made of a datagram.
enum class DatagramVerdict : std::uint8_t {
    answered,      ///< a valid response: its transaction ended and its callback ran
    rejected,      ///< a response we ignore (counted under its ResponseRejection)
    not_response,  ///< well-formed STUN, but a request or indication: the caller's business
    not_stun,      ///< not STUN at all: the caller's business (media, ChannelData, ...)
};

class StunClient {
public:
    using Callback = std::function<void(const BindingResult&)>;

    StunClient(const Clock& clock, TimerQueue& timers, DatagramSender& socket,
               RetransmissionPolicy policy = {});
    StunClient(const StunClient&) = delete;
    StunClient& operator=(const StunClient&) = delete;
    ~StunClient();

    /// Sends a Binding request to `to` (with CHANGE-REQUEST when `change_flags` is not 0,
    /// stun::change_ip | stun::change_port; and FINGERPRINT, so that a server can tell STUN from
    /// other traffic, RFC 8489 §7) and retransmits it per the schedule. `done` runs exactly
    /// once, from on_datagram() or from a timer, never from here. Returns the transaction ID,
    /// or nullopt when no random ID could be drawn.
    std::optional<stun::TransactionId> start_binding(const stun::Address& to,
                                                     std::uint32_t change_flags, Callback done) {
        return start_binding(to, change_flags, 0, std::move(done));
    }

    /// The same with RFC 5780 §7.5 RESPONSE-PORT when `response_port` is not 0: the server
    /// answers to our mapped IP and that port, so the answer goes to another socket's mapping
    /// (the mapping lifetime test, RFC 5780 §4.6) and this transaction hears nothing of it.
    std::optional<stun::TransactionId> start_binding(const stun::Address& to,
                                                     std::uint32_t change_flags,
                                                     std::uint16_t response_port, Callback done);

    /// Offers a received datagram. A response is matched by transaction ID alone: an RFC 5780
    /// CHANGE-REQUEST answer comes from another address than the request went to.
    DatagramVerdict on_datagram(const stun::Address& from, std::span<const std::byte> datagram);

    /// Ends a pending transaction without calling its callback; false if it is not pending.
    bool cancel(const stun::TransactionId& id);

    /// Ends every pending transaction without calling its callback.
    void cancel_all();

    [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }
    [[nodiscard]] std::uint64_t rejected(ResponseRejection why) const noexcept {
        return rejected_[static_cast<std::size_t>(why)];
    }

private:
    struct Transaction {
        stun::Address to;
        std::array<std::byte, 64> request{};
        std::size_t request_size = 0;
        Time started{0};
        std::size_t next_send = 0;  // index into schedule_.sends
        unsigned sends = 0;
        TimerId timer = 0;
        Callback done;
    };
    struct IdHash {
        std::size_t operator()(const stun::TransactionId& id) const noexcept;
    };

    void on_timer(const stun::TransactionId& id);
    void arm(const stun::TransactionId& id, Transaction& t);
    void finish(const stun::TransactionId& id, BindingResult result);
    DatagramVerdict reject(ResponseRejection why);

    const Clock& clock_;
    TimerQueue& timers_;
    DatagramSender& socket_;
    RetransmissionSchedule schedule_;
    std::unordered_map<stun::TransactionId, Transaction, IdHash> pending_;
    std::array<std::uint64_t, static_cast<std::size_t>(ResponseRejection::count)> rejected_{};
};

}  // namespace punch
