// The relay's session table (design.md §3, role `relay`): one per worker, holding the TURN
// allocations (RFC 8656 §6) whose 5-tuples that worker owns, each with its permissions (§9),
// channels (§12), counters, bandwidth bucket and last answer (§5: retransmissions).
//
// Who owns what. The worker that owns a table is its only writer: it looks allocations up by
// 5-tuple (requests and ChannelData from the client) and by relay port (datagrams from peers;
// relay ports are partitioned among the workers, so the port alone names the allocation), and
// inserts, refreshes and erases them, with no lock, no syscall and no heap allocation: the
// constructor allocates and touches every byte the table will use. The control thread may
// call snapshot() and list() (punchctl's /allocations) at any time while the worker runs;
// nothing else. They never make the worker wait.
//
// Layout (docs/architecture.md, "Relay session table", has the figures; issue 4 asked for at
// most 256 bytes per allocation, everything the table allocates counted):
//   - records: one arena of `capacity` slots of three cache lines (192 bytes), allocated
//     once. Line 0 is what a look-up and the listing read first (sequence, shape, 5-tuple,
//     expiries); line 1 what every relayed datagram reads or writes (counts and the first
//     peer entry, counters, bandwidth bucket, client hop); line 2 what only requests read
//     (long-term key, username hash, last answer). A slot number is stable for the
//     allocation's life; free slots are a LIFO stack threaded through the free records (the
//     last freed is the warmest).
//   - peer entries: one pool per table, in the same arena after the records, of
//     `peer_entries` 32-byte entries, each a peer IP with a permission (§9) and/or a channel
//     (§12: the IP and a port) to it. A ChannelBind's peer also gets the permission (§12.2),
//     so the WebRTC allocation (one peer, one permission, at most one channel) holds one
//     entry; an allocation's entries are a singly linked list from its counts word, by
//     offsets from the record, so that an Allocation finds them without the table. Free
//     entries are a stack threaded through them. The pool is sized for the average
//     allocation, not the largest (max_permissions and max_channels still bound each one):
//     when it runs dry, a new permission or channel gets 508 like a full allocation.
//   - peer expiries are 32-bit, in units of 2^k ticks (k: the largest that keeps a unit at
//     most 1/1024 s at the table's ticks_per_second), compared wrap-aware: a value is live
//     while it is ahead of now by less than half the 32-bit range, which is at least 2^20
//     seconds (12 days). A permission lives 300 s and a channel 600 s (§9, §12), and
//     sweep() removes expired entries every pass over the table, so no entry is ever old
//     enough to look young again. Stored rounded down to a unit: a permission or channel
//     ends up to one unit (< 1 ms) early, never late. Allocation expiries stay 64-bit ticks.
//   - the username: a 64-bit SipHash-2-4 of it, keyed by the table's seed, and its length;
//     not its bytes. RFC 8656 §5 wants every request after Allocate to carry the username
//     that made the allocation (else 441): two different usernames of the same length pass
//     for each other only when their keyed hashes collide, with probability 2^-64 for any
//     pair chosen without the key (SipHash is a pseudo-random function), and a client can
//     only try usernames it holds credentials for, online, one request each. So the check
//     is exact for all practical purposes. A username inline would cost up to 512 bytes a
//     slot; a prefix that fits (a few bytes) would show only the timestamp of a TURN REST
//     username ("1700000000:alice"). The listing shows the length and the hash, and a filter
//     by name hashes the name (username_hash()).
//   - the last answer: the transaction ID and method as a 64-bit hash (a retransmission
//     repeats both; a new request has a random 96-bit ID), the error code, LIFETIME and
//     RESERVATION-TOKEN. Only the allocation's authenticated client reaches it.
//   - 5-tuple index: open addressing with linear probing over 8-byte entries (32 bits of the
//     key's seeded hash, slot + 1; 0 is empty), at most half full, erased by backward shift,
//     so that no tombstone ever lengthens a probe. A look-up reads one index line and the
//     record's first line, whose key it compares.
//   - relay-port index: a direct array, (relay address, port) → slot, over the worker's
//     ports [first_relay_port, first_relay_port + count) on each of the server's relay
//     addresses (one address gives at most 64k allocations: past that the server needs
//     more). Free (address, port) pairs are a FIFO, seeded-shuffled at construction: a freed
//     pair is the last to be handed out again, so that a peer still sending to an old
//     allocation's port reaches a new allocation as late as possible, and ports are not
//     predictable.
//   - reservations (RFC 8656 §7.2: EVEN-PORT's R bit holds the port after an allocation's for
//     a later Allocate that names it by RESERVATION-TOKEN): up to `reservations` records of
//     token, expiry, (address, port) and families (rtcp-mux is the norm: few clients ask),
//     found by token through an open-addressing index (at most half full, erased by backward
//     shift), and a flag per (address, port) that keeps a reserved port out of the free
//     FIFO's hands until the reservation is claimed or expires (sweep()). The peer path's
//     find_by_relay_port() never sees a reservation: a reserved port has no allocation.
//
// Concurrent listing: every slot has a sequence counter (a seqlock). The owner makes each
// change the listing can see between two increments (odd while writing); the control thread
// copies the fields the listing shows and keeps the copy only when it read the same even
// sequence before and after, else it retries, up to a bound, then reports the slot skipped.
// The owner never waits; on x86 its write costs two plain stores more. Fields the control
// thread reads are std::atomic, so that the racing read is defined behaviour: the owner
// stores them with release inside a write section, the reader loads them with acquire (both
// plain moves on x86), which orders them against the sequence without a standalone fence
// (which ThreadSanitizer could not check). Fields the control thread never reads (keys,
// peer entries, the bucket, the last answer) are plain. Packet and byte counters
// change outside the seqlock (a write section per packet would tax the fast path to order
// four counters that need no mutual consistency): a snapshot is one allocation (its key,
// username, port, expiry and counts from one moment), and each counter is a value it had
// while the snapshot was taken.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string_view>

#include "engine/rate_limit.h"
#include "stun/address.h"
#include "stun/constants.h"
#include "stun/message.h"

namespace engine {

/// The 5-tuple of an allocation (RFC 8656 §2): client IP and port, server IP and port; the
/// transport is UDP (the only client transport this server relays). Both addresses have one
/// family, that of the IP header they came in. Packed into five 64-bit words that the table
/// hashes and compares.
class FiveTuple {
public:
    /// All zeros: no packet has it (its family is neither IPv4 nor IPv6).
    FiveTuple() = default;

    /// The key of a datagram from `client` to `server`; nullopt when their families differ.
    [[nodiscard]] static std::optional<FiveTuple> make(const stun::Address& client,
                                                       const stun::Address& server) noexcept;

    /// make()'s key of an IPv4 datagram, from its addresses (4 bytes each, network order)
    /// and ports as they lie in the headers: the relay's express lane builds no stun::Address.
    [[nodiscard]] static FiveTuple ipv4(const std::byte* client_ip, std::uint16_t client_port,
                                        const std::byte* server_ip,
                                        std::uint16_t server_port) noexcept {
        // Each word made in a register and the key built whole: 4-byte copies into a zeroed
        // key on the stack (the obvious way) made the hash's 8-byte loads wait on stores they
        // could not forward from, which cost the express lane a fifth of its time.
        const auto ipv4_word = [](const std::byte* ip) noexcept {
            std::uint32_t a;
            std::memcpy(&a, ip, 4);
            // As stun::Address::ip lies in memory: the address's 4 bytes first, then zeros.
            return std::endian::native == std::endian::little ? std::uint64_t{a}
                                                              : std::uint64_t{a} << 32;
        };
        return FiveTuple(ipv4_word(client_ip), ipv4_word(server_ip),
                         std::uint64_t{client_port} | std::uint64_t{server_port} << 16 |
                             std::uint64_t{static_cast<std::uint8_t>(stun::AddressFamily::ipv4)}
                                 << 32);
    }

    [[nodiscard]] stun::Address client() const noexcept;
    [[nodiscard]] stun::Address server() const noexcept;
    [[nodiscard]] const std::array<std::uint64_t, 5>& words() const noexcept { return words_; }

    friend bool operator==(const FiveTuple&, const FiveTuple&) = default;

private:
    // An IPv4 key (ipv4()): the two addresses' first words and the ports' word.
    FiveTuple(std::uint64_t client_ip, std::uint64_t server_ip, std::uint64_t ports) noexcept
        : words_{client_ip, 0, server_ip, 0, ports} {}

    friend class Allocation;
    friend class RelayTable;
    friend class SfuLeg;  // engine/sfu_table.h: a leg keeps its key as a relay allocation does
    friend class SfuTable;
    // 0-1: client IP, 2-3: server IP (network order, as stun::Address::ip, IPv4 in the first
    // 4 bytes); 4: client port | server port << 16 | family << 32.
    std::array<std::uint64_t, 5> words_{};
};

/// Relayed address families of an allocation, as a mask (RFC 8656 §7.2: one by default or
/// by REQUESTED-ADDRESS-FAMILY, both with ADDITIONAL-ADDRESS-FAMILY). One relay port serves
/// both: the port range belongs to the worker on every relay address, and a relay address
/// index names an IPv4 and an IPv6 address (config's).
inline constexpr std::uint8_t relay_ipv4 = 1;
inline constexpr std::uint8_t relay_ipv6 = 2;

/// The relay_ipv4 or relay_ipv6 bit of `family`.
[[nodiscard]] constexpr std::uint8_t relay_family(stun::AddressFamily family) noexcept {
    return family == stun::AddressFamily::ipv6 ? relay_ipv6 : relay_ipv4;
}

/// The longest username a table accepts: RFC 5389 §15.3 allowed "less than 513 bytes"
/// (RFC 8489 §14.3: "fewer than 509"). The table keeps its length and keyed hash only (see
/// the header comment).
inline constexpr std::size_t max_username_length = 512;

/// RFC 8656 §12: a channel binding, number 0x4000-0x7FFF ↔ peer transport address, as
/// Allocation::channel() and channel_to() find it.
struct Channel {
    stun::Address peer;
    std::uint16_t number = 0;
};

/// The last request answered on an allocation, so that a retransmission (same transaction
/// ID and method) gets the same answer: RFC 8656 §5 asks the server to treat a retransmitted
/// request as idempotent, and RFC 8489 §6.3.1 to answer it so that the client ends in the
/// state the first answer would have left it in. A retransmitted Allocate is the case that
/// matters most: §7.2 would answer it 437 (its 5-tuple is now in use) where the client must
/// see its success again.
struct CachedAnswer {
    stun::TransactionId transaction_id{};
    stun::Method method = stun::Method::binding;
    std::uint16_t error_code = 0;  ///< 0: a success response; else its ERROR-CODE (300..699)
    std::uint32_t lifetime = 0;    ///< the LIFETIME a success to Allocate or Refresh carried
    /// The RESERVATION-TOKEN a success to Allocate with EVEN-PORT's R bit carried; 0: none
    /// (RelayTable never takes 0 as a token).
    std::uint64_t reservation_token = 0;
};

/// Packets and bytes relayed, each direction (payload bytes as the handler counts them).
struct AllocationCounters {
    std::uint64_t to_peer_packets = 0;
    std::uint64_t to_peer_bytes = 0;
    std::uint64_t to_client_packets = 0;
    std::uint64_t to_client_bytes = 0;
};

enum class PermissionResult : std::uint8_t {
    installed,  ///< a new permission (or one that had expired)
    refreshed,  ///< a live permission for this IP, its expiry reset (RFC 8656 §9)
    full,       ///< max_permissions live permissions already: 508 (Insufficient Capacity,
                ///< RFC 8656's answer to a capacity limit, as in §12.2)
    no_entry,   ///< the table's peer entries are all in use: 508 too
};

enum class ChannelResult : std::uint8_t {
    bound,          ///< a new binding
    refreshed,      ///< the same number to the same peer: expiry reset (RFC 8656 §12)
    bad_number,     ///< outside 0x4000-0x7FFF: 400 (§12.2)
    number_in_use,  ///< the number is bound to another peer: 400 (§12.2)
    peer_in_use,    ///< the peer is bound to another number: 400 (§12.2)
    full,           ///< max_channels live bindings already: 508 (§12.2)
    no_entry,       ///< the table's peer entries are all in use: 508 too
};

namespace detail {

/// The 5-tuple indexes' hash (RelayTable, SfuTable), keyed by `seed`'s first six words.
/// Multiply-fold (as in wyhash): each 128-bit product of two keyed words, its halves XORed,
/// mixes every input bit into the middle bits, which the indexes use. The seed enters every
/// product, so which 5-tuples collide depends on it.
template <std::size_t seed_words>
[[nodiscard]] inline std::uint64_t keyed_hash(
    const FiveTuple& key, const std::array<std::uint64_t, seed_words>& seed) noexcept {
    static_assert(seed_words >= 6);
    __extension__ using Product = unsigned __int128;
    const auto fold = [](std::uint64_t a, std::uint64_t b) noexcept {
        const Product product = static_cast<Product>(a) * b;
        return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
    };
    const auto& w = key.words();
    return fold(w[0] ^ seed[0], w[1] ^ seed[1]) ^ fold(w[2] ^ seed[2], w[3] ^ seed[3]) ^
           fold(w[4] ^ seed[4], seed[5]);
}

/// The slot of `tag`'s entry in a 5-tuple index (RelayTable, SfuTable: entries
/// (tag << 32 | slot + 1), 0 empty, probed linearly) whose record `has_key(slot)` says is the
/// key's, or 0xFFFFFFFF. The index is at most half full: an empty entry ends every probe.
template <class HasKey>
[[nodiscard]] inline std::uint32_t probe_index(const std::uint64_t* index, std::uint32_t mask,
                                               std::uint64_t tag, HasKey&& has_key) noexcept {
    for (std::uint32_t i = static_cast<std::uint32_t>(tag) & mask;; i = (i + 1) & mask) {
        const std::uint64_t entry = index[i];
        if (entry == 0) return 0xFFFFFFFF;
        if (entry >> 32 == tag) {
            const std::uint32_t slot = static_cast<std::uint32_t>(entry) - 1;
            if (has_key(slot)) return slot;
        }
    }
}

/// A field of a seqlock-protected record that the control thread reads while the owner
/// writes it. Every access states its order; on x86 all four are plain moves.
template <class T>
class SeqField {
public:
    /// The owner's read of its own field: relaxed (it is the only writer).
    [[nodiscard]] T get() const noexcept { return value_.load(std::memory_order_relaxed); }
    /// The owner's store inside a write section: release, so that the odd sequence stored
    /// before it is visible to a reader that sees this value (Allocation::begin_write()).
    void set(T value) noexcept { value_.store(value, std::memory_order_release); }
    /// The owner's store outside any write section (a counter): relaxed, single writer.
    void set_relaxed(T value) noexcept { value_.store(value, std::memory_order_relaxed); }
    /// The control thread's read: acquire, so that the sequence it reads after is no older
    /// than the section whose store it saw (RelayTable::snapshot()).
    [[nodiscard]] T read() const noexcept { return value_.load(std::memory_order_acquire); }

private:
    static_assert(std::atomic<T>::is_always_lock_free);
    std::atomic<T> value_{};
};

/// Frees what ::operator new(bytes, alignment) gave.
struct AlignedFree {
    std::size_t alignment = 64;
    void operator()(std::byte* p) const noexcept {
        ::operator delete(p, std::align_val_t{alignment});
    }
};

/// Memory that the constructor allocates once, aligned to a cache line (to 2 MiB and
/// advised for transparent huge pages when it is that large: a table of 100k allocations
/// spans 100 MB, and 4 KiB pages would cost a TLB miss per look-up), zeroed and touched so
/// that no page fault is left for the fast path.
class TableMemory {
public:
    TableMemory() = default;
    /// Throws std::bad_alloc.
    explicit TableMemory(std::size_t bytes);
    [[nodiscard]] std::byte* data() const noexcept { return bytes_.get(); }
    /// The bytes allocated: those asked for, rounded up to the alignment.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
    std::unique_ptr<std::byte, AlignedFree> bytes_;
    std::size_t size_ = 0;
};


/// One peer of an allocation, in the table's pool (see the header comment): the permission
/// of `ip` (RFC 8656 §9) when `link` has permission_bit, a channel `number` to (ip, port)
/// (§12) when number is not 0. An IP has its permission in one entry at most; a second
/// channel to another port of the IP takes an entry of its own.
struct PeerEntry {
    std::array<std::byte, 16> ip{};       // network order; IPv4 in the first 4 bytes
    std::uint32_t permission_expiry = 0;  // in expiry units, wrap-aware (expiry_live())
    std::uint32_t channel_expiry = 0;
    std::uint16_t port = 0;    // the channel's peer port
    std::uint16_t number = 0;  // the channel number; 0: none
    // Bits 0-29: the allocation's next entry, in 32-byte units from its record (0: none);
    // bit 30: this entry holds the IP's permission; bit 31: the IP is IPv6.
    std::uint32_t link = 0;

    static constexpr std::uint32_t next_mask = (1u << 30) - 1;
    static constexpr std::uint32_t permission_bit = 1u << 30;
    static constexpr std::uint32_t ipv6_bit = 1u << 31;

    [[nodiscard]] bool has_permission() const noexcept { return (link & permission_bit) != 0; }
    /// Two 8-byte compares (std::array's == of std::byte compares byte by byte): per datagram.
    [[nodiscard]] bool same_ip(const stun::Address& peer) const noexcept {
        std::uint64_t a[2], b[2];
        std::memcpy(a, ip.data(), 16);
        std::memcpy(b, peer.ip.data(), 16);
        return ((link & ipv6_bit) != 0) == (peer.family == stun::AddressFamily::ipv6) &&
               ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
    }
    [[nodiscard]] stun::Address peer() const noexcept {
        stun::Address a;
        a.family = (link & ipv6_bit) != 0 ? stun::AddressFamily::ipv6 : stun::AddressFamily::ipv4;
        a.port = port;
        a.ip = ip;
        return a;
    }
};

/// SipHash-2-4 (Aumasson, Bernstein, 2012) of `input` under the 128-bit `key` (k0, k1 as the
/// reference reads them, little-endian): RelayTable::username_hash().
[[nodiscard]] std::uint64_t siphash24(const std::array<std::uint64_t, 2>& key,
                                      std::string_view input) noexcept;

/// A peer expiry in units of 2^shift ticks, rounded down, modulo 2^32.
[[nodiscard]] constexpr std::uint32_t expiry_units(std::uint64_t ticks,
                                                   unsigned shift) noexcept {
    return static_cast<std::uint32_t>(ticks >> shift);
}
/// Whether a peer expiry (expiry_units()) is still ahead of `now`: wrap-aware, right while
/// the two are less than 2^31 units apart (the header comment).
[[nodiscard]] constexpr bool expiry_live(std::uint32_t expiry, std::uint64_t now,
                                         unsigned shift) noexcept {
    return static_cast<std::int32_t>(expiry - expiry_units(now, shift)) > 0;
}

}  // namespace detail

/// One TURN allocation in a RelayTable's slot. Only the table makes them; every member is
/// for the owning worker alone (the control thread sees them through snapshots). Changes to
/// its peers (permissions and channels) take entries from the table's pool, so they are the
/// table's: RelayTable::install_permission(), bind_channel(), expire_peers().
class alignas(64) Allocation {
public:
    Allocation(const Allocation&) = delete;
    Allocation& operator=(const Allocation&) = delete;

    [[nodiscard]] FiveTuple key() const noexcept;
    /// Word `i` (0-4) of key().words(), inline: the relay's express lane reads three.
    [[nodiscard]] std::uint64_t key_word(std::size_t i) const noexcept { return key_[i].get(); }
    /// Whether the key is `key`: five word compares (the index's hit check).
    [[nodiscard]] bool has_key(const FiveTuple& key) const noexcept {
        const auto& w = key.words_;
        return key_[0].get() == w[0] && key_[1].get() == w[1] && key_[2].get() == w[2] &&
               key_[3].get() == w[3] && key_[4].get() == w[4];
    }
    [[nodiscard]] std::uint16_t relay_port() const noexcept {
        return static_cast<std::uint16_t>(shape_.get());
    }
    /// Which of the server's relay addresses (0 .. relay_addresses - 1) the port is on.
    [[nodiscard]] std::uint8_t relay_address() const noexcept {
        return static_cast<std::uint8_t>(shape_.get() >> 24);
    }
    /// relay_ipv4 | relay_ipv6: the relayed addresses this allocation still has.
    [[nodiscard]] std::uint8_t families() const noexcept {
        return static_cast<std::uint8_t>(shape_.get() >> 16 & 3);
    }

    /// The expiry of the relayed address of `family` (relay_ipv4 or relay_ipv6), in the
    /// caller's ticks; 0 when the allocation has none of that family. RFC 8656 §6 keeps one
    /// time-to-expiry per relayed address; §8.1 refreshes or deletes either of a pair.
    [[nodiscard]] std::uint64_t expiry(std::uint8_t family) const noexcept {
        return (families() & family) == 0 ? 0 : expiry_[family == relay_ipv6 ? 1 : 0].get();
    }
    /// The later of the two: when the whole allocation expires.
    [[nodiscard]] std::uint64_t expiry() const noexcept;
    /// Sets the expiry of each relayed address in `families` that the allocation has (a
    /// Refresh, §8.2); the others are unchanged. One write section: a listing sees both.
    void refresh(std::uint8_t families, std::uint64_t expiry) noexcept;
    /// Drops the relayed addresses in `families` (a Refresh with LIFETIME 0 and
    /// REQUESTED-ADDRESS-FAMILY, §8.2). An allocation left with none is for the caller to
    /// erase (RelayTable::sweep() does).
    void drop_families(std::uint8_t families) noexcept;

    [[nodiscard]] std::size_t username_length() const noexcept {
        return static_cast<std::size_t>(counts_.get() >> username_length_shift &
                                        username_length_mask);
    }
    /// The username's keyed hash (RelayTable::username_hash()); RelayTable::username_equals()
    /// is RFC 8656 §5's check.
    [[nodiscard]] std::uint64_t username_hash() const noexcept { return username_hash_.get(); }

    /// RFC 8656 §6: the server stores the long-term key, never the password.
    [[nodiscard]] stun::PasswordAlgorithm password_algorithm() const noexcept {
        return (state_ & sha256_bit) != 0 ? stun::PasswordAlgorithm::sha256
                                          : stun::PasswordAlgorithm::md5;
    }
    /// 16 bytes (MD5) or 32 (SHA-256, RFC 8489 §9.2.2) for MESSAGE-INTEGRITY(-SHA256).
    [[nodiscard]] std::span<const std::byte> integrity_key() const noexcept {
        return {integrity_key_.data(), (state_ & sha256_bit) != 0 ? 32u : 16u};
    }

    /// RFC 8656 §9: whether a live permission has `peer`'s IP ("only addresses are compared
    /// and port numbers are not considered"). Cost: the counts word (line 1), then the
    /// allocation's peer entries, one 32-byte entry each (one for a WebRTC allocation). Per
    /// datagram from a peer, per ChannelData and per Send indication.
    [[nodiscard]] bool permits(const stun::Address& peer, std::uint64_t now) const noexcept;
    /// Permissions held, expired ones not yet removed included.
    [[nodiscard]] std::size_t permission_count() const noexcept {
        return static_cast<std::size_t>(counts_.get() & count_mask);
    }
    /// Whether an entry of the allocation has `peer`'s IP (a permission, live or expired and
    /// not yet removed, or a channel): a new permission for it takes no entry from the pool.
    [[nodiscard]] bool has_peer_ip(const stun::Address& peer) const noexcept;

    /// The live binding of `number` (ChannelData from the client, §12.6), or nullopt. Cost:
    /// as permits(), comparing channel numbers.
    [[nodiscard]] std::optional<Channel> channel(std::uint16_t number,
                                                 std::uint64_t now) const noexcept;
    /// The live binding to `peer` (IP and port; a datagram from the peer, §12.7: the server
    /// MUST use ChannelData when one exists, §12.5), or nullopt. Cost: as permits().
    [[nodiscard]] std::optional<Channel> channel_to(const stun::Address& peer,
                                                    std::uint64_t now) const noexcept;
    /// The data path's two look-ups in one walk of the peers, for the relay's express lane:
    /// the entry of the live channel `number` (ChannelData from the client, §12.6) whose
    /// peer's IP has a live permission (§9), or null (the general path then says which is
    /// missing). Inline; cost: a walk of the peers, the permission most often in the
    /// channel's own entry (a ChannelBind installs it there).
    [[nodiscard]] const detail::PeerEntry* relayable_channel(std::uint16_t number,
                                                             std::uint64_t now) const noexcept {
        for (std::uint32_t offset = first_peer(); offset != 0;) {
            const detail::PeerEntry& e = entry(offset);
            if (e.number == number && number != 0) return relayable(e, now);
            offset = e.link & detail::PeerEntry::next_mask;
        }
        return nullptr;
    }
    /// As relayable_channel(), for the live channel to an IPv4 peer (a peer's datagram,
    /// §12.5) as the datagram carries it: its address (4 bytes, network order) and port.
    [[nodiscard]] const detail::PeerEntry* relayable_channel_to_ipv4(
        const std::byte* ip, std::uint16_t port, std::uint64_t now) const noexcept {
        std::uint32_t address;
        std::memcpy(&address, ip, 4);
        for (std::uint32_t offset = first_peer(); offset != 0;) {
            const detail::PeerEntry& e = entry(offset);
            std::uint32_t entry_address;
            std::memcpy(&entry_address, e.ip.data(), 4);
            // An IPv4 entry's other 12 address bytes are zero (stun::Address's).
            if (e.number != 0 && e.port == port && entry_address == address &&
                (e.link & detail::PeerEntry::ipv6_bit) == 0)
                return relayable(e, now);
            offset = e.link & detail::PeerEntry::next_mask;
        }
        return nullptr;
    }
    /// Bindings held, expired ones not yet removed included.
    [[nodiscard]] std::size_t channel_count() const noexcept {
        return static_cast<std::size_t>(counts_.get() >> channel_count_shift & count_mask);
    }

    /// One datagram of `bytes` relayed to the peer / to the client. Cost: two loads and two
    /// stores (single writer: no atomic read-modify-write).
    void count_to_peer(std::uint64_t bytes) noexcept {
        counters_[0].set_relaxed(counters_[0].get() + 1);
        counters_[1].set_relaxed(counters_[1].get() + bytes);
    }
    void count_to_client(std::uint64_t bytes) noexcept {
        counters_[2].set_relaxed(counters_[2].get() + 1);
        counters_[3].set_relaxed(counters_[3].get() + bytes);
    }
    [[nodiscard]] AllocationCounters counters() const noexcept;

    /// The allocation's bandwidth bucket (engine/rate_limit.h), full when inserted.
    [[nodiscard]] TokenBucket& bandwidth() noexcept { return bandwidth_; }

    /// The link-layer hop towards the client: the source MAC of the frame that made the
    /// allocation (the client's, or its router's), where datagrams from peers go. Owner only.
    void set_client_hop(const std::byte* mac) noexcept {
        std::copy(mac, mac + client_hop_.size(), client_hop_.begin());
    }
    [[nodiscard]] const std::array<std::byte, 6>& client_hop() const noexcept {
        return client_hop_;
    }

    /// Remembers the answer to the request just handled, replacing the last one. An
    /// error_code above 1023 is not one (STUN's are 300..699) and is kept modulo 1024.
    void remember_answer(const CachedAnswer& answer) noexcept;
    /// The remembered answer when `transaction_id` and `method` are those of the last
    /// request answered (a retransmission), else nullopt. Both are compared by a 64-bit hash
    /// (the header comment): a new request with a random transaction ID passes for the last
    /// one with probability about 2^-64.
    [[nodiscard]] std::optional<CachedAnswer> answer_for(
        const stun::TransactionId& transaction_id, stun::Method method) const noexcept;

private:
    friend class RelayTable;
    using PeerEntry = detail::PeerEntry;

    Allocation() noexcept = default;

    // The seqlock's writer side. Owner only, so the sequence is read relaxed.
    void begin_write() noexcept {
        // Relaxed: the field stores that follow are releases (SeqField::set()), and a
        // release orders this odd value before itself. A reader whose acquire load sees any
        // of them then reads a sequence no older than this odd one, and drops its copy: it
        // cannot take a half-written record for a whole one.
        sequence_.store(sequence_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
    }
    void end_write() noexcept {
        // Release: every field store of the section happens before this even value; a
        // reader that acquires it sees them all.
        sequence_.store(sequence_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_release);
    }

    [[nodiscard]] bool live() const noexcept { return (shape_.get() & live_bit) != 0; }
    // The table's expiry unit for peer entries, 2^shift ticks, kept in every record.
    [[nodiscard]] unsigned expiry_shift() const noexcept {
        return shape_.get() >> expiry_shift_at & 31;
    }
    void set_shape(std::uint16_t port, std::uint8_t address, std::uint8_t families,
                   bool live) noexcept {
        shape_.set(port | std::uint32_t{families} << 16 | (shape_.get() & expiry_shift_bits) |
                   (live ? live_bit : 0) | std::uint32_t{address} << 24);
    }

    // The counts word: permissions, channels, username length and the first peer entry.
    // `e`, a channel's entry, when the channel and its IP's permission are live.
    [[nodiscard]] const detail::PeerEntry* relayable(const detail::PeerEntry& e,
                                                     std::uint64_t now) const noexcept {
        const unsigned shift = expiry_shift();
        if (!detail::expiry_live(e.channel_expiry, now, shift)) return nullptr;
        const bool permitted = e.has_permission()
                                   ? detail::expiry_live(e.permission_expiry, now, shift)
                                   : permits(e.peer(), now);
        return permitted ? &e : nullptr;
    }
    [[nodiscard]] std::uint32_t first_peer() const noexcept {
        return static_cast<std::uint32_t>(counts_.get() >> first_peer_shift);
    }
    // Inside a write section: the listing reads the word.
    void set_counts(std::size_t permissions, std::size_t channels, std::size_t username_length,
                    std::uint32_t first_peer) noexcept {
        counts_.set(permissions | std::uint64_t{channels} << channel_count_shift |
                    std::uint64_t{username_length} << username_length_shift |
                    std::uint64_t{first_peer} << first_peer_shift);
    }

    // Peer entries are addressed by their distance from the record, in 32-byte units: the
    // pool follows the records in one arena (RelayTable's constructor).
    [[nodiscard]] PeerEntry& entry(std::uint32_t offset) noexcept {
        return *std::launder(reinterpret_cast<PeerEntry*>(reinterpret_cast<std::byte*>(this) +
                                                          std::size_t{offset} * 32));
    }
    [[nodiscard]] const PeerEntry& entry(std::uint32_t offset) const noexcept {
        return *std::launder(reinterpret_cast<const PeerEntry*>(
            reinterpret_cast<const std::byte*>(this) + std::size_t{offset} * 32));
    }
    [[nodiscard]] std::uint32_t offset_of(const PeerEntry& e) const noexcept {
        return static_cast<std::uint32_t>(
            (reinterpret_cast<const std::byte*>(&e) - reinterpret_cast<const std::byte*>(this)) /
            32);
    }

    static constexpr std::uint32_t live_bit = 1u << 23;
    static constexpr unsigned expiry_shift_at = 18;
    static constexpr std::uint32_t expiry_shift_bits = 31u << expiry_shift_at;
    static constexpr std::uint64_t count_mask = 0x1FFF;  // up to 4096 permissions, channels
    static constexpr unsigned channel_count_shift = 13;
    static constexpr unsigned username_length_shift = 26;
    static constexpr std::uint64_t username_length_mask = 0x3FF;  // up to 512
    static constexpr unsigned first_peer_shift = 36;  // 28 bits: RelayTable bounds the arena
    static constexpr std::uint16_t error_code_mask = 0x3FF;
    static constexpr std::uint16_t has_answer_bit = 1u << 10;
    static constexpr std::uint16_t sha256_bit = 1u << 11;

    // Line 0: what a look-up and the listing read first.
    std::atomic<std::uint32_t> sequence_{0};  // even: stable; odd: the owner is writing
    detail::SeqField<std::uint32_t> shape_;   // relay port | families << 16 | expiry shift
                                              // << 18 | live bit 23 | relay address << 24
    detail::SeqField<std::uint64_t> key_[5];     // FiveTuple::words_
    detail::SeqField<std::uint64_t> expiry_[2];  // relay_ipv4, relay_ipv6
    // Line 1: what every relayed datagram reads or writes.
    alignas(64) detail::SeqField<std::uint64_t> counts_;  // permissions | channels << 13 |
                                                          // username length << 26 | first
                                                          // peer entry << 36
    detail::SeqField<std::uint64_t> counters_[4];         // AllocationCounters, in order
    TokenBucket bandwidth_;
    std::array<std::byte, 6> client_hop_{};  // the MAC the Allocate came from
    std::uint16_t state_ = 0;  // last answer's error code | has_answer_bit | sha256_bit
    // Line 2: what requests read.
    alignas(64) std::array<std::byte, 32> integrity_key_{};
    detail::SeqField<std::uint64_t> username_hash_;  // read by the listing
    std::uint64_t answer_id_ = 0;                    // answer_id(transaction ID, method)
    std::uint64_t answer_token_ = 0;
    std::uint32_t answer_lifetime_ = 0;
    std::uint32_t next_free_ = 0;  // a free slot: the next free slot + 1 (0: none)
};

/// What the control thread sees of one allocation: a consistent copy (see the header
/// comment); never the long-term key.
struct AllocationSnapshot {
    std::uint32_t slot = 0;
    FiveTuple key;
    std::uint16_t relay_port = 0;
    std::uint8_t relay_address = 0;
    std::uint8_t families = 0;
    std::uint64_t expiry_ipv4 = 0;  ///< 0 without an IPv4 relayed address
    std::uint64_t expiry_ipv6 = 0;  ///< 0 without an IPv6 relayed address
    AllocationCounters counters;
    std::uint16_t permission_count = 0;
    std::uint16_t channel_count = 0;
    std::uint16_t username_length = 0;
    /// RelayTable::username_hash() of the username: a listing filtered by name compares it
    /// with the hash of that name.
    std::uint64_t username_hash = 0;
};

/// The table's sizes, from config (all memory is allocated from them at construction).
struct RelayTableLimits {
    std::uint32_t capacity = 4096;  ///< allocations, 1 .. 2^24
    /// The worker's relay ports: [first_relay_port, first_relay_port + relay_port_count),
    /// inside 1 .. 65535, on each relay address. RFC 8656 §7.2: SHOULD be inside
    /// 49152-65535, SHOULD NOT below 1024 (config's to enforce; the table takes any range).
    std::uint16_t first_relay_port = 49152;
    std::uint32_t relay_port_count = 16384;
    /// The server's relay addresses (each an IPv4 and/or an IPv6 address), 1 .. 256.
    std::uint16_t relay_addresses = 1;
    std::uint16_t max_permissions = 16;  ///< per allocation, 1 .. 4096
    std::uint16_t max_channels = 16;     ///< per allocation, 0 .. 4096
    /// Peer entries (permissions and channels, one entry per peer IP with its permission and
    /// a channel to it) of all allocations together, 1 .. 2^26, and at most
    /// 2^28 - 6 × capacity (so that an entry's offset from any record fits its 28 bits).
    std::uint32_t peer_entries = 4096;
    /// Reservation records (EVEN-PORT's R bit, RFC 8656 §7.2), 1 .. capacity.
    std::uint32_t reservations = 256;
    /// The caller's clock, ticks per second (1 .. 2^40): sets the unit of peer expiries. No
    /// default: a wrong one would shorten the 32-bit wrap below the 12 days the header
    /// comment promises.
    std::uint64_t ticks_per_second = 0;
    /// Seeds the 5-tuple hash, the username hash and the order of free ports: random in
    /// production (stun::random_bytes), so that nobody can aim clients at one probe chain;
    /// fixed in tests.
    std::uint64_t seed = 0;
};

/// One worker's TURN allocations. See the header comment for the layout and who may call
/// what.
class RelayTable {
public:
    static constexpr std::uint32_t no_slot = 0xFFFFFFFF;

    /// Allocates and touches all the table's memory. Throws std::invalid_argument for limits
    /// outside the ranges RelayTableLimits gives, std::bad_alloc (start-up, style rule 12).
    explicit RelayTable(const RelayTableLimits& limits);
    ~RelayTable();
    RelayTable(const RelayTable&) = delete;
    RelayTable& operator=(const RelayTable&) = delete;

    /// What insert() needs, all written in one write section (a listing sees all or none).
    struct NewAllocation {
        FiveTuple key;
        std::string_view username;  ///< at most max_username_length bytes
        stun::PasswordAlgorithm password_algorithm = stun::PasswordAlgorithm::md5;
        std::span<const std::byte> integrity_key;  ///< 16 bytes (MD5) or 32 (SHA-256)
        std::uint8_t families = relay_ipv4;        ///< relay_ipv4, relay_ipv6 or both
        std::uint64_t expiry = 0;                  ///< of each relayed address
        /// 0: the free (address, port) freed longest ago; else this port on relay_address
        /// (RESERVATION-TOKEN, EVEN-PORT: RFC 8656 §7.2, the caller having chosen it by
        /// relay_port_available()).
        std::uint16_t relay_port = 0;
        std::uint8_t relay_address = 0;
        /// RESERVATION-TOKEN (RFC 8656 §7.2): when set, the allocation takes the (address,
        /// port) this token reserved, with the families it was reserved for (relay_port,
        /// relay_address and families are then ignored), and the reservation is consumed;
        /// unknown_reservation when the token names no reservation live at `now`.
        std::optional<std::uint64_t> claim_token;
        /// EVEN-PORT with the R bit (§7.2): when set (nonzero), relay_port + 1 on
        /// relay_address is reserved too, under this token, for `families`, until
        /// reservation_expiry. Needs relay_port (not 0) and no claim_token; else
        /// port_unavailable, as when relay_port + 1 is not this worker's or not free.
        std::optional<std::uint64_t> reserve_token;
        std::uint64_t reservation_expiry = 0;
        /// The caller's clock, against which claim_token's reservation is live or expired.
        std::uint64_t now = 0;
    };

    enum class InsertStatus : std::uint8_t {
        inserted,
        exists,             ///< the 5-tuple has an allocation (its slot is returned): a
                            ///< retransmission (answer_for()) or 437 (RFC 8656 §7.2)
        table_full,         ///< capacity allocations already: 486 or 508
        no_relay_port,      ///< every relay port of this worker is taken: 508 (§7.2)
        port_unavailable,   ///< the port asked for is taken or not this worker's: 508
        bad_username,       ///< longer than max_username_length
        bad_integrity_key,  ///< not 16 bytes for MD5 or 32 for SHA-256
        bad_families,       ///< neither relay_ipv4 nor relay_ipv6, or another bit
        unknown_reservation,  ///< claim_token names no live reservation: 508 (§7.2)
        reservations_full,    ///< reserve_token, with `reservations` records held: 508
        token_in_use,         ///< reserve_token is the token of a reservation held already
    };
    struct InsertResult {
        InsertStatus status;
        std::uint32_t slot;  ///< the new or existing allocation's slot; no_slot otherwise
    };

    /// Inserts an allocation with no permissions, channels, counters or remembered answer, a
    /// full bandwidth bucket, and a relay port. Cost: a look-up, the username's SipHash, a
    /// free-slot pop, a port pop, the record's three lines written, an index store.
    [[nodiscard]] InsertResult insert(const NewAllocation& allocation) noexcept;

    /// The slot of the allocation of `key`, or no_slot. Expired allocations stay until
    /// erased: the caller compares Allocation::expiry() with its clock (or runs sweep()).
    /// Cost: a seeded hash (three 64×64→128-bit multiplications), one index line (the table
    /// is at most half full: 1.5 probes on a hit, 2.5 on a miss, on average), the record's
    /// first line on a tag match. Per request and per ChannelData from a client.
    [[nodiscard]] std::uint32_t find(const FiveTuple& key) const noexcept;

    /// The slot of the allocation that holds `port` on relay address `address`, or no_slot
    /// (also for a port or address outside this worker's). Cost: two compares and an array
    /// load. Per datagram from a peer.
    [[nodiscard]] std::uint32_t find_by_relay_port(std::uint8_t address,
                                                   std::uint16_t port) const noexcept {
        const std::uint32_t endpoint = relay_endpoint(address, port);
        return endpoint == no_slot ? no_slot : port_slot_[endpoint];
    }

    /// Whether `port` on `address` is this worker's and free: neither allocated nor reserved
    /// (for EVEN-PORT, reservations).
    [[nodiscard]] bool relay_port_available(std::uint8_t address,
                                            std::uint16_t port) const noexcept {
        const std::uint32_t endpoint = relay_endpoint(address, port);
        return endpoint != no_slot && port_slot_[endpoint] == no_slot &&
               !port_reserved_[endpoint];
    }
    /// Whether `port` on `address` is held by a reservation (insert()'s reserve_token).
    [[nodiscard]] bool relay_port_reserved(std::uint8_t address,
                                           std::uint16_t port) const noexcept {
        const std::uint32_t endpoint = relay_endpoint(address, port);
        return endpoint != no_slot && port_reserved_[endpoint];
    }
    /// Live reservations (expired ones not yet released by sweep() included); at most
    /// RelayTableLimits::reservations.
    [[nodiscard]] std::size_t reservation_count() const noexcept {
        return reservation_capacity_ - free_reservation_count_;
    }
    /// RelayTableLimits::reservations: the most reservation_count() can be.
    [[nodiscard]] std::size_t reservation_capacity() const noexcept {
        return reservation_capacity_;
    }
    /// Whether `token` names a reservation live at `now`. Cost: a probe of the token index.
    [[nodiscard]] bool has_reservation(std::uint64_t token, std::uint64_t now) const noexcept;

    /// Removes the allocation in `slot`: its index entry (backward shift), its relay port (to
    /// the back of the free FIFO), its peer entries, its slot. A slot that holds none is left
    /// alone. Cost: a look-up and a shift of the probe chain after it (short at half load).
    void erase(std::uint32_t slot) noexcept;

    /// RFC 8656 §9 (CreatePermission §10.2, ChannelBind §12.2): installs a permission for
    /// `peer`'s IP (its port ignored) on the allocation in `slot` until `expiry`, or resets
    /// the expiry of the one there. It goes into an entry of the IP that holds a channel,
    /// else into a new entry from the pool. When the allocation holds max_permissions,
    /// expired entries are removed first. Errors: full (max_permissions live), no_entry (the
    /// pool is empty). Cost: a walk of the allocation's entries, an entry pop.
    PermissionResult install_permission(std::uint32_t slot, const stun::Address& peer,
                                        std::uint64_t expiry, std::uint64_t now) noexcept;
    /// RFC 8656 §12.2: binds `number` to `peer` on the allocation in `slot` until `expiry`,
    /// or refreshes that binding. An expired binding is unbound (§12): its number and peer
    /// are free again. The binding goes into the entry of the peer's IP when that holds no
    /// channel, else into a new entry. Errors: bad_number, number_in_use, peer_in_use, full,
    /// no_entry. Installing the permission a ChannelBind also installs (§12.2) is the
    /// caller's: install_permission(), which then takes no new entry. Cost: a walk of the
    /// entries, and removal of expired ones before a new binding.
    ChannelResult bind_channel(std::uint32_t slot, std::uint16_t number,
                               const stun::Address& peer, std::uint64_t expiry,
                               std::uint64_t now) noexcept;
    /// Removes the expired permissions and bindings of the allocation in `slot` (§9: "the
    /// permission expires and is deleted"), and returns to the pool the entries left with
    /// neither. sweep() calls it; look-ups ignore expired ones anyway.
    void expire_peers(std::uint32_t slot, std::uint64_t now) noexcept;
    /// Peer entries in the pool, free ones.
    [[nodiscard]] std::size_t peer_entries() const noexcept { return peer_entries_; }
    [[nodiscard]] std::size_t free_peer_entries() const noexcept { return free_peer_count_; }

    /// RFC 8656 §5: whether `username` is the one that made the allocation in `slot` (else
    /// 441): its length, and its keyed hash (the header comment says why that is exact
    /// enough). Cost: a SipHash of the username (about 1 ns a byte).
    [[nodiscard]] bool username_equals(std::uint32_t slot,
                                       std::string_view username) const noexcept;
    /// The table's keyed hash of `username` (SipHash-2-4, keyed by the seed), as
    /// Allocation::username_hash() and AllocationSnapshot::username_hash hold it. Any thread.
    [[nodiscard]] std::uint64_t username_hash(std::string_view username) const noexcept;

    /// Visits up to `max_slots` slots from where the last call stopped, round robin: drops
    /// relayed addresses whose expiry <= now, erases allocations left with none, and removes
    /// expired permissions and bindings from the others; then expire_reservations(now,
    /// max_slots). Returns how many allocations it erased. Bounded work per call, for the
    /// worker loop's idle time.
    std::size_t sweep(std::uint64_t now, std::size_t max_slots) noexcept;

    /// Visits up to `max_records` reservation records from where the last call stopped, round
    /// robin, and releases those whose expiry <= now: their ports go to the back of the free
    /// FIFO. Returns how many it released. Cost: a 24-byte record per visit, an index erase per
    /// release.
    std::size_t expire_reservations(std::uint64_t now, std::size_t max_records) noexcept;

    /// The allocation in `slot` (a slot find() or insert() returned).
    [[nodiscard]] Allocation& at(std::uint32_t slot) noexcept {
        return *std::launder(reinterpret_cast<Allocation*>(
            records_.data() + std::size_t{slot} * sizeof(Allocation)));
    }
    [[nodiscard]] const Allocation& at(std::uint32_t slot) const noexcept {
        return *std::launder(reinterpret_cast<const Allocation*>(
            records_.data() + std::size_t{slot} * sizeof(Allocation)));
    }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// The highest slot ever used + 1: every allocation lies below it (list() walks as far).
    /// The owner's read.
    [[nodiscard]] std::uint32_t slots_used() const noexcept {
        return slots_used_.load(std::memory_order_relaxed);
    }
    /// Bytes per slot: the Allocation, three cache lines.
    [[nodiscard]] std::size_t slot_bytes() const noexcept { return sizeof(Allocation); }
    /// Every byte the constructor allocated (records, peer entries, indexes, stacks, port
    /// and reservation arrays, each rounded as it was allocated): issue 4's measure, over
    /// capacity(), is bench/relay_table_bench.cc's bytes_per_allocation.
    [[nodiscard]] std::size_t allocated_bytes() const noexcept { return allocated_bytes_; }

    // --- The control thread's side: any thread may call these, while the owner runs. ---

    enum class SnapshotStatus : std::uint8_t {
        live,     ///< `out` holds a consistent copy
        empty,    ///< no allocation in the slot
        skipped,  ///< the owner kept changing it through every attempt
    };
    static constexpr unsigned default_snapshot_attempts = 8;

    /// Copies the allocation in `slot` (< capacity()) into `out` under the seqlock: at most
    /// `attempts` reads, each of 16 words. Never blocks the owner, never allocates.
    [[nodiscard]] SnapshotStatus snapshot(std::uint32_t slot, AllocationSnapshot& out,
                                          unsigned attempts = default_snapshot_attempts) const
        noexcept;

    struct ListSummary {
        std::size_t listed = 0;
        std::size_t skipped = 0;
    };
    /// Calls `visit(const AllocationSnapshot&)` for each live allocation, in slot order, up
    /// to the highest slot ever used. An allocation inserted or erased during the walk may
    /// or may not be seen; one seen is consistent. The table must outlive the call.
    template <class Visitor>
    ListSummary list(Visitor&& visit, unsigned attempts = default_snapshot_attempts) const {
        ListSummary summary;
        AllocationSnapshot copy;
        // Relaxed: a slot beyond the value read was first used after the walk began, which
        // the walk may miss; the seqlock orders each slot's contents.
        const std::uint32_t end = slots_used_.load(std::memory_order_relaxed);
        for (std::uint32_t slot = 0; slot < end; ++slot) {
            switch (snapshot(slot, copy, attempts)) {
            case SnapshotStatus::live:
                ++summary.listed;
                visit(static_cast<const AllocationSnapshot&>(copy));
                break;
            case SnapshotStatus::skipped: ++summary.skipped; break;
            case SnapshotStatus::empty: break;
            }
        }
        return summary;
    }

private:
    [[nodiscard]] std::uint64_t hash(const FiveTuple& key) const noexcept;
    // find() with the key's tag (its hash >> 32) computed already.
    [[nodiscard]] std::uint32_t find(const FiveTuple& key, std::uint64_t tag) const noexcept;
    // (address, port) as an index into port_slot_: address × port_count_ + port offset;
    // no_slot when either is not this worker's.
    [[nodiscard]] std::uint32_t relay_endpoint(std::uint8_t address,
                                               std::uint16_t port) const noexcept {
        const std::uint32_t offset = static_cast<std::uint32_t>(port - first_port_);
        return port >= first_port_ && offset < port_count_ && address < relay_addresses_
                   ? address * port_count_ + offset
                   : no_slot;
    }
    [[nodiscard]] std::uint32_t take_free_endpoint() noexcept;
    void release_endpoint(std::uint32_t endpoint) noexcept;
    // The reservation record of `token`, or no_slot, and where the index holds it.
    [[nodiscard]] std::uint32_t find_reservation(std::uint64_t token) const noexcept;
    [[nodiscard]] std::uint32_t reservation_home(std::uint64_t token) const noexcept;
    // Removes `record` from the index and frees it; `release_port`: its port goes back to
    // the free FIFO (expired), else the caller has taken it (claimed).
    void drop_reservation(std::uint32_t record, bool release_port) noexcept;
    // Peer entries: pool index → entry, and the pool's stack.
    [[nodiscard]] detail::PeerEntry& pool_entry(std::uint32_t index) noexcept {
        return *std::launder(reinterpret_cast<detail::PeerEntry*>(
            records_.data() + entries_at_ + std::size_t{index} * sizeof(detail::PeerEntry)));
    }
    [[nodiscard]] std::uint32_t pool_index(const detail::PeerEntry& e) const noexcept {
        return static_cast<std::uint32_t>(
            (reinterpret_cast<const std::byte*>(&e) - (records_.data() + entries_at_)) /
            sizeof(detail::PeerEntry));
    }
    // An entry from the pool, linked first in `a`'s list (counts word left to the caller),
    // or null when the pool is empty.
    [[nodiscard]] detail::PeerEntry* take_entry() noexcept;
    void free_entry(detail::PeerEntry& e) noexcept;
    // Removes from `a`'s list the entries whose permission and channel are both gone or
    // expired, and drops expired permissions and channels from the others; one write section.
    void collect_peers(Allocation& a, std::uint64_t now) noexcept;
    // Rewrites `a`'s counts word from its list after a change: one write section.
    void recount(Allocation& a, std::uint32_t first_peer) noexcept;

    std::size_t allocated_bytes_ = 0;
    std::uint32_t capacity_ = 0;
    std::uint32_t size_ = 0;
    std::uint16_t max_permissions_ = 0;
    std::uint16_t max_channels_ = 0;
    // The highest slot ever used + 1, for list(). Written by the owner (relaxed: see list()).
    std::atomic<std::uint32_t> slots_used_{0};
    detail::TableMemory records_;  // the records, then the peer entries
    std::size_t entries_at_ = 0;    // where the peer entries start in records_
    std::uint32_t peer_entries_ = 0;
    std::uint32_t free_peer_head_ = 0;  // pool index + 1 of the top free entry; 0: none
    std::uint32_t free_peer_count_ = 0;
    unsigned expiry_shift_ = 0;  // peer expiries in units of 2^expiry_shift_ ticks
    std::array<std::uint64_t, 2> username_key_{};  // SipHash's 128-bit key

    detail::TableMemory index_memory_;
    std::uint64_t* index_ = nullptr;  // (hash >> 32) << 32 | (slot + 1); 0: empty
    std::uint32_t index_mask_ = 0;
    std::array<std::uint64_t, 6> seed_{};

    std::uint32_t free_head_ = 0;  // slot + 1 of the top free slot (Allocation::next_free_)
    std::uint32_t free_count_ = 0;

    std::uint16_t first_port_ = 0;
    std::uint32_t port_count_ = 0;
    std::uint32_t relay_addresses_ = 0;
    std::uint32_t endpoint_count_ = 0;            // relay_addresses_ × port_count_
    std::unique_ptr<std::uint32_t[]> port_slot_;  // by relay_endpoint(); no_slot: free
    // The free FIFO of endpoints; one taken by number while queued stays queued and is
    // skipped when it comes up (port_queued_ keeps each endpoint in the ring once).
    std::unique_ptr<std::uint32_t[]> port_ring_;
    std::unique_ptr<bool[]> port_queued_;
    std::uint32_t ring_head_ = 0;
    std::uint32_t ring_count_ = 0;

    // Reservations (the header comment). A record with endpoint no_slot is free.
    struct Reservation {
        std::uint64_t token = 0;
        std::uint64_t expiry = 0;
        std::uint32_t endpoint = no_slot;
        std::uint8_t families = 0;
    };
    std::unique_ptr<bool[]> port_reserved_;           // by relay_endpoint()
    std::uint32_t reservation_capacity_ = 0;
    std::unique_ptr<Reservation[]> reservations_;      // reservation_capacity_ records
    std::unique_ptr<std::uint32_t[]> free_reservations_;  // a stack of record numbers
    std::uint32_t free_reservation_count_ = 0;
    std::unique_ptr<std::uint32_t[]> reservation_index_;  // record + 1; 0: empty
    std::uint32_t reservation_mask_ = 0;
    std::uint32_t reservation_cursor_ = 0;

    std::uint32_t sweep_cursor_ = 0;
};

inline std::uint64_t RelayTable::hash(const FiveTuple& key) const noexcept {
    return detail::keyed_hash(key, seed_);
}

inline std::uint32_t RelayTable::find(const FiveTuple& key) const noexcept {
    return find(key, hash(key) >> 32);
}

inline std::uint32_t RelayTable::find(const FiveTuple& key, std::uint64_t tag) const noexcept {
    return detail::probe_index(index_, index_mask_, tag,
                               [&](std::uint32_t slot) { return at(slot).has_key(key); });
}

}  // namespace engine
