// Every reason the engine drops a packet, in one table with help text (style rule 6). The
// names are the counter labels punchctl and Prometheus show, unchanged.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/reason_table.h"

namespace engine {

// X(name, help)
#define ENGINE_DROP_REASONS(X)                                                                    \
    X(truncated_frame, "shorter than the headers it claims (Ethernet, ARP, IP, UDP, ICMP)")      \
    X(not_for_us_l2, "destination MAC is neither the port's, broadcast, nor IPv6 multicast")     \
    X(unsupported_ethertype, "neither ARP, IPv4 nor IPv6 (VLAN tags included)")                  \
    X(arp_not_for_us, "ARP request for an address this port does not own, or not Ethernet/IPv4") \
    X(arp_reply, "ARP reply from an address the neighbour cache does not watch: nothing to "     \
                 "answer or learn")                                                             \
    X(bad_ipv4_header, "IPv4 version, header length or total length is wrong")                   \
    X(bad_ipv4_checksum, "IPv4 header checksum does not verify")                                 \
    X(bad_ipv6_header, "IPv6 version or payload length is wrong")                                \
    X(ip_fragment, "an IPv4 or IPv6 fragment: the engine does not reassemble")                   \
    X(ipv6_extension_header, "IPv6 with an extension header before the transport header")       \
    X(not_for_us_l3, "destination IP is not an address this port owns")                          \
    X(bad_source_address, "source is broadcast, multicast, loopback, unspecified or our own, "   \
                          "or UDP source port 0 (RFC 1122 §3.2.1.3, RFC 4291 §2.7)")             \
    X(unsupported_protocol, "IP protocol other than UDP, ICMP or ICMPv6")                        \
    X(bad_icmp_checksum, "ICMP or ICMPv6 checksum does not verify")                              \
    X(icmp_not_echo, "ICMP/ICMPv6 other than echo request and neighbour discovery")              \
    X(ndp_invalid, "solicitation or watched advertisement with hop limit not 255, bad code, "   \
                   "length, flags or options (RFC 4861 §7.1.1, §7.1.2)")                        \
    X(ndp_not_for_us, "neighbour solicitation for an address this port does not own")           \
    X(ndp_advertisement, "neighbour advertisement for an address the neighbour cache does not "  \
                         "watch: nothing to answer or learn")                                   \
    X(bad_udp_length, "UDP length field disagrees with the IP payload")                          \
    X(bad_udp_checksum, "UDP checksum does not verify (ports with rx_checksum = verify)")        \
    X(no_service, "UDP to a port on which no role listens")                                      \
    X(stun_garbage, "not a STUN message on a STUN port: first bits, cookie, or a length that is " \
                    "not sensible (RFC 8489 §6.3: silently discarded)")                         \
    X(stun_not_request, "a STUN indication or response sent to the server")                      \
    X(stun_unsupported_method, "a STUN request for a method this port does not serve "          \
                               "(RFC 8489 §6.3: silently discarded)")                           \
    X(stun_bad_fingerprint, "FINGERPRINT present but wrong (RFC 8489 §7.3: discard)")            \
    X(stun_response_too_large, "the response would not fit the packet buffer")                   \
    X(turn_dropped, "a TURN message the relay role discards unanswered: rate-limited, a Send "     \
                    "indication without allocation, permission, peer or data (relay_role.h)")  \
    X(relay_bad_channel_data, "ChannelData whose length exceeds the datagram (RFC 8656 §12.4)") \
    X(relay_no_allocation, "ChannelData on a 5-tuple without a live allocation (RFC 8656 §12.6)," \
                           " or a datagram relayed to a relayed address with none on its port")   \
    X(relay_no_channel, "ChannelData on a channel number not bound (RFC 8656 §12.6)")           \
    X(relay_no_permission, "a datagram from a peer without a live permission (RFC 8656 §9)")    \
    X(relay_no_route, "no link-layer next hop for the relayed datagram's destination yet "       \
                      "(the neighbour cache has not resolved it)")                             \
    X(relay_bandwidth, "over the allocation's bandwidth cap (relay.bandwidth_bytes_per_s): its "    \
                       "token bucket could not pay for the datagram")                            \
    X(relay_own_port, "relayed to one of the server's relayed addresses on a port outside the "   \
                      "relay ports: the server's own listeners (peer_policy.h)")                 \
    X(relay_unforwardable, "the relayed datagram cannot be built: TTL 1 or 0, over the MTU, or " \
                           "no room for its headers (RFC 8656 §14)")                           \
    X(sfu_rate_limited, "an unauthenticated admission request (400, 401) from a source IP whose " \
                        "token bucket is empty (sfu.unauthenticated_*): dropped, not answered")   \
    X(sfu_join_backlog, "an admission the worker could not tell the control thread of (its "      \
                        "outbox full): not admitted, not answered; the client retransmits")       \
    X(sfu_unanswerable, "an SFU admission answer would be longer than its request (no "           \
                        "amplification): not sent")                                              \
    X(sfu_not_a_leg, "a datagram to the SFU port from a 5-tuple that is not a leg (docs/sfu.md)") \
    X(sfu_no_subscriber, "a leg's datagram with nobody else in its session (yet)")               \
    X(sfu_filtered, "a leg's datagram every subscriber paused or did not select by SSRC")         \
    X(sfu_unforwardable, "a leg's datagram no copy could be built for: over the MTU in the "      \
                         "subscriber's family, or no headroom for its headers")                  \
    /* Worker loop (punchlined.cc), after the handlers: */                                      \
    X(multi_segment, "a chained mbuf: the handlers work on single-segment frames")               \
    X(handoff_ring_full, "the owner core's handoff ring was full")                               \
    X(control_ring_full, "the ring to the control thread (neighbour replies) was full")          \
    X(tx_full, "the TX queue did not take the packet")                                          \
    X(fan_out_no_buffer, "an SFU fan-out copy without an mbuf for its header or its payload's "   \
                         "clone (Dataplane::sfu_copy_pool empty or absent)")

enum class DropReason : std::uint8_t { ENGINE_DROP_REASONS(ENGINE_REASON_ENUMERATOR) };

inline constexpr std::size_t drop_reason_count = 0 ENGINE_DROP_REASONS(ENGINE_REASON_COUNT);

/// Reasons from here on are the worker loop's (DPDK queues and rings); handle_frame() never
/// returns them.
inline constexpr DropReason first_worker_drop_reason = DropReason::multi_segment;

inline constexpr std::array<ReasonInfo, drop_reason_count> drop_reasons = {
    {ENGINE_DROP_REASONS(ENGINE_REASON_INFO)}};

constexpr std::string_view to_string(DropReason reason) noexcept {
    return drop_reasons[static_cast<std::size_t>(reason)].name;
}

}  // namespace engine
