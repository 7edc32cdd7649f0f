// The TURN peer address policy: which peers a relay may send to (design.md §3, role `relay`).
//
// A TURN server sends from inside whatever network it sits in, so a client that names a peer
// in 10/8 or 127/8 reaches what a firewall keeps away from the Internet: the "TURN relaying to
// internal networks" class of vulnerability (RFC 8656 §21, security considerations; for the
// IPv6 transition prefixes its tunnel amplification attack, from RFC 6156 §9.1). RFC 8656 lets
// a server restrict the peer addresses CreatePermission and ChannelBind accept, answering 403
// (Forbidden); the caller does that for any peer check() does not allow, and drops a Send
// indication to one.
//
// Rules, in this order; the first that applies decides:
//   1. The server's own addresses are refused, even when an allow entry covers them (a broad
//      allow, such as 0.0.0.0/0 to switch the defaults off, must not open them by accident):
//      relayed to itself, a client would reach the server's own listeners (STUN/TURN, SFU,
//      anything else bound there) from one of the server's own addresses, a source they have
//      every reason to trust and answer. The one exception is rule 3.
//   2. deny: a peer inside an entry of the configured deny list is refused. A deny is final:
//      nothing allows it back. (coturn differs: its allowed-peer-ip wins over denied-peer-ip.
//      Here allow punches holes in the defaults only, so that a deny list an operator wrote
//      cannot be undone by a broad allow written later.)
//   3. The server's relayed addresses themselves (exactly: not in an embedding IPv6 form) are
//      allowed as PeerVerdict::relayed_address, whatever range holds them: two clients of one
//      server relay to each other's relayed addresses (WebRTC's relay-relay pair when both
//      sides use the same TURN server). The data path never sends such a datagram to the wire
//      (a DPDK port has no loopback); it delivers it to the allocation on that relay port
//      itself ("hairpin", relay_path.cc), and drops one for any other port of the address, so
//      no listener of the server is reached. No loop either: what a relay port receives goes
//      to its allocation's client, whose address is never the server's (a frame from one of
//      the port's own addresses is dropped on receipt), so the "TURN Loop Attack" of RFC 8656
//      §21 has no second allocation to bounce from.
//   4. allow: a peer inside an entry of the configured allow list is allowed, although a
//      default range holds it (an SFU on 10.1.2.3 behind the relay, say).
//   5. defaults: the special-purpose ranges below are refused, each under its own reason.
//   6. Anything else is allowed.
//
// Default ranges, from RFC 6890's special-purpose address registries:
//   unspecified           0.0.0.0/8 (RFC 1122 §3.2.1.3), ::/128 (RFC 4291 §2.5.2); Linux
//                         delivers a packet to 0.0.0.0 or :: to the host itself
//                         (CVE-2020-26262, the bypass of coturn's loopback check)
//   loopback              127/8 (RFC 1122 §3.2.1.3), ::1/128 (RFC 4291 §2.5.3)
//   private_network       10/8, 172.16/12, 192.168/16 (RFC 1918), fc00::/7 (RFC 4193)
//   shared_address_space  100.64/10 (RFC 6598, carrier-grade NAT)
//   link_local            169.254/16 (RFC 3927), fe80::/10 (RFC 4291 §2.5.6)
//   protocol_assignments  192.0.0.0/24 (RFC 6890 §2.2.2: DS-Lite, NAT64 discovery, ...)
//   benchmarking          198.18/15 (RFC 2544)
//   multicast             224/4 (RFC 5771), ff00::/8 (RFC 4291 §2.7)
//   reserved              240/4 (RFC 1112 §4), which holds 255.255.255.255 (RFC 919);
//                         ::/96, IPv4-compatible addresses (deprecated, RFC 4291 §2.5.5.1)
//   teredo                2001::/32 (RFC 4380): its client address is obfuscated and its
//                         server address is anyone's; refused whole
// An IPv6 address that embeds an IPv4 address is judged by that address as well, since where
// the packet ends up is the IPv4 host: IPv4-mapped ::ffff:0:0/96 (RFC 4291 §2.5.5.2), NAT64's
// well-known prefix 64:ff9b::/96 (RFC 6052 §2.1), and 6to4 2002::/16 (RFC 3056 §2). Each rule
// applies to both forms: the own addresses, deny and allow entries match either the IPv6
// address or the IPv4 address it embeds; the defaults are those of the IPv4 address. So
// ::ffff:127.0.0.1 is loopback, and a deny of 10/8 also refuses 64:ff9b::10.0.0.1.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/reason_table.h"
#include "stun/address.h"

namespace engine {

// X(name, help)
#define ENGINE_PEER_VERDICTS(X)                                                                    \
    X(allowed, "the relay may send to this peer")                                                  \
    X(relayed_address, "one of the server's relayed addresses: allowed, delivered in the engine")  \
    X(own_address, "one of the server's own addresses: refused even if allowed (loops)")           \
    X(denied_by_config, "inside an entry of the configured deny list")                             \
    X(unspecified, "0.0.0.0/8 or ::, which Linux delivers to the host itself")                     \
    X(loopback, "127/8 or ::1")                                                                    \
    X(private_network, "RFC 1918 private (10/8, 172.16/12, 192.168/16) or RFC 4193 unique "        \
                       "local (fc00::/7)")                                                         \
    X(shared_address_space, "100.64/10, carrier-grade NAT space (RFC 6598)")                       \
    X(link_local, "169.254/16 or fe80::/10")                                                       \
    X(protocol_assignments, "192.0.0.0/24, IETF protocol assignments (RFC 6890 §2.2.2)")           \
    X(benchmarking, "198.18/15, network benchmarking (RFC 2544)")                                  \
    X(multicast, "224/4 or ff00::/8")                                                              \
    X(reserved, "240/4 (with 255.255.255.255), or an IPv4-compatible ::/96 IPv6 address")          \
    X(teredo, "2001::/32, Teredo, whose embedded client address is obfuscated")

enum class PeerVerdict : std::uint8_t { ENGINE_PEER_VERDICTS(ENGINE_REASON_ENUMERATOR) };

inline constexpr std::size_t peer_verdict_count = 0 ENGINE_PEER_VERDICTS(ENGINE_REASON_COUNT);

inline constexpr std::array<ReasonInfo, peer_verdict_count> peer_verdicts = {
    {ENGINE_PEER_VERDICTS(ENGINE_REASON_INFO)}};

/// The verdict's name, as counters and logs show it ("allowed", "loopback", ...).
constexpr std::string_view to_string(PeerVerdict verdict) noexcept {
    return peer_verdicts[static_cast<std::size_t>(verdict)].name;
}

/// Whether the verdict lets the relay send to the peer: allowed, or a relayed address.
constexpr bool relays_to(PeerVerdict verdict) noexcept {
    return verdict == PeerVerdict::allowed || verdict == PeerVerdict::relayed_address;
}

/// An IPv4 or IPv6 prefix. Its host bits are zero (parse_cidr() refuses any that are not).
struct Cidr {
    stun::AddressFamily family = stun::AddressFamily::ipv4;
    std::uint8_t prefix_length = 0;  ///< 0..32 (IPv4) or 0..128 (IPv6)
    /// Network order; IPv4 uses the first 4 bytes, the rest stay zero (as stun::Address::ip).
    std::array<std::byte, 16> network{};

    /// Whether `address` (its port ignored) is of this family and inside the prefix.
    [[nodiscard]] bool contains(const stun::Address& address) const noexcept;

    friend bool operator==(const Cidr&, const Cidr&) = default;
};

enum class CidrError : std::uint8_t {
    ok = 0,
    bad_address,      ///< the part before '/' is neither an IPv4 nor an IPv6 address
    bad_prefix,       ///< the part after '/' is empty, or not a decimal number
    prefix_too_long,  ///< longer than 32 (IPv4) or 128 (IPv6)
    host_bits_set,    ///< bits after the prefix are not zero ("10.0.0.1/8": a typo for what?)
};

/// "ok", "bad_address", ...: for config error messages.
[[nodiscard]] std::string_view to_string(CidrError error) noexcept;

/// Parses "10.0.0.0/8", "fc00::/7", or a bare address ("192.0.2.1", "2001:db8::1"), which is
/// a /32 or /128. `out` is written only on CidrError::ok. Errors: bad_address, bad_prefix,
/// prefix_too_long, host_bits_set. For config validation (control thread); does not allocate.
[[nodiscard]] CidrError parse_cidr(std::string_view text, Cidr& out) noexcept;

/// `cidr` as parse_cidr() reads it: "10.0.0.0/8", "fc00::/7" (for punchctl peer-policy).
[[nodiscard]] std::string to_string(const Cidr& cidr);

/// A default range (rule 5 of the header comment) and the reason it is refused under.
struct DefaultPeerRange {
    Cidr range;
    PeerVerdict verdict;
};

/// The default ranges, in the order check() tries them (for punchctl peer-policy).
[[nodiscard]] std::vector<DefaultPeerRange> default_peer_ranges();

/// The peer address policy. Built by the control thread from config (allocates), published
/// to the workers, which call check() (const, noexcept, allocation-free).
class PeerPolicy {
public:
    /// `allow` and `deny`: the configured lists; `own_addresses`: every address the server
    /// owns (listening, alternate and relay addresses; ports ignored); `relayed_addresses`:
    /// those of them that are relayed addresses (rule 3). The header comment gives the order
    /// in which they apply.
    PeerPolicy(std::span<const Cidr> allow, std::span<const Cidr> deny,
               std::span<const stun::Address> own_addresses,
               std::span<const stun::Address> relayed_addresses = {});

    /// Whether the relay may send to `peer` (its port ignored): PeerVerdict::allowed, or the
    /// reason it may not. Cost: a linear scan over the own addresses, both lists and the 18
    /// default prefixes, two 64-bit masked compares each (twice over the configured ones for
    /// an IPv6 address that embeds an IPv4 address); no allocation.
    [[nodiscard]] PeerVerdict check(const stun::Address& peer) const noexcept;

    /// A prefix compiled for the scan: the address as two big-endian 64-bit words (IPv4 in
    /// the top 32 bits of the first), masked.
    struct Rule {
        std::uint64_t network[2] = {};
        std::uint64_t mask[2] = {};
        stun::AddressFamily family = stun::AddressFamily::ipv4;
        PeerVerdict verdict = PeerVerdict::allowed;
    };

private:

    std::vector<Rule> own_;
    std::vector<Rule> relayed_;
    std::vector<Rule> deny_;
    std::vector<Rule> allow_;
};

}  // namespace engine
