// engine/include/engine/config_diff.h: which keys differ, and which of them need a restart.
#include "engine/config_diff.h"

#include <algorithm>
#include <string_view>
#include <tuple>

namespace engine {
namespace {

// Lists whose order means nothing: compared sorted.
template <class T, class Less>
bool same_set(std::vector<T> a, std::vector<T> b, Less less) {
    std::sort(a.begin(), a.end(), less);
    std::sort(b.begin(), b.end(), less);
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

bool same_users(const std::vector<RelayUser>& a, const std::vector<RelayUser>& b) {
    std::vector<std::pair<std::string, std::string>> x, y;
    for (const RelayUser& u : a) x.emplace_back(u.name, u.password);
    for (const RelayUser& u : b) y.emplace_back(u.name, u.password);
    return same_set(x, y, std::less<>());
}

bool same_cidrs(const std::vector<Cidr>& a, const std::vector<Cidr>& b) {
    return same_set(a, b, [](const Cidr& x, const Cidr& y) {
        return std::tie(x.family, x.prefix_length, x.network) <
               std::tie(y.family, y.prefix_length, y.network);
    });
}

class Differ {
public:
    explicit Differ(ConfigChanges& out) : out_(out) {}
    void live(std::string_view key, bool same) {
        if (!same) out_.live.emplace_back(key);
    }
    void restart(std::string_view key, bool same) {
        if (!same) out_.restart.emplace_back(key);
    }

private:
    ConfigChanges& out_;
};

void diff_ports(const EngineConfig& a, const EngineConfig& b, Differ& d) {
    if (a.ports.size() != b.ports.size()) {
        d.restart("port", false);
        return;
    }
    for (std::size_t i = 0; i < a.ports.size(); ++i) {
        const PortConfig& x = a.ports[i];
        const PortConfig& y = b.ports[i];
        const std::string key = "port[" + std::to_string(i) + "].";
        d.restart(key + "device", x.device == y.device);
        d.restart(key + "ipv4", x.ipv4 == y.ipv4);
        d.restart(key + "prefix4", x.prefix4 == y.prefix4);
        d.restart(key + "gateway4", x.gateway4 == y.gateway4);
        d.restart(key + "ipv6", x.ipv6 == y.ipv6);
        d.restart(key + "prefix6", x.prefix6 == y.prefix6);
        d.restart(key + "gateway6", x.gateway6 == y.gateway6);
        d.restart(key + "rx_checksum", x.rx_checksum == y.rx_checksum);
    }
}

void diff_relay(const RelayConfig& a, const RelayConfig& b, Differ& d) {
    d.restart("relay.enabled", a.enabled == b.enabled);
    if (!a.enabled && !b.enabled) return;
    d.live("relay.realm", a.realm == b.realm);
    d.restart("relay.ports", a.port_first == b.port_first && a.port_last == b.port_last);
    d.live("relay.users", same_users(a.users, b.users));
    d.live("relay.rest_secrets", same_set(a.rest_secrets, b.rest_secrets, std::less<>()));
    d.live("relay.nonce_lifetime_s", a.nonce_lifetime_s == b.nonce_lifetime_s);
    d.live("relay.allocation_lifetime_max_s",
           a.allocation_lifetime_max_s == b.allocation_lifetime_max_s);
    d.restart("relay.max_allocations", a.max_allocations == b.max_allocations);
    d.live("relay.max_allocations_per_user",
           a.max_allocations_per_user == b.max_allocations_per_user);
    d.restart("relay.max_permissions_per_allocation",
              a.max_permissions_per_allocation == b.max_permissions_per_allocation);
    d.restart("relay.max_channels_per_allocation",
              a.max_channels_per_allocation == b.max_channels_per_allocation);
    d.restart("relay.peer_entries", a.peer_entries == b.peer_entries);
    d.restart("relay.reservations", a.reservations == b.reservations);
    d.live("relay.bandwidth_bytes_per_s", a.bandwidth_bytes_per_s == b.bandwidth_bytes_per_s);
    d.live("relay.bandwidth_burst_bytes", a.bandwidth_burst_bytes == b.bandwidth_burst_bytes);
    d.restart("relay.unauthenticated_requests_per_s",
              a.unauthenticated_requests_per_s == b.unauthenticated_requests_per_s);
    d.restart("relay.unauthenticated_burst", a.unauthenticated_burst == b.unauthenticated_burst);
    d.live("relay.peer_allow", same_cidrs(a.peer_allow, b.peer_allow));
    d.live("relay.peer_deny", same_cidrs(a.peer_deny, b.peer_deny));
    d.live("relay.alternate_server", a.alternate_server == b.alternate_server);
}

}  // namespace

ConfigChanges diff_config(const EngineConfig& running, const EngineConfig& next) {
    ConfigChanges out;
    Differ d(out);
    d.restart("eal.args", running.eal_args == next.eal_args);
    d.restart("engine.workers", running.workers == next.workers);
    d.restart("engine.mbufs", running.mbufs == next.mbufs);
    d.restart("engine.burst", running.burst == next.burst);
    d.restart("engine.steering", running.steering == next.steering);
    const StunConfig& sa = running.stun;
    const StunConfig& sb = next.stun;
    d.restart("stun.enabled", sa.enabled == sb.enabled);
    d.restart("stun.port", sa.port == sb.port);
    d.restart("stun.alternate_port", sa.alternate_port == sb.alternate_port);
    d.restart("stun.software", sa.software == sb.software);
    const NeighbourConfig& na = running.neighbour;
    const NeighbourConfig& nb = next.neighbour;
    d.restart("neighbour.reachable_ms", na.reachable_ms == nb.reachable_ms);
    d.restart("neighbour.retransmit_ms", na.retransmit_ms == nb.retransmit_ms);
    d.restart("neighbour.max_probes", na.max_probes == nb.max_probes);
    d.restart("neighbour.failed_retry_ms", na.failed_retry_ms == nb.failed_retry_ms);
    d.restart("neighbour.capacity", na.capacity == nb.capacity);
    diff_relay(running.relay, next.relay, d);
    // The SFU role's keys size or place its tables and listener at start-up: none is live yet.
    const SfuConfig& fa = running.sfu;
    const SfuConfig& fb = next.sfu;
    d.restart("sfu.port", fa.port == fb.port);
    d.restart("sfu.token_secrets", fa.token_secrets == fb.token_secrets);
    d.restart("sfu.max_legs", fa.max_legs == fb.max_legs);
    d.restart("sfu.max_legs_per_session", fa.max_legs_per_session == fb.max_legs_per_session);
    d.restart("sfu.leg_timeout_s", fa.leg_timeout_s == fb.leg_timeout_s);
    d.restart("sfu.unauthenticated_requests_per_s",
              fa.unauthenticated_requests_per_s == fb.unauthenticated_requests_per_s);
    d.restart("sfu.unauthenticated_burst", fa.unauthenticated_burst == fb.unauthenticated_burst);
    d.restart("control.socket", running.control.socket == next.control.socket);
    d.restart("control.group", running.control.group == next.control.group);
    diff_ports(running, next, d);
    return out;
}

}  // namespace engine
