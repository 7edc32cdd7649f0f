// The SFU role (engine/sfu_role.h): admission by session token, forwarding among a session's
// legs, expiry of silent legs.
#include "engine/sfu_role.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>

#include "engine/checksum.h"
#include "engine/handler.h"
#include "stun/bytes.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace engine {
namespace {

using stun::load_be16;
using stun::store_be16;

stun::Address address_from(const std::byte* ip, bool ipv6, std::uint16_t port) noexcept {
    stun::Address a;
    a.family = ipv6 ? stun::AddressFamily::ipv6 : stun::AddressFamily::ipv4;
    a.port = port;
    std::memcpy(a.ip.data(), ip, ipv6 ? 16 : 4);
    return a;
}

void count(SfuShard& shard, SfuOutcome outcome) noexcept {
    ++shard.counters().outcomes[static_cast<std::size_t>(outcome)];
}

// The reason phrases of docs/sfu.md's table.
constexpr std::string_view reason_missing = "missing USERNAME or MESSAGE-INTEGRITY";
constexpr std::string_view reason_malformed = "malformed SFU token";
constexpr std::string_view reason_expired = "SFU token expired";
constexpr std::string_view reason_forged = "integrity check failed";
constexpr std::string_view reason_replayed = "participant already joined from another address";
constexpr std::string_view reason_address_in_use = "address already a leg of another participant";
constexpr std::string_view reason_full = "SFU session full";
constexpr std::string_view reason_capacity = "SFU node out of capacity";
constexpr std::string_view reason_draining = "SFU node draining";

// The integrity a request was verified with, for its answer (RFC 8489 §9.2.4).
enum class Integrity : std::uint8_t { none, sha1, sha256 };

std::size_t integrity_size(Integrity integrity) noexcept {
    switch (integrity) {
    case Integrity::none: return 0;
    case Integrity::sha1: return 4 + 20;
    case Integrity::sha256: return 4 + 32;
    }
    return 0;
}

}  // namespace

// --- SfuLimits, SfuContext ---

SfuLimits SfuLimits::from(const SfuConfig& config, std::uint64_t ticks_per_second) noexcept {
    return {config.port, config.max_legs_per_session, config.leg_timeout_s, ticks_per_second};
}

SfuContext::SfuContext(const std::vector<std::string>& secrets, const SfuLimits& limits,
                       bool draining)
    : limits_(limits), draining_(draining) {
    if (secrets.empty())
        throw std::invalid_argument("SfuContext: no secret (sfu.token_secrets is empty)");
    for (const std::string& secret : secrets) {
        const auto* p = reinterpret_cast<const std::byte*>(secret.data());
        secrets_.emplace_back(p, p + secret.size());
    }
}

// --- SfuShard ---

SfuShard::SfuShard(std::uint32_t max_legs, std::uint32_t max_legs_per_session,
                   const RateLimit& unauthenticated, std::size_t rate_buckets,
                   std::uint16_t worker, std::uint64_t seed)
    : table_(max_legs, seed),
      limiter_(unauthenticated, rate_buckets, seed ^ 0x5346550000000000ull),
      worker_(worker),
      chosen_capacity_(std::max<std::uint32_t>(max_legs_per_session, 1)) {
    fan_out_.destinations = std::make_unique<SfuDestination[]>(chosen_capacity_);
    chosen_ = std::make_unique<const SfuPlanDestination*[]>(chosen_capacity_);
    unplanned_ = std::make_unique<SfuPlanDestination[]>(chosen_capacity_);
    outbox_ = std::make_unique<SfuMessage[]>(outbox_capacity);
}

bool SfuShard::post(const SfuMessage& message) noexcept {
    if (outbox_count_ == outbox_capacity) return false;
    outbox_[(outbox_head_ + outbox_count_) % outbox_capacity] = message;
    ++outbox_count_;
    return true;
}

bool SfuShard::pop(SfuMessage& out) noexcept {
    if (outbox_count_ == 0) return false;
    out = outbox_[outbox_head_];
    outbox_head_ = (outbox_head_ + 1) % outbox_capacity;
    --outbox_count_;
    return true;
}

const SfuMessage* SfuShard::peek() const noexcept {
    return outbox_count_ == 0 ? nullptr : &outbox_[outbox_head_];
}

// --- Admission ---

Verdict sfu_answer_stun(Frame& f, std::size_t ip, std::size_t udp, bool ipv6,
                        const PortContext& port, SfuState& sfu) noexcept {
    SfuShard& shard = sfu.shard;
    const std::size_t payload = udp + udp_header_size;
    const std::size_t request_length = load_be16(f.data + udp + 4) - udp_header_size;
    const std::span<const std::byte> request(f.data + payload, request_length);
    // Cheap before dear (style rule 11): RFC 8489 §6.3's header checks before a parse.
    if (request_length < stun::header_size ||
        (std::to_integer<unsigned>(request[0]) & 0xC0) != 0 ||
        stun::load_be32(request.data() + 4) != stun::magic_cookie)
        return Verdict::drop(DropReason::stun_garbage);
    const std::uint16_t type = load_be16(request.data());
    const stun::MessageClass message_class = stun::class_of(type);
    // docs/sfu.md, "A node behind a NAT": the answers to the node's own Binding requests
    // towards participants come back to the SFU port; the control thread sent them.
    if (message_class == stun::MessageClass::success_response ||
        message_class == stun::MessageClass::error_response) {
        ++shard.counters().probe_answers;
        return Verdict::to_control();
    }
    if (message_class != stun::MessageClass::request)
        return Verdict::drop(DropReason::stun_not_request);
    // RFC 8489 §6.3: a method the agent does not support is silently discarded.
    if (stun::method_of(type) != static_cast<std::uint16_t>(stun::Method::binding))
        return Verdict::drop(DropReason::stun_unsupported_method);
    stun::Message m;
    if (stun::Message::parse(request, m) != stun::ParseError::ok)
        return Verdict::drop(DropReason::stun_garbage);
    const bool fingerprint = m.fingerprint().has_value();
    // RFC 8489 §7.3: a FINGERPRINT that does not verify is discarded.
    if (fingerprint && stun::verify_fingerprint(m) != stun::IntegrityResult::ok)
        return Verdict::drop(DropReason::stun_bad_fingerprint);

    // Everything the answer needs, read before its first byte overwrites the request.
    stun::TransactionId txid;
    std::memcpy(txid.data(), request.data() + 8, txid.size());
    const std::size_t ip_size = ipv6 ? 16 : 4;
    const stun::Address client =
        address_from(f.data + ip + (ipv6 ? 8 : 12), ipv6, load_be16(f.data + udp));
    const stun::Address origin =
        address_from(f.data + ip + (ipv6 ? 8 : 12) + ip_size, ipv6, sfu.context.limits().port);
    const FiveTuple key = *FiveTuple::make(client, origin);  // one IP header: one family
    MacAddress client_mac;
    std::memcpy(client_mac.data(), f.data + 6, client_mac.size());

    const std::span<std::byte> out(f.data + payload, f.capacity - payload);
    // An answer, in place, no longer than the request: the reason phrase cut to fit.
    auto send = [&](std::uint16_t code, std::string_view reason, Integrity integrity,
                    std::span<const std::byte> password) -> Verdict {
        std::size_t fixed = stun::header_size + integrity_size(integrity) + (fingerprint ? 8 : 0);
        if (code == 0) {
            fixed += 4 + (ipv6 ? 20 : 8);  // XOR-MAPPED-ADDRESS
            if (!fingerprint) fixed += 8;  // the ACK always carries FINGERPRINT
        } else {
            fixed += 4 + 4;  // ERROR-CODE without its reason
        }
        if (fixed > request_length) return Verdict::drop(DropReason::sfu_unanswerable);
        const std::size_t room = (request_length - fixed) / 4 * 4;
        stun::MessageWriter w(out, stun::Method::binding,
                              code == 0 ? stun::MessageClass::success_response
                                        : stun::MessageClass::error_response,
                              txid);
        if (code == 0)
            w.add_xor_address(stun::attr::xor_mapped_address, client);
        else
            w.add_error_code(code, reason.substr(0, std::min(reason.size(), room)));
        if (integrity == Integrity::sha1) w.add_message_integrity(password);
        if (integrity == Integrity::sha256) w.add_message_integrity_sha256(password, 32);
        if (fingerprint || code == 0) w.add_fingerprint();
        if (!w.ok()) return Verdict::drop(DropReason::sfu_unanswerable);
        finish_udp_reply(f, ip, udp, ipv6, client, origin, w.size(), port);
        return Verdict::transmit();
    };
    // Unauthenticated answers cost a token of the source's bucket first.
    auto refuse = [&](SfuOutcome outcome, std::string_view reason) -> Verdict {
        count(shard, outcome);
        if (!shard.limiter().allow(client, sfu.now_ticks))
            return Verdict::drop(DropReason::sfu_rate_limited);
        return send(sfu_outcome_codes[static_cast<std::size_t>(outcome)], reason,
                    Integrity::none, {});
    };

    // 1. USERNAME and an integrity attribute.
    const std::optional<stun::Attribute> username_attribute = m.find(stun::attr::username);
    const Integrity integrity = m.message_integrity_sha256() ? Integrity::sha256
                                : m.message_integrity()      ? Integrity::sha1
                                                             : Integrity::none;
    if (!username_attribute || integrity == Integrity::none)
        return refuse(SfuOutcome::sfu_bad_request, reason_missing);
    // 2. The token: stun::sfu_username_max bounds a valid one, so that a copy fits.
    const std::span<const std::byte> raw_username = username_attribute->value;
    if (raw_username.size() > stun::sfu_username_max)
        return refuse(SfuOutcome::sfu_token_malformed, reason_malformed);
    std::array<char, stun::sfu_username_max> username_bytes;
    std::memcpy(username_bytes.data(), raw_username.data(), raw_username.size());
    const std::string_view username(username_bytes.data(), raw_username.size());
    stun::SfuUsername token;
    switch (stun::check_sfu_username(username, sfu.now_s, token)) {
    case stun::SfuTokenError::ok: break;
    case stun::SfuTokenError::expired:
        return refuse(SfuOutcome::sfu_token_expired, reason_expired);
    default:
        return refuse(SfuOutcome::sfu_token_malformed, reason_malformed);
    }
    // 3. MESSAGE-INTEGRITY with the password of some secret (RFC 8489 §9.1.3: the short-term
    // key is the password itself).
    std::array<char, stun::sfu_password_size> password_chars;
    bool verified = false;
    for (const std::vector<std::byte>& secret : sfu.context.secrets()) {
        stun::make_sfu_password(secret, username, password_chars);
        const std::span<const std::byte> password(
            reinterpret_cast<const std::byte*>(password_chars.data()), password_chars.size());
        const stun::IntegrityResult result =
            integrity == Integrity::sha256 ? stun::verify_message_integrity_sha256(m, password)
                                           : stun::verify_message_integrity(m, password);
        if (result == stun::IntegrityResult::ok) {
            verified = true;
            break;
        }
    }
    if (!verified) return refuse(SfuOutcome::sfu_token_forged, reason_forged);
    const std::span<const std::byte> password(
        reinterpret_cast<const std::byte*>(password_chars.data()), password_chars.size());
    const SfuParticipant participant = SfuParticipant::from(token.participant);
    auto answer = [&](SfuOutcome outcome) {
        count(shard, outcome);
        return send(sfu_outcome_codes[static_cast<std::size_t>(outcome)],
                    outcome == SfuOutcome::sfu_token_replayed     ? reason_replayed
                    : outcome == SfuOutcome::sfu_address_in_use ? reason_address_in_use
                    : outcome == SfuOutcome::sfu_session_full   ? reason_full
                    : outcome == SfuOutcome::sfu_capacity       ? reason_capacity
                    : outcome == SfuOutcome::sfu_draining       ? reason_draining
                                                                : std::string_view{},
                    integrity, password);
    };

    SfuTable& table = shard.table();
    // 4. A leg on this 5-tuple: its own token again is consent or a retransmission.
    if (const std::uint32_t slot = table.find(key); slot != SfuTable::no_slot) {
        SfuLeg& leg = table.at(slot);
        if (leg.session() != token.session || !(leg.participant() == participant))
            return answer(SfuOutcome::sfu_address_in_use);
        leg.heard(sfu.now_ticks, request_length);
        return answer(SfuOutcome::sfu_keepalive);
    }
    // 5. Draining (punchctl drain): no new leg here. 508 (Insufficient Capacity, RFC 8656
    // §19), as the relay's drain without an alternate server: the node's state, not the
    // request's fault, on which a client moves to its next candidate at once (docs/sfu.md,
    // "The client's part"); signed, as the token verified, so that it knows the answer is the
    // node's. Only now, after step 4: a leg's keepalives and media carry on.
    if (sfu.context.draining()) return answer(SfuOutcome::sfu_draining);
    // 6. A replayed token: the participant is live elsewhere.
    const SfuSession* session =
        sfu.membership != nullptr ? sfu.membership->find(token.session) : nullptr;
    if (table.find_participant(token.session, participant.view()) != SfuTable::no_slot)
        return answer(SfuOutcome::sfu_token_replayed);
    std::uint32_t elsewhere = 0;  // the session's legs on other workers
    if (session != nullptr) {
        for (const SfuMember& member : session->members) {
            if (member.participant == participant) return answer(SfuOutcome::sfu_token_replayed);
            if (member.worker != shard.worker()) ++elsewhere;
        }
    }
    // 7. Room in the session.
    if (table.session_legs(token.session) + elsewhere >=
        sfu.context.limits().max_legs_per_session)
        return answer(SfuOutcome::sfu_session_full);
    // 8. Room on the worker.
    if (table.size() == table.capacity()) return answer(SfuOutcome::sfu_capacity);
    // The control thread must hear of the leg, or no other worker would ever forward to it.
    SfuMessage join;
    join.kind = SfuMessage::Kind::join;
    join.key = key;
    join.session = token.session;
    join.participant = participant;
    join.client_mac = client_mac;
    join.worker = shard.worker();
    join.slot = table.insert(key, token.session, participant, client_mac, sfu.now_ticks);
    if (!shard.post(join)) {
        table.erase(join.slot);
        return Verdict::drop(DropReason::sfu_join_backlog);
    }
    table.at(join.slot).heard(sfu.now_ticks, request_length);
    return answer(SfuOutcome::sfu_admitted);
}

// --- Forwarding ---

namespace {

// What every copy's headers take from the received datagram, read once. No initialisers:
// each path sets every field (GCC zeroed the struct with a `rep stos`, whose start-up was a
// seventh of the 1:1 lane's time, perf).
struct Received {
    bool ipv6;
    std::uint8_t traffic_class;  // IPv4's TOS, IPv6's traffic class: DSCP and ECN kept
    std::uint16_t ipv4_id;       // 0 for IPv6
    std::uint16_t udp_length;
    std::uint16_t udp_checksum;  // 0: none (IPv4's "no checksum"), kept so for IPv4 copies
    std::uint16_t checksum_base;  // the checksum to update from: the received one, or the
                                  // true one when none was sent
    std::uint32_t old_terms;      // the received addresses' and ports' sum (RFC 1071)
    // What every IPv4 copy's sums share, summed once a datagram: the IPv4 header's words but
    // the addresses (and the checksum); ~checksum_base + ~old_terms (RFC 1624 eqn. 3).
    std::uint32_t ipv4_header_terms;
    std::uint32_t udp_terms;
};

// Received's last two, from the fields above them.
void sum_shared_terms(Received& in) noexcept {
    in.ipv4_header_terms = (0x4500u | in.traffic_class) +
                           (ipv4_header_size + std::uint32_t{in.udp_length}) + in.ipv4_id +
                           0x4000u + (64u << 8 | ip_protocol::udp);
    in.udp_terms = static_cast<std::uint16_t>(~in.checksum_base) +
                   static_cast<std::uint16_t>(~in.old_terms);
}

// Ethernet, IP and UDP headers of one copy, to `member` from the SFU address it was admitted
// on, into `out`: its length, or 0 when the copy would exceed the MTU. The UDP checksum is
// updated from the received one over the words that change, addresses and ports (RFC 1624
// eqn. 3: HC' = ~(~HC + ~m + m')); the payload and the length are the same.
std::size_t write_headers_generally(std::byte* out, const SfuPlanDestination& member,
                                   const Received& in, const PortContext& port) noexcept;

// IPv4 to IPv4, a call's usual case, inline for the copies' loop: `member` an IPv4 leg, the
// copy within the MTU (the caller checked both). The headers from the key's words and the
// checksums summed from the values written (RFC 1071: big-endian 16-bit words), never read
// back from the bytes just stored (a load spanning smaller stores waits for them), and from
// what the datagram's copies share, summed once (Received). Returns the headers' length.
[[gnu::always_inline]] inline std::size_t write_ipv4_headers(std::byte* out,
                                                             const SfuPlanDestination& member,
                                                             const Received& in,
                                                             const PortContext& port) noexcept {
    const std::array<std::uint64_t, 5>& words = member.key.words();
    // A FiveTuple word holds an IPv4 address's 4 bytes first, as they lie in a header.
    std::uint32_t to_ip, from_ip;
    std::memcpy(&to_ip, &words[0], 4);
    std::memcpy(&from_ip, &words[2], 4);
    const auto to_port = static_cast<std::uint16_t>(words[4]);
    const auto from_port = static_cast<std::uint16_t>(words[4] >> 16);
    std::memcpy(out, member.client_mac.data(), 6);
    std::memcpy(out + 6, port.mac.data(), 6);
    store_be16(out + 12, ethertype::ipv4);
    std::byte* h = out + ethernet_header_size;
    const auto total = static_cast<std::uint16_t>(ipv4_header_size + in.udp_length);
    h[0] = std::byte{0x45};
    h[1] = std::byte{in.traffic_class};
    store_be16(h + 2, total);
    store_be16(h + 4, in.ipv4_id);
    store_be16(h + 6, 0x4000);  // DF: the engine never fragments
    h[8] = std::byte{64};
    h[9] = std::byte{ip_protocol::udp};
    std::memcpy(h + 12, &from_ip, 4);
    std::memcpy(h + 16, &to_ip, 4);
    const std::uint32_t address_terms = member.address_terms;  // summed at build time
    store_be16(h + 10, checksum_finish(in.ipv4_header_terms + address_terms));
    std::byte* u = h + ipv4_header_size;
    store_be16(u, from_port);
    store_be16(u + 2, to_port);
    store_be16(u + 4, in.udp_length);
    if (in.udp_checksum == 0) {
        store_be16(u + 6, 0);  // the sender sent none (RFC 768): the copy has none either
    } else {
        // RFC 1624 eqn. 3 over the addresses and ports, as below.
        const std::uint16_t checksum =
            checksum_finish(in.udp_terms + address_terms + from_port + to_port);
        store_be16(u + 6, checksum == 0 ? 0xFFFF : checksum);
    }
    return ethernet_header_size + ipv4_header_size + udp_header_size;
}

// Inline, for the copies' loop: write_ipv4_headers() where it applies (IPv4 to IPv4 within the
// MTU), anything else write_headers_generally().
[[gnu::always_inline]] inline std::size_t write_headers(std::byte* out,
                                                        const SfuPlanDestination& member,
                                                        const Received& in,
                                                        const PortContext& port) noexcept {
    if (!in.ipv6 && static_cast<std::uint8_t>(member.key.words()[4] >> 32) ==
                        static_cast<std::uint8_t>(stun::AddressFamily::ipv4)) {
        if (ipv4_header_size + in.udp_length > port.mtu) return 0;
        return write_ipv4_headers(out, member, in, port);
    }
    return write_headers_generally(out, member, in, port);
}

std::size_t write_headers_generally(std::byte* out, const SfuPlanDestination& member,
                                   const Received& in, const PortContext& port) noexcept {
    const stun::Address to = member.key.client();
    const stun::Address from = member.key.server();
    const bool ipv6 = to.family == stun::AddressFamily::ipv6;
    const std::size_t ip_header = ipv6 ? ipv6_header_size : ipv4_header_size;
    if (ip_header + in.udp_length > port.mtu) return 0;
    std::memcpy(out, member.client_mac.data(), 6);
    std::memcpy(out + 6, port.mac.data(), 6);
    store_be16(out + 12, ipv6 ? ethertype::ipv6 : ethertype::ipv4);
    std::byte* h = out + ethernet_header_size;
    const std::size_t ip_size = ipv6 ? 16 : 4;
    if (ipv6) {
        // Version 6, the traffic class, flow label 0 (RFC 6437: a new flow, this node's).
        stun::store_be32(h, 0x60000000u | std::uint32_t{in.traffic_class} << 20);
        store_be16(h + 4, in.udp_length);
        h[6] = std::byte{ip_protocol::udp};
        h[7] = std::byte{64};
        std::memcpy(h + 8, from.ip.data(), 16);
        std::memcpy(h + 24, to.ip.data(), 16);
    } else {
        h[0] = std::byte{0x45};
        h[1] = std::byte{in.traffic_class};
        store_be16(h + 2, static_cast<std::uint16_t>(ipv4_header_size + in.udp_length));
        store_be16(h + 4, in.ipv4_id);
        store_be16(h + 6, 0x4000);  // DF: the engine never fragments
        h[8] = std::byte{64};
        h[9] = std::byte{ip_protocol::udp};
        store_be16(h + 10, 0);
        std::memcpy(h + 12, from.ip.data(), 4);
        std::memcpy(h + 16, to.ip.data(), 4);
        store_be16(h + 10, ipv4_header_checksum({h, ipv4_header_size}));
    }
    std::byte* u = h + ip_header;
    store_be16(u, from.port);
    store_be16(u + 2, to.port);
    store_be16(u + 4, in.udp_length);
    if (!ipv6 && in.udp_checksum == 0) {
        store_be16(u + 6, 0);  // the sender sent none (RFC 768): the copy has none either
    } else {
        std::uint64_t sum = static_cast<std::uint16_t>(~in.checksum_base);
        sum += static_cast<std::uint16_t>(~in.old_terms);
        sum += checksum_add(checksum_add(0, {h + (ipv6 ? 8 : 12), 2 * ip_size}), {u, 4});
        const std::uint16_t checksum = checksum_finish(checksum_fold(sum));
        // RFC 768: a computed zero is sent as all ones (zero means "none").
        store_be16(u + 6, checksum == 0 ? 0xFFFF : checksum);
    }
    return ethernet_header_size + ip_header + udp_header_size;
}

// Whether two keys are equal: five words compared without a branch (FiveTuple's defaulted
// operator== is a libc memcmp call).
bool same_key(const FiveTuple& a, const FiveTuple& b) noexcept {
    const auto& x = a.words();
    const auto& y = b.words();
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

// The session `id` in the membership (sorted by id), or null. The coordinator's session ids
// are random 64-bit numbers (docs/sfu.md), spread evenly over the range, so interpolating
// between the ends lands on or beside the one sought: two or three loads, where
// SfuMembership::find()'s binary search over 2048 sessions made 11 dependent loads and
// mispredicted about half its branches, a quarter of a 1:1 call's forwarding time (perf). Ids
// spread otherwise stay correct, only slower: after three guesses the rest is a binary search.
const SfuSession* find_session(const SfuMembership& membership, std::uint64_t id) noexcept {
    const std::span<const SfuSession> sessions = membership.sessions();
    std::size_t low = 0;
    std::size_t high = sessions.size();  // the session, if any, lies in [low, high)
    for (int guess = 0; guess < 3 && high - low > 4; ++guess) {
        const std::uint64_t first = sessions[low].id;
        const std::uint64_t last = sessions[high - 1].id;
        if (id <= first || id >= last) {
            if (id == first) return &sessions[low];
            if (id == last) return &sessions[high - 1];
            return nullptr;
        }
        // first < id < last: a position strictly inside, never past the range's ends.
        const double fraction = double(id - first) / double(last - first);
        std::size_t at = low + 1 + static_cast<std::size_t>(fraction * double(high - low - 2));
        if (at > high - 2) at = high - 2;
        const std::uint64_t found = sessions[at].id;
        if (found == id) return &sessions[at];
        if (found < id)
            low = at + 1;
        else
            high = at;
    }
    const auto it = std::lower_bound(
        sessions.begin() + static_cast<std::ptrdiff_t>(low),
        sessions.begin() + static_cast<std::ptrdiff_t>(high), id,
        [](const SfuSession& s, std::uint64_t wanted) { return s.id < wanted; });
    return it != sessions.begin() + static_cast<std::ptrdiff_t>(high) && it->id == id ? &*it
                                                                                         : nullptr;
}

// sfu_forward() for the leg `key` in `slot`, found by the caller.
Verdict forward_leg(Frame& f, std::size_t ip, std::size_t udp, bool ipv6, const PortContext& port,
                    CoreCounters& counters, SfuState& sfu, const FiveTuple& key,
                    std::uint32_t slot) noexcept {
    SfuShard& shard = sfu.shard;
    const std::size_t ip_size = ipv6 ? 16 : 4;
    const std::byte* addresses = f.data + ip + (ipv6 ? 8 : 12);
    const std::uint16_t udp_length = load_be16(f.data + udp + 4);
    const std::size_t payload = udp + udp_header_size;
    const std::size_t payload_length = udp_length - udp_header_size;
    SfuTable& table = shard.table();
    SfuLeg& leg = table.at(slot);
    leg.heard(sfu.now_ticks, payload_length);

    // docs/sfu.md: select by SSRC for RTP (RFC 3550 §5.1: version 2, first byte 128..191; the
    // SSRC at bytes 8..11), not RTCP (RFC 5761 §4: second byte 192..223), nothing else.
    std::optional<std::uint32_t> ssrc;
    if (payload_length >= 12) {
        const unsigned first = std::to_integer<unsigned>(f.data[payload]);
        const unsigned second = std::to_integer<unsigned>(f.data[payload + 1]);
        if (first >= 128 && first <= 191 && !(second >= 192 && second <= 223))
            ssrc = stun::load_be32(f.data + payload + 8);
    }
    const std::span<const SfuPlanDestination*> chosen = shard.chosen();
    std::size_t subscribers = 0;
    std::uint64_t filtered = 0;
    const SfuMembership* membership = sfu.membership;
    // The leg's plan, by the slot the look-up gave (no session look-up): the one built for
    // this leg if the key and session say so, and, where someone paused the publisher, its
    // name (a leg re-admitted on the 5-tuple since the publish may have another).
    const SfuPlan* plan =
        membership != nullptr ? membership->plan(shard.worker(), slot) : nullptr;
    if (plan != nullptr && same_key(plan->publisher, key) && plan->session == leg.session() &&
        (plan->paused == 0 || leg.participant() == *plan->participant)) {
        filtered = plan->paused;  // pauses applied when the plan was built
        for (std::size_t i = 0; i < plan->count; ++i) {
            const SfuPlanDestination& d = membership->destination(*plan, i);
            if (ssrc && d.ssrc_count != 0 &&
                std::find(d.ssrcs, d.ssrcs + d.ssrc_count, *ssrc) == d.ssrcs + d.ssrc_count) {
                ++filtered;
                continue;
            }
            if (subscribers < chosen.size()) chosen[subscribers++] = &d;
        }
    } else {
        // The general path: a leg no plan names yet.
        const SfuSession* session =
            membership != nullptr ? find_session(*membership, leg.session()) : nullptr;
        if (session == nullptr) return Verdict::drop(DropReason::sfu_no_subscriber);
        // The publisher's name only for a subscriber that pauses someone: a copy of 8 words
        // through the leg's seqlock fields that most datagrams do not need.
        std::optional<SfuParticipant> publisher;
        const std::span<SfuPlanDestination> unplanned = shard.unplanned();
        for (const SfuMember& member : session->members) {
            if (same_key(member.key, key)) continue;  // not back to the publisher
            const SfuSelection& selection = member.selection;
            if (!selection.paused.empty() || (ssrc && !selection.ssrcs.empty())) {
                if (!publisher) publisher = leg.participant();
                if (!selection.allows(*publisher, ssrc)) {
                    ++filtered;
                    continue;
                }
            }
            if (subscribers < chosen.size()) {
                unplanned[subscribers] = plan_destination(member);
                chosen[subscribers] = &unplanned[subscribers];
                ++subscribers;
            }
        }
    }
    if (filtered != 0) {
        leg.count_filtered(filtered);
        shard.counters().filtered += filtered;
    }
    if (subscribers == 0)
        return Verdict::drop(filtered != 0 ? DropReason::sfu_filtered
                                           : DropReason::sfu_no_subscriber);

    Received in;
    in.ipv6 = ipv6;
    if (ipv6) {
        in.traffic_class = static_cast<std::uint8_t>(stun::load_be32(f.data + ip) >> 20);
        in.ipv4_id = 0;
    } else {
        in.traffic_class = std::to_integer<std::uint8_t>(f.data[ip + 1]);
        in.ipv4_id = load_be16(f.data + ip + 4);
    }
    in.udp_length = udp_length;
    in.udp_checksum = load_be16(f.data + udp + 6);
    in.checksum_base = in.udp_checksum;
    // A port that hands over partial checksums (rx_checksum = trust: a veth's, which holds the
    // pseudo-header's sum alone) gives nothing to update from: the copies' checksum is summed
    // over the whole datagram once, as for none sent, the field counted as zero.
    const bool partial = f.l4_checksum != L4ChecksumHint::good &&
                         port.rx_checksum != RxChecksum::verify && in.udp_checksum != 0;
    if (partial) store_be16(f.data + udp + 6, 0);
    if (in.udp_checksum == 0 || partial) {
        // None sent (IPv4): an IPv6 copy needs one (RFC 8200 §8.1), from the whole datagram.
        in.checksum_base = transport_checksum({addresses, 2 * ip_size}, ip_protocol::udp,
                                              {f.data + udp, udp_length});
    }
    if (ipv6) {
        in.old_terms =
            checksum_add(checksum_add(0, {addresses, 2 * ip_size}), {f.data + udp, 4});
    } else {
        // IPv4's four address words and two ports summed as values (RFC 1071), no loop.
        const std::uint32_t from = stun::load_be32(addresses);
        const std::uint32_t to = stun::load_be32(addresses + 4);
        in.old_terms = checksum_fold(std::uint64_t{from >> 16} + (from & 0xFFFF) + (to >> 16) +
                                     (to & 0xFFFF) + load_be16(f.data + udp) +
                                     load_be16(f.data + udp + 2));
    }
    sum_shared_terms(in);

    SfuFanOut& fan = shard.fan_out();
    fan.payload_length = static_cast<std::uint16_t>(payload_length);
    // The last subscriber's headers straight over the frame's own where they are as long (an
    // IPv4 datagram without options to an IPv4 leg, a call's usual case): no scratch, no copy.
    constexpr std::size_t ipv4_headers = ethernet_header_size + ipv4_header_size + udp_header_size;
    std::size_t to_scratch = subscribers;
    bool direct = false;
    if (!ipv6 && payload == ipv4_headers &&
        static_cast<std::uint8_t>(chosen[subscribers - 1]->key.words()[4] >> 32) ==
            static_cast<std::uint8_t>(stun::AddressFamily::ipv4)) {
        --to_scratch;
        direct = write_headers(f.data, *chosen[subscribers - 1], in, port) != 0;
        if (!direct) ++shard.counters().unforwardable;
    }
    // The others' headers into the scratch.
    std::size_t built = 0;
    for (std::size_t i = 0; i < to_scratch; ++i) {
        SfuDestination& d = fan.destinations[built];
        d.header_length =
            static_cast<std::uint8_t>(write_headers(d.header.data(), *chosen[i], in, port));
        if (d.header_length == 0) {
            ++shard.counters().unforwardable;
            continue;
        }
        ++built;
    }
    if (direct) {
        f.length = static_cast<std::uint16_t>(payload + payload_length);
        fan.count = static_cast<std::uint32_t>(built);
        fan.payload_offset = static_cast<std::uint16_t>(payload);
        ++built;  // the frame's own copy
    } else {
        if (built == 0) return Verdict::drop(DropReason::sfu_unforwardable);
        // The frame's own copy: its headers end where the payload begins, so that the payload
        // stays; longer ones than the frame's reach into the headroom. The last copy whose
        // headers fit goes there (an IPv6 copy of an IPv4 datagram needs 20 bytes of
        // headroom).
        std::size_t in_place = built;
        for (std::size_t i = built; i-- > 0;) {
            if (fan.destinations[i].header_length <= payload + f.headroom) {
                in_place = i;
                break;
            }
        }
        if (in_place == built) {
            shard.counters().unforwardable += built;
            return Verdict::drop(DropReason::sfu_unforwardable);
        }
        if (in_place != built - 1)
            std::swap(fan.destinations[in_place], fan.destinations[built - 1]);
        const SfuDestination& last = fan.destinations[built - 1];
        const std::ptrdiff_t shift = static_cast<std::ptrdiff_t>(payload) - last.header_length;
        f.data += shift;
        f.headroom = static_cast<std::uint16_t>(static_cast<std::ptrdiff_t>(f.headroom) + shift);
        f.capacity = static_cast<std::uint16_t>(static_cast<std::ptrdiff_t>(f.capacity) - shift);
        std::memcpy(f.data, last.header.data(), last.header_length);
        f.length = static_cast<std::uint16_t>(last.header_length + payload_length);
        fan.count = static_cast<std::uint32_t>(built - 1);
        fan.payload_offset = last.header_length;
    }

    leg.count_forwarded(built, payload_length);
    shard.counters().forwarded_packets += built;
    shard.counters().forwarded_bytes += built * payload_length;
    if (built == 1) return Verdict::transmit();
    ++shard.counters().fan_outs;
    // The copies beyond the frame itself: the caller counts the frame.
    for (const SfuDestination& d : fan.copies()) {
        ++counters.tx_packets;
        counters.tx_bytes += d.header_length + payload_length;
    }
    counters.fan_out_copies += fan.count;
    return Verdict::fan_out();
}

// A leg's datagram by its plan alone (sfu_express_ipv4()): the plan names the leg, nobody
// paused the publisher, every subscriber is IPv4 and selects no SSRCs, and the frame's
// checksum can be updated (not a partial one). Writes the headers as forward_leg() would (the
// last subscriber's over the frame's own, the others' into the fan-out scratch), counts as it
// does, and returns true with the verdict; false, having written nothing, for anything else
// (forward_leg() decides).
[[gnu::always_inline]] inline bool forward_planned_ipv4(Frame& f, const PortContext& port,
                                                        CoreCounters& counters, SfuState& sfu,
                                                        const FiveTuple& key, std::uint32_t slot,
                                                        Verdict& verdict) noexcept {
    const SfuMembership* membership = sfu.membership;
    SfuShard& shard = sfu.shard;
    const SfuPlan* plan = slot < sfu.plans.size() ? &sfu.plans[slot] : nullptr;
    if (plan == nullptr || plan->count == 0 || plan->paused != 0 || !same_key(plan->publisher, key))
        return false;
    SfuLeg& leg = shard.table().at(slot);
    if (plan->session != leg.session()) return false;
    const std::size_t count = plan->count;
    if (count > shard.chosen().size()) return false;  // more than the scratch holds
    const auto plain_ipv4 = [](const SfuPlanDestination& d) noexcept {
        return d.ssrc_count == 0 && static_cast<std::uint8_t>(d.key.words()[4] >> 32) ==
                                        static_cast<std::uint8_t>(stun::AddressFamily::ipv4);
    };
    // The destinations: the plan's head, then (count > 1) the rest from the membership's array.
    const SfuPlanDestination* rest = count > 1 ? &membership->destination(*plan, 1) : nullptr;
    if (!plain_ipv4(plan->head)) return false;
    for (std::size_t i = 0; i + 1 < count; ++i)
        if (!plain_ipv4(rest[i])) return false;
    constexpr std::size_t ip = ethernet_header_size;
    constexpr std::size_t udp = ip + ipv4_header_size;
    const std::byte* h = f.data + ip;
    const std::byte* u = f.data + udp;
    Received in;
    in.ipv6 = false;
    in.udp_checksum = load_be16(u + 6);
    in.udp_length = load_be16(u + 4);
    if ((in.udp_checksum != 0 && f.l4_checksum != L4ChecksumHint::good &&
         port.rx_checksum != RxChecksum::verify) ||  // partial: summed whole (forward_leg())
        ipv4_header_size + in.udp_length > port.mtu)  // counted there as unforwardable
        return false;
    in.traffic_class = std::to_integer<std::uint8_t>(h[1]);
    in.ipv4_id = load_be16(h + 4);
    in.checksum_base = in.udp_checksum;
    const std::uint32_t from = stun::load_be32(h + 12);
    const std::uint32_t to = stun::load_be32(h + 16);
    in.old_terms = checksum_fold(std::uint64_t{from >> 16} + (from & 0xFFFF) + (to >> 16) +
                                 (to & 0xFFFF) + load_be16(u) + load_be16(u + 2));
    sum_shared_terms(in);
    const std::size_t payload_length = in.udp_length - udp_header_size;
    constexpr std::size_t headers = ethernet_header_size + ipv4_header_size + udp_header_size;
    SfuFanOut& fan = shard.fan_out();
    // Every destination is IPv4 (plain_ipv4()) and the copies within the MTU (checked above).
    if (count == 1) {
        (void)write_ipv4_headers(f.data, plan->head, in, port);
    } else {
        // Written in order, the last over the frame's own: the head, rest[0], ...
        SfuDestination* scratch = fan.destinations.get();
        scratch[0].header_length = static_cast<std::uint8_t>(
            write_ipv4_headers(scratch[0].header.data(), plan->head, in, port));
        for (std::size_t i = 1; i + 1 < count; ++i)
            scratch[i].header_length = static_cast<std::uint8_t>(
                write_ipv4_headers(scratch[i].header.data(), rest[i - 1], in, port));
        (void)write_ipv4_headers(f.data, rest[count - 2], in, port);
    }
    leg.heard(sfu.now_ticks, payload_length);
    leg.count_forwarded(count, payload_length);
    shard.counters().forwarded_packets += count;
    shard.counters().forwarded_bytes += count * payload_length;
    if (count == 1) {
        verdict = Verdict::transmit();
        return true;
    }
    fan.count = static_cast<std::uint32_t>(count - 1);
    fan.payload_offset = headers;
    fan.payload_length = static_cast<std::uint16_t>(payload_length);
    ++shard.counters().fan_outs;
    counters.tx_packets += fan.count;
    counters.tx_bytes += fan.count * (headers + payload_length);
    counters.fan_out_copies += fan.count;
    verdict = Verdict::fan_out();
    return true;
}

// The express lane's checks of one frame (sfu_express_ipv4()): true, its Ethernet padding
// trimmed and `key` its 5-tuple, for a leg's media as the lane takes it; false, having
// written nothing, for anything else.
[[gnu::always_inline]] inline bool express_checks(Frame& f, const PortContext& port,
                                                  std::uint16_t sfu_port,
                                                  FiveTuple& key) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    constexpr std::size_t udp = ip + ipv4_header_size;
    if (f.length <= udp + udp_header_size) return false;
    const std::byte* h = f.data + ip;
    const std::byte* u = f.data + udp;
    // Ethernet to us; IPv4 with a 20-byte header (RFC 791: version 4, IHL 5), carrying UDP,
    // not a fragment; the total length UDP's plus the header, within the frame (Ethernet may
    // pad); from a port (RFC 768: 0 is none) to the SFU port, between an address of ours and a
    // valid source; not STUN (RFC 7983: first byte 0-3), which admission answers.
    if (!port.is_own_mac(f.data) || load_be16(f.data + 12) != ethertype::ipv4 ||
        h[0] != std::byte{0x45} || h[9] != std::byte{ip_protocol::udp} ||
        (load_be16(h + 6) & 0x3FFF) != 0 || load_be16(u + 2) != sfu_port ||
        std::to_integer<unsigned>(f.data[udp + udp_header_size]) <= 3)
        return false;
    const std::size_t udp_length = load_be16(u + 4);
    if (udp_length <= udp_header_size || load_be16(h + 2) != ipv4_header_size + udp_length ||
        udp + udp_length > f.length || load_be16(u) == 0 || !port.ipv4_addresses_ok(h) ||
        f.l4_checksum == L4ChecksumHint::bad)
        return false;
    // The IPv4 header checksum verifies (RFC 1071: the folded sum is all ones). The UDP one
    // is updated, not verified, as the general path forwards it.
    if (checksum_fold(checksum_native_sum<12>(h) + checksum_native_sum<8>(h + 12)) != 0xFFFF)
        return false;
    f.length = static_cast<std::uint16_t>(udp + udp_length);  // trim Ethernet padding
    key = FiveTuple::ipv4(h + 12, load_be16(u), h + 16, sfu_port);
    return true;
}

// The express lane past its checks: the leg of `key` (at `slot` where the leg there has the
// key; keys are unique among live legs), and the datagram forwarded.
[[gnu::always_inline]] inline Verdict express_forward(Frame& f, const PortContext& port,
                                                     CoreCounters& counters, SfuState& sfu,
                                                     const FiveTuple& key,
                                                     std::uint32_t slot) noexcept {
    constexpr std::size_t ip = ethernet_header_size;
    constexpr std::size_t udp = ip + ipv4_header_size;
    const SfuTable& table = sfu.shard.table();
    if (slot >= table.capacity() || !table.at(slot).live() || !table.at(slot).has_key(key))
        slot = table.find(key);
    if (slot == SfuTable::no_slot) return Verdict::drop(DropReason::sfu_not_a_leg);
    if (Verdict verdict; forward_planned_ipv4(f, port, counters, sfu, key, slot, verdict))
        return verdict;
    return forward_leg(f, ip, udp, false, port, counters, sfu, key, slot);
}

}  // namespace

Verdict sfu_forward(Frame& f, std::size_t ip, std::size_t udp, bool ipv6, const PortContext& port,
                    CoreCounters& counters, SfuState& sfu) noexcept {
    const std::byte* addresses = f.data + ip + (ipv6 ? 8 : 12);
    const FiveTuple key =
        ipv6 ? *FiveTuple::make(address_from(addresses, true, load_be16(f.data + udp)),
                                address_from(addresses + 16, true, load_be16(f.data + udp + 2)))
             : FiveTuple::ipv4(addresses, load_be16(f.data + udp), addresses + 4,
                               load_be16(f.data + udp + 2));
    const std::uint32_t slot = sfu.shard.table().find(key);
    if (slot == SfuTable::no_slot) return Verdict::drop(DropReason::sfu_not_a_leg);
    return forward_leg(f, ip, udp, ipv6, port, counters, sfu, key, slot);
}

bool sfu_express_ipv4(Frame& f, const PortContext& port, CoreCounters& counters, SfuState& sfu,
                      Verdict& verdict) noexcept {
    FiveTuple key;
    if (!express_checks(f, port, sfu.context.limits().port, key)) return false;
    verdict = express_forward(f, port, counters, sfu, key, SfuTable::no_slot);
    return true;
}

Verdict sfu_express_ahead(Frame& f, const PortContext& port, CoreCounters& counters,
                          SfuState& sfu, const SfuAhead& ahead) noexcept {
    return express_forward(f, port, counters, sfu, ahead.key, ahead.slot);
}

void sfu_look_ahead(std::span<Frame> frames, const PortContext& port, const SfuState& sfu,
                    std::span<SfuAhead> ahead) noexcept {
    constexpr std::size_t burst = 64;  // the tags of this many frames a pass
    const SfuTable& table = sfu.shard.table();
    const std::uint16_t sfu_port = sfu.context.limits().port;
    const std::span<const SfuPlan> plans = sfu.plans;
    for (std::size_t first = 0; first < frames.size(); first += burst) {
        const std::size_t n = std::min(burst, frames.size() - first);
        std::uint32_t tags[burst];
        // Pass 1: the checks and the tags, each frame's index line on its way.
        for (std::size_t i = first; i < first + n; ++i) {
            SfuAhead& a = ahead[i];
            a.express = express_checks(frames[i], port, sfu_port, a.key);
            if (a.express) tags[i - first] = table.start_find(a.key);
        }
        // Pass 2: the slots, each one's record and plan on their way.
        for (std::size_t i = first; i < first + n; ++i) {
            SfuAhead& a = ahead[i];
            a.slot = a.express ? table.slot_hint(tags[i - first]) : SfuTable::no_slot;
            if (a.slot >= plans.size()) continue;  // no_slot too
            __builtin_prefetch(&plans[a.slot]);
            __builtin_prefetch(reinterpret_cast<const std::byte*>(&plans[a.slot]) + 64);
        }
    }
}

// --- Expiry and kills ---

namespace {

SfuMessage leave_of(const SfuShard& shard, std::uint32_t slot) noexcept {
    const SfuLeg& leg = shard.table().at(slot);
    SfuMessage m;
    m.kind = SfuMessage::Kind::leave;
    m.key = leg.key();
    m.session = leg.session();
    m.participant = leg.participant();
    m.client_mac = leg.client_mac();
    m.worker = shard.worker();
    m.slot = slot;
    return m;
}

}  // namespace

std::size_t sweep(SfuShard& shard, const SfuContext& context, std::uint64_t now_ticks,
                  std::size_t max_slots) noexcept {
    std::size_t expired = 0;
    shard.table().sweep(now_ticks, context.limits().leg_timeout_ticks(), max_slots,
                        [&](std::uint32_t slot) {
                            // The control thread must hear of it, or other workers would go
                            // on sending to a leg that is gone: with the outbox full, the leg
                            // waits for the next pass.
                            if (!shard.post(leave_of(shard, slot))) return;
                            shard.table().erase(slot);
                            ++expired;
                        });
    shard.counters().legs_expired += expired;
    return expired;
}

bool kill_leg(SfuShard& shard, const SfuKill& kill) noexcept {
    SfuTable& table = shard.table();
    if (kill.slot >= table.capacity() || !table.at(kill.slot).live() ||
        !table.at(kill.slot).has_key(kill.key))
        return false;
    // Best effort: the control thread removed (or never added) this member already; the
    // leave only keeps its model right should the order have crossed a re-admission.
    (void)shard.post(leave_of(shard, kill.slot));
    table.erase(kill.slot);
    ++shard.counters().legs_killed;
    if (kill.cause == SfuKill::Cause::replayed) count(shard, SfuOutcome::sfu_token_replayed);
    if (kill.cause == SfuKill::Cause::session_full) count(shard, SfuOutcome::sfu_session_full);
    return true;
}

}  // namespace engine
