// The TURN relay role (RFC 8656 over UDP) at the STUN-message level: engine/relay_role.h gives
// the order of the checks and who owns what.
#include "engine/relay_role.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/crypto.h"
#include "stun/writer.h"

namespace engine {

// The shard's private members, for the functions of this file only (the header comment: the
// table changes only through them, so that the per-user counts stay in step).
struct RelayShardAccess {
    static SourceRateLimiter& limiter(RelayShard& shard) noexcept { return shard.limiter_; }
    static const RelayTableLimits& table_limits(const RelayShard& shard) noexcept {
        return shard.table_limits_;
    }
    static std::uint64_t user_hash(const RelayShard& shard, std::string_view name) noexcept {
        return shard.user_hash(name);
    }
    static void add_user(RelayShard& shard, std::uint64_t hash, std::uint32_t slot) noexcept {
        shard.add_user(hash, slot);
    }
    static void erase_slot(RelayShard& shard, std::uint32_t slot) noexcept {
        shard.erase_slot(slot);
    }
    static std::uint32_t& sweep_cursor(RelayShard& shard) noexcept {
        return shard.sweep_cursor_;
    }
};

namespace {

using Access = RelayShardAccess;

// The attributes the relay understands: every one the codec knows (RFC 8489's and RFC 8656's)
// but those of RFC 5780 and ICE, which mean nothing to a TURN server; any other
// comprehension-required attribute gets a 420 (RFC 8489 §6.3.1.1). DONT-FRAGMENT is among the
// known: RFC 8656 §7.2 has a server that cannot send with DF set treat it as unknown, and the
// engine never fragments what it relays (design.md §3: it neither fragments nor reassembles).
bool relay_role_knows(std::uint16_t type) noexcept {
    switch (type) {
    case stun::attr::change_request:
    case stun::attr::padding:
    case stun::attr::response_port:
    case stun::attr::priority:
    case stun::attr::use_candidate:
        return false;
    default:
        return stun::is_known_attribute(type) || !stun::is_comprehension_required(type);
    }
}

// At most this many XOR-PEER-ADDRESS attributes in one CreatePermission (a 1500-byte request
// holds about 120 IPv4 ones): kept on the stack, all checked before any is installed.
constexpr std::size_t max_request_peers = 32;
// UNKNOWN-ATTRIBUTES lists at most this many (RFC 8489 §14.9 sets no bound; a client that
// sends more learns of them one 420 at a time).
constexpr std::size_t max_unknown_reported = 8;

// Everything the response needs from the request, read before `out` (which may be the
// request's buffer) is written.
struct RequestFacts {
    stun::TransactionId transaction_id{};
    stun::Method method = stun::Method::allocate;
    bool fingerprint = false;
    // ADDITIONAL-ADDRESS-FAMILY present: a success without IPv6 then says why (§7.2).
    bool additional_family = false;
    std::array<std::uint16_t, max_unknown_reported> unknown{};
    std::size_t unknown_count = 0;
};

struct Decision {
    TurnOutcome outcome;
    std::uint32_t lifetime = 0;  // the LIFETIME of a success to Allocate or Refresh
    std::uint64_t reservation_token = 0;  // a success to Allocate with EVEN-PORT's R bit
};

std::uint16_t code_of(TurnOutcome outcome) noexcept {
    return turn_outcome_codes[static_cast<std::size_t>(outcome)];
}

TurnAnswer drop(TurnOutcome outcome) noexcept {
    TurnAnswer answer;
    answer.action = TurnAction::drop;
    answer.outcome = outcome;
    return answer;
}

std::uint64_t ticks(const RelayContext& context, std::uint32_t seconds) noexcept {
    return std::uint64_t{seconds} * context.limits().ticks_per_second;
}

// RFC 8656 §7.2 (and §8.2 for Refresh): "the server computes the minimum of the client's
// requested lifetime and the server's maximum allowed lifetime. If this computed value is
// greater than the default lifetime, then the server uses the computed lifetime as the
// initial value of the time-to-expiry timer. Otherwise, the server uses the default lifetime."
std::uint32_t negotiate_lifetime(const RelayLimits& limits,
                                 std::optional<std::uint32_t> requested) noexcept {
    if (!requested) return limits.default_lifetime_s;
    return std::max(limits.default_lifetime_s, std::min(*requested, limits.max_lifetime_s));
}

// Removes the relayed addresses of `slot` whose time-to-expiry has run out (RFC 8656 §6: the
// allocation, or that address of it, is deleted), and the allocation when none is left.
// True when the allocation is gone.
bool expire_slot(RelayShard& shard, std::uint32_t slot, std::uint64_t now) noexcept {
    Allocation& allocation = shard.table().at(slot);
    std::uint8_t expired = 0;
    for (const std::uint8_t family : {relay_ipv4, relay_ipv6})
        if ((allocation.families() & family) != 0 && allocation.expiry(family) <= now)
            expired |= family;
    if (expired != 0) allocation.drop_families(expired);
    if (allocation.families() == 0) {
        Access::erase_slot(shard, slot);
        return true;
    }
    return false;
}

// The live allocation of `five_tuple`, or no_slot (an expired one removed on the way).
std::uint32_t live_allocation(RelayShard& shard, const FiveTuple& five_tuple,
                              std::uint64_t now) noexcept {
    const std::uint32_t slot = shard.table().find(five_tuple);
    if (slot == RelayTable::no_slot || expire_slot(shard, slot, now)) return RelayTable::no_slot;
    return slot;
}

// Writes the answer to an authenticated request: an error with `code` (UNKNOWN-ATTRIBUTES
// for 420), or the method's success attributes from `allocation`; then the integrity
// attribute and FINGERPRINT. The same inputs give the same bytes, which is what makes a
// retransmission's answer identical. Returns the size, 0 when `out` is too small.
std::size_t write_answer(const RelayContext& context, const RequestFacts& facts,
                         const AuthResult& auth, const FiveTuple& five_tuple,
                         const Allocation* allocation, std::uint16_t code,
                         std::uint32_t lifetime, std::uint64_t reservation_token,
                         std::span<std::byte> out) noexcept {
    stun::MessageWriter writer(out, facts.method,
                               code == 0 ? stun::MessageClass::success_response
                                         : stun::MessageClass::error_response,
                               facts.transaction_id);
    if (code != 0) {
        writer.add_error_code(code);
        // RFC 8489 §10: a 300 names the alternate server (ALTERNATE-SERVER, §14.15, encoded as
        // MAPPED-ADDRESS) and, the request being authenticated, is signed below.
        if (code == stun::error_code::try_alternate && context.drain().alternate_server)
            writer.add_address(stun::attr::alternate_server, *context.drain().alternate_server);
        // RFC 8489 §6.3.1.1: a 420 lists the unknown attributes in UNKNOWN-ATTRIBUTES.
        if (code == stun::error_code::unknown_attribute)
            writer.add_unknown_attributes(std::span<const std::uint16_t>(facts.unknown).first(
                std::min(facts.unknown_count, max_unknown_reported)));
    } else if (facts.method == stun::Method::allocate && allocation != nullptr) {
        // RFC 8656 §7.2: XOR-RELAYED-ADDRESS (one per family), LIFETIME,
        // XOR-MAPPED-ADDRESS (the client's server-reflexive address).
        for (const std::uint8_t family : {relay_ipv4, relay_ipv6})
            if ((allocation->families() & family) != 0)
                writer.add_xor_address(stun::attr::xor_relayed_address,
                                       context.relayed_address(allocation->relay_address(),
                                                               allocation->relay_port(), family));
        // §7.2: ADDITIONAL-ADDRESS-FAMILY asked for IPv6 and the server has none: the IPv4
        // allocation succeeds, and ADDRESS-ERROR-CODE says why IPv6 did not.
        if (facts.additional_family && (allocation->families() & relay_ipv6) == 0)
            writer.add_address_error_code(
                stun::AddressFamily::ipv6, stun::error_code::address_family_not_supported,
                stun::reason_phrase(stun::error_code::address_family_not_supported));
        writer.add_u32(stun::attr::lifetime, lifetime);
        // §7.2: EVEN-PORT's R bit honoured, the success carries RESERVATION-TOKEN, the token
        // of the port reserved.
        if (reservation_token != 0)
            writer.add_u64(stun::attr::reservation_token, reservation_token);
        writer.add_xor_address(stun::attr::xor_mapped_address, five_tuple.client());
    } else if (facts.method == stun::Method::refresh) {
        // RFC 8656 §8.2: the success carries LIFETIME (0 when deleted).
        writer.add_u32(stun::attr::lifetime, lifetime);
    }
    sign_response(writer, auth);
    if (facts.fingerprint) writer.add_fingerprint();
    return writer.finish().size();
}

TurnAnswer respond(TurnOutcome outcome, std::uint16_t code, std::size_t length) noexcept {
    if (length == 0) return drop(TurnOutcome::response_too_large);
    TurnAnswer answer;
    answer.action = TurnAction::respond;
    answer.outcome = outcome;
    answer.error_code = code;
    answer.response_length = length;
    return answer;
}

// An optional attribute decoded: absent, present and well formed, or malformed.
enum class Presence : std::uint8_t { absent, present, malformed };

template <class T, class Decode>
Presence decode_optional(const stun::Message& request, std::uint16_t type, T& out,
                         Decode decode) noexcept {
    const std::optional<stun::Attribute> attribute = request.find(type);
    if (!attribute) return Presence::absent;
    return decode(*attribute, out) == stun::ParseError::ok ? Presence::present
                                                           : Presence::malformed;
}

// An even relay port free on one of the worker's relay addresses (RFC 8656 §7.2, EVEN-PORT),
// and with `with_next` its next port free too (the R bit), searched from a start the
// transaction ID picks, so that even ports are not handed out in order. Cost: up to the
// worker's port count of array loads, per address, on a request that asks for it.
bool find_even_port(const RelayShard& shard, const stun::TransactionId& transaction_id,
                    bool with_next, std::uint16_t& port, std::uint8_t& address) noexcept {
    const RelayTableLimits& limits = Access::table_limits(shard);
    const std::uint32_t count = limits.relay_port_count;
    const std::uint32_t start = stun::load_be32(transaction_id.data()) % count;
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto candidate =
            static_cast<std::uint16_t>(limits.first_relay_port + (start + i) % count);
        if ((candidate & 1) != 0) continue;
        for (std::uint16_t index = 0; index < limits.relay_addresses; ++index) {
            const auto at = static_cast<std::uint8_t>(index);
            const auto next = static_cast<std::uint16_t>(candidate + 1);
            // The next port of a worker's last (even) port is not the worker's: unavailable.
            if (shard.table().relay_port_available(at, candidate) &&
                (!with_next || shard.table().relay_port_available(at, next))) {
                port = candidate;
                address = static_cast<std::uint8_t>(index);
                return true;
            }
        }
    }
    return false;
}

// RFC 8656 §7.2, from step 3 on (authentication and the 5-tuple check are done). On success
// `slot` is the new allocation's.
Decision allocate(const RelayContext& context, RelayShard& shard, const stun::Message& request,
                  const RequestFacts& facts, const AuthResult& auth, const FiveTuple& five_tuple,
                  std::uint64_t now, std::uint32_t& slot) noexcept {
    // "The server checks if the request contains a REQUESTED-TRANSPORT attribute. If the
    // REQUESTED-TRANSPORT attribute is not included or is malformed, the server rejects the
    // request with a 400 (Bad Request) error. Otherwise, if the attribute indicates an
    // unsupported transport protocol, the server rejects the request with a 442".
    std::uint8_t protocol = 0;
    if (decode_optional(request, stun::attr::requested_transport, protocol,
                        stun::decode_requested_transport) != Presence::present)
        return {TurnOutcome::missing_transport};
    if (protocol != stun::transport_udp) return {TurnOutcome::unsupported_transport};

    // DONT-FRAGMENT: accepted (relay_role_knows()); its value must be empty.
    if (const auto flag = request.find(stun::attr::dont_fragment);
        flag && stun::decode_flag(*flag) != stun::ParseError::ok)
        return {TurnOutcome::bad_allocate_attribute};

    bool reserve_next = false;
    const Presence even_port =
        decode_optional(request, stun::attr::even_port, reserve_next, stun::decode_even_port);
    stun::AddressFamily requested_family = stun::AddressFamily::ipv4;
    const Presence requested = decode_optional(request, stun::attr::requested_address_family,
                                               requested_family, stun::decode_address_family);
    stun::AddressFamily additional_family = stun::AddressFamily::ipv4;
    const Presence additional = decode_optional(request, stun::attr::additional_address_family,
                                                additional_family, stun::decode_address_family);
    std::uint64_t token = 0;
    const Presence reservation =
        decode_optional(request, stun::attr::reservation_token, token, stun::decode_u64);
    if (even_port == Presence::malformed || reservation == Presence::malformed)
        return {TurnOutcome::bad_allocate_attribute};

    // RESERVATION-TOKEN together with EVEN-PORT, REQUESTED-ADDRESS-FAMILY or
    // ADDITIONAL-ADDRESS-FAMILY is a 400 (§7.2): the reservation, made for one family, says
    // which. A token that names no reservation is a 508, below.
    const bool claim = reservation == Presence::present;
    if (claim && (even_port != Presence::absent || requested != Presence::absent ||
                  additional != Presence::absent))
        return {TurnOutcome::token_with_family_or_even_port};
    // EVEN-PORT with the R bit (reserve the next port as well) asks for one family: with
    // ADDITIONAL-ADDRESS-FAMILY it is a 400.
    const bool reserve = even_port == Presence::present && reserve_next;
    if (reserve && additional != Presence::absent) return {TurnOutcome::bad_family_attribute};

    // Families: a REQUESTED-ADDRESS-FAMILY the server does not support (or that local policy
    // disables) is a 440; REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY together are
    // a 400, and so is an ADDITIONAL-ADDRESS-FAMILY other than IPv6, the only value it may
    // take. Without either, the relayed address is IPv4 (RFC 6156 §4.2, kept by §7.2); with a
    // token, the reservation's (the table's).
    if (requested == Presence::malformed || additional == Presence::malformed ||
        (requested == Presence::present && additional == Presence::present) ||
        (additional == Presence::present && additional_family != stun::AddressFamily::ipv6))
        return {TurnOutcome::bad_family_attribute};
    std::uint8_t families = relay_ipv4;
    if (requested == Presence::present) families = relay_family(requested_family);
    if (!claim && (context.families() & families) == 0)
        return {TurnOutcome::family_not_supported};
    if (additional == Presence::present) families |= context.families() & relay_ipv6;

    std::uint32_t requested_lifetime = 0;
    const Presence lifetime_presence =
        decode_optional(request, stun::attr::lifetime, requested_lifetime, stun::decode_u32);
    if (lifetime_presence == Presence::malformed) return {TurnOutcome::bad_allocate_attribute};

    // A user over its allocation quota gets a 486 (Allocation Quota Reached); counted per
    // worker (the header).
    if (auth.username.size() > max_username_length) return {TurnOutcome::username_too_long};
    if (shard.allocations_of(auth.username) >= context.limits().max_allocations_per_user)
        return {TurnOutcome::user_quota_reached};

    // EVEN-PORT: a server that cannot satisfy it answers 508 (§7.2). An even port is searched
    // for, and with the R bit one whose next port is free as well: the table reserves that
    // one (held "for about 30 seconds", reservation_lifetime_s) under a new
    // RESERVATION-TOKEN. The reservations are as many as the table's records at most.
    // RESERVATION-TOKEN: "the server uses the previously reserved transport address
    // corresponding to the included token (if it is still available)"; a token that is not
    // valid (unknown, claimed, expired) is a 508 (the table checks).
    RelayTable::NewAllocation fresh;
    fresh.now = now;
    std::uint64_t new_token = 0;
    if (claim) {
        fresh.claim_token = token;
    } else if (even_port == Presence::present) {
        if (reserve &&
            shard.table().reservation_count() >= shard.table().reservation_capacity())
            return {TurnOutcome::reservations_full};
        if (!find_even_port(shard, facts.transaction_id, reserve, fresh.relay_port,
                            fresh.relay_address))
            return {TurnOutcome::even_port_unavailable};
        if (reserve) {
            // Drawn again in the (2^-64) case of a token a reservation holds.
            do {
                new_token = shard.next_reservation_token();
            } while (shard.table().has_reservation(new_token, 0));
            fresh.reserve_token = new_token;
            fresh.reservation_expiry =
                now + ticks(context, context.limits().reservation_lifetime_s);
        }
    }

    const std::uint32_t lifetime = negotiate_lifetime(
        context.limits(), lifetime_presence == Presence::present
                              ? std::optional<std::uint32_t>(requested_lifetime)
                              : std::nullopt);
    fresh.key = five_tuple;
    fresh.username = auth.username;
    fresh.password_algorithm = auth.algorithm;
    fresh.integrity_key = auth.key();
    fresh.families = families;
    fresh.expiry = now + ticks(context, lifetime);
    const RelayTable::InsertResult inserted = shard.table().insert(fresh);
    switch (inserted.status) {
    case RelayTable::InsertStatus::inserted: break;
    // handle_turn() found no allocation for the 5-tuple.
    case RelayTable::InsertStatus::exists: return {TurnOutcome::allocation_exists};
    // RFC 8656 §7.2: 508 when the server cannot allocate for lack of capacity.
    case RelayTable::InsertStatus::table_full: return {TurnOutcome::table_full};
    case RelayTable::InsertStatus::no_relay_port: return {TurnOutcome::no_relay_port};
    case RelayTable::InsertStatus::port_unavailable: return {TurnOutcome::even_port_unavailable};
    case RelayTable::InsertStatus::bad_username: return {TurnOutcome::username_too_long};
    case RelayTable::InsertStatus::unknown_reservation: return {TurnOutcome::unknown_reservation};
    case RelayTable::InsertStatus::reservations_full: return {TurnOutcome::reservations_full};
    // The token was drawn until no reservation had it.
    case RelayTable::InsertStatus::token_in_use: return {TurnOutcome::reservations_full};
    // authenticate() gives 16- or 32-byte keys and the families are built above.
    case RelayTable::InsertStatus::bad_integrity_key:
    case RelayTable::InsertStatus::bad_families: return {TurnOutcome::table_full};
    }
    Access::add_user(shard, Access::user_hash(shard, auth.username), inserted.slot);
    slot = inserted.slot;
    return {TurnOutcome::allocated, lifetime, new_token};
}

// RFC 8656 §8.2. `slot` becomes no_slot when the allocation is deleted.
Decision refresh(const RelayContext& context, RelayShard& shard, const stun::Message& request,
                 std::uint64_t now, std::uint32_t& slot) noexcept {
    Allocation& allocation = shard.table().at(slot);
    std::uint32_t requested_lifetime = 0;
    const Presence lifetime_presence =
        decode_optional(request, stun::attr::lifetime, requested_lifetime, stun::decode_u32);
    stun::AddressFamily family = stun::AddressFamily::ipv4;
    const Presence family_presence = decode_optional(
        request, stun::attr::requested_address_family, family, stun::decode_address_family);
    if (lifetime_presence == Presence::malformed || family_presence == Presence::malformed)
        return {TurnOutcome::bad_refresh_attribute};
    // A REQUESTED-ADDRESS-FAMILY the allocation has no relayed address of is a 443 (Peer
    // Address Family Mismatch); with a dual allocation, the Refresh applies to that family's
    // relayed address alone.
    std::uint8_t families = allocation.families();
    if (family_presence == Presence::present) {
        families = relay_family(family);
        if ((allocation.families() & families) == 0) return {TurnOutcome::refresh_family_mismatch};
    }
    // A requested lifetime of zero deletes the allocation (or the family named) at once; the
    // success then carries LIFETIME 0.
    if (lifetime_presence == Presence::present && requested_lifetime == 0) {
        allocation.drop_families(families);
        if (allocation.families() == 0) {
            Access::erase_slot(shard, slot);
            slot = RelayTable::no_slot;
        }
        return {TurnOutcome::deleted, 0};
    }
    const std::uint32_t lifetime = negotiate_lifetime(
        context.limits(), lifetime_presence == Presence::present
                              ? std::optional<std::uint32_t>(requested_lifetime)
                              : std::nullopt);
    allocation.refresh(families, now + ticks(context, lifetime));
    return {TurnOutcome::refreshed, lifetime};
}

// A peer address the allocation can relay to and the policy allows (RFC 8656 §10.2, §12.2).
TurnOutcome check_peer(const RelayContext& context, const Allocation& allocation,
                       const stun::Address& peer) noexcept {
    // §10.2, §12.2: a peer of a family the allocation has no relayed address of is a 443
    // (Peer Address Family Mismatch).
    if ((allocation.families() & relay_family(peer.family)) == 0)
        return TurnOutcome::peer_family_mismatch;
    // §10.2: the server may restrict the peer addresses it relays to, and refuses the others
    // with a 403 (Forbidden); engine/peer_policy.h gives the rules.
    if (!relays_to(context.policy().check(peer))) return TurnOutcome::peer_forbidden;
    return TurnOutcome::permission_installed;
}

bool same_ip(const stun::Address& a, const stun::Address& b) noexcept {
    return a.family == b.family && a.ip == b.ip;
}

// RFC 8656 §10.2: a CreatePermission may carry several XOR-PEER-ADDRESS attributes, and is
// all-or-nothing: if any fails, none of the permissions is installed. So every peer is
// checked, and the room for the new ones, before any is installed.
Decision create_permission(const RelayContext& context, RelayShard& shard,
                           const stun::Message& request, std::uint64_t now,
                           std::uint32_t slot) noexcept {
    Allocation& allocation = shard.table().at(slot);
    std::array<stun::Address, max_request_peers> peers;
    std::size_t count = 0;
    for (const stun::Attribute attribute : request) {
        if (attribute.type != stun::attr::xor_peer_address || !request.visible(attribute))
            continue;
        if (count == peers.size()) return {TurnOutcome::too_many_peers};
        // §10.2: at least one XOR-PEER-ADDRESS, else 400; a malformed one is a 400 too.
        if (stun::decode_xor_address(attribute, request.transaction_id(), peers[count]) !=
            stun::ParseError::ok)
            return {TurnOutcome::missing_peer_address};
        ++count;
    }
    if (count == 0) return {TurnOutcome::missing_peer_address};
    for (std::size_t i = 0; i < count; ++i) {
        const TurnOutcome verdict = check_peer(context, allocation, peers[i]);
        if (verdict != TurnOutcome::permission_installed) return {verdict};
    }
    // Room: the live permissions plus the request's new IPs (§9: "only addresses are
    // compared"), each counted once, within the table's max_permissions; else 508, the
    // RFC's answer to a capacity limit. And a peer entry from the worker's pool for each new
    // IP that has none (a channel's entry holds its IP's permission): else 508 as well.
    shard.table().expire_peers(slot, now);
    std::size_t needed = 0;
    std::size_t new_entries = 0;  // new IPs without an entry (a channel's) to hold them
    for (std::size_t i = 0; i < count; ++i) {
        if (allocation.permits(peers[i], now)) continue;
        bool repeated = false;
        for (std::size_t j = 0; j < i && !repeated; ++j) repeated = same_ip(peers[i], peers[j]);
        if (repeated) continue;
        ++needed;
        if (!allocation.has_peer_ip(peers[i])) ++new_entries;
    }
    if (allocation.permission_count() + needed > Access::table_limits(shard).max_permissions)
        return {TurnOutcome::permission_quota};
    if (new_entries > shard.table().free_peer_entries()) return {TurnOutcome::peer_entries_full};
    // §9: a permission lasts 300 s and is refreshed by a new CreatePermission or ChannelBind.
    const std::uint64_t expiry = now + ticks(context, context.limits().permission_lifetime_s);
    for (std::size_t i = 0; i < count; ++i)
        static_cast<void>(shard.table().install_permission(slot, peers[i], expiry, now));
    return {TurnOutcome::permission_installed};
}

// RFC 8656 §12.2.
Decision channel_bind(const RelayContext& context, RelayShard& shard,
                      const stun::Message& request, std::uint64_t now,
                      std::uint32_t slot) noexcept {
    Allocation& allocation = shard.table().at(slot);
    // "The request contains both a CHANNEL-NUMBER and an XOR-PEER-ADDRESS attribute; the
    // channel number is in the range 0x4000 through 0x4FFF (inclusive)" (else 400); RFC
    // 5766's range, to 0x7FFF, is accepted too (stun::channel_accepted_max).
    std::uint16_t number = 0;
    if (decode_optional(request, stun::attr::channel_number, number,
                        stun::decode_channel_number) != Presence::present ||
        number < stun::channel_min || number > stun::channel_accepted_max)
        return {TurnOutcome::bad_channel_number};
    stun::Address peer;
    const std::optional<stun::Attribute> peer_attribute =
        request.find(stun::attr::xor_peer_address);
    if (!peer_attribute || stun::decode_xor_address(*peer_attribute, request.transaction_id(),
                                                    peer) != stun::ParseError::ok)
        return {TurnOutcome::missing_peer_address};
    // §12.2: 443 for a peer of a family the allocation has not, 403 for a forbidden one.
    const TurnOutcome verdict = check_peer(context, allocation, peer);
    if (verdict != TurnOutcome::permission_installed) return {verdict};
    // §12.2: the binding installs or refreshes the peer's permission as well: room for it
    // is checked first, so that a binding is never made without its permission.
    shard.table().expire_peers(slot, now);
    if (!allocation.permits(peer, now) &&
        allocation.permission_count() >= Access::table_limits(shard).max_permissions)
        return {TurnOutcome::permission_quota};
    switch (shard.table().bind_channel(slot, number, peer,
                                       now + ticks(context, context.limits().channel_lifetime_s),
                                       now)) {
    case ChannelResult::bound:
    case ChannelResult::refreshed: break;
    // "The channel number is not currently bound to a different transport address (same
    // transport address is OK); the transport address is not currently bound to a different
    // channel number" (else 400).
    case ChannelResult::bad_number: return {TurnOutcome::bad_channel_number};
    case ChannelResult::number_in_use: return {TurnOutcome::channel_number_in_use};
    case ChannelResult::peer_in_use: return {TurnOutcome::channel_peer_in_use};
    // A request the server cannot fulfil for lack of capacity is a 508.
    case ChannelResult::full: return {TurnOutcome::channel_quota};
    case ChannelResult::no_entry: return {TurnOutcome::peer_entries_full};
    }
    // The binding's entry holds the IP now: the permission takes no entry of its own.
    static_cast<void>(shard.table().install_permission(
        slot, peer, now + ticks(context, context.limits().permission_lifetime_s), now));
    return {TurnOutcome::channel_bound};
}

// RFC 8656 §11.2: a Send indication is not authenticated (§3.4: indications "cannot be
// authenticated"); every failure discards it silently.
TurnAnswer send(RelayShard& shard, const stun::Message& request,
                std::span<const std::byte> raw_request, const FiveTuple& five_tuple,
                std::uint64_t now) noexcept {
    // RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute is
    // discarded.
    std::array<std::uint16_t, 1> unknown{};
    if (request.unknown_comprehension_required(unknown, &relay_role_knows) != 0)
        return drop(TurnOutcome::send_unknown_attribute);
    // XOR-PEER-ADDRESS and DATA are required: without either (or with a malformed one) the
    // indication is discarded.
    TurnAnswer answer;
    const std::optional<stun::Attribute> peer = request.find(stun::attr::xor_peer_address);
    if (!peer || stun::decode_xor_address(*peer, request.transaction_id(), answer.peer) !=
                     stun::ParseError::ok)
        return drop(TurnOutcome::send_missing_peer_address);
    const std::optional<stun::Attribute> data = request.find(stun::attr::data);
    if (!data) return drop(TurnOutcome::send_missing_data);
    // Without a permission for the peer's IP the indication is discarded (and without an
    // allocation there is none).
    const std::uint32_t slot = live_allocation(shard, five_tuple, now);
    if (slot == RelayTable::no_slot) return drop(TurnOutcome::send_no_allocation);
    if (!shard.table().at(slot).permits(answer.peer, now))
        return drop(TurnOutcome::send_no_permission);
    answer.action = TurnAction::forward;
    answer.outcome = TurnOutcome::forwarded;
    answer.slot = slot;
    // A view into the caller's own bytes: the attribute's value after its 4-byte header.
    answer.payload =
        raw_request.subspan(data->offset + stun::attribute_header_size, data->value.size());
    return answer;
}

// The method's own checks, first among them the allocation (header comment, step 6). `slot`
// is the 5-tuple's live allocation or no_slot, and is updated: the new allocation's, or
// no_slot once one is deleted.
Decision decide(const RelayContext& context, RelayShard& shard, const stun::Message& request,
                const RequestFacts& facts, const AuthResult& auth, const FiveTuple& five_tuple,
                std::uint64_t now, bool same_user, std::uint32_t& slot) noexcept {
    if (facts.method == stun::Method::allocate) {
        // §7.2: "the server checks if the 5-tuple is currently in use by an existing
        // allocation. If yes, the server rejects the request with a 437".
        if (slot != RelayTable::no_slot) return {TurnOutcome::allocation_exists};
        // Draining (punchctl drain): no new allocation here. RFC 8489 §10 lets a server
        // redirect a request it has authenticated (this one: step 2) with 300 and
        // ALTERNATE-SERVER, which write_answer() adds; a client of another family than the
        // alternate's could not reach it, so it gets 508 (Insufficient Capacity, RFC 8656
        // §19: a capacity limit reached), as does everyone without an alternate. A Refresh,
        // CreatePermission or ChannelBind is not affected.
        if (const RelayDrain& drain = context.drain(); drain.draining) {
            const bool redirect = drain.alternate_server &&
                                  drain.alternate_server->family == five_tuple.client().family;
            return {redirect ? TurnOutcome::draining_redirected : TurnOutcome::draining_refused};
        }
        return allocate(context, shard, request, facts, auth, five_tuple, now, slot);
    }
    // §8.2, §10.2, §12.2: the request needs an allocation on its 5-tuple: 437.
    if (slot == RelayTable::no_slot) return {TurnOutcome::no_allocation};
    // §5: a request whose username is not the one that created the allocation is a 441
    // (Wrong Credentials).
    if (!same_user) return {TurnOutcome::wrong_credentials};
    switch (facts.method) {
    case stun::Method::refresh: return refresh(context, shard, request, now, slot);
    case stun::Method::create_permission:
        return create_permission(context, shard, request, now, slot);
    default: return channel_bind(context, shard, request, now, slot);
    }
}

bool is_turn_request(std::uint16_t method) noexcept {
    switch (static_cast<stun::Method>(method)) {
    case stun::Method::allocate:
    case stun::Method::refresh:
    case stun::Method::create_permission:
    case stun::Method::channel_bind: return true;
    default: return false;
    }
}

}  // namespace

RelayLimits RelayLimits::from(const RelayConfig& config,
                              std::uint64_t ticks_per_second) noexcept {
    RelayLimits limits;
    limits.max_lifetime_s = config.allocation_lifetime_max_s;
    limits.max_allocations_per_user = config.max_allocations_per_user;
    limits.first_relay_port = config.port_first;
    limits.last_relay_port = config.port_last;
    if (config.bandwidth_bytes_per_s != 0)
        limits.bandwidth = RateLimit::make(config.bandwidth_bytes_per_s,
                                           config.bandwidth_burst_bytes, ticks_per_second);
    limits.ticks_per_second = ticks_per_second;
    return limits;
}

RelayContext::RelayContext(Credentials credentials, PeerPolicy policy,
                           std::vector<RelayAddress> addresses, const RelayLimits& limits,
                           RelayDrain drain)
    : credentials_(std::move(credentials)),
      policy_(std::move(policy)),
      addresses_(std::move(addresses)),
      limits_(limits),
      drain_(std::move(drain)) {
    if (addresses_.empty() || addresses_.size() > 256)
        throw std::invalid_argument("relay: 1 to 256 relay addresses");
    for (const RelayAddress& address : addresses_)
        if (address.families != addresses_.front().families || address.families == 0 ||
            (address.families & ~(relay_ipv4 | relay_ipv6)) != 0)
            throw std::invalid_argument("relay: every relay address needs the same families");
    if (limits_.default_lifetime_s == 0 || limits_.default_lifetime_s > limits_.max_lifetime_s ||
        limits_.ticks_per_second == 0)
        throw std::invalid_argument("relay: lifetimes and the clock rate must be positive, "
                                    "the default no longer than the maximum");
}

stun::Address RelayContext::relayed_address(std::uint8_t index, std::uint16_t port,
                                            std::uint8_t family) const noexcept {
    stun::Address out = family == relay_ipv6 ? address(index).ipv6 : address(index).ipv4;
    out.port = port;
    return out;
}

bool RelayContext::is_relayed_ip(const stun::Address& peer) const noexcept {
    const bool ipv6 = peer.family == stun::AddressFamily::ipv6;
    if ((families() & (ipv6 ? relay_ipv6 : relay_ipv4)) == 0) return false;
    for (const RelayAddress& address : addresses_) {
        const stun::Address& relayed = ipv6 ? address.ipv6 : address.ipv4;
        if (std::memcmp(relayed.ip.data(), peer.ip.data(), peer.ip_size()) == 0) return true;
    }
    return false;
}

RelayShard::RelayShard(const RelayTableLimits& table_limits, const RateLimit& unauthenticated,
                       std::size_t rate_buckets, std::uint64_t seed)
    : table_(table_limits),
      limiter_(unauthenticated, rate_buckets, seed),
      table_limits_(table_limits),
      seed_(seed | 1),
      users_mask_(std::bit_ceil(std::size_t{table_limits.capacity} * 2) - 1) {
    users_ = std::make_unique<UserCount[]>(users_mask_ + 1);
    slot_user_ = std::make_unique<std::uint64_t[]>(table_limits.capacity);
    // The token key: SHA-256 of the seed and a label, so that it is not the seed that the
    // hashes above use. As strong as the seed (64 random bits in production).
    constexpr std::string_view label = "punchline reservation token";
    stun::sha256({{reinterpret_cast<const std::byte*>(&seed), sizeof seed},
                  std::as_bytes(std::span(label))},
                 reservation_key_);
}

std::uint64_t RelayShard::next_reservation_token() noexcept {
    std::array<std::byte, 8> counter{};
    stun::store_be64(counter.data(), ++reservations_made_);
    std::array<std::byte, 32> digest{};
    stun::hmac_sha256(reservation_key_, {counter}, digest);
    const std::uint64_t token = stun::load_be64(digest.data());
    return token == 0 ? 1 : token;
}

std::uint64_t RelayShard::user_hash(std::string_view username) const noexcept {
    // A seeded multiply-xorshift over 8-byte words: not a cryptographic hash, but nobody
    // who does not know the seed can aim two usernames at one count. Zero marks an empty
    // entry, so it is never a hash.
    constexpr std::uint64_t multiplier = 0x9E3779B97F4A7C15;
    std::uint64_t hash = seed_ ^ (username.size() * multiplier);
    for (std::size_t at = 0; at < username.size(); at += 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, username.data() + at, std::min<std::size_t>(8, username.size() - at));
        hash = (hash ^ word) * multiplier;
        hash ^= hash >> 29;
    }
    hash *= multiplier;
    hash ^= hash >> 32;
    return hash == 0 ? 1 : hash;
}

std::size_t RelayShard::find_user(std::uint64_t hash) const noexcept {
    std::size_t at = hash & users_mask_;
    while (users_[at].hash != 0 && users_[at].hash != hash) at = (at + 1) & users_mask_;
    return at;
}

stun::TransactionId RelayShard::next_indication_id() noexcept {
    // splitmix64 (Steele, Lea and Flood) of the seed and a counter: 96 bits from two outputs.
    auto mix = [](std::uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    const std::uint64_t a = mix(seed_ + 0x9E3779B97F4A7C15ull * ++indications_);
    const std::uint64_t b = mix(a ^ seed_);
    stun::TransactionId id;
    std::memcpy(id.data(), &a, 8);
    std::memcpy(id.data() + 8, &b, 4);
    return id;
}

std::uint32_t RelayShard::allocations_of(std::string_view username) const noexcept {
    return users_[find_user(user_hash(username))].count;
}

void RelayShard::add_user(std::uint64_t hash, std::uint32_t slot) noexcept {
    // At most capacity users live in a table of twice as many entries: never full.
    UserCount& entry = users_[find_user(hash)];
    entry.hash = hash;
    ++entry.count;
    slot_user_[slot] = hash;
}

void RelayShard::erase_slot(std::uint32_t slot) noexcept {
    table_.erase(slot);
    const std::uint64_t hash = std::exchange(slot_user_[slot], 0);
    if (hash == 0) return;
    std::size_t hole = find_user(hash);
    if (users_[hole].hash != hash || --users_[hole].count != 0) return;
    // Backward shift, as RelayTable's index: no tombstones.
    for (std::size_t j = (hole + 1) & users_mask_; users_[j].hash != 0;
         j = (j + 1) & users_mask_) {
        const std::size_t home = users_[j].hash & users_mask_;
        if (((j - home) & users_mask_) >= ((j - hole) & users_mask_)) {
            users_[hole] = users_[j];
            hole = j;
        }
    }
    users_[hole] = {};
}

namespace {

TurnAnswer answer_turn(const RelayContext& context, RelayShard& shard,
                       const stun::Message& request, std::span<const std::byte> raw_request,
                       const FiveTuple& five_tuple, std::uint64_t now_ticks, std::uint64_t now_s,
                       std::span<std::byte> out) noexcept {
    const stun::MessageClass message_class = request.message_class();
    if (message_class == stun::MessageClass::indication &&
        request.method() == static_cast<std::uint16_t>(stun::Method::send))
        return send(shard, request, raw_request, five_tuple, now_ticks);
    // RFC 8489 §6.3: responses and other indications are not the server's to answer, and
    // Binding goes to the STUN role.
    if (message_class != stun::MessageClass::request || !is_turn_request(request.method()))
        return drop(TurnOutcome::not_turn);

    // RFC 8656 §7.2 (and §5 for every other request): "The server MUST require that the
    // request be authenticated ... using the long-term credential mechanism".
    const stun::Address client = five_tuple.client();
    const AuthResult auth = authenticate(context.credentials(), request, client, now_s);
    if (!auth.ok()) {
        // Each unauthenticated answer costs a nonce and possibly an HMAC: a token first.
        if (!Access::limiter(shard).allow(client, now_ticks))
            return drop(TurnOutcome::rate_limited);
        TurnAnswer answer = respond(
            TurnOutcome::auth_failed, error_code(auth.verdict),
            write_auth_error(auth, context.credentials(), request, client, now_s, out));
        answer.auth = auth.verdict;
        return answer;
    }

    RequestFacts facts;
    std::copy(request.transaction_id().begin(), request.transaction_id().end(),
              facts.transaction_id.begin());
    facts.method = static_cast<stun::Method>(request.method());
    facts.fingerprint = request.fingerprint().has_value();
    facts.additional_family = request.find(stun::attr::additional_address_family).has_value();
    facts.unknown_count = request.unknown_comprehension_required(facts.unknown, &relay_role_knows);

    std::uint32_t slot = live_allocation(shard, five_tuple, now_ticks);
    bool same_user = false;
    if (slot != RelayTable::no_slot) {
        Allocation& allocation = shard.table().at(slot);
        same_user = shard.table().username_equals(slot, auth.username);
        // RFC 8656 §5: a retransmission gets the answer the first transmission got (§7.2's
        // 437 would otherwise answer a retransmitted Allocate).
        if (const std::optional<CachedAnswer> cached =
                same_user ? allocation.answer_for(facts.transaction_id, facts.method)
                          : std::nullopt)
            return respond(TurnOutcome::retransmission, cached->error_code,
                           write_answer(context, facts, auth, five_tuple, &allocation,
                                        cached->error_code, cached->lifetime,
                                        cached->reservation_token, out));
    }
    // RFC 8489 §6.3.1.1: unknown comprehension-required attributes before the method's own
    // checks.
    const Decision decision =
        facts.unknown_count != 0
            ? Decision{TurnOutcome::unknown_attribute}
            : decide(context, shard, request, facts, auth, five_tuple, now_ticks, same_user,
                     slot);
    // The answer is remembered on the allocation it concerns, when that allocation's user
    // asked (another user's request must not displace it), except an Allocate refused 437, to
    // whose allocation it is only an obstacle. A deleted allocation left slot no_slot.
    const bool remember = slot != RelayTable::no_slot &&
                          decision.outcome != TurnOutcome::allocation_exists &&
                          (same_user || decision.outcome == TurnOutcome::allocated);
    const std::uint16_t code = code_of(decision.outcome);
    Allocation* allocation = remember ? &shard.table().at(slot) : nullptr;
    // Remembered whether it succeeded or not (header comment, step 4).
    if (allocation != nullptr)
        allocation->remember_answer({facts.transaction_id, facts.method, code, decision.lifetime,
                                     decision.reservation_token});
    return respond(decision.outcome, code,
                   write_answer(context, facts, auth, five_tuple, allocation, code,
                                decision.lifetime, decision.reservation_token, out));
}

}  // namespace

TurnAnswer handle_turn(const RelayContext& context, RelayShard& shard,
                       const stun::Message& request, std::span<const std::byte> raw_request,
                       const FiveTuple& five_tuple, std::uint64_t now_ticks, std::uint64_t now_s,
                       std::span<std::byte> out) noexcept {
    const TurnAnswer answer =
        answer_turn(context, shard, request, raw_request, five_tuple, now_ticks, now_s, out);
    RelayCounters& counters = shard.counters();
    ++counters.outcomes[static_cast<std::size_t>(answer.outcome)];
    if (answer.outcome == TurnOutcome::auth_failed)
        ++counters.auth_failures[static_cast<std::size_t>(answer.auth)];
    return answer;
}

std::size_t sweep(RelayShard& shard, std::uint64_t now_ticks, std::size_t max_slots) noexcept {
    const std::uint32_t capacity = static_cast<std::uint32_t>(shard.table().capacity());
    std::uint32_t& cursor = Access::sweep_cursor(shard);
    std::size_t erased = 0;
    for (std::size_t visited = 0; visited < max_slots && visited < capacity; ++visited) {
        if (cursor >= capacity) cursor = 0;
        const std::uint32_t slot = cursor++;
        // A free slot has no families (RelayTable::erase() clears its shape).
        if (shard.table().at(slot).families() == 0) continue;
        if (expire_slot(shard, slot, now_ticks))
            ++erased;
        else
            shard.table().expire_peers(slot, now_ticks);
    }
    // RFC 8656 §7.2: a reservation is held "for about 30 seconds"; then its port is free.
    shard.table().expire_reservations(now_ticks, max_slots);
    return erased;
}

bool kill_allocation(RelayShard& shard, std::uint32_t slot, const FiveTuple& key) noexcept {
    RelayTable& table = shard.table();
    // A free slot has no families (RelayTable::erase() clears its shape).
    if (slot >= table.slots_used() || table.at(slot).families() == 0 ||
        !table.at(slot).has_key(key))
        return false;
    Access::erase_slot(shard, slot);
    ++shard.counters().killed;
    return true;
}

KillProgress kill_user_allocations(RelayShard& shard, std::uint64_t username_hash,
                                   std::size_t username_length, std::uint32_t& cursor,
                                   std::size_t max_slots) noexcept {
    RelayTable& table = shard.table();
    const std::uint32_t end = table.slots_used();
    KillProgress progress;
    for (std::size_t visited = 0; visited < max_slots && cursor < end; ++visited) {
        const std::uint32_t slot = cursor++;
        const Allocation& allocation = table.at(slot);
        if (allocation.families() == 0 || allocation.username_hash() != username_hash ||
            allocation.username_length() != username_length)
            continue;
        Access::erase_slot(shard, slot);
        ++shard.counters().killed;
        ++progress.killed;
    }
    progress.done = cursor >= end;
    return progress;
}

}  // namespace engine
