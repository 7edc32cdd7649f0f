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
    size_ = bytes;
    auto* p = static_cast<std::byte*>(::operator new(bytes, std::align_val_t{alignment}));
    bytes_ = std::unique_ptr<std::byte, AlignedFree>(p, AlignedFree{alignment});
    // Start-up only: the syscall and the page faults of the memset happen here, never on
    // the fast path. Where transparent huge pages are off, madvise fails and 4 KiB pages
    // remain, slower but correct.
    if (alignment == huge_page) (void)::madvise(p, bytes, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
}

// --- Allocation ---

// Three cache lines (identity, per-packet, per-request): issue 4's 192 of 256 bytes.
static_assert(sizeof(Allocation) == 3 * 64);
static_assert(sizeof(detail::PeerEntry) == 32 && alignof(detail::PeerEntry) <= 32);

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

AllocationCounters Allocation::counters() const noexcept {
    return {counters_[0].get(), counters_[1].get(), counters_[2].get(), counters_[3].get()};
}

bool Allocation::permits(const stun::Address& peer, std::uint64_t now) const noexcept {
    for (std::uint32_t offset = first_peer(); offset != 0;) {
        const PeerEntry& e = entry(offset);
        if (e.has_permission() && e.same_ip(peer))
            return detail::expiry_live(e.permission_expiry, now, expiry_shift());
        offset = e.link & PeerEntry::next_mask;
    }
    return false;
}

bool Allocation::has_peer_ip(const stun::Address& peer) const noexcept {
    for (std::uint32_t offset = first_peer(); offset != 0;) {
        const PeerEntry& e = entry(offset);
        if (e.same_ip(peer)) return true;
        offset = e.link & PeerEntry::next_mask;
    }
    return false;
}

std::optional<Channel> Allocation::channel(std::uint16_t number,
                                           std::uint64_t now) const noexcept {
    for (std::uint32_t offset = first_peer(); offset != 0;) {
        const PeerEntry& e = entry(offset);
        // Each number is in one entry at most (bind_channel() removes expired bindings
        // before it adds one).
        if (e.number == number && number != 0) {
            if (!detail::expiry_live(e.channel_expiry, now, expiry_shift())) return std::nullopt;
            return Channel{e.peer(), e.number};
        }
        offset = e.link & PeerEntry::next_mask;
    }
    return std::nullopt;
}

std::optional<Channel> Allocation::channel_to(const stun::Address& peer,
                                              std::uint64_t now) const noexcept {
    for (std::uint32_t offset = first_peer(); offset != 0;) {
        const PeerEntry& e = entry(offset);
        if (e.number != 0 && e.port == peer.port && e.same_ip(peer)) {
            if (!detail::expiry_live(e.channel_expiry, now, expiry_shift())) return std::nullopt;
            return Channel{e.peer(), e.number};
        }
        offset = e.link & PeerEntry::next_mask;
    }
    return std::nullopt;
}

namespace {

// The last answer's key: two multiply-folds (as RelayTable::hash()) of the transaction ID's 96
// bits and the method. Unkeyed: for transaction IDs drawn at random, as RFC 8489 §6 has
// clients draw them, two requests share a key with probability about 2^-64; only the
// allocation's authenticated client reaches the cache, and a client that picked colliding IDs
// on purpose would get its own last answer back, nothing of anyone else's.
std::uint64_t answer_id(const stun::TransactionId& transaction_id, stun::Method method) noexcept {
    __extension__ using Product = unsigned __int128;
    const auto fold = [](std::uint64_t a, std::uint64_t b) noexcept {
        const Product product = static_cast<Product>(a) * b;
        return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
    };
    std::uint64_t low = 0;
    std::uint32_t high = 0;
    std::memcpy(&low, transaction_id.data(), 8);
    std::memcpy(&high, transaction_id.data() + 8, 4);
    const std::uint64_t rest = std::uint64_t{high} << 16 | static_cast<std::uint16_t>(method);
    return fold(fold(low ^ 0x9E3779B97F4A7C15ull, 0xD6E8FEB86659FD93ull) ^ rest,
                0xA0761D6478BD642Full);
}

}  // namespace

void Allocation::remember_answer(const CachedAnswer& answer) noexcept {
    answer_id_ = answer_id(answer.transaction_id, answer.method);
    answer_token_ = answer.reservation_token;
    answer_lifetime_ = answer.lifetime;
    state_ = static_cast<std::uint16_t>((state_ & sha256_bit) | has_answer_bit |
                                        (answer.error_code & error_code_mask));
}

std::optional<CachedAnswer> Allocation::answer_for(const stun::TransactionId& transaction_id,
                                                   stun::Method method) const noexcept {
    if ((state_ & has_answer_bit) == 0 || answer_id_ != answer_id(transaction_id, method))
        return std::nullopt;
    return CachedAnswer{transaction_id, method,
                        static_cast<std::uint16_t>(state_ & error_code_mask), answer_lifetime_,
                        answer_token_};
}

// --- RelayTable ---

RelayTable::RelayTable(const RelayTableLimits& limits)
    : capacity_(limits.capacity),
      max_permissions_(limits.max_permissions),
      max_channels_(limits.max_channels),
      peer_entries_(limits.peer_entries),
      first_port_(limits.first_relay_port),
      port_count_(limits.relay_port_count),
      relay_addresses_(limits.relay_addresses),
      endpoint_count_(limits.relay_addresses * limits.relay_port_count),
      reservation_capacity_(limits.reservations) {
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
    // An entry's offset from any record, in 32-byte units, fits the counts word's 28 bits.
    const std::uint64_t record_units = std::uint64_t{capacity_} * sizeof(Allocation) / 32;
    if (limits.peer_entries == 0 || limits.peer_entries > (1u << 26) ||
        record_units + limits.peer_entries >= (1u << 28))
        throw std::invalid_argument(
            "relay peer entries: expected 1..67108864, and at most 2^28 - 6 x capacity");
    if (limits.reservations == 0 || limits.reservations > limits.capacity)
        throw std::invalid_argument("relay reservations: expected 1..capacity");
    if (limits.ticks_per_second == 0 || limits.ticks_per_second > (std::uint64_t{1} << 40))
        throw std::invalid_argument("relay ticks_per_second: expected 1..2^40");
    // The largest unit of at most 1/1024 s: 2^k with 2^(k + 10) <= ticks_per_second.
    const unsigned magnitude = static_cast<unsigned>(std::bit_width(limits.ticks_per_second)) - 1;
    expiry_shift_ = magnitude > 10 ? magnitude - 10 : 0;

    // The records, then the peer entries: one arena, so that a record reaches its entries
    // by offset (Allocation::entry()).
    entries_at_ = std::size_t{capacity_} * sizeof(Allocation);
    records_ = detail::TableMemory(entries_at_ + std::size_t{peer_entries_} *
                                                     sizeof(detail::PeerEntry));
    allocated_bytes_ += records_.size();
    for (std::uint32_t slot = 0; slot < capacity_; ++slot) {
        Allocation* a = new (records_.data() + std::size_t{slot} * sizeof(Allocation)) Allocation;
        a->shape_.set_relaxed(expiry_shift_ << Allocation::expiry_shift_at);
        // Popped from the top: slot 0 first, so that used slots stay low and list() short.
        a->next_free_ = slot + 1 < capacity_ ? slot + 2 : 0;
    }
    free_head_ = 1;
    free_count_ = capacity_;
    for (std::uint32_t i = 0; i < peer_entries_; ++i) {
        detail::PeerEntry* e = new (&pool_entry(i)) detail::PeerEntry;
        e->link = i + 1 < peer_entries_ ? i + 2 : 0;
    }
    free_peer_head_ = 1;
    free_peer_count_ = peer_entries_;

    // The index: a power of two at least twice the capacity (at most half full).
    const std::size_t index_size = std::bit_ceil(std::size_t{capacity_} * 2);
    index_memory_ = detail::TableMemory(index_size * sizeof(std::uint64_t));
    allocated_bytes_ += index_memory_.size();
    index_ = reinterpret_cast<std::uint64_t*>(index_memory_.data());
    index_mask_ = static_cast<std::uint32_t>(index_size - 1);

    std::uint64_t state = limits.seed;
    for (std::uint64_t& word : seed_) word = next_random(state);
    seed_[5] |= 1;  // the last product's multiplier: odd, so it loses no bit of its operand
    for (std::uint64_t& word : username_key_) word = next_random(state);

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

    port_reserved_ = std::make_unique<bool[]>(endpoint_count_);
    allocated_bytes_ += std::size_t{endpoint_count_} *
                        (sizeof(std::uint32_t) * 2 + sizeof(bool) * 2);
    reservations_ = std::make_unique<Reservation[]>(reservation_capacity_);
    free_reservations_ = std::make_unique<std::uint32_t[]>(reservation_capacity_);
    for (std::uint32_t i = 0; i < reservation_capacity_; ++i)
        free_reservations_[i] = reservation_capacity_ - 1 - i;
    free_reservation_count_ = reservation_capacity_;
    // At most half full, as the 5-tuple index: an empty entry ends every probe.
    const std::size_t reservation_index_size =
        std::bit_ceil(std::size_t{reservation_capacity_} * 2);
    reservation_index_ = std::make_unique<std::uint32_t[]>(reservation_index_size);
    reservation_mask_ = static_cast<std::uint32_t>(reservation_index_size - 1);
    allocated_bytes_ += std::size_t{reservation_capacity_} *
                            (sizeof(Reservation) + sizeof(std::uint32_t)) +
                        reservation_index_size * sizeof(std::uint32_t);
}

// Allocation and PeerEntry are trivially destructible apart from the atomics, which need no
// destruction either: the memory goes with records_.
RelayTable::~RelayTable() = default;

// --- Peer entries ---

detail::PeerEntry* RelayTable::take_entry() noexcept {
    if (free_peer_head_ == 0) return nullptr;
    detail::PeerEntry& e = pool_entry(free_peer_head_ - 1);
    free_peer_head_ = e.link;
    --free_peer_count_;
    e = detail::PeerEntry{};
    return &e;
}

void RelayTable::free_entry(detail::PeerEntry& e) noexcept {
    e.link = free_peer_head_;
    free_peer_head_ = pool_index(e) + 1;
    ++free_peer_count_;
}

void RelayTable::recount(Allocation& a, std::uint32_t first_peer) noexcept {
    std::size_t permissions = 0;
    std::size_t channels = 0;
    for (std::uint32_t offset = first_peer; offset != 0;) {
        const detail::PeerEntry& e = a.entry(offset);
        permissions += e.has_permission() ? 1 : 0;
        channels += e.number != 0 ? 1 : 0;
        offset = e.link & detail::PeerEntry::next_mask;
    }
    a.begin_write();
    a.set_counts(permissions, channels, a.username_length(), first_peer);
    a.end_write();
}

void RelayTable::collect_peers(Allocation& a, std::uint64_t now) noexcept {
    const unsigned shift = a.expiry_shift();
    bool changed = false;
    std::uint32_t first = a.first_peer();
    // `previous`: the link field that points at the entry visited (the counts word's copy in
    // `first` for the first entry).
    std::uint32_t* previous = &first;
    for (std::uint32_t offset = first; offset != 0;) {
        detail::PeerEntry& e = a.entry(offset);
        const std::uint32_t next = e.link & detail::PeerEntry::next_mask;
        if (e.has_permission() && !detail::expiry_live(e.permission_expiry, now, shift)) {
            e.link &= ~detail::PeerEntry::permission_bit;
            changed = true;
        }
        if (e.number != 0 && !detail::expiry_live(e.channel_expiry, now, shift)) {
            e.number = 0;
            changed = true;
        }
        if (!e.has_permission() && e.number == 0) {
            *previous = (*previous & ~detail::PeerEntry::next_mask) | next;
            free_entry(e);
            changed = true;
        } else {
            previous = &e.link;
        }
        offset = next;
    }
    if (changed) recount(a, first);
}

void RelayTable::expire_peers(std::uint32_t slot, std::uint64_t now) noexcept {
    collect_peers(at(slot), now);
}

PermissionResult RelayTable::install_permission(std::uint32_t slot, const stun::Address& peer,
                                                std::uint64_t expiry,
                                                std::uint64_t now) noexcept {
    Allocation& a = at(slot);
    const unsigned shift = a.expiry_shift();
    const std::uint32_t units = detail::expiry_units(expiry, shift);
    // The IP's permission, else an entry of the IP (a channel's) to hold it.
    detail::PeerEntry* holder = nullptr;
    for (std::uint32_t offset = a.first_peer(); offset != 0;) {
        detail::PeerEntry& e = a.entry(offset);
        if (e.same_ip(peer)) {
            if (e.has_permission()) {
                // RFC 8656 §9: "If a permission for that IP address already exists, then the
                // time-to-expiry for that permission is reset".
                const bool was_live = detail::expiry_live(e.permission_expiry, now, shift);
                e.permission_expiry = units;
                return was_live ? PermissionResult::refreshed : PermissionResult::installed;
            }
            if (holder == nullptr) holder = &e;
        }
        offset = e.link & detail::PeerEntry::next_mask;
    }
    if (a.permission_count() >= max_permissions_) {
        collect_peers(a, now);
        if (a.permission_count() >= max_permissions_) return PermissionResult::full;
        // Collecting may have freed the channel entry found above: look again.
        return install_permission(slot, peer, expiry, now);
    }
    if (holder == nullptr) {
        holder = take_entry();
        if (holder == nullptr) {
            // Expired entries of this allocation may give one back.
            collect_peers(a, now);
            holder = take_entry();
            if (holder == nullptr) return PermissionResult::no_entry;
        }
        holder->ip = peer.ip;
        holder->link = a.first_peer() |
                       (peer.family == stun::AddressFamily::ipv6 ? detail::PeerEntry::ipv6_bit : 0);
        holder->permission_expiry = units;
        holder->link |= detail::PeerEntry::permission_bit;
        recount(a, a.offset_of(*holder));
        return PermissionResult::installed;
    }
    holder->permission_expiry = units;
    holder->link |= detail::PeerEntry::permission_bit;
    recount(a, a.first_peer());
    return PermissionResult::installed;
}

ChannelResult RelayTable::bind_channel(std::uint32_t slot, std::uint16_t number,
                                       const stun::Address& peer, std::uint64_t expiry,
                                       std::uint64_t now) noexcept {
    // RFC 8656 §12.2: "The channel number is in the range 0x4000 through 0x4FFF"; RFC
    // 5766's numbers up to 0x7FFF are accepted too (stun::channel_accepted_max).
    if (number < stun::channel_min || number > stun::channel_accepted_max)
        return ChannelResult::bad_number;
    Allocation& a = at(slot);
    const unsigned shift = a.expiry_shift();
    for (std::uint32_t offset = a.first_peer(); offset != 0;) {
        detail::PeerEntry& e = a.entry(offset);
        offset = e.link & detail::PeerEntry::next_mask;
        // RFC 8656 §12: "When the channel binding expires, the channel becomes unbound":
        // neither its number nor its peer holds anything back.
        if (e.number == 0 || !detail::expiry_live(e.channel_expiry, now, shift)) continue;
        const bool same_peer = e.port == peer.port && e.same_ip(peer);
        if (e.number == number) {
            // "not currently bound to a different transport address (same transport address
            // is OK)"; rebinding to the same one refreshes (§12).
            if (!same_peer) return ChannelResult::number_in_use;
            e.channel_expiry = detail::expiry_units(expiry, shift);
            return ChannelResult::refreshed;
        }
        // "The transport address is not currently bound to a different channel number."
        if (same_peer) return ChannelResult::peer_in_use;
    }
    // An expired binding of this number or peer would shadow the new one in a walk: remove
    // expired bindings before adding, so that each number and peer appears once.
    collect_peers(a, now);
    if (a.channel_count() >= max_channels_) return ChannelResult::full;
    // The IP's entry when it holds no channel (its permission's), else a new one.
    detail::PeerEntry* holder = nullptr;
    for (std::uint32_t offset = a.first_peer(); offset != 0 && holder == nullptr;) {
        detail::PeerEntry& e = a.entry(offset);
        if (e.number == 0 && e.same_ip(peer)) holder = &e;
        offset = e.link & detail::PeerEntry::next_mask;
    }
    std::uint32_t first = a.first_peer();
    if (holder == nullptr) {
        holder = take_entry();
        if (holder == nullptr) return ChannelResult::no_entry;
        holder->ip = peer.ip;
        holder->link =
            first | (peer.family == stun::AddressFamily::ipv6 ? detail::PeerEntry::ipv6_bit : 0);
        first = a.offset_of(*holder);
    }
    holder->port = peer.port;
    holder->number = number;
    holder->channel_expiry = detail::expiry_units(expiry, shift);
    recount(a, first);
    return ChannelResult::bound;
}

// --- SipHash-2-4 (Aumasson, Bernstein: "SipHash: a fast short-input PRF", 2012) ---

std::uint64_t detail::siphash24(const std::array<std::uint64_t, 2>& key,
                                std::string_view input) noexcept {
    std::uint64_t v0 = key[0] ^ 0x736f6d6570736575ull;
    std::uint64_t v1 = key[1] ^ 0x646f72616e646f6dull;
    std::uint64_t v2 = key[0] ^ 0x6c7967656e657261ull;
    std::uint64_t v3 = key[1] ^ 0x7465646279746573ull;
    const auto round = [&]() noexcept {
        v0 += v1;
        v1 = std::rotl(v1, 13) ^ v0;
        v0 = std::rotl(v0, 32);
        v2 += v3;
        v3 = std::rotl(v3, 16) ^ v2;
        v0 += v3;
        v3 = std::rotl(v3, 21) ^ v0;
        v2 += v1;
        v1 = std::rotl(v1, 17) ^ v2;
        v2 = std::rotl(v2, 32);
    };
    const std::size_t whole = input.size() / 8 * 8;
    for (std::size_t at = 0; at < whole; at += 8) {
        std::uint64_t m = 0;
        std::memcpy(&m, input.data() + at, 8);  // little-endian, as the reference
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
    std::uint64_t last = std::uint64_t{input.size() & 0xFF} << 56;
    for (std::size_t i = whole; i < input.size(); ++i)
        last |= std::uint64_t{static_cast<std::uint8_t>(input[i])} << (8 * (i - whole));
    v3 ^= last;
    round();
    round();
    v0 ^= last;
    v2 ^= 0xFF;
    for (int i = 0; i < 4; ++i) round();
    return v0 ^ v1 ^ v2 ^ v3;
}

std::uint64_t RelayTable::username_hash(std::string_view username) const noexcept {
    return detail::siphash24(username_key_, username);
}

bool RelayTable::username_equals(std::uint32_t slot, std::string_view username) const noexcept {
    const Allocation& a = at(slot);
    return username.size() == a.username_length() &&
           username_hash(username) == a.username_hash();
}

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
    const std::uint32_t slot = free_head_ - 1;
    free_head_ = at(slot).next_free_;
    --free_count_;
    port_slot_[endpoint] = slot;
    const auto port = static_cast<std::uint16_t>(first_port_ + endpoint % port_count_);
    const auto address = static_cast<std::uint8_t>(endpoint / port_count_);

    Allocation& a = at(slot);
    // Owner-only fields first (the listing never reads them), then one write section for
    // everything it does read.
    a.state_ = allocation.password_algorithm == stun::PasswordAlgorithm::sha256
                   ? Allocation::sha256_bit
                   : 0;
    a.integrity_key_ = {};
    std::memcpy(a.integrity_key_.data(), allocation.integrity_key.data(), key_size);
    a.bandwidth_ = TokenBucket{};
    a.next_free_ = 0;
    const std::uint64_t username_hash = this->username_hash(allocation.username);
    a.begin_write();
    a.set_shape(port, address, families, true);
    for (std::size_t i = 0; i < 5; ++i) a.key_[i].set(allocation.key.words()[i]);
    a.expiry_[0].set((families & relay_ipv4) != 0 ? allocation.expiry : 0);
    a.expiry_[1].set((families & relay_ipv6) != 0 ? allocation.expiry : 0);
    a.set_counts(0, 0, allocation.username.size(), 0);
    for (auto& counter : a.counters_) counter.set(0);
    a.username_hash_.set(username_hash);
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
    for (std::uint32_t offset = a.first_peer(); offset != 0;) {
        detail::PeerEntry& e = a.entry(offset);
        offset = e.link & detail::PeerEntry::next_mask;
        free_entry(e);
    }
    // The long-term key does not outlive the allocation in memory.
    a.integrity_key_ = {};
    a.state_ = 0;
    a.begin_write();
    a.set_shape(0, 0, 0, false);
    a.set_counts(0, 0, 0, 0);
    a.username_hash_.set(0);
    a.end_write();
    a.next_free_ = free_head_;
    free_head_ = slot + 1;
    ++free_count_;
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
            collect_peers(a, now);
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
    for (std::size_t visited = 0; visited < max_records && visited < reservation_capacity_;
         ++visited) {
        if (reservation_cursor_ >= reservation_capacity_) reservation_cursor_ = 0;
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
            out.permission_count =
                static_cast<std::uint16_t>(counts & Allocation::count_mask);
            out.channel_count = static_cast<std::uint16_t>(
                counts >> Allocation::channel_count_shift & Allocation::count_mask);
            out.username_length = static_cast<std::uint16_t>(
                counts >> Allocation::username_length_shift & Allocation::username_length_mask);
            out.username_hash = a.username_hash_.read();
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
