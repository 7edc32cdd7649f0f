// The packet handlers: one frame in, one verdict out, the response built in the frame's own
// buffer. No DPDK, no EAL, no allocation, no syscalls, no exceptions (style rules 4 and 5):
// the worker loop calls handle_frame() per received packet; tests call it on golden packets.
#pragma once

#include <cstdint>

#include "engine/counters.h"
#include "engine/frame.h"
#include "engine/port_context.h"
#include "engine/relay_forward.h"
#include "engine/relay_role.h"
#include "engine/sfu_role.h"

namespace engine {

/// A worker's relay, as the packet path sees it: its shard of allocations (written by this
/// worker alone) and the time, read once per burst. Null where the port relays nothing.
struct RelayState {
    RelayShard& shard;
    std::uint64_t now_ticks;  ///< the clock RelayLimits::ticks_per_second counts
    std::uint64_t now_s;      ///< Unix seconds, for nonces
};

/// Classifies and answers one received frame: ARP requests, IPv6 neighbour solicitations,
/// ICMP/ICMPv6 echo requests, and the STUN role's Binding requests (RFC 8489, RFC 5780).
/// Everything else is dropped under a reason. Counts rx, tx and drops in `counters`.
/// Inline (below): the express lane first, then the general dispatch, so that the worker loop
/// reaches the express lane in one call.
/// Cost: docs/benchmarks.md (bench/engine_pipeline_bench, bench/engine_handler_bench).
/// With `relay` (and a port whose context has a relay), TURN messages to the STUN ports go to
/// the relay role (engine/relay_role.h).
/// With `sfu`, datagrams to its port (SfuLimits::port) go to the SFU role
/// (engine/sfu_role.h): STUN to admission, anything else to forwarding.
Verdict handle_frame(Frame& frame, const PortContext& port, CoreCounters& counters,
                     RelayState* relay = nullptr, SfuState* sfu = nullptr) noexcept;

/// handle_frame() for a frame the express lane declined, rx already counted: the general
/// dispatch, and the count of its verdict.
Verdict handle_frame_generally(Frame& frame, const PortContext& port, CoreCounters& counters,
                               RelayState* relay, SfuState* sfu = nullptr) noexcept;

/// Rewrites Ethernet, IP and UDP headers around an answer of `payload_length` bytes already
/// written after the UDP header of a received datagram: back to `client` (its MAC the
/// request's source), from `origin`. The STUN role's answers and the SFU role's use it.
void finish_udp_reply(Frame& frame, std::size_t ip_offset, std::size_t udp_offset, bool ipv6,
                      const stun::Address& client, const stun::Address& origin,
                      std::size_t payload_length, const PortContext& port) noexcept;

/// The STUN role's answer to a UDP datagram addressed to one of its ports. `udp_offset` is the
/// UDP header's offset in the frame, which has been validated up to the UDP header (an IPv4
/// header checksum verified: the response's is updated from it, RFC 1624). Exposed for tests;
/// handle_frame() calls it.
Verdict respond_stun(Frame& frame, std::size_t ip_offset, std::size_t udp_offset, bool ipv6,
                     const PortContext& port, CoreCounters& counters,
                     RelayState* relay = nullptr) noexcept;

/// The express lane (its cost: docs/benchmarks.md) for the frame nearly every STUN client
/// sends: a plain Binding request (no attribute, or FINGERPRINT alone) in an IPv4 datagram
/// without options, to the port's MAC and one of its STUN ports. Makes every check the general
/// dispatch makes of such a frame, straight through with the sizes constant, and answers it by
/// the STUN fast path: returns true, counting it in `stun_success` only (handle_frame() counts
/// rx and tx). Returns false, having written nothing, for anything else or anything wrong with
/// it: the general dispatch then decides, and names the reason of a drop.
[[nodiscard]] bool answer_express_ipv4(Frame& frame, const PortContext& port,
                                       CoreCounters& counters) noexcept;

/// The relay's express lane (its cost: docs/benchmarks.md) for the two datagrams a relayed
/// call is made of, over IPv4 without options: ChannelData from a client to a STUN port,
/// unpadded, on a live channel whose peer has a permission and an off-engine IPv4 address
/// with a resolved next hop (RFC 8656 §12.6); and a datagram from a peer to an allocation's
/// relay port whose peer has a permission and a channel, to a client over IPv4 (§12.5).
/// Makes every check the general path makes of such a frame, straight through with the sizes
/// constant, and relays it as the general path would, to the same bytes and counts: returns
/// true (handle_frame() counts rx and tx). Returns false, having written and charged
/// nothing, for anything else or anything wrong with it: the general path then decides, and
/// names the reason of a drop.
[[nodiscard]] bool relay_express_ipv4(Frame& frame, const PortContext& port,
                                      RelayState& relay) noexcept;

/// Makes `port.binding_templates` from its other fields (PortContext::prepare() calls it):
/// one per family, owned address, STUN port and FINGERPRINT or not, where the STUN role answers
/// that combination; the others stay empty.
void prepare_binding_templates(PortContext& port);

/// The relay's data path, on a port with a relay, the UDP checksum verified: ChannelData from a
/// client on a STUN port, to the peer its channel is bound to (RFC 8656 §12.6).
Verdict relay_channel_data(Frame& frame, std::size_t ip_offset, std::size_t udp_offset,
                           bool ipv6, const PortContext& port, RelayState& relay) noexcept;

/// A datagram from a peer to a relayed address: to the client as ChannelData on the peer's
/// channel, else in a Data indication (RFC 8656 §11.3, §12.5), with a permission for the
/// peer (§9). Returns false, having written and decided nothing, when the datagram is not to
/// an allocated relay port of this worker (the caller goes on with it).
bool relay_from_peer(Frame& frame, std::size_t ip_offset, std::size_t udp_offset, bool ipv6,
                     const PortContext& port, RelayState& relay, Verdict& verdict) noexcept;

/// The last leg of ChannelData (relay_channel_data()) and of a Send indication (the relay
/// role's answer): the kept part of `datagram` to `peer`, from `allocation`'s relayed address,
/// the permission checked by the caller. To the wire through the neighbour cache's next hop;
/// to one of the server's relayed addresses (peer_policy.h, rule 3) on a relay port, a
/// "hairpin": delivered here to the allocation on that port as a peer's datagram when this
/// worker owns the port, else Verdict::hairpin (the worker hands the frame to the owner,
/// which calls handle_hairpin()); on any other port of it, dropped (relay_own_port). Counts
/// the bytes to the peer on `allocation`.
Verdict relay_to_peer(Frame& frame, const RelayDatagram& datagram, Allocation& allocation,
                      const stun::Address& peer, const PortContext& port,
                      RelayState& relay) noexcept;

/// A frame another worker's relay_to_peer() handed over (Verdict::hairpin): a datagram from a
/// relayed address to a relayed address on one of this worker's relay ports, delivered to
/// the allocation there as a peer's (relay_from_peer()), else dropped (relay_no_allocation).
/// Counts rx, tx and drops in `counters` as handle_frame() does; never Verdict::hairpin.
Verdict handle_hairpin(Frame& frame, const PortContext& port, CoreCounters& counters,
                       RelayState* relay) noexcept;

/// The most a STUN response exceeds its request by (no amplification): XOR-MAPPED-ADDRESS,
/// MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS for IPv6 (4 x 24), FINGERPRINT (8),
/// SOFTWARE (4 + its padded length) and an ERROR-CODE of 420 with a reason and
/// UNKNOWN-ATTRIBUTES never exceed that either, since those list at most what the request
/// carried.
[[nodiscard]] std::size_t max_response_growth(const PortContext& port) noexcept;

/// The count of the SFU express lane's verdict (sfu_express_ipv4(), sfu_express_ahead()), as
/// handle_frame_generally() counts sfu_forward()'s: the frame transmitted (a fan-out's frame
/// is one of its copies; sfu_forward() counted the others), or dropped under its reason.
inline void count_sfu_express(Verdict verdict, const Frame& frame,
                              CoreCounters& counters) noexcept {
    if (verdict.transmits() || verdict.fans_out()) {
        ++counters.tx_packets;
        counters.tx_bytes += frame.length;
    } else {
        counters.drop(verdict.reason);
    }
}

inline Verdict handle_frame(Frame& frame, const PortContext& port, CoreCounters& counters,
                            RelayState* relay, SfuState* sfu) noexcept {
    ++counters.rx_packets;
    counters.rx_bytes += frame.length;
    // The STUN express lane takes only a plain Binding request's UDP length, where an IPv4
    // frame without options has it: two compares spare every other frame the call.
    constexpr std::size_t udp_length_at = ethernet_header_size + ipv4_header_size + 4;
    constexpr std::size_t plain_binding = udp_header_size + 20;  // STUN's header alone
    const std::uint16_t udp_length =
        frame.length >= udp_length_at + 2
            ? static_cast<std::uint16_t>(std::to_integer<unsigned>(frame.data[udp_length_at]) << 8 |
                                         std::to_integer<unsigned>(frame.data[udp_length_at + 1]))
            : 0;
    if (((udp_length == plain_binding || udp_length == plain_binding + 8) &&
         answer_express_ipv4(frame, port, counters)) ||
        (relay != nullptr && relay_express_ipv4(frame, port, *relay))) {
        ++counters.tx_packets;
        counters.tx_bytes += frame.length;
        return Verdict::transmit();
    }
    if (Verdict verdict; sfu != nullptr && sfu_express_ipv4(frame, port, counters, *sfu, verdict)) {
        count_sfu_express(verdict, frame, counters);
        return verdict;
    }
    return handle_frame_generally(frame, port, counters, relay, sfu);
}

}  // namespace engine
