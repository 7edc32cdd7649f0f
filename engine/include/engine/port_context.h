// What a port's handlers need to know, built by the control thread from EngineConfig at start
// and read (never written) by the workers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/config.h"
#include "engine/neighbour.h"  // MacAddress, NeighbourSnapshot
#include "stun/address.h"
#include "stun/constants.h"
#include "stun/crc32_terms.h"

namespace engine {

class RelayContext;  // engine/relay_role.h

/// The addresses of one family that a port owns: RFC 5780's primary and (optional) alternate.
struct OwnedAddresses {
    std::optional<stun::Address> primary;
    std::optional<stun::Address> alternate;

    /// 0 for the primary, 1 for the alternate, -1 when `ip` (4 or 16 bytes) is neither.
    /// Always inline (below): the L3 checks call it on every packet, with a constant size.
    [[nodiscard, gnu::always_inline]] int index_of(std::span<const std::byte> ip) const noexcept;
    [[nodiscard]] const std::optional<stun::Address>& at(int index) const noexcept {
        return index == 0 ? primary : alternate;
    }

private:
    template <std::size_t size>
    [[nodiscard, gnu::always_inline]] int find(const std::byte* ip) const noexcept;
};

inline int OwnedAddresses::index_of(std::span<const std::byte> ip) const noexcept {
    // Compares of a fixed 4 or 16 bytes, which the compiler makes one or two loads each
    // instead of a memcmp call: ≈ 1 ns, on every packet's destination and source.
    if (ip.size() == 4) return find<4>(ip.data());
    if (ip.size() == 16) return find<16>(ip.data());
    return -1;  // no owned address has another size
}

template <std::size_t size>
inline int OwnedAddresses::find(const std::byte* ip) const noexcept {
    // No lambda: a caller compiled for another target (the STUN fast path's PCLMULQDQ) does
    // not inline one.
    if (primary && primary->ip_size() == size && std::memcmp(primary->ip.data(), ip, size) == 0)
        return 0;
    if (alternate && alternate->ip_size() == size &&
        std::memcmp(alternate->ip.data(), ip, size) == 0)
        return 1;
    return -1;
}

/// The SOFTWARE attribute's text (RFC 8489 §14.14), with what the STUN fast path's FINGERPRINT
/// needs of it computed once, when the text is set: the raw CRC-32 (stun/crc32_terms.h) of the
/// whole attribute as a response carries it (type, length, text, zero padding; nothing when the
/// text is empty), and the attribute itself. Converts from and to a string, so that a context
/// is set up as `port.software = "punchline"`.
class SoftwareText {
public:
    SoftwareText() : SoftwareText(std::string_view{}) {}
    SoftwareText(std::string_view text);  // NOLINT: implicit, as a string field would be
    SoftwareText(const char* text) : SoftwareText(std::string_view(text)) {}  // NOLINT
    SoftwareText(const std::string& text) : SoftwareText(std::string_view(text)) {}  // NOLINT

    operator std::string_view() const noexcept { return text_; }  // NOLINT
    [[nodiscard]] const std::string& str() const noexcept { return text_; }
    [[nodiscard]] std::size_t size() const noexcept { return text_.size(); }
    [[nodiscard]] bool empty() const noexcept { return text_.empty(); }
    /// The whole attribute as a response carries it (empty when the text is), its raw CRC-32
    /// and its ones' complement sum as big-endian 32-bit words (engine/checksum.h).
    [[nodiscard]] std::span<const std::byte> attribute() const noexcept { return attribute_; }
    [[nodiscard]] std::size_t attribute_size() const noexcept { return attribute_.size(); }
    [[nodiscard]] std::uint32_t attribute_raw_crc() const noexcept { return attribute_raw_crc_; }
    [[nodiscard]] std::uint64_t attribute_sum() const noexcept { return attribute_sum_; }

private:
    std::string text_;
    std::vector<std::byte> attribute_;
    std::uint32_t attribute_raw_crc_ = 0;
    std::uint64_t attribute_sum_ = 0;
};

/// The STUN fast path's answer to a plain Binding request (engine/stun_responder.cc) for one
/// family, owned address, STUN port and FINGERPRINT or not: the whole response frame as the
/// general path writes it, with zeros where the client goes (its MAC, IP address and port, the
/// transaction ID, XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, FINGERPRINT's value, IPv4's TOS and
/// identification), and what the per-packet checksums and CRC start from. The fast path copies
/// it over the request and fills in the client. Made by PortContext::prepare().
struct BindingTemplate {
    std::vector<std::byte> frame;  ///< empty: no template; the general path answers
    std::uint64_t ip_sum = 0;      ///< IPv4 header's ones' complement sum, checksum field zero
    std::uint64_t udp_sum = 0;     ///< pseudo-header, UDP header and message, as they stand
    /// Raw CRC-32 (stun/crc32_terms.h) of the message up to its FINGERPRINT attribute, the
    /// first 4 bytes XOR 0xFF and XOR-MAPPED-ADDRESS holding the magic cookie's part of it.
    std::uint32_t crc_layout = 0;
    std::uint16_t crc_covered = 0;  ///< message bytes the FINGERPRINT covers

    /// Where a template sits in PortContext::binding_templates.
    static constexpr std::size_t index(bool ipv6, int ip_index, int port_index,
                                       bool fingerprint) noexcept {
        return (ipv6 ? 8u : 0u) + static_cast<std::size_t>(ip_index) * 4 +
               static_cast<std::size_t>(port_index) * 2 + (fingerprint ? 1u : 0u);
    }
};

struct PortContext {
    MacAddress mac{};
    OwnedAddresses ipv4;
    OwnedAddresses ipv6;
    RxChecksum rx_checksum = RxChecksum::verify;
    /// Largest IP datagram the port sends (the device's MTU). Nothing the engine builds may
    /// exceed it: the engine does not fragment, and a frame over the MTU is lost at the port.
    std::uint16_t mtu = 1500;
    // STUN role.
    bool stun_enabled = true;
    std::uint16_t stun_port = 3478;
    std::uint16_t stun_alternate_port = 0;  ///< 0: none
    SoftwareText software;                  ///< SOFTWARE attribute; empty: none
    /// The neighbour cache as the control thread last published it, with this context (one
    /// RCU publication per change, so that a worker sees addresses and neighbours that belong
    /// together). ARP replies and advertisements about its entries go to the control thread;
    /// the relay will take next hops from it. Empty from from_config(): watches nothing.
    NeighbourSnapshot neighbours;
    /// The STUN fast path's responses, made by prepare() from the fields above. A context
    /// without them (never prepared) is answered by the general path, to the same bytes.
    std::array<BindingTemplate, 16> binding_templates;
    /// The relay role's read-only context (engine/relay_role.h); null where the port relays
    /// nothing. Shared by the copies a neighbour change publishes.
    std::shared_ptr<const RelayContext> relay;

    /// Whether the 6 bytes at `p` are the port's MAC. Two loads a side: a memcmp of 6 bytes
    /// stays a library call.
    [[nodiscard]] bool is_own_mac(const std::byte* p) const noexcept {
        std::uint32_t a, b;
        std::uint16_t c, d;
        std::memcpy(&a, p, 4);
        std::memcpy(&b, mac.data(), 4);
        std::memcpy(&c, p + 4, 2);
        std::memcpy(&d, mac.data() + 4, 2);
        return ((a ^ b) | static_cast<std::uint32_t>(c ^ d)) == 0;
    }

    /// RFC 1122 §3.2.1.3: a datagram whose source is 0.0.0.0, 127/8, broadcast or multicast
    /// (class D and E) "MUST be silently discarded"; so is one claiming to come from one of
    /// the port's own addresses. `source` is 4 bytes.
    [[nodiscard]] bool accepts_ipv4_source(const std::byte* source) const noexcept {
        std::uint32_t a;
        std::memcpy(&a, source, 4);
        a = __builtin_bswap32(a);
        const unsigned first = a >> 24;
        return a != 0 && first != 127 && first < 224 && ipv4.index_of({source, 4}) < 0;
    }

    /// The express lanes' address checks of an IPv4 header `h` (20 bytes or more): to one of
    /// the port's addresses, from a source accepts_ipv4_source() accepts. From the words
    /// prepare() made, compared whole (index_of() tests optionals, families and bytes, twice
    /// a frame); false for every header before prepare(), so that the general path decides.
    [[nodiscard]] bool ipv4_addresses_ok(const std::byte* h) const noexcept {
        std::uint32_t from, to;
        std::memcpy(&from, h + 12, 4);
        std::memcpy(&to, h + 16, 4);
        const std::uint32_t a = own_ipv4_words[0];
        const std::uint32_t b = own_ipv4_words[1];  // 0: none
        const std::uint32_t source = __builtin_bswap32(from);
        const unsigned first = source >> 24;
        return to != 0 && (to == a || to == b) && source != 0 && first != 127 && first < 224 &&
               from != a && from != b;
    }

    /// RFC 5780 needs both an alternate address of the family and an alternate port.
    [[nodiscard]] bool supports_change_request(bool ipv6_family) const noexcept {
        return stun_alternate_port != 0 && (ipv6_family ? ipv6 : ipv4).alternate.has_value();
    }

    /// Makes what the handlers precompute from the fields above (the STUN fast path's response
    /// templates, the neighbour snapshot's IPv4 next hop). Call it after setting or changing
    /// any of them: a stale template answers with the old values. from_config() calls it;
    /// copies keep what it made.
    void prepare();
    /// ipv4.primary's and ipv4.alternate's 4 bytes as they lie in a header (0: none), made
    /// by prepare() for ipv4_addresses_ok().
    std::array<std::uint32_t, 2> own_ipv4_words{};

    /// From one port of the configuration and the MAC the device reports, prepared.
    static PortContext from_config(const EngineConfig& config, const PortConfig& port,
                                   const MacAddress& mac);
};

}  // namespace engine
