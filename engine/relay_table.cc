// The relay's session table (engine/include/engine/relay_table.h).
#include "engine/relay_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace engine {
namespace {

// splitmix64 (Steele, Lea, Flood): the seed's stream of well-mixed words.
std::uint64_t next_random(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept {
    return (n + to - 1) / to * to;
}

constexpr std::size_t huge_page = std::size_t{2} << 20;

// IP bytes as stun::Address holds them (IPv4 in the first 4, the rest zero): two 8-byte
// compares (std::array's == of std::byte compares byte by byte).
bool same_ip(const Permission& permission, const stun::Address& peer) noexcept {
    std::uint64_t a[2], b[2];
    std::memcpy(a, permission.ip.data(), 16);
    std::memcpy(b, peer.ip.data(), 16);
    return permission.family == peer.family && ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
}

}  // namespace

// --- FiveTuple ---

std::optional<FiveTuple> FiveTuple::make(const stun::Address& client,
                                         const stun::Address& server) noexcept {
    if (client.family != server.family) return std::nullopt;
    FiveTuple key;
    std::memcpy(&key.words_[0], client.ip.data(), 16);
    std::memcpy(&key.words_[2], server.ip.data(), 16);
    key.words_[4] = std::uint64_t{client.port} | std::uint64_t{server.port} << 16 |
                    std::uint64_t{static_cast<std::uint8_t>(client.family)} << 32;
    return key;
}

stun::Address FiveTuple::client() const noexcept {
    stun::Address a;
    a.family = static_cast<stun::AddressFamily>(words_[4] >> 32 & 0xFF);
    a.port = static_cast<std::uint16_t>(words_[4]);
    std::memcpy(a.ip.data(), &words_[0], 16);
    return a;
}

stun::Address FiveTuple::server() const noexcept {
    stun::Address a;
    a.family = static_cast<stun::AddressFamily>(words_[4] >> 32 & 0xFF);
    a.port = static_cast<std::uint16_t>(words_[4] >> 16);
    std::memcpy(a.ip.data(), &words_[2], 16);
    return a;
}

// --- TableMemory ---

detail::TableMemory::TableMemory(std::size_t bytes) {
    const std::size_t alignment = bytes >= huge_page ? huge_page : 64;
    bytes = round_up(bytes, alignment);
    auto* p = static_cast<std::byte*>(::operator new(bytes, std::align_val_t{alignment}));
    bytes_ = std::unique_ptr<std::byte, AlignedFree>(p, AlignedFree{alignment});
    // Start-up only: the syscall and the page faults of the memset happen here, never on
    // the fast path. Where transparent huge pages are off, madvise fails and 4 KiB pages
    // remain, slower but correct.
    if (alignment == huge_page) (void)::madvise(p, bytes, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
}

// --- Allocation ---

// Four cache lines (identity, per-packet, owner-only twice), then the username's 512 bytes.
static_assert(sizeof(Allocation) == 4 * 64 + max_username_length);
static_assert(sizeof(Permission) == 32 && sizeof(Channel) == 32);

FiveTuple Allocation::key() const noexcept {
    FiveTuple key;
    for (std::size_t i = 0; i < key.words_.size(); ++i) key.words_[i] = key_[i].get();
    return key;
}

std::uint64_t Allocation::expiry() const noexcept {
    return std::max(expiry(relay_ipv4), expiry(relay_ipv6));
}

void Allocation::refresh(std::uint8_t families, std::uint64_t expiry) noexcept {
    const std::uint8_t present = families & this->families();
    begin_write();
    if ((present & relay_ipv4) != 0) expiry_[0].set(expiry);
    if ((present & relay_ipv6) != 0) expiry_[1].set(expiry);
    end_write();
}

void Allocation::drop_families(std::uint8_t families) noexcept {
    begin_write();
    set_shape(relay_port(), relay_address(),
              this->families() & static_cast<std::uint8_t>(~families), true);
    // A snapshot shows expiry 0 for a family the allocation no longer has.
    if ((families & relay_ipv4) != 0) expiry_[0].set(0);
    if ((families & relay_ipv6) != 0) expiry_[1].set(0);
    end_write();
}

bool Allocation::username_equals(std::string_view username) const noexcept {
    if (username.size() != username_length()) return false;
    for (std::size_t at = 0; at < username.size(); at += 8) {
        // The stored username is zero-padded to whole words; so is this word of `username`.
        std::uint64_t word = 0;
        std::memcpy(&word, username.data() + at, std::min<std::size_t>(8, username.size() - at));
        if (username_[at / 8].get() != word) return false;
    }
    return true;
}

std::string_view Allocation::copy_username(
    std::span<char, max_username_length> out) const noexcept {
    const std::size_t length = username_length();
    for (std::size_t at = 0; at < length; at += 8) {
        const std::uint64_t word = username_[at / 8].get();
        std::memcpy(out.data() + at, &word, std::min<std::size_t>(8, length - at));
    }
    return {out.data(), length};
}

AllocationCounters Allocation::counters() const noexcept {
    return {counters_[0].get(), counters_[1].get(), counters_[2].get(), counters_[3].get()};
}

std::size_t Allocation::remove_expired_permissions(std::uint64_t now) noexcept {
    const std::size_t before = permission_count();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < before; ++i)
        if (permissions_[i].expiry > now) permissions_[kept++] = permissions_[i];
    if (kept != before) {
        begin_write();
        set_counts(kept, channel_count(), username_length());
        end_write();
    }
    return kept;
}

std::size_t Allocation::remove_expired_channels(std::uint64_t now) noexcept {
    const std::size_t before = channel_count();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < before; ++i) {
        if (channels_[i].expiry <= now) continue;
        channel_numbers_[kept] = channel_numbers_[i];
        channels_[kept++] = channels_[i];
    }
    if (kept != before) {
        begin_write();
        set_counts(permission_count(), kept, username_length());
        end_write();
    }
    return kept;
}

PermissionResult Allocation::install_permission(const stun::Address& peer, std::uint64_t expiry,
                                                std::uint64_t now) noexcept {
    std::size_t count = permission_count();
    for (std::size_t i = 0; i < count; ++i) {
        if (!same_ip(permissions_[i], peer)) continue;
        // RFC 8656 §9: "If a permission for that IP address already exists, then the
        // time-to-expiry for that permission is reset".
        const bool was_live = permissions_[i].expiry > now;
        permissions_[i].expiry = expiry;
        return was_live ? PermissionResult::refreshed : PermissionResult::installed;
    }
    if (count == max_permissions_) count = remove_expired_permissions(now);
    if (count == max_permissions_) return PermissionResult::full;
    permissions_[count] = Permission{peer.ip, expiry, peer.family};
    begin_write();
    set_counts(count + 1, channel_count(), username_length());
    end_write();
    return PermissionResult::installed;
}

bool Allocation::permits(const stun::Address& peer, std::uint64_t now) const noexcept {
    const std::size_t count = permission_count();
    for (std::size_t i = 0; i < count; ++i)
        if (same_ip(permissions_[i], peer)) return permissions_[i].expiry > now;
    return false;
}

ChannelResult Allocation::bind_channel(std::uint16_t number, const stun::Address& peer,
                                       std::uint64_t expiry, std::uint64_t now) noexcept {
    // RFC 8656 §12.2: "The channel number is in the range 0x4000 through 0x4FFF"; RFC
    // 5766's numbers up to 0x7FFF are accepted too (stun::channel_accepted_max).
    if (number < stun::channel_min || number > stun::channel_accepted_max)
        return ChannelResult::bad_number;
    std::size_t count = channel_count();
    for (std::size_t i = 0; i < count; ++i) {
        Channel& channel = channels_[i];
        // RFC 8656 §12: "When the channel binding expires, the channel becomes unbound":
        // neither its number nor its peer holds anything back.
        if (channel.expiry <= now) continue;
        const bool same_peer = channel.peer == peer;
        if (channel.number == number) {
            // "not currently bound to a different transport address (same transport address
            // is OK)"; rebinding to the same one refreshes (§12).
            if (!same_peer) return ChannelResult::number_in_use;
            channel.expiry = expiry;
            return ChannelResult::refreshed;
        }
        // "The transport address is not currently bound to a different channel number."
        if (same_peer) return ChannelResult::peer_in_use;
    }
    // An expired binding of this number or peer would shadow the new one in a scan: remove
    // expired bindings before appending, so that each number and peer appears once.
    count = remove_expired_channels(now);
    if (count == max_channels_) return ChannelResult::full;
    channel_numbers_[count] = number;
    channels_[count] = Channel{expiry, peer, number};
    begin_write();
    set_counts(permission_count(), count + 1, username_length());
    end_write();
    return ChannelResult::bound;
}

const Channel* Allocation::channel(std::uint16_t number, std::uint64_t now) const noexcept {
    const std::size_t count = channel_count();
    for (std::size_t i = 0; i < count; ++i)
        if (channel_numbers_[i] == number)
            return channels_[i].expiry > now ? &channels_[i] : nullptr;
    return nullptr;
}

const Channel* Allocation::channel_to(const stun::Address& peer,
                                      std::uint64_t now) const noexcept {
    const std::size_t count = channel_count();
    for (std::size_t i = 0; i < count; ++i)
        if (channels_[i].peer == peer) return channels_[i].expiry > now ? &channels_[i] : nullptr;
    return nullptr;
}

void Allocation::expire(std::uint64_t now) noexcept {
    remove_expired_permissions(now);
    remove_expired_channels(now);
}

// --- RelayTable ---

RelayTable::RelayTable(const RelayTableLimits& limits)
    : capacity_(limits.capacity),
      first_port_(limits.first_relay_port),
      port_count_(limits.relay_port_count),
      relay_addresses_(limits.relay_addresses),
      endpoint_count_(limits.relay_addresses * limits.relay_port_count) {
    if (limits.capacity == 0 || limits.capacity > (1u << 24))
        throw std::invalid_argument("relay table capacity: expected 1..16777216");
    if (limits.first_relay_port == 0 || limits.relay_port_count == 0 ||
        limits.first_relay_port + std::uint64_t{limits.relay_port_count} > 65536)
        throw std::invalid_argument("relay ports: expected a non-empty range inside 1..65535");
    if (limits.relay_addresses == 0 || limits.relay_addresses > 256)
        throw std::invalid_argument("relay addresses: expected 1..256");
    if (limits.max_permissions == 0 || limits.max_permissions > 4096)
        throw std::invalid_argument("relay max_permissions: expected 1..4096");
    if (limits.max_channels > 4096)
        throw std::invalid_argument("relay max_channels: expected 0..4096");

    // A slot: the Allocation, its permissions, its channel numbers, its channels, each
    // array starting on a cache line.
    const std::size_t permissions_at = sizeof(Allocation);
    const std::size_t numbers_at =
        permissions_at + round_up(limits.max_permissions * sizeof(Permission), 64);
    const std::size_t channels_at =
        numbers_at + round_up(limits.max_channels * sizeof(std::uint16_t), 64);
    stride_ = channels_at + round_up(limits.max_channels * sizeof(Channel), 64);
    records_ = detail::TableMemory(stride_ * capacity_);
    for (std::uint32_t slot = 0; slot < capacity_; ++slot) {
        std::byte* base = records_.data() + slot * stride_;
        auto* permissions = new (base + permissions_at) Permission[limits.max_permissions];
        auto* numbers = new (base + numbers_at) std::uint16_t[limits.max_channels]();
        auto* channels = new (base + channels_at) Channel[limits.max_channels];
        new (base) Allocation(permissions, numbers, channels, limits.max_permissions,
                            limits.max_channels);
    }

    // The index: a power of two at least twice the capacity (at most half full).
    const std::size_t index_size = std::bit_ceil(std::size_t{capacity_} * 2);
    index_memory_ = detail::TableMemory(index_size * sizeof(std::uint64_t));
    index_ = reinterpret_cast<std::uint64_t*>(index_memory_.data());
    index_mask_ = static_cast<std::uint32_t>(index_size - 1);

    std::uint64_t state = limits.seed;
    for (std::uint64_t& word : seed_) word = next_random(state);
    seed_[5] |= 1;  // the last product's multiplier: odd, so it loses no bit of its operand

    free_slots_ = std::make_unique<std::uint32_t[]>(capacity_);
    // Popped from the back: slot 0 first, so that used slots stay low and list() short.
    for (std::uint32_t i = 0; i < capacity_; ++i) free_slots_[i] = capacity_ - 1 - i;
    free_count_ = capacity_;

    port_slot_ = std::make_unique<std::uint32_t[]>(endpoint_count_);
    port_ring_ = std::make_unique<std::uint32_t[]>(endpoint_count_);
    port_queued_ = std::make_unique<bool[]>(endpoint_count_);
    for (std::uint32_t i = 0; i < endpoint_count_; ++i) {
        port_slot_[i] = no_slot;
        port_ring_[i] = i;
        port_queued_[i] = true;
    }
    // Fisher-Yates: the order ports are first handed out in depends on the seed.
    for (std::uint32_t i = endpoint_count_ - 1; i > 0; --i) {
        const auto j = static_cast<std::uint32_t>(next_random(state) % (i + 1));
        std::swap(port_ring_[i], port_ring_[j]);
    }
    ring_count_ = endpoint_count_;

    // bench/relay_table_bench.cc counts 24 bytes a reservation record.
    static_assert(sizeof(Reservation) == 24);
    port_reserved_ = std::make_unique<bool[]>(endpoint_count_);
    reservations_ = std::make_unique<Reservation[]>(capacity_);
    free_reservations_ = std::make_unique<std::uint32_t[]>(capacity_);
    for (std::uint32_t i = 0; i < capacity_; ++i) free_reservations_[i] = capacity_ - 1 - i;
    free_reservation_count_ = capacity_;
    // At most half full, as the 5-tuple index: an empty entry ends every probe.
    const std::size_t reservation_index_size = std::bit_ceil(std::size_t{capacity_} * 2);
    reservation_index_ = std::make_unique<std::uint32_t[]>(reservation_index_size);
    reservation_mask_ = static_cast<std::uint32_t>(reservation_index_size - 1);
}

// Allocation and its arrays are trivially destructible apart from their atomics, which need
// no destruction either: the memory goes with records_.
RelayTable::~RelayTable() = default;

std::uint32_t RelayTable::take_free_endpoint() noexcept {
    while (ring_count_ != 0) {
        const std::uint32_t endpoint = port_ring_[ring_head_];
        ring_head_ = ring_head_ + 1 == endpoint_count_ ? 0 : ring_head_ + 1;
        --ring_count_;
        port_queued_[endpoint] = false;
        // Taken by number (insert() with relay_port) or reserved while it waited here: skip
        // it; release_endpoint() queues it again when it is freed.
        if (port_slot_[endpoint] == no_slot && !port_reserved_[endpoint]) return endpoint;
    }
    return no_slot;
}

void RelayTable::release_endpoint(std::uint32_t endpoint) noexcept {
    port_slot_[endpoint] = no_slot;
    // Still queued (it was taken by number while waiting): it keeps its place in the ring.
    if (port_queued_[endpoint]) return;
    std::uint32_t tail = ring_head_ + ring_count_;
    if (tail >= endpoint_count_) tail -= endpoint_count_;
    port_ring_[tail] = endpoint;
    port_queued_[endpoint] = true;
    ++ring_count_;
}

RelayTable::InsertResult RelayTable::insert(const NewAllocation& allocation) noexcept {
    if (allocation.username.size() > max_username_length)
        return {InsertStatus::bad_username, no_slot};
    const std::size_t key_size =
        allocation.password_algorithm == stun::PasswordAlgorithm::sha256 ? 32 : 16;
    if (allocation.integrity_key.size() != key_size ||
        (allocation.password_algorithm != stun::PasswordAlgorithm::md5 &&
         allocation.password_algorithm != stun::PasswordAlgorithm::sha256))
        return {InsertStatus::bad_integrity_key, no_slot};
    if (allocation.families == 0 || (allocation.families & ~(relay_ipv4 | relay_ipv6)) != 0)
        return {InsertStatus::bad_families, no_slot};
    const std::uint64_t tag = hash(allocation.key) >> 32;
    if (const std::uint32_t existing = find(allocation.key, tag); existing != no_slot)
        return {InsertStatus::exists, existing};
    if (free_count_ == 0) return {InsertStatus::table_full, no_slot};

    // Everything that can refuse is checked before anything changes: a refused insert
    // leaves the ports and the reservations as they were (an expired one released).
    std::uint32_t endpoint = no_slot;
    std::uint8_t families = allocation.families;
    std::uint32_t claimed = no_slot;     // the reservation record claim_token names
    std::uint32_t next_endpoint = no_slot;  // the port reserve_token reserves
    if (allocation.claim_token) {
        if (allocation.reserve_token) return {InsertStatus::port_unavailable, no_slot};
        claimed = find_reservation(*allocation.claim_token);
        if (claimed == no_slot) return {InsertStatus::unknown_reservation, no_slot};
        if (reservations_[claimed].expiry <= allocation.now) {
            // RFC 8656 §7.2 holds the port "for about 30 seconds": past that, the token is
            // no longer valid, and the port returns to the pool now rather than at sweep().
            drop_reservation(claimed, true);
            return {InsertStatus::unknown_reservation, no_slot};
        }
        endpoint = reservations_[claimed].endpoint;
        families = reservations_[claimed].families;
    } else if (allocation.relay_port == 0) {
        if (allocation.reserve_token) return {InsertStatus::port_unavailable, no_slot};
        endpoint = take_free_endpoint();
        if (endpoint == no_slot) return {InsertStatus::no_relay_port, no_slot};
    } else {
        if (!relay_port_available(allocation.relay_address, allocation.relay_port))
            return {InsertStatus::port_unavailable, no_slot};
        endpoint = relay_endpoint(allocation.relay_address, allocation.relay_port);
        if (allocation.reserve_token) {
            if (*allocation.reserve_token == 0) return {InsertStatus::port_unavailable, no_slot};
            if (free_reservation_count_ == 0) return {InsertStatus::reservations_full, no_slot};
            if (find_reservation(*allocation.reserve_token) != no_slot)
                return {InsertStatus::token_in_use, no_slot};
            if (allocation.relay_port == 0xFFFF ||
                !relay_port_available(allocation.relay_address,
                                      static_cast<std::uint16_t>(allocation.relay_port + 1)))
                return {InsertStatus::port_unavailable, no_slot};
            next_endpoint = relay_endpoint(allocation.relay_address,
                                           static_cast<std::uint16_t>(allocation.relay_port + 1));
        }
    }
    if (claimed != no_slot) drop_reservation(claimed, false);
    if (next_endpoint != no_slot) {
        const std::uint32_t record = free_reservations_[--free_reservation_count_];
        reservations_[record] = {*allocation.reserve_token, allocation.reservation_expiry,
                                 next_endpoint, allocation.families};
        std::uint32_t i = reservation_home(*allocation.reserve_token);
        while (reservation_index_[i] != 0) i = (i + 1) & reservation_mask_;
        reservation_index_[i] = record + 1;
        port_reserved_[next_endpoint] = true;
    }
    const std::uint32_t slot = free_slots_[--free_count_];
    port_slot_[endpoint] = slot;
    const auto port = static_cast<std::uint16_t>(first_port_ + endpoint % port_count_);
    const auto address = static_cast<std::uint8_t>(endpoint / port_count_);

    Allocation& a = at(slot);
    // Owner-only fields first (the listing never reads them), then one write section for
    // everything it does read.
    a.algorithm_ = allocation.password_algorithm;
    a.integrity_key_ = {};
    std::memcpy(a.integrity_key_.data(), allocation.integrity_key.data(), key_size);
    a.bandwidth_ = TokenBucket{};
    a.has_answer_ = false;
    a.begin_write();
    a.set_shape(port, address, families, true);
    for (std::size_t i = 0; i < 5; ++i) a.key_[i].set(allocation.key.words()[i]);
    a.expiry_[0].set((families & relay_ipv4) != 0 ? allocation.expiry : 0);
    a.expiry_[1].set((families & relay_ipv6) != 0 ? allocation.expiry : 0);
    a.set_counts(0, 0, allocation.username.size());
    for (auto& counter : a.counters_) counter.set(0);
    // Only the words the username covers, the last zero-padded: nothing reads past them.
    for (std::size_t offset = 0; offset < allocation.username.size(); offset += 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, allocation.username.data() + offset,
                    std::min<std::size_t>(8, allocation.username.size() - offset));
        a.username_[offset / 8].set(word);
    }
    a.end_write();

    std::uint32_t i = static_cast<std::uint32_t>(tag) & index_mask_;
    while (index_[i] != 0) i = (i + 1) & index_mask_;
    index_[i] = tag << 32 | (slot + 1);
    ++size_;
    if (slot >= slots_used_.load(std::memory_order_relaxed))
        slots_used_.store(slot + 1, std::memory_order_relaxed);  // see list()
    return {InsertStatus::inserted, slot};
}

void RelayTable::erase(std::uint32_t slot) noexcept {
    Allocation& a = at(slot);
    // An erased slot's key is no longer in the index: looking for it would never end.
    if (!a.live()) return;
    const std::uint64_t tag = hash(a.key()) >> 32;
    const std::uint64_t entry = tag << 32 | (slot + 1);
    std::uint32_t hole = static_cast<std::uint32_t>(tag) & index_mask_;
    while (index_[hole] != entry) hole = (hole + 1) & index_mask_;
    // Backward shift (Knuth's Algorithm R for linear probing): walk the chain after the
    // hole; an entry whose home is not cyclically inside (hole, j] may move back into the
    // hole, which then moves to j. The chain ends at an empty entry; no tombstone remains.
    for (std::uint32_t j = (hole + 1) & index_mask_; index_[j] != 0; j = (j + 1) & index_mask_) {
        const std::uint32_t home = static_cast<std::uint32_t>(index_[j] >> 32) & index_mask_;
        if (((j - home) & index_mask_) >= ((j - hole) & index_mask_)) {
            index_[hole] = index_[j];
            hole = j;
        }
    }
    index_[hole] = 0;

    release_endpoint(relay_endpoint(a.relay_address(), a.relay_port()));
    // The long-term key does not outlive the allocation in memory.
    a.integrity_key_ = {};
    a.has_answer_ = false;
    a.begin_write();
    a.set_shape(0, 0, 0, false);
    a.set_counts(0, 0, 0);
    a.end_write();
    free_slots_[free_count_++] = slot;
    --size_;
}

std::size_t RelayTable::sweep(std::uint64_t now, std::size_t max_slots) noexcept {
    const std::uint32_t end = slots_used_.load(std::memory_order_relaxed);
    std::size_t erased = 0;
    for (std::size_t visited = 0; visited < max_slots && end != 0; ++visited) {
        if (sweep_cursor_ >= end) sweep_cursor_ = 0;
        const std::uint32_t slot = sweep_cursor_++;
        Allocation& a = at(slot);
        if (!a.live()) continue;
        std::uint8_t expired = 0;
        if ((a.families() & relay_ipv4) != 0 && a.expiry(relay_ipv4) <= now)
            expired |= relay_ipv4;
        if ((a.families() & relay_ipv6) != 0 && a.expiry(relay_ipv6) <= now)
            expired |= relay_ipv6;
        if (expired != 0) a.drop_families(expired);
        if (a.families() == 0) {
            erase(slot);
            ++erased;
        } else {
            a.expire(now);
        }
    }
    expire_reservations(now, max_slots);
    return erased;
}

std::uint32_t RelayTable::reservation_home(std::uint64_t token) const noexcept {
    // Tokens are the server's keyed hashes, but the one looked up is the client's choice:
    // seeded, so that nobody can aim a look-up at a long probe.
    return static_cast<std::uint32_t>(((token ^ seed_[0]) * seed_[5]) >> 32) &
           reservation_mask_;
}

std::uint32_t RelayTable::find_reservation(std::uint64_t token) const noexcept {
    for (std::uint32_t i = reservation_home(token);; i = (i + 1) & reservation_mask_) {
        const std::uint32_t entry = reservation_index_[i];
        if (entry == 0) return no_slot;
        if (reservations_[entry - 1].token == token) return entry - 1;
    }
}

bool RelayTable::has_reservation(std::uint64_t token, std::uint64_t now) const noexcept {
    const std::uint32_t record = find_reservation(token);
    return record != no_slot && reservations_[record].expiry > now;
}

void RelayTable::drop_reservation(std::uint32_t record, bool release_port) noexcept {
    Reservation& reservation = reservations_[record];
    std::uint32_t hole = reservation_home(reservation.token);
    while (reservation_index_[hole] != record + 1) hole = (hole + 1) & reservation_mask_;
    // Backward shift, as erase() does for the 5-tuple index.
    for (std::uint32_t j = (hole + 1) & reservation_mask_; reservation_index_[j] != 0;
         j = (j + 1) & reservation_mask_) {
        const std::uint32_t home =
            reservation_home(reservations_[reservation_index_[j] - 1].token);
        if (((j - home) & reservation_mask_) >= ((j - hole) & reservation_mask_)) {
            reservation_index_[hole] = reservation_index_[j];
            hole = j;
        }
    }
    reservation_index_[hole] = 0;
    port_reserved_[reservation.endpoint] = false;
    if (release_port) release_endpoint(reservation.endpoint);
    reservation = Reservation{};
    free_reservations_[free_reservation_count_++] = record;
}

std::size_t RelayTable::expire_reservations(std::uint64_t now, std::size_t max_records) noexcept {
    std::size_t released = 0;
    for (std::size_t visited = 0; visited < max_records && visited < capacity_; ++visited) {
        if (reservation_cursor_ >= capacity_) reservation_cursor_ = 0;
        const std::uint32_t record = reservation_cursor_++;
        if (reservations_[record].endpoint == no_slot || reservations_[record].expiry > now)
            continue;
        drop_reservation(record, true);
        ++released;
    }
    return released;
}

RelayTable::SnapshotStatus RelayTable::snapshot(std::uint32_t slot, AllocationSnapshot& out,
                                                unsigned attempts) const noexcept {
    const Allocation& a = at(slot);
    for (unsigned attempt = 0; attempt < attempts; ++attempt) {
        // Acquire: pairs with end_write()'s release; every field load below sees the
        // section that ended with this value, or a later one (which the re-check catches).
        const std::uint32_t before = a.sequence_.load(std::memory_order_acquire);
        if ((before & 1) != 0) continue;  // the owner is writing; it never waits on us
        // Every field is read with acquire (SeqField::read()): no later load, the sequence
        // re-check included, moves above it; and if it saw a store of a later section, the
        // odd sequence that section began with is visible to the re-check.
        const std::uint32_t shape = a.shape_.read();
        const bool live = (shape & Allocation::live_bit) != 0;
        if (live) {
            out.slot = slot;
            for (std::size_t i = 0; i < 5; ++i) out.key.words_[i] = a.key_[i].read();
            out.relay_port = static_cast<std::uint16_t>(shape);
            out.relay_address = static_cast<std::uint8_t>(shape >> 24);
            out.families = static_cast<std::uint8_t>(shape >> 16 & 3);
            out.expiry_ipv4 = a.expiry_[0].read();
            out.expiry_ipv6 = a.expiry_[1].read();
            const std::uint64_t counts = a.counts_.read();
            out.permission_count = static_cast<std::uint16_t>(counts);
            out.channel_count = static_cast<std::uint16_t>(counts >> 16);
            // Bounded even if torn: a length from a newer section is caught below, but must
            // not overrun the buffer before that.
            out.username_length = static_cast<std::uint16_t>(
                std::min<std::uint64_t>(counts >> 32 & 0xFFFF, max_username_length));
            for (std::size_t offset = 0; offset < out.username_length; offset += 8) {
                const std::uint64_t word = a.username_[offset / 8].read();
                std::memcpy(out.username_bytes.data() + offset, &word,
                            std::min<std::size_t>(8, out.username_length - offset));
            }
            out.counters = {a.counters_[0].read(), a.counters_[1].read(),
                            a.counters_[2].read(), a.counters_[3].read()};
        }
        // Relaxed: the acquire loads above keep it after them.
        if (a.sequence_.load(std::memory_order_relaxed) == before)
            return live ? SnapshotStatus::live : SnapshotStatus::empty;
    }
    return SnapshotStatus::skipped;
}

}  // namespace engine
