// The relay's data path on a frame (design.md §3, role `relay`): a received UDP datagram is
// turned, in its own buffer, into the one the relay sends on, without copying its payload.
// ChannelData from a client loses its 4-byte header on the way to the peer (RFC 8656 §12.6);
// a peer's datagram gains one on the way to the client (§12.5), or a Data indication's header
// when no channel is bound (§10.3); a Send indication gives up everything around its DATA
// (§10.2). The Ethernet, IP and UDP headers are written anew in front of the kept payload (in
// the buffer's headroom when the new headers are longer), so the relayed address family may
// differ from the client's (RFC 8656 §6, IPv4 to IPv6 and back).
//
// The UDP checksum is updated, not recomputed (RFC 1624): the received checksum less the old
// pseudo-header, UDP header and the bytes removed, plus what is added. The payload's bytes are
// never read. Like a router's, the update needs no verification: a wrong checksum stays wrong
// by as much, and the receiver drops the datagram (the packet path verifies a Send
// indication, which it parses, and not ChannelData or a peer's datagram, which it forwards). IP header fields follow
// RFC 8656 §14's preferred behaviour: TTL (hop limit) one less than received, DSCP and ECN
// copied, DF as the allocation asked (DONT-FRAGMENT), no IPv4 options; the engine does not
// fragment, so a datagram over the MTU is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/frame.h"
#include "engine/neighbour.h"  // MacAddress
#include "stun/address.h"

namespace engine {

/// Where a relayed datagram goes: the link-layer hop and the UDP endpoints.
struct RelayHop {
    MacAddress source_mac{};
    MacAddress destination_mac{};
    stun::Address source;       ///< the relayed address (to a peer) or the listener (to a client)
    stun::Address destination;  ///< the peer, or the client
    bool dont_fragment = true;  ///< IPv4 DF (RFC 8656 §14: as DONT-FRAGMENT asked)
};

/// The received datagram, as the packet path validated it.
struct RelayDatagram {
    std::size_t ip = 0;       ///< offset of its IP header in the frame
    std::size_t udp = 0;      ///< offset of its UDP header
    bool ipv6 = false;        ///< its IP family
    std::size_t keep = 0;     ///< offset of the payload part that is relayed
    std::size_t keep_length = 0;
    /// Whether its UDP checksum field holds a whole checksum (the port hands them over,
    /// rx_checksum = verify, or checked it), which is updated, verified or not. Where it holds
    /// a partial one (rx_checksum = trust: a veth's), the new one is summed over the payload.
    bool checksum_complete = true;
};

enum class RelayRewriteResult : std::uint8_t {
    ok,
    ttl_expired,  ///< received with TTL (hop limit) 0 or 1: none left to forward with
    no_room,      ///< the new headers do not fit the headroom, or the padding the tailroom
    too_big,      ///< the datagram would exceed the port's MTU (the engine does not fragment)
};

/// Rewrites the frame into a datagram from `hop.source` to `hop.destination` whose UDP payload
/// is `prefix`, then the kept part of the received payload, then `pad` zero bytes (`pad`
/// 0..3: STUN's padding after DATA). On ok, `f.data`, `f.length`, `f.capacity` and
/// `f.headroom` describe the new frame; otherwise the frame is unchanged. `mtu` bounds the
/// IP datagram. Cost: header writes and a few sums; the payload is not touched.
[[nodiscard]] RelayRewriteResult rewrite_for_relay(Frame& f, const RelayDatagram& received,
                                                   std::span<const std::byte> prefix,
                                                   std::size_t pad, const RelayHop& hop,
                                                   std::uint16_t mtu) noexcept;

}  // namespace engine
