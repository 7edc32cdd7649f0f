// STUN client transactions (nat/stun_transaction.cc): RFC 8489 §6.2.1's schedule on an
// injected clock, transaction matching, and the validation of responses.
#include <gtest/gtest.h>

#include <vector>

#include "punch/stun_transaction.h"
#include "recording_sender.h"
#include "stun/attributes.h"
#include "stun/writer.h"

namespace punch {
namespace {

using std::chrono::milliseconds;

using testing::RecordingSender;
using testing::Sent;

const stun::Address server = stun::Address::v4(0xCB007102, 3478);
const stun::Address mapped = stun::Address::v4(0xCB00710A, 40000);
const stun::Address other = stun::Address::v4(0xCB007103, 3479);

class StunTransactionTest : public ::testing::Test {
protected:
    // Moves the clock to `at`, firing every timer due on the way (in deadline order).
    void run_to(Time at) {
        while (auto next = timers.next_deadline()) {
            if (*next > at) break;
            clock.set(*next);
            timers.run_due(clock.now());
        }
        clock.set(at);
    }

    stun::TransactionId start(std::uint32_t flags = 0) {
        const auto id = client.start_binding(server, flags, [this](const BindingResult& r) {
            results.push_back(r);
        });
        EXPECT_TRUE(id.has_value());
        return *id;
    }

    // A Binding success response to `id`, as a server writes it.
    std::vector<std::byte> response(const stun::TransactionId& id, bool xor_mapped = true,
                                    bool fingerprint = true, bool other_address = true) {
        std::vector<std::byte> buffer(256);
        stun::MessageWriter w(buffer, stun::Method::binding,
                              stun::MessageClass::success_response, id);
        if (xor_mapped) w.add_xor_address(stun::attr::xor_mapped_address, mapped);
        if (other_address) w.add_address(stun::attr::other_address, other);
        if (fingerprint) w.add_fingerprint();
        const auto out = w.finish();
        return {out.begin(), out.end()};
    }

    static stun::TransactionId id_of(const Sent& s) {
        stun::TransactionId id;
        std::copy(s.datagram.begin() + 8, s.datagram.begin() + 20, id.begin());
        return id;
    }

    ManualClock clock{Time{1'000'000}};
    TimerQueue timers;
    RecordingSender sender{clock};
    RetransmissionPolicy policy;
    StunClient client{clock, timers, sender, policy};
    std::vector<BindingResult> results;
};

TEST(RetransmissionSchedule, Rfc8489Example) {
    // RFC 8489 §6.2.1: 0, 500, 1500, 3500, 7500, 15500, 31500 ms; timeout at 39500 ms.
    const auto s = retransmission_schedule({});
    const std::vector<Time> expected = {milliseconds(0),    milliseconds(500),
                                        milliseconds(1500), milliseconds(3500),
                                        milliseconds(7500), milliseconds(15500),
                                        milliseconds(31500)};
    EXPECT_EQ(s.sends, expected);
    EXPECT_EQ(s.give_up, milliseconds(39500));
}

TEST(RetransmissionSchedule, CutByMaxDuration) {
    RetransmissionPolicy p;
    p.max_duration = milliseconds(3000);
    const auto s = retransmission_schedule(p);
    const std::vector<Time> expected = {milliseconds(0), milliseconds(500), milliseconds(1500)};
    EXPECT_EQ(s.sends, expected);
    EXPECT_EQ(s.give_up, milliseconds(3000));
}

TEST(RetransmissionSchedule, OtherParameters) {
    RetransmissionPolicy p;
    p.initial_rto = milliseconds(100);
    p.max_sends = 3;
    p.last_wait_factor = 4;
    const auto s = retransmission_schedule(p);
    const std::vector<Time> expected = {milliseconds(0), milliseconds(100), milliseconds(300)};
    EXPECT_EQ(s.sends, expected);
    EXPECT_EQ(s.give_up, milliseconds(700));
}

TEST_F(StunTransactionTest, RetransmitsOnScheduleThenTimesOut) {
    const Time t0 = clock.now();
    start();
    EXPECT_TRUE(sender.sent.empty()) << "the first send is a timer due now, not inside start";
    run_to(t0);
    ASSERT_EQ(sender.sent.size(), 1u);
    run_to(t0 + milliseconds(39499));
    ASSERT_EQ(sender.sent.size(), 7u);
    const Time expected[] = {milliseconds(0),    milliseconds(500),   milliseconds(1500),
                             milliseconds(3500), milliseconds(7500),  milliseconds(15500),
                             milliseconds(31500)};
    for (std::size_t i = 0; i < 7; ++i) {
        EXPECT_EQ(sender.sent[i].at - t0, expected[i]) << "send " << i;
        EXPECT_EQ(sender.sent[i].to, server);
        // Retransmissions are the same request: same transaction ID, same bytes.
        EXPECT_EQ(sender.sent[i].datagram, sender.sent[0].datagram);
    }
    EXPECT_TRUE(results.empty());
    run_to(t0 + milliseconds(39500));
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, TransactionStatus::timeout);
    EXPECT_EQ(results[0].sends, 7u);
    EXPECT_EQ(results[0].elapsed, milliseconds(39500));
    EXPECT_EQ(client.pending(), 0u);
    EXPECT_EQ(timers.size(), 0u);
}

TEST_F(StunTransactionTest, RequestIsABindingWithFingerprintAndChangeRequest) {
    start(stun::change_ip | stun::change_port);
    run_to(clock.now());
    ASSERT_EQ(sender.sent.size(), 1u);
    stun::Message m;
    ASSERT_EQ(stun::Message::parse(sender.sent[0].datagram, m), stun::ParseError::ok);
    EXPECT_TRUE(m.is(stun::Method::binding, stun::MessageClass::request));
    const auto change = m.find(stun::attr::change_request);
    ASSERT_TRUE(change);
    std::uint32_t flags = 0;
    ASSERT_EQ(stun::decode_u32(*change, flags), stun::ParseError::ok);
    EXPECT_EQ(flags, stun::change_ip | stun::change_port);
    ASSERT_TRUE(m.fingerprint());
}

TEST_F(StunTransactionTest, AnswerAfterRetransmissionEndsIt) {
    const Time t0 = clock.now();
    start();
    run_to(t0 + milliseconds(600));  // sent at 0 and 500
    ASSERT_EQ(sender.sent.size(), 2u);
    const auto bytes = response(id_of(sender.sent[0]));
    EXPECT_EQ(client.on_datagram(other, bytes), DatagramVerdict::answered);
    ASSERT_EQ(results.size(), 1u);
    const auto& r = results[0];
    EXPECT_EQ(r.status, TransactionStatus::success);
    EXPECT_EQ(r.mapped, mapped);
    EXPECT_EQ(r.from, other);
    ASSERT_TRUE(r.other_address);
    EXPECT_EQ(*r.other_address, other);
    EXPECT_EQ(r.elapsed, milliseconds(600));
    EXPECT_EQ(r.sends, 2u);
    // No more sends and no timeout afterwards.
    run_to(t0 + milliseconds(60000));
    EXPECT_EQ(sender.sent.size(), 2u);
    EXPECT_EQ(results.size(), 1u);
    // The same answer again (a duplicate) matches nothing now.
    EXPECT_EQ(client.on_datagram(other, bytes), DatagramVerdict::rejected);
    EXPECT_EQ(client.rejected(ResponseRejection::unknown_transaction), 1u);
}

TEST_F(StunTransactionTest, MaxDurationBoundsTheTransaction) {
    RetransmissionPolicy bounded;
    bounded.max_duration = milliseconds(2000);
    StunClient c(clock, timers, sender, bounded);
    const Time t0 = clock.now();
    bool ended = false;
    c.start_binding(server, 0, [&](const BindingResult& r) {
        ended = true;
        EXPECT_EQ(r.status, TransactionStatus::timeout);
        EXPECT_EQ(r.elapsed, milliseconds(2000));
    });
    run_to(t0 + milliseconds(1999));
    EXPECT_FALSE(ended);
    EXPECT_EQ(sender.sent.size(), 3u);  // 0, 500, 1500
    run_to(t0 + milliseconds(2000));
    EXPECT_TRUE(ended);
}

TEST_F(StunTransactionTest, FirstSendFailing) {
    sender.accept = false;
    start();
    run_to(clock.now());
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, TransactionStatus::send_failed);
    EXPECT_EQ(timers.size(), 0u);
}

// Each rejected response is ignored, counted, and leaves the transaction waiting; a valid one
// afterwards still ends it.
TEST_F(StunTransactionTest, InvalidResponsesAreIgnored) {
    start();
    run_to(clock.now());
    const auto id = id_of(sender.sent[0]);

    stun::TransactionId wrong = id;
    wrong[11] ^= std::byte{1};
    EXPECT_EQ(client.on_datagram(server, response(wrong)), DatagramVerdict::rejected);
    EXPECT_EQ(client.rejected(ResponseRejection::unknown_transaction), 1u);

    auto bad_fingerprint = response(id);
    bad_fingerprint.back() ^= std::byte{0x01};
    EXPECT_EQ(client.on_datagram(server, bad_fingerprint), DatagramVerdict::rejected);
    EXPECT_EQ(client.rejected(ResponseRejection::bad_fingerprint), 1u);

    EXPECT_EQ(client.on_datagram(server, response(id, false)), DatagramVerdict::rejected);
    EXPECT_EQ(client.rejected(ResponseRejection::missing_xor_mapped_address), 1u);

    auto truncated = response(id);
    truncated.resize(truncated.size() - 4);
    EXPECT_EQ(client.on_datagram(server, truncated), DatagramVerdict::rejected);
    EXPECT_EQ(client.rejected(ResponseRejection::malformed), 1u);

    {  // another method
        std::vector<std::byte> buffer(128);
        stun::MessageWriter w(buffer, stun::Method::allocate,
                              stun::MessageClass::success_response, id);
        w.add_xor_address(stun::attr::xor_mapped_address, mapped);
        const auto out = w.finish();
        EXPECT_EQ(client.on_datagram(server, out), DatagramVerdict::rejected);
        EXPECT_EQ(client.rejected(ResponseRejection::wrong_method), 1u);
    }
    {  // an XOR-MAPPED-ADDRESS of the wrong size
        std::vector<std::byte> buffer(128);
        stun::MessageWriter w(buffer, stun::Method::binding,
                              stun::MessageClass::success_response, id);
        const std::byte three[3] = {};
        w.add(stun::attr::xor_mapped_address, three);
        EXPECT_EQ(client.on_datagram(server, w.finish()), DatagramVerdict::rejected);
        EXPECT_EQ(client.rejected(ResponseRejection::bad_address_attribute), 1u);
    }
    {  // an unknown comprehension-required attribute
        std::vector<std::byte> buffer(128);
        stun::MessageWriter w(buffer, stun::Method::binding,
                              stun::MessageClass::success_response, id);
        w.add_xor_address(stun::attr::xor_mapped_address, mapped);
        w.add_u32(0x7F01, 0);
        EXPECT_EQ(client.on_datagram(server, w.finish()), DatagramVerdict::rejected);
        EXPECT_EQ(client.rejected(ResponseRejection::unknown_comprehension_required), 1u);
    }
    {  // an error response without ERROR-CODE
        std::vector<std::byte> buffer(128);
        stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::error_response,
                              id);
        EXPECT_EQ(client.on_datagram(server, w.finish()), DatagramVerdict::rejected);
        EXPECT_EQ(client.rejected(ResponseRejection::bad_error_code), 1u);
    }
    EXPECT_TRUE(results.empty());
    EXPECT_EQ(client.pending(), 1u);

    // Without FINGERPRINT and without OTHER-ADDRESS is still valid (FINGERPRINT is optional).
    EXPECT_EQ(client.on_datagram(server, response(id, true, false, false)),
              DatagramVerdict::answered);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, TransactionStatus::success);
    EXPECT_FALSE(results[0].other_address);
}

TEST_F(StunTransactionTest, ErrorResponseEndsIt) {
    start(stun::change_port);
    run_to(clock.now());
    const auto id = id_of(sender.sent[0]);
    std::vector<std::byte> buffer(128);
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::error_response, id);
    w.add_error_code(420);
    w.add_fingerprint();
    EXPECT_EQ(client.on_datagram(server, w.finish()), DatagramVerdict::answered);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, TransactionStatus::error_response);
    EXPECT_EQ(results[0].error_code, 420);
    EXPECT_EQ(results[0].error_reason, "Unknown Attribute");
}

TEST_F(StunTransactionTest, RequestsAndOtherTrafficAreTheCallersBusiness) {
    std::vector<std::byte> buffer(64);
    const stun::TransactionId id{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::request, id);
    EXPECT_EQ(client.on_datagram(server, w.finish()), DatagramVerdict::not_response);
    const std::byte rtp[12] = {std::byte{0x80}};
    EXPECT_EQ(client.on_datagram(server, rtp), DatagramVerdict::not_stun);
}

TEST_F(StunTransactionTest, ParallelTransactionsMatchByIdAndCancel) {
    start();
    const auto second = start(stun::change_port);
    run_to(clock.now());
    ASSERT_EQ(sender.sent.size(), 2u);
    EXPECT_NE(id_of(sender.sent[0]), id_of(sender.sent[1]));
    EXPECT_EQ(client.on_datagram(server, response(id_of(sender.sent[1]))),
              DatagramVerdict::answered);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(client.pending(), 1u);
    EXPECT_FALSE(client.cancel(second));
    EXPECT_TRUE(client.cancel(id_of(sender.sent[0])));
    EXPECT_EQ(timers.size(), 0u);
    run_to(clock.now() + milliseconds(60000));
    EXPECT_EQ(results.size(), 1u);
}

TEST(ResponseRejection, NamesAndHelp) {
    for (int i = 0; i < static_cast<int>(ResponseRejection::count); ++i) {
        const auto r = static_cast<ResponseRejection>(i);
        EXPECT_NE(to_string(r), "?");
        EXPECT_FALSE(help(r).empty());
    }
    EXPECT_EQ(to_string(ResponseRejection::bad_fingerprint), "bad_fingerprint");
}

}  // namespace
}  // namespace punch
