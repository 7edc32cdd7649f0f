#include "engine/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <urcu-qsbr.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>

#include "engine/handler.h"
#include "engine/steer.h"

namespace engine {
namespace {

Dataplane* the_dataplane = nullptr;

}  // namespace

void set_dataplane(Dataplane* dataplane) noexcept { the_dataplane = dataplane; }

Worker::Worker(Dataplane& dataplane, unsigned index)
    : dataplane_(dataplane),
      index_(index),
      counters_(dataplane.counters[index]),
      tx_(dataplane.ports.size()),
      frames_(max_burst),
      ahead_(max_burst),
      stall_cycles_(rte_get_tsc_hz() / 1000) {
    if (index < dataplane.command_rings.size() && dataplane.command_acks != nullptr &&
        index < dataplane.relay_shards.size() && dataplane.relay_shards[index] != nullptr) {
        commands_ = dataplane.command_rings[index];
        ack_ = &dataplane.command_acks[index];
    }
}

void Worker::flush(TxBuffer& tx, std::uint16_t port) noexcept {
    if (tx.count == 0) return;
    const std::uint16_t sent =
        rte_eth_tx_burst(port, static_cast<std::uint16_t>(index_), tx.packets,
                         static_cast<std::uint16_t>(tx.count));
    // handle_frame() counted these as transmitted; the ones the queue refused move to tx_full.
    for (unsigned i = sent; i < tx.count; ++i) {
        --counters_.tx_packets;
        counters_.tx_bytes -= rte_pktmbuf_pkt_len(tx.packets[i]);
        counters_.drop(DropReason::tx_full);
        rte_pktmbuf_free(tx.packets[i]);
    }
    tx.count = 0;
}

namespace {

// The frame the handlers see in a single-segment mbuf.
[[gnu::always_inline]] inline Frame frame_of(rte_mbuf* m) noexcept {
    Frame frame;
    frame.data = rte_pktmbuf_mtod(m, std::byte*);
    frame.length = rte_pktmbuf_data_len(m);
    frame.capacity = static_cast<std::uint16_t>(frame.length + rte_pktmbuf_tailroom(m));
    frame.headroom = rte_pktmbuf_headroom(m);
    // A NIC with RX checksum offload (requested in setup_port) has checked the UDP checksum.
    switch (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
    case RTE_MBUF_F_RX_L4_CKSUM_GOOD: frame.l4_checksum = L4ChecksumHint::good; break;
    case RTE_MBUF_F_RX_L4_CKSUM_BAD: frame.l4_checksum = L4ChecksumHint::bad; break;
    default: break;
    }
    return frame;
}

}  // namespace

void Worker::handle(rte_mbuf* m, const PortContext& context, TxBuffer& tx, RelayState* relay,
                    SfuState* sfu, bool hairpin) noexcept {
    if (m->nb_segs != 1) {
        ++counters_.rx_packets;
        counters_.rx_bytes += rte_pktmbuf_pkt_len(m);
        counters_.drop(DropReason::multi_segment);
        rte_pktmbuf_free(m);
        return;
    }
    Frame frame = frame_of(m);
    const Verdict verdict = hairpin ? handle_hairpin(frame, context, counters_, relay)
                                    : handle_frame(frame, context, counters_, relay, sfu);
    dispatch(m, frame, verdict, tx, sfu);
}

void Worker::handle_express(rte_mbuf* m, Frame& frame, const SfuAhead& ahead,
                            const PortContext& context, TxBuffer& tx, SfuState& sfu) noexcept {
    ++counters_.rx_packets;
    counters_.rx_bytes += rte_pktmbuf_data_len(m);  // as received: the look-ahead trimmed it
    const Verdict verdict = sfu_express_ahead(frame, context, counters_, sfu, ahead);
    count_sfu_express(verdict, frame, counters_);
    dispatch(m, frame, verdict, tx, &sfu);
}

void Worker::dispatch(rte_mbuf* m, const Frame& frame, Verdict verdict, TxBuffer& tx,
                      SfuState* sfu) noexcept {
    if (verdict.goes_to_control()) {
        hand_to_control(m, tx);
        return;
    }
    if (!verdict.transmits() && !verdict.hairpins() && !verdict.fans_out()) {
        rte_pktmbuf_free(m);
        return;
    }
    // A handler may have moved the frame's start (the relay puts longer headers in front).
    m->data_off = static_cast<std::uint16_t>(frame.data - static_cast<std::byte*>(m->buf_addr));
    m->data_len = frame.length;
    m->pkt_len = frame.length;
    m->ol_flags = 0;
    if (verdict.hairpins()) {
        hand_to_hairpin(m, tx);
        return;
    }
    if (verdict.fans_out()) {
        fan_out(m, sfu->shard.fan_out(), tx);
        // The copies may have filled the TX buffer: the frame's own copy needs a place.
        if (tx.count == max_burst)
            flush(tx, dataplane_.ports[static_cast<std::size_t>(&tx - tx_.data())].id);
    }
    tx.packets[tx.count++] = m;
}

void Worker::fan_out(rte_mbuf* m, const SfuFanOut& fan, TxBuffer& tx) noexcept {
    const std::uint16_t port = dataplane_.ports[static_cast<std::size_t>(&tx - tx_.data())].id;
    rte_mempool* pool = dataplane_.sfu_copy_pool;
    const std::span<const SfuDestination> copies = fan.copies();
    // A copy is two mbufs of the copy pool: its headers, chained to an indirect mbuf on the
    // frame's payload (the payload never copied; the frame stays until the last copy has
    // left). They are taken a chunk at a time, one pool call for all (the per-lcore cache),
    // the frame's reference count raised once for the chunk, and each indirect mbuf made as
    // rte_pktmbuf_attach() makes it but for its reference (one atomic add per copy there,
    // ≈ 20 cycles each). Cost per copy: two mbufs, 64 bytes of header written, two of TX.
    constexpr std::size_t chunk = 32;
    rte_mbuf* mbufs[2 * chunk];
    // A frame in an external buffer (some PMDs' RX) or itself indirect goes through
    // rte_pktmbuf_clone(), which knows those.
    const bool direct = RTE_MBUF_DIRECT(m);
    for (std::size_t first = 0; first < copies.size(); first += chunk) {
        const std::size_t n = std::min(chunk, copies.size() - first);
        if (!direct || pool == nullptr ||
            rte_mempool_get_bulk(pool, reinterpret_cast<void**>(mbufs),
                                 static_cast<unsigned>(2 * n)) != 0) {
            for (std::size_t i = first; i < first + n; ++i) fan_out_one(m, fan, copies[i], tx);
            continue;
        }
        rte_mbuf_refcnt_update(m, static_cast<std::int16_t>(n));
        for (std::size_t i = 0; i < n; ++i) {
            const SfuDestination& d = copies[first + i];
            rte_mbuf* header = mbufs[2 * i];
            rte_mbuf* payload = mbufs[2 * i + 1];
            // rte_mempool_get_bulk() as rte_mbuf_raw_alloc() takes them: a free mbuf has one
            // reference, one segment and no next (rte_pktmbuf_free() leaves it so); the other
            // fields rte_pktmbuf_reset() would set are set below, each once. A copy pool's
            // mbufs are never external.
            for (rte_mbuf* fresh : {header, payload}) {
                fresh->tx_offload = 0;
                fresh->vlan_tci = 0;
                fresh->vlan_tci_outer = 0;
                fresh->port = m->port;
                fresh->packet_type = 0;
            }
            header->ol_flags = 0;
            header->data_off = RTE_PKTMBUF_HEADROOM;
            // rte_pktmbuf_attach()'s fields (DPDK 22.11) for a direct frame, its reference
            // taken above; its data starting at the payload.
            payload->priv_size = m->priv_size;
            payload->ol_flags = m->ol_flags | RTE_MBUF_F_INDIRECT;
            rte_mbuf_iova_set(payload, rte_mbuf_iova_get(m));
            payload->buf_addr = m->buf_addr;
            payload->buf_len = m->buf_len;
            payload->data_off = static_cast<std::uint16_t>(m->data_off + fan.payload_offset);
            payload->data_len = fan.payload_length;
            payload->pkt_len = fan.payload_length;
            // The headers: all 64 bytes of the scratch where the header mbuf has room for them
            // (a copy of a fixed size, inline), else their own length.
            auto* room = rte_pktmbuf_mtod(header, std::byte*);
            if (rte_pktmbuf_tailroom(header) >= d.header.size())
                std::memcpy(room, d.header.data(), d.header.size());
            else
                std::memcpy(room, d.header.data(), d.header_length);
            header->data_len = d.header_length;
            header->pkt_len = std::uint32_t{d.header_length} + fan.payload_length;
            header->nb_segs = 2;
            header->next = payload;
            // The TX buffer holds a burst; a fan-out of many legs may need it emptied first.
            if (tx.count == max_burst) flush(tx, port);
            tx.packets[tx.count++] = header;
        }
    }
}

void Worker::fan_out_one(rte_mbuf* m, const SfuFanOut& fan, const SfuDestination& d,
                         TxBuffer& tx) noexcept {
    const std::uint16_t port = dataplane_.ports[static_cast<std::size_t>(&tx - tx_.data())].id;
    rte_mempool* pool = dataplane_.sfu_copy_pool;
    if (tx.count == max_burst) flush(tx, port);
    rte_mbuf* header = pool != nullptr ? rte_pktmbuf_alloc(pool) : nullptr;
    // The clone shares `m`'s data (its reference count raised): the payload is never copied,
    // and stays until the last copy has left.
    rte_mbuf* payload = header != nullptr ? rte_pktmbuf_clone(m, pool) : nullptr;
    char* room = payload != nullptr ? rte_pktmbuf_append(header, d.header_length) : nullptr;
    if (room == nullptr || rte_pktmbuf_adj(payload, fan.payload_offset) == nullptr ||
        rte_pktmbuf_chain(header, payload) != 0) {
        // sfu_forward() counted it sent; it was not.
        --counters_.tx_packets;
        counters_.tx_bytes -= d.header_length + fan.payload_length;
        counters_.drop(DropReason::fan_out_no_buffer);
        rte_pktmbuf_free(payload);
        rte_pktmbuf_free(header);
        return;
    }
    std::memcpy(room, d.header.data(), d.header_length);
    header->ol_flags = 0;
    tx.packets[tx.count++] = header;
}

void Worker::run_sfu_commands(SfuShard& shard) noexcept {
    rte_ring* ring = index_ < dataplane_.sfu_command_rings.size()
                         ? dataplane_.sfu_command_rings[index_]
                         : nullptr;
    if (ring == nullptr) return;
    // A kill is a look-up and an erase: a few an iteration keep its packets' wait short.
    constexpr unsigned kills_per_iteration = 8;
    SfuKill kill;
    for (unsigned i = 0; i < kills_per_iteration &&
                         rte_ring_sc_dequeue_elem(ring, &kill, sizeof kill) == 0;
         ++i)
        (void)kill_leg(shard, kill);
}

void Worker::post_sfu_messages(SfuShard& shard) noexcept {
    rte_ring* ring = index_ < dataplane_.sfu_messages.size() ? dataplane_.sfu_messages[index_]
                                                            : nullptr;
    if (ring == nullptr) return;
    // A ring the control thread has not emptied keeps the rest in the outbox for later.
    SfuMessage message;
    for (const SfuMessage* next = shard.peek(); next != nullptr; next = shard.peek()) {
        message = *next;  // rte_ring copies from a non-const pointer
        if (rte_ring_sp_enqueue_elem(ring, &message, sizeof message) != 0) return;
        (void)shard.pop(message);
    }
}

void Worker::hand_to_hairpin(rte_mbuf* m, const TxBuffer& tx) noexcept {
    const Dataplane& d = dataplane_;
    m->port = d.ports[static_cast<std::size_t>(&tx - tx_.data())].id;
    // The relayed address's port names the worker (steer.h), as for a peer's datagram.
    const int owner = owner_worker({rte_pktmbuf_mtod(m, const std::byte*),
                                    rte_pktmbuf_data_len(m)},
                                   d.workers, d.relay_ports);
    const std::size_t ring = index_ * d.workers + static_cast<std::size_t>(owner);
    if (owner >= 0 && static_cast<unsigned>(owner) != index_ && ring < d.hairpin_rings.size() &&
        d.hairpin_rings[ring] != nullptr && rte_ring_sp_enqueue(d.hairpin_rings[ring], m) == 0)
        return;
    // handle_frame() counted it as handed off; it was not. A port no worker owns (the
    // partition's remainder) has no allocation: never the case when the ring was full.
    --counters_.handed_off;
    --counters_.hairpinned;
    counters_.drop(owner >= 0 && static_cast<unsigned>(owner) != index_
                       ? DropReason::handoff_ring_full
                       : DropReason::relay_no_allocation);
    rte_pktmbuf_free(m);
}

void Worker::hand_to_control(rte_mbuf* m, const TxBuffer& tx) noexcept {
    // The TX buffer is the port's (tx_[p]): the control thread reads the port from the mbuf,
    // which not every PMD sets (net_ring does not).
    m->port = dataplane_.ports[static_cast<std::size_t>(&tx - tx_.data())].id;
    rte_ring* ring =
        index_ < dataplane_.to_control.size() ? dataplane_.to_control[index_] : nullptr;
    if (ring != nullptr && rte_ring_sp_enqueue(ring, m) == 0) return;
    // handle_frame() counted it as handed off to the control thread; it was not.
    --counters_.handed_off;
    --counters_.to_control;
    counters_.drop(DropReason::control_ring_full);
    rte_pktmbuf_free(m);
}

void Worker::send_for_control() noexcept {
    // A few probes a second at most: one tx_burst per frame keeps this simple. Costs an empty
    // ring check (≈ 2 ns) per loop iteration otherwise.
    rte_mbuf* frames[32];
    const unsigned n = rte_ring_sc_dequeue_burst(dataplane_.from_control,
                                                 reinterpret_cast<void**>(frames), 32, nullptr);
    for (unsigned i = 0; i < n; ++i) {
        if (rte_eth_tx_burst(frames[i]->port, static_cast<std::uint16_t>(index_), &frames[i],
                             1) == 1) {
            ++counters_.control_sent;
        } else {
            ++counters_.control_refused;
            rte_pktmbuf_free(frames[i]);
        }
    }
}

void Worker::run_command(RelayShard& shard) noexcept {
    // A user's kill visits this many slots an iteration: a few microseconds of cold records
    // at most, so that the packets of the iteration wait no longer than a sweep makes them.
    constexpr std::size_t kill_slots_per_iteration = 64;
    if (!command_running_) {
        if (rte_ring_sc_dequeue_elem(commands_, &command_, sizeof command_) != 0) return;
        command_running_ = true;
        command_cursor_ = 0;
        command_killed_ = 0;
    }
    bool done = true;
    if (command_.target == RelayKill::Target::allocation) {
        command_killed_ = kill_allocation(shard, command_.slot, command_.key) ? 1 : 0;
    } else {
        const KillProgress progress =
            kill_user_allocations(shard, command_.username_hash, command_.username_length,
                                  command_cursor_, kill_slots_per_iteration);
        command_killed_ += static_cast<std::uint32_t>(progress.killed);
        done = progress.done;
    }
    if (!done) return;
    // Release: the erases above are visible to the control thread that sees this value.
    ack_->done.store(std::uint64_t{command_.sequence} << 32 | command_killed_,
                     std::memory_order_release);
    command_running_ = false;
}

unsigned Worker::poll() noexcept {
    Dataplane& d = dataplane_;
    rte_mbuf* rx[max_burst];
    unsigned taken = 0;
    // The iteration's start: its busy cycles (counters.h) if it takes packets, and the relay's
    // time unless a test injects it.
    const std::uint64_t start = rte_rdtsc();
    // The relay's state for this iteration: the shard and the time, read once.
    std::optional<RelayState> relay_state;
    if (index_ < d.relay_shards.size() && d.relay_shards[index_] != nullptr) {
        const std::uint64_t now = d.relay_clock != nullptr ? d.relay_clock() : start;
        relay_state.emplace(RelayState{*d.relay_shards[index_], now,
                                       d.start_unix_s + (now - d.start_tsc) / d.tsc_hz});
        // Expired allocations, permissions and channels go a few slots per iteration.
        sweep(*d.relay_shards[index_], now, 4);
    }
    RelayState* relay = relay_state ? &*relay_state : nullptr;
    // The SFU's state likewise, with the context and the membership as published now: the
    // worker announces its quiescent state only after the iteration (worker_main()), so both
    // stay.
    std::optional<SfuState> sfu_state;
    const SfuContext* sfu_context = rcu_dereference(d.sfu_context);
    if (index_ < d.sfu_shards.size() && d.sfu_shards[index_] != nullptr &&
        sfu_context != nullptr) {
        const std::uint64_t now = d.relay_clock != nullptr ? d.relay_clock() : start;
        sfu_state.emplace(SfuState{*sfu_context, *d.sfu_shards[index_],
                                   rcu_dereference(d.sfu_membership), now,
                                   d.start_unix_s + (now - d.start_tsc) / d.tsc_hz});
        // Silent legs go a few slots per iteration, as the relay's expiries.
        sweep(*d.sfu_shards[index_], *sfu_context, now, 4);
    }
    SfuState* sfu = sfu_state ? &*sfu_state : nullptr;
    // The split of busy_cycles (counters.h): two TSC reads around each burst, none per
    // packet; kept only if the iteration takes packets.
    std::uint64_t rx_cycles = 0;
    for (std::size_t p = 0; p < d.ports.size(); ++p) {
        const PortContext* context = rcu_dereference(d.ports[p].context);
        const std::uint64_t rx_start = rte_rdtsc();
        const std::uint16_t n = rte_eth_rx_burst(d.ports[p].id, static_cast<std::uint16_t>(index_),
                                                 rx, static_cast<std::uint16_t>(d.burst));
        rx_cycles += rte_rdtsc() - rx_start;
        taken += n;
        // One worker owns everything; otherwise the port's rules brought each packet to its
        // owner's queue, or software finds the owner.
        const bool steer = d.workers > 1 && d.ports[p].steer_in_software;
        // The SFU's lane for the whole burst: its media checked and their look-ups started
        // before the first frame is handled. A multi-segment frame (length 0 here) is not
        // media to it; handle() drops it.
        const bool look_ahead = sfu != nullptr && n > 1;
        Frame* const frames = frames_.data();
        SfuAhead* const ahead = ahead_.data();
        if (look_ahead) {
            for (std::uint16_t i = 0; i < n; ++i)
                frames[i] = rx[i]->nb_segs == 1 ? frame_of(rx[i]) : Frame{};
            sfu_look_ahead({frames, n}, *context, *sfu, {ahead, n});
        }
        for (std::uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = rx[i];
            const int owner =
                steer ? owner_worker({rte_pktmbuf_mtod(m, const std::byte*),
                                      rte_pktmbuf_data_len(m)},
                                     d.workers, d.relay_ports)
                      : -1;
            if (owner >= 0 && static_cast<unsigned>(owner) != index_) {
                // Not ours: hand it to its owner, which reads the port from the mbuf.
                ++counters_.rx_packets;
                counters_.rx_bytes += rte_pktmbuf_pkt_len(m);
                m->port = d.ports[p].id;
                if (rte_ring_sp_enqueue(d.rings[index_ * d.workers + owner], m) == 0) {
                    ++counters_.handed_off;
                } else {
                    counters_.drop(DropReason::handoff_ring_full);
                    rte_pktmbuf_free(m);
                }
                continue;
            }
            if (look_ahead && ahead[i].express)
                handle_express(m, frames[i], ahead[i], *context, tx_[p], *sfu);
            else
                handle(m, *context, tx_[p], relay, sfu);
        }
    }
    for (unsigned from = 0; from < d.workers; ++from) {
        if (from == index_) continue;
        for (const bool hairpin : {false, true}) {
            const std::vector<rte_ring*>& rings = hairpin ? d.hairpin_rings : d.rings;
            const std::size_t r = from * d.workers + index_;
            if (r >= rings.size() || rings[r] == nullptr) continue;
            const unsigned n = rte_ring_sc_dequeue_burst(rings[r], reinterpret_cast<void**>(rx),
                                                         d.burst, nullptr);
            taken += n;
            for (unsigned i = 0; i < n; ++i) {
                for (std::size_t p = 0; p < d.ports.size(); ++p) {
                    if (d.ports[p].id != rx[i]->port) continue;
                    handle(rx[i], *rcu_dereference(d.ports[p].context), tx_[p], relay,
                           hairpin ? nullptr : sfu, hairpin);
                    break;
                }
            }
        }
    }
    // Nothing is buffered for TX unless something was taken in.
    if (taken != 0) {
        const std::uint64_t tx_start = rte_rdtsc();
        for (std::size_t p = 0; p < d.ports.size(); ++p) flush(tx_[p], d.ports[p].id);
        const std::uint64_t end = rte_rdtsc();
        const std::uint64_t cycles = end - start;
        if (cycles > stall_cycles_) {
            // Preempted or stalled: the time is not the iteration's work (counters.h).
            ++counters_.stalled_iterations;
            counters_.stalled_cycles += cycles;
        } else {
            counters_.busy_cycles += cycles;
            counters_.busy_rx_cycles += rx_cycles;
            counters_.busy_tx_cycles += end - tx_start;
        }
    }
    if (index_ == 0 && d.from_control != nullptr) send_for_control();
    if (sfu != nullptr) {
        run_sfu_commands(sfu->shard);
        if (sfu->shard.queued() != 0) post_sfu_messages(sfu->shard);
    }
    // The operator's orders: with none, a test of the ring pointer and the flag, and the
    // ring's two indexes compared (rte_ring_empty()): 7 instructions an iteration (callgrind
    // on engine_pipeline_bench), none per packet.
    if (commands_ != nullptr && (command_running_ || !rte_ring_empty(commands_)))
        run_command(*d.relay_shards[index_]);
    return taken;
}

int worker_main(void* argument) {
    const auto index = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(argument));
    Worker worker(*the_dataplane, index);  // allocates its buffers before the loop
    // QSBR: a registered reader announces a quiescent state once per loop iteration and goes
    // offline before it stops, so that synchronize_rcu() in the control thread never waits
    // on a worker that has left.
    rcu_register_thread();
    while (!the_dataplane->stop.load(std::memory_order_relaxed)) {
        worker.poll();
        rcu_quiescent_state();
    }
    rcu_thread_offline();
    rcu_unregister_thread();
    return 0;
}

}  // namespace engine
