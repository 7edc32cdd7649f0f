#include "punch/turn_client.h"

#include <cstring>
#include <memory>
#include <stdexcept>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/channel_data.h"
#include "stun/credentials.h"
#include "stun/crypto.h"
#include "stun/demux.h"
#include "stun/integrity.h"
#include "stun/writer.h"

namespace punch {

namespace {

using namespace std::chrono_literals;

// RFC 8656 §9: a permission lasts 5 minutes (300 s) unless refreshed; refreshed a minute early.
constexpr Time permission_refresh = 4min;
// RFC 8656 §12: a channel binding lasts 10 minutes unless refreshed; refreshed a minute early.
constexpr Time channel_refresh = 9min;
// A request is headers and a few attributes; USERNAME, REALM and NONCE at their RFC 8489 §14
// send limits (508 + 509 + 509) and MESSAGE-INTEGRITY-SHA256 still fit.
constexpr std::size_t max_request = 1800;
// The largest datagram send() builds: a Send indication carrying 65535 bytes of DATA to an
// IPv6 peer (header, XOR-PEER-ADDRESS, DATA's header and padding).
constexpr std::size_t max_outgoing = stun::header_size + 24 + 4 + 65536;

constexpr std::string_view drop_names[] = {
#define PUNCH_TURN_DROP_NAME(name, help) #name,
    PUNCH_TURN_DROPS(PUNCH_TURN_DROP_NAME)
#undef PUNCH_TURN_DROP_NAME
};
constexpr std::string_view drop_help[] = {
#define PUNCH_TURN_DROP_HELP(name, help) help,
    PUNCH_TURN_DROPS(PUNCH_TURN_DROP_HELP)
#undef PUNCH_TURN_DROP_HELP
};

std::string format(const stun::Address& a) {
    std::array<char, 48> text{};
    return std::string(text.data(), a.format(text));
}

std::string text_of(const stun::Message& m, std::uint16_t type) {
    std::string_view value;
    const auto a = m.find(type);
    if (!a || stun::decode_text(*a, value) != stun::ParseError::ok) return {};
    return std::string(value);
}

}  // namespace

std::string_view to_string(TurnState state) noexcept {
    switch (state) {
        case TurnState::idle: return "idle";
        case TurnState::allocating: return "allocating";
        case TurnState::allocated: return "allocated";
        case TurnState::failed: return "failed";
        case TurnState::released: return "released";
    }
    return "?";
}

std::string_view to_string(TurnDrop drop) noexcept {
    const auto i = static_cast<std::size_t>(drop);
    return i < std::size(drop_names) ? drop_names[i] : "?";
}

std::string_view help(TurnDrop drop) noexcept {
    const auto i = static_cast<std::size_t>(drop);
    return i < std::size(drop_help) ? drop_help[i] : "?";
}

std::size_t TurnClient::AddressHash::operator()(const stun::Address& a) const noexcept {
    std::uint64_t words[2];
    std::memcpy(words, a.ip.data(), sizeof words);
    return std::hash<std::uint64_t>{}(words[0] ^ (words[1] * 0x9E3779B97F4A7C15ull) ^
                                      (std::uint64_t{a.port} << 48));
}

std::size_t TurnClient::IdHash::operator()(const stun::TransactionId& id) const noexcept {
    // Random IDs (RFC 8489 §6): any 8 of their bytes hash well.
    std::size_t h;
    std::memcpy(&h, id.data(), sizeof h);
    return h;
}

std::string TurnClient::Outcome::text() const {
    if (status == TransactionStatus::error_response)
        return std::to_string(code) + (reason.empty() ? "" : " " + reason);
    return std::string(to_string(status));
}

TurnClient::TurnClient(EventLoop& loop, DatagramSender& socket, TurnConfig config)
    : loop_(loop), socket_(socket), config_(std::move(config)),
      schedule_(retransmission_schedule(config_.policy)), next_channel_(stun::channel_min),
      send_buffer_(max_outgoing) {
    if (config_.username.empty())
        throw std::invalid_argument("turn config: username is empty; the coordinator's TURN "
                                    "credentials give one");
    if (config_.password.empty())
        throw std::invalid_argument("turn config: password is empty; the coordinator's TURN "
                                    "credentials give one");
    if (config_.lifetime <= std::chrono::seconds{0})
        throw std::invalid_argument("turn config: lifetime must be > 0 s (600 is the default)");
    if (config_.server.port == 0)
        throw std::invalid_argument("turn config: server has port 0; TURN's is 3478");
}

TurnClient::~TurnClient() {
    for (auto& [id, r] : pending_) loop_.cancel(r.timer);
    for (const TimerId id : deferred_) loop_.cancel(id);
    loop_.cancel(refresh_timer_);
    for (const Peer& p : peers_) {
        loop_.cancel(p.permission_timer);
        loop_.cancel(p.channel_timer);
    }
}

void TurnClient::defer(std::function<void()> callback) {
    // Callbacks never run inside the call that asked for them (allocate, add_peer): a caller
    // may call in from any callback of its own.
    auto id = std::make_shared<TimerId>(0);
    *id = loop_.after(Time{0}, [this, id, callback = std::move(callback)] {
        deferred_.erase(*id);
        callback();
    });
    deferred_.insert(*id);
}

stun::Method TurnClient::method_of(Kind kind) noexcept {
    switch (kind) {
        case Kind::allocate: return stun::Method::allocate;
        case Kind::refresh:
        case Kind::release: return stun::Method::refresh;
        case Kind::permission: return stun::Method::create_permission;
        case Kind::channel_bind: return stun::Method::channel_bind;
    }
    return stun::Method::refresh;
}

void TurnClient::allocate(AllocateCallback done) {
    if (state_ != TurnState::idle)
        throw std::logic_error("TurnClient::allocate: called twice (one allocation per client)");
    state_ = TurnState::allocating;
    allocate_done_ = std::move(done);
    allocate_started_ = loop_.now();
    start(Kind::allocate, 0, false, 0);
}

void TurnClient::start(Kind kind, std::size_t peer, bool refreshing, unsigned stale_retries) {
    Request r;
    r.kind = kind;
    r.peer = peer;
    r.refreshing = refreshing;
    r.stale_retries = stale_retries;
    r.authenticated = !key_.empty();
    r.bytes.resize(max_request);
    stun::TransactionId id;
    // RFC 8489 §6: a fresh random ID per transaction, retries after a 401 or 438 included.
    do {
        if (!stun::random_bytes(id)) {
            // No randomness: as if the request could not be sent.
            Outcome outcome;
            outcome.status = TransactionStatus::send_failed;
            defer([this, r = std::move(r), outcome] { finish(r, outcome, nullptr); });
            return;
        }
    } while (pending_.contains(id));

    stun::MessageWriter w(r.bytes, method_of(kind), stun::MessageClass::request, id);
    switch (kind) {
        case Kind::allocate:
            // RFC 8656 §7.1: REQUESTED-TRANSPORT UDP; LIFETIME is the client's wish.
            w.add_requested_transport(stun::transport_udp);
            w.add_u32(stun::attr::lifetime, static_cast<std::uint32_t>(config_.lifetime.count()));
            break;
        case Kind::refresh:
            w.add_u32(stun::attr::lifetime, static_cast<std::uint32_t>(config_.lifetime.count()));
            break;
        case Kind::release:
            // RFC 8656 §8.1: a Refresh with LIFETIME 0 deletes the allocation.
            w.add_u32(stun::attr::lifetime, 0);
            break;
        case Kind::permission:
            // RFC 8656 §10.1: one XOR-PEER-ADDRESS; the server ignores its port (§9).
            w.add_xor_address(stun::attr::xor_peer_address, peers_[peer].address);
            break;
        case Kind::channel_bind:
            // RFC 8656 §12.1: CHANNEL-NUMBER and XOR-PEER-ADDRESS, the same pair on refreshes.
            w.add_channel_number(peers_[peer].channel);
            w.add_xor_address(stun::attr::xor_peer_address, peers_[peer].address);
            break;
    }
    if (r.authenticated) {
        // RFC 8489 §9.2.5: USERNAME, REALM and NONCE from the last 401 or 438, and, when the
        // server offered PASSWORD-ALGORITHMS, the list echoed and the algorithm chosen.
        w.add_text(stun::attr::username, config_.username);
        w.add_text(stun::attr::realm, realm_);
        w.add_text(stun::attr::nonce, nonce_);
        if (algorithm_ != 0) {
            w.add(stun::attr::password_algorithms, password_algorithms_);
            w.add_password_algorithm(stun::PasswordAlgorithmValue{algorithm_, {}});
        }
        if (algorithm_ == static_cast<std::uint16_t>(stun::PasswordAlgorithm::sha256))
            w.add_message_integrity_sha256(key_);
        else
            w.add_message_integrity(key_);
    }
    // FINGERPRINT: the leg's socket carries STUN, ChannelData and media to the same server
    // (RFC 8489 §7: it tells STUN from other traffic).
    w.add_fingerprint();
    const std::size_t size = w.finish().size();
    if (size == 0) {
        // Only a realm or nonce past the send limits can do this; the server's fault.
        Outcome outcome;
        outcome.status = TransactionStatus::send_failed;
        defer([this, r = std::move(r), outcome] { finish(r, outcome, nullptr); });
        return;
    }
    r.bytes.resize(size);
    r.started = loop_.now();
    auto& placed = pending_.emplace(id, std::move(r)).first->second;
    // The first send on a timer due now: callbacks never run inside allocate() or add_peer().
    placed.timer = loop_.at(placed.started, [this, id] { on_timer(id); });
}

void TurnClient::arm(const stun::TransactionId& id, Request& r) {
    const Time next = r.next_send < schedule_.sends.size() ? schedule_.sends[r.next_send]
                                                           : schedule_.give_up;
    r.timer = loop_.at(r.started + next, [this, id] { on_timer(id); });
}

void TurnClient::on_timer(const stun::TransactionId& id) {
    const auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Request& r = it->second;
    if (r.next_send < schedule_.sends.size()) {
        const bool sent = socket_.send_to(config_.server, r.bytes);
        if (!sent && r.sends == 0) {
            Request request = std::move(r);
            pending_.erase(it);
            Outcome outcome;
            outcome.status = TransactionStatus::send_failed;
            finish(request, outcome, nullptr);
            return;
        }
        // A later send that fails is a lost datagram: the schedule goes on.
        ++(r.sends == 0 ? counters_.requests_sent : counters_.retransmissions);
        ++r.next_send;
        ++r.sends;
        arm(id, r);
        return;
    }
    Request request = std::move(r);
    pending_.erase(it);
    finish(request, Outcome{}, nullptr);  // timeout
}

bool TurnClient::on_datagram(const stun::Address& from, std::span<const std::byte> datagram) {
    if (!(from == config_.server)) return false;
    // RFC 7983 / RFC 8656 §12: the first byte tells STUN (0-3) from ChannelData (64-79).
    switch (stun::classify(datagram)) {
        case stun::PacketKind::stun: return handle_stun(datagram);
        case stun::PacketKind::turn_channel: handle_channel_data(datagram); return true;
        default: return !drop(TurnDrop::not_turn);
    }
}

bool TurnClient::handle_stun(std::span<const std::byte> datagram) {
    stun::Message m;
    if (stun::Message::parse(datagram, m) != stun::ParseError::ok)
        return !drop(TurnDrop::malformed);
    // The leg's own STUN (keepalives, discovery against the same server) is the owner's.
    if (m.method() == static_cast<std::uint16_t>(stun::Method::binding)) return false;
    const auto cls = m.message_class();
    if (cls == stun::MessageClass::indication) {
        if (m.method() == static_cast<std::uint16_t>(stun::Method::data))
            handle_data_indication(m);
        else
            drop(TurnDrop::unexpected_message);
        return true;
    }
    if (cls == stun::MessageClass::request) return !drop(TurnDrop::unexpected_message);

    stun::TransactionId id;
    std::memcpy(id.data(), m.transaction_id().data(), id.size());
    const auto it = pending_.find(id);
    // RFC 8489 §6.3.3: a response matching no outstanding transaction is discarded (late,
    // or forged).
    if (it == pending_.end()) return !drop(TurnDrop::unknown_transaction);
    Request& r = it->second;
    if (m.method() != static_cast<std::uint16_t>(method_of(r.kind)))
        return !drop(TurnDrop::wrong_method);
    // RFC 8489 §7.3: a FINGERPRINT that fails discards the message; the transaction waits on.
    if (m.fingerprint() && stun::verify_fingerprint(m) != stun::IntegrityResult::ok)
        return !drop(TurnDrop::bad_fingerprint);

    std::uint16_t code = 0;
    if (cls == stun::MessageClass::error_response) {
        const auto error = m.find(stun::attr::error_code);
        stun::ErrorCodeValue value;
        if (!error || stun::decode_error_code(*error, value) != stun::ParseError::ok)
            return !drop(TurnDrop::bad_error_code);
        code = value.code;
    }
    // RFC 8489 §9.2.5: a response to an authenticated request is processed only when its
    // MESSAGE-INTEGRITY(-SHA256) verifies with the key the request used; a 401 or 438 cannot
    // carry one (the server refuses that key or that nonce) and is taken as it is.
    const bool unsigned_allowed = code == stun::error_code::unauthenticated ||
                                  code == stun::error_code::stale_nonce;
    if (r.authenticated && !unsigned_allowed) {
        stun::IntegrityResult verdict = stun::IntegrityResult::missing;
        if (m.message_integrity_sha256())
            verdict = stun::verify_message_integrity_sha256(m, key_);
        else if (m.message_integrity())
            verdict = stun::verify_message_integrity(m, key_);
        if (verdict == stun::IntegrityResult::missing) return !drop(TurnDrop::missing_integrity);
        if (verdict != stun::IntegrityResult::ok) return !drop(TurnDrop::bad_integrity);
    }
    if (!r.authenticated && cls == stun::MessageClass::success_response)
        return !drop(TurnDrop::unauthenticated_success);
    // RFC 8489 §6.3.3, §6.3.4: an unknown comprehension-required attribute makes a response
    // unusable; discarded, the transaction ends by its schedule.
    std::array<std::uint16_t, 1> unknown;
    if (m.unknown_comprehension_required(unknown) != 0)
        return !drop(TurnDrop::unknown_comprehension_required);
    // A success must carry what its method promises; checked before the transaction ends, so
    // that a bad one is dropped like any other unusable response.
    if (cls == stun::MessageClass::success_response) {
        std::uint32_t seconds = 0;
        stun::Address address;
        const auto lifetime = m.find(stun::attr::lifetime);
        const bool lifetime_ok =
            lifetime && stun::decode_u32(*lifetime, seconds) == stun::ParseError::ok;
        if (r.kind == Kind::allocate) {
            // RFC 8656 §7.3: XOR-RELAYED-ADDRESS, LIFETIME and XOR-MAPPED-ADDRESS.
            const auto relayed = m.find(stun::attr::xor_relayed_address);
            const auto mapped = m.find(stun::attr::xor_mapped_address);
            if (!lifetime_ok || !relayed || !mapped ||
                stun::decode_xor_address(*relayed, m.transaction_id(), address) !=
                    stun::ParseError::ok ||
                stun::decode_xor_address(*mapped, m.transaction_id(), address) !=
                    stun::ParseError::ok)
                return !drop(TurnDrop::bad_attribute);
        } else if (r.kind == Kind::refresh && !lifetime_ok) {
            // §8.3: the success carries LIFETIME (release's may be taken without: it ends).
            return !drop(TurnDrop::bad_attribute);
        }
    }
    loop_.cancel(r.timer);
    Request request = std::move(r);
    pending_.erase(it);
    handle_response(m, std::move(request));
    return true;
}

bool TurnClient::learn_auth(const stun::Message& m) {
    // RFC 8489 §9.2.5: REALM and NONCE of a 401 are copied into the retry; a 438 brings a new
    // NONCE (and may bring a REALM).
    const std::string nonce = text_of(m, stun::attr::nonce);
    std::string realm = text_of(m, stun::attr::realm);
    if (nonce.empty()) return false;
    if (realm.empty()) realm = realm_;
    if (realm.empty()) return false;
    // RFC 8489 §9.2.5: when the 401 carries PASSWORD-ALGORITHMS, the retry echoes the list
    // unchanged and names in PASSWORD-ALGORITHM the first entry the client supports; with none
    // supported it does not retry. Without the list: MD5 and neither attribute (RFC 5389).
    std::uint16_t algorithm = 0;
    std::vector<std::byte> listed;
    if (const auto a = m.find(stun::attr::password_algorithms)) {
        std::array<stun::PasswordAlgorithmValue, 8> entries{};
        std::size_t count = 0;
        if (stun::decode_password_algorithms(*a, entries, count) != stun::ParseError::ok)
            return false;
        for (std::size_t i = 0; i < std::min(count, entries.size()) && algorithm == 0; ++i) {
            const auto value = entries[i].algorithm;
            if (entries[i].parameters.empty() &&
                (value == static_cast<std::uint16_t>(stun::PasswordAlgorithm::md5) ||
                 value == static_cast<std::uint16_t>(stun::PasswordAlgorithm::sha256)))
                algorithm = value;
        }
        if (algorithm == 0) return false;
        listed.assign(a->value.begin(), a->value.end());
    }
    if (realm != realm_ || algorithm != algorithm_ || key_.empty()) {
        // RFC 8489 §9.2.2: the key is the algorithm's hash of username ":" realm ":" password
        // (SASLprep'd). Computed here, once per realm: never per request.
        if (algorithm == static_cast<std::uint16_t>(stun::PasswordAlgorithm::sha256)) {
            stun::LongTermKeySha256 key;
            if (stun::long_term_key_sha256(config_.username, realm, config_.password, key) !=
                stun::CredentialError::ok)
                return false;
            key_.assign(key.begin(), key.end());
        } else {
            stun::LongTermKeyMd5 key;
            if (stun::long_term_key_md5(config_.username, realm, config_.password, key) !=
                stun::CredentialError::ok)
                return false;
            key_.assign(key.begin(), key.end());
        }
    }
    realm_ = std::move(realm);
    nonce_ = nonce;
    algorithm_ = algorithm;
    password_algorithms_ = std::move(listed);
    return true;
}

void TurnClient::handle_response(const stun::Message& m, Request request) {
    Outcome outcome;
    if (m.message_class() == stun::MessageClass::success_response) {
        outcome.ok = true;
        outcome.status = TransactionStatus::success;
        finish(request, outcome, &m);
        return;
    }
    stun::ErrorCodeValue value;
    (void)stun::decode_error_code(*m.find(stun::attr::error_code), value);  // checked before
    outcome.status = TransactionStatus::error_response;
    outcome.code = value.code;
    outcome.reason = std::string(value.reason);
    // RFC 8489 §9.2.5: the first 401 (the request carried no credentials) is the challenge:
    // retry with them. A 401 to a request that carried them means they are wrong: reported.
    if (value.code == stun::error_code::unauthenticated && !request.authenticated &&
        learn_auth(m)) {
        start(request.kind, request.peer, request.refreshing, request.stale_retries);
        return;
    }
    // RFC 8489 §9.2.5: after a 438 the client retries with the NONCE the answer gives; bounded,
    // so that a server that keeps refusing ends the request.
    if (value.code == stun::error_code::stale_nonce &&
        request.stale_retries < max_stale_nonce_retries && learn_auth(m)) {
        ++counters_.stale_nonce_retries;
        start(request.kind, request.peer, request.refreshing, request.stale_retries + 1);
        return;
    }
    finish(request, outcome, &m);
}

std::string TurnClient::describe(const Request& request) const {
    switch (request.kind) {
        case Kind::allocate: return "Allocate";
        case Kind::refresh: return "Refresh";
        case Kind::release: return "Refresh (release)";
        case Kind::permission: return "CreatePermission " + format(peers_[request.peer].address);
        case Kind::channel_bind: return "ChannelBind " + format(peers_[request.peer].address);
    }
    return "?";
}

void TurnClient::finish(const Request& request, const Outcome& outcome, const stun::Message* m) {
    switch (request.kind) {
        case Kind::allocate:
            if (outcome.ok && m != nullptr && state_ == TurnState::allocating) {
                allocated(*m);
            } else {
                allocation_failed(outcome);
            }
            return;
        case Kind::refresh:
            if (state_ != TurnState::allocated) return;
            if (outcome.ok && m != nullptr) {
                std::uint32_t seconds = 0;
                (void)stun::decode_u32(*m->find(stun::attr::lifetime), seconds);  // checked
                lifetime_ = std::chrono::seconds(seconds);
                ++counters_.allocation_refreshes;
                schedule_refresh();
                return;
            }
            state_ = TurnState::failed;
            report_failure(describe(request) + ": " + outcome.text());
            return;
        case Kind::release: {
            ResultCallback done = std::move(release_done_);
            if (done) done(outcome.ok ? std::string() : describe(request) + ": " + outcome.text());
            return;
        }
        case Kind::permission:
        case Kind::channel_bind: peer_step(request, outcome); return;
    }
}

void TurnClient::allocated(const stun::Message& m) {
    TurnAllocation result;
    std::uint32_t seconds = 0;
    // All three were checked before the transaction ended.
    (void)stun::decode_xor_address(*m.find(stun::attr::xor_relayed_address), m.transaction_id(),
                                   result.relayed);
    (void)stun::decode_xor_address(*m.find(stun::attr::xor_mapped_address), m.transaction_id(),
                                   result.mapped);
    (void)stun::decode_u32(*m.find(stun::attr::lifetime), seconds);
    result.status = TransactionStatus::success;
    result.lifetime = std::chrono::seconds(seconds);
    result.elapsed = loop_.now() - allocate_started_;
    relayed_ = result.relayed;
    mapped_ = result.mapped;
    lifetime_ = result.lifetime;
    state_ = TurnState::allocated;
    schedule_refresh();
    AllocateCallback done = std::move(allocate_done_);
    if (done) done(result);
}

void TurnClient::allocation_failed(const Outcome& outcome) {
    if (state_ != TurnState::allocating) return;
    state_ = TurnState::failed;
    TurnAllocation result;
    result.status = outcome.status;
    result.error_code = outcome.code;
    result.error_reason = outcome.reason;
    result.elapsed = loop_.now() - allocate_started_;
    AllocateCallback done = std::move(allocate_done_);
    if (done) done(result);
}

void TurnClient::schedule_refresh() {
    loop_.cancel(refresh_timer_);
    // A minute before expiry, or half-way for a short lifetime: a lost Refresh still has
    // its retransmissions' 39.5 s to get through.
    const Time granted = lifetime_;
    const Time at = granted > 2min ? granted - 1min : granted / 2;
    refresh_timer_ = loop_.after(at, [this] {
        refresh_timer_ = 0;
        if (state_ == TurnState::allocated) start(Kind::refresh, 0, false, 0);
    });
}

void TurnClient::report_failure(const std::string& what) {
    if (on_failure_) on_failure_(what);
}

std::uint16_t TurnClient::channel_of(const stun::Address& peer) const noexcept {
    const auto it = peer_index_.find(peer);
    return it == peer_index_.end() ? 0 : peers_[it->second].channel;
}

void TurnClient::add_peer(const stun::Address& peer, ResultCallback done) {
    if (state_ != TurnState::allocated) {
        defer([done = std::move(done)] {
            if (done) done("not allocated");
        });
        return;
    }
    if (const auto it = peer_index_.find(peer); it != peer_index_.end()) {
        Peer& p = peers_[it->second];
        if (p.ready && !p.failed) {
            defer([done = std::move(done)] {
                if (done) done("");
            });
        } else if (!p.failed && !p.waiting.empty()) {
            p.waiting.push_back(std::move(done));
        } else {
            // Failed before: try again from the permission.
            p.failed = false;
            p.waiting.push_back(std::move(done));
            start(Kind::permission, it->second, false, 0);
        }
        return;
    }
    const std::size_t index = peers_.size();
    Peer p;
    p.address = peer;
    if (config_.use_channels) {
        // RFC 8656 §12: 0x4000 through 0x4FFF; one per peer for the allocation's lifetime.
        if (next_channel_ > stun::channel_max) {
            defer([done = std::move(done)] {
                if (done) done("ChannelBind: every channel number (0x4000-0x4FFF) is in use");
            });
            return;
        }
        p.channel = next_channel_++;
        channel_index_.emplace(p.channel, index);
    }
    p.waiting.push_back(std::move(done));
    peers_.push_back(std::move(p));
    peer_index_.emplace(peer, index);
    start(Kind::permission, index, false, 0);
}

void TurnClient::peer_answer(std::size_t index, const std::string& error) {
    Peer& p = peers_[index];
    if (error.empty()) {
        p.ready = true;
    } else {
        p.failed = true;
    }
    std::vector<ResultCallback> waiting = std::move(p.waiting);
    p.waiting.clear();
    for (auto& done : waiting)
        if (done) done(error);
}

void TurnClient::peer_step(const Request& request, const Outcome& outcome) {
    Peer& p = peers_[request.peer];
    const std::size_t index = request.peer;
    // The allocation failed meanwhile: whatever the answer, nothing can be sent.
    if (state_ != TurnState::allocated) {
        if (!request.refreshing) peer_answer(index, "not allocated");
        return;
    }
    if (!outcome.ok) {
        const std::string error = describe(request) + ": " + outcome.text();
        if (request.kind == Kind::permission) p.permitted = false;
        else p.bound = false;
        if (request.refreshing) {
            p.failed = true;
            report_failure(error);
        } else {
            peer_answer(index, error);
        }
        return;
    }
    if (request.kind == Kind::permission) {
        if (request.refreshing) ++counters_.permission_refreshes;
        p.permitted = true;
        loop_.cancel(p.permission_timer);
        p.permission_timer = loop_.after(permission_refresh, [this, index] {
            peers_[index].permission_timer = 0;
            if (state_ == TurnState::allocated) start(Kind::permission, index, true, 0);
        });
        if (request.refreshing) return;
        if (config_.use_channels && !p.bound) {
            start(Kind::channel_bind, index, false, 0);
            return;
        }
        peer_answer(index, "");
        return;
    }
    if (request.refreshing) ++counters_.channel_refreshes;
    p.bound = true;
    loop_.cancel(p.channel_timer);
    p.channel_timer = loop_.after(channel_refresh, [this, index] {
        peers_[index].channel_timer = 0;
        if (state_ == TurnState::allocated) start(Kind::channel_bind, index, true, 0);
    });
    if (!request.refreshing) peer_answer(index, "");
}

void TurnClient::release(ResultCallback done) {
    const TurnState was = state_;
    state_ = TurnState::released;
    loop_.cancel(refresh_timer_);
    refresh_timer_ = 0;
    for (Peer& p : peers_) {
        loop_.cancel(p.permission_timer);
        loop_.cancel(p.channel_timer);
        p.permission_timer = p.channel_timer = 0;
    }
    for (auto& [id, r] : pending_) loop_.cancel(r.timer);
    pending_.clear();
    // Every callback still owed runs once, as promised: an Allocate or add_peer() in flight
    // ends here.
    if (was == TurnState::allocating) {
        defer([this] {
            AllocateCallback allocate_done = std::move(allocate_done_);
            TurnAllocation result;
            result.status = TransactionStatus::timeout;
            result.error_reason = "released before the answer";
            result.elapsed = loop_.now() - allocate_started_;
            if (allocate_done) allocate_done(result);
        });
    }
    for (std::size_t i = 0; i < peers_.size(); ++i)
        if (!peers_[i].waiting.empty()) defer([this, i] { peer_answer(i, "released"); });
    if (was != TurnState::allocated) {
        defer([done = std::move(done)] {
            if (done) done("not allocated");
        });
        return;
    }
    release_done_ = std::move(done);
    start(Kind::release, 0, false, 0);
}

bool TurnClient::send(const stun::Address& peer, std::span<const std::byte> data) {
    if (state_ != TurnState::allocated) return drop(TurnDrop::send_not_allocated);
    const auto it = peer_index_.find(peer);
    if (it == peer_index_.end()) return drop(TurnDrop::send_no_permission);
    const Peer& p = peers_[it->second];
    if (p.failed) return drop(TurnDrop::send_no_permission);
    std::span<const std::byte> datagram;
    if (p.bound) {
        // RFC 8656 §12.4: 4 bytes of header, no padding over UDP (§12.5).
        const std::size_t size = stun::write_channel_data(send_buffer_, p.channel, data, false);
        if (size == 0) return drop(TurnDrop::send_too_large);
        datagram = std::span(send_buffer_).first(size);
        if (!socket_.send_to(config_.server, datagram)) return drop(TurnDrop::send_failed);
        ++counters_.channel_data_sent;
        return true;
    }
    if (!p.permitted) return drop(TurnDrop::send_no_permission);
    // RFC 8656 §11.1 (Send indication): XOR-PEER-ADDRESS and DATA. Indications are not
    // retransmitted and carry no credentials; the ID need only be random (RFC 8489 §6).
    stun::TransactionId id;
    if (!stun::random_bytes(id)) return drop(TurnDrop::send_failed);
    stun::MessageWriter w(send_buffer_, stun::Method::send, stun::MessageClass::indication, id);
    w.add_xor_address(stun::attr::xor_peer_address, peer);
    w.add(stun::attr::data, data);
    datagram = w.finish();
    if (datagram.empty() || data.size() > 0xFFFF) return drop(TurnDrop::send_too_large);
    if (!socket_.send_to(config_.server, datagram)) return drop(TurnDrop::send_failed);
    ++counters_.send_indications_sent;
    return true;
}

bool TurnClient::permitted_ip(const stun::Address& address) const noexcept {
    for (const Peer& p : peers_)
        if (p.permitted && !p.failed && p.address.family == address.family &&
            p.address.ip == address.ip)
            return true;
    return false;
}

void TurnClient::handle_data_indication(const stun::Message& m) {
    if (state_ != TurnState::allocated) {
        drop(TurnDrop::no_allocation);
        return;
    }
    // RFC 8656 §11.4: a Data indication without XOR-PEER-ADDRESS is discarded (and one without
    // DATA carries nothing). Indications are unauthenticated by design.
    const auto peer_attribute = m.find(stun::attr::xor_peer_address);
    const auto data = m.find(stun::attr::data);
    stun::Address peer;
    if (!peer_attribute || !data ||
        stun::decode_xor_address(*peer_attribute, m.transaction_id(), peer) !=
            stun::ParseError::ok) {
        drop(TurnDrop::bad_data_indication);
        return;
    }
    // §11.4: the client should also check that the peer is one it holds a permission for, and
    // discard the indication otherwise. A permission is for an IP address, any port (§9): a
    // peer behind a symmetric NAT reaches the relay from a port of its own, not the one its
    // STUN server saw, and this is how the ladder learns that port (then binds a channel).
    if (!permitted_ip(peer)) {
        drop(TurnDrop::unknown_peer);
        return;
    }
    ++counters_.data_indications_received;
    if (on_data_) on_data_(peer, data->value);
}

void TurnClient::handle_channel_data(std::span<const std::byte> datagram) {
    if (state_ != TurnState::allocated) {
        drop(TurnDrop::no_allocation);
        return;
    }
    stun::ChannelData channel_data;
    // RFC 8656 §12.5: over UDP the datagram may be longer than the header says (padding);
    // the parser takes the length field's bytes and ignores the rest.
    if (stun::parse_channel_data(datagram, channel_data) != stun::ParseError::ok) {
        drop(TurnDrop::bad_channel_data);
        return;
    }
    // §12.6: ChannelData on a channel with no binding is discarded. One being bound counts:
    // the server may use it as soon as it has answered, before the answer arrives.
    const auto it = channel_index_.find(channel_data.channel);
    if (it == channel_index_.end()) {
        drop(TurnDrop::unknown_channel);
        return;
    }
    ++counters_.channel_data_received;
    if (on_data_) on_data_(peers_[it->second].address, channel_data.data);
}

}  // namespace punch
