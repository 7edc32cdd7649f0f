// Per-core counters. Written only by the owner core (style rule 10), read by the control
// thread for stats: plain 64-bit stores are atomic on x86-64 and a reader only needs a value
// that was true at some instant, so no fences are used; the engine reads them after the
// worker has stopped for the exit report.
#pragma once

#include <array>
#include <cstdint>

#include "engine/drop_reason.h"

namespace engine {

struct alignas(64) CoreCounters {
    std::uint64_t rx_packets = 0;
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_packets = 0;
    std::uint64_t tx_bytes = 0;
    std::uint64_t handed_off = 0;
    std::array<std::uint64_t, drop_reason_count> drops{};
    // What the STUN role did with the requests it answered: responses built (not part of the
    // conservation law; each is also in tx_packets, or in drops[tx_full] if the TX queue then
    // refused it — so during TX back-pressure these exceed what left the port).
    std::uint64_t stun_success = 0;
    std::uint64_t stun_error = 0;
    /// Of handed_off, the frames given to the control thread (neighbour replies for its cache;
    /// a verdict of to_control). One that its ring refused moves to drops[control_ring_full].
    std::uint64_t to_control = 0;
    /// Of handed_off, the datagrams the relay addressed to a relayed address on another
    /// worker's relay port (Verdict::hairpin), handed to it on its hairpin ring. One that the
    /// ring refused moves to drops[handoff_ring_full]; the owner counts it received again.
    std::uint64_t hairpinned = 0;
    /// Frames sent beyond the one received: the SFU's fan-out copies (Verdict::fan_out), each
    /// also in tx_packets. rx + fan_out_copies is what the conservation law balances.
    std::uint64_t fan_out_copies = 0;
    /// Frames the control thread sent through this worker's TX queues (ARP requests and
    /// neighbour solicitations, worker 0 only), and those the TX queue refused (freed). Never
    /// received, so outside the conservation law.
    std::uint64_t control_sent = 0;
    std::uint64_t control_refused = 0;
    /// TSC cycles spent in loop iterations that took in at least one packet: the engine's
    /// cost, without the idle polling (cycles per answered request = busy_cycles / answers).
    /// Stalled iterations (below) are not in it.
    std::uint64_t busy_cycles = 0;
    /// Of busy_cycles, those inside rte_eth_rx_burst (every port's, in the iterations that
    /// took packets) and those in the TX flush (rte_eth_tx_burst and freeing what it refused).
    /// On a kernel-facing vdev these hold the kernel's I/O charged to the worker's core (on
    /// net_af_packet the TX kick's sendto() runs the veth transmit and, unless RPS moves it,
    /// the receiving stack); the rest of busy_cycles is the engine's own handling. Read with
    /// rte_rdtsc() around each burst, never per packet (five reads an iteration).
    std::uint64_t busy_rx_cycles = 0;
    std::uint64_t busy_tx_cycles = 0;
    /// Iterations that took in packets but lasted over 1 ms, and their TSC cycles: the worker
    /// was preempted (or the kernel held it) inside them. An iteration's work is microseconds,
    /// so their time is not the engine's per-packet cost, and busy_cycles leaves them out;
    /// their packets are still counted everywhere else. Non-zero on a worker lcore shared
    /// with other threads.
    std::uint64_t stalled_iterations = 0;
    std::uint64_t stalled_cycles = 0;

    void drop(DropReason reason) noexcept { ++drops[static_cast<std::size_t>(reason)]; }
    /// Adds every counter of `other` (a worker's, into a total): the report's and the
    /// control socket's one sum.
    void add(const CoreCounters& other) noexcept {
        rx_packets += other.rx_packets;
        rx_bytes += other.rx_bytes;
        tx_packets += other.tx_packets;
        tx_bytes += other.tx_bytes;
        handed_off += other.handed_off;
        for (std::size_t r = 0; r < drops.size(); ++r) drops[r] += other.drops[r];
        stun_success += other.stun_success;
        stun_error += other.stun_error;
        to_control += other.to_control;
        hairpinned += other.hairpinned;
        fan_out_copies += other.fan_out_copies;
        control_sent += other.control_sent;
        control_refused += other.control_refused;
        busy_cycles += other.busy_cycles;
        busy_rx_cycles += other.busy_rx_cycles;
        busy_tx_cycles += other.busy_tx_cycles;
        stalled_iterations += other.stalled_iterations;
        stalled_cycles += other.stalled_cycles;
    }
    /// Busy cycles outside the RX and TX bursts: the engine's own work. A live read may see
    /// busy_cycles and its split between a worker's increments: never below zero.
    [[nodiscard]] std::uint64_t handling_cycles() const noexcept {
        const std::uint64_t io = busy_rx_cycles + busy_tx_cycles;
        return busy_cycles > io ? busy_cycles - io : 0;
    }
    [[nodiscard]] std::uint64_t dropped() const noexcept {
        std::uint64_t total = 0;
        for (const auto n : drops) total += n;
        return total;
    }
    /// design.md §3: every packet that enters is sent, handed off, or dropped under a reason
    /// (a fanned-out one sent as often as it has subscribers: fan_out_copies).
    [[nodiscard]] bool conserved() const noexcept {
        return rx_packets + fan_out_copies == tx_packets + handed_off + dropped();
    }
};

}  // namespace engine
