#include "punch/sfu_select.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <tuple>

#include "punch/nat_matrix.h"

namespace punch {

std::string_view to_string(SfuDrop reason) noexcept {
    const auto i = static_cast<std::size_t>(reason);
    return i < sfu_drop_reasons.size() ? sfu_drop_reasons[i].name : "?";
}

namespace {

std::optional<SfuDrop> drop_reason(std::span<const SfuClient* const> clients,
                                   const SfuNode& node, std::uint64_t now_ms,
                                   const SfuSelectConfig& config) {
    // The directory's rule: gone when not heard from for *more* than the ttl. A heartbeat
    // stamped after now_ms (the caller's clock read earlier) is fresh.
    if (now_ms > node.last_heard_ms && now_ms - node.last_heard_ms > config.ttl_ms)
        return SfuDrop::expired;
    if (node.load >= config.full_load) return SfuDrop::full;
    const bool with_a = can_punch(node.nat_type, clients[0]->nat_type);
    const bool with_b = can_punch(node.nat_type, clients[1]->nat_type);
    if (!with_a && !with_b) return SfuDrop::nat_both;
    if (!with_a) return SfuDrop::nat_client_a;
    if (!with_b) return SfuDrop::nat_client_b;
    // A room of more than two: every member's leg goes to the node.
    for (const SfuClient* later : clients.subspan(2))
        if (!can_punch(node.nat_type, later->nat_type)) return SfuDrop::nat_member;
    return std::nullopt;
}

std::optional<std::uint32_t> rtt_through(std::span<const SfuClient* const> clients,
                                         std::uint64_t node) {
    // Media from one client reaches the others through the node: the call's round trip
    // through it is the sum of the clients' (rtt_A + rtt_B for two).
    std::uint64_t sum = 0;
    for (const SfuClient* client : clients) {
        const auto rtt = client->rtt_us.find(node);
        if (rtt == client->rtt_us.end()) return std::nullopt;
        sum += rtt->second;  // at most 2^32 each: no overflow below 2^32 clients
    }
    // Round trips of at most 71 minutes each: saturate rather than widen the type.
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(sum, UINT32_MAX));
}

int region_match(std::span<const SfuClient* const> clients, const std::string& region) {
    if (region.empty()) return 0;
    return static_cast<int>(std::count_if(clients.begin(), clients.end(),
                                          [&](const SfuClient* c) { return c->region == region; }));
}

// The preset rule as one key, smaller first: measured before not; then the RTT sum for the
// measured, the region (more matches first) for the others; then load, then id.
auto rank(const SfuCandidate& c) {
    return c.rtt_us ? std::make_tuple(0, *c.rtt_us, 0, c.load, c.id)
                    : std::make_tuple(1, std::uint32_t{0}, -c.region_match, c.load, c.id);
}

SfuSelection select(std::span<const SfuClient* const> clients, std::span<const SfuNode> nodes,
                    std::uint64_t now_ms, const SfuSelectConfig& config) {
    if (config.race == 0)
        throw std::invalid_argument(
            "SfuSelectConfig::race is 0; expected 1 or more (1: try the nodes one by one)");
    if (config.full_load == 0)
        throw std::invalid_argument(
            "SfuSelectConfig::full_load is 0, which makes every node full; expected the load of "
            "a full node, e.g. 1000 (per-mille)");
    if (clients.size() < 2)
        throw std::invalid_argument("select_sfu_nodes: clients holds " +
                                    std::to_string(clients.size()) +
                                    "; expected the two or more members of the call");

    SfuSelection out;
    for (const SfuNode& node : nodes) {
        if (const auto reason = drop_reason(clients, node, now_ms, config)) {
            out.dropped.push_back({node.id, *reason});
            continue;
        }
        out.candidates.push_back({node.id, node.address, node.nat_type,
                                  rtt_through(clients, node.id),
                                  region_match(clients, node.region), node.load});
    }
    std::sort(out.candidates.begin(), out.candidates.end(),
              [](const SfuCandidate& x, const SfuCandidate& y) { return rank(x) < rank(y); });

    for (std::size_t i = 0; i < out.candidates.size(); ++i) {
        if (i == 0 || i >= config.race) out.attempts.emplace_back();
        out.attempts.back().push_back(out.candidates[i].id);
    }
    return out;
}

}  // namespace

SfuSelection select_sfu_nodes(const SfuClient& a, const SfuClient& b,
                              std::span<const SfuNode> nodes, std::uint64_t now_ms,
                              const SfuSelectConfig& config) {
    const std::array<const SfuClient*, 2> clients = {&a, &b};
    return select(clients, nodes, now_ms, config);
}

SfuSelection select_sfu_nodes(std::span<const SfuClient> clients,
                              std::span<const SfuNode> nodes, std::uint64_t now_ms,
                              const SfuSelectConfig& config) {
    std::vector<const SfuClient*> pointers;
    pointers.reserve(clients.size());
    for (const SfuClient& client : clients) pointers.push_back(&client);
    return select(pointers, nodes, now_ms, config);
}

}  // namespace punch
