// The relay's express lane (handler.h, relay_express_ipv4()): the two datagrams a relayed call
// is made of, ChannelData from a client to its peer (RFC 8656 §12.6) and a bound peer's
// datagram to its client (§12.5), over IPv4 without options, checked and rewritten straight
// through with every offset constant. It decides nothing the general path
// (frame_handler.cc → relay_path.cc → relay_forward.cc) would decide otherwise: it declines,
// having changed nothing, whatever it does not take all the way, and the general path then
// relays it or names the reason of its drop. tests/engine/relay_express_test.cc holds it to the
// general path's bytes, verdicts and counters.
#include <bit>
#include <cstring>
#include <optional>

#include "engine/checksum.h"
#include "engine/handler.h"
#include "stun/bytes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

constexpr std::size_t ip = ethernet_header_size;
constexpr std::size_t udp = ip + ipv4_header_size;
constexpr std::size_t payload = udp + udp_header_size;
constexpr std::size_t headers = payload;  // Ethernet, IPv4 without options, UDP: 42 bytes

// A big-endian 16-bit value as checksum_native_sum() adds it: as the CPU loads its bytes.
constexpr std::uint64_t native16(std::uint16_t value) noexcept {
    return std::endian::native == std::endian::little ? __builtin_bswap16(value) : value;
}

// The new headers' checksums are summed from the values written, in host order, never from
// the bytes just stored: a load that spans several smaller stores waits for them (no store
// forwarding), which cost more than the sums.

// The host-order sum of the IPv4 address at `p` (4 bytes, network order).
std::uint32_t address_sum(const std::byte* p) noexcept {
    const std::uint32_t a = stun::load_be32(p);
    return (a >> 16) + (a & 0xFFFF);
}

// The frame's Ethernet and IPv4 headers as the general path's rewrite_for_relay() writes them
// at `start`, for a UDP datagram of `udp_length` bytes: DSCP and ECN and the identification
// kept, DF set (the engine never fragments), the TTL one less (RFC 8656 §14). Returns the
// host-order sum of the two addresses, for the UDP pseudo-header.
// Inline: called with nine arguments, it cost a call frame as much as its work.
[[gnu::always_inline]] inline std::uint32_t write_ipv4_headers(
    std::byte* start, const std::byte* destination_mac, const MacAddress& source_mac,
    std::uint8_t tos, std::uint16_t identification, std::uint8_t ttl,
    const std::byte* source_ip, const std::byte* destination_ip,
    std::size_t udp_length) noexcept {
    const std::uint32_t addresses = address_sum(source_ip) + address_sum(destination_ip);
    const auto total = static_cast<std::uint16_t>(ipv4_header_size + udp_length);
    const auto ttl_protocol = static_cast<std::uint16_t>((ttl - 1) << 8 | ip_protocol::udp);
    const std::uint32_t sum =
        (0x4500u | tos) + total + identification + 0x4000u + ttl_protocol + addresses;
    std::memcpy(start, destination_mac, 6);
    std::memcpy(start + 6, source_mac.data(), 6);
    store_be16(start + 12, ethertype::ipv4);
    std::byte* h = start + ip;
    store_be16(h, static_cast<std::uint16_t>(0x4500u | tos));
    store_be16(h + 2, total);
    store_be16(h + 4, identification);
    store_be16(h + 6, 0x4000);
    store_be16(h + 8, ttl_protocol);
    store_be16(h + 10, checksum_finish(sum));
    std::memcpy(h + 12, source_ip, 4);
    std::memcpy(h + 16, destination_ip, 4);
    return addresses;
}

// The UDP checksum from the host-order sum of everything it covers: RFC 768 sends a computed
// zero as all ones.
void store_udp_checksum(std::byte* udp_header, std::uint64_t sum) noexcept {
    const std::uint16_t checksum = checksum_finish(checksum_fold(sum));
    store_be16(udp_header + 6, checksum == 0 ? 0xFFFF : checksum);
}

// The bandwidth cap (RelayLimits::bandwidth) charged `bytes`: the last check, the first
// change, so that a decline before it leaves the allocation as it was.
bool within_bandwidth(Allocation& allocation, std::size_t bytes, const RelayContext& context,
                      const RelayState& relay) noexcept {
    const std::optional<RateLimit>& limit = context.limits().bandwidth;
    return !limit || allocation.bandwidth().take(*limit, bytes, relay.now_ticks);
}

// The received datagram's UDP checksum, and what the relayed one's is made from.
struct ReceivedSum {
    std::uint16_t checksum = 0;  ///< as it lies in the header, loaded in the CPU's order
    bool update = false;         ///< a whole checksum, to update (RFC 1624)
    std::uint64_t headers = 0;   ///< native sum of its pseudo-header and UDP header

    // The host-order sum of the `length` bytes at `kept`, the rest of the payload summing to
    // `dropped` (native): taken from the received checksum (~checksum is the sum of everything
    // it covers, RFC 1624), without reading the kept bytes, where it is whole; else summed.
    [[nodiscard]] std::uint32_t kept_sum(std::uint64_t dropped, const std::byte* kept,
                                         std::size_t length) const noexcept {
        if (!update) return checksum_add(0, {kept, length});
        std::uint32_t sum = checksum_fold(std::uint64_t{static_cast<std::uint16_t>(~checksum)} +
                                          static_cast<std::uint16_t>(
                                              ~checksum_fold(headers + dropped)));
        if constexpr (std::endian::native == std::endian::little)
            sum = __builtin_bswap16(static_cast<std::uint16_t>(sum));
        return sum;
    }
};

// ChannelData from a client (RFC 8656 §12.6): to its channel's peer, from the relayed
// address, the 4-byte ChannelData header dropped (the new headers end where the data starts).
bool channel_to_peer(Frame& f, std::size_t udp_length, const ReceivedSum& received,
                     const PortContext& port, RelayState& relay) noexcept {
    const std::byte* h = f.data + ip;
    const std::byte* message = f.data + payload;
    const std::uint16_t number = load_be16(message);
    const std::size_t length = load_be16(message + 2);
    // Unpadded, as WebRTC and coturn send it over UDP; padded ChannelData takes the general
    // path. The first byte (64-127) made the number one RFC 8656 or RFC 5766 gives.
    if (udp_header_size + stun::channel_data_header_size + length != udp_length) return false;
    const std::uint32_t data_sum = received.kept_sum(checksum_native_sum<4>(message),
                                                     message + stun::channel_data_header_size,
                                                     length);

    RelayTable& table = relay.shard.table();
    const std::uint32_t slot = table.find(FiveTuple::ipv4(
        h + 12, load_be16(f.data + udp), h + 16, load_be16(f.data + udp + 2)));
    if (slot == RelayTable::no_slot) return false;
    Allocation& allocation = table.at(slot);
    // RFC 8656 §12.6: a live channel, its peer's IP with a live permission (§9).
    const detail::PeerEntry* peer = allocation.relayable_channel(number, relay.now_ticks);
    if (peer == nullptr || (peer->link & detail::PeerEntry::ipv6_bit) != 0) return false;
    const RelayContext& context = *port.relay;
    if (allocation.expiry(relay_ipv4) <= relay.now_ticks ||
        context.is_relayed_ipv4(peer->ip.data()))
        return false;
    const MacAddress* next_hop = port.neighbours.next_hop_mac_ipv4(peer->ip.data());
    const auto ttl = std::to_integer<std::uint8_t>(h[8]);
    if (next_hop == nullptr || ttl <= 1 || !within_bandwidth(allocation, length, context, relay))
        return false;

    // Decided: the new frame starts 4 bytes in, its headers over the old ones.
    const auto tos = std::to_integer<std::uint8_t>(h[1]);
    const std::uint16_t identification = load_be16(h + 4);
    std::byte* start = f.data + stun::channel_data_header_size;
    const std::size_t new_udp_length = udp_header_size + length;
    const std::uint32_t addresses =
        write_ipv4_headers(start, next_hop->data(), port.mac, tos, identification, ttl,
                           context.address(allocation.relay_address()).ipv4.ip.data(),
                           peer->ip.data(), new_udp_length);
    std::byte* u = start + udp;
    const std::uint16_t relay_port = allocation.relay_port();
    store_be16(u, relay_port);
    store_be16(u + 2, peer->port);
    store_be16(u + 4, static_cast<std::uint16_t>(new_udp_length));
    store_udp_checksum(u, std::uint64_t{data_sum} + addresses + ip_protocol::udp +
                              2 * new_udp_length + relay_port + peer->port);
    f.data = start;
    f.headroom = static_cast<std::uint16_t>(f.headroom + stun::channel_data_header_size);
    f.capacity = static_cast<std::uint16_t>(f.capacity - stun::channel_data_header_size);
    f.length = static_cast<std::uint16_t>(headers + length);

    allocation.count_to_peer(length);
    RelayCounters& counters = relay.shard.counters();
    ++counters.to_peer_packets;
    counters.to_peer_bytes += length;
    return true;
}

// A datagram from a peer to a relay port (RFC 8656 §12.5): to the client as ChannelData on
// the peer's channel, the 4-byte header put in front of the data (the new headers start 4
// bytes before the old). A peer without a channel gets a Data indication: the general path's.
bool peer_to_channel(Frame& f, std::size_t udp_length, const ReceivedSum& received,
                     const PortContext& port, RelayState& relay) noexcept {
    const std::byte* h = f.data + ip;
    const RelayContext& context = *port.relay;
    // One relay address (index 0) in this engine (relay_path.cc, relay_from_peer()).
    const RelayAddress& relayed = context.address(0);
    const std::uint16_t relay_port = load_be16(f.data + udp + 2);
    if ((relayed.families & relay_ipv4) == 0 ||
        std::memcmp(relayed.ipv4.ip.data(), h + 16, 4) != 0)
        return false;
    const std::size_t length = udp_length - udp_header_size;
    const std::uint32_t data_sum = received.kept_sum(0, f.data + payload, length);

    RelayTable& table = relay.shard.table();
    const std::uint32_t slot = table.find_by_relay_port(0, relay_port);
    if (slot == RelayTable::no_slot) return false;
    Allocation& allocation = table.at(slot);
    if (allocation.expiry(relay_ipv4) <= relay.now_ticks) return false;
    // RFC 8656 §12.5: a live channel to the peer, its IP with a live permission (§9); a
    // permitted peer without one gets a Data indication, the general path's.
    const detail::PeerEntry* channel =
        allocation.relayable_channel_to_ipv4(h + 12, load_be16(f.data + udp), relay.now_ticks);
    // The 5-tuple's words (FiveTuple): the client's and the server's IP, then the ports.
    const std::uint64_t client_ip = allocation.key_word(0);
    const std::uint64_t server_ip = allocation.key_word(2);
    const std::uint64_t ports = allocation.key_word(4);
    const auto ttl = std::to_integer<std::uint8_t>(h[8]);
    const std::size_t new_udp_length = udp_header_size + stun::channel_data_header_size + length;
    if (channel == nullptr ||
        static_cast<stun::AddressFamily>(ports >> 32 & 0xFF) != stun::AddressFamily::ipv4 ||
        ttl <= 1 || ipv4_header_size + new_udp_length > port.mtu ||
        f.headroom < stun::channel_data_header_size ||
        !within_bandwidth(allocation, length, context, relay))
        return false;

    // Decided: the new frame starts 4 bytes before the old one.
    const auto tos = std::to_integer<std::uint8_t>(h[1]);
    const std::uint16_t identification = load_be16(h + 4);
    std::byte* start = f.data - stun::channel_data_header_size;
    const std::uint32_t addresses = write_ipv4_headers(
        start, allocation.client_hop().data(), port.mac, tos, identification, ttl,
        reinterpret_cast<const std::byte*>(&server_ip),
        reinterpret_cast<const std::byte*>(&client_ip), new_udp_length);
    std::byte* u = start + udp;
    const auto server_port = static_cast<std::uint16_t>(ports >> 16);
    const auto client_port = static_cast<std::uint16_t>(ports);
    const std::uint16_t number = channel->number;
    store_be16(u, server_port);
    store_be16(u + 2, client_port);
    store_be16(u + 4, static_cast<std::uint16_t>(new_udp_length));
    store_be16(u + 8, number);
    store_be16(u + 10, static_cast<std::uint16_t>(length));
    store_udp_checksum(u, std::uint64_t{data_sum} + addresses + ip_protocol::udp +
                              2 * new_udp_length + server_port + client_port + number + length);
    f.data = start;
    f.headroom = static_cast<std::uint16_t>(f.headroom - stun::channel_data_header_size);
    f.capacity = static_cast<std::uint16_t>(f.capacity + stun::channel_data_header_size);
    f.length = static_cast<std::uint16_t>(headers + stun::channel_data_header_size + length);

    allocation.count_to_client(length);
    RelayCounters& counters = relay.shard.counters();
    ++counters.to_client_packets;
    counters.to_client_bytes += length;
    return true;
}

}  // namespace

bool relay_express_ipv4(Frame& f, const PortContext& port, RelayState& relay) noexcept {
    if (port.relay == nullptr || f.length < headers) return false;
    const std::byte* h = f.data + ip;
    const std::byte* u = f.data + udp;
    // Ethernet to us; IPv4 with a 20-byte header (RFC 791: version 4, IHL 5), carrying UDP,
    // not a fragment; the total length UDP's plus the header, within the frame (Ethernet may
    // pad); from a port (RFC 768: 0 is none), between an address of ours and a valid source.
    if (!port.is_own_mac(f.data) || load_be16(f.data + 12) != ethertype::ipv4 ||
        h[0] != std::byte{0x45} || h[9] != std::byte{ip_protocol::udp} ||
        (load_be16(h + 6) & 0x3FFF) != 0)
        return false;
    const std::size_t udp_length = load_be16(u + 4);
    if (udp_length <= udp_header_size || load_be16(h + 2) != ipv4_header_size + udp_length ||
        udp + udp_length > f.length || load_be16(u) == 0 || !port.ipv4_addresses_ok(h))
        return false;
    // The IPv4 header checksum verifies (RFC 1071: the folded sum is all ones). The UDP one
    // is forwarded, not verified, as the general path forwards it (frame_handler.cc).
    const std::uint64_t addresses = checksum_native_sum<8>(h + 12);
    if (checksum_fold(checksum_native_sum<12>(h) + addresses) != 0xFFFF ||
        f.l4_checksum == L4ChecksumHint::bad)
        return false;
    ReceivedSum received;
    std::memcpy(&received.checksum, u + 6, 2);
    // A whole checksum (the port hands them over, or checked it) is updated; a partial one
    // (rx_checksum = trust), or none (zero, RFC 768), is summed anew.
    received.update = received.checksum != 0 && (f.l4_checksum == L4ChecksumHint::good ||
                                                  port.rx_checksum == RxChecksum::verify);
    // The pseudo-header and the UDP header but its checksum (RFC 768).
    received.headers = addresses + native16(ip_protocol::udp) +
                       2 * native16(static_cast<std::uint16_t>(udp_length)) +
                       checksum_native_sum<4>(u);
    const std::uint16_t destination_port = load_be16(u + 2);
    const bool to_stun_port =
        destination_port == port.stun_port ||
        (port.stun_alternate_port != 0 && destination_port == port.stun_alternate_port);
    if (to_stun_port) {
        // ChannelData (first byte 64-127, frame_handler.cc's demultiplexing) with its header.
        return udp_length >= udp_header_size + stun::channel_data_header_size &&
               (std::to_integer<unsigned>(f.data[payload]) & 0xC0) == 0x40 &&
               channel_to_peer(f, udp_length, received, port, relay);
    }
    return peer_to_channel(f, udp_length, received, port, relay);
}

}  // namespace engine
