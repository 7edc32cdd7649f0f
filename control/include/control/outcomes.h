// Outcome reports (design.md §4): which rung each call ended on and how long it took to connect,
// kept by the coordinator and aggregated per NAT-type pair and per rung for operators.
//
// The last `capacity` reports are kept (a ring: the oldest is forgotten and counted), and the
// aggregation is computed from them when asked, so that a median is exact over what is kept.
// The pair is unordered: a call between a full cone and a symmetric NAT is one cell, whichever
// side reports it; its key lists the two names in sorted order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace control {

enum class Rung : std::uint8_t { p2p, sfu, relay, failed };

[[nodiscard]] std::string_view to_string(Rung rung) noexcept;
/// "p2p", "sfu", "relay" or "failed"; false for anything else.
[[nodiscard]] bool rung_from_string(std::string_view text, Rung& out) noexcept;

struct OutcomeReport {
    std::string room;
    std::string reporter;  ///< the member's name, or "" for a connection outside the room
    Rung rung = Rung::failed;
    /// Absent for a failed call (nothing connected).
    std::optional<std::uint64_t> time_to_connect_ms;
    std::string local_nat;
    std::string remote_nat;
    std::uint64_t received_unix_ms = 0;
};

class OutcomeStore {
public:
    explicit OutcomeStore(std::size_t capacity) noexcept : capacity_(capacity) {}

    void add(OutcomeReport report);

    /// {"reports": kept, "received": ever, "forgotten": ever − kept,
    ///  "rungs": {"p2p": CELL, ...},
    ///  "pairs": [{"nat": ["full_cone", "symmetric"], "count", "success",
    ///             "rungs": {"p2p": CELL, ...}}, ...]}
    /// with CELL = {"count", "time_to_connect_ms": {"min", "median", "max"}} (the times only
    /// where some report of the cell had one). Pairs are sorted by their names.
    [[nodiscard]] nlohmann::json aggregate() const;

    [[nodiscard]] std::size_t size() const noexcept { return reports_.size(); }
    [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

private:
    std::size_t capacity_;
    std::uint64_t received_ = 0;
    std::deque<OutcomeReport> reports_;
};

}  // namespace control
