// The NAT mapping's lifetime (RFC 5780 §4.6): how long a UDP mapping lives without traffic,
// found by trials on the caller's event loop, with the search itself as pure decisions.
//
// One trial waits T: a fresh socket X sends a Binding request to the server and learns its
// mapped address; then X sends nothing (anything it sent would refresh its mapping). T after
// X's answer arrived, another socket Y (another mapping) sends a Binding request to the same
// server address with RESPONSE-PORT (RFC 5780 §7.5) = X's mapped port. The server answers
// from the address X sent to, to Y's mapped IP (X's, behind one public IP) and X's mapped
// port, so the answer passes even an address-and-port-dependent filter while X's mapping
// lives: X hears it and the mapping was alive after T; Y's transaction running out unheard
// says it was dead. The idle time the NAT saw is T plus Y's path to the NAT and back, a round
// trip to the server: small against the resolution.
//
// The search runs in rounds, the trials of a round in parallel (one X each, staggered by
// their T), so that it takes about as long as its longest waits rather than their sum:
//   round 1     T = start, 2·start, 4·start, ... below max, and max itself. A dead T cancels
//               the round's longer trials (they would only die too): the round ends shortly
//               after the first dead T, or after max when every trial lived.
//   round 2...  between the longest T seen alive and the shortest seen dead, up to
//               `parallel` evenly spaced Ts, no closer than the resolution.
// It stops when everything up to max lived ("> max"), when alive and dead are no more than
// the resolution apart, or when they contradict each other (a longer T alive than a dead
// one: a lost answer, or a NAT that is not one timer per mapping), reporting what it saw.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "punch/clock.h"
#include "punch/event_loop.h"
#include "punch/stun_transaction.h"
#include "stun/address.h"

namespace punch {

struct LifetimeSearch {
    Time start = std::chrono::seconds(1);  ///< round 1's shortest wait
    Time max = std::chrono::seconds(120);  ///< no wait longer; all alive up to it is "> max"
    Time resolution = std::chrono::seconds(1);  ///< stop when alive and dead are this close
    unsigned parallel = 4;                      ///< trials at once after round 1
};

/// One trial's wait and what it found.
struct LifetimeTrial {
    Time wait{0};
    bool alive = false;
};

/// The longest wait seen alive and the shortest seen dead (nullopt: none).
struct LifetimeBounds {
    std::optional<Time> alive;
    std::optional<Time> dead;
};

[[nodiscard]] LifetimeBounds lifetime_bounds(const std::vector<LifetimeTrial>& trials);

/// The next round's waits, ascending, from the trials so far; empty when the search is over.
[[nodiscard]] std::vector<Time> next_lifetime_round(const LifetimeSearch& search,
                                                   const std::vector<LifetimeTrial>& trials);

struct LifetimeConfig {
    stun::Address server;  ///< a server that honours RESPONSE-PORT (RFC 5780)
    /// Every Binding transaction's; its bound is also how long a trial waits for Y's answer
    /// before it calls the mapping dead.
    RetransmissionPolicy policy;
    LifetimeSearch search;
};

struct LifetimeReport {
    std::vector<LifetimeTrial> trials;  ///< in the order they ended
    LifetimeBounds bounds;
    unsigned rounds = 0;
    Time elapsed{0};
    /// Why the search stopped short ("" when it ran to its end): the server did not answer X,
    /// or it answered Y itself (it ignores RESPONSE-PORT) or with an error.
    std::string error;
};

/// Runs the search to its end on `loop` (which may hold other work). Returns "" and fills
/// `report` (its `error` says when a trial could not be made), or says why it could not start:
/// a bad search (start, resolution or max not positive, start above max), a socket that could
/// not be opened.
[[nodiscard]] std::string run_lifetime(EventLoop& loop, const LifetimeConfig& config,
                                       LifetimeReport& report);

}  // namespace punch
