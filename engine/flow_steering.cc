#include "engine/flow_steering.h"

#include <rte_ethdev.h>
#include <rte_flow.h>

#include <vector>

namespace engine {
namespace {

// One rule: ETH / IPv4-or-IPv6 / UDP → RSS over the queues, hashing only the source address and
// source port (RTE_ETH_RSS_L3_SRC_ONLY | L4_SRC_ONLY), the same key owner_worker() hashes.
// Returns the rule, or null with `reason` set. `create` false: validate only.
rte_flow* rule(std::uint16_t port_id, bool ipv6, const std::vector<std::uint16_t>& queues,
               bool create, std::string& reason) {
    rte_flow_attr attr{};
    attr.ingress = 1;
    rte_flow_item pattern[4]{};
    pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
    pattern[1].type = ipv6 ? RTE_FLOW_ITEM_TYPE_IPV6 : RTE_FLOW_ITEM_TYPE_IPV4;
    pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
    pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
    rte_flow_action_rss rss{};
    rss.func = RTE_ETH_HASH_FUNCTION_DEFAULT;
    rss.level = 0;
    rss.types = (ipv6 ? RTE_ETH_RSS_NONFRAG_IPV6_UDP : RTE_ETH_RSS_NONFRAG_IPV4_UDP) |
                RTE_ETH_RSS_L3_SRC_ONLY | RTE_ETH_RSS_L4_SRC_ONLY;
    rss.queue_num = static_cast<std::uint32_t>(queues.size());
    rss.queue = queues.data();
    rte_flow_action actions[2]{};
    actions[0].type = RTE_FLOW_ACTION_TYPE_RSS;
    actions[0].conf = &rss;
    actions[1].type = RTE_FLOW_ACTION_TYPE_END;
    rte_flow_error error{};
    const char* family = ipv6 ? "UDP/IPv6" : "UDP/IPv4";
    if (int rc = rte_flow_validate(port_id, &attr, pattern, actions, &error); rc != 0) {
        reason = std::string("rte_flow refused the ") + family + " rule: " +
                 (error.message != nullptr ? error.message : rte_strerror(-rc));
        return nullptr;
    }
    if (!create) return nullptr;
    rte_flow* flow = rte_flow_create(port_id, &attr, pattern, actions, &error);
    if (flow == nullptr)
        reason = std::string("rte_flow_create failed for the ") + family + " rule: " +
                 (error.message != nullptr ? error.message : "no reason given");
    return flow;
}

}  // namespace

SteeringResult install_steering_rules(std::uint16_t port_id, std::uint16_t queues) {
    SteeringResult result;
    if (queues <= 1) {
        result.reason = "one queue: nothing to steer";
        return result;
    }
    std::vector<std::uint16_t> ids(queues);
    for (std::uint16_t q = 0; q < queues; ++q) ids[q] = q;
    // Both validated before either is created, so that a port never has half the rules.
    for (bool ipv6 : {false, true}) {
        std::string reason;
        rule(port_id, ipv6, ids, false, reason);
        if (!reason.empty()) {
            result.reason = reason;
            return result;
        }
    }
    for (bool ipv6 : {false, true}) {
        std::string reason;
        if (rule(port_id, ipv6, ids, true, reason) == nullptr) {
            remove_steering_rules(port_id);
            result.reason = reason;
            return result;
        }
    }
    result.mode = SteeringMode::rules;
    result.reason = "rte_flow RSS on source address and port over " + std::to_string(queues) +
                    " queues";
    return result;
}

void remove_steering_rules(std::uint16_t port_id) noexcept {
    rte_flow_error error{};
    rte_flow_flush(port_id, &error);
}

}  // namespace engine
