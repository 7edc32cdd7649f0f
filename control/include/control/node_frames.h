// The SFU node agent's datagrams as Ethernet frames (docs/sfu.md, "Wiring into punchlined"):
// what the control thread puts on the `from_control` ring so that worker 0 sends it from the
// SFU address, and what it takes from the `to_control` ring for the agent.
//
// Plain buffers, no DPDK: punchlined copies a built frame into an mbuf and enqueues it, and
// hands the bytes of a received mbuf to parse_udp_frame(). A few frames a second: the UDP
// checksum is computed in full.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>

#include "engine/neighbour.h"
#include "punch/udp_socket.h"
#include "stun/address.h"

namespace control {

/// Writes Ethernet (source `source_mac`, destination `destination_mac`), IPv4 or IPv6 (TTL/hop
/// limit 64, DF unset) and UDP from `from` to `to` around `payload` into `out`. Returns the
/// frame's length; 0 when `out` is too small, the families differ, or the payload is too long
/// for one datagram.
[[nodiscard]] std::size_t build_udp_frame(std::span<std::byte> out,
                                          const engine::MacAddress& source_mac,
                                          const engine::MacAddress& destination_mac,
                                          const stun::Address& from, const stun::Address& to,
                                          std::span<const std::byte> payload) noexcept;

/// A received UDP datagram inside a frame.
struct UdpDatagram {
    stun::Address from;
    stun::Address to;
    std::span<const std::byte> payload;  ///< a view into the frame
};

/// The UDP datagram in an Ethernet frame (IPv4 without fragmentation, or IPv6 whose next header
/// is UDP), lengths checked before every read; nullopt for anything else (ARP, a fragment,
/// a truncated or inconsistent header). Checksums are not verified: the worker that handed it
/// over did, as the port's rx_checksum says.
[[nodiscard]] std::optional<UdpDatagram> parse_udp_frame(
    std::span<const std::byte> frame) noexcept;

/// The agent's punch::DatagramSender in the engine: each datagram built into a frame from the
/// SFU address, to the MAC `next_hop` names (the port's neighbour snapshot:
/// NeighbourSnapshot::next_hop_mac), given to `emit` (punchlined: an mbuf on `from_control`).
/// send_to() is false, and the datagram counted as unsent, when the next hop is not resolved
/// or `emit` refuses: the STUN retransmissions and the punch pacing go on as after a loss.
class FrameSender final : public punch::DatagramSender {
public:
    using NextHop = std::function<const engine::MacAddress*(const stun::Address&)>;
    using Emit = std::function<bool(std::span<const std::byte>)>;

    FrameSender(stun::Address from, engine::MacAddress port_mac, NextHop next_hop, Emit emit);

    bool send_to(const stun::Address& to, std::span<const std::byte> datagram) override;

    [[nodiscard]] std::uint64_t sent() const noexcept { return sent_; }
    [[nodiscard]] std::uint64_t unresolved() const noexcept { return unresolved_; }
    [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }

private:
    stun::Address from_;
    engine::MacAddress port_mac_;
    NextHop next_hop_;
    Emit emit_;
    std::uint64_t sent_ = 0;
    std::uint64_t unresolved_ = 0;  ///< no MAC for the next hop (yet)
    std::uint64_t refused_ = 0;     ///< the frame could not be built or emitted
};

}  // namespace control
