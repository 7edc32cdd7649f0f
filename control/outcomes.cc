// Outcome reports and their aggregation (control/outcomes.h).
#include "control/outcomes.h"

#include <algorithm>
#include <array>
#include <map>
#include <utility>
#include <vector>

namespace control {
namespace {

constexpr std::array all_rungs = {Rung::p2p, Rung::sfu, Rung::relay, Rung::failed};

struct Cell {
    std::uint64_t count = 0;
    std::vector<std::uint64_t> times;
};

nlohmann::json cell_json(Cell& cell) {
    nlohmann::json out = {{"count", cell.count}};
    if (!cell.times.empty()) {
        std::sort(cell.times.begin(), cell.times.end());
        const std::size_t n = cell.times.size();
        // The median of an even count is the mean of the middle two, rounded down.
        const std::uint64_t median =
            n % 2 == 1 ? cell.times[n / 2] : (cell.times[n / 2 - 1] + cell.times[n / 2]) / 2;
        out["time_to_connect_ms"] = {
            {"min", cell.times.front()}, {"median", median}, {"max", cell.times.back()}};
    }
    return out;
}

struct PairCells {
    std::uint64_t count = 0;
    std::uint64_t success = 0;
    std::array<Cell, all_rungs.size()> rungs;
};

nlohmann::json rungs_json(std::array<Cell, all_rungs.size()>& cells) {
    nlohmann::json out = nlohmann::json::object();
    for (std::size_t i = 0; i < all_rungs.size(); ++i)
        if (cells[i].count != 0) out[std::string(to_string(all_rungs[i]))] = cell_json(cells[i]);
    return out;
}

}  // namespace

std::string_view to_string(Rung rung) noexcept {
    switch (rung) {
        case Rung::p2p: return "p2p";
        case Rung::sfu: return "sfu";
        case Rung::relay: return "relay";
        case Rung::failed: return "failed";
    }
    return "?";
}

bool rung_from_string(std::string_view text, Rung& out) noexcept {
    for (const Rung rung : all_rungs) {
        if (to_string(rung) == text) {
            out = rung;
            return true;
        }
    }
    return false;
}

void OutcomeStore::add(OutcomeReport report) {
    ++received_;
    if (capacity_ == 0) return;
    if (reports_.size() >= capacity_) reports_.pop_front();
    reports_.push_back(std::move(report));
}

nlohmann::json OutcomeStore::aggregate() const {
    std::array<Cell, all_rungs.size()> overall;
    std::map<std::pair<std::string, std::string>, PairCells> pairs;
    for (const OutcomeReport& report : reports_) {
        const auto index = static_cast<std::size_t>(report.rung);
        auto key = std::minmax(report.local_nat, report.remote_nat);
        PairCells& pair = pairs[{key.first, key.second}];
        ++pair.count;
        if (report.rung != Rung::failed) ++pair.success;
        for (Cell* cell : {&overall[index], &pair.rungs[index]}) {
            ++cell->count;
            if (report.time_to_connect_ms) cell->times.push_back(*report.time_to_connect_ms);
        }
    }
    nlohmann::json pair_list = nlohmann::json::array();
    for (auto& [names, cells] : pairs)
        pair_list.push_back({{"nat", {names.first, names.second}},
                             {"count", cells.count},
                             {"success", cells.success},
                             {"rungs", rungs_json(cells.rungs)}});
    return {{"reports", reports_.size()},
            {"received", received_},
            {"forgotten", received_ - reports_.size()},
            {"rungs", rungs_json(overall)},
            {"pairs", std::move(pair_list)}};
}

}  // namespace control
