// L2/L3 of the packet path (design.md §3): Ethernet, ARP (RFC 826), IPv4 with ICMP echo
// (RFC 792), IPv6 with ICMPv6 echo (RFC 4443) and neighbour discovery (RFC 4861), UDP (RFC 768)
// demultiplexed by destination port to the roles. Every length is checked before it is read.
#include <cstring>

#include "engine/checksum.h"
#include "engine/handler.h"
#include "engine/neighbour.h"
#include "stun/bytes.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

constexpr std::byte broadcast_mac[6] = {std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                                        std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}};

bool mac_is(const std::byte* p, const std::byte* mac) noexcept {
    return std::memcmp(p, mac, 6) == 0;
}

// Replies go back to the sender's MAC, from the port's.
void reply_l2(Frame& f, const PortContext& port) noexcept {
    std::memcpy(f.data, f.data + 6, 6);
    std::memcpy(f.data + 6, port.mac.data(), 6);
}

Verdict handle_arp(Frame& f, const PortContext& port) noexcept {
    // RFC 826 over Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4, then oper, SHA, SPA,
    // THA, TPA: 28 bytes.
    constexpr std::size_t arp = ethernet_header_size;
    if (f.length < arp + 28) return Verdict::drop(DropReason::truncated_frame);
    std::byte* p = f.data + arp;
    if (load_be16(p) != 1 || load_be16(p + 2) != ethertype::ipv4 ||
        std::to_integer<unsigned>(p[4]) != 6 || std::to_integer<unsigned>(p[5]) != 4)
        return Verdict::drop(DropReason::arp_not_for_us);
    const std::uint16_t operation = load_be16(p + 6);
    // A reply, or an announcement (RFC 5227 §2.3: a request with sender and target protocol
    // addresses equal), from an address the neighbour cache watches goes to the control
    // thread, which alone writes the cache (RFC 826's merge: only watched addresses, so that
    // unsolicited replies cannot fill it). parse_neighbour_frame() also refuses a multicast or
    // zero sender MAC, which nobody can be reached at.
    if (operation == 2 || (operation == 1 && std::memcmp(p + 14, p + 24, 4) == 0)) {
        NeighbourReply reply;
        if (port.neighbours.watches({p + 14, 4}) &&
            parse_neighbour_frame({f.data, f.length}, reply) == NeighbourFrame::reply)
            return Verdict::to_control();
    }
    if (operation == 2) return Verdict::drop(DropReason::arp_reply);
    if (operation != 1 || port.ipv4.index_of({p + 24, 4}) < 0)
        return Verdict::drop(DropReason::arp_not_for_us);
    // Reply in place: the requester's SHA/SPA become THA/TPA, ours become SHA/SPA.
    std::byte target_ip[4];
    std::memcpy(target_ip, p + 24, 4);
    store_be16(p + 6, 2);
    std::memcpy(p + 18, p + 8, 10);  // THA, TPA := SHA, SPA
    std::memcpy(p + 8, port.mac.data(), 6);
    std::memcpy(p + 14, target_ip, 4);
    std::memcpy(f.data, p + 18, 6);  // to the requester's hardware address
    std::memcpy(f.data + 6, port.mac.data(), 6);
    return Verdict::transmit();
}

// RFC 4291: a source is never multicast (ff00::/8, §2.7) nor the loopback (::1, §2.5.3); the
// unspecified address (::) only in a DAD solicitation, which the caller allows.
bool valid_ipv6_source(const std::byte* source, const PortContext& port) noexcept {
    static constexpr std::byte loopback[16] = {
        std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{0}, std::byte{0}, std::byte{0}, std::byte{1}};
    return source[0] != std::byte{0xFF} && std::memcmp(source, loopback, 16) != 0 &&
           port.ipv6.index_of({source, 16}) < 0;
}

bool is_unspecified_ipv6(const std::byte* address) noexcept {
    static constexpr std::byte unspecified[16] = {};
    return std::memcmp(address, unspecified, 16) == 0;
}

Verdict handle_udp(Frame& f, std::size_t ip, std::size_t l4, std::size_t l4_length, bool ipv6,
                   const PortContext& port, CoreCounters& counters, RelayState* relay,
                   SfuState* sfu) noexcept {
    if (l4_length < udp_header_size) return Verdict::drop(DropReason::bad_udp_length);
    const std::uint16_t udp_length = load_be16(f.data + l4 + 4);
    if (udp_length < udp_header_size || udp_length > l4_length)
        return Verdict::drop(DropReason::bad_udp_length);
    if (f.l4_checksum == L4ChecksumHint::bad) return Verdict::drop(DropReason::bad_udp_checksum);
    // RFC 768 makes source port 0 mean "none": there is nowhere to answer.
    if (load_be16(f.data + l4) == 0) return Verdict::drop(DropReason::bad_source_address);
    const std::uint16_t destination_port = load_be16(f.data + l4 + 2);
    const bool to_stun_port =
        destination_port == port.stun_port ||
        (port.stun_alternate_port != 0 && destination_port == port.stun_alternate_port);
    const bool to_sfu_port = sfu != nullptr && destination_port == sfu->context.limits().port;
    // On the SFU port, what is not STUN (RFC 7983: first byte 0-3) is a leg's media, forwarded
    // as a router forwards: its checksum updated, not verified (sfu_role.h).
    if (to_sfu_port && (udp_length == udp_header_size ||
                        std::to_integer<unsigned>(f.data[l4 + udp_header_size]) > 3))
        return sfu_forward(f, ip, l4, ipv6, port, counters, *sfu);
    if (relay != nullptr && port.relay != nullptr) {
        // The relay listens on the STUN ports: there a first byte of 64-127 is ChannelData
        // (RFC 7983's 64-79, and RFC 5766's channels to 0x7FFF: stun::channel_accepted_max);
        // STUN's is 0-3. Anywhere else, a datagram may be a peer's to a relayed address. The
        // relay forwards both as a router forwards, its UDP checksum not verified but updated
        // (RFC 1624, relay_forward.h): a wrong one stays wrong for the receiver to drop.
        if (to_stun_port && udp_length > udp_header_size &&
            (std::to_integer<unsigned>(f.data[l4 + udp_header_size]) & 0xC0) == 0x40)
            return relay_channel_data(f, ip, l4, ipv6, port, *relay);
        Verdict verdict;
        if (!to_stun_port && relay_from_peer(f, ip, l4, ipv6, port, *relay, verdict))
            return verdict;
    }
    // What the engine reads and answers itself, it verifies.
    if (port.rx_checksum == RxChecksum::verify && f.l4_checksum == L4ChecksumHint::unknown) {
        const std::uint16_t checksum = load_be16(f.data + l4 + 6);
        // RFC 768: zero means "no checksum" over IPv4; RFC 8200 §8.1: never valid over IPv6.
        if (checksum != 0 || ipv6) {
            const std::span<const std::byte> addresses(f.data + ip + (ipv6 ? 8 : 12),
                                                       ipv6 ? 32 : 8);
            if (checksum == 0 ||
                transport_checksum(addresses, ip_protocol::udp, {f.data + l4, udp_length}) != 0)
                return Verdict::drop(DropReason::bad_udp_checksum);
        }
    }
    if (to_sfu_port) return sfu_answer_stun(f, ip, l4, ipv6, port, *sfu);
    if (port.stun_enabled && to_stun_port)
        return respond_stun(f, ip, l4, ipv6, port, counters, relay);
    return Verdict::drop(DropReason::no_service);
}

Verdict handle_ipv4(Frame& f, const PortContext& port, CoreCounters& counters,
                    RelayState* relay, SfuState* sfu) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    if (f.length < ip + ipv4_header_size) return Verdict::drop(DropReason::truncated_frame);
    std::byte* h = f.data + ip;
    const unsigned version = std::to_integer<unsigned>(h[0]) >> 4;
    const std::size_t header_length = (std::to_integer<std::size_t>(h[0]) & 0xF) * 4;
    const std::size_t total_length = load_be16(h + 2);
    // RFC 791: IHL of at least 5 words; the total length covers the header and fits the frame
    // (Ethernet may pad a short packet, so the frame may be longer).
    if (version != 4 || header_length < ipv4_header_size || total_length < header_length)
        return Verdict::drop(DropReason::bad_ipv4_header);
    if (ip + total_length > f.length) return Verdict::drop(DropReason::truncated_frame);
    // The usual 20-byte header as a fixed size, which the inline sum unrolls into three loads.
    if ((header_length == ipv4_header_size ? ipv4_header_checksum({h, ipv4_header_size})
                                           : ipv4_header_checksum({h, header_length})) != 0)
        return Verdict::drop(DropReason::bad_ipv4_checksum);
    // More-fragments flag or a fragment offset: a fragment.
    if ((load_be16(h + 6) & 0x3FFF) != 0) return Verdict::drop(DropReason::ip_fragment);
    if (port.ipv4.index_of({h + 16, 4}) < 0) return Verdict::drop(DropReason::not_for_us_l3);
    if (!port.accepts_ipv4_source(h + 12)) return Verdict::drop(DropReason::bad_source_address);
    f.length = static_cast<std::uint16_t>(ip + total_length);  // trim Ethernet padding
    const std::size_t l4 = ip + header_length;
    const std::size_t l4_length = total_length - header_length;
    const auto protocol = std::to_integer<std::uint8_t>(h[9]);
    if (protocol == ip_protocol::udp)
        return handle_udp(f, ip, l4, l4_length, false, port, counters, relay, sfu);
    if (protocol != ip_protocol::icmp) return Verdict::drop(DropReason::unsupported_protocol);

    if (l4_length < 8) return Verdict::drop(DropReason::truncated_frame);
    if (checksum_finish(checksum_add(0, {f.data + l4, l4_length})) != 0)
        return Verdict::drop(DropReason::bad_icmp_checksum);
    // RFC 792: echo request is type 8 code 0; the reply is type 0 with the same data.
    if (load_be16(f.data + l4) != 0x0800) return Verdict::drop(DropReason::icmp_not_echo);
    store_be16(f.data + l4, 0x0000);
    std::uint16_t checksum = checksum_update16(load_be16(f.data + l4 + 2), 0x0800, 0x0000);
    if (checksum == 0x0000) {
        // RFC 1624 eqn. 3 yields 0x0000 only where the rest of the message sums to zero (an
        // all-zero echo), whose checksum is 0xFFFF: recompute in full (rare, and short).
        store_be16(f.data + l4 + 2, 0);
        checksum = checksum_finish(checksum_add(0, {f.data + l4, l4_length}));
    }
    store_be16(f.data + l4 + 2, checksum);
    std::byte source[4];
    std::memcpy(source, h + 12, 4);
    std::memcpy(h + 12, h + 16, 4);
    std::memcpy(h + 16, source, 4);
    h[8] = std::byte{64};  // TTL
    store_be16(h + 10, 0);
    store_be16(h + 10, ipv4_header_checksum({h, header_length}));
    reply_l2(f, port);
    return Verdict::transmit();
}

// RFC 4291 §2.7.1: ff02::1:ffXX:XXXX, the solicited-node group of an address.
bool is_solicited_node_of(const std::byte* group, const std::optional<stun::Address>& owned) {
    static constexpr std::byte prefix[13] = {
        std::byte{0xFF}, std::byte{0x02}, std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{0},    std::byte{0x01}, std::byte{0xFF}};
    return owned && std::memcmp(group, prefix, 13) == 0 &&
           std::memcmp(group + 13, owned->ip.data() + 13, 3) == 0;
}

Verdict handle_icmpv6(Frame& f, std::size_t l4, std::size_t l4_length, bool to_unicast,
                      const PortContext& port) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    std::byte* h = f.data + ip;
    if (l4_length < 8) return Verdict::drop(DropReason::truncated_frame);
    if (transport_checksum({h + 8, 32}, ip_protocol::icmpv6, {f.data + l4, l4_length}) != 0)
        return Verdict::drop(DropReason::bad_icmp_checksum);
    const auto type = std::to_integer<unsigned>(f.data[l4]);
    const auto code = std::to_integer<unsigned>(f.data[l4 + 1]);
    if (type != 135 && is_unspecified_ipv6(h + 8))
        return Verdict::drop(DropReason::bad_source_address);
    if (type == 128 && code == 0) {
        // RFC 4443 §4.2: echo reply, type 129, same identifier, sequence and data.
        if (!to_unicast) return Verdict::drop(DropReason::not_for_us_l3);
        f.data[l4] = std::byte{129};
        store_be16(f.data + l4 + 2, checksum_update16(load_be16(f.data + l4 + 2), 0x8000, 0x8100));
        std::byte source[16];
        std::memcpy(source, h + 8, 16);
        std::memcpy(h + 8, h + 24, 16);
        std::memcpy(h + 24, source, 16);
        h[7] = std::byte{64};  // hop limit
        reply_l2(f, port);
        return Verdict::transmit();
    }
    if (type == 136) {
        // An advertisement about an address the neighbour cache watches goes to the control
        // thread once valid (RFC 4861 §7.1.2, checked by parse_neighbour_frame), with or
        // without a target link-layer address (an answer to a unicast probe may leave it out,
        // §7.2.4, and still confirms the entry, §7.2.5); others have nothing to answer.
        if (l4_length < 24 || !port.neighbours.watches({f.data + l4 + 8, 16}))
            return Verdict::drop(DropReason::ndp_advertisement);
        NeighbourReply reply;
        if (parse_neighbour_frame({f.data, f.length}, reply) != NeighbourFrame::reply)
            return Verdict::drop(DropReason::ndp_invalid);
        return Verdict::to_control();
    }
    if (type != 135) return Verdict::drop(DropReason::icmp_not_echo);

    // RFC 4861 §7.1.1: a valid solicitation has hop limit 255, code 0, at least 24 bytes, and
    // a target that is not multicast.
    if (std::to_integer<unsigned>(h[7]) != 255 || code != 0 || l4_length < 24)
        return Verdict::drop(DropReason::ndp_invalid);
    const std::byte* target = f.data + l4 + 8;
    const int index = port.ipv6.index_of({target, 16});
    if (index < 0) return Verdict::drop(DropReason::ndp_not_for_us);
    // RFC 4861 §7.1.1: every option has a non-zero length and lies inside the message; a
    // solicitation from the unspecified address carries no source link-layer address option.
    const bool dad = is_unspecified_ipv6(h + 8);
    for (std::size_t option = 24; option < l4_length;) {
        if (l4_length - option < 2) return Verdict::drop(DropReason::ndp_invalid);
        const std::size_t option_length = std::to_integer<std::size_t>(f.data[l4 + option + 1]) * 8;
        if (option_length == 0 || option_length > l4_length - option ||
            (dad && f.data[l4 + option] == std::byte{1}))
            return Verdict::drop(DropReason::ndp_invalid);
        option += option_length;
    }
    // RFC 4861 §7.2.4: a solicited advertisement to the solicitation's source, with the
    // Solicited and Override flags and our link-layer address as the target option.
    constexpr std::size_t advert_length = 32;
    if (l4 + advert_length > f.capacity) return Verdict::drop(DropReason::truncated_frame);
    std::byte owned[16];
    std::memcpy(owned, target, 16);
    if (dad) {
        // RFC 4861 §7.2.4: to a duplicate address detection probe (source ::) the answer goes
        // to all-nodes, ff02::1, with the Solicited flag clear, so the prober learns the
        // address is taken (RFC 4862 §5.4.3).
        static constexpr std::byte all_nodes[16] = {
            std::byte{0xFF}, std::byte{0x02}, std::byte{0}, std::byte{0}, std::byte{0},
            std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0},
            std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0},
            std::byte{1}};
        std::memcpy(h + 24, all_nodes, 16);
    } else {
        std::memcpy(h + 24, h + 8, 16);  // to the solicitor
    }
    std::memcpy(h + 8, owned, 16);  // from the target address
    store_be16(h + 4, advert_length);
    h[7] = std::byte{255};
    std::byte* a = f.data + l4;
    std::memset(a, 0, advert_length);
    a[0] = std::byte{136};
    a[4] = dad ? std::byte{0x20} : std::byte{0x60};  // O, and S unless answering DAD
    std::memcpy(a + 8, owned, 16);
    a[24] = std::byte{2};  // option: target link-layer address
    a[25] = std::byte{1};  // length in units of 8 bytes
    std::memcpy(a + 26, port.mac.data(), 6);
    store_be16(a + 2, transport_checksum({h + 8, 32}, ip_protocol::icmpv6, {a, advert_length}));
    f.length = static_cast<std::uint16_t>(l4 + advert_length);
    reply_l2(f, port);
    if (dad) {
        // RFC 2464 §7: IPv6 multicast to 33:33 and the group's last four bytes.
        static constexpr std::byte all_nodes_mac[6] = {std::byte{0x33}, std::byte{0x33},
                                                       std::byte{0},    std::byte{0},
                                                       std::byte{0},    std::byte{1}};
        std::memcpy(f.data, all_nodes_mac, 6);
    }
    return Verdict::transmit();
}

// RFC 4861 §7.2.6: a node announces a new link-layer address with unsolicited advertisements
// to all-nodes, ff02::1; the other ICMPv6 the engine takes is unicast or to its solicited-node
// groups. `l4` is the ICMPv6 header's offset, checked against the payload length first.
bool is_advertisement_to_all_nodes(const Frame& f, std::size_t l4,
                                   std::size_t payload_length) noexcept {
    static constexpr std::byte all_nodes[16] = {
        std::byte{0xFF}, std::byte{0x02}, std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0},
        std::byte{1}};
    return payload_length >= 1 && f.data[l4] == std::byte{136} &&
           std::memcmp(f.data + ethernet_header_size + 24, all_nodes, 16) == 0;
}

bool is_ipv6_extension_header(std::uint8_t next_header) noexcept {
    // RFC 8200 §4 and the IANA list: hop-by-hop, routing, destination options, AH, ESP,
    // mobility, HIP, shim6 (fragment is told apart by the caller).
    switch (next_header) {
    case 0: case 43: case 50: case 51: case 60: case 135: case 139: case 140: return true;
    default: return false;
    }
}

Verdict handle_ipv6(Frame& f, const PortContext& port, CoreCounters& counters,
                    RelayState* relay, SfuState* sfu) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    if (f.length < ip + ipv6_header_size) return Verdict::drop(DropReason::truncated_frame);
    std::byte* h = f.data + ip;
    if ((std::to_integer<unsigned>(h[0]) >> 4) != 6)
        return Verdict::drop(DropReason::bad_ipv6_header);
    const std::size_t payload_length = load_be16(h + 4);
    if (ip + ipv6_header_size + payload_length > f.length)
        return Verdict::drop(DropReason::truncated_frame);
    f.length = static_cast<std::uint16_t>(ip + ipv6_header_size + payload_length);
    const auto next_header = std::to_integer<std::uint8_t>(h[6]);
    if (next_header == ip_protocol::ipv6_fragment) return Verdict::drop(DropReason::ip_fragment);
    if (is_ipv6_extension_header(next_header))
        return Verdict::drop(DropReason::ipv6_extension_header);
    const bool to_unicast = port.ipv6.index_of({h + 24, 16}) >= 0;
    const std::size_t l4 = ip + ipv6_header_size;
    // :: is a valid source only for neighbour discovery's DAD probe (checked there).
    if (!valid_ipv6_source(h + 8, port) ||
        (is_unspecified_ipv6(h + 8) && next_header != ip_protocol::icmpv6))
        return Verdict::drop(DropReason::bad_source_address);
    if (next_header == ip_protocol::icmpv6) {
        if (!to_unicast && !is_solicited_node_of(h + 24, port.ipv6.primary) &&
            !is_solicited_node_of(h + 24, port.ipv6.alternate) &&
            !is_advertisement_to_all_nodes(f, l4, payload_length))
            return Verdict::drop(DropReason::not_for_us_l3);
        return handle_icmpv6(f, l4, payload_length, to_unicast, port);
    }
    if (!to_unicast) return Verdict::drop(DropReason::not_for_us_l3);
    if (next_header == ip_protocol::udp)
        return handle_udp(f, ip, l4, payload_length, true, port, counters, relay, sfu);
    return Verdict::drop(DropReason::unsupported_protocol);
}

Verdict dispatch(Frame& f, const PortContext& port, CoreCounters& counters, RelayState* relay,
                 SfuState* sfu) noexcept {
    if (f.length < ethernet_header_size) return Verdict::drop(DropReason::truncated_frame);
    const bool multicast_v6 = f.data[0] == std::byte{0x33} && f.data[1] == std::byte{0x33};
    if (!port.is_own_mac(f.data) && !mac_is(f.data, broadcast_mac) && !multicast_v6)
        return Verdict::drop(DropReason::not_for_us_l2);
    switch (load_be16(f.data + 12)) {
    case ethertype::arp: return handle_arp(f, port);
    case ethertype::ipv4: return handle_ipv4(f, port, counters, relay, sfu);
    case ethertype::ipv6: return handle_ipv6(f, port, counters, relay, sfu);
    default: return Verdict::drop(DropReason::unsupported_ethertype);
    }
}

}  // namespace

Verdict handle_frame_generally(Frame& frame, const PortContext& port, CoreCounters& counters,
                               RelayState* relay, SfuState* sfu) noexcept {
    const Verdict verdict = dispatch(frame, port, counters, relay, sfu);
    // A fan-out's frame is one of its copies; sfu_forward() counted the others.
    if (verdict.transmits() || verdict.fans_out()) {
        ++counters.tx_packets;
        counters.tx_bytes += frame.length;
    } else {
        if (verdict.goes_to_control()) {
            // Handed off like a packet for another core (design.md §3's conservation law).
            ++counters.handed_off;
            ++counters.to_control;
        } else if (verdict.hairpins()) {
            ++counters.handed_off;
            ++counters.hairpinned;
        } else {
            counters.drop(verdict.reason);
        }
    }
    return verdict;
}

}  // namespace engine
