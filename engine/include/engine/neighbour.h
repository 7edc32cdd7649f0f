// The neighbour cache: resolution of a port's gateways (and, for the relay, of on-link peers)
// to MAC addresses, by ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861 §7).
//
// Who owns what:
//   - NeighbourTable: the control thread's, one per port. Entries are added by resolve(), moved
//     by tick() and on_reply(); time is a `now` argument in milliseconds of a monotonic clock,
//     so that tests drive it. Allocates; never on a worker.
//   - NeighbourSnapshot: what the workers read, a copy the control thread takes of the table
//     whenever a MAC or its usability changed, and publishes inside the port's PortContext
//     (rcu_assign_pointer; the old one freed after synchronize_rcu(), punchlined.cc). Lookups
//     are const, noexcept, allocation-free.
//   - The frame functions (probe builders, the reply parser): pure, on caller buffers, no DPDK.
//
// States, after RFC 4861 §7.3.2 and Linux's neighbour table:
//   INCOMPLETE  probing: a broadcast ARP request or a solicitation to the solicited-node group
//               every retransmit_ms, at most max_probes, then FAILED.
//   REACHABLE   a reply confirmed the MAC within reachable_ms.
//   STALE       reachable_ms passed, or the MAC came unsolicited: still used, and confirmed by
//               unicast probes (RFC 4861's STALE, DELAY and PROBE in one: the engine sends to
//               its gateways all the time, so waiting for traffic to start probing gains
//               nothing); max_probes unanswered make it FAILED.
//   FAILED      no MAC. A gateway is probed again after failed_retry_ms, doubled after each
//               further failure (at most 32 times); any other entry is removed then.
// A reply updates only an address already in the table (RFC 826's merge): nobody can fill the
// cache by sending unsolicited replies. Gateways are added at construction and never removed.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "engine/config.h"
#include "stun/address.h"

namespace engine {

using MacAddress = std::array<std::byte, 6>;

/// Whether `a` and `b` (same family) agree in their first `prefix_length` bits.
[[nodiscard]] inline bool shares_prefix(const stun::Address& a, const stun::Address& b,
                                      unsigned prefix_length) noexcept {
    const std::size_t whole = std::min<std::size_t>(prefix_length / 8, a.ip_size());
    if (std::memcmp(a.ip.data(), b.ip.data(), whole) != 0) return false;
    const unsigned rest = prefix_length % 8;
    if (rest == 0 || whole == a.ip_size()) return true;
    const auto mask = static_cast<std::byte>((0xFF00u >> rest) & 0xFFu);
    return (a.ip[whole] & mask) == (b.ip[whole] & mask);
}

/// The workers' read-only view of one port's neighbour cache. Published inside PortContext;
/// a default-constructed one watches nothing and resolves nothing.
struct NeighbourSnapshot {
    struct Entry {
        stun::Address ip;  ///< port 0
        MacAddress mac{};
        /// REACHABLE or STALE: `mac` is the neighbour's. INCOMPLETE and FAILED entries are
        /// listed too (unusable), so that the replies that resolve them reach the control thread.
        bool usable = false;
    };
    /// One family's on-link rule: the port's primary address, its prefix, and its gateway.
    struct Subnet {
        std::optional<stun::Address> local;
        std::uint8_t prefix = 0;
        std::optional<stun::Address> gateway;
    };

    std::vector<Entry> entries;  ///< sorted by family, then address bytes: binary search
    Subnet ipv4;
    Subnet ipv6;

    /// What prepare() makes of the fields above: the IPv4 rule as integers and the gateway's
    /// MAC, so that next_hop_mac_ipv4() of an off-link address (every peer, for a relay
    /// behind a router) is a mask and a compare. Unprepared, or stale, it is not used.
    struct PreparedIpv4 {
        bool prepared = false;
        std::uint32_t local = 0;  ///< host order
        std::uint32_t mask = 0;
        bool gateway_usable = false;  ///< the gateway exists and its entry is usable
        MacAddress gateway_mac{};
    };
    PreparedIpv4 prepared_ipv4;

    /// Makes prepared_ipv4. Call it after setting or changing the fields above (snapshot()
    /// and PortContext::prepare() do): a stale preparation answers with the old gateway.
    void prepare() noexcept {
        prepared_ipv4 = {};
        if (!ipv4.local || ipv4.local->family != stun::AddressFamily::ipv4) return;
        prepared_ipv4.local = load_ipv4(ipv4.local->ip.data());
        prepared_ipv4.mask = mask_of(ipv4.prefix);
        if (ipv4.gateway && ipv4.gateway->family == stun::AddressFamily::ipv4) {
            if (const MacAddress* mac = find_ipv4(load_ipv4(ipv4.gateway->ip.data()))) {
                prepared_ipv4.gateway_usable = true;
                prepared_ipv4.gateway_mac = *mac;
            }
        }
        prepared_ipv4.prepared = true;
    }

    /// The entry for `ip` (4 or 16 bytes), or null. O(log n), no allocation.
    [[nodiscard]] const Entry* find(std::span<const std::byte> ip) const noexcept {
        const bool v6 = ip.size() == 16;
        if (!v6 && ip.size() != 4) return nullptr;
        const auto before = [v6, ip](const Entry& entry) {
            const bool entry_v6 = entry.ip.family == stun::AddressFamily::ipv6;
            if (entry_v6 != v6) return !entry_v6;  // IPv4 entries sort first
            return std::memcmp(entry.ip.ip.data(), ip.data(), ip.size()) < 0;
        };
        const auto it = std::partition_point(entries.begin(), entries.end(), before);
        if (it == entries.end() || (it->ip.family == stun::AddressFamily::ipv6) != v6 ||
            std::memcmp(it->ip.ip.data(), ip.data(), ip.size()) != 0)
            return nullptr;
        return &*it;
    }

    /// Whether the control thread wants replies about `ip`: it is in the table, resolved or not.
    [[nodiscard]] bool watches(std::span<const std::byte> ip) const noexcept {
        return find(ip) != nullptr;
    }

    /// The MAC to send a packet for `destination` to: the gateway's when `destination` is off
    /// the port's subnet, else the destination's own. Null when that neighbour is not resolved
    /// (or not in the table), when the port has no address of the family, or when an off-link
    /// destination has no gateway: the caller drops or queues, it must not guess.
    [[nodiscard]] const MacAddress* next_hop_mac(const stun::Address& destination) const noexcept {
        if (destination.family == stun::AddressFamily::ipv4)
            return next_hop_mac_ipv4(destination.ip.data());
        const Subnet& subnet = ipv6;
        if (!subnet.local || subnet.local->family != destination.family) return nullptr;
        const stun::Address* hop = &destination;
        if (!shares_prefix(destination, *subnet.local, subnet.prefix)) {
            if (!subnet.gateway) return nullptr;
            hop = &*subnet.gateway;
        }
        const Entry* entry = find(hop->ip_bytes());
        return entry != nullptr && entry->usable ? &entry->mac : nullptr;
    }

    /// next_hop_mac() for the IPv4 address at `destination` (4 bytes, network order), in
    /// 32-bit compares: the relay's data path asks per packet.
    [[nodiscard]] const MacAddress* next_hop_mac_ipv4(const std::byte* destination) const noexcept {
        const std::uint32_t destination_ip = load_ipv4(destination);
        if (prepared_ipv4.prepared) {
            if (((destination_ip ^ prepared_ipv4.local) & prepared_ipv4.mask) == 0)
                return find_ipv4(destination_ip);
            return prepared_ipv4.gateway_usable ? &prepared_ipv4.gateway_mac : nullptr;
        }
        if (!ipv4.local || ipv4.local->family != stun::AddressFamily::ipv4) return nullptr;
        if (((destination_ip ^ load_ipv4(ipv4.local->ip.data())) & mask_of(ipv4.prefix)) == 0)
            return find_ipv4(destination_ip);
        return ipv4.gateway ? find_ipv4(load_ipv4(ipv4.gateway->ip.data())) : nullptr;
    }

private:
    // An IPv4 address in host order, so that integer order is memcmp's.
    static std::uint32_t load_ipv4(const std::byte* p) noexcept {
        std::uint32_t a;
        std::memcpy(&a, p, 4);
        return __builtin_bswap32(a);
    }
    static std::uint32_t mask_of(unsigned prefix) noexcept {
        return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - std::min(prefix, 32u));
    }
    // The usable entry's MAC for `ip` (host order), or null: a binary search of the IPv4
    // entries, which sort first, by address.
    [[nodiscard]] const MacAddress* find_ipv4(std::uint32_t ip) const noexcept {
        std::size_t low = 0;
        std::size_t high = entries.size();
        while (low < high) {
            const std::size_t middle = low + (high - low) / 2;
            const Entry& entry = entries[middle];
            if (entry.ip.family == stun::AddressFamily::ipv4 && load_ipv4(entry.ip.ip.data()) < ip)
                low = middle + 1;
            else
                high = middle;
        }
        if (low == entries.size()) return nullptr;
        const Entry& entry = entries[low];
        return entry.ip.family == stun::AddressFamily::ipv4 &&
                       load_ipv4(entry.ip.ip.data()) == ip && entry.usable
                   ? &entry.mac
                   : nullptr;
    }
};

enum class NeighbourState : std::uint8_t { incomplete, reachable, stale, failed };

/// "INCOMPLETE", "REACHABLE", "STALE", "FAILED": as `ip neigh` prints them.
[[nodiscard]] std::string_view to_string(NeighbourState state) noexcept;

/// What an ARP reply or announcement, or a neighbour advertisement, says.
struct NeighbourReply {
    stun::Address ip;  ///< ARP: the sender protocol address; NA: the target address. Port 0.
    MacAddress mac{};  ///< ARP: the sender hardware address; NA: the target link-layer option
    /// False for an NA without a Target Link-Layer Address option, which RFC 4861 §7.2.4 lets
    /// a node leave out when answering a unicast solicitation (Linux does): it can confirm a
    /// MAC the cache has (§7.2.5), never supply one.
    bool has_mac = true;
    /// A reply to a question: an ARP reply that is not gratuitous, or an NA with the S flag.
    /// Confirms reachability (RFC 4861 §7.2.5); an unsolicited one only updates the MAC.
    bool solicited = false;
    /// RFC 4861 §4.4's O flag; always set for ARP (RFC 826 overwrites).
    bool override_mac = true;
};

enum class NeighbourFrame : std::uint8_t {
    reply,              ///< `out` holds what the frame says
    not_neighbour,      ///< neither ARP nor an ICMPv6 neighbour advertisement
    truncated,          ///< shorter than the headers it claims
    invalid,            ///< ARP not Ethernet/IPv4, a sender MAC that is multicast or zero;
                        ///< an NA that fails RFC 4861 §7.1.2 (hop limit, code, length,
                        ///< checksum, options, target, S flag) or whose Target Link-Layer
                        ///< Address is multicast or zero
};

/// Parses a received Ethernet frame: an ARP reply (RFC 826), an ARP announcement (a request or
/// reply whose sender and target protocol addresses are equal, RFC 5227 §2.3), or an ICMPv6
/// neighbour advertisement (RFC 4861 §4.4), validated per RFC 4861 §7.1.2, with or without its
/// Target Link-Layer Address option (NeighbourReply::has_mac). Every length is checked before
/// it is read. `out` is written only on NeighbourFrame::reply.
[[nodiscard]] NeighbourFrame parse_neighbour_frame(std::span<const std::byte> frame,
                                                   NeighbourReply& out) noexcept;

/// Frame sizes the builders write: an ARP request padded to Ethernet's 60-byte minimum, and a
/// solicitation with its Source Link-Layer Address option (14 + 40 + 32).
inline constexpr std::size_t arp_request_size = 60;
inline constexpr std::size_t neighbour_solicitation_size = 86;

/// RFC 826: an ARP request for `target` from `source_mac`/`sender`, to the broadcast address,
/// or to `destination` (a unicast probe of a known neighbour). The target hardware address is
/// zero. Returns the bytes written, arp_request_size, or 0 when `out` is too small.
std::size_t build_arp_request(std::span<std::byte> out, const MacAddress& source_mac,
                              std::span<const std::byte, 4> sender,
                              std::span<const std::byte, 4> target,
                              const MacAddress* destination) noexcept;

/// RFC 4861 §7.2.2 and §4.3: a neighbour solicitation for `target` from `source` (one of the
/// port's addresses), hop limit 255, with a Source Link-Layer Address option; to `target`'s
/// solicited-node group ff02::1:ffXX:XXXX (RFC 4291 §2.7.1) at 33:33:ff:XX:XX:XX (RFC 2464 §7),
/// or, for a unicast probe of a known neighbour, to `target` at `destination`. Returns the
/// bytes written, neighbour_solicitation_size, or 0 when `out` is too small.
std::size_t build_neighbour_solicitation(std::span<std::byte> out, const MacAddress& source_mac,
                                         std::span<const std::byte, 16> source,
                                         std::span<const std::byte, 16> target,
                                         const MacAddress* destination) noexcept;

/// One probe the control thread is to send.
struct NeighbourProbe {
    stun::Address ip;
    /// Set for a unicast probe of a STALE entry; empty: broadcast (ARP) or solicited-node
    /// multicast (NDP).
    std::optional<MacAddress> unicast;
};

/// A change worth a line in the log: a gateway (or other entry) resolved, its MAC changed, or
/// it failed.
struct NeighbourEvent {
    enum class Kind : std::uint8_t { resolved, failed };
    Kind kind = Kind::resolved;
    stun::Address ip;
    MacAddress mac{};  ///< resolved: the new MAC
    bool gateway = false;
};

struct NeighbourEntry {
    stun::Address ip;
    MacAddress mac{};  ///< meaningful in REACHABLE and STALE
    NeighbourState state = NeighbourState::incomplete;
    bool gateway = false;
    unsigned probes = 0;    ///< probes sent in the current round (INCOMPLETE, STALE)
    unsigned failures = 0;  ///< rounds in a row that ended FAILED
    /// INCOMPLETE, STALE: when the next probe is due (or, after the last, when the entry
    /// fails); REACHABLE: when it goes STALE; FAILED: when it is retried or removed.
    std::uint64_t deadline_ms = 0;

    [[nodiscard]] bool usable() const noexcept {
        return state == NeighbourState::reachable || state == NeighbourState::stale;
    }
};

enum class ResolveResult : std::uint8_t {
    added,              ///< a new INCOMPLETE entry, probed at the next tick()
    present,            ///< already in the table, whatever its state
    table_full,         ///< capacity reached (counted in refused())
    no_source_address,  ///< the port has no address of the family to probe from
};

/// One port's neighbour cache. Not thread-safe: the control thread's alone.
class NeighbourTable {
public:
    /// The port's MAC and primary addresses are the probes' source; its gateway4/gateway6 get
    /// their (never removed) entries now, probed at the first tick().
    NeighbourTable(const NeighbourConfig& config, const PortConfig& port, const MacAddress& mac,
                   std::uint64_t now_ms);

    /// Adds `ip` (port ignored) as INCOMPLETE unless present. See ResolveResult.
    ResolveResult resolve(const stun::Address& ip, std::uint64_t now_ms);
    /// Removes a non-gateway entry; false when absent or a gateway.
    bool forget(const stun::Address& ip);

    /// Advances every timer to `now_ms`; returns the probes to send now.
    std::vector<NeighbourProbe> tick(std::uint64_t now_ms);
    /// Applies a reply (RFC 826 merge; RFC 4861 §7.2.5 for the S and O flags). False when its
    /// address is not in the table: ignored (counted in ignored_replies()), no entry is made.
    bool on_reply(const NeighbourReply& reply, std::uint64_t now_ms);

    /// Builds `probe` into `out` (an ARP request or a neighbour solicitation from the port's
    /// MAC and primary address). Returns the bytes written, 0 when `out` is too small or the
    /// port has no address of the family.
    std::size_t build_probe(const NeighbourProbe& probe, std::span<std::byte> out) const noexcept;

    /// The events since the last call, oldest first.
    std::vector<NeighbourEvent> take_events();
    /// Whether what a snapshot holds (entries, MACs, usability) changed since the last call.
    bool take_changed() noexcept;
    [[nodiscard]] NeighbourSnapshot snapshot() const;

    [[nodiscard]] const std::vector<NeighbourEntry>& entries() const noexcept { return entries_; }
    [[nodiscard]] const NeighbourEntry* find(const stun::Address& ip) const noexcept;
    [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }
    [[nodiscard]] std::uint64_t ignored_replies() const noexcept { return ignored_replies_; }

private:
    NeighbourEntry* find_mutable(const stun::Address& ip) noexcept;
    void add(const stun::Address& ip, bool gateway, std::uint64_t now_ms);
    void enter_reachable(NeighbourEntry& entry, std::uint64_t now_ms) noexcept;
    void enter_stale(NeighbourEntry& entry, std::uint64_t now_ms) noexcept;
    void enter_failed(NeighbourEntry& entry, std::uint64_t now_ms);

    NeighbourConfig config_;
    MacAddress mac_;
    NeighbourSnapshot::Subnet ipv4_;
    NeighbourSnapshot::Subnet ipv6_;
    std::vector<NeighbourEntry> entries_;  // insertion order: gateways first
    std::vector<NeighbourEvent> events_;
    bool changed_ = true;  // the first snapshot is always published
    std::uint64_t refused_ = 0;
    std::uint64_t ignored_replies_ = 0;
};

}  // namespace engine
