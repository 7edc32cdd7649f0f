// The SFU leg table and the membership snapshot (engine/sfu_table.h).
#include "engine/sfu_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "stun/bytes.h"

namespace engine {
namespace {

// splitmix64 (Steele, Lea, Flood): the seed's stream of well-mixed words, as relay_table.cc.
std::uint64_t next_random(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept {
    return (n + to - 1) / to * to;
}

constexpr std::uint32_t max_capacity = 1u << 20;  // config's sfu.max_legs

std::uint64_t fold(std::uint64_t a, std::uint64_t b) noexcept {
    __extension__ using Product = unsigned __int128;
    const Product product = static_cast<Product>(a) * b;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

}  // namespace

// --- SfuParticipant ---

SfuParticipant SfuParticipant::from(std::string_view name) noexcept {
    SfuParticipant p;
    p.length = static_cast<std::uint8_t>(std::min(name.size(), p.bytes.size()));
    std::memcpy(p.bytes.data(), name.data(), p.length);
    return p;
}

// --- SfuLeg ---

FiveTuple SfuLeg::key() const noexcept {
    FiveTuple key;
    for (std::size_t i = 0; i < key.words_.size(); ++i) key.words_[i] = key_[i].get();
    return key;
}

SfuParticipant SfuLeg::participant() const noexcept {
    SfuParticipant p;
    p.length = static_cast<std::uint8_t>(state_.get() >> 8);
    for (std::size_t i = 0; i < participant_.size(); ++i) {
        const std::uint64_t word = participant_[i].get();
        std::memcpy(p.bytes.data() + i * 8, &word, 8);
    }
    return p;
}

MacAddress SfuLeg::client_mac() const noexcept {
    MacAddress mac;
    const std::uint64_t word = mac_.get();
    std::memcpy(mac.data(), &word, mac.size());
    return mac;
}

// --- SfuTable ---

SfuTable::SfuTable(std::uint32_t capacity, std::uint64_t seed) : capacity_(capacity) {
    if (capacity == 0 || capacity > max_capacity)
        throw std::invalid_argument("SfuTable: capacity " + std::to_string(capacity) +
                                    " outside 1.." + std::to_string(max_capacity));
    // Both indexes a power of two at least twice the capacity: at most half full, so that
    // an empty entry ends every probe.
    const std::size_t index_size = std::bit_ceil(std::size_t{capacity} * 2);
    const std::size_t legs_bytes = std::size_t{capacity} * sizeof(SfuLeg);
    const std::size_t index_at = round_up(legs_bytes, 64);
    const std::size_t sessions_at = round_up(index_at + index_size * sizeof(std::uint64_t), 64);
    memory_ = detail::TableMemory(sessions_at + index_size * sizeof(SessionEntry));
    for (std::uint32_t slot = 0; slot < capacity; ++slot) {
        SfuLeg* leg = new (memory_.data() + std::size_t{slot} * sizeof(SfuLeg)) SfuLeg;
        leg->next_free_ = slot + 1 < capacity ? slot + 2 : 0;
    }
    legs_ = std::launder(reinterpret_cast<SfuLeg*>(memory_.data()));
    index_ = reinterpret_cast<std::uint64_t*>(memory_.data() + index_at);
    sessions_ = reinterpret_cast<SessionEntry*>(memory_.data() + sessions_at);
    index_mask_ = static_cast<std::uint32_t>(index_size - 1);
    session_mask_ = index_mask_;
    free_head_ = 1;
    std::uint64_t state = seed;
    for (std::uint64_t& word : seed_) word = next_random(state);
    seed_[5] |= 1;  // the last product's multiplier: odd, so it loses no bit of its operand
    seed_[6] |= 1;
}

std::uint32_t SfuTable::session_home(std::uint64_t session) const noexcept {
    // Session ids are the coordinator's (random in practice, but a client names one in its
    // token): seeded, so that nobody aims a probe chain at a chosen index.
    return static_cast<std::uint32_t>(fold(session ^ seed_[4], seed_[6]) >> 32) & session_mask_;
}

std::uint32_t SfuTable::find_session(std::uint64_t session) const noexcept {
    for (std::uint32_t i = session_home(session);; i = (i + 1) & session_mask_) {
        const SessionEntry& e = sessions_[i];
        if (e.first == 0) return no_slot;
        if (e.session == session) return i;
    }
}

std::uint32_t SfuTable::find_participant(std::uint64_t session,
                                         std::string_view participant) const noexcept {
    const std::uint32_t at = find_session(session);
    if (at == no_slot) return no_slot;
    for (std::uint32_t next = sessions_[at].first; next != 0;) {
        const std::uint32_t slot = next - 1;
        if (legs_[slot].participant().view() == participant) return slot;
        next = legs_[slot].session_next_;
    }
    return no_slot;
}

std::uint32_t SfuTable::session_legs(std::uint64_t session) const noexcept {
    const std::uint32_t at = find_session(session);
    return at == no_slot ? 0 : sessions_[at].count;
}

std::uint32_t SfuTable::insert(const FiveTuple& key, std::uint64_t session,
                               const SfuParticipant& participant, const MacAddress& client_mac,
                               std::uint64_t now_ticks) noexcept {
    if (free_head_ == 0) return no_slot;
    const std::uint32_t slot = free_head_ - 1;
    SfuLeg& leg = legs_[slot];
    free_head_ = leg.next_free_;
    leg.next_free_ = 0;

    leg.begin_write();
    for (std::size_t i = 0; i < 5; ++i) leg.key_[i].set(key.words()[i]);
    leg.session_.set(session);
    for (std::size_t i = 0; i < leg.participant_.size(); ++i) {
        std::uint64_t word;
        std::memcpy(&word, participant.bytes.data() + i * 8, 8);
        leg.participant_[i].set(word);
    }
    std::uint64_t mac = 0;
    std::memcpy(&mac, client_mac.data(), client_mac.size());
    leg.mac_.set(mac);
    leg.last_heard_.set(now_ticks);
    leg.admitted_.set(now_ticks);
    for (auto& counter : leg.counters_) counter.set(0);
    leg.state_.set(1u | std::uint32_t{participant.length} << 8);
    leg.end_write();

    // The 5-tuple index.
    const std::uint64_t tag = hash(key) >> 32;
    std::uint32_t i = static_cast<std::uint32_t>(tag) & index_mask_;
    while (index_[i] != 0) i = (i + 1) & index_mask_;
    index_[i] = tag << 32 | (slot + 1);

    // The session's local list: the new leg first.
    std::uint32_t at = find_session(session);
    if (at == no_slot) {
        at = session_home(session);
        while (sessions_[at].first != 0) at = (at + 1) & session_mask_;
        sessions_[at] = {session, 0, 0};
    }
    SessionEntry& entry = sessions_[at];
    leg.session_previous_ = 0;
    leg.session_next_ = entry.first;
    if (entry.first != 0) legs_[entry.first - 1].session_previous_ = slot + 1;
    entry.first = slot + 1;
    ++entry.count;

    ++size_;
    if (slot + 1 > slots_used_.load(std::memory_order_relaxed))
        slots_used_.store(slot + 1, std::memory_order_relaxed);
    return slot;
}

void SfuTable::erase_index(std::uint32_t slot, std::uint64_t tag) noexcept {
    std::uint32_t i = static_cast<std::uint32_t>(tag) & index_mask_;
    while (index_[i] != (tag << 32 | (slot + 1))) i = (i + 1) & index_mask_;
    // Backward shift (Knuth 6.4, Algorithm R): every later entry of the run whose home lies
    // at or before the hole moves into it, so no tombstone is left.
    for (std::uint32_t j = (i + 1) & index_mask_;; j = (j + 1) & index_mask_) {
        const std::uint64_t entry = index_[j];
        if (entry == 0) break;
        const std::uint32_t home = static_cast<std::uint32_t>(entry >> 32) & index_mask_;
        if (((j - home) & index_mask_) >= ((j - i) & index_mask_)) {
            index_[i] = entry;
            i = j;
        }
    }
    index_[i] = 0;
}

void SfuTable::erase_session_entry(std::uint32_t i) noexcept {
    for (std::uint32_t j = (i + 1) & session_mask_;; j = (j + 1) & session_mask_) {
        const SessionEntry& entry = sessions_[j];
        if (entry.first == 0) break;
        const std::uint32_t home = session_home(entry.session);
        if (((j - home) & session_mask_) >= ((j - i) & session_mask_)) {
            sessions_[i] = entry;
            i = j;
        }
    }
    sessions_[i] = {};
}

void SfuTable::erase(std::uint32_t slot) noexcept {
    SfuLeg& leg = legs_[slot];
    erase_index(slot, hash(leg.key()) >> 32);
    const std::uint32_t at = find_session(leg.session());
    if (at != no_slot) {
        SessionEntry& entry = sessions_[at];
        if (leg.session_previous_ != 0)
            legs_[leg.session_previous_ - 1].session_next_ = leg.session_next_;
        else
            entry.first = leg.session_next_;
        if (leg.session_next_ != 0)
            legs_[leg.session_next_ - 1].session_previous_ = leg.session_previous_;
        if (--entry.count == 0) erase_session_entry(at);
    }
    leg.begin_write();
    leg.state_.set(0);
    leg.end_write();
    leg.session_previous_ = leg.session_next_ = 0;
    leg.next_free_ = free_head_;
    free_head_ = slot + 1;
    --size_;
}

SfuTable::SnapshotStatus SfuTable::snapshot(std::uint32_t slot, SfuLegSnapshot& out,
                                            unsigned attempts) const noexcept {
    const SfuLeg& leg = legs_[slot];
    for (unsigned attempt = 0; attempt < attempts; ++attempt) {
        // Acquire: pairs with end_write()'s release (RelayTable::snapshot() has the argument).
        const std::uint32_t before = leg.sequence_.load(std::memory_order_acquire);
        if ((before & 1) != 0) continue;  // the owner is writing; it never waits on us
        const std::uint32_t state = leg.state_.read();
        const bool live = state != 0;
        if (live) {
            out.slot = slot;
            for (std::size_t i = 0; i < 5; ++i) out.key.words_[i] = leg.key_[i].read();
            out.session = leg.session_.read();
            out.participant.length = static_cast<std::uint8_t>(state >> 8);
            for (std::size_t i = 0; i < leg.participant_.size(); ++i) {
                const std::uint64_t word = leg.participant_[i].read();
                std::memcpy(out.participant.bytes.data() + i * 8, &word, 8);
            }
            const std::uint64_t mac = leg.mac_.read();
            std::memcpy(out.client_mac.data(), &mac, out.client_mac.size());
            out.last_heard = leg.last_heard_.read();
            out.admitted = leg.admitted_.read();
            out.counters = {leg.counters_[0].read(), leg.counters_[1].read(),
                            leg.counters_[2].read(), leg.counters_[3].read(),
                            leg.counters_[4].read()};
        }
        // Relaxed: the acquire loads above keep it after them.
        if (leg.sequence_.load(std::memory_order_relaxed) == before)
            return live ? SnapshotStatus::live : SnapshotStatus::empty;
    }
    return SnapshotStatus::skipped;
}

// --- Membership ---

bool SfuSelection::allows(const SfuParticipant& publisher,
                          std::optional<std::uint32_t> ssrc) const noexcept {
    for (const SfuParticipant& p : paused)
        if (p == publisher) return false;
    if (!ssrc || ssrcs.empty()) return true;
    return std::find(ssrcs.begin(), ssrcs.end(), *ssrc) != ssrcs.end();
}

SfuPlanDestination plan_destination(const SfuMember& member) noexcept {
    SfuPlanDestination d;
    d.key = member.key;
    d.client_mac = member.client_mac;
    d.ssrc_count = static_cast<std::uint32_t>(member.selection.ssrcs.size());
    d.ssrcs = member.selection.ssrcs.data();
    const auto& words = member.key.words();
    if (static_cast<std::uint8_t>(words[4] >> 32) ==
        static_cast<std::uint8_t>(stun::AddressFamily::ipv4)) {
        // A FiveTuple word holds an IPv4 address's 4 bytes first, as they lie in a header.
        const auto* to = reinterpret_cast<const std::byte*>(&words[0]);
        const auto* from = reinterpret_cast<const std::byte*>(&words[2]);
        d.address_terms = std::uint32_t{stun::load_be16(from)} + stun::load_be16(from + 2) +
                          stun::load_be16(to) + stun::load_be16(to + 2);
    }
    return d;
}

SfuMembership::SfuMembership(std::vector<SfuSession> sessions) : sessions_(std::move(sessions)) {
    // Sized first: the plans' destinations are one array, reserved once.
    std::size_t pairs = 0;
    std::vector<std::uint32_t> slots;  // [worker]: the highest slot + 1
    for (const SfuSession& session : sessions_) {
        const std::size_t n = session.members.size();
        if (n > 65536)
            throw std::length_error("SfuMembership: session of " + std::to_string(n) +
                                    " members, more than a plan's 65535 destinations");
        pairs += n < 2 ? 0 : n * (n - 2);
        for (const SfuMember& m : session.members) {
            if (m.slot == SfuTable::no_slot) continue;
            if (m.worker >= slots.size()) slots.resize(std::size_t{m.worker} + 1, 0);
            slots[m.worker] = std::max(slots[m.worker], m.slot + 1);
        }
    }
    destinations_.reserve(pairs);
    plans_.resize(slots.size());
    for (std::size_t w = 0; w < slots.size(); ++w) plans_[w].resize(slots[w]);
    for (const SfuSession& session : sessions_) {
        for (const SfuMember& publisher : session.members) {
            if (publisher.slot == SfuTable::no_slot) continue;
            SfuPlan& plan = plans_[publisher.worker][publisher.slot];
            plan = {};
            plan.publisher = publisher.key;
            plan.session = session.id;
            plan.rest = static_cast<std::uint32_t>(destinations_.size());
            plan.participant = &publisher.participant;
            // As the general path chooses (sfu_forward()): every other member in order of
            // admission, but those that pause this publisher, which are filtered on every
            // datagram whatever its SSRC (SfuSelection::allows() checks pauses first).
            for (const SfuMember& subscriber : session.members) {
                if (subscriber.key == publisher.key) continue;  // not back to the publisher
                const auto& paused = subscriber.selection.paused;
                if (std::find(paused.begin(), paused.end(), publisher.participant) !=
                    paused.end()) {
                    ++plan.paused;
                    continue;
                }
                if (plan.count == 0)
                    plan.head = plan_destination(subscriber);
                else
                    destinations_.push_back(plan_destination(subscriber));
                ++plan.count;
            }
        }
    }
}

const SfuSession* SfuMembership::find(std::uint64_t id) const noexcept {
    const auto it = std::lower_bound(
        sessions_.begin(), sessions_.end(), id,
        [](const SfuSession& s, std::uint64_t wanted) { return s.id < wanted; });
    return it != sessions_.end() && it->id == id ? &*it : nullptr;
}

SfuMembershipBuilder::JoinResult SfuMembershipBuilder::join(const SfuMessage& message) {
    SfuSession& session = sessions_[message.session];
    session.id = message.session;
    for (const SfuMember& m : session.members) {
        if (m.participant == message.participant)
            return m.key == message.key && m.worker == message.worker ? JoinResult::repeated
                                                                      : JoinResult::replayed;
    }
    if (session.members.size() >= max_legs_per_session_) return JoinResult::full;
    SfuMember member;
    member.key = message.key;
    member.participant = message.participant;
    member.client_mac = message.client_mac;
    member.worker = message.worker;
    member.slot = message.slot;
    session.members.push_back(std::move(member));
    return JoinResult::joined;
}

bool SfuMembershipBuilder::leave(const SfuMessage& message) {
    const auto it = sessions_.find(message.session);
    if (it == sessions_.end()) return false;
    auto& members = it->second.members;
    const auto m = std::find_if(members.begin(), members.end(), [&](const SfuMember& x) {
        return x.key == message.key && x.worker == message.worker;
    });
    if (m == members.end()) return false;
    members.erase(m);
    // A publisher that left is no longer paused by anyone: a new leg of the same name is a
    // new join, and starts unpaused.
    for (SfuMember& other : members)
        std::erase(other.selection.paused, message.participant);
    if (members.empty()) sessions_.erase(it);
    return true;
}

SfuMember* SfuMembershipBuilder::member(std::uint64_t session, std::string_view participant) {
    const auto it = sessions_.find(session);
    if (it == sessions_.end()) return nullptr;
    for (SfuMember& m : it->second.members)
        if (m.participant.view() == participant) return &m;
    return nullptr;
}

bool SfuMembershipBuilder::pause(std::uint64_t session, std::string_view subscriber,
                                 std::string_view publisher, bool paused) {
    SfuMember* sub = member(session, subscriber);
    if (sub == nullptr || member(session, publisher) == nullptr) return false;
    const SfuParticipant p = SfuParticipant::from(publisher);
    auto& list = sub->selection.paused;
    std::erase(list, p);
    if (paused) list.push_back(p);
    return true;
}

bool SfuMembershipBuilder::select(std::uint64_t session, std::string_view subscriber,
                                  std::vector<std::uint32_t> ssrcs) {
    SfuMember* sub = member(session, subscriber);
    if (sub == nullptr) return false;
    sub->selection.ssrcs = std::move(ssrcs);
    return true;
}

std::shared_ptr<const SfuMembership> SfuMembershipBuilder::build() const {
    std::vector<SfuSession> sessions;
    sessions.reserve(sessions_.size());
    for (const auto& [id, session] : sessions_) sessions.push_back(session);  // map: sorted
    return std::make_shared<const SfuMembership>(std::move(sessions));
}

}  // namespace engine
