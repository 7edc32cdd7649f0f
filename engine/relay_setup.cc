#include "engine/relay_setup.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/peer_policy.h"
#include "engine/turn_auth.h"

namespace engine {

std::unique_ptr<const RelayContext> make_relay_context(const RelayConfig& relay,
                                                       const PortConfig& port,
                                                       const NonceKeys& nonce_keys,
                                                       std::uint64_t ticks_per_second,
                                                       bool draining) {
    std::vector<LongTermUser> users;
    users.reserve(relay.users.size());
    for (const RelayUser& user : relay.users) users.push_back({user.name, user.password});
    const std::vector<std::string_view> secrets(relay.rest_secrets.begin(),
                                                relay.rest_secrets.end());
    CredentialsSettings settings;
    settings.realm = relay.realm;
    settings.users = users;
    settings.rest_secrets = secrets;
    settings.nonce_keys = nonce_keys;
    settings.nonce_lifetime_s = relay.nonce_lifetime_s;
    Credentials credentials;
    if (const CredentialsError error = Credentials::build(settings, credentials);
        error != CredentialsError::ok)
        throw std::runtime_error("relay: the credentials cannot be built (" +
                                 std::string(to_string(error)) +
                                 "): check relay.realm, relay.users and relay.rest_secrets");

    // Every address the port owns, the RFC 5780 alternates included: a peer there is the
    // server itself (peer_policy.h, rule 1), except the relayed addresses (rule 3).
    std::vector<stun::Address> own(port.ipv4.begin(), port.ipv4.end());
    own.insert(own.end(), port.ipv6.begin(), port.ipv6.end());

    RelayAddress address;
    address.families = 0;
    if (!port.ipv4.empty()) {
        address.ipv4 = port.ipv4.front();
        address.families |= relay_ipv4;
    }
    if (!port.ipv6.empty()) {
        address.ipv6 = port.ipv6.front();
        address.families |= relay_ipv6;
    }
    if (address.families == 0)
        throw std::runtime_error("relay: port " + port.device +
                                 " has no address to relay from: give it ipv4 or ipv6");
    const RelayLimits limits = RelayLimits::from(relay, ticks_per_second);
    if (relay.bandwidth_bytes_per_s != 0 && !limits.bandwidth)
        throw std::runtime_error(
            "relay: relay.bandwidth_bytes_per_s and relay.bandwidth_burst_bytes cannot be kept "
            "on this clock: lower the burst");
    std::vector<stun::Address> relayed;
    if ((address.families & relay_ipv4) != 0) relayed.push_back(address.ipv4);
    if ((address.families & relay_ipv6) != 0) relayed.push_back(address.ipv6);
    PeerPolicy policy(relay.peer_allow, relay.peer_deny, own, relayed);
    return std::make_unique<const RelayContext>(std::move(credentials), std::move(policy),
                                                std::vector<RelayAddress>{address}, limits,
                                                RelayDrain{draining, relay.alternate_server});
}

RelayPortPartition relay_port_partition(const RelayConfig& relay, unsigned workers) noexcept {
    const unsigned ports = unsigned{relay.port_last} - relay.port_first + 1;
    return {relay.port_first, static_cast<std::uint16_t>(workers == 0 ? 0 : ports / workers)};
}

RelayTableLimits relay_table_limits(const RelayConfig& relay, unsigned worker,
                                    unsigned workers, std::uint64_t ticks_per_second,
                                    std::uint64_t seed) noexcept {
    const RelayPortPartition partition = relay_port_partition(relay, workers);
    const auto share = [workers](std::uint32_t total) {
        return static_cast<std::uint32_t>((std::uint64_t{total} + workers - 1) / workers);
    };
    RelayTableLimits limits;
    limits.capacity = share(relay.max_allocations);
    limits.peer_entries =
        share(relay.peer_entries != 0 ? relay.peer_entries : relay.max_allocations);
    // RFC 8656 §7.2's R bit is rare (rtcp-mux is the norm): a sixteenth of the allocations.
    limits.reservations = std::max<std::uint32_t>(
        1, relay.reservations != 0 ? share(relay.reservations) : limits.capacity / 16);
    limits.ticks_per_second = ticks_per_second;
    limits.first_relay_port =
        static_cast<std::uint16_t>(partition.first + worker * partition.per_worker);
    limits.relay_port_count = partition.per_worker;
    limits.relay_addresses = 1;
    limits.max_permissions = static_cast<std::uint16_t>(relay.max_permissions_per_allocation);
    limits.max_channels = static_cast<std::uint16_t>(relay.max_channels_per_allocation);
    limits.seed = seed;
    return limits;
}

RateLimit unauthenticated_limit(const RelayConfig& relay, std::uint64_t ticks_per_second) {
    const std::optional<RateLimit> limit = RateLimit::make(
        relay.unauthenticated_requests_per_s, relay.unauthenticated_burst, ticks_per_second);
    if (!limit)
        throw std::runtime_error(
            "relay: relay.unauthenticated_requests_per_s and relay.unauthenticated_burst "
            "cannot be kept on this clock: lower the burst");
    return *limit;
}

}  // namespace engine
