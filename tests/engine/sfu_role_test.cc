// Golden-packet tests of the SFU role (engine/sfu_role.h, docs/sfu.md): whole Ethernet frames
// in through handle_frame(), the verdict and the exact frames out, on an injected clock.
//
// The expected frames are made here independently of the engine: the STUN answers with
// stun::MessageWriter, the headers by build_udp_frame() below, which computes the IPv4 header
// checksum and the UDP checksum over the whole datagram (RFC 768, RFC 1071), where the engine
// updates them incrementally (RFC 1624). A byte that differs fails the test.
#include "engine/sfu_role.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "allocation_count.h"
#include "engine/checksum.h"
#include "engine/handler.h"
#include "sfu_frames.h"
#include "test_support.h"
#include "stun/bytes.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace engine {
namespace {

using Bytes = std::vector<std::byte>;
using test::at;
using test::build_udp_frame;
using test::mac;

const MacAddress engine_mac = mac(0x01);
const MacAddress mac_a = mac(0xA);
const MacAddress mac_b = mac(0xB);
const MacAddress mac_c = mac(0xC);
const MacAddress mac_d = mac(0xD);

constexpr std::uint16_t sfu_port = 3480;
const stun::Address sfu4 = at("192.0.2.1", sfu_port);
const stun::Address sfu6 = at("2001:db8::1", sfu_port);
const stun::Address alice = at("198.51.100.10", 6000);
const stun::Address bob = at("203.0.113.20", 7000);
const stun::Address carol = at("198.51.100.30", 8000);
const stun::Address dave = at("203.0.113.40", 9000);
const stun::Address erin6 = at("2001:db8:5::50", 5000);

const std::string secret = "the coordinator's secret, 32 B.";
const std::string old_secret = "a rotated-out secret, 16+ bytes";
constexpr std::uint64_t session_id = 0x00c0ffee12345678;
constexpr std::uint64_t now_unix = 1'795'531'000;
constexpr std::uint64_t ticks_per_second = 1000;  // the injected clock: milliseconds
constexpr std::uint32_t leg_timeout_s = 15;

struct Token {
    std::string username;
    std::string password;
    [[nodiscard]] std::span<const std::byte> key() const {
        return {reinterpret_cast<const std::byte*>(password.data()), password.size()};
    }
};

Token make_token(std::string_view participant, std::uint64_t expiry = now_unix + 3600,
                 std::uint64_t session = session_id, const std::string& with = secret) {
    std::array<char, stun::sfu_username_max> buffer;
    std::size_t written = 0;
    EXPECT_EQ(stun::make_sfu_username({expiry, session, participant}, buffer, written),
              stun::SfuTokenError::ok);
    Token t;
    t.username.assign(buffer.data(), written);
    std::array<char, stun::sfu_password_size> password;
    stun::make_sfu_password({reinterpret_cast<const std::byte*>(with.data()), with.size()},
                            t.username, password);
    t.password.assign(password.data(), password.size());
    return t;
}

stun::TransactionId txid(std::uint8_t n) {
    stun::TransactionId id;
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = std::byte(n + i);
    return id;
}

// A Binding request as a client sends it: USERNAME, MESSAGE-INTEGRITY(-SHA256) keyed with
// `key`, FINGERPRINT; each part optional for the error cases.
struct Request {
    std::optional<std::string> username;
    std::optional<std::string> key;
    bool sha256 = false;
    bool fingerprint = true;
    std::uint8_t id = 1;
};

Bytes binding_request(const Request& r) {
    Bytes buffer(512);
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request,
                          txid(r.id));
    if (r.username) w.add_text(stun::attr::username, *r.username);
    if (r.key) {
        const std::span<const std::byte> key(reinterpret_cast<const std::byte*>(r.key->data()),
                                             r.key->size());
        if (r.sha256)
            w.add_message_integrity_sha256(key, 32);
        else
            w.add_message_integrity(key);
    }
    if (r.fingerprint) w.add_fingerprint();
    EXPECT_TRUE(w.ok());
    buffer.resize(w.size());
    return buffer;
}

Request signed_by(const Token& t, std::uint8_t id = 1) { return {t.username, t.password, false, true, id}; }

// The answers the engine must send, made with the codec.
Bytes ack(const stun::Address& client, const Token& t, std::uint8_t id = 1, bool sha256 = false) {
    Bytes buffer(512);
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::success_response,
                          txid(id));
    w.add_xor_address(stun::attr::xor_mapped_address, client);
    if (sha256)
        w.add_message_integrity_sha256(t.key(), 32);
    else
        w.add_message_integrity(t.key());
    w.add_fingerprint();
    buffer.resize(w.size());
    return buffer;
}

// `request_size`: the request's, when the reason must be cut to keep the answer no longer
// (docs/sfu.md: no amplification); 0: the whole reason.
Bytes error_answer(std::uint16_t code, std::string_view reason, const Token* signed_with,
                   std::uint8_t id = 1, bool fingerprint = true, std::size_t request_size = 0) {
    if (request_size != 0) {
        const std::size_t fixed =
            20 + 8 + (signed_with != nullptr ? 24 : 0) + (fingerprint ? 8 : 0);
        reason = reason.substr(0, std::min(reason.size(), (request_size - fixed) / 4 * 4));
    }
    Bytes buffer(512);
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::error_response,
                          txid(id));
    w.add_error_code(code, reason);
    if (signed_with != nullptr) w.add_message_integrity(signed_with->key());
    if (fingerprint) w.add_fingerprint();
    buffer.resize(w.size());
    return buffer;
}

Bytes text(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()),
            reinterpret_cast<const std::byte*>(s.data()) + s.size()};
}

// An RTP packet (RFC 3550 §5.1): version 2, payload type 111, the SSRC at bytes 8..11.
Bytes rtp(std::uint32_t ssrc, std::uint16_t sequence = 1, std::size_t payload = 40) {
    Bytes p(12 + payload, std::byte{0x5A});
    p[0] = std::byte{0x80};
    p[1] = std::byte{111};
    stun::store_be16(p.data() + 2, sequence);
    stun::store_be32(p.data() + 4, 1000);
    stun::store_be32(p.data() + 8, ssrc);
    return p;
}

// An RTCP sender report (RFC 3550 §6.4.1; RFC 5761 §4: second byte 200).
Bytes rtcp(std::uint32_t ssrc) {
    Bytes p(28, std::byte{0});
    p[0] = std::byte{0x80};
    p[1] = std::byte{200};
    stun::store_be16(p.data() + 2, 6);
    stun::store_be32(p.data() + 4, ssrc);
    return p;
}

// One node with `workers` shards, its membership kept by a builder as the control thread
// keeps it, and the clock.
class SfuLab {
public:
    explicit SfuLab(std::uint32_t max_legs = 8, std::uint32_t max_legs_per_session = 4,
                    std::uint16_t workers = 1, std::uint32_t rate = 1, std::uint32_t burst = 2)
        : context_({secret, old_secret},
                   SfuLimits{sfu_port, max_legs_per_session, leg_timeout_s, ticks_per_second}),
          builder_(max_legs_per_session) {
        port_.mac = engine_mac;
        port_.ipv4.primary = at("192.0.2.1", 0);
        port_.ipv6.primary = at("2001:db8::1", 0);
        port_.stun_port = 3478;
        port_.stun_alternate_port = 0;
        port_.software = "";
        port_.prepare();
        for (std::uint16_t w = 0; w < workers; ++w)
            shards_.push_back(std::make_unique<SfuShard>(
                max_legs, max_legs_per_session,
                *RateLimit::make(rate, burst, ticks_per_second), 64, w, 42 + w));
        counters_.resize(workers);
    }

    struct Out {
        Verdict verdict;
        Bytes frame;  // the frame after the handler (its bytes from its new start)
    };

    // `frame` copied into the lab's buffer, with headroom, as a handler's Frame.
    Frame load(const Bytes& frame) {
        constexpr std::size_t headroom = 128;
        buffer_.assign(headroom + 2048, std::byte{0});
        std::memcpy(buffer_.data() + headroom, frame.data(), frame.size());
        Frame f;
        f.data = buffer_.data() + headroom;
        f.length = static_cast<std::uint16_t>(frame.size());
        f.capacity = 2048;
        f.headroom = headroom;
        return f;
    }

    // Hands `frame` to worker `w` at the lab's time; `general`: to handle_frame_generally(),
    // past the express lanes.
    Out send(const Bytes& frame, std::uint16_t w = 0, bool general = false) {
        Frame f = load(frame);
        SfuState state{context_, *shards_[w], membership_.get(), now_ticks, now_s};
        Out out;
        const std::size_t before = test::allocations();
        if (general) ++counters_[w].rx_packets;  // handle_frame() counts it before either
        out.verdict = general ? handle_frame_generally(f, port_, counters_[w], nullptr, &state)
                              : handle_frame(f, port_, counters_[w], nullptr, &state);
        last_allocations = test::allocations() - before;
        out.frame.assign(f.data, f.data + f.length);
        return out;
    }

    // What sfu_look_ahead() makes of `frames` as worker `w`'s burst: each frame's SfuAhead
    // and its length after.
    struct Ahead {
        std::vector<SfuAhead> ahead;
        std::vector<std::uint16_t> lengths;
    };
    Ahead look_ahead(std::vector<Bytes> frames, std::uint16_t w = 0) {
        std::vector<Frame> burst;
        for (Bytes& f : frames) {
            Frame frame;
            frame.data = f.data();
            frame.length = static_cast<std::uint16_t>(f.size());
            frame.capacity = frame.length;
            burst.push_back(frame);
        }
        Ahead out;
        out.ahead.resize(frames.size());
        const SfuState state{context_, *shards_[w], membership_.get(), now_ticks, now_s};
        sfu_look_ahead(burst, port_, state, out.ahead);
        for (const Frame& f : burst) out.lengths.push_back(f.length);
        return out;
    }

    // `frame` as the worker handles a frame of a burst: the look-ahead's SfuAhead for it
    // (its slot replaced by `hint`, right or wrong, if given), then, where it passed,
    // sfu_express_ahead() counted as Worker::handle_express() counts it; else handle_frame().
    Out send_lane(const Bytes& frame, std::optional<std::uint32_t> hint = std::nullopt,
                  std::uint16_t w = 0) {
        Frame f = load(frame);
        SfuState state{context_, *shards_[w], membership_.get(), now_ticks, now_s};
        SfuAhead ahead;
        sfu_look_ahead({&f, 1}, port_, state, {&ahead, 1});
        if (!ahead.express) return send(frame, w);
        if (hint) ahead.slot = *hint;
        Out out;
        const std::size_t before = test::allocations();
        ++counters_[w].rx_packets;
        out.verdict = sfu_express_ahead(f, port_, counters_[w], state, ahead);
        count_sfu_express(out.verdict, f, counters_[w]);
        last_allocations = test::allocations() - before;
        out.frame.assign(f.data, f.data + f.length);
        return out;
    }

    // A Binding request from `client` to the SFU's address of its family.
    Out request(const stun::Address& client, const MacAddress& client_mac, const Request& r,
                std::uint16_t w = 0) {
        return send(build_udp_frame(client_mac, engine_mac, client, sfu_of(client),
                                    binding_request(r)),
                    w);
    }

    // What the control thread does with the workers' messages: applies them and publishes a
    // new membership; the kills it orders for races are carried out on their workers.
    std::vector<SfuMembershipBuilder::JoinResult> publish() {
        std::vector<SfuMembershipBuilder::JoinResult> results;
        for (auto& shard : shards_) {
            SfuMessage m;
            while (shard->pop(m)) {
                if (m.kind == SfuMessage::Kind::leave) {
                    builder_.leave(m);
                    continue;
                }
                const auto result = builder_.join(m);
                results.push_back(result);
                using R = SfuMembershipBuilder::JoinResult;
                if (result == R::replayed || result == R::full) {
                    SfuKill kill;
                    kill.key = m.key;
                    kill.slot = m.slot;
                    kill.cause = result == R::replayed ? SfuKill::Cause::replayed
                                                       : SfuKill::Cause::session_full;
                    EXPECT_TRUE(kill_leg(*shards_[m.worker], kill));
                    // The kill's own leave: the model has no such member.
                    SfuMessage leave;
                    while (shards_[m.worker]->pop(leave)) EXPECT_FALSE(builder_.leave(leave));
                }
            }
        }
        membership_ = builder_.build();
        return results;
    }

    // Admits `client` as `participant` and publishes; a test failure unless it was.
    void admit(const stun::Address& client, const MacAddress& client_mac,
               std::string_view participant, std::uint16_t w = 0) {
        const Token t = make_token(participant);
        const Out out = request(client, client_mac, signed_by(t), w);
        ASSERT_TRUE(out.verdict.transmits()) << participant;
        ASSERT_EQ(out.frame, build_udp_frame(engine_mac, client_mac, sfu_of(client), client,
                                             ack(client, t)));
        publish();
    }

    static const stun::Address& sfu_of(const stun::Address& client) {
        return client.family == stun::AddressFamily::ipv6 ? sfu6 : sfu4;
    }

    SfuShard& shard(std::uint16_t w = 0) { return *shards_[w]; }
    CoreCounters& counters(std::uint16_t w = 0) { return counters_[w]; }
    SfuMembershipBuilder& builder() { return builder_; }
    const SfuContext& context() const { return context_; }
    PortContext& port() { return port_; }
    const SfuMembership* membership() const { return membership_.get(); }
    void republish() { membership_ = builder_.build(); }
    // punchctl drain or undrain: the context the control thread would publish next.
    void set_draining(bool draining) { context_ = context_.with_draining(draining); }

    std::uint64_t now_ticks = 1'000'000;
    std::uint64_t now_s = now_unix;
    std::size_t last_allocations = 0;  ///< operator new calls inside the last handle_frame()

private:
    PortContext port_;
    SfuContext context_;
    std::vector<std::unique_ptr<SfuShard>> shards_;
    std::vector<CoreCounters> counters_;
    SfuMembershipBuilder builder_;
    std::shared_ptr<const SfuMembership> membership_;
    Bytes buffer_;
};

std::uint64_t outcome(SfuLab& lab, SfuOutcome o, std::uint16_t w = 0) {
    return lab.shard(w).counters().outcome(o);
}

std::uint64_t drops(SfuLab& lab, DropReason reason, std::uint16_t w = 0) {
    return lab.counters(w).drops[static_cast<std::size_t>(reason)];
}

// The frame from the engine's address to `client`, carrying `payload`.
Bytes to_client(const stun::Address& client, const MacAddress& client_mac,
                std::span<const std::byte> payload, std::uint16_t id = 0x1234) {
    return build_udp_frame(engine_mac, client_mac, SfuLab::sfu_of(client), client, payload, id);
}

// --- Admission ---

TEST(SfuAdmission, ValidTokenGetsTheAckAndALeg) {
    SfuLab lab;
    const Token t = make_token("alice");
    const auto out = lab.request(alice, mac_a, signed_by(t));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, to_client(alice, mac_a, ack(alice, t)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_admitted), 1u);
    const std::uint32_t slot = lab.shard().table().find(*FiveTuple::make(alice, sfu4));
    ASSERT_NE(slot, SfuTable::no_slot);
    EXPECT_EQ(lab.shard().table().at(slot).session(), session_id);
    EXPECT_EQ(lab.shard().table().at(slot).participant().view(), "alice");
    EXPECT_EQ(lab.shard().table().at(slot).client_mac(), mac_a);
    // The join for the control thread.
    const SfuMessage* join = lab.shard().peek();
    ASSERT_NE(join, nullptr);
    EXPECT_EQ(join->kind, SfuMessage::Kind::join);
    EXPECT_EQ(join->session, session_id);
    EXPECT_EQ(join->participant.view(), "alice");
    EXPECT_EQ(join->slot, slot);
    EXPECT_TRUE(lab.counters().conserved());
}

TEST(SfuAdmission, Ipv6WithIntegritySha256AndAnOlderSecret) {
    SfuLab lab;
    const Token t = make_token("erin", now_unix + 10, session_id, old_secret);
    Request r = signed_by(t);
    r.sha256 = true;
    const auto out = lab.request(erin6, mac_a, r);
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, to_client(erin6, mac_a, ack(erin6, t, 1, true)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_admitted), 1u);
}

TEST(SfuAdmission, ExpiredTokenGets401) {
    SfuLab lab;
    // The expiry second itself is still valid; the one after is not.
    const Token last_second = make_token("alice", now_unix);
    EXPECT_TRUE(lab.request(alice, mac_a, signed_by(last_second)).verdict.transmits());
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_admitted), 1u);
    const Token expired = make_token("bob", now_unix - 1);
    const auto out = lab.request(bob, mac_b, signed_by(expired));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, to_client(bob, mac_b, error_answer(401, "SFU token expired", nullptr)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_expired), 1u);
    EXPECT_EQ(lab.shard().table().size(), 1u);
}

TEST(SfuAdmission, TokenOfAnotherSecretIsForged) {
    SfuLab lab;
    const Token forged =
        make_token("mallory", now_unix + 60, session_id, "not a secret this node knows");
    const auto out = lab.request(bob, mac_b, signed_by(forged));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame,
              to_client(bob, mac_b, error_answer(401, "integrity check failed", nullptr)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_forged), 1u);
    EXPECT_EQ(lab.shard().table().size(), 0u);
}

TEST(SfuAdmission, AlteredUsernameIsForged) {
    SfuLab lab;
    const Token real = make_token("alice");
    // Another session, expiry or participant with the password of the real token: the
    // node recomputes the password from the USERNAME, and the integrity fails.
    for (const Token& altered : {make_token("alice", now_unix + 7200), make_token("alicf"),
                                 make_token("alice", now_unix + 3600, session_id + 1)}) {
        Request r = signed_by(real);
        r.username = altered.username;
        const auto out = lab.request(bob, mac_b, r);
        ASSERT_TRUE(out.verdict.transmits()) << altered.username;
        EXPECT_EQ(out.frame,
                  to_client(bob, mac_b, error_answer(401, "integrity check failed", nullptr)));
        lab.now_ticks += ticks_per_second;  // a token for the bucket
    }
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_forged), 3u);
    EXPECT_EQ(lab.shard().table().size(), 0u);
}

TEST(SfuAdmission, ReplayedTokenFromAnotherAddressGets403WithIntegrity) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    const Token t = make_token("alice");
    // The same token from another 5-tuple (another port of another host), before and after
    // the membership knows of the first leg.
    const stun::Address thief = at("192.0.2.200", 6001);
    const auto out = lab.request(thief, mac_c, signed_by(t, 2));
    ASSERT_TRUE(out.verdict.transmits());
    // The reason as far as the request's size allows (a 92-byte request: 32 of its 47 bytes).
    const std::size_t request_size = binding_request(signed_by(t, 2)).size();
    EXPECT_EQ(out.frame,
              to_client(thief, mac_c,
                        error_answer(403, "participant already joined from another address", &t,
                                     2, true, request_size)));
    EXPECT_EQ(request_size, 92u);
    EXPECT_LT(to_client(thief, mac_c, error_answer(403, "x", &t, 2)).size(),
              out.frame.size()) << "the reason is there, cut";
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_replayed), 1u);
    EXPECT_EQ(lab.shard().table().size(), 1u);
}

TEST(SfuAdmission, ReplayOnTheSameWorkerBeforeThePublicationIsSeenInItsTable) {
    SfuLab lab;
    const Token t = make_token("alice");
    EXPECT_TRUE(lab.request(alice, mac_a, signed_by(t)).verdict.transmits());
    // No publication yet: the worker's own table knows the leg.
    const auto out = lab.request(carol, mac_c, signed_by(t, 2));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame,
              to_client(carol, mac_c,
                        error_answer(403, "participant already joined from another address", &t,
                                     2, true, binding_request(signed_by(t, 2)).size())));
    EXPECT_EQ(lab.shard().table().size(), 1u);
}

TEST(SfuAdmission, ReplayOnAnotherWorkerSeenInTheMembership) {
    SfuLab lab(8, 4, 2);
    lab.admit(alice, mac_a, "alice", 0);
    const Token t = make_token("alice");
    const auto out = lab.request(carol, mac_c, signed_by(t, 3), 1);
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame,
              to_client(carol, mac_c,
                        error_answer(403, "participant already joined from another address", &t,
                                     3, true, binding_request(signed_by(t, 3)).size())));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_replayed, 1), 1u);
    EXPECT_EQ(lab.shard(1).table().size(), 0u);
}

TEST(SfuAdmission, ReplayRacingTheRealJoinIsRemovedByTheControlThread) {
    SfuLab lab(8, 4, 2);
    const Token t = make_token("alice");
    // Both workers admit before either join is published: neither can see the other's leg.
    EXPECT_TRUE(lab.request(alice, mac_a, signed_by(t), 0).verdict.transmits());
    EXPECT_TRUE(lab.request(carol, mac_c, signed_by(t), 1).verdict.transmits());
    using R = SfuMembershipBuilder::JoinResult;
    EXPECT_EQ(lab.publish(), (std::vector<R>{R::joined, R::replayed}));
    EXPECT_EQ(lab.shard(0).table().size(), 1u);
    EXPECT_EQ(lab.shard(1).table().size(), 0u) << "the first join wins";
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_replayed, 1), 1u);
    EXPECT_EQ(lab.shard(1).counters().legs_killed, 1u);
}

TEST(SfuAdmission, MalformedUsernameGets401) {
    SfuLab lab;
    for (const std::string username : {"alice", "1795531242:00C0FFEE12345678:alice",
                                       "1795531242:00c0ffee12345678:al ice", "x:y:z"}) {
        Request r{username, "whatever the key", false, true, 1};
        const auto out = lab.request(bob, mac_b, r);
        ASSERT_TRUE(out.verdict.transmits()) << username;
        EXPECT_EQ(out.frame,
                  to_client(bob, mac_b, error_answer(401, "malformed SFU token", nullptr)))
            << username;
        lab.now_ticks += ticks_per_second;
    }
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_token_malformed), 4u);
}

TEST(SfuAdmission, MissingUsernameOrIntegrityGets400) {
    SfuLab lab;
    const Token t = make_token("alice");
    for (const Request& r : {Request{std::nullopt, t.password, false, true, 1},
                             Request{t.username, std::nullopt, false, true, 1}}) {
        const auto out = lab.request(alice, mac_a, r);
        ASSERT_TRUE(out.verdict.transmits());
        EXPECT_EQ(out.frame,
                  to_client(alice, mac_a,
                            error_answer(400, "missing USERNAME or MESSAGE-INTEGRITY", nullptr, 1,
                                         true, binding_request(r).size())));
        lab.now_ticks += ticks_per_second;
    }
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_bad_request), 2u);
    EXPECT_EQ(lab.shard().table().size(), 0u);
}

TEST(SfuAdmission, NoAnswerIsLongerThanItsRequest) {
    SfuLab lab;
    // USERNAME alone, no FINGERPRINT: 20 + 4 + 8 = 32 bytes, so the 400 keeps 4 bytes of its
    // reason; a bare Binding request (20 bytes) cannot be answered at all.
    const auto cut = lab.request(alice, mac_a, Request{"abcdefg", std::nullopt, false, false, 1});
    ASSERT_TRUE(cut.verdict.transmits());
    EXPECT_EQ(cut.frame,
              to_client(alice, mac_a, error_answer(400, "miss", nullptr, 1, false)));
    const auto bare = lab.request(alice, mac_a, Request{std::nullopt, std::nullopt, false, false, 1});
    EXPECT_EQ(bare.verdict.action, Verdict::Action::drop);
    EXPECT_EQ(bare.verdict.reason, DropReason::sfu_unanswerable);
}

TEST(SfuAdmission, FullSessionGets403) {
    SfuLab lab(3, 2);
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const Token carol_token = make_token("carol");
    auto out = lab.request(carol, mac_c, signed_by(carol_token));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame,
              to_client(carol, mac_c, error_answer(403, "SFU session full", &carol_token)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_session_full), 1u);
    EXPECT_EQ(lab.shard().table().size(), 2u);
}

TEST(SfuAdmission, FullWorkerGets508) {
    SfuLab lab(2, 4);
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const Token t = make_token("carol");
    const auto out = lab.request(carol, mac_c, signed_by(t));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, to_client(carol, mac_c, error_answer(508, "SFU node out of capacity", &t)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_capacity), 1u);
}

TEST(SfuAdmission, DrainingRefusesANewLegWith508AndKeepsTheLegs) {
    SfuLab lab;
    const Token alice_token = make_token("alice");
    lab.admit(alice, mac_a, "alice");
    lab.set_draining(true);
    // A new leg: 508, signed as the token verified; no leg, no join for the control thread.
    const Token t = make_token("bob");
    const Request request = signed_by(t, 2);
    const auto out = lab.request(bob, mac_b, request);
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, to_client(bob, mac_b,
                                   error_answer(508, "SFU node draining", &t, 2, true,
                                                binding_request(request).size())));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_draining), 1u);
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_admitted), 1u);
    EXPECT_EQ(lab.shard().table().find(*FiveTuple::make(bob, sfu4)), SfuTable::no_slot);
    EXPECT_EQ(lab.shard().queued(), 0u);
    // An IPv6 one alike, with MESSAGE-INTEGRITY-SHA256: the drain is the node's, any family.
    const Token erin = make_token("erin");
    EXPECT_TRUE(lab.request(erin6, mac_d, {erin.username, erin.password, true, true, 3})
                    .verdict.transmits());
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_draining), 2u);
    // The leg admitted before: its keepalive (consent) is answered as ever.
    const auto keepalive = lab.request(alice, mac_a, signed_by(alice_token, 9));
    ASSERT_TRUE(keepalive.verdict.transmits());
    EXPECT_EQ(keepalive.frame, to_client(alice, mac_a, ack(alice, alice_token, 9)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_keepalive), 1u);
    // Undrained: the same request admits.
    lab.set_draining(false);
    const auto admitted = lab.request(bob, mac_b, request);
    ASSERT_TRUE(admitted.verdict.transmits());
    EXPECT_EQ(admitted.frame, to_client(bob, mac_b, ack(bob, t, 2)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_admitted), 2u);
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_draining), 2u);
}

TEST(SfuAdmission, SessionFullAcrossWorkersIsDecidedByTheControlThread) {
    SfuLab lab(8, 2, 2);
    // Two legs at once on two workers into a session that has one: each worker sees room.
    lab.admit(alice, mac_a, "alice", 0);
    EXPECT_TRUE(lab.request(bob, mac_b, signed_by(make_token("bob")), 0).verdict.transmits());
    EXPECT_TRUE(lab.request(carol, mac_c, signed_by(make_token("carol")), 1).verdict.transmits());
    using R = SfuMembershipBuilder::JoinResult;
    EXPECT_EQ(lab.publish(), (std::vector<R>{R::joined, R::full}));
    EXPECT_EQ(lab.shard(1).table().size(), 0u);
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_session_full, 1), 1u);
}

TEST(SfuAdmission, KeepaliveAndRetransmissionGetTheSameAnswer) {
    SfuLab lab;
    const Token t = make_token("alice");
    const auto first = lab.request(alice, mac_a, signed_by(t));
    ASSERT_TRUE(first.verdict.transmits());
    lab.publish();
    lab.now_ticks += 5 * ticks_per_second;
    // A retransmission: the same transaction.
    const auto again = lab.request(alice, mac_a, signed_by(t));
    EXPECT_EQ(again.frame, first.frame);
    // A keepalive: a new transaction.
    const auto keepalive = lab.request(alice, mac_a, signed_by(t, 9));
    ASSERT_TRUE(keepalive.verdict.transmits());
    EXPECT_EQ(keepalive.frame, to_client(alice, mac_a, ack(alice, t, 9)));
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_keepalive), 2u);
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_admitted), 1u);
    EXPECT_EQ(lab.shard().queued(), 0u) << "no second join";
    const std::uint32_t slot = lab.shard().table().find(*FiveTuple::make(alice, sfu4));
    EXPECT_EQ(lab.shard().table().at(slot).last_heard(), lab.now_ticks);
    // Another participant's token from a leg's 5-tuple.
    const Token other = make_token("bob");
    const auto taken = lab.request(alice, mac_a, signed_by(other, 4));
    EXPECT_EQ(taken.frame,
              to_client(alice, mac_a,
                        error_answer(403, "address already a leg of another participant", &other,
                                     4, true, binding_request(signed_by(other, 4)).size())));
}

TEST(SfuAdmission, AdmissionTheControlThreadCannotHearOfIsRefused) {
    // The outbox holds SfuShard::outbox_capacity messages; the control thread reads none here.
    SfuLab lab(SfuShard::outbox_capacity + 8, 2);
    for (std::size_t i = 0; i <= SfuShard::outbox_capacity; ++i) {
        const Token t = make_token("p", now_unix + 60, session_id + i);
        const stun::Address client =
            at("198.51.100.77", static_cast<std::uint16_t>(10000 + i));
        const auto out = lab.request(client, mac_a, signed_by(t));
        if (i < SfuShard::outbox_capacity) {
            ASSERT_TRUE(out.verdict.transmits()) << i;
        } else {
            EXPECT_EQ(out.verdict.reason, DropReason::sfu_join_backlog);
        }
    }
    EXPECT_EQ(lab.shard().table().size(), SfuShard::outbox_capacity) << "not admitted";
    EXPECT_EQ(drops(lab, DropReason::sfu_join_backlog), 1u);
}

TEST(SfuAdmission, UnauthenticatedFloodIsRateLimitedPerSourceIp) {
    SfuLab lab(8, 4, 1, 1, 2);  // 1 answer a second, 2 at once
    const Request garbage{"not a token", "key", false, true, 1};
    std::size_t answered = 0;
    for (int i = 0; i < 10; ++i) {
        const stun::Address from = at("198.51.100.66", static_cast<std::uint16_t>(4000 + i));
        if (lab.request(from, mac_d, garbage).verdict.transmits()) ++answered;
    }
    EXPECT_EQ(answered, 2u);
    EXPECT_EQ(drops(lab, DropReason::sfu_rate_limited), 8u);
    // Another source has its own bucket; a second later the flooder has one answer again.
    EXPECT_TRUE(lab.request(bob, mac_b, garbage).verdict.transmits());
    lab.now_ticks += ticks_per_second;
    EXPECT_TRUE(lab.request(at("198.51.100.66", 4000), mac_d, garbage).verdict.transmits());
    EXPECT_FALSE(lab.request(at("198.51.100.66", 4000), mac_d, garbage).verdict.transmits());
    // A valid token is never limited.
    for (int i = 0; i < 3; ++i) {
        const stun::Address from = at("198.51.100.66", static_cast<std::uint16_t>(5000 + i));
        EXPECT_TRUE(
            lab.request(from, mac_d, signed_by(make_token(std::string(1, static_cast<char>('p' + i))))).verdict.transmits());
    }
    EXPECT_TRUE(lab.counters().conserved());
}

TEST(SfuAdmission, ResponsesToTheNodesOwnProbesGoToTheControlThread) {
    SfuLab lab;
    Bytes buffer(64);
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::success_response,
                          txid(5));
    w.add_xor_address(stun::attr::xor_mapped_address, sfu4);
    buffer.resize(w.size());
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, buffer));
    EXPECT_TRUE(out.verdict.goes_to_control());
    EXPECT_EQ(lab.shard().counters().probe_answers, 1u);
    EXPECT_EQ(lab.counters().to_control, 1u);
}

// --- Forwarding ---

TEST(SfuForwarding, OneToOneRewritesTheFrameInPlace) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const Bytes media = rtp(0xA11CE);
    const auto out =
        lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, media, 0x4242, 0xB8));
    ASSERT_TRUE(out.verdict.transmits());
    // From the SFU address to bob's 5-tuple and MAC; identification and DSCP/ECN kept.
    const Bytes expected = build_udp_frame(engine_mac, mac_b, sfu4, bob, media, 0x4242, 0xB8);
    EXPECT_EQ(out.frame, expected);
    // And the checksums verify on their own.
    EXPECT_EQ(ipv4_header_checksum({out.frame.data() + 14, 20}), 0);
    EXPECT_EQ(transport_checksum({out.frame.data() + 26, 8}, 17,
                                 {out.frame.data() + 34, out.frame.size() - 34}),
              0);
    // And back.
    const Bytes reply = text("\x81 an opaque media frame of the ladder");
    const auto back = lab.send(build_udp_frame(mac_b, engine_mac, bob, sfu4, reply, 7));
    ASSERT_TRUE(back.verdict.transmits());
    EXPECT_EQ(back.frame, build_udp_frame(engine_mac, mac_a, sfu4, alice, reply, 7));
    const std::uint32_t slot = lab.shard().table().find(*FiveTuple::make(alice, sfu4));
    EXPECT_EQ(lab.shard().table().at(slot).counters().forwarded_packets, 1u);
    EXPECT_EQ(lab.shard().table().at(slot).counters().forwarded_bytes, media.size());
    EXPECT_TRUE(lab.counters().conserved());
}

TEST(SfuForwarding, LegsCarryOnWhileTheNodeDrains) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    lab.set_draining(true);
    const Bytes media = rtp(0xA11CE);
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, media, 0x4242));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, build_udp_frame(engine_mac, mac_b, sfu4, bob, media, 0x4242));
    const Bytes reply = text("\x81 an opaque media frame of the ladder");
    const auto back = lab.send(build_udp_frame(mac_b, engine_mac, bob, sfu4, reply, 7));
    ASSERT_TRUE(back.verdict.transmits());
    EXPECT_EQ(back.frame, build_udp_frame(engine_mac, mac_a, sfu4, alice, reply, 7));
    // A third participant's admission is what the drain stops; it forwards nothing.
    EXPECT_TRUE(lab.request(carol, mac_c, signed_by(make_token("carol"))).verdict.transmits());
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_draining), 1u);
    const auto again = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, media, 0x4243));
    ASSERT_TRUE(again.verdict.transmits()) << "still one subscriber: bob";
    EXPECT_EQ(again.frame, build_udp_frame(engine_mac, mac_b, sfu4, bob, media, 0x4243));
    EXPECT_TRUE(lab.counters().conserved());
}

TEST(SfuForwarding, PartialChecksumFromAVethIsSummedWhole) {
    // rx_checksum = trust (a veth behind net_af_packet): the UDP checksum field holds the
    // pseudo-header's sum alone (CHECKSUM_PARTIAL), nothing to update from; the copy's
    // checksum must be the whole one, as a receiving kernel checks it.
    SfuLab lab;
    lab.port().rx_checksum = RxChecksum::trust;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const Bytes media = rtp(0xA11CE);
    Bytes in = build_udp_frame(mac_a, engine_mac, alice, sfu4, media, 0x4242, 0xB8);
    in[40] = std::byte{0x12};  // any partial sum: the handler must not start from it
    in[41] = std::byte{0x34};
    const auto out = lab.send(in);
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, build_udp_frame(engine_mac, mac_b, sfu4, bob, media, 0x4242, 0xB8));
    EXPECT_EQ(transport_checksum({out.frame.data() + 26, 8}, 17,
                                 {out.frame.data() + 34, out.frame.size() - 34}),
              0);
    EXPECT_TRUE(lab.counters().conserved());
}

TEST(SfuForwarding, FanOutToEveryOtherLegWithoutTouchingThePayload) {
    SfuLab lab(8, 4, 2);
    lab.admit(alice, mac_a, "alice", 0);
    lab.admit(bob, mac_b, "bob", 0);
    lab.admit(carol, mac_c, "carol", 1);  // another worker's leg: from the membership
    lab.admit(dave, mac_d, "dave", 0);
    const Bytes media = rtp(0xA11CE, 77, 100);
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, media, 0x99));
    ASSERT_TRUE(out.verdict.fans_out());
    const SfuFanOut& fan = lab.shard().fan_out();
    ASSERT_EQ(fan.count, 2u);
    EXPECT_EQ(fan.payload_length, media.size());
    // Each copy: its header, then the one payload (the frame's own, after its header).
    std::vector<Bytes> copies;
    for (const SfuDestination& d : fan.copies()) {
        Bytes copy(d.header.begin(), d.header.begin() + d.header_length);
        copy.insert(copy.end(), out.frame.begin() + fan.payload_offset, out.frame.end());
        copies.push_back(copy);
    }
    copies.push_back(out.frame);
    const std::vector<Bytes> expected = {
        build_udp_frame(engine_mac, mac_b, sfu4, bob, media, 0x99),
        build_udp_frame(engine_mac, mac_c, sfu4, carol, media, 0x99),
        build_udp_frame(engine_mac, mac_d, sfu4, dave, media, 0x99)};
    EXPECT_EQ(copies, expected);
    EXPECT_EQ(lab.counters().fan_out_copies, 2u);
    EXPECT_EQ(lab.shard().counters().fan_outs, 1u);
    EXPECT_EQ(lab.shard().counters().forwarded_packets, 3u);
    EXPECT_TRUE(lab.counters().conserved());
}

TEST(SfuForwarding, Ipv4ToAnIpv6SubscriberUsesTheHeadroom) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(erin6, mac_b, "erin");
    const Bytes media = rtp(1);
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, media, 0x10, 0x28));
    ASSERT_TRUE(out.verdict.transmits());
    EXPECT_EQ(out.frame, build_udp_frame(engine_mac, mac_b, sfu6, erin6, media, 0, 0x28));
}

TEST(SfuForwarding, PausedPublisherAndSsrcSelection) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    lab.admit(carol, mac_c, "carol");
    // bob pauses alice; carol takes only SSRC 0x22 (of RTP; RTCP passes).
    ASSERT_TRUE(lab.builder().pause(session_id, "bob", "alice", true));
    ASSERT_TRUE(lab.builder().select(session_id, "carol", {0x22}));
    lab.republish();
    const auto to_nobody = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(0x11)));
    EXPECT_EQ(to_nobody.verdict.action, Verdict::Action::drop);
    EXPECT_EQ(to_nobody.verdict.reason, DropReason::sfu_filtered);
    const auto to_carol = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(0x22)));
    ASSERT_TRUE(to_carol.verdict.transmits());
    EXPECT_EQ(to_carol.frame, build_udp_frame(engine_mac, mac_c, sfu4, carol, rtp(0x22)));
    const auto report = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtcp(0x11)));
    ASSERT_TRUE(report.verdict.transmits()) << "RTCP is not filtered by SSRC";
    EXPECT_EQ(report.frame, build_udp_frame(engine_mac, mac_c, sfu4, carol, rtcp(0x11)));
    // bob still hears carol, and after resume alice too.
    const auto from_carol = lab.send(build_udp_frame(mac_c, engine_mac, carol, sfu4, rtp(0x33)));
    ASSERT_TRUE(from_carol.verdict.fans_out());
    ASSERT_TRUE(lab.builder().pause(session_id, "bob", "alice", false));
    lab.republish();
    const auto resumed = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(0x11)));
    ASSERT_TRUE(resumed.verdict.transmits());
    EXPECT_EQ(resumed.frame, build_udp_frame(engine_mac, mac_b, sfu4, bob, rtp(0x11)));
    const std::uint32_t slot = lab.shard().table().find(*FiveTuple::make(alice, sfu4));
    // bob paused alice (0x11, 0x22, RTCP); carol did not select 0x11 (twice).
    EXPECT_EQ(lab.shard().table().at(slot).counters().filtered, 5u);
    EXPECT_EQ(drops(lab, DropReason::sfu_filtered), 1u);
}

TEST(SfuForwarding, DatagramFromANonLegIsDropped) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    // Alice's address from another port is another 5-tuple.
    const auto out =
        lab.send(build_udp_frame(mac_a, engine_mac, at("198.51.100.10", 6001), sfu4, rtp(1)));
    EXPECT_EQ(out.verdict.action, Verdict::Action::drop);
    EXPECT_EQ(out.verdict.reason, DropReason::sfu_not_a_leg);
    EXPECT_EQ(drops(lab, DropReason::sfu_not_a_leg), 1u);
}

TEST(SfuForwarding, LegAloneHasNoSubscriber) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1)));
    EXPECT_EQ(out.verdict.reason, DropReason::sfu_no_subscriber);
}

TEST(SfuForwarding, CopyOverTheMtuIsUnforwardable) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    lab.port().mtu = 100;  // IPv4 20 + UDP 8 + 73 bytes of RTP: one over
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1, 1, 61)));
    EXPECT_EQ(out.verdict.reason, DropReason::sfu_unforwardable);
    EXPECT_EQ(lab.shard().counters().unforwardable, 1u);
    EXPECT_TRUE(lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1, 1, 60)))
                    .verdict.transmits());
}

TEST(SfuForwarding, ForwardingAllocatesNothing) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    lab.admit(carol, mac_c, "carol");
    const Bytes frame = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1));
    const Bytes keepalive = build_udp_frame(mac_a, engine_mac, alice, sfu4,
                                            binding_request(signed_by(make_token("alice"))));
    EXPECT_TRUE(lab.send(frame).verdict.fans_out());
    EXPECT_EQ(lab.last_allocations, 0u);
    EXPECT_TRUE(lab.send(keepalive).verdict.transmits());
    EXPECT_EQ(lab.last_allocations, 0u);
    EXPECT_EQ(outcome(lab, SfuOutcome::sfu_keepalive), 1u);
}

// The express lane (sfu_express_ipv4()) decides as the general path does: the same verdicts,
// frames, fan-out scratch and counters for media it takes (1:1, fan-out, Ethernet padding, no
// UDP checksum, a non-leg) and for frames it declines (a bad IPv4 header checksum, a
// fragment, STUN's first byte).
TEST(SfuForwarding, ExpressLaneDecidesAsTheGeneralPath) {
    SfuLab express, general, lane;
    for (SfuLab* lab : {&express, &general, &lane}) {
        lab->admit(alice, mac_a, "alice");
        lab->admit(bob, mac_b, "bob");
    }
    Bytes padded = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(3, 1, 1));
    padded.resize(padded.size() + 12, std::byte{0xEE});  // Ethernet padding
    Bytes no_checksum = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(4));
    stun::store_be16(no_checksum.data() + 40, 0);
    Bytes bad_ip_checksum = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(5));
    bad_ip_checksum[24] ^= std::byte{1};
    Bytes fragment = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(6));
    stun::store_be16(fragment.data() + 20, 0x2000);  // more fragments
    stun::store_be16(fragment.data() + 24, 0);
    stun::store_be16(fragment.data() + 24, ipv4_header_checksum({fragment.data() + 14, 20}));
    const std::vector<Bytes> frames = {
        build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1), 0x4242, 0xB8),
        build_udp_frame(mac_b, engine_mac, bob, sfu4, text("\x81 opaque")),
        build_udp_frame(mac_c, engine_mac, carol, sfu4, rtp(2)),  // not a leg
        padded,
        no_checksum,
        bad_ip_checksum,
        fragment,
        build_udp_frame(mac_a, engine_mac, alice, sfu4,
                        binding_request(signed_by(make_token("alice")))),
        // The addresses (PortContext::ipv4_addresses_ok()): not ours; from loopback, a
        // multicast group, 0.0.0.0 and the port's own address.
        build_udp_frame(mac_a, engine_mac, alice, at("192.0.2.9", sfu_port), rtp(8)),
        build_udp_frame(mac_a, engine_mac, at("127.0.0.1", 5000), sfu4, rtp(9)),
        build_udp_frame(mac_a, engine_mac, at("224.0.0.5", 5000), sfu4, rtp(10)),
        build_udp_frame(mac_a, engine_mac, at("0.0.0.0", 5000), sfu4, rtp(11)),
        build_udp_frame(mac_a, engine_mac, at("192.0.2.1", 5000), sfu4, rtp(12)),
    };
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const auto a = express.send(frames[i]);
        const auto b = general.send(frames[i], 0, true);
        const auto c = lane.send_lane(frames[i]);
        EXPECT_EQ(a.verdict.action, b.verdict.action) << "frame " << i;
        EXPECT_EQ(a.verdict.reason, b.verdict.reason) << "frame " << i;
        EXPECT_EQ(a.frame, b.frame) << "frame " << i;
        EXPECT_EQ(c.verdict.action, b.verdict.action) << "frame " << i;
        EXPECT_EQ(c.verdict.reason, b.verdict.reason) << "frame " << i;
        EXPECT_EQ(c.frame, b.frame) << "frame " << i;
    }
    for (SfuLab* lab : {&express, &general, &lane}) lab->admit(carol, mac_c, "carol");
    // A fan-out (the planned lane's, forward_planned_ipv4()), with and without a checksum,
    // with padding, a TOS and an id.
    const std::vector<Bytes> fanned = {
        build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(7)),
        build_udp_frame(mac_b, engine_mac, bob, sfu4, rtp(8), 0x1234, 0x2E),
        no_checksum,
        padded,
    };
    for (std::size_t i = 0; i < fanned.size(); ++i) {
        const auto b = general.send(fanned[i], 0, true);
        ASSERT_TRUE(b.verdict.fans_out()) << "frame " << i;
        for (SfuLab* lab : {&express, &lane}) {
            const auto a = lab == &express ? lab->send(fanned[i]) : lab->send_lane(fanned[i]);
            ASSERT_TRUE(a.verdict.fans_out()) << "frame " << i;
            EXPECT_EQ(a.frame, b.frame) << "frame " << i;
            const SfuFanOut& x = lab->shard().fan_out();
            const SfuFanOut& y = general.shard().fan_out();
            ASSERT_EQ(x.count, y.count);
            ASSERT_EQ(x.count, 1u);
            EXPECT_EQ(x.payload_offset, y.payload_offset);
            EXPECT_EQ(x.payload_length, y.payload_length);
            const SfuDestination& p = x.copies()[0];
            const SfuDestination& q = y.copies()[0];
            EXPECT_EQ(Bytes(p.header.begin(), p.header.begin() + p.header_length),
                      Bytes(q.header.begin(), q.header.begin() + q.header_length))
                << "frame " << i;
        }
    }
    const CoreCounters& d = general.counters();
    for (SfuLab* lab : {&express, &lane}) {
        EXPECT_EQ(lab->shard().counters().forwarded_packets,
                  general.shard().counters().forwarded_packets);
        EXPECT_EQ(lab->shard().counters().forwarded_bytes,
                  general.shard().counters().forwarded_bytes);
        EXPECT_EQ(lab->shard().counters().fan_outs, general.shard().counters().fan_outs);
        const CoreCounters& c = lab->counters();
        EXPECT_EQ(c.rx_packets, d.rx_packets);
        EXPECT_EQ(c.tx_packets, d.tx_packets);
        EXPECT_EQ(c.tx_bytes, d.tx_bytes);
        EXPECT_EQ(c.fan_out_copies, d.fan_out_copies);
        EXPECT_EQ(c.drops, d.drops);
        EXPECT_TRUE(c.conserved());
        EXPECT_EQ(drops(*lab, DropReason::sfu_not_a_leg), 1u);
        EXPECT_EQ(drops(*lab, DropReason::bad_ipv4_checksum), 1u);
        EXPECT_EQ(drops(*lab, DropReason::ip_fragment), 1u);
        EXPECT_EQ(drops(*lab, DropReason::not_for_us_l3), 1u);
        EXPECT_EQ(drops(*lab, DropReason::bad_source_address), 4u);
    }
}

// The burst lane (sfu_look_ahead()): each frame the express lane takes passes its checks, with
// its 5-tuple, the slot the index names for it and its Ethernet padding trimmed; anything else
// does not pass (the worker hands it to handle_frame()). sfu_express_ahead() takes a hint only
// where the leg there is the frame's, so that a wrong or stale one changes nothing.
TEST(SfuForwarding, LookAheadChecksEachFrameAndHintsItsLeg) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const SfuTable& table = lab.shard().table();
    const std::uint32_t alice_slot = table.find(FiveTuple::make(alice, sfu4).value());
    const std::uint32_t bob_slot = table.find(FiveTuple::make(bob, sfu4).value());
    ASSERT_NE(alice_slot, SfuTable::no_slot);
    ASSERT_NE(bob_slot, SfuTable::no_slot);
    Bytes other_port = build_udp_frame(mac_a, engine_mac, alice, at("192.0.2.1", 3478), rtp(1));
    Bytes short_frame = build_udp_frame(mac_b, engine_mac, bob, sfu4, rtp(2));
    short_frame.resize(40);
    Bytes padded = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(5));
    padded.resize(padded.size() + 12, std::byte{0xEE});
    Bytes bad_ip_checksum = build_udp_frame(mac_b, engine_mac, bob, sfu4, rtp(6));
    bad_ip_checksum[24] ^= std::byte{1};
    const std::vector<Bytes> burst = {
        build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1)),
        build_udp_frame(mac_b, engine_mac, bob, sfu4, rtp(2)),
        build_udp_frame(mac_c, engine_mac, carol, sfu4, rtp(3)),  // not a leg: passes
        other_port,
        short_frame,
        build_udp_frame(mac_a, engine_mac, at("2001:db8::7", 5000), sfu6, rtp(4)),  // IPv6
        padded,
        bad_ip_checksum,
        build_udp_frame(mac_a, engine_mac, alice, sfu4,
                        binding_request(signed_by(make_token("alice")))),  // STUN
    };
    const SfuLab::Ahead seen = lab.look_ahead(burst);
    std::vector<bool> passed;
    std::vector<std::uint32_t> slots;
    for (const SfuAhead& a : seen.ahead) {
        passed.push_back(a.express);
        slots.push_back(a.slot);
    }
    EXPECT_EQ(passed,
              (std::vector<bool>{true, true, true, false, false, false, true, false, false}));
    constexpr std::uint32_t none = SfuTable::no_slot;
    EXPECT_EQ(slots, (std::vector<std::uint32_t>{alice_slot, bob_slot, none, none, none, none,
                                                 alice_slot, none, none}));
    EXPECT_TRUE(seen.ahead[0].key == FiveTuple::make(alice, sfu4).value());
    EXPECT_TRUE(seen.ahead[2].key == FiveTuple::make(carol, sfu4).value());
    for (std::size_t i = 0; i < burst.size(); ++i) {
        const std::size_t trimmed = i == 6 ? burst[i].size() - 12 : burst[i].size();
        EXPECT_EQ(seen.lengths[i], trimmed) << "frame " << i;
    }
    // Right, wrong (another leg's), free and none: the same copy to bob each time.
    const Bytes media = build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(9));
    const Bytes expected = to_client(bob, mac_b, rtp(9));
    for (const std::uint32_t hint : {alice_slot, bob_slot, std::uint32_t{7}, SfuTable::no_slot}) {
        const auto out = lab.send_lane(media, hint);
        ASSERT_TRUE(out.verdict.transmits()) << "hint " << hint;
        EXPECT_EQ(out.frame, expected) << "hint " << hint;
    }
    // The single-frame express lane takes the prepared port's media (not the general path).
    {
        Bytes bytes = media;
        Frame f;
        f.data = bytes.data();
        f.length = static_cast<std::uint16_t>(bytes.size());
        f.capacity = f.length;
        SfuState state{lab.context(), lab.shard(), lab.membership(), lab.now_ticks, lab.now_s};
        Verdict verdict;
        EXPECT_TRUE(sfu_express_ipv4(f, lab.port(), lab.counters(), state, verdict));
        EXPECT_TRUE(verdict.transmits());
        EXPECT_EQ(Bytes(f.data, f.data + f.length), expected);
    }
    EXPECT_EQ(table.at(alice_slot).counters().forwarded_packets, 5u);
    // A hint for a frame that is no leg's finds nothing either.
    const auto stray = lab.send_lane(burst[2], alice_slot);
    EXPECT_FALSE(stray.verdict.transmits());
    EXPECT_EQ(drops(lab, DropReason::sfu_not_a_leg), 1u);
    EXPECT_TRUE(lab.counters().conserved());
}

// The forwarder's general path (a leg no plan names yet) finds the leg's session among many
// by interpolating on the id (sfu_role.cc, find_session()): ids bunched at both ends of the
// range and spread between, so that the guesses land far off, must still find every session,
// and miss one that is not published.
TEST(SfuForwarding, EverySessionFoundAmongManyUnevenlySpreadIds) {
    constexpr unsigned sessions = 48;
    SfuLab lab(3 * sessions + 1, 3);
    auto id_of = [](unsigned s) -> std::uint64_t {
        if (s < 16) return s + 1;                                 // 1..16
        if (s < 32) return 0xFFFFFFFFFFFFFF00ull + s;             // the top
        return 0x0000100000000000ull * (s - 31) + (s & 1) * 7;   // between
    };
    auto client = [](unsigned s, unsigned leg) {
        return at("198.51.100." + std::to_string(1 + s), static_cast<std::uint16_t>(6000 + leg));
    };
    for (unsigned s = 0; s < sessions; ++s) {
        for (unsigned leg = 0; leg < 2; ++leg) {
            const Token t = make_token(leg == 0 ? "a" : "b", now_unix + 3600, id_of(s));
            ASSERT_TRUE(lab.request(client(s, leg), mac_a, signed_by(t)).verdict.transmits());
        }
    }
    lab.publish();
    for (unsigned s = 0; s < sessions; ++s) {
        const Bytes media = rtp(s);
        const auto out = lab.send(build_udp_frame(mac_a, engine_mac, client(s, 0), sfu4, media));
        ASSERT_TRUE(out.verdict.transmits()) << "session " << s;
        EXPECT_EQ(out.frame, to_client(client(s, 1), mac_a, media)) << "session " << s;
    }
    // A third leg in each, admitted but not published: no plan names it, its session is found.
    for (unsigned s = 0; s < sessions; ++s) {
        const Token t = make_token("c", now_unix + 3600, id_of(s));
        ASSERT_TRUE(lab.request(client(s, 2), mac_a, signed_by(t)).verdict.transmits());
        const Bytes media = rtp(s);
        const auto out = lab.send(build_udp_frame(mac_a, engine_mac, client(s, 2), sfu4, media));
        ASSERT_TRUE(out.verdict.fans_out()) << "session " << s;
        EXPECT_EQ(out.frame, to_client(client(s, 1), mac_a, media)) << "session " << s;
    }
    // A leg admitted but not yet published: its session is in no membership.
    const Token late = make_token("a", now_unix + 3600, 0x0000100000000000ull * 3 + 1);
    ASSERT_TRUE(
        lab.request(at("198.51.100.200", 6000), mac_a, signed_by(late)).verdict.transmits());
    EXPECT_FALSE(
        lab.send(build_udp_frame(mac_a, engine_mac, at("198.51.100.200", 6000), sfu4, rtp(1)))
            .verdict.transmits());
    EXPECT_EQ(drops(lab, DropReason::sfu_no_subscriber), 1u);
}

// A leg's forwarding plan (SfuMembership::plan()) is found by its worker and slot: a leg no
// plan names yet takes the general path, a slot reused since the publish is not taken for the
// plan of the leg that had it, and the pauses a plan applied are for its publisher's name.
TEST(SfuForwarding, LegNoPlanNamesYetReachesThePublishedMembers) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    // carol admitted, her join not yet published: no plan, her session's members are.
    ASSERT_TRUE(lab.request(carol, mac_c, signed_by(make_token("carol"))).verdict.transmits());
    const Bytes media = rtp(0xCA201);
    const auto out = lab.send(build_udp_frame(mac_c, engine_mac, carol, sfu4, media, 0x77));
    ASSERT_TRUE(out.verdict.fans_out());
    const SfuFanOut& fan = lab.shard().fan_out();
    ASSERT_EQ(fan.count, 1u);
    const SfuDestination& d = fan.copies()[0];
    Bytes copy(d.header.begin(), d.header.begin() + d.header_length);
    copy.insert(copy.end(), out.frame.begin() + fan.payload_offset, out.frame.end());
    EXPECT_EQ(copy, build_udp_frame(engine_mac, mac_a, sfu4, alice, media, 0x77));
    EXPECT_EQ(out.frame, build_udp_frame(engine_mac, mac_b, sfu4, bob, media, 0x77));
}

TEST(SfuForwarding, SlotReusedBeforeThePublishIsNotTakenForTheOldPlan) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const FiveTuple alice_key = *FiveTuple::make(alice, sfu4);
    SfuKill kill;
    kill.key = alice_key;
    kill.slot = lab.shard().table().find(alice_key);
    auto kill_alice = [&] { ASSERT_TRUE(kill_leg(lab.shard(), kill)); };
    kill_alice();
    // alice's 5-tuple with a token of another session takes her slot (the free list is a
    // stack) before the control thread has published her leave: her plan (to bob) is not
    // this leg's, whose session has no member.
    const Token other = make_token("alice", now_unix + 3600, session_id + 1);
    ASSERT_TRUE(lab.request(alice, mac_a, signed_by(other)).verdict.transmits());
    ASSERT_EQ(lab.shard().table().find(alice_key), kill.slot);
    EXPECT_EQ(lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1))).verdict.reason,
              DropReason::sfu_no_subscriber);
    // dave of alice's session from another 5-tuple in the same slot: the general path's
    // choice, the published members but himself (alice's departure not yet published).
    kill_alice();
    ASSERT_TRUE(lab.request(dave, mac_d, signed_by(make_token("dave"))).verdict.transmits());
    ASSERT_EQ(lab.shard().table().find(*FiveTuple::make(dave, sfu4)), kill.slot);
    const Bytes media = rtp(0xDA7E);
    const auto out = lab.send(build_udp_frame(mac_d, engine_mac, dave, sfu4, media));
    ASSERT_TRUE(out.verdict.fans_out());
    EXPECT_EQ(lab.shard().fan_out().count, 1u);
    EXPECT_EQ(out.frame, build_udp_frame(engine_mac, mac_b, sfu4, bob, media));
}

TEST(SfuForwarding, PausesOfAPlanAreForItsPublishersName) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    lab.admit(carol, mac_c, "carol");
    ASSERT_TRUE(lab.builder().pause(session_id, "bob", "alice", true));
    lab.republish();
    const FiveTuple alice_key = *FiveTuple::make(alice, sfu4);
    SfuKill kill;
    kill.key = alice_key;
    kill.slot = lab.shard().table().find(alice_key);
    ASSERT_TRUE(kill_leg(lab.shard(), kill));
    // erin, of the same session, on alice's 5-tuple and in her slot, before the publish:
    // the plan's key and session are hers, but bob paused alice, not erin.
    ASSERT_TRUE(lab.request(alice, mac_a, signed_by(make_token("erin"))).verdict.transmits());
    ASSERT_EQ(lab.shard().table().find(alice_key), kill.slot);
    const Bytes media = rtp(0xE);
    const auto out = lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, media));
    ASSERT_TRUE(out.verdict.fans_out());
    EXPECT_EQ(out.frame, build_udp_frame(engine_mac, mac_c, sfu4, carol, media));
    EXPECT_EQ(lab.shard().table().at(kill.slot).counters().filtered, 0u);
}

// --- Expiry ---

TEST(SfuExpiry, LegExpiresAfterSilenceAndLeaves) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    lab.admit(bob, mac_b, "bob");
    const std::uint64_t start = lab.now_ticks;
    // Bob keeps talking; alice falls silent.
    lab.now_ticks = start + (leg_timeout_s - 1) * ticks_per_second;
    ASSERT_TRUE(lab.send(build_udp_frame(mac_b, engine_mac, bob, sfu4, rtp(2))).verdict.transmits());
    lab.now_ticks = start + leg_timeout_s * ticks_per_second - 1;
    EXPECT_EQ(sweep(lab.shard(), lab.context(), lab.now_ticks, 64), 0u);
    lab.now_ticks += 1;
    EXPECT_EQ(sweep(lab.shard(), lab.context(), lab.now_ticks, 64), 1u);
    EXPECT_EQ(lab.shard().counters().legs_expired, 1u);
    const SfuMessage* leave = lab.shard().peek();
    ASSERT_NE(leave, nullptr);
    EXPECT_EQ(leave->kind, SfuMessage::Kind::leave);
    EXPECT_EQ(leave->participant.view(), "alice");
    lab.publish();
    ASSERT_EQ(lab.builder().sessions().at(session_id).members.size(), 1u);
    // Alice's datagrams are a stranger's now, and bob has nobody to send to.
    EXPECT_EQ(lab.send(build_udp_frame(mac_a, engine_mac, alice, sfu4, rtp(1))).verdict.reason,
              DropReason::sfu_not_a_leg);
    EXPECT_EQ(lab.send(build_udp_frame(mac_b, engine_mac, bob, sfu4, rtp(2))).verdict.reason,
              DropReason::sfu_no_subscriber);
    // Alice may come back with her token.
    lab.admit(alice, mac_a, "alice");
}

TEST(SfuExpiry, OperatorKillRemovesTheLeg) {
    SfuLab lab;
    lab.admit(alice, mac_a, "alice");
    const FiveTuple key = *FiveTuple::make(alice, sfu4);
    SfuKill kill;
    kill.key = key;
    kill.slot = lab.shard().table().find(key);
    SfuKill stale = kill;
    stale.key = *FiveTuple::make(bob, sfu4);
    EXPECT_FALSE(kill_leg(lab.shard(), stale));
    EXPECT_TRUE(kill_leg(lab.shard(), kill));
    EXPECT_EQ(lab.shard().table().size(), 0u);
    EXPECT_EQ(lab.shard().counters().legs_killed, 1u);
    lab.publish();
    EXPECT_TRUE(lab.builder().sessions().empty());
}

}  // namespace
}  // namespace engine
