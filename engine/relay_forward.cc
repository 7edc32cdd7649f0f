#include "engine/relay_forward.h"

#include <cstring>

#include "engine/checksum.h"
#include "stun/bytes.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

// The ones' complement sum of `bytes` lying `parity` (0 or 1) bytes past a 16-bit boundary of
// the datagram: checksum_add() takes its first byte as a word's high half, so a span that
// starts at an odd offset adds byte-swapped (RFC 1071 §2(B)).
std::uint32_t sum_at(std::span<const std::byte> bytes, std::size_t parity) noexcept {
    const std::uint32_t sum = checksum_add(0, bytes);
    return parity == 0 ? sum : ((sum & 0xFF) << 8) | (sum >> 8);
}

// The pseudo-header (RFC 768, RFC 8200 §8.1) and UDP header of a datagram, checksum field
// left out: the addresses, the protocol, the UDP length twice and the ports.
std::uint32_t header_sum(const std::byte* addresses, std::size_t address_bytes,
                         std::uint16_t source_port, std::uint16_t destination_port,
                         std::uint16_t udp_length) noexcept {
    return checksum_fold(std::uint64_t{checksum_add(0, {addresses, address_bytes})} +
                         ip_protocol::udp + 2u * udp_length + source_port + destination_port);
}

}  // namespace

RelayRewriteResult rewrite_for_relay(Frame& f, const RelayDatagram& received,
                                     std::span<const std::byte> prefix, std::size_t pad,
                                     const RelayHop& hop, std::uint16_t mtu) noexcept {
    // What the new datagram takes from the received one, read before anything is written
    // (the new headers may cover the old).
    const std::byte* h = f.data + received.ip;
    const std::byte* u = f.data + received.udp;
    const std::size_t old_address_bytes = received.ipv6 ? 32 : 8;
    const std::byte* old_addresses = h + (received.ipv6 ? 8 : 12);
    const unsigned ttl = std::to_integer<unsigned>(h[received.ipv6 ? 7 : 8]);
    // DSCP and ECN: IPv4's TOS byte; IPv6's traffic class straddles bytes 0 and 1.
    const auto traffic_class = static_cast<std::uint8_t>(
        received.ipv6 ? (load_be16(h) >> 4) & 0xFF : std::to_integer<unsigned>(h[1]));
    const std::uint16_t identification = received.ipv6 ? 0 : load_be16(h + 4);
    const std::uint16_t old_udp_length = load_be16(u + 4);
    const std::uint16_t old_checksum = load_be16(u + 6);
    // RFC 8656 §14: the outgoing TTL is one less than the incoming; at 1 nothing is left.
    if (ttl <= 1) return RelayRewriteResult::ttl_expired;

    const bool ipv6 = hop.destination.family == stun::AddressFamily::ipv6;
    const std::size_t ip_header = ipv6 ? ipv6_header_size : ipv4_header_size;
    const std::size_t headers = ethernet_header_size + ip_header + udp_header_size;
    const std::size_t udp_length = udp_header_size + prefix.size() + received.keep_length + pad;
    if (ip_header + udp_length > mtu || udp_length > 0xFFFF) return RelayRewriteResult::too_big;
    // The new frame: headers and prefix end where the kept payload starts; padding follows it.
    std::byte* keep = f.data + received.keep;
    const std::ptrdiff_t shift =
        (keep - static_cast<std::ptrdiff_t>(prefix.size() + headers)) - f.data;
    if (shift < 0 && static_cast<std::size_t>(-shift) > f.headroom)
        return RelayRewriteResult::no_room;
    if (received.keep + received.keep_length + pad > f.capacity) return RelayRewriteResult::no_room;

    // The UDP checksum, updated (RFC 1624): the received datagram's sum, less its pseudo-header,
    // UDP header and the payload bytes not kept, plus the new ones. ~checksum is the received
    // sum of everything else; a received zero (IPv4: none sent) leaves only a full sum.
    const std::size_t payload = received.udp + udp_header_size;
    const std::size_t removed_front = received.keep - payload;
    const std::size_t back = received.keep + received.keep_length;
    const std::size_t removed_back = received.udp + old_udp_length - back;
    std::uint64_t kept_sum = 0;
    const bool update = received.checksum_complete && old_checksum != 0;
    if (update) {
        std::uint64_t sum = static_cast<std::uint16_t>(~old_checksum);
        sum += static_cast<std::uint16_t>(~header_sum(old_addresses, old_address_bytes,
                                                      load_be16(u), load_be16(u + 2),
                                                      old_udp_length));
        sum += static_cast<std::uint16_t>(~sum_at({f.data + payload, removed_front}, 0));
        sum += static_cast<std::uint16_t>(~sum_at({f.data + back, removed_back},
                                                  (back - received.udp) & 1));
        kept_sum = checksum_fold(sum);
    } else {
        kept_sum = checksum_add(0, {keep, received.keep_length});
    }
    // The kept bytes, summed where they were (after removed_front bytes of payload, or from a
    // word boundary), add byte-swapped where they go if that moves them by an odd count.
    const std::size_t was = update ? removed_front : 0;
    if (((was ^ prefix.size()) & 1) != 0) kept_sum = ((kept_sum & 0xFF) << 8) | (kept_sum >> 8);

    // The new frame, front to back.
    std::byte* start = f.data + shift;
    std::memcpy(start, hop.destination_mac.data(), 6);
    std::memcpy(start + 6, hop.source_mac.data(), 6);
    store_be16(start + 12, ipv6 ? ethertype::ipv6 : ethertype::ipv4);
    std::byte* ip = start + ethernet_header_size;
    const std::size_t address_size = ipv6 ? 16 : 4;
    std::byte* addresses = ip + (ipv6 ? 8 : 12);
    if (ipv6) {
        stun::store_be32(ip, 0x60000000u | std::uint32_t{traffic_class} << 20);
        store_be16(ip + 4, static_cast<std::uint16_t>(udp_length));
        ip[6] = std::byte{ip_protocol::udp};
        ip[7] = static_cast<std::byte>(ttl - 1);
    } else {
        ip[0] = std::byte{0x45};
        ip[1] = static_cast<std::byte>(traffic_class);
        store_be16(ip + 2, static_cast<std::uint16_t>(ipv4_header_size + udp_length));
        store_be16(ip + 4, identification);
        store_be16(ip + 6, hop.dont_fragment ? 0x4000 : 0);
        ip[8] = static_cast<std::byte>(ttl - 1);
        ip[9] = std::byte{ip_protocol::udp};
        store_be16(ip + 10, 0);
    }
    std::memcpy(addresses, hop.source.ip.data(), address_size);
    std::memcpy(addresses + address_size, hop.destination.ip.data(), address_size);
    if (!ipv6) store_be16(ip + 10, ipv4_header_checksum({ip, ipv4_header_size}));
    std::byte* udp = ip + ip_header;
    store_be16(udp, hop.source.port);
    store_be16(udp + 2, hop.destination.port);
    store_be16(udp + 4, static_cast<std::uint16_t>(udp_length));
    // An empty prefix may have no data pointer at all, which memcpy may not be given.
    if (!prefix.empty()) std::memcpy(udp + udp_header_size, prefix.data(), prefix.size());
    std::memset(keep + received.keep_length, 0, pad);
    const std::uint64_t sum =
        kept_sum + checksum_add(0, prefix) +
        header_sum(addresses, 2 * address_size, hop.source.port, hop.destination.port,
                   static_cast<std::uint16_t>(udp_length));
    const std::uint16_t checksum = checksum_finish(checksum_fold(sum));
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    store_be16(udp + 6, checksum == 0 ? 0xFFFF : checksum);

    f.data = start;
    f.headroom = static_cast<std::uint16_t>(static_cast<std::ptrdiff_t>(f.headroom) + shift);
    f.capacity = static_cast<std::uint16_t>(static_cast<std::ptrdiff_t>(f.capacity) - shift);
    f.length = static_cast<std::uint16_t>(headers + udp_length - udp_header_size);
    return RelayRewriteResult::ok;
}

}  // namespace engine
