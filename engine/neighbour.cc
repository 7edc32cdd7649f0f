// The neighbour cache's state machine and its frames (engine/include/engine/neighbour.h): ARP
// (RFC 826, RFC 5227 §2.3 announcements) and IPv6 neighbour discovery (RFC 4861 §4.3, §4.4,
// §7.1.2, §7.2.2, §7.2.5, §7.3.2). Control-thread code, except the pure frame functions, which
// the workers' handlers also call (parse_neighbour_frame) and which neither allocate nor throw.
#include "engine/neighbour.h"

#include <algorithm>
#include <cstring>

#include "engine/checksum.h"
#include "engine/frame.h"
#include "stun/bytes.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

constexpr unsigned max_backoff_shift = 5;  // failed_retry_ms × 32 at most

bool is_multicast_mac(const std::byte* mac) noexcept {
    return (std::to_integer<unsigned>(mac[0]) & 1) != 0;
}

bool is_zero(const std::byte* bytes, std::size_t size) noexcept {
    return std::all_of(bytes, bytes + size, [](std::byte b) { return b == std::byte{0}; });
}

// The address of a neighbour as the table keys it: the port field is not part of it.
stun::Address key_of(const stun::Address& ip) noexcept {
    stun::Address key = ip;
    key.port = 0;
    return key;
}

bool key_less(const NeighbourSnapshot::Entry& a, const NeighbourSnapshot::Entry& b) noexcept {
    const bool a_v6 = a.ip.family == stun::AddressFamily::ipv6;
    const bool b_v6 = b.ip.family == stun::AddressFamily::ipv6;
    if (a_v6 != b_v6) return !a_v6;
    return std::memcmp(a.ip.ip.data(), b.ip.ip.data(), a.ip.ip_size()) < 0;
}

NeighbourFrame parse_arp(std::span<const std::byte> frame, NeighbourReply& out) noexcept {
    // RFC 826 over Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4, oper, SHA, SPA, THA,
    // TPA: 28 bytes.
    constexpr std::size_t arp = ethernet_header_size;
    if (frame.size() < arp + 28) return NeighbourFrame::truncated;
    const std::byte* p = frame.data() + arp;
    if (load_be16(p) != 1 || load_be16(p + 2) != ethertype::ipv4 ||
        std::to_integer<unsigned>(p[4]) != 6 || std::to_integer<unsigned>(p[5]) != 4)
        return NeighbourFrame::invalid;
    const std::uint16_t operation = load_be16(p + 6);
    const std::byte* sender_mac = p + 8;
    const std::byte* sender_ip = p + 14;
    const std::byte* target_ip = p + 24;
    // RFC 5227 §2.3: an announcement is a request (or reply) whose sender and target protocol
    // addresses are both the sender's.
    const bool announcement = std::memcmp(sender_ip, target_ip, 4) == 0;
    if (operation != 2 && !(operation == 1 && announcement)) return NeighbourFrame::not_neighbour;
    // A probe (RFC 5227 §2.1.1: sender 0.0.0.0) says nothing about anyone's address; a
    // multicast or zero hardware address is nobody's.
    if (is_zero(sender_ip, 4) || is_multicast_mac(sender_mac) || is_zero(sender_mac, 6))
        return NeighbourFrame::invalid;
    out.ip = stun::Address::v4(stun::load_be32(sender_ip), 0);
    std::memcpy(out.mac.data(), sender_mac, 6);
    out.has_mac = true;
    out.solicited = operation == 2 && !announcement;
    out.override_mac = true;  // RFC 826: "update the sender hardware address field"
    return NeighbourFrame::reply;
}

NeighbourFrame parse_advertisement(std::span<const std::byte> frame,
                                   NeighbourReply& out) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    constexpr std::size_t l4 = ip + ipv6_header_size;
    if (frame.size() < l4) return NeighbourFrame::truncated;
    const std::byte* h = frame.data() + ip;
    if ((std::to_integer<unsigned>(h[0]) >> 4) != 6) return NeighbourFrame::invalid;
    if (std::to_integer<std::uint8_t>(h[6]) != ip_protocol::icmpv6)
        return NeighbourFrame::not_neighbour;
    const std::size_t length = load_be16(h + 4);
    if (l4 + length > frame.size()) return NeighbourFrame::truncated;
    if (length < 1) return NeighbourFrame::truncated;
    const std::byte* a = frame.data() + l4;
    if (std::to_integer<unsigned>(a[0]) != 136) return NeighbourFrame::not_neighbour;
    // RFC 4861 §7.1.2: "The IP Hop Limit field has a value of 255, i.e., the packet could not
    // possibly have been forwarded by a router"; "ICMP Checksum is valid"; "ICMP Code is 0";
    // "ICMP length (derived from the IP length) is 24 or more octets"; "Target Address is not
    // a multicast address"; "If the IP Destination Address is a multicast address the
    // Solicited flag is zero"; "All included options have a length that is greater than zero".
    if (std::to_integer<unsigned>(h[7]) != 255 || length < 24) return NeighbourFrame::invalid;
    if (transport_checksum({h + 8, 32}, ip_protocol::icmpv6, {a, length}) != 0)
        return NeighbourFrame::invalid;
    if (std::to_integer<unsigned>(a[1]) != 0) return NeighbourFrame::invalid;
    const std::byte* target = a + 8;
    if (target[0] == std::byte{0xFF}) return NeighbourFrame::invalid;
    const auto flags = std::to_integer<unsigned>(a[4]);
    const bool solicited = (flags & 0x40) != 0;
    if (h[24] == std::byte{0xFF} && solicited) return NeighbourFrame::invalid;
    const std::byte* link_layer_address = nullptr;
    for (std::size_t option = 24; option < length;) {
        if (length - option < 2) return NeighbourFrame::invalid;
        const std::size_t option_length = std::to_integer<std::size_t>(a[option + 1]) * 8;
        if (option_length == 0 || option_length > length - option)
            return NeighbourFrame::invalid;
        // RFC 4861 §4.6.1: type 2, Target Link-Layer Address; over Ethernet 8 bytes, the MAC
        // after type and length (RFC 2464 §6). The first one counts.
        if (a[option] == std::byte{2} && option_length == 8 && link_layer_address == nullptr)
            link_layer_address = a + option + 2;
        option += option_length;
    }
    if (link_layer_address != nullptr &&
        (is_multicast_mac(link_layer_address) || is_zero(link_layer_address, 6)))
        return NeighbourFrame::invalid;
    out.ip = stun::Address::v6(std::span<const std::byte, 16>(target, 16), 0);
    out.has_mac = link_layer_address != nullptr;
    out.mac = {};
    if (out.has_mac) std::memcpy(out.mac.data(), link_layer_address, 6);
    out.solicited = solicited;
    out.override_mac = (flags & 0x20) != 0;
    return NeighbourFrame::reply;
}

}  // namespace

std::string_view to_string(NeighbourState state) noexcept {
    switch (state) {
        case NeighbourState::incomplete: return "INCOMPLETE";
        case NeighbourState::reachable: return "REACHABLE";
        case NeighbourState::stale: return "STALE";
        case NeighbourState::failed: return "FAILED";
    }
    return "?";
}

NeighbourFrame parse_neighbour_frame(std::span<const std::byte> frame,
                                     NeighbourReply& out) noexcept {
    if (frame.size() < ethernet_header_size) return NeighbourFrame::truncated;
    switch (load_be16(frame.data() + 12)) {
        case ethertype::arp: return parse_arp(frame, out);
        case ethertype::ipv6: return parse_advertisement(frame, out);
        default: return NeighbourFrame::not_neighbour;
    }
}

std::size_t build_arp_request(std::span<std::byte> out, const MacAddress& source_mac,
                              std::span<const std::byte, 4> sender,
                              std::span<const std::byte, 4> target,
                              const MacAddress* destination) noexcept {
    if (out.size() < arp_request_size) return 0;
    std::byte* f = out.data();
    std::memset(f, 0, arp_request_size);  // THA and the padding to 60 bytes are zero
    if (destination != nullptr)
        std::memcpy(f, destination->data(), 6);
    else
        std::memset(f, 0xFF, 6);
    std::memcpy(f + 6, source_mac.data(), 6);
    store_be16(f + 12, ethertype::arp);
    std::byte* p = f + ethernet_header_size;
    store_be16(p, 1);                 // hardware type: Ethernet
    store_be16(p + 2, ethertype::ipv4);
    p[4] = std::byte{6};
    p[5] = std::byte{4};
    store_be16(p + 6, 1);             // request
    std::memcpy(p + 8, source_mac.data(), 6);
    std::memcpy(p + 14, sender.data(), 4);
    std::memcpy(p + 24, target.data(), 4);
    return arp_request_size;
}

std::size_t build_neighbour_solicitation(std::span<std::byte> out, const MacAddress& source_mac,
                                         std::span<const std::byte, 16> source,
                                         std::span<const std::byte, 16> target,
                                         const MacAddress* destination) noexcept {
    if (out.size() < neighbour_solicitation_size) return 0;
    constexpr std::size_t icmp_length = 32;  // header 8, target 16, SLLA option 8
    std::byte* f = out.data();
    std::memset(f, 0, neighbour_solicitation_size);
    std::byte* h = f + ethernet_header_size;
    std::byte* a = h + ipv6_header_size;
    if (destination != nullptr) {
        std::memcpy(f, destination->data(), 6);
        std::memcpy(h + 24, target.data(), 16);
    } else {
        // RFC 4291 §2.7.1: ff02::1:ff00:0/104 and the target's low 24 bits; RFC 2464 §7:
        // 33:33 and the group's low 32 bits.
        static constexpr std::byte group_prefix[13] = {
            std::byte{0xFF}, std::byte{0x02}, std::byte{0}, std::byte{0}, std::byte{0},
            std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0},
            std::byte{0},    std::byte{0x01}, std::byte{0xFF}};
        std::memcpy(h + 24, group_prefix, 13);
        std::memcpy(h + 37, target.data() + 13, 3);
        f[0] = std::byte{0x33};
        f[1] = std::byte{0x33};
        std::memcpy(f + 2, h + 36, 4);
    }
    std::memcpy(f + 6, source_mac.data(), 6);
    store_be16(f + 12, ethertype::ipv6);
    h[0] = std::byte{0x60};  // version 6, traffic class 0, flow label 0
    store_be16(h + 4, icmp_length);
    h[6] = std::byte{ip_protocol::icmpv6};
    h[7] = std::byte{255};  // RFC 4861 §7.1.1: receivers discard any other hop limit
    std::memcpy(h + 8, source.data(), 16);
    a[0] = std::byte{135};
    std::memcpy(a + 8, target.data(), 16);
    a[24] = std::byte{1};  // option: Source Link-Layer Address (RFC 4861 §4.6.1)
    a[25] = std::byte{1};  // length in units of 8 bytes
    std::memcpy(a + 26, source_mac.data(), 6);
    store_be16(a + 2, transport_checksum({h + 8, 32}, ip_protocol::icmpv6, {a, icmp_length}));
    return neighbour_solicitation_size;
}

NeighbourTable::NeighbourTable(const NeighbourConfig& config, const PortConfig& port,
                               const MacAddress& mac, std::uint64_t now_ms)
    : config_(config), mac_(mac) {
    auto subnet = [](const std::vector<stun::Address>& owned, std::uint8_t prefix,
                     const std::optional<stun::Address>& gateway) {
        NeighbourSnapshot::Subnet out;
        if (!owned.empty()) out.local = key_of(owned.front());
        out.prefix = prefix;
        if (gateway) out.gateway = key_of(*gateway);
        return out;
    };
    ipv4_ = subnet(port.ipv4, port.prefix4, port.gateway4);
    ipv6_ = subnet(port.ipv6, port.prefix6, port.gateway6);
    // Gateways are not subject to the capacity (config.cc keeps it at 2 or more anyway).
    if (ipv4_.gateway && ipv4_.local) add(*ipv4_.gateway, true, now_ms);
    if (ipv6_.gateway && ipv6_.local) add(*ipv6_.gateway, true, now_ms);
}

NeighbourEntry* NeighbourTable::find_mutable(const stun::Address& ip) noexcept {
    const stun::Address key = key_of(ip);
    for (NeighbourEntry& entry : entries_)
        if (entry.ip == key) return &entry;
    return nullptr;
}

const NeighbourEntry* NeighbourTable::find(const stun::Address& ip) const noexcept {
    return const_cast<NeighbourTable*>(this)->find_mutable(ip);
}

void NeighbourTable::add(const stun::Address& ip, bool gateway, std::uint64_t now_ms) {
    NeighbourEntry entry;
    entry.ip = key_of(ip);
    entry.gateway = gateway;
    entry.deadline_ms = now_ms;  // the first probe goes at the next tick
    entries_.push_back(entry);
    changed_ = true;  // the workers must start handing over its replies
}

ResolveResult NeighbourTable::resolve(const stun::Address& ip, std::uint64_t now_ms) {
    if (find_mutable(ip) != nullptr) return ResolveResult::present;
    const NeighbourSnapshot::Subnet& subnet =
        ip.family == stun::AddressFamily::ipv4 ? ipv4_ : ipv6_;
    if (!subnet.local) return ResolveResult::no_source_address;
    if (entries_.size() >= config_.capacity) {
        ++refused_;
        return ResolveResult::table_full;
    }
    add(ip, false, now_ms);
    return ResolveResult::added;
}

bool NeighbourTable::forget(const stun::Address& ip) {
    NeighbourEntry* entry = find_mutable(ip);
    if (entry == nullptr || entry->gateway) return false;
    entries_.erase(entries_.begin() + (entry - entries_.data()));
    changed_ = true;
    return true;
}

void NeighbourTable::enter_reachable(NeighbourEntry& entry, std::uint64_t now_ms) noexcept {
    entry.state = NeighbourState::reachable;
    entry.probes = 0;
    entry.failures = 0;
    entry.deadline_ms = now_ms + config_.reachable_ms;
}

void NeighbourTable::enter_stale(NeighbourEntry& entry, std::uint64_t now_ms) noexcept {
    entry.state = NeighbourState::stale;
    entry.probes = 0;
    entry.deadline_ms = now_ms;  // confirm at once, by unicast
}

void NeighbourTable::enter_failed(NeighbourEntry& entry, std::uint64_t now_ms) {
    if (entry.usable()) changed_ = true;  // the workers must stop using its MAC
    entry.state = NeighbourState::failed;
    entry.probes = 0;
    ++entry.failures;
    const unsigned shift = std::min(entry.failures - 1, max_backoff_shift);
    entry.deadline_ms = now_ms + (std::uint64_t{config_.failed_retry_ms} << shift);
    // One line per loss, not one per unanswered retry round.
    if (entry.failures == 1)
        events_.push_back({NeighbourEvent::Kind::failed, entry.ip, {}, entry.gateway});
}

std::vector<NeighbourProbe> NeighbourTable::tick(std::uint64_t now_ms) {
    std::vector<NeighbourProbe> probes;
    for (std::size_t i = 0; i < entries_.size();) {
        NeighbourEntry& entry = entries_[i];
        if (entry.state == NeighbourState::reachable && now_ms >= entry.deadline_ms)
            enter_stale(entry, now_ms);
        if (entry.state == NeighbourState::failed && now_ms >= entry.deadline_ms) {
            if (!entry.gateway) {
                entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
                changed_ = true;
                continue;
            }
            entry.state = NeighbourState::incomplete;
            entry.probes = 0;
        }
        const bool probing =
            entry.state == NeighbourState::incomplete || entry.state == NeighbourState::stale;
        if (probing && now_ms >= entry.deadline_ms) {
            if (entry.probes < config_.max_probes) {
                NeighbourProbe probe{entry.ip, std::nullopt};
                if (entry.state == NeighbourState::stale) probe.unicast = entry.mac;
                probes.push_back(probe);
                ++entry.probes;
                entry.deadline_ms = now_ms + config_.retransmit_ms;
            } else {
                // RFC 4861 §7.3.3: "If no response is received after waiting RetransTimer
                // milliseconds after sending the MAX_UNICAST_SOLICIT solicitations,
                // retransmissions cease and the entry SHOULD be deleted" (here: FAILED).
                enter_failed(entry, now_ms);
            }
        }
        ++i;
    }
    return probes;
}

bool NeighbourTable::on_reply(const NeighbourReply& reply, std::uint64_t now_ms) {
    NeighbourEntry* entry = find_mutable(reply.ip);
    if (entry == nullptr) {
        // RFC 826's merge: only an existing entry is updated, so that unsolicited replies
        // cannot fill the table or plant an address nobody asked for.
        ++ignored_replies_;
        return false;
    }
    const bool was_usable = entry->usable();
    const MacAddress old_mac = entry->mac;
    if (!reply.has_mac) {
        // RFC 4861 §7.2.5: without a Target Link-Layer Address an INCOMPLETE entry learns
        // nothing ("SHOULD silently discard"); an entry with a MAC is confirmed if solicited.
        if (was_usable && reply.solicited) enter_reachable(*entry, now_ms);
        return true;
    }
    if (!was_usable) {
        // RFC 4861 §7.2.5: an INCOMPLETE entry takes the address; REACHABLE if solicited,
        // else STALE. (FAILED is INCOMPLETE between rounds.)
        entry->mac = reply.mac;
        if (reply.solicited)
            enter_reachable(*entry, now_ms);
        else
            enter_stale(*entry, now_ms);
    } else if (!reply.override_mac && reply.mac != entry->mac) {
        // RFC 4861 §7.2.5: "If the Override flag is clear and the supplied link-layer address
        // differs from that in the cache, then ... a. If the state of the entry is REACHABLE,
        // set it to STALE, but do not update the entry in any other way. b. Otherwise, the
        // received advertisement should be ignored".
        if (entry->state == NeighbourState::reachable) enter_stale(*entry, now_ms);
        return true;
    } else {
        entry->mac = reply.mac;
        if (reply.solicited)
            enter_reachable(*entry, now_ms);
        else if (old_mac != reply.mac)
            enter_stale(*entry, now_ms);
    }
    if (!was_usable || old_mac != entry->mac) {
        changed_ = true;
        events_.push_back(
            {NeighbourEvent::Kind::resolved, entry->ip, entry->mac, entry->gateway});
    }
    return true;
}

std::size_t NeighbourTable::build_probe(const NeighbourProbe& probe,
                                        std::span<std::byte> out) const noexcept {
    const MacAddress* destination = probe.unicast ? &*probe.unicast : nullptr;
    if (probe.ip.family == stun::AddressFamily::ipv4) {
        if (!ipv4_.local) return 0;
        return build_arp_request(out, mac_,
                                 std::span<const std::byte, 4>(ipv4_.local->ip.data(), 4),
                                 std::span<const std::byte, 4>(probe.ip.ip.data(), 4),
                                 destination);
    }
    if (!ipv6_.local) return 0;
    return build_neighbour_solicitation(out, mac_, std::span<const std::byte, 16>(ipv6_.local->ip),
                                        std::span<const std::byte, 16>(probe.ip.ip), destination);
}

std::vector<NeighbourEvent> NeighbourTable::take_events() {
    std::vector<NeighbourEvent> out;
    out.swap(events_);
    return out;
}

bool NeighbourTable::take_changed() noexcept {
    const bool changed = changed_;
    changed_ = false;
    return changed;
}

NeighbourSnapshot NeighbourTable::snapshot() const {
    NeighbourSnapshot out;
    out.ipv4 = ipv4_;
    out.ipv6 = ipv6_;
    out.entries.reserve(entries_.size());
    for (const NeighbourEntry& entry : entries_)
        out.entries.push_back({entry.ip, entry.mac, entry.usable()});
    std::sort(out.entries.begin(), out.entries.end(), key_less);
    out.prepare();
    return out;
}

}  // namespace engine
