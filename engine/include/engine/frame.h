// A frame as the handlers see it: bytes in a buffer the caller owns (an mbuf's data room in
// the engine, a vector in tests), its length, and how far it may grow in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/drop_reason.h"

namespace engine {

/// What the port says of a received frame's UDP checksum (a NIC's RX checksum offload; DPDK's
/// RTE_MBUF_F_RX_L4_CKSUM_* flags). The vdevs here never say.
enum class L4ChecksumHint : std::uint8_t {
    unknown,  ///< not checked by the port: the handlers verify it if the port's config says so
    good,     ///< the port verified it: not checked again
    bad,      ///< the port found it wrong: dropped (bad_udp_checksum) whatever the config says
};

struct Frame {
    std::byte* data = nullptr;
    std::uint16_t length = 0;    ///< bytes of frame, from the Ethernet header on
    std::uint16_t capacity = 0;  ///< bytes available from `data` (tailroom included)
    /// Bytes before `data` that a handler may prepend into (an mbuf's headroom): the relay
    /// moves `data` back to put longer headers in front of a payload it does not copy.
    std::uint16_t headroom = 0;
    L4ChecksumHint l4_checksum = L4ChecksumHint::unknown;

    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data, length}; }
};

/// What becomes of a frame after its handler ran.
struct Verdict {
    enum class Action : std::uint8_t {
        transmit,    ///< the frame was rewritten in place (its length possibly changed): send it
        drop,        ///< free it; `reason` says why
        to_control,  ///< hand it, unchanged, to the control thread: an ARP reply or announcement
                     ///< or a neighbour advertisement about an address its neighbour cache
                     ///< watches (engine/neighbour.h)
        hairpin,     ///< the relay rewrote it into a datagram to one of the server's relayed
                     ///< addresses on another worker's relay port: hand it to that worker,
                     ///< which delivers it to the allocation there (handle_hairpin())
        fan_out,     ///< the SFU's: the frame was rewritten in place for one subscriber, and
                     ///< the headers of the others' copies are in the worker's fan-out scratch
                     ///< (SfuShard::fan_out(), engine/sfu_role.h): send them all, each copy a
                     ///< header chained to the one payload
    };
    Action action = Action::drop;
    DropReason reason = DropReason::truncated_frame;

    static constexpr Verdict transmit() noexcept { return {Action::transmit, {}}; }
    static constexpr Verdict drop(DropReason why) noexcept { return {Action::drop, why}; }
    static constexpr Verdict to_control() noexcept { return {Action::to_control, {}}; }
    static constexpr Verdict hairpin() noexcept { return {Action::hairpin, {}}; }
    static constexpr Verdict fan_out() noexcept { return {Action::fan_out, {}}; }
    [[nodiscard]] constexpr bool transmits() const noexcept { return action == Action::transmit; }
    [[nodiscard]] constexpr bool goes_to_control() const noexcept {
        return action == Action::to_control;
    }
    [[nodiscard]] constexpr bool hairpins() const noexcept { return action == Action::hairpin; }
    [[nodiscard]] constexpr bool fans_out() const noexcept { return action == Action::fan_out; }
};

namespace ethertype {
inline constexpr std::uint16_t ipv4 = 0x0800;
inline constexpr std::uint16_t arp = 0x0806;
inline constexpr std::uint16_t ipv6 = 0x86DD;
}  // namespace ethertype

namespace ip_protocol {
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t ipv6_fragment = 44;
inline constexpr std::uint8_t icmpv6 = 58;
}  // namespace ip_protocol

inline constexpr std::size_t ethernet_header_size = 14;
inline constexpr std::size_t ipv4_header_size = 20;  ///< without options
inline constexpr std::size_t ipv6_header_size = 40;
inline constexpr std::size_t udp_header_size = 8;

}  // namespace engine
