// SfuRung (punch/sfu_rung.h) on an injected clock against nodes the test plays by hand: each
// admission request is parsed and checked as a node checks it (docs/sfu.md, "Admission"), and
// the node's answers (ACK, 401/403/508, forgeries, its own Binding requests from behind a NAT)
// are built byte by byte with the stun codec.
#include "punch/sfu_rung.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "stun/attributes.h"
#include "stun/crypto.h"
#include "stun/integrity.h"
#include "stun/sfu_token.h"
#include "stun/writer.h"

namespace punch {
namespace {

using std::chrono::milliseconds;

const std::string username = "1795531242:00c0ffee12345678:alice";
const std::string password = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG=";  // 44
const std::string other_password = "ZZZ3456789abcdefghijklmnopqrstuvwxyzABCDEFG=";

std::span<const std::byte> key(const std::string& p) {
    return std::as_bytes(std::span<const char>(p.data(), p.size()));
}

stun::Address v4(std::uint32_t ip, std::uint16_t port) { return stun::Address::v4(ip, port); }

const stun::Address node1 = v4(0xCB007105, 3480);  // 203.0.113.5
const stun::Address node2 = v4(0xCB007106, 3480);  // 203.0.113.6
const stun::Address node3 = v4(0xCB007107, 3480);  // 203.0.113.7
const stun::Address us = v4(0xC6336409, 6000);     // 198.51.100.9

SfuOffer candidate(std::uint64_t id, const stun::Address& a) {
    return SfuOffer{id, a, "none", "eu-west", 10};
}

// What a node checks of an admission request: a Binding request, our token's USERNAME,
// MESSAGE-INTEGRITY with the token password, FINGERPRINT.
stun::Message admission(const Outgoing& o) {
    stun::Message m;
    EXPECT_EQ(stun::Message::parse(o.bytes, m), stun::ParseError::ok);
    EXPECT_EQ(m.method(), static_cast<std::uint16_t>(stun::Method::binding));
    EXPECT_EQ(m.message_class(), stun::MessageClass::request);
    const auto name = m.find(stun::attr::username);
    std::string_view text;
    EXPECT_TRUE(name && stun::decode_text(*name, text) == stun::ParseError::ok);
    EXPECT_EQ(text, username);
    EXPECT_EQ(stun::verify_message_integrity(m, key(password)), stun::IntegrityResult::ok);
    EXPECT_EQ(stun::verify_fingerprint(m), stun::IntegrityResult::ok);
    return m;
}

// The node's ACK (docs/sfu.md): success, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT.
std::vector<std::byte> ack(const stun::Message& request, const std::string& with = password,
                           bool integrity = true) {
    std::array<std::byte, 512> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::success_response,
                          request.transaction_id());
    w.add_xor_address(stun::attr::xor_mapped_address, us);
    if (integrity) w.add_message_integrity(key(with));
    w.add_fingerprint();
    const auto bytes = w.finish();
    return {bytes.begin(), bytes.end()};
}

std::vector<std::byte> refusal(const stun::Message& request, std::uint16_t code,
                               std::string_view reason, const std::string* signed_with) {
    std::array<std::byte, 512> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::error_response,
                          request.transaction_id());
    w.add_error_code(code, reason);
    if (signed_with) w.add_message_integrity(key(*signed_with));
    w.add_fingerprint();
    const auto bytes = w.finish();
    return {bytes.begin(), bytes.end()};
}

// The node's own Binding request towards us (from behind its NAT).
std::vector<std::byte> node_request(const std::string& name, const std::string& with,
                                    stun::TransactionId& id) {
    EXPECT_TRUE(stun::random_bytes(id));
    std::array<std::byte, 512> buffer{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request, id);
    w.add_text(stun::attr::username, name);
    w.add_message_integrity(key(with));
    w.add_fingerprint();
    const auto bytes = w.finish();
    return {bytes.begin(), bytes.end()};
}

class SfuRungTest : public ::testing::Test {
protected:
    SfuRung make(std::vector<SfuOffer> candidates, std::uint32_t race = 1) {
        SfuRungConfig c;
        c.race = race;
        return SfuRung(c, username, password, std::move(candidates));
    }
    // Runs the rung's timers up to `until`, collecting what it sends.
    std::vector<Outgoing> run(SfuRung& rung, Time until) {
        std::vector<Outgoing> sent;
        while (auto at = rung.next_timer()) {
            if (*at > until) break;
            now_ = std::max(now_, *at);
            for (auto& o : rung.on_timer(now_)) sent.push_back(std::move(o));
        }
        now_ = until;
        return sent;
    }
    Time now_{0};
};

TEST_F(SfuRungTest, TheAckBringsTheLegUpAndBothLegsUpBringTheRungUp) {
    SfuRung rung = make({candidate(3, node1)});
    const auto first = rung.start(now_);
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].to, node1);
    const stun::Message request = admission(first[0]);
    now_ += milliseconds(12);
    EXPECT_TRUE(rung.claims(node1, ack(request)));
    EXPECT_TRUE(rung.on_datagram(node1, ack(request), now_).empty());
    const auto events = rung.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].node_id, 3u);
    EXPECT_TRUE(events[0].up);
    // Ours is up; the rung waits for the peer's.
    EXPECT_EQ(rung.state(), SfuRungState::trying);
    EXPECT_EQ(rung.chosen(), nullptr);
    rung.on_peer_leg(3, true, now_);
    ASSERT_EQ(rung.state(), SfuRungState::up);
    ASSERT_NE(rung.chosen(), nullptr);
    EXPECT_EQ(rung.chosen()->node.node_id, 3u);
    EXPECT_EQ(rung.media_address(), node1);
    EXPECT_EQ(rung.legs()[0].up_after, milliseconds(12));
    EXPECT_EQ(rung.legs()[0].rtt, milliseconds(12));
    EXPECT_EQ(rung.legs()[0].mapped, us);
    EXPECT_EQ(rung.legs()[0].outcome, "ok");
}

TEST_F(SfuRungTest, AdmissionRetransmitsOnADoublingScheduleAndTimesOut) {
    SfuRung rung = make({candidate(3, node1)});
    std::vector<Time> sent_at;
    for (const auto& o : rung.start(now_)) {
        admission(o);
        sent_at.push_back(now_);
    }
    while (auto at = rung.next_timer()) {
        now_ = *at;
        for (const auto& o : rung.on_timer(now_)) {
            EXPECT_EQ(o.to, node1);
            sent_at.push_back(now_);
        }
    }
    // RFC 8489 §6.2.1 from 100 ms, doubling, capped at 400 ms, within the 2 s timeout.
    const std::vector<Time> expected = {milliseconds(0),    milliseconds(100),
                                        milliseconds(300),  milliseconds(700),
                                        milliseconds(1100), milliseconds(1500),
                                        milliseconds(1900)};
    EXPECT_EQ(sent_at, expected);
    EXPECT_EQ(now_, milliseconds(2000));
    EXPECT_EQ(rung.state(), SfuRungState::failed);
    EXPECT_EQ(rung.legs()[0].outcome, "timeout: no ACK within 2000 ms");
    const auto events = rung.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_FALSE(events[0].up);
    EXPECT_EQ(rung.failure(), "node 3: timeout: no ACK within 2000 ms");
}

TEST_F(SfuRungTest, AnErrorResponseEndsTheLegWithItsCodeAndTheNextNodeStarts) {
    struct Case {
        const char* name;
        std::uint16_t code;
        const char* reason;
        bool signed_by_node;
    };
    const Case cases[] = {
        {"Expired", 401, "SFU token expired", false},
        {"Forged", 401, "integrity check failed", false},
        {"Replayed", 403, "participant already joined from another address", true},
        {"Full", 403, "SFU session full", true},
        {"Capacity", 508, "SFU node out of capacity", true},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        now_ = Time{0};
        SfuRung rung = make({candidate(3, node1), candidate(4, node2)});
        const auto first = rung.start(now_);
        ASSERT_EQ(first.size(), 1u);
        const stun::Message request = admission(first[0]);
        now_ += milliseconds(5);
        const auto next = rung.on_datagram(
            node1, refusal(request, c.code, c.reason, c.signed_by_node ? &password : nullptr),
            now_);
        EXPECT_EQ(rung.legs()[0].state, SfuLegState::failed);
        EXPECT_EQ(rung.legs()[0].error_code, c.code);
        EXPECT_EQ(rung.legs()[0].outcome, std::to_string(c.code) + " " + c.reason);
        const auto events = rung.take_events();
        ASSERT_EQ(events.size(), 1u);
        EXPECT_EQ(events[0].node_id, 3u);
        EXPECT_FALSE(events[0].up);
        // Race 1: the next candidate starts at the next pace slot.
        EXPECT_EQ(rung.legs()[1].state, SfuLegState::admitting);
        auto sent = next;
        for (auto& o : run(rung, now_ + milliseconds(20))) sent.push_back(std::move(o));
        ASSERT_FALSE(sent.empty());
        EXPECT_EQ(sent[0].to, node2);
        EXPECT_EQ(rung.state(), SfuRungState::trying);
    }
}

TEST_F(SfuRungTest, ForgedAndStrayAnswersAreDroppedByReason) {
    SfuRung rung = make({candidate(3, node1)});
    const auto first = rung.start(now_);  // the message below is a view into it
    const stun::Message request = admission(first.at(0));
    struct Case {
        const char* name;
        stun::Address from;
        std::vector<std::byte> bytes;
        SfuLegDrop reason;
    };
    auto no_fingerprint = ack(request);
    no_fingerprint.resize(no_fingerprint.size() - 8);  // FINGERPRINT off, length left stale
    stun::Message stray;
    std::array<std::byte, 64> b{};  // `stray` is a view into it
    {
        stun::TransactionId other{};
        ASSERT_TRUE(stun::random_bytes(other));
        stun::MessageWriter w(b, stun::Method::binding, stun::MessageClass::request, other);
        const auto bytes = w.finish();
        ASSERT_EQ(stun::Message::parse(bytes, stray), stun::ParseError::ok);
    }
    std::vector<std::byte> not_stun(28, std::byte{1});
    const Case cases[] = {
        {"NotStun", node1, not_stun, SfuLegDrop::not_stun},
        {"WrongKey", node1, ack(request, other_password), SfuLegDrop::bad_integrity},
        {"Unsigned", node1, ack(request, password, false), SfuLegDrop::bad_integrity},
        {"SignedRefusalWrongKey", node1,
         refusal(request, 403, "SFU session full", &other_password), SfuLegDrop::bad_integrity},
        {"UnknownTransaction", node1, ack(stray), SfuLegDrop::unknown_transaction},
        {"WrongSource", node2, ack(request), SfuLegDrop::wrong_source},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const auto before = rung.drops(c.reason);
        rung.on_datagram(c.from, c.bytes, now_);
        EXPECT_EQ(rung.drops(c.reason), before + 1);
        EXPECT_EQ(rung.legs()[0].state, SfuLegState::admitting);
    }
    EXPECT_TRUE(rung.take_events().empty());
    // The real ACK still counts.
    rung.on_datagram(node1, ack(request), now_);
    EXPECT_EQ(rung.legs()[0].state, SfuLegState::up);
    EXPECT_EQ(to_string(SfuLegDrop::wrong_source), "wrong_source");
    EXPECT_NE(help(SfuLegDrop::bad_integrity).find("token password"), std::string_view::npos);
}

TEST_F(SfuRungTest, ANodeBehindANatIsAnsweredAndLearntAsPeerReflexive) {
    SfuRung rung = make({candidate(3, node1)});
    (void)rung.start(now_);
    // The node's NAT maps its SFU port to 40001 towards us.
    const stun::Address mapped_node = v4(0xCB007105, 40001);
    stun::TransactionId id{};
    const auto bytes = node_request(username, password, id);
    EXPECT_TRUE(rung.claims(mapped_node, bytes));
    now_ += milliseconds(7);
    const auto out = rung.on_datagram(mapped_node, bytes, now_);
    ASSERT_EQ(out.size(), 1u);
    // The ACK, to the source, signed with our password, naming the source.
    EXPECT_EQ(out[0].to, mapped_node);
    stun::Message answer;
    ASSERT_EQ(stun::Message::parse(out[0].bytes, answer), stun::ParseError::ok);
    EXPECT_EQ(answer.message_class(), stun::MessageClass::success_response);
    EXPECT_TRUE(std::equal(id.begin(), id.end(), answer.transaction_id().begin()));
    EXPECT_EQ(stun::verify_message_integrity(answer, key(password)), stun::IntegrityResult::ok);
    EXPECT_EQ(stun::verify_fingerprint(answer), stun::IntegrityResult::ok);
    stun::Address xor_mapped;
    ASSERT_EQ(stun::decode_xor_address(*answer.find(stun::attr::xor_mapped_address), id,
                                       xor_mapped),
              stun::ParseError::ok);
    EXPECT_EQ(xor_mapped, mapped_node);
    // Admission goes to the learnt address from the next pace slot (a triggered request), not
    // after the retransmission interval.
    const auto next = run(rung, milliseconds(20));
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].to, mapped_node);
    const stun::Message request = admission(next[0]);
    EXPECT_TRUE(rung.legs()[0].peer_reflexive);
    EXPECT_EQ(rung.legs()[0].target, mapped_node);
    rung.on_datagram(mapped_node, ack(request), now_);
    rung.on_peer_leg(3, true, now_);
    EXPECT_EQ(rung.media_address(), mapped_node);
    EXPECT_EQ(rung.legs()[0].node_requests, 1u);
}

// The node's NAT sent its first packet towards us from a second public port, then mapped its
// traffic to the registered address after all: media from the registered address moves the
// target back there, and nothing else moves it.
TEST_F(SfuRungTest, MediaFromTheRegisteredAddressMovesAPeerReflexiveTargetBack) {
    SfuRung rung = make({candidate(3, node1)});
    (void)rung.start(now_);
    const stun::Address mapped_node = v4(0xCB007105, 48426);
    stun::TransactionId id{};
    (void)rung.on_datagram(mapped_node, node_request(username, password, id), now_);
    EXPECT_FALSE(rung.latch(node1));  // not up yet
    const auto next = run(rung, milliseconds(20));
    ASSERT_EQ(next.size(), 1u);
    rung.on_datagram(mapped_node, ack(admission(next[0])), now_);
    rung.on_peer_leg(3, true, now_);
    ASSERT_EQ(rung.state(), SfuRungState::up);
    ASSERT_EQ(rung.media_address(), mapped_node);
    // Another port or another address of the node's, or the target itself: no move.
    EXPECT_FALSE(rung.latch(v4(0xCB007105, 3481)));
    EXPECT_FALSE(rung.latch(v4(0xCB007106, 3480)));
    EXPECT_FALSE(rung.latch(mapped_node));
    EXPECT_EQ(rung.media_address(), mapped_node);
    EXPECT_TRUE(rung.latch(node1));
    EXPECT_EQ(rung.media_address(), node1);
    EXPECT_EQ(rung.legs()[0].target, node1);
    EXPECT_EQ(rung.legs()[0].latched, 1u);
    EXPECT_FALSE(rung.latch(node1));  // already there
    // The keepalives follow, and the node's answers from there are taken.
    const auto keepalives = run(rung, now_ + milliseconds(5000));
    ASSERT_EQ(keepalives.size(), 1u);
    EXPECT_EQ(keepalives[0].to, node1);
    const std::uint64_t sent = rung.legs()[0].sent;
    rung.on_datagram(node1, ack(admission(keepalives[0])), now_);
    EXPECT_EQ(rung.legs()[0].sent, sent);
    EXPECT_TRUE(rung.legs()[0].rtt.has_value());
}

// A node on its registered address all along: media from there changes nothing.
TEST_F(SfuRungTest, LatchingLeavesATargetThatIsNotPeerReflexive) {
    SfuRung rung = make({candidate(3, node1), candidate(4, node2)});
    rung.on_datagram(node1, ack(admission(rung.start(now_).at(0))), now_);
    rung.on_peer_leg(3, true, now_);
    ASSERT_EQ(rung.state(), SfuRungState::up);
    EXPECT_FALSE(rung.latch(node1));
    EXPECT_FALSE(rung.latch(node2));  // not the chosen node
    EXPECT_EQ(rung.media_address(), node1);
    EXPECT_EQ(rung.legs()[0].latched, 0u);
}

TEST_F(SfuRungTest, NodeRequestsThatFailTheirChecksAreDroppedUnanswered) {
    SfuRung rung = make({candidate(3, node1)});
    (void)rung.start(now_);
    stun::TransactionId id{};
    const auto wrong_name = node_request("1795531242:00c0ffee12345678:bob", password, id);
    EXPECT_FALSE(rung.claims(v4(0xCB007105, 40001), wrong_name));  // the punch session's
    EXPECT_TRUE(rung.on_datagram(node1, wrong_name, now_).empty());
    EXPECT_EQ(rung.drops(SfuLegDrop::request_wrong_username), 1u);
    EXPECT_TRUE(rung.on_datagram(node1, node_request(username, other_password, id), now_).empty());
    EXPECT_EQ(rung.drops(SfuLegDrop::request_bad_integrity), 1u);
    // A valid request from an IP address of no candidate.
    const stun::Address elsewhere = v4(0xCB0071FE, 40001);
    const auto valid = node_request(username, password, id);
    EXPECT_TRUE(rung.claims(elsewhere, valid));
    EXPECT_TRUE(rung.on_datagram(elsewhere, valid, now_).empty());
    EXPECT_EQ(rung.drops(SfuLegDrop::request_unknown_node), 1u);
    EXPECT_FALSE(rung.legs()[0].peer_reflexive);
}

TEST_F(SfuRungTest, RacesTheFirstKAndSkipsANodeWhereThePeersLegFailed) {
    SfuRung rung = make({candidate(1, node1), candidate(2, node2), candidate(3, node3)}, 2);
    auto sent = rung.start(now_);
    for (auto& o : run(rung, milliseconds(20))) sent.push_back(std::move(o));
    ASSERT_EQ(sent.size(), 2u);
    EXPECT_EQ(sent[0].to, node1);
    EXPECT_EQ(sent[1].to, node2);
    EXPECT_EQ(rung.legs()[2].state, SfuLegState::untried);
    // The peer cannot reach node 1: it is out, our leg there stops, node 3 starts.
    rung.on_peer_leg(1, false, now_);
    EXPECT_EQ(rung.legs()[0].state, SfuLegState::failed);
    EXPECT_EQ(rung.legs()[0].outcome, "stopped: the peer's leg failed");
    EXPECT_EQ(rung.legs()[2].state, SfuLegState::admitting);
    EXPECT_TRUE(rung.take_events().empty());  // the peer knows
    // Node 2 ACKs, the peer's leg there is up: chosen.
    rung.on_datagram(node2, ack(admission(sent[1])), now_);
    rung.on_peer_leg(2, true, now_);
    ASSERT_EQ(rung.state(), SfuRungState::up);
    EXPECT_EQ(rung.chosen()->node.node_id, 2u);
    EXPECT_EQ(rung.legs()[2].outcome, "stopped: node 2 chosen");
}

TEST_F(SfuRungTest, ALaterNodeWaitsUntilEveryEarlierOneIsOutSoBothSidesAgree) {
    SfuRung rung = make({candidate(1, node1), candidate(2, node2)}, 2);
    auto sent = rung.start(now_);
    for (auto& o : run(rung, milliseconds(20))) sent.push_back(std::move(o));
    ASSERT_EQ(sent.size(), 2u);
    rung.on_datagram(node2, ack(admission(sent[1])), now_);
    rung.on_peer_leg(2, true, now_);
    // Both up on node 2, but node 1 is undecided: the peer may yet choose it.
    EXPECT_EQ(rung.state(), SfuRungState::trying);
    // Node 1 never answers: at its timeout it is out, and node 2 is chosen.
    (void)run(rung, milliseconds(2000));
    ASSERT_EQ(rung.state(), SfuRungState::up);
    EXPECT_EQ(rung.chosen()->node.node_id, 2u);
    EXPECT_EQ(rung.legs()[0].outcome, "timeout: no ACK within 2000 ms");
    const auto events = rung.take_events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].node_id, 2u);
    EXPECT_TRUE(events[0].up);
    EXPECT_EQ(events[1].node_id, 1u);
    EXPECT_FALSE(events[1].up);
}

TEST_F(SfuRungTest, APeerThatSaysNothingPutsTheNodeOut) {
    SfuRung rung = make({candidate(3, node1)});
    rung.on_datagram(node1, ack(admission(rung.start(now_).at(0))), now_);
    (void)run(rung, milliseconds(3000));
    EXPECT_EQ(rung.state(), SfuRungState::failed);
    EXPECT_EQ(rung.legs()[0].outcome, "no word from the peer within 3000 ms");
    const auto events = rung.take_events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(events[0].up);
    EXPECT_FALSE(events[1].up);
}

TEST_F(SfuRungTest, KeepalivesGoToTheChosenNodeWellInsideItsLegTimeout) {
    SfuRung rung = make({candidate(3, node1)});
    rung.on_datagram(node1, ack(admission(rung.start(now_).at(0))), now_);
    rung.on_peer_leg(3, true, now_);
    ASSERT_EQ(rung.state(), SfuRungState::up);
    EXPECT_EQ(rung.next_timer(), milliseconds(5000));
    const auto sent = run(rung, milliseconds(15000));
    ASSERT_EQ(sent.size(), 3u);  // at 5, 10 and 15 s
    for (const auto& o : sent) {
        EXPECT_EQ(o.to, node1);
        const auto m = admission(o);
        // Answered: the RTT follows the keepalives.
        rung.on_datagram(node1, ack(m), now_);
    }
    EXPECT_EQ(rung.legs()[0].sent, 4u);
}

TEST_F(SfuRungTest, NoCandidateFailsAtOnce) {
    SfuRung rung = make({});
    EXPECT_TRUE(rung.start(now_).empty());
    EXPECT_EQ(rung.state(), SfuRungState::failed);
    EXPECT_EQ(rung.failure(), "no candidate node");
}

TEST_F(SfuRungTest, BadTokensAndConfigurationsAreRefusedNamingTheField) {
    const auto refused = [](const std::function<void()>& f, const std::string& names) {
        try {
            f();
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
            return;
        }
        ADD_FAILURE() << "not refused: " << names;
    };
    refused([] { SfuRung({}, "alice", password, {}); }, "username \"alice\"");
    refused([] { SfuRung({}, username, "short", {}); }, "44 characters, not 5");
    SfuRungConfig c;
    c.race = 0;
    refused([&] { SfuRung(c, username, password, {}); }, "race");
    c = {};
    c.timeout = Time{0};
    refused([&] { SfuRung(c, username, password, {}); }, "timeout");
}

}  // namespace
}  // namespace punch
