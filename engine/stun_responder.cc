// The STUN role: Binding requests answered in the request's own buffer (RFC 8489 §6.3, §7.3),
// with NAT behaviour discovery (RFC 5780 §6.1, §7). Stateless; never amplifies.
#include <algorithm>
#include <array>
#include <bit>
#include <cstdio>
#include <cstring>
#include <optional>

#include "engine/checksum.h"
#include "engine/handler.h"
#include "engine/relay_forward.h"
#include "engine/relay_role.h"
#include "stun/attributes.h"
#include "stun/integrity.h"
#include "stun/bytes.h"
#include "stun/crc32_terms.h"
#include "stun/crypto.h"
#include "stun/message.h"
#include "stun/writer.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

// The attributes a STUN server understands (RFC 8489, RFC 5780, and ICE's, which a Binding
// request may carry); TURN's are not understood here and get a 420 (RFC 8489 §6.3.1.1).
bool stun_role_knows(std::uint16_t type) noexcept {
    switch (type) {
    case stun::attr::mapped_address:
    case stun::attr::username:
    case stun::attr::message_integrity:
    case stun::attr::error_code:
    case stun::attr::unknown_attributes:
    case stun::attr::realm:
    case stun::attr::nonce:
    case stun::attr::message_integrity_sha256:
    case stun::attr::password_algorithm:
    case stun::attr::userhash:
    case stun::attr::xor_mapped_address:
    case stun::attr::change_request:
    case stun::attr::padding:
    case stun::attr::response_port:
    case stun::attr::priority:
    case stun::attr::use_candidate:
        return true;
    default:
        return !stun::is_comprehension_required(type);
    }
}

// Where the response goes and where it comes from, decided before the buffer is overwritten.
struct Route {
    stun::Address client;    // the request's source: what XOR-MAPPED-ADDRESS reports
    stun::Address origin;    // the response's source (RESPONSE-ORIGIN)
    stun::Address other;     // OTHER-ADDRESS: the alternate IP and port
    std::uint16_t destination_port = 0;
    bool rfc5780 = false;
};

stun::Address address_from(std::span<const std::byte> ip, std::uint16_t port) noexcept {
    stun::Address a;
    a.family = ip.size() == 4 ? stun::AddressFamily::ipv4 : stun::AddressFamily::ipv6;
    a.port = port;
    std::memcpy(a.ip.data(), ip.data(), ip.size());
    return a;
}

// Copies the response's two IP addresses into the header: from `origin_ip` to `client_ip`
// (either may point into the header itself, hence the staging copy). Fixed-size copies.
void store_ip_pair(std::byte* source, const std::byte* origin_ip, const std::byte* client_ip,
                   bool ipv6) noexcept {
    std::byte pair[32];
    if (ipv6) {
        std::memcpy(pair, origin_ip, 16);
        std::memcpy(pair + 16, client_ip, 16);
        std::memcpy(source, pair, 32);
    } else {
        std::memcpy(pair, origin_ip, 4);
        std::memcpy(pair + 4, client_ip, 4);
        std::memcpy(source, pair, 8);
    }
}

// Rewrites Ethernet, IP and UDP headers around a payload of `payload_length` already written
// after the UDP header: back to the client (at the route's destination port), from the
// route's origin. The IPv4 header checksum is updated (RFC 1624) from the one handle_ipv4
// verified, over the words that change; the UDP checksum is computed whole, since the payload
// is new.
void finish_reply(Frame& f, std::size_t ip, std::size_t udp, bool ipv6, const Route& route,
                  std::size_t payload_length, const PortContext& port) noexcept {
    const std::byte* origin_ip = route.origin.ip.data();
    const std::byte* client_ip = route.client.ip.data();
    std::memcpy(f.data, f.data + 6, 6);
    std::memcpy(f.data + 6, port.mac.data(), 6);
    std::byte* h = f.data + ip;
    const std::size_t ip_size = ipv6 ? 16 : 4;
    std::byte* source = h + (ipv6 ? 8 : 12);
    const auto udp_length = static_cast<std::uint16_t>(udp_header_size + payload_length);
    // STUN over UDP is not ECN-capable (RFC 3168 §5): the request's ECN bits are not echoed.
    if (ipv6) {
        store_ip_pair(source, origin_ip, client_ip, true);
        store_be16(h + 4, udp_length);
        h[1] &= std::byte{0xCF};  // traffic class bits 6-7 straddle bytes 0 and 1
        h[7] = std::byte{64};
    } else {
        // RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m') for each changed word m, whose result is the
        // full recompute's (both are the nonzero representative of the same sum, as TTL and
        // protocol make the new header's sum nonzero). Needs the arrival checksum to verify,
        // which handle_ipv4 checked.
        const std::size_t header_length = (std::to_integer<std::size_t>(h[0]) & 0xF) * 4;
        // In 64 bits from the first term: two 32-bit words may carry out of 32 bits.
        std::uint64_t sum = static_cast<std::uint16_t>(~load_be16(h + 10));
        sum += std::uint64_t{static_cast<std::uint32_t>(~stun::load_be32(h + 12))} +
               std::uint64_t{static_cast<std::uint32_t>(~stun::load_be32(h + 16))} +
               stun::load_be32(origin_ip) + stun::load_be32(client_ip);
        store_ip_pair(source, origin_ip, client_ip, false);
        auto replace16 = [&](std::byte* field, std::uint16_t value) {
            sum += static_cast<std::uint16_t>(~load_be16(field));
            sum += value;
            store_be16(field, value);
        };
        replace16(h, load_be16(h) & 0xFFFC);  // ECN: the low bits of byte 1
        replace16(h + 2, static_cast<std::uint16_t>(header_length + udp_length));
        replace16(h + 6, 0x4000);  // DF, no fragment
        replace16(h + 8, static_cast<std::uint16_t>(
                             0x4000 | std::to_integer<std::uint16_t>(h[9])));  // TTL 64
        store_be16(h + 10, checksum_finish(checksum_fold(sum)));
    }
    std::byte* u = f.data + udp;
    store_be16(u, route.origin.port);
    store_be16(u + 2, route.destination_port);
    store_be16(u + 4, udp_length);
    store_be16(u + 6, 0);
    const std::uint16_t checksum =
        transport_checksum({source, 2 * ip_size}, ip_protocol::udp, {u, udp_length});
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    store_be16(u + 6, checksum == 0 ? 0xFFFF : checksum);
    f.length = static_cast<std::uint16_t>(udp + udp_length);
}

// The success response's attributes before any PADDING and FINGERPRINT: XOR-MAPPED-ADDRESS,
// MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS where RFC 5780 applies, and SOFTWARE. The
// general path and the fast path's templates both write them here.
void add_binding_attributes(stun::MessageWriter& w, const Route& route, const PortContext& port) {
    w.add_xor_address(stun::attr::xor_mapped_address, route.client);
    // RFC 8489 §12: MAPPED-ADDRESS too, for clients written to RFC 3489.
    w.add_address(stun::attr::mapped_address, route.client);
    // RFC 5780 §6.1: "The server MUST add a RESPONSE-ORIGIN attribute"; OTHER-ADDRESS only
    // where there is an alternate address.
    w.add_address(stun::attr::response_origin, route.origin);
    if (route.rfc5780) w.add_address(stun::attr::other_address, route.other);
    if (!port.software.empty()) w.add_text(stun::attr::software, port.software);
}

// FINGERPRINTs of the fast path (RFC 8489 §14.7) as sums of fields (stun/crc32_terms.h) where
// the CPU multiplies carry-less: a few multiplies in registers instead of a CRC over bytes
// that were just stored. Elsewhere, stun::crc32 over the bytes.
const bool fingerprint_by_terms = stun::crc32_terms_supported();

// The longest SOFTWARE the fast path writes (RFC 8489 §14.14); read once, not per packet.
const std::size_t software_send_limit = stun::text_send_limit(stun::attr::software);

#if STUN_CRC32_TERMS

std::uint64_t load_le64(const std::byte* p) noexcept {
    static_assert(std::endian::native == std::endian::little);
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
std::uint32_t load_le32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
// A big-endian 16-bit field as it lies in the message, loaded little-endian.
std::uint64_t le_field16(std::uint16_t value) noexcept { return __builtin_bswap16(value); }

// The raw CRC (crc32_terms.h) of a message's constant layout: its first 4 bytes XOR 0xFF (the
// CRC's initial value), zeros where the fields go. For the request: a Binding request of
// length 8 (FINGERPRINT), the transaction ID zero.
constexpr std::uint32_t request_layout_raw() noexcept {
    std::array<std::byte, stun::header_size> m{};
    const std::uint32_t first = 0x00010008u ^ 0xFFFFFFFFu;
    const std::uint32_t words[2] = {first, stun::magic_cookie};
    for (std::size_t i = 0; i < 8; ++i)
        m[i] = static_cast<std::byte>(words[i / 4] >> (24 - 8 * (i % 4)));
    return stun::crc32_raw(m);
}

// CRC-32 of the 20-byte header of the fast path's Binding request: the layout and the
// transaction ID.
[[gnu::always_inline]] STUN_CRC32_TARGET inline std::uint32_t request_crc_by_terms(
    const std::byte* m) noexcept {
    static constexpr std::uint32_t layout = request_layout_raw();
    stun::Crc32Terms t;
    t.add(load_le64(m + 8), 8, 4);
    t.add(load_le32(m + 16), 4, 0);
    return layout ^ t.raw() ^ 0xFFFFFFFFu;
}

// The response's FINGERPRINT CRC from its template's layout and the fields the client fills
// in: the transaction ID (in the header, and for IPv6 in XOR-MAPPED-ADDRESS's address too,
// RFC 8489 §14.2) and the client's port and address, once in XOR-MAPPED-ADDRESS (whose XOR
// with the cookie is in the layout) and once in MAPPED-ADDRESS: each field one multiply.
template <bool ipv6>
[[gnu::always_inline]] STUN_CRC32_TARGET inline std::uint32_t response_crc_by_terms(
    const BindingTemplate& t, const std::byte* txid, std::uint16_t client_port,
    const std::byte* client_ip) noexcept {
    // Offsets in the message: XOR-MAPPED-ADDRESS at 20, its port at +6 and address at +8;
    // MAPPED-ADDRESS an attribute later. A field ending at offset e lies covered - e from the
    // end.
    constexpr std::size_t a = stun::attribute_header_size + 4 + (ipv6 ? 16 : 4);
    constexpr std::size_t x = stun::header_size;
    const std::size_t covered = t.crc_covered;
    stun::Crc32Terms c;
    c.add_raw(t.crc_layout, 0);
    if constexpr (ipv6) {
        c.add_twice(load_le32(txid), 4, covered - 12, covered - (x + 8 + 8));
        c.add_twice(load_le64(txid + 4), 8, covered - 20, covered - (x + 8 + 16));
        c.add_twice(le_field16(client_port), 2, covered - (x + 8), covered - (x + a + 8));
        c.add_twice(load_le64(client_ip), 8, covered - (x + 16), covered - (x + a + 16));
        c.add_twice(load_le64(client_ip + 8), 8, covered - (x + 24), covered - (x + a + 24));
    } else {
        c.add(load_le64(txid), 8, covered - 16);
        c.add(load_le32(txid + 8), 4, covered - 20);
        c.add_twice(le_field16(client_port) | std::uint64_t{load_le32(client_ip)} << 16, 6,
                    covered - (x + 12), covered - (x + a + 12));
    }
    return c.raw() ^ 0xFFFFFFFFu;
}

#endif

// Copies a response template of `length` bytes (at least binding_template_minimum) in fixed
// moves: the first bytes unrolled, the rest in blocks, the last block overlapping. A call to
// memcpy for these sizes made the pipeline's rate bimodal from one run to the next (15 or 22
// Mpps; docs/benchmarks.md).
constexpr std::size_t binding_template_minimum = ethernet_header_size + ipv4_header_size +
                                                 udp_header_size + stun::header_size + 3 * 12;
void copy_template(std::byte* to, const std::byte* from, std::size_t length) noexcept {
    constexpr std::size_t head = 96;
    static_assert(binding_template_minimum >= head);
    std::memcpy(to, from, head);
    std::size_t at = head;
    for (; at + 32 < length; at += 32) std::memcpy(to + at, from + at, 32);
    std::memcpy(to + length - 32, from + length - 32, 32);
}

// The fast path (its cost: docs/benchmarks.md): the request nearly every STUN client and ICE
// agent sends a STUN server, a Binding request with no attribute at all or with FINGERPRINT
// alone. Its layout is fixed, so it is checked in place without a parse, and the response is
// the port's template for it (prepare_binding_templates: the general path's own bytes for a
// client of zeros) copied over the request, with the client filled in and the checksums and
// FINGERPRINT completed from the template's sums: no attribute is written one by one.
// Returns false, having written nothing, for anything else: another type, any other
// attribute, a FINGERPRINT that does not verify, IPv4 options, a context never prepared, a
// response that would not fit the buffer. The general path then decides, with every check
// of its own. One instance per family, so that every size in it is a constant.
// Inline into its callers (with their constant offsets, the express lane's checks make some
// of its own redundant), and compiled for PCLMULQDQ so that the CRC helpers inline too: only
// their calls, behind fingerprint_by_terms, use it.
// `ip_index` is the index of the address the request came to (0 or 1; OwnedAddresses).
template <bool ipv6>
[[gnu::always_inline]] STUN_CRC32_TARGET inline bool respond_plain_binding(
    Frame& f, std::size_t ip, std::size_t udp, int ip_index, const PortContext& port,
    CoreCounters& counters) noexcept {
    constexpr std::size_t ip_size = ipv6 ? 16 : 4;
    constexpr std::size_t ip_header = ipv6 ? ipv6_header_size : ipv4_header_size;
    if (ip != ethernet_header_size || udp != ip + ip_header) return false;
    const std::size_t request_length = load_be16(f.data + udp + 4) - udp_header_size;
    const std::byte* m = f.data + udp + udp_header_size;
    // RFC 8489 §6.3: the top two bits zero and the magic cookie; §5: the length field is the
    // datagram's, here 0 or 8 (FINGERPRINT). Type 0x0001 is a Binding request.
    constexpr std::uint16_t binding_request =
        stun::message_type(stun::Method::binding, stun::MessageClass::request);
    if (request_length != stun::header_size && request_length != stun::header_size + 8)
        return false;
    if (load_be16(m) != binding_request || stun::load_be32(m + 4) != stun::magic_cookie ||
        load_be16(m + 2) != request_length - stun::header_size)
        return false;
    const bool fingerprint = request_length != stun::header_size;
    if (fingerprint) {
        // RFC 8489 §14.7: FINGERPRINT is 4 bytes, the CRC-32 of the message before it XOR
        // 0x5354554E (one CRC over the 20-byte header).
        if (load_be16(m + 20) != stun::attr::fingerprint || load_be16(m + 22) != 4)
            return false;
#if STUN_CRC32_TERMS
        const std::uint32_t crc =
            fingerprint_by_terms
                ? request_crc_by_terms(m)
                : stun::crc32({std::span<const std::byte>(m, stun::header_size)});
#else
        const std::uint32_t crc = stun::crc32({std::span<const std::byte>(m, stun::header_size)});
#endif
        if ((crc ^ stun::fingerprint_xor) != stun::load_be32(m + 24)) return false;
    }

    // With no CHANGE-REQUEST the response leaves from where the request arrived: the template
    // of that address and port.
    std::byte* h = f.data + ip;
    const std::byte* source_ip = h + (ipv6 ? 8 : 12);
    const int port_index = load_be16(f.data + udp + 2) == port.stun_port ? 0 : 1;
    const BindingTemplate& t =
        port.binding_templates[BindingTemplate::index(ipv6, ip_index, port_index, fingerprint)];
    const std::size_t length = t.frame.size();
    if (length == 0 || length > f.capacity) return false;

    // What the response takes from the request, read before the template covers it.
    std::byte client_mac[6];
    std::memcpy(client_mac, f.data + 6, 6);
    std::byte client_ip[ip_size];
    std::memcpy(client_ip, source_ip, ip_size);
    const std::uint16_t client_port = load_be16(f.data + udp);
    std::byte txid[stun::transaction_id_size];
    std::memcpy(txid, m + 8, sizeof txid);
    // IPv4: version, TOS, total length; IPv6: version, traffic class, flow label. STUN over
    // UDP is not ECN-capable (RFC 3168 §5): the request's ECN bits are not echoed.
    const std::uint32_t first_word = stun::load_be32(h) & (ipv6 ? 0xFFCFFFFFu : 0xFFFCFFFFu);
    const std::uint16_t identification = load_be16(h + 4);

    copy_template(f.data, t.frame.data(), length);
    std::memcpy(f.data, client_mac, 6);
    std::byte* u = f.data + udp;
    std::byte* r = u + udp_header_size;
    std::byte* xor_mapped = r + stun::header_size;
    std::byte* mapped = xor_mapped + stun::attribute_header_size + 4 + ip_size;
    std::memcpy(h + (ipv6 ? 24 : 16), client_ip, ip_size);
    store_be16(u + 2, client_port);
    std::memcpy(r + 8, txid, sizeof txid);
    // RFC 8489 §14.2: the port XOR the cookie's high half, the address XOR the cookie and (for
    // IPv6) the transaction ID; §12: MAPPED-ADDRESS plain.
    const auto xor_port = static_cast<std::uint16_t>(client_port ^ (stun::magic_cookie >> 16));
    store_be16(xor_mapped + 6, xor_port);
    store_be16(mapped + 6, client_port);
    std::memcpy(mapped + 8, client_ip, ip_size);
    // UDP checksum (RFC 768): the template's sum plus the client's words, each where it went:
    // the pseudo-header's destination, the UDP destination port, the transaction ID, both
    // address attributes (a 32-bit big-endian word adds as its halves, RFC 1071 §2(C)).
    std::uint64_t sum = t.udp_sum + 2 * std::uint64_t{client_port} + xor_port;
    for (std::size_t i = 0; i < ip_size; i += 4) {
        const std::uint32_t word = stun::load_be32(client_ip + i);
        const std::uint32_t mask =
            i == 0 ? stun::magic_cookie : stun::load_be32(txid + i - 4);
        stun::store_be32(xor_mapped + 8 + i, word ^ mask);
        sum += 2 * std::uint64_t{word} + (word ^ mask);
    }
    for (std::size_t i = 0; i < sizeof txid; i += 4) sum += stun::load_be32(txid + i);
    if constexpr (ipv6) {
        stun::store_be32(h, first_word);
    } else {
        // The IPv4 header checksum from the template's: TOS, identification, destination.
        h[1] = static_cast<std::byte>(first_word >> 16);
        store_be16(h + 4, identification);
        store_be16(h + 10,
                   checksum_finish(checksum_fold(t.ip_sum + ((first_word >> 16) & 0xFF) +
                                                 identification +
                                                 stun::load_be32(client_ip))));
    }
    if (fingerprint) {
#if STUN_CRC32_TERMS
        const std::uint32_t crc =
            fingerprint_by_terms
                ? response_crc_by_terms<ipv6>(t, txid, client_port, client_ip)
                : stun::crc32({std::span<const std::byte>(r, t.crc_covered)});
#else
        const std::uint32_t crc = stun::crc32({std::span<const std::byte>(r, t.crc_covered)});
#endif
        const std::uint32_t value = crc ^ stun::fingerprint_xor;
        stun::store_be32(f.data + length - 4, value);
        sum += value;
    }
    const std::uint16_t checksum = checksum_finish(checksum_fold(sum));
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    store_be16(u + 6, checksum == 0 ? 0xFFFF : checksum);
    f.length = static_cast<std::uint16_t>(length);
    ++counters.stun_success;
    return true;
}

// The relay role's messages on the STUN ports (engine/relay_role.h): handle_turn() answers in
// the request's own buffer, and the answer goes back on the 5-tuple as the STUN role's does;
// a Send indication's DATA goes to its peer from the allocation's relayed address, rewritten
// in place around the payload (engine/relay_forward.h). `route` is where the request came
// from and arrived (its client and origin).
Verdict respond_turn(Frame& f, std::size_t ip, std::size_t udp, bool ipv6,
                     const stun::Message& message, std::span<const std::byte> request,
                     const Route& route, const PortContext& port, RelayState& relay) noexcept {
    const std::optional<FiveTuple> five_tuple = FiveTuple::make(route.client, route.origin);
    if (!five_tuple) return Verdict::drop(DropReason::turn_dropped);  // one family: never
    const std::size_t payload = udp + udp_header_size;
    const TurnAnswer answer =
        handle_turn(*port.relay, relay.shard, message, request, *five_tuple, relay.now_ticks,
                    relay.now_s, std::span<std::byte>(f.data + payload, f.capacity - payload));
    switch (answer.action) {
    case TurnAction::respond:
        finish_reply(f, ip, udp, ipv6, route, answer.response_length, port);
        if (answer.outcome == TurnOutcome::allocated) {
            // Where peers' datagrams for this client go: the request came from this MAC (now
            // the response's destination).
            const std::uint32_t slot = relay.shard.table().find(*five_tuple);
            if (slot != RelayTable::no_slot) relay.shard.table().at(slot).set_client_hop(f.data);
        }
        return Verdict::transmit();
    case TurnAction::drop:
        return Verdict::drop(DropReason::turn_dropped);
    case TurnAction::forward:
        break;
    }
    // RFC 8656 §11.2: the DATA, as a UDP datagram from the relayed address to the peer.
    RelayDatagram datagram;
    datagram.ip = ip;
    datagram.udp = udp;
    datagram.ipv6 = ipv6;
    datagram.keep = static_cast<std::size_t>(answer.payload.data() - f.data);
    datagram.keep_length = answer.payload.size();
    // Verified by handle_udp() or the port, or a partial one (rx_checksum = trust).
    datagram.checksum_complete =
        f.l4_checksum == L4ChecksumHint::good || port.rx_checksum == RxChecksum::verify;
    return relay_to_peer(f, datagram, relay.shard.table().at(answer.slot), answer.peer, port,
                         relay);
}

}  // namespace

STUN_CRC32_TARGET bool answer_express_ipv4(Frame& f, const PortContext& port,
                                           CoreCounters& counters) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    constexpr std::size_t udp = ip + ipv4_header_size;
    constexpr std::size_t plain = udp_header_size + stun::header_size;  // UDP length
    constexpr std::size_t with_fingerprint = plain + 8;
    if (f.length < udp + plain) return false;
    const std::byte* h = f.data + ip;
    const std::byte* u = f.data + udp;
    // Ethernet to us; IPv4 with a 20-byte header (RFC 791: version 4, IHL 5), carrying UDP.
    if (!port.is_own_mac(f.data) || load_be16(f.data + 12) != ethertype::ipv4 ||
        h[0] != std::byte{0x45} || h[9] != std::byte{ip_protocol::udp})
        return false;
    // The total length covers the header and UDP's length exactly, within the frame (Ethernet
    // may pad); UDP's length is a plain Binding request's, with or without FINGERPRINT.
    const std::size_t udp_length = load_be16(u + 4);
    if ((udp_length != plain && udp_length != with_fingerprint) ||
        load_be16(h + 2) != ipv4_header_size + udp_length || udp + udp_length > f.length)
        return false;
    // Not a fragment; to a STUN port; from a port (RFC 768: 0 is none); between an address of
    // ours and a valid source.
    const std::uint16_t destination_port = load_be16(u + 2);
    if ((load_be16(h + 6) & 0x3FFF) != 0 || !port.stun_enabled ||
        (destination_port != port.stun_port &&
         (port.stun_alternate_port == 0 || destination_port != port.stun_alternate_port)) ||
        load_be16(u) == 0)
        return false;
    const int ip_index = port.ipv4.index_of({h + 16, 4});
    if (ip_index < 0 || !port.accepts_ipv4_source(h + 12)) return false;
    // Both checksums verify: each sum, folded, is all ones (RFC 1071). Summed as the CPU loads
    // the words, the addresses once for both.
    const std::uint64_t addresses = checksum_native_sum<8>(h + 12);
    if (checksum_fold(checksum_native_sum<12>(h) + addresses) != 0xFFFF ||
        f.l4_checksum == L4ChecksumHint::bad)
        return false;
    // RFC 768: zero means "no checksum" over IPv4. The pseudo-header's protocol and length
    // are big-endian words, byte-swapped to add to the loaded ones.
    if (port.rx_checksum == RxChecksum::verify && f.l4_checksum == L4ChecksumHint::unknown &&
        load_be16(u + 6) != 0 &&
        checksum_fold(addresses + __builtin_bswap16(std::uint16_t{ip_protocol::udp}) +
                      __builtin_bswap16(static_cast<std::uint16_t>(udp_length)) +
                      (udp_length == plain ? checksum_native_sum<plain>(u)
                                           : checksum_native_sum<with_fingerprint>(u))) !=
            0xFFFF)
        return false;
    return respond_plain_binding<false>(f, ip, udp, ip_index, port, counters);
}

std::size_t max_response_growth(const PortContext& port) noexcept {
    // Four IPv6 address attributes, FINGERPRINT, SOFTWARE; and room for an ERROR-CODE with
    // the longest reason this file writes (a 420's UNKNOWN-ATTRIBUTES lists only types the
    // request itself carried, each of which took at least 4 bytes there).
    return 4 * 24 + 8 + 4 + stun::padded4(port.software.size()) + 4 + 64;
}

STUN_CRC32_TARGET Verdict respond_stun(Frame& f, std::size_t ip, std::size_t udp, bool ipv6,
                                       const PortContext& port, CoreCounters& counters,
                                       RelayState* relay) noexcept {
    const std::size_t payload_offset = udp + udp_header_size;
    const std::size_t request_length = load_be16(f.data + udp + 4) - udp_header_size;
    const std::span<const std::byte> request(f.data + payload_offset, request_length);
    const OwnedAddresses& owned = ipv6 ? port.ipv6 : port.ipv4;
    const std::size_t ip_size = ipv6 ? 16 : 4;
    const std::byte* source_ip = f.data + ip + (ipv6 ? 8 : 12);
    const std::byte* destination_ip = source_ip + ip_size;
    // The L3 handlers accepted only frames to an owned address.
    const int ip_index = owned.index_of({destination_ip, ip_size});
    if (ip_index >= 0 &&
        (ipv6 ? respond_plain_binding<true>(f, ip, udp, ip_index, port, counters)
              : respond_plain_binding<false>(f, ip, udp, ip_index, port, counters)))
        return Verdict::transmit();

    // Cheap before dear (style rule 11): RFC 8489 §6.3's header checks, so that garbage is
    // dropped before a parse, and a malformed request still has a header to answer.
    if (request_length < stun::header_size ||
        (std::to_integer<unsigned>(request[0]) & 0xC0) != 0 ||
        stun::load_be32(request.data() + 4) != stun::magic_cookie)
        return Verdict::drop(DropReason::stun_garbage);
    const std::uint16_t type = load_be16(request.data());
    const std::uint16_t method = stun::method_of(type);
    // Every method but Binding goes to the relay role where the port has one (its own checks
    // then decide what a response or an indication gets: Send indications are its).
    const bool to_relay = relay != nullptr && port.relay != nullptr &&
                          method != static_cast<std::uint16_t>(stun::Method::binding);
    if (!to_relay && stun::class_of(type) != stun::MessageClass::request)
        return Verdict::drop(DropReason::stun_not_request);
    stun::TransactionId txid;
    std::memcpy(txid.data(), request.data() + 8, txid.size());

    // Where the response goes, from the request's headers.
    Route route;
    route.client = address_from({source_ip, ip_size}, load_be16(f.data + udp));
    route.destination_port = route.client.port;
    const int port_index = load_be16(f.data + udp + 2) == port.stun_port ? 0 : 1;
    auto port_at = [&](int index) {
        return index == 0 ? port.stun_port : port.stun_alternate_port;
    };
    route.origin = address_from({destination_ip, ip_size}, port_at(port_index));
    route.rfc5780 = port.supports_change_request(ipv6) && ip_index >= 0;

    const std::span<std::byte> out(f.data + payload_offset, f.capacity - payload_offset);
    auto send_error = [&](std::uint16_t code, std::string_view reason,
                          std::span<const std::uint16_t> unknown, bool fingerprint) {
        stun::MessageWriter w(out, method, stun::MessageClass::error_response, txid);
        w.add_error_code(code, reason);
        if (!unknown.empty()) w.add_unknown_attributes(unknown);
        if (!port.software.empty()) w.add_text(stun::attr::software, port.software);
        if (fingerprint) w.add_fingerprint();
        if (!w.ok()) return Verdict::drop(DropReason::stun_response_too_large);
        finish_reply(f, ip, udp, ipv6, route, w.size(), port);
        ++counters.stun_error;
        return Verdict::transmit();
    };
    // "Bad Request (attribute_overrun)": the RFC phrase and what was wrong, for the client's
    // log (RFC 8489 §14.8: the reason phrase is meant for the user).
    char reason_buffer[96];
    auto bad_request = [&](std::string_view what, bool fingerprint) {
        const int n = std::snprintf(reason_buffer, sizeof reason_buffer, "Bad Request (%.*s)",
                                    static_cast<int>(what.size()), what.data());
        // snprintf returns the untruncated length: clamp to what the buffer holds.
        const std::string_view reason(
            reason_buffer, std::min(static_cast<std::size_t>(std::max(n, 0)),
                                    sizeof reason_buffer - 1));
        return send_error(stun::error_code::bad_request, reason, {}, fingerprint);
    };

    // RFC 8489 §6.3: a length that is not sensible, or a method the agent does not support,
    // is silently discarded; a request that gets that far but is malformed inside gets 400.
    stun::Message m;
    switch (const stun::ParseError e = stun::Message::parse(request, m)) {
    case stun::ParseError::ok:
        break;
    case stun::ParseError::length_not_multiple_of_4:
    case stun::ParseError::length_mismatch:
        return Verdict::drop(DropReason::stun_garbage);
    default:
        return bad_request(stun::to_string(e), false);
    }
    const bool fingerprint = m.fingerprint().has_value();
    // RFC 8489 §7.3: a FINGERPRINT that does not verify means this is not STUN: discard.
    if (fingerprint && stun::verify_fingerprint(m) != stun::IntegrityResult::ok)
        return Verdict::drop(DropReason::stun_bad_fingerprint);
    if (to_relay) return respond_turn(f, ip, udp, ipv6, m, request, route, port, *relay);
    if (method != static_cast<std::uint16_t>(stun::Method::binding))
        return Verdict::drop(DropReason::stun_unsupported_method);

    // RFC 8489 §6.3.1.1: unknown comprehension-required attributes get a 420 listing them;
    // RFC 5780 §7.2: so does CHANGE-REQUEST where the server has no alternate address.
    std::array<std::uint16_t, 8> unknown{};
    std::size_t unknown_count =
        std::min(m.unknown_comprehension_required(unknown, &stun_role_knows), unknown.size());
    const auto change_request = m.find(stun::attr::change_request);
    if (change_request && !route.rfc5780 && unknown_count < unknown.size())
        unknown[unknown_count++] = stun::attr::change_request;
    if (unknown_count > 0)
        return send_error(stun::error_code::unknown_attribute,
                          stun::reason_phrase(stun::error_code::unknown_attribute),
                          std::span<const std::uint16_t>(unknown).first(unknown_count),
                          fingerprint);

    std::uint32_t change = 0;
    if (change_request && stun::decode_u32(*change_request, change) != stun::ParseError::ok)
        return bad_request("CHANGE-REQUEST is not 4 bytes", fingerprint);
    // RFC 5780 §7.6: a response to a request with PADDING is padded as much (never more, so
    // the response still grows by at most max_response_growth()).
    const auto padding = m.find(stun::attr::padding);
    const std::size_t padding_length = padding ? padding->value.size() : 0;
    if (const auto response_port = m.find(stun::attr::response_port)) {
        // RFC 5780 §6.1: "If the Binding Request contains both PADDING and RESPONSE-PORT
        // attributes, the server MUST reject the request with a 400 (Bad Request)".
        if (padding) return bad_request("PADDING with RESPONSE-PORT", fingerprint);
        // RFC 5780 §7.5: send the response to this port of the source address.
        std::uint16_t requested = 0;
        if (stun::decode_response_port(*response_port, requested) != stun::ParseError::ok ||
            requested == 0)
            return bad_request("RESPONSE-PORT is not a port", fingerprint);
        route.destination_port = requested;
    }

    if (route.rfc5780) {
        // RFC 5780 §6.1: CHANGE-REQUEST picks the other IP and/or port, relative to where the
        // request arrived; OTHER-ADDRESS is where "change IP and port" would answer from.
        const int origin_ip = ip_index ^ ((change & stun::change_ip) != 0 ? 1 : 0);
        const int origin_port = port_index ^ ((change & stun::change_port) != 0 ? 1 : 0);
        route.origin = address_from(owned.at(origin_ip)->ip_bytes(), port_at(origin_port));
        route.other = address_from(owned.at(ip_index ^ 1)->ip_bytes(), port_at(port_index ^ 1));
    }

    stun::MessageWriter w(out, stun::Method::binding, stun::MessageClass::success_response, txid);
    add_binding_attributes(w, route, port);
    if (padding_length > 0) {
        // The response must fit the port's MTU (the engine does not fragment, and the response
        // carries DF): PADDING is cut to what fits, in whole words. RFC 5780 §7.6 wants the
        // response padded like the request, to test fragmentation of the return path; that
        // needs IP fragmentation in the engine, which it does not have yet.
        const std::size_t ip_header = ipv6 ? ipv6_header_size : udp - ip;
        const std::size_t budget = port.mtu > ip_header + udp_header_size
                                       ? port.mtu - ip_header - udp_header_size
                                       : 0;
        const std::size_t after = stun::attribute_header_size + (fingerprint ? 8 : 0);
        const std::size_t room = budget > w.size() + after ? (budget - w.size() - after) & ~3u : 0;
        const std::size_t fitted = std::min(padding_length, room);
        if (fitted > 0) w.add_padding(fitted);
    }
    if (fingerprint) w.add_fingerprint();
    if (!w.ok()) return Verdict::drop(DropReason::stun_response_too_large);
    finish_reply(f, ip, udp, ipv6, route, w.size(), port);
    ++counters.stun_success;
    return Verdict::transmit();
}

void prepare_binding_templates(PortContext& port) {
    for (BindingTemplate& t : port.binding_templates) t = BindingTemplate{};
    if (!port.stun_enabled || port.software.size() > software_send_limit) return;
    auto port_at = [&](int index) {
        return index == 0 ? port.stun_port : port.stun_alternate_port;
    };
    for (const bool ipv6 : {false, true}) {
        const OwnedAddresses& owned = ipv6 ? port.ipv6 : port.ipv4;
        const std::size_t ip_size = ipv6 ? 16 : 4;
        const std::size_t ip = ethernet_header_size;
        const std::size_t udp = ip + (ipv6 ? ipv6_header_size : ipv4_header_size);
        const std::size_t message = udp + udp_header_size;
        for (int ip_index = 0; ip_index < 2; ++ip_index) {
            for (int port_index = 0; port_index < 2; ++port_index) {
                const std::optional<stun::Address>& origin = owned.at(ip_index);
                if (!origin || origin->ip_size() != ip_size || port_at(port_index) == 0)
                    continue;
                // The general path's route for a request from a client of zeros to here.
                Route route;
                route.client.family = origin->family;
                route.origin = address_from(origin->ip_bytes(), port_at(port_index));
                route.rfc5780 = port.supports_change_request(ipv6);
                if (route.rfc5780) {
                    const std::optional<stun::Address>& other = owned.at(ip_index ^ 1);
                    if (other->ip_size() != ip_size) continue;  // the fast path would decline
                    route.other = address_from(other->ip_bytes(), port_at(port_index ^ 1));
                }
                for (const bool fingerprint : {false, true}) {
                    std::vector<std::byte> frame(message + stun::header_size + 4 * 24 +
                                                 stun::attribute_header_size +
                                                 stun::padded4(port.software.size()) + 8);
                    stun::MessageWriter w(std::span<std::byte>(frame).subspan(message),
                                          stun::Method::binding,
                                          stun::MessageClass::success_response,
                                          stun::TransactionId{});
                    add_binding_attributes(w, route, port);
                    const std::size_t covered = w.size();
                    if (fingerprint) w.add_fingerprint();
                    if (!w.ok()) continue;
                    frame.resize(message + w.size());
                    std::byte* r = frame.data() + message;
                    BindingTemplate& t = port.binding_templates[BindingTemplate::index(
                        ipv6, ip_index, port_index, fingerprint)];
                    // The CRC layout: the first 4 bytes XOR 0xFF (crc32_terms.h), and the
                    // client of zeros leaves the cookie's part in XOR-MAPPED-ADDRESS.
                    std::vector<std::byte> layout(r, r + covered);
                    for (std::size_t i = 0; i < 4; ++i) layout[i] ^= std::byte{0xFF};
                    t.crc_layout = stun::crc32_raw(layout);
                    t.crc_covered = static_cast<std::uint16_t>(covered);
                    // Zeros where the client's fields go: XOR-MAPPED-ADDRESS's port and
                    // address (MAPPED-ADDRESS and the transaction ID are zeros already) and
                    // FINGERPRINT's value.
                    std::memset(r + stun::header_size + 6, 0, 2 + ip_size);
                    if (fingerprint) std::memset(frame.data() + frame.size() - 4, 0, 4);
                    // Ethernet, IP and UDP headers as finish_reply() leaves them, with the
                    // client's MAC and address zeros and the request's IPv4 TOS and
                    // identification (or IPv6 traffic class and flow label) zeros.
                    std::memcpy(frame.data() + 6, port.mac.data(), 6);
                    store_be16(frame.data() + 12, ipv6 ? ethertype::ipv6 : ethertype::ipv4);
                    std::byte* h = frame.data() + ip;
                    const auto udp_length = static_cast<std::uint16_t>(frame.size() - udp);
                    std::byte* source = h + (ipv6 ? 8 : 12);
                    std::memcpy(source, origin->ip.data(), ip_size);
                    if (ipv6) {
                        h[0] = std::byte{0x60};
                        store_be16(h + 4, udp_length);
                        h[6] = std::byte{ip_protocol::udp};
                        h[7] = std::byte{64};
                    } else {
                        h[0] = std::byte{0x45};
                        store_be16(h + 2, static_cast<std::uint16_t>(ipv4_header_size +
                                                                      udp_length));
                        store_be16(h + 6, 0x4000);  // DF, no fragment
                        h[8] = std::byte{64};
                        h[9] = std::byte{ip_protocol::udp};
                        t.ip_sum = checksum_add(0, {h, ipv4_header_size});
                    }
                    std::byte* u = frame.data() + udp;
                    store_be16(u, route.origin.port);
                    store_be16(u + 4, udp_length);
                    t.udp_sum = checksum_add(checksum_add(0, {source, 2 * ip_size}) +
                                                 ip_protocol::udp + udp_length,
                                             {u, udp_length});
                    if (frame.size() < binding_template_minimum) continue;  // cannot be
                    t.frame = std::move(frame);
                }
            }
        }
    }
}

void finish_udp_reply(Frame& frame, std::size_t ip_offset, std::size_t udp_offset, bool ipv6,
                      const stun::Address& client, const stun::Address& origin,
                      std::size_t payload_length, const PortContext& port) noexcept {
    Route route;
    route.client = client;
    route.origin = origin;
    route.destination_port = client.port;
    finish_reply(frame, ip_offset, udp_offset, ipv6, route, payload_length, port);
}

}  // namespace engine
