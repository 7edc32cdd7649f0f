// The SFU role's state (design.md §3, role `sfu`; docs/sfu.md, "Legs, sessions, membership"):
// one worker's leg table, and the membership snapshot every worker reads.
//
// Who owns what.
//   - SfuTable: one per worker, holding the legs whose 5-tuples that worker owns (design.md §3:
//     traffic to the SFU port is owned by hash(src ip, src port)). The owner is its only
//     writer: it looks legs up by 5-tuple (every datagram from a participant), inserts them on
//     admission, touches them on every datagram and erases them when they fall silent, with
//     no lock, no syscall and no heap allocation: the constructor allocates everything. The
//     control thread may call snapshot() and list() (punchctl's `sfu` listing) at any time
//     while the worker runs; nothing else. They never make the worker wait.
//   - SfuMembership: immutable, built by the control thread (SfuMembershipBuilder) from the
//     workers' join and leave messages (SfuMessage) and published to every worker through RCU
//     (liburcu QSBR, design.md §3). Forwarding reads it: which legs a session has, on which
//     worker, at which 5-tuple and MAC, and what each subscriber selected; for a published
//     leg, from its forwarding plan (SfuPlan), which the snapshot's constructor builds on the
//     control thread, found by the leg's worker and slot.
//
// Layout of the table (docs/architecture.md, "SFU leg table"):
//   - records: one arena of `capacity` slots of four cache lines (256 bytes), allocated once.
//     Line 0 holds what a look-up and the listing read (sequence, state, 5-tuple, session);
//     line 1 the participant's name; line 2 what every datagram writes (last heard, counters,
//     the client's MAC); line 3 the owner's links. Free slots are a LIFO stack threaded
//     through the free records.
//   - 5-tuple index: open addressing with linear probing over 8-byte entries (32 bits of the
//     key's seeded hash, slot + 1; 0 is empty), at most half full, erased by backward shift:
//     the relay table's index (relay_table.h), so that a look-up reads one index line and the
//     record's first line.
//   - session index: open addressing over 16-byte entries (session id, first local leg + 1,
//     local leg count), at most half full, erased by backward shift. The legs of one session
//     on this worker are a doubly linked list through their records, so that admission checks
//     a replayed participant and the session's size by walking at most
//     sfu.max_legs_per_session records, without a scan of the table.
//
// Concurrent listing: a per-slot seqlock, as RelayTable's (relay_table.h's header comment has
// the argument): the owner makes each change the listing can see between two increments of
// the slot's sequence; the control thread keeps a copy only when it read the same even
// sequence before and after. Fields the control thread reads are detail::SeqField (atomics,
// plain moves on x86). The last-heard time and the counters change outside the seqlock, one
// relaxed store each per datagram: each is a value it had while the snapshot was taken.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/neighbour.h"  // MacAddress
#include "engine/relay_table.h"  // FiveTuple, detail::SeqField, detail::TableMemory
#include "stun/sfu_token.h"

namespace engine {

/// A participant's name (stun/sfu_token.h: 1 to 64 characters of A-Z a-z 0-9 . _ ~ -),
/// inline: a message on a ring and a leg record hold it by value.
struct SfuParticipant {
    std::array<char, stun::sfu_participant_max> bytes{};
    std::uint8_t length = 0;

    /// `name` truncated to 64 bytes (a valid participant never is).
    [[nodiscard]] static SfuParticipant from(std::string_view name) noexcept;
    [[nodiscard]] std::string_view view() const noexcept { return {bytes.data(), length}; }
    friend bool operator==(const SfuParticipant& a, const SfuParticipant& b) noexcept {
        return a.view() == b.view();
    }
};

/// One leg's traffic since admission, as the owner counts it.
struct SfuLegCounters {
    std::uint64_t rx_packets = 0;  ///< datagrams from the participant (media and STUN)
    std::uint64_t rx_bytes = 0;    ///< their UDP payload bytes
    std::uint64_t forwarded_packets = 0;  ///< copies of its media sent to subscribers
    std::uint64_t forwarded_bytes = 0;    ///< their UDP payload bytes
    std::uint64_t filtered = 0;  ///< copies not sent: the subscriber paused it or chose SSRCs
};

/// What the control thread sees of one leg: a consistent copy.
struct SfuLegSnapshot {
    std::uint32_t slot = 0;
    FiveTuple key;
    std::uint64_t session = 0;
    SfuParticipant participant;
    MacAddress client_mac{};
    std::uint64_t last_heard = 0;  ///< ticks of the owner's clock
    std::uint64_t admitted = 0;    ///< ticks of the owner's clock: when the leg was made
    SfuLegCounters counters;
};

class SfuTable;

/// One leg in an SfuTable's slot. Only the table makes them.
class alignas(64) SfuLeg {
public:
    [[nodiscard]] bool live() const noexcept { return state_.get() != 0; }
    [[nodiscard]] FiveTuple key() const noexcept;
    [[nodiscard]] bool has_key(const FiveTuple& key) const noexcept {
        // Five words compared without a branch each.
        const auto& w = key.words();
        return ((key_[0].get() ^ w[0]) | (key_[1].get() ^ w[1]) | (key_[2].get() ^ w[2]) |
                (key_[3].get() ^ w[3]) | (key_[4].get() ^ w[4])) == 0;
    }
    [[nodiscard]] std::uint64_t session() const noexcept { return session_.get(); }
    [[nodiscard]] SfuParticipant participant() const noexcept;
    [[nodiscard]] MacAddress client_mac() const noexcept;
    [[nodiscard]] std::uint64_t last_heard() const noexcept { return last_heard_.get(); }
    /// When the leg was admitted (the owner's clock), for its age in the listing.
    [[nodiscard]] std::uint64_t admitted() const noexcept { return admitted_.get(); }

    /// The owner's per-datagram bookkeeping: the silence timer reset, the datagram counted.
    void heard(std::uint64_t now_ticks, std::size_t payload_bytes) noexcept {
        last_heard_.set_relaxed(now_ticks);
        counters_[0].set_relaxed(counters_[0].get() + 1);
        counters_[1].set_relaxed(counters_[1].get() + payload_bytes);
    }
    void count_forwarded(std::uint64_t copies, std::size_t payload_bytes) noexcept {
        counters_[2].set_relaxed(counters_[2].get() + copies);
        counters_[3].set_relaxed(counters_[3].get() + copies * payload_bytes);
    }
    void count_filtered(std::uint64_t copies) noexcept {
        counters_[4].set_relaxed(counters_[4].get() + copies);
    }
    [[nodiscard]] SfuLegCounters counters() const noexcept {
        return {counters_[0].get(), counters_[1].get(), counters_[2].get(), counters_[3].get(),
                counters_[4].get()};
    }

private:
    friend class SfuTable;
    SfuLeg() noexcept = default;

    // The seqlock's writer side, as Allocation's (relay_table.h).
    void begin_write() noexcept {
        sequence_.store(sequence_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
    }
    void end_write() noexcept {
        sequence_.store(sequence_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_release);
    }

    // Line 0.
    std::atomic<std::uint32_t> sequence_{0};
    detail::SeqField<std::uint32_t> state_;  // 0: free; else 1 | participant length << 8
    std::array<detail::SeqField<std::uint64_t>, 5> key_;
    detail::SeqField<std::uint64_t> session_;
    // Line 1: the participant's name, 8 bytes a word.
    alignas(64) std::array<detail::SeqField<std::uint64_t>, 8> participant_;
    // Line 2.
    alignas(64) detail::SeqField<std::uint64_t> last_heard_;
    std::array<detail::SeqField<std::uint64_t>, 5> counters_;
    detail::SeqField<std::uint64_t> mac_;
    detail::SeqField<std::uint64_t> admitted_;  // written once, by insert()
    // Line 3: the owner's alone.
    alignas(64) std::uint32_t session_previous_ = 0;  // slot + 1; 0: none
    std::uint32_t session_next_ = 0;
    std::uint32_t next_free_ = 0;  // a free slot: the next free slot + 1 (0: none)
};
static_assert(sizeof(SfuLeg) == 256);

/// One worker's legs (the header comment).
class SfuTable {
public:
    static constexpr std::uint32_t no_slot = 0xFFFFFFFF;

    /// Allocates and touches everything: `capacity` records (1..2^20: sfu.max_legs), the
    /// 5-tuple and session indexes. `seed` seeds the hashes (random in production, fixed in
    /// tests). Throws std::invalid_argument for a capacity outside 1..2^20, std::bad_alloc.
    SfuTable(std::uint32_t capacity, std::uint64_t seed);

    /// The leg of `key`, or no_slot. Cost: a seeded hash, one index line, one record line.
    [[nodiscard]] std::uint32_t find(const FiveTuple& key) const noexcept;
    /// A look-up started ahead of its frame (sfu_look_ahead()), in two steps a burst apart so
    /// that each one's loads overlap the others': the key's tag, its index line's load
    /// started; then the slot the index names first for the tag, its record's key line and
    /// per-datagram line loads started (no_slot: none). The slot is a hint, the key not
    /// compared: the caller checks the leg there with live() and has_key(), else find()s.
    [[nodiscard]] std::uint32_t start_find(const FiveTuple& key) const noexcept;
    [[nodiscard]] std::uint32_t slot_hint(std::uint32_t tag) const noexcept;
    /// This worker's leg of `participant` in `session`, or no_slot. Cost: a session look-up
    /// and a walk of the session's local legs.
    [[nodiscard]] std::uint32_t find_participant(std::uint64_t session,
                                                 std::string_view participant) const noexcept;
    /// This worker's legs of `session`.
    [[nodiscard]] std::uint32_t session_legs(std::uint64_t session) const noexcept;

    /// A new leg (the caller checked that `key` has none); no_slot when the table is full.
    /// Heard and admitted now, counters zero.
    std::uint32_t insert(const FiveTuple& key, std::uint64_t session,
                         const SfuParticipant& participant, const MacAddress& client_mac,
                         std::uint64_t now_ticks) noexcept;
    /// Removes the leg in `slot` (live).
    void erase(std::uint32_t slot) noexcept;

    [[nodiscard]] SfuLeg& at(std::uint32_t slot) noexcept { return legs_[slot]; }
    [[nodiscard]] const SfuLeg& at(std::uint32_t slot) const noexcept { return legs_[slot]; }
    [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
    /// The highest slot ever used + 1 (the owner's read).
    [[nodiscard]] std::uint32_t slots_used() const noexcept {
        return slots_used_.load(std::memory_order_relaxed);
    }

    /// The next `max_slots` slots round robin from the table's sweep cursor: calls
    /// `expired(slot)` for each live leg last heard `timeout_ticks` or more before `now_ticks`
    /// (docs/sfu.md: "A leg expires after sfu.leg_timeout_s without a datagram"). The callee
    /// erases the leg or leaves it (to try again on the next pass). Returns the slots visited.
    template <class Expired>
    std::size_t sweep(std::uint64_t now_ticks, std::uint64_t timeout_ticks, std::size_t max_slots,
                      Expired&& expired) {
        const std::uint32_t end = slots_used();
        if (end == 0) return 0;
        std::size_t visited = 0;
        for (; visited < max_slots && visited < end; ++visited) {
            if (sweep_cursor_ >= end) sweep_cursor_ = 0;
            const std::uint32_t slot = sweep_cursor_++;
            const SfuLeg& leg = legs_[slot];
            if (leg.live() && now_ticks - leg.last_heard() >= timeout_ticks &&
                now_ticks >= leg.last_heard())
                expired(slot);
        }
        return visited;
    }

    // --- The control thread's side: any thread may call these, while the owner runs. ---

    enum class SnapshotStatus : std::uint8_t { live, empty, skipped };
    static constexpr unsigned default_snapshot_attempts = 8;

    /// Copies the leg in `slot` (< capacity()) into `out` under the seqlock, at most
    /// `attempts` reads. Never blocks the owner, never allocates.
    [[nodiscard]] SnapshotStatus snapshot(std::uint32_t slot, SfuLegSnapshot& out,
                                          unsigned attempts = default_snapshot_attempts) const
        noexcept;

    struct ListSummary {
        std::size_t listed = 0;
        std::size_t skipped = 0;
    };
    /// Calls `visit(const SfuLegSnapshot&)` for each live leg in slot order, as
    /// RelayTable::list() does.
    template <class Visitor>
    ListSummary list(Visitor&& visit, unsigned attempts = default_snapshot_attempts) const {
        ListSummary summary;
        SfuLegSnapshot copy;
        // Relaxed: a slot beyond the value read was first used after the walk began.
        const std::uint32_t end = slots_used_.load(std::memory_order_relaxed);
        for (std::uint32_t slot = 0; slot < end; ++slot) {
            switch (snapshot(slot, copy, attempts)) {
            case SnapshotStatus::live:
                ++summary.listed;
                visit(static_cast<const SfuLegSnapshot&>(copy));
                break;
            case SnapshotStatus::skipped: ++summary.skipped; break;
            case SnapshotStatus::empty: break;
            }
        }
        return summary;
    }

private:
    struct SessionEntry {
        std::uint64_t session = 0;
        std::uint32_t first = 0;  // slot + 1 of the first local leg; 0: the entry is empty
        std::uint32_t count = 0;
    };

    [[nodiscard]] std::uint64_t hash(const FiveTuple& key) const noexcept;
    [[nodiscard]] std::uint32_t session_home(std::uint64_t session) const noexcept;
    [[nodiscard]] std::uint32_t find_session(std::uint64_t session) const noexcept;
    void erase_index(std::uint32_t slot, std::uint64_t tag) noexcept;
    void erase_session_entry(std::uint32_t at) noexcept;

    std::uint32_t capacity_ = 0;
    std::uint32_t size_ = 0;
    std::atomic<std::uint32_t> slots_used_{0};
    detail::TableMemory memory_;
    SfuLeg* legs_ = nullptr;
    std::uint64_t* index_ = nullptr;  // (hash >> 32) << 32 | (slot + 1); 0: empty
    std::uint32_t index_mask_ = 0;
    SessionEntry* sessions_ = nullptr;
    std::uint32_t session_mask_ = 0;
    std::array<std::uint64_t, 7> seed_{};
    std::uint32_t free_head_ = 0;  // slot + 1 of the top free slot
    std::uint32_t sweep_cursor_ = 0;
};

/// A worker's word to the control thread about one of its legs (docs/sfu.md: "a worker that
/// admits or expires a leg posts a join or leave message"). Trivially copyable: a ring holds it
/// by value.
struct SfuMessage {
    enum class Kind : std::uint8_t { join, leave };
    FiveTuple key;
    std::uint64_t session = 0;
    SfuParticipant participant;
    MacAddress client_mac{};
    Kind kind = Kind::join;
    std::uint8_t reserved = 0;
    std::uint16_t worker = 0;  ///< the leg's owner
    std::uint32_t slot = SfuTable::no_slot;  ///< its slot there (for a kill order)
};
static_assert(std::is_trivially_copyable_v<SfuMessage> && sizeof(SfuMessage) % 4 == 0,
              "rte_ring's elements are copied as 4-byte words");

/// What a subscriber receives of its session (docs/sfu.md, "Per-subscriber selection"): set by
/// the operator (punchctl sfu pause|resume|select) or the coordinator.
struct SfuSelection {
    std::vector<SfuParticipant> paused;  ///< publishers nothing is sent from
    std::vector<std::uint32_t> ssrcs;    ///< RTP SSRCs sent; empty: all
    /// Whether a datagram from `publisher`, of RTP SSRC `ssrc` (nullopt: RTCP or not RTP,
    /// never filtered by SSRC), goes to this subscriber.
    [[nodiscard]] bool allows(const SfuParticipant& publisher,
                              std::optional<std::uint32_t> ssrc) const noexcept;
};

/// One leg as every worker sees it.
struct SfuMember {
    FiveTuple key;  ///< client → the SFU address it was admitted on
    SfuParticipant participant;
    MacAddress client_mac{};  ///< where its datagrams came from: where they go back to
    std::uint16_t worker = 0;
    std::uint32_t slot = SfuTable::no_slot;
    SfuSelection selection;
};

struct SfuSession {
    std::uint64_t id = 0;
    std::vector<SfuMember> members;  ///< in order of admission
};

/// One subscriber in a publishing leg's forwarding plan: what a copy's headers take from the
/// member, copied out of it, so that a copy reads one contiguous array and not the session's
/// member vector. 64 bytes: one line.
struct alignas(64) SfuPlanDestination {
    FiveTuple key;            ///< the subscriber → the SFU address it was admitted on
    MacAddress client_mac{};  ///< where its datagrams go
    std::uint32_t ssrc_count = 0;  ///< its SSRC allow-list's length (0: every SSRC)
    /// An IPv4 subscriber's addresses summed as 16-bit values (RFC 1071), the terms of the
    /// header checksums that differ between copies; 0 for IPv6.
    std::uint32_t address_terms = 0;
    const std::uint32_t* ssrcs = nullptr;  ///< into the membership's SfuSelection::ssrcs
};
static_assert(sizeof(SfuPlanDestination) == 64);

/// A publishing leg's forwarding plan (docs/architecture.md, "SFU leg table and membership"):
/// where its datagrams go, the pauses of this publisher already applied. Indexed by the leg's
/// worker and slot; the key and session say whether the leg in that slot now is the one the
/// plan was built for (a slot is reused as soon as a leg expires, before the next publish).
/// Two lines, the first destination in the second: a 1:1 call's one copy is read with the
/// plan (the pair of lines the adjacent-line prefetcher fetches together), not after it.
struct alignas(128) SfuPlan {
    FiveTuple publisher;  ///< the leg's key; the default (family 0) matches no leg
    std::uint64_t session = 0;
    std::uint32_t rest = 0;    ///< its second destination in the membership's array
    std::uint16_t count = 0;   ///< its destinations, in order of admission
    std::uint16_t paused = 0;  ///< subscribers that paused this publisher: filtered per datagram
    /// The publisher's name the pauses were applied for: a leg re-admitted on the same 5-tuple
    /// under another name before the next publish is not paused by them.
    const SfuParticipant* participant = nullptr;
    SfuPlanDestination head;  ///< the first destination (count > 0)
};
static_assert(sizeof(SfuPlan) == 128);

/// The published membership: immutable; sessions sorted by id; and built from them, a
/// forwarding plan for each member (SfuPlan), per worker an array indexed by slot.
class SfuMembership {
public:
    SfuMembership() = default;
    /// Builds the plans; throws std::length_error for a session of more than 65536 members
    /// (sfu.max_legs_per_session is at most 1024). Memory: per worker, an SfuPlan (128 bytes)
    /// for each slot up to the highest member's; an SfuPlanDestination (64 bytes) per ordered
    /// pair of members of a session but each plan's first (n (n - 2) for n members).
    explicit SfuMembership(std::vector<SfuSession> sessions);
    SfuMembership(const SfuMembership&) = delete;  // the plans point into sessions_
    SfuMembership& operator=(const SfuMembership&) = delete;
    /// The session `id`, or null. Cost: a binary search.
    [[nodiscard]] const SfuSession* find(std::uint64_t id) const noexcept;
    [[nodiscard]] std::span<const SfuSession> sessions() const noexcept { return sessions_; }
    /// The plan built for `worker`'s leg in `slot`, or null when no member had that slot.
    /// The caller checks publisher and session against the leg it found. Cost: two lines.
    [[nodiscard]] const SfuPlan* plan(std::uint16_t worker, std::uint32_t slot) const noexcept {
        if (worker >= plans_.size() || slot >= plans_[worker].size()) return nullptr;
        return &plans_[worker][slot];
    }
    /// `worker`'s plans, indexed by slot (empty: none).
    [[nodiscard]] std::span<const SfuPlan> plans(std::uint16_t worker) const noexcept {
        if (worker >= plans_.size()) return {};
        return plans_[worker];
    }
    /// The plan's destination `i` (< plan.count).
    [[nodiscard]] const SfuPlanDestination& destination(const SfuPlan& plan,
                                                        std::size_t i) const noexcept {
        return i == 0 ? plan.head : destinations_[plan.rest + i - 1];
    }

private:
    std::vector<SfuSession> sessions_;
    std::vector<std::vector<SfuPlan>> plans_;  // [worker][slot]
    std::vector<SfuPlanDestination> destinations_;  // each plan's but its first
};

/// `member`'s destination entry (the plan's, and the general path's for a leg not yet in a
/// plan).
[[nodiscard]] SfuPlanDestination plan_destination(const SfuMember& member) noexcept;

/// The control thread's model of every session, from which it publishes SfuMembership
/// snapshots. Not thread-safe: the control thread's alone.
class SfuMembershipBuilder {
public:
    /// `max_legs_per_session`: sfu.max_legs_per_session.
    explicit SfuMembershipBuilder(std::uint32_t max_legs_per_session)
        : max_legs_per_session_(max_legs_per_session) {}

    enum class JoinResult : std::uint8_t {
        joined,    ///< a new member
        repeated,  ///< the same leg was a member already: nothing changed
        replayed,  ///< the participant is a member from another 5-tuple: the first join wins,
                   ///< the caller has the new leg removed (sfu_token_replayed)
        full,      ///< the session has max_legs_per_session members: the caller has the new
                   ///< leg removed (sfu_session_full)
    };
    /// A worker's join message. Two workers admitting legs of one session at once cannot see
    /// each other's: this is where the race is decided (docs/sfu.md).
    JoinResult join(const SfuMessage& message);
    /// A worker's leave message: removes the member with that key and worker, if any; a
    /// session is gone with its last member. Returns whether it removed one.
    bool leave(const SfuMessage& message);

    /// Pauses (or resumes) `publisher` for `subscriber`. False when either is not a member.
    bool pause(std::uint64_t session, std::string_view subscriber, std::string_view publisher,
               bool paused);
    /// Sets `subscriber`'s SSRC allow-list (empty: every SSRC). False when not a member.
    bool select(std::uint64_t session, std::string_view subscriber,
                std::vector<std::uint32_t> ssrcs);

    /// A snapshot of the current model, for publication.
    [[nodiscard]] std::shared_ptr<const SfuMembership> build() const;
    [[nodiscard]] const std::map<std::uint64_t, SfuSession>& sessions() const noexcept {
        return sessions_;
    }

private:
    SfuMember* member(std::uint64_t session, std::string_view participant);

    std::uint32_t max_legs_per_session_;
    std::map<std::uint64_t, SfuSession> sessions_;
};

// The look-up's steps inline: they run once or twice a datagram.

inline std::uint64_t SfuTable::hash(const FiveTuple& key) const noexcept {
    return detail::keyed_hash(key, seed_);  // RelayTable::hash()'s, with this table's seed
}

inline std::uint32_t SfuTable::find(const FiveTuple& key) const noexcept {
    return detail::probe_index(index_, index_mask_, hash(key) >> 32,
                               [&](std::uint32_t slot) { return legs_[slot].has_key(key); });
}

inline std::uint32_t SfuTable::start_find(const FiveTuple& key) const noexcept {
    const auto tag = static_cast<std::uint32_t>(hash(key) >> 32);
    __builtin_prefetch(&index_[tag & index_mask_]);
    return tag;
}

inline std::uint32_t SfuTable::slot_hint(std::uint32_t tag) const noexcept {
    // A probe ends at an empty entry (the index is at most half full); a few entries are one
    // line, and a longer run (rare) gives no hint rather than more loads.
    constexpr unsigned probes = 4;
    std::uint32_t i = tag & index_mask_;
    for (unsigned n = 0; n < probes; ++n, i = (i + 1) & index_mask_) {
        const std::uint64_t entry = index_[i];
        if (entry == 0) return no_slot;
        if (entry >> 32 != tag) continue;
        const std::uint32_t slot = static_cast<std::uint32_t>(entry) - 1;
        const auto* record = reinterpret_cast<const std::byte*>(&legs_[slot]);
        __builtin_prefetch(record);               // line 0: key, session, state
        __builtin_prefetch(record + 2 * 64, 1);  // line 2: written per datagram (heard())
        return slot;
    }
    return no_slot;
}

}  // namespace engine
