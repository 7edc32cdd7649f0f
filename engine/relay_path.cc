// The relay's data path (design.md §3, role `relay`): ChannelData from clients to peers and
// datagrams from peers to clients, on the worker that owns the allocation, each rewritten in
// its own buffer around a payload that is never copied (engine/relay_forward.h).
#include <array>
#include <cstring>
#include <optional>

#include "engine/handler.h"
#include "engine/rate_limit.h"
#include "engine/relay_forward.h"
#include "engine/relay_role.h"
#include "stun/bytes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

stun::Address endpoint(const Frame& f, std::size_t ip, std::size_t udp, bool ipv6,
                       bool source) noexcept {
    stun::Address a;
    a.family = ipv6 ? stun::AddressFamily::ipv6 : stun::AddressFamily::ipv4;
    const std::size_t size = ipv6 ? 16 : 4;
    const std::byte* addresses = f.data + ip + (ipv6 ? 8 : 12);
    std::memcpy(a.ip.data(), addresses + (source ? 0 : size), size);
    a.port = load_be16(f.data + udp + (source ? 0 : 2));
    return a;
}

// Whether the UDP checksum field holds a whole checksum, verified or not, that relay_forward.h
// may update: the port hands over whole ones (rx_checksum = verify) or checked it.
bool checksum_complete(const Frame& f, const PortContext& port) noexcept {
    return f.l4_checksum == L4ChecksumHint::good || port.rx_checksum == RxChecksum::verify;
}

std::uint8_t family_bit(const stun::Address& a) noexcept {
    return a.family == stun::AddressFamily::ipv6 ? relay_ipv6 : relay_ipv4;
}

Verdict forward(Frame& f, const RelayDatagram& datagram, std::span<const std::byte> prefix,
                std::size_t pad, const RelayHop& hop, const PortContext& port) noexcept {
    return rewrite_for_relay(f, datagram, prefix, pad, hop, port.mtu) == RelayRewriteResult::ok
               ? Verdict::transmit()
               : Verdict::drop(DropReason::relay_unforwardable);
}

// The allocation's bandwidth cap (RelayLimits::bandwidth), charged `bytes` of relayed data.
bool within_bandwidth(Allocation& allocation, std::size_t bytes, const RelayContext& context,
                      const RelayState& relay) noexcept {
    const std::optional<RateLimit>& limit = context.limits().bandwidth;
    return !limit || allocation.bandwidth().take(*limit, bytes, relay.now_ticks);
}

// A frame rewritten into a datagram to a relayed address on this worker's relay port: the
// peer's datagram to the allocation there. Its UDP checksum is the one the rewrite wrote.
Verdict deliver_hairpin(Frame& f, bool ipv6, const PortContext& port,
                        RelayState& relay) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    const std::size_t udp = ip + (ipv6 ? ipv6_header_size : ipv4_header_size);
    f.l4_checksum = L4ChecksumHint::good;
    Verdict verdict = Verdict::drop(DropReason::relay_no_allocation);
    static_cast<void>(relay_from_peer(f, ip, udp, ipv6, port, relay, verdict));
    return verdict;
}

}  // namespace

Verdict relay_to_peer(Frame& f, const RelayDatagram& datagram, Allocation& allocation,
                      const stun::Address& peer, const PortContext& port,
                      RelayState& relay) noexcept {
    const RelayContext& context = *port.relay;
    // A relayed address of the server (peer_policy.h, rule 3): only its relay ports, and
    // never through the wire.
    const bool hairpin = context.is_relayed_ip(peer);
    if (hairpin && !context.is_relay_port(peer.port))
        return Verdict::drop(DropReason::relay_own_port);
    RelayHop hop;
    hop.source_mac = port.mac;
    if (hairpin) {
        hop.destination_mac = port.mac;
    } else {
        const MacAddress* next_hop = port.neighbours.next_hop_mac(peer);
        if (next_hop == nullptr) return Verdict::drop(DropReason::relay_no_route);
        hop.destination_mac = *next_hop;
    }
    hop.source = context.relayed_address(allocation.relay_address(), allocation.relay_port(),
                                         family_bit(peer));
    hop.destination = peer;
    // The engine never fragments, so it never sends a fragment either: DF whether or not the
    // client asked with DONT-FRAGMENT (RFC 8656 §14's "as the client asked" would allow
    // clearing it, which only an engine that fragments could honour).
    hop.dont_fragment = true;
    if (!within_bandwidth(allocation, datagram.keep_length, context, relay))
        return Verdict::drop(DropReason::relay_bandwidth);
    const Verdict verdict = forward(f, datagram, {}, 0, hop, port);
    if (!verdict.transmits()) return verdict;
    allocation.count_to_peer(datagram.keep_length);
    RelayCounters& counters = relay.shard.counters();
    ++counters.to_peer_packets;
    counters.to_peer_bytes += datagram.keep_length;
    if (!hairpin) return verdict;
    if (!relay.shard.owns_relay_port(peer.port)) return Verdict::hairpin();
    return deliver_hairpin(f, peer.family == stun::AddressFamily::ipv6, port, relay);
}

Verdict handle_hairpin(Frame& f, const PortContext& port, CoreCounters& counters,
                       RelayState* relay) noexcept {
    ++counters.rx_packets;
    counters.rx_bytes += f.length;
    Verdict verdict = Verdict::drop(DropReason::relay_no_allocation);
    if (relay != nullptr && port.relay != nullptr && f.length >= ethernet_header_size) {
        const bool ipv6 = load_be16(f.data + 12) == ethertype::ipv6;
        verdict = deliver_hairpin(f, ipv6, port, *relay);
    }
    if (verdict.transmits()) {
        ++counters.tx_packets;
        counters.tx_bytes += f.length;
    } else {
        counters.drop(verdict.reason);
    }
    return verdict;
}

Verdict relay_channel_data(Frame& f, std::size_t ip, std::size_t udp, bool ipv6,
                           const PortContext& port, RelayState& relay) noexcept {
    const std::size_t payload = udp + udp_header_size;
    const std::size_t length = load_be16(f.data + udp + 4) - udp_header_size;
    stun::ChannelData message;
    if (stun::parse_channel_data({f.data + payload, length}, message) != stun::ParseError::ok)
        return Verdict::drop(DropReason::relay_bad_channel_data);
    const std::optional<FiveTuple> five_tuple =
        FiveTuple::make(endpoint(f, ip, udp, ipv6, true), endpoint(f, ip, udp, ipv6, false));
    RelayTable& table = relay.shard.table();
    const std::uint32_t slot = five_tuple ? table.find(*five_tuple) : RelayTable::no_slot;
    if (slot == RelayTable::no_slot) return Verdict::drop(DropReason::relay_no_allocation);
    Allocation& allocation = table.at(slot);
    // RFC 8656 §12.6: on an unbound channel, or (§9) without a permission, the data goes
    // nowhere; a channel's peer has the permission its ChannelBind installed while both live.
    const Channel* channel = allocation.channel(message.channel, relay.now_ticks);
    if (channel == nullptr) return Verdict::drop(DropReason::relay_no_channel);
    const stun::Address peer = channel->peer;
    if (allocation.expiry(family_bit(peer)) <= relay.now_ticks)
        return Verdict::drop(DropReason::relay_no_allocation);
    if (!allocation.permits(peer, relay.now_ticks))
        return Verdict::drop(DropReason::relay_no_permission);
    const RelayDatagram datagram{ip,
                                 udp,
                                 ipv6,
                                 payload + stun::channel_data_header_size,
                                 message.data.size(),
                                 checksum_complete(f, port)};
    return relay_to_peer(f, datagram, allocation, peer, port, relay);
}

bool relay_from_peer(Frame& f, std::size_t ip, std::size_t udp, bool ipv6,
                     const PortContext& port, RelayState& relay, Verdict& verdict) noexcept {
    const stun::Address peer = endpoint(f, ip, udp, ipv6, true);
    const stun::Address to = endpoint(f, ip, udp, ipv6, false);
    // One relay address (index 0) in this engine; a datagram to it on a port of this worker.
    const stun::Address relayed = port.relay->relayed_address(0, to.port, family_bit(to));
    if (relayed.family != to.family || std::memcmp(relayed.ip.data(), to.ip.data(),
                                                   to.ip_size()) != 0)
        return false;
    RelayTable& table = relay.shard.table();
    const std::uint32_t slot = table.find_by_relay_port(0, to.port);
    if (slot == RelayTable::no_slot) return false;
    Allocation& allocation = table.at(slot);
    if (allocation.expiry(family_bit(to)) <= relay.now_ticks) return false;
    // RFC 8656 §9: "only addresses are compared", the port ignored.
    if (!allocation.permits(peer, relay.now_ticks)) {
        verdict = Verdict::drop(DropReason::relay_no_permission);
        return true;
    }
    const FiveTuple key = allocation.key();
    RelayHop hop;
    hop.source_mac = port.mac;
    std::memcpy(hop.destination_mac.data(), allocation.client_hop().data(), 6);
    hop.source = key.server();
    hop.destination = key.client();
    hop.dont_fragment = true;
    const std::size_t payload = udp + udp_header_size;
    const std::size_t length = load_be16(f.data + udp + 4) - udp_header_size;
    if (!within_bandwidth(allocation, length, *port.relay, relay)) {
        verdict = Verdict::drop(DropReason::relay_bandwidth);
        return true;
    }
    RelayDatagram datagram{ip, udp, ipv6, payload, length, checksum_complete(f, port)};
    if (const Channel* channel = allocation.channel_to(peer, relay.now_ticks)) {
        // RFC 8656 §12.5: a bound peer's data goes as ChannelData, number and length (over
        // UDP not padded, §12.4).
        std::array<std::byte, stun::channel_data_header_size> header;
        store_be16(header.data(), channel->number);
        store_be16(header.data() + 2, static_cast<std::uint16_t>(length));
        verdict = forward(f, datagram, header, 0, hop, port);
    } else {
        // RFC 8656 §11.3: a Data indication with XOR-PEER-ADDRESS and DATA, padded to 4 bytes.
        // No FINGERPRINT: the client demultiplexes by the STUN header (RFC 7983).
        const stun::TransactionId id = relay.shard.next_indication_id();
        const std::size_t peer_value = peer.family == stun::AddressFamily::ipv6 ? 20 : 8;
        const std::size_t pad = (4 - length % 4) % 4;
        std::array<std::byte, stun::header_size + 4 + 20 + 4> header{};
        const std::size_t header_length = stun::header_size + 4 + peer_value + 4;
        store_be16(header.data(),
                   stun::message_type(stun::Method::data, stun::MessageClass::indication));
        store_be16(header.data() + 2,
                   static_cast<std::uint16_t>(header_length - stun::header_size + length + pad));
        stun::store_be32(header.data() + 4, stun::magic_cookie);
        std::memcpy(header.data() + 8, id.data(), id.size());
        std::byte* a = header.data() + stun::header_size;
        store_be16(a, stun::attr::xor_peer_address);
        store_be16(a + 2, static_cast<std::uint16_t>(peer_value));
        a[5] = peer.family == stun::AddressFamily::ipv6 ? std::byte{2} : std::byte{1};
        store_be16(a + 6, static_cast<std::uint16_t>(peer.port ^ (stun::magic_cookie >> 16)));
        // RFC 8489 §14.2: the address XOR the cookie, and for IPv6 the transaction ID too.
        std::array<std::byte, 16> mask{};
        stun::store_be32(mask.data(), stun::magic_cookie);
        std::memcpy(mask.data() + 4, id.data(), id.size());
        for (std::size_t i = 0; i < peer.ip_size(); ++i) a[8 + i] = peer.ip[i] ^ mask[i];
        std::byte* data = a + 4 + peer_value;
        store_be16(data, stun::attr::data);
        store_be16(data + 2, static_cast<std::uint16_t>(length));
        verdict = forward(f, datagram, {header.data(), header_length}, pad, hop, port);
    }
    if (verdict.transmits()) {
        allocation.count_to_client(length);
        RelayCounters& counters = relay.shard.counters();
        ++counters.to_client_packets;
        counters.to_client_bytes += length;
    }
    return true;
}

}  // namespace engine
