// The TURN peer address policy (engine/include/engine/peer_policy.h): the default ranges, the
// order of the rules, and the CIDR parser the config validation uses.
#include "engine/peer_policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>

#include "stun/bytes.h"

namespace engine {
namespace {

using stun::AddressFamily;
using Rule = PeerPolicy::Rule;

constexpr unsigned max_prefix_length(AddressFamily family) noexcept {
    return family == AddressFamily::ipv4 ? 32 : 128;
}

// The top `bits` of 64 set (0..64).
constexpr std::uint64_t top_bits(unsigned bits) noexcept {
    return bits == 0 ? 0 : ~std::uint64_t{0} << (64 - bits);
}

// `prefix_length` counts from the first byte of the address in both families, so an IPv4
// prefix masks the top of the first word only.
constexpr Rule make_rule(AddressFamily family, std::uint64_t high, std::uint64_t low,
                         unsigned prefix_length, PeerVerdict verdict) noexcept {
    Rule rule;
    rule.mask[0] = top_bits(prefix_length > 64 ? 64 : prefix_length);
    rule.mask[1] = top_bits(prefix_length > 64 ? prefix_length - 64 : 0);
    rule.network[0] = high & rule.mask[0];
    rule.network[1] = low & rule.mask[1];
    rule.family = family;
    rule.verdict = verdict;
    return rule;
}

constexpr Rule v4(std::uint32_t network, unsigned prefix_length, PeerVerdict verdict) noexcept {
    return make_rule(AddressFamily::ipv4, std::uint64_t{network} << 32, 0, prefix_length,
                     verdict);
}

constexpr Rule v6(std::uint64_t high, std::uint64_t low, unsigned prefix_length,
                  PeerVerdict verdict) noexcept {
    return make_rule(AddressFamily::ipv6, high, low, prefix_length, verdict);
}

Rule make_rule(const stun::Address& address, unsigned prefix_length,
               PeerVerdict verdict) noexcept {
    return make_rule(address.family, stun::load_be64(address.ip.data()),
                     stun::load_be64(address.ip.data() + 8), prefix_length, verdict);
}

Rule make_rule(const Cidr& cidr, PeerVerdict verdict) noexcept {
    return make_rule(cidr.family, stun::load_be64(cidr.network.data()),
                     stun::load_be64(cidr.network.data() + 8), cidr.prefix_length, verdict);
}

// The header's list; the ranges of one family do not overlap, except ::/128 and ::1/128
// inside ::/96, which come first.
constexpr Rule default_rules[] = {
    v4(0x00000000, 8, PeerVerdict::unspecified),
    v4(0x0A000000, 8, PeerVerdict::private_network),
    v4(0x64400000, 10, PeerVerdict::shared_address_space),
    v4(0x7F000000, 8, PeerVerdict::loopback),
    v4(0xA9FE0000, 16, PeerVerdict::link_local),
    v4(0xAC100000, 12, PeerVerdict::private_network),
    v4(0xC0000000, 24, PeerVerdict::protocol_assignments),
    v4(0xC0A80000, 16, PeerVerdict::private_network),
    v4(0xC6120000, 15, PeerVerdict::benchmarking),
    v4(0xE0000000, 4, PeerVerdict::multicast),
    v4(0xF0000000, 4, PeerVerdict::reserved),
    v6(0, 0, 128, PeerVerdict::unspecified),
    v6(0, 1, 128, PeerVerdict::loopback),
    v6(0, 0, 96, PeerVerdict::reserved),
    v6(0xFE80000000000000, 0, 10, PeerVerdict::link_local),
    v6(0xFC00000000000000, 0, 7, PeerVerdict::private_network),
    v6(0xFF00000000000000, 0, 8, PeerVerdict::multicast),
    v6(0x2001000000000000, 0, 32, PeerVerdict::teredo),
};

// The IPv4 address an IPv6 address embeds, where the packet really goes: IPv4-mapped
// (RFC 4291 §2.5.5.2) and NAT64's well-known prefix (RFC 6052 §2.1) carry it in the last 32
// bits, 6to4 (RFC 3056 §2) in bits 16 to 47. False for any other address.
bool embedded_ipv4(const stun::Address& address, stun::Address& out) noexcept {
    if (address.family != AddressFamily::ipv6) return false;
    const std::uint64_t high = stun::load_be64(address.ip.data());
    const std::uint32_t upper_low = stun::load_be32(address.ip.data() + 8);
    std::uint32_t ipv4 = 0;
    if (high == 0 && upper_low == 0x0000FFFF) {
        ipv4 = stun::load_be32(address.ip.data() + 12);
    } else if (high == 0x0064FF9B00000000 && upper_low == 0) {
        ipv4 = stun::load_be32(address.ip.data() + 12);
    } else if ((high >> 48) == 0x2002) {
        ipv4 = static_cast<std::uint32_t>(high >> 16);
    } else {
        return false;
    }
    out = stun::Address::v4(ipv4, 0);
    return true;
}

bool matches(const Rule& rule, const stun::Address& address) noexcept {
    return rule.family == address.family &&
           (stun::load_be64(address.ip.data()) & rule.mask[0]) == rule.network[0] &&
           (stun::load_be64(address.ip.data() + 8) & rule.mask[1]) == rule.network[1];
}

// Whether any of `rules` holds `address`, or the IPv4 address it embeds (`embedded`, when
// `embeds`).
bool any_holds(std::span<const Rule> rules, const stun::Address& address, bool embeds,
               const stun::Address& embedded) noexcept {
    for (const Rule& rule : rules)
        if (matches(rule, address) || (embeds && matches(rule, embedded))) return true;
    return false;
}

std::vector<Rule> compile(std::span<const Cidr> list, PeerVerdict verdict) {
    std::vector<Rule> rules;
    rules.reserve(list.size());
    for (const Cidr& cidr : list) rules.push_back(make_rule(cidr, verdict));
    return rules;
}

}  // namespace

bool Cidr::contains(const stun::Address& address) const noexcept {
    return matches(make_rule(*this, PeerVerdict::allowed), address);
}

std::string_view to_string(CidrError error) noexcept {
    switch (error) {
    case CidrError::ok: return "ok";
    case CidrError::bad_address: return "bad_address";
    case CidrError::bad_prefix: return "bad_prefix";
    case CidrError::prefix_too_long: return "prefix_too_long";
    case CidrError::host_bits_set: return "host_bits_set";
    }
    return "unknown";
}

CidrError parse_cidr(std::string_view text, Cidr& out) noexcept {
    const std::size_t slash = text.find('/');
    stun::Address address;
    if (!stun::Address::from_string(text.substr(0, slash), 0, address))
        return CidrError::bad_address;
    const unsigned longest = max_prefix_length(address.family);
    unsigned prefix_length = longest;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        if (digits.empty()) return CidrError::bad_prefix;
        prefix_length = 0;
        for (const char c : digits) {
            if (c < '0' || c > '9') return CidrError::bad_prefix;
            // Stop counting once it is too long: "/99999999999" must not wrap.
            if (prefix_length <= longest)
                prefix_length = prefix_length * 10 + static_cast<unsigned>(c - '0');
        }
        if (prefix_length > longest) return CidrError::prefix_too_long;
    }
    const Rule rule = make_rule(address, prefix_length, PeerVerdict::allowed);
    if (rule.network[0] != stun::load_be64(address.ip.data()) ||
        rule.network[1] != stun::load_be64(address.ip.data() + 8))
        return CidrError::host_bits_set;
    out.family = address.family;
    out.prefix_length = static_cast<std::uint8_t>(prefix_length);
    out.network = address.ip;
    return CidrError::ok;
}

PeerPolicy::PeerPolicy(std::span<const Cidr> allow, std::span<const Cidr> deny,
                       std::span<const stun::Address> own_addresses,
                       std::span<const stun::Address> relayed_addresses)
    : deny_(compile(deny, PeerVerdict::denied_by_config)),
      allow_(compile(allow, PeerVerdict::allowed)) {
    own_.reserve(own_addresses.size());
    for (const stun::Address& own : own_addresses)
        own_.push_back(make_rule(own, max_prefix_length(own.family), PeerVerdict::own_address));
    relayed_.reserve(relayed_addresses.size());
    for (const stun::Address& relayed : relayed_addresses)
        relayed_.push_back(
            make_rule(relayed, max_prefix_length(relayed.family), PeerVerdict::relayed_address));
}

PeerVerdict PeerPolicy::check(const stun::Address& peer) const noexcept {
    stun::Address embedded;
    const bool embeds = embedded_ipv4(peer, embedded);
    // The header comment's order: own addresses, deny, relayed addresses, allow, defaults. A
    // relayed address is one exactly, in its own family, not in an embedding form.
    const bool relayed = any_holds(relayed_, peer, false, embedded);
    if (!relayed && any_holds(own_, peer, embeds, embedded)) return PeerVerdict::own_address;
    if (any_holds(deny_, peer, embeds, embedded)) return PeerVerdict::denied_by_config;
    if (relayed) return PeerVerdict::relayed_address;
    if (any_holds(allow_, peer, embeds, embedded)) return PeerVerdict::allowed;
    // The defaults judge an embedding address by the IPv4 address alone: the IPv6 transition
    // prefixes themselves are not in the table.
    const stun::Address& judged = embeds ? embedded : peer;
    for (const Rule& rule : default_rules)
        if (matches(rule, judged)) return rule.verdict;
    return PeerVerdict::allowed;
}

std::string to_string(const Cidr& cidr) {
    char text[INET6_ADDRSTRLEN] = {};
    const int family = cidr.family == stun::AddressFamily::ipv4 ? AF_INET : AF_INET6;
    if (inet_ntop(family, cidr.network.data(), text, sizeof text) == nullptr) return "?";
    return std::string(text) + "/" + std::to_string(cidr.prefix_length);
}

std::vector<DefaultPeerRange> default_peer_ranges() {
    std::vector<DefaultPeerRange> out;
    for (const Rule& rule : default_rules) {
        DefaultPeerRange entry{};
        entry.range.family = rule.family;
        entry.range.prefix_length = static_cast<std::uint8_t>(
            std::popcount(rule.mask[0]) + std::popcount(rule.mask[1]));
        stun::store_be64(entry.range.network.data(), rule.network[0]);
        if (rule.family == stun::AddressFamily::ipv6)
            stun::store_be64(entry.range.network.data() + 8, rule.network[1]);
        else
            std::fill(entry.range.network.begin() + 4, entry.range.network.end(), std::byte{0});
        entry.verdict = rule.verdict;
        out.push_back(entry);
    }
    return out;
}

}  // namespace engine
