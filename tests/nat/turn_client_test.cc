// The TURN client (nat/turn_client.cc) on a ManualClock with a recording sender: the server is
// played by the test, which answers each recorded request with the bytes a TURN server would
// send (signed with a key the test derives itself, from RFC 8489 §9.2.2's formula).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "punch/turn_client.h"
#include "stun/attributes.h"
#include "stun/crypto.h"
#include "stun/integrity.h"
#include "stun/writer.h"

// Counts the heap allocations of this process, for the test that send() and the data path of
// on_datagram() make none (the allocation-free property turn_client.h promises).
namespace {
std::atomic<std::uint64_t> heap_allocations{0};

void* counted_malloc(std::size_t size) {
    heap_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

// Not inlined: GCC would otherwise see free() meet operator new's pointer in this file's own
// callers and warn (-Wmismatched-new-delete) about what is, here, a matched pair.
[[gnu::noinline]] void* operator new(std::size_t size) {
    if (void* p = counted_malloc(size)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) {
    if (void* p = counted_malloc(size)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace punch {
namespace {

using namespace std::chrono_literals;

struct Sent {
    stun::Address to;
    std::vector<std::byte> datagram;
    Time at;
};

class RecordingSender final : public DatagramSender {
public:
    explicit RecordingSender(const Clock& clock) : clock_(clock) {}
    bool send_to(const stun::Address& to, std::span<const std::byte> datagram) override {
        sent.push_back({to, {datagram.begin(), datagram.end()}, clock_.now()});
        return accept;
    }
    std::vector<Sent> sent;
    bool accept = true;

private:
    const Clock& clock_;
};

const stun::Address server = stun::Address::v4(0xCB007102, 3478);    // 203.0.113.2:3478
const stun::Address relayed = stun::Address::v4(0xCB007102, 50000);  // 203.0.113.2:50000
const stun::Address mapped = stun::Address::v4(0xCB00710A, 40000);   // 203.0.113.10:40000
const stun::Address peer = stun::Address::v4(0xC6336407, 3480);      // 198.51.100.7:3480
const stun::Address peer2 = stun::Address::v4(0xC6336408, 3480);     // 198.51.100.8:3480
constexpr std::string_view realm = "punchline.test";
constexpr std::string_view username = "alice";
constexpr std::string_view password = "relay-password";

std::vector<std::byte> hex(std::string_view text) {
    std::vector<std::byte> out;
    for (std::size_t i = 0; i + 1 < text.size();) {
        if (text[i] == ' ') {
            ++i;
            continue;
        }
        const int value = std::stoi(std::string(text.substr(i, 2)), nullptr, 16);
        out.push_back(static_cast<std::byte>(value));
        i += 2;
    }
    return out;
}

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// RFC 8489 §9.2.2, computed here rather than by stun/credentials.h: MD5 or SHA-256 of
// "username:realm:password" (plain ASCII, which SASLprep leaves as it is).
std::vector<std::byte> md5_key() {
    std::array<std::byte, 16> out;
    const std::string input = std::string(username) + ":" + std::string(realm) + ":" +
                              std::string(password);
    stun::md5({bytes_of(input)}, out);
    return {out.begin(), out.end()};
}
std::vector<std::byte> sha256_key() {
    std::array<std::byte, 32> out;
    const std::string input = std::string(username) + ":" + std::string(realm) + ":" +
                              std::string(password);
    stun::sha256({bytes_of(input)}, out);
    return {out.begin(), out.end()};
}

std::string text(const stun::Message& m, std::uint16_t type) {
    std::string_view value;
    const auto a = m.find(type);
    if (!a || stun::decode_text(*a, value) != stun::ParseError::ok) return "(none)";
    return std::string(value);
}

std::uint32_t u32(const stun::Message& m, std::uint16_t type) {
    std::uint32_t value = 0xFFFFFFFF;
    if (const auto a = m.find(type)) {
        EXPECT_EQ(stun::decode_u32(*a, value), stun::ParseError::ok);
    }
    return value;
}

enum class Sign { none, md5, sha256, wrong };

class TurnClientTest : public ::testing::Test {
protected:
    TurnConfig config() const {
        TurnConfig c;
        c.server = server;
        c.username = username;
        c.password = password;
        return c;
    }

    void make(TurnConfig c) {
        client = std::make_unique<TurnClient>(loop, socket, std::move(c));
        client->on_data([this](const stun::Address& from, std::span<const std::byte> data) {
            received.emplace_back(from, std::string(reinterpret_cast<const char*>(data.data()),
                                                    data.size()));
        });
        client->on_failure([this](const std::string& what) { failures.push_back(what); });
    }

    // Moves the clock to `at`, firing every timer due on the way (in deadline order).
    void run_to(Time at) {
        while (auto next = loop.timers().next_deadline()) {
            if (*next > at) break;
            clock.set(*next);
            loop.timers().run_due(clock.now());
        }
        clock.set(at);
    }
    void run_for(Time d) { run_to(clock.now() + d); }

    const Sent& last() const { return socket.sent.back(); }
    static stun::Message parse(const Sent& s) {
        stun::Message m;
        EXPECT_EQ(stun::Message::parse(s.datagram, m), stun::ParseError::ok);
        return m;
    }

    // A response to `request` as a server writes it: same method and transaction ID,
    // `attributes` added, then integrity (`sign`) and FINGERPRINT.
    std::vector<std::byte> response(const Sent& request, stun::MessageClass cls,
                                    const std::function<void(stun::MessageWriter&)>& attributes,
                                    Sign sign) {
        const stun::Message m = parse(request);
        std::vector<std::byte> buffer(1024);
        stun::MessageWriter w(buffer, m.method(), cls, m.transaction_id());
        if (attributes) attributes(w);
        if (sign == Sign::md5) w.add_message_integrity(md5_key());
        if (sign == Sign::sha256) w.add_message_integrity_sha256(sha256_key());
        if (sign == Sign::wrong) w.add_message_integrity(hex("00112233445566778899aabbccddeeff"));
        w.add_fingerprint();
        const auto out = w.finish();
        EXPECT_FALSE(out.empty());
        return {out.begin(), out.end()};
    }
    bool answer(const Sent& request, stun::MessageClass cls,
                const std::function<void(stun::MessageWriter&)>& attributes, Sign sign) {
        const auto bytes = response(request, cls, attributes, sign);
        return client->on_datagram(server, bytes);
    }
    bool answer_error(const Sent& request, std::uint16_t code, Sign sign,
                      std::string_view nonce = "") {
        return answer(request, stun::MessageClass::error_response,
                      [&](stun::MessageWriter& w) {
                          w.add_error_code(code);
                          if (!nonce.empty()) {
                              w.add_text(stun::attr::realm, realm);
                              w.add_text(stun::attr::nonce, nonce);
                          }
                      },
                      sign);
    }
    bool answer_allocate(const Sent& request, std::uint32_t lifetime = 600,
                         Sign sign = Sign::md5) {
        return answer(request, stun::MessageClass::success_response,
                      [&](stun::MessageWriter& w) {
                          w.add_xor_address(stun::attr::xor_relayed_address, relayed);
                          w.add_u32(stun::attr::lifetime, lifetime);
                          w.add_xor_address(stun::attr::xor_mapped_address, mapped);
                      },
                      sign);
    }
    bool answer_ok(const Sent& request, Sign sign = Sign::md5) {
        return answer(request, stun::MessageClass::success_response, {}, sign);
    }

    void start_allocate() {
        client->allocate([this](const TurnAllocation& a) { allocations.push_back(a); });
        run_for(0us);
    }
    // The usual way in: Allocate, 401 with REALM and NONCE, signed Allocate, success.
    void allocate_ok(std::uint32_t lifetime = 600) {
        start_allocate();
        ASSERT_TRUE(answer_error(last(), 401, Sign::none, "nonce-1"));
        run_for(0us);
        ASSERT_TRUE(answer_allocate(last(), lifetime));
        ASSERT_EQ(allocations.size(), 1u);
        ASSERT_EQ(allocations[0].status, TransactionStatus::success);
    }
    // add_peer through CreatePermission and (with channels) ChannelBind.
    void add_peer_ok(const stun::Address& p, bool channels = true) {
        client->add_peer(p, [this](const std::string& e) { peer_results.push_back(e); });
        run_for(0us);
        ASSERT_TRUE(parse(last()).is(stun::Method::create_permission, stun::MessageClass::request));
        ASSERT_TRUE(answer_ok(last()));
        if (channels) {
            run_for(0us);
            ASSERT_TRUE(parse(last()).is(stun::Method::channel_bind, stun::MessageClass::request));
            ASSERT_TRUE(answer_ok(last()));
        }
        run_for(0us);
        ASSERT_FALSE(peer_results.empty());
        ASSERT_EQ(peer_results.back(), "");
    }

    ManualClock clock{Time{1'000'000}};
    EventLoop loop{clock};
    RecordingSender socket{clock};
    std::unique_ptr<TurnClient> client;
    std::vector<TurnAllocation> allocations;
    std::vector<std::string> peer_results;
    std::vector<std::string> failures;
    std::vector<std::pair<stun::Address, std::string>> received;
};

TEST_F(TurnClientTest, AllocateAfter401WithRealmAndNonce) {
    make(config());
    start_allocate();
    ASSERT_EQ(socket.sent.size(), 1u);
    EXPECT_EQ(socket.sent[0].to, server);
    {
        // RFC 8656 §7.1: the first Allocate carries no credentials: REQUESTED-TRANSPORT UDP,
        // LIFETIME, FINGERPRINT.
        const auto m = parse(socket.sent[0]);
        EXPECT_TRUE(m.is(stun::Method::allocate, stun::MessageClass::request));
        const auto transport = m.find(stun::attr::requested_transport);
        std::uint8_t protocol = 0;
        ASSERT_TRUE(transport);
        EXPECT_EQ(stun::decode_requested_transport(*transport, protocol), stun::ParseError::ok);
        EXPECT_EQ(protocol, 17);
        EXPECT_EQ(u32(m, stun::attr::lifetime), 600u);
        EXPECT_FALSE(m.find(stun::attr::username));
        EXPECT_FALSE(m.message_integrity());
        EXPECT_EQ(stun::verify_fingerprint(m), stun::IntegrityResult::ok);
    }
    clock.advance(20ms);
    EXPECT_TRUE(answer_error(socket.sent[0], 401, Sign::none, "nonce-1"));
    EXPECT_TRUE(allocations.empty());
    run_for(0us);
    ASSERT_EQ(socket.sent.size(), 2u);
    {
        const auto m = parse(socket.sent[1]);
        EXPECT_TRUE(m.is(stun::Method::allocate, stun::MessageClass::request));
        // RFC 8489 §6: a new transaction.
        EXPECT_NE(std::vector<std::byte>(m.transaction_id().begin(), m.transaction_id().end()),
                  std::vector<std::byte>(socket.sent[0].datagram.begin() + 8,
                                         socket.sent[0].datagram.begin() + 20));
        EXPECT_EQ(text(m, stun::attr::username), username);
        EXPECT_EQ(text(m, stun::attr::realm), realm);
        EXPECT_EQ(text(m, stun::attr::nonce), "nonce-1");
        EXPECT_FALSE(m.find(stun::attr::password_algorithm));
        EXPECT_EQ(stun::verify_message_integrity(m, md5_key()), stun::IntegrityResult::ok);
        EXPECT_EQ(stun::verify_fingerprint(m), stun::IntegrityResult::ok);
    }
    clock.advance(20ms);
    EXPECT_TRUE(answer_allocate(socket.sent[1], 300));
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::success);
    EXPECT_EQ(allocations[0].relayed, relayed);
    EXPECT_EQ(allocations[0].mapped, mapped);
    EXPECT_EQ(allocations[0].lifetime, 300s);
    EXPECT_EQ(allocations[0].elapsed, 40ms);
    EXPECT_EQ(client->state(), TurnState::allocated);
    EXPECT_EQ(client->relayed(), relayed);
    EXPECT_EQ(client->mapped(), mapped);
    EXPECT_EQ(client->counters().requests_sent, 2u);
    EXPECT_EQ(client->pending(), 0u);
}

TEST_F(TurnClientTest, PasswordAlgorithmsOfferedPicksTheFirstSupported) {
    make(config());
    start_allocate();
    // RFC 8489 §9.2.5: a 401 whose nonce has the cookie and "Password algorithms" bit, with
    // PASSWORD-ALGORITHMS SHA-256 then MD5 (as punchlined sends it).
    std::array<char, 13> cookie;
    stun::write_nonce_cookie(stun::feature_password_algorithms, cookie);
    const std::string nonce = std::string(cookie.data(), cookie.size()) + "opaque";
    const std::array<stun::PasswordAlgorithmValue, 2> offered = {{
        {static_cast<std::uint16_t>(stun::PasswordAlgorithm::sha256), {}},
        {static_cast<std::uint16_t>(stun::PasswordAlgorithm::md5), {}},
    }};
    ASSERT_TRUE(answer(last(), stun::MessageClass::error_response,
                       [&](stun::MessageWriter& w) {
                           w.add_error_code(401);
                           w.add_text(stun::attr::realm, realm);
                           w.add_text(stun::attr::nonce, nonce);
                           w.add_password_algorithms(offered);
                       },
                       Sign::none));
    run_for(0us);
    const auto m = parse(last());
    const auto listed = m.find(stun::attr::password_algorithms);
    const auto chosen = m.find(stun::attr::password_algorithm);
    ASSERT_TRUE(listed);
    ASSERT_TRUE(chosen);
    // Echoed as sent: SHA-256, MD5.
    EXPECT_EQ(std::vector<std::byte>(listed->value.begin(), listed->value.end()),
              hex("0002 0000 0001 0000"));
    EXPECT_EQ(std::vector<std::byte>(chosen->value.begin(), chosen->value.end()),
              hex("0002 0000"));
    EXPECT_EQ(stun::verify_message_integrity_sha256(m, sha256_key()), stun::IntegrityResult::ok);
    EXPECT_FALSE(m.message_integrity());
    // The answer is verified with the SHA-256 key: one signed with the MD5 key is refused.
    EXPECT_TRUE(answer_allocate(last(), 600, Sign::md5));
    EXPECT_EQ(client->drops(TurnDrop::bad_integrity), 1u);
    EXPECT_TRUE(answer_allocate(last(), 600, Sign::sha256));
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::success);
}

TEST_F(TurnClientTest, StaleNonceRetriedWithTheNewNonceAndBounded) {
    make(config());
    start_allocate();
    ASSERT_TRUE(answer_error(last(), 401, Sign::none, "nonce-1"));
    run_for(0us);
    ASSERT_TRUE(answer_error(last(), 438, Sign::none, "nonce-2"));
    run_for(0us);
    EXPECT_EQ(text(parse(last()), stun::attr::nonce), "nonce-2");
    EXPECT_EQ(stun::verify_message_integrity(parse(last()), md5_key()), stun::IntegrityResult::ok);
    // max_stale_nonce_retries in a row, then the 438 is reported.
    for (unsigned i = 1; i < max_stale_nonce_retries; ++i) {
        ASSERT_TRUE(answer_error(last(), 438, Sign::none, "nonce-" + std::to_string(i + 2)));
        run_for(0us);
        EXPECT_TRUE(allocations.empty());
    }
    EXPECT_EQ(socket.sent.size(), 2u + max_stale_nonce_retries);
    ASSERT_TRUE(answer_error(last(), 438, Sign::none, "nonce-9"));
    run_for(0us);
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::error_response);
    EXPECT_EQ(allocations[0].error_code, 438);
    EXPECT_EQ(allocations[0].error_reason, "Stale Nonce");
    EXPECT_EQ(client->counters().stale_nonce_retries, max_stale_nonce_retries);
    EXPECT_EQ(client->state(), TurnState::failed);
}

TEST_F(TurnClientTest, WrongPasswordReports401) {
    make(config());
    start_allocate();
    ASSERT_TRUE(answer_error(last(), 401, Sign::none, "nonce-1"));
    run_for(0us);
    // The server refuses the signed request too: the credentials are wrong.
    ASSERT_TRUE(answer_error(last(), 401, Sign::none, "nonce-2"));
    run_for(0us);
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::error_response);
    EXPECT_EQ(allocations[0].error_code, 401);
    EXPECT_EQ(allocations[0].error_reason, "Unauthenticated");
    EXPECT_EQ(socket.sent.size(), 2u);
    EXPECT_EQ(client->state(), TurnState::failed);
}

TEST_F(TurnClientTest, A401WithoutRealmIsReported) {
    make(config());
    start_allocate();
    ASSERT_TRUE(answer_error(last(), 401, Sign::none));
    run_for(0us);
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].error_code, 401);
    EXPECT_EQ(socket.sent.size(), 1u);
}

TEST_F(TurnClientTest, AllocateErrorsReportedWithCodeAndReason) {
    struct Case {
        std::uint16_t code;
        const char* reason;
    };
    for (const Case c : {Case{437, "Allocation Mismatch"}, Case{486, "Allocation Quota Reached"},
                         Case{508, "Insufficient Capacity"}, Case{403, "Forbidden"}}) {
        SCOPED_TRACE(c.code);
        allocations.clear();
        socket.sent.clear();
        make(config());
        start_allocate();
        ASSERT_TRUE(answer_error(last(), 401, Sign::none, "nonce-1"));
        run_for(0us);
        // Signed, as a server signs an error to an authenticated request.
        ASSERT_TRUE(answer_error(last(), c.code, Sign::md5));
        ASSERT_EQ(allocations.size(), 1u);
        EXPECT_EQ(allocations[0].status, TransactionStatus::error_response);
        EXPECT_EQ(allocations[0].error_code, c.code);
        EXPECT_EQ(allocations[0].error_reason, c.reason);
        EXPECT_EQ(client->state(), TurnState::failed);
        // Exactly once: later answers find no transaction.
        run_for(60s);
        EXPECT_EQ(allocations.size(), 1u);
        EXPECT_EQ(socket.sent.size(), 2u);
    }
}

TEST_F(TurnClientTest, RetransmitsPerRfc8489AndTimesOut) {
    make(config());
    start_allocate();
    const Time start = clock.now();
    run_for(60s);
    // RFC 8489 §6.2.1: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; timeout at 39.5 s.
    const std::vector<Time> expected = {0ms, 500ms, 1500ms, 3500ms, 7500ms, 15500ms, 31500ms};
    ASSERT_EQ(socket.sent.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(socket.sent[i].at - start, expected[i]) << i;
        EXPECT_EQ(socket.sent[i].datagram, socket.sent[0].datagram) << "the same bytes, " << i;
    }
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::timeout);
    EXPECT_EQ(allocations[0].elapsed, 39500ms);
    EXPECT_EQ(client->counters().retransmissions, 6u);
    EXPECT_EQ(client->state(), TurnState::failed);
}

TEST_F(TurnClientTest, MaxDurationCutsTheSchedule) {
    auto c = config();
    c.policy.max_duration = 2s;
    make(c);
    start_allocate();
    run_for(10s);
    EXPECT_EQ(socket.sent.size(), 3u);  // 0, 0.5, 1.5 s
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].elapsed, 2s);
}

TEST_F(TurnClientTest, SendFailureOfTheFirstRequestReported) {
    make(config());
    socket.accept = false;
    start_allocate();
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::send_failed);
}

TEST_F(TurnClientTest, ForgedAndUnverifiableResponsesDroppedAndCounted) {
    make(config());
    start_allocate();
    const Sent first = last();
    // A success to the unauthenticated Allocate cannot be verified.
    EXPECT_TRUE(answer_allocate(first, 600, Sign::none));
    EXPECT_EQ(client->drops(TurnDrop::unauthenticated_success), 1u);
    ASSERT_TRUE(answer_error(first, 401, Sign::none, "nonce-1"));
    run_for(0us);
    const Sent signed_request = last();
    // Not from the server: not the client's at all.
    {
        const auto bytes = response(signed_request, stun::MessageClass::success_response, {},
                                    Sign::md5);
        EXPECT_FALSE(client->on_datagram(stun::Address::v4(0xCB007163, 3478), bytes));
    }
    // Unsigned, wrongly signed, a bad FINGERPRINT, an unknown transaction, the wrong method.
    EXPECT_TRUE(answer_allocate(signed_request, 600, Sign::none));
    EXPECT_EQ(client->drops(TurnDrop::missing_integrity), 1u);
    EXPECT_TRUE(answer_allocate(signed_request, 600, Sign::wrong));
    EXPECT_EQ(client->drops(TurnDrop::bad_integrity), 1u);
    {
        auto bytes = response(signed_request, stun::MessageClass::success_response, {},
                              Sign::md5);
        bytes.back() ^= std::byte{1};
        EXPECT_TRUE(client->on_datagram(server, bytes));
        EXPECT_EQ(client->drops(TurnDrop::bad_fingerprint), 1u);
    }
    {
        Sent other = signed_request;
        other.datagram[10] ^= std::byte{0xFF};  // another transaction ID
        EXPECT_TRUE(answer_allocate(other));
        EXPECT_EQ(client->drops(TurnDrop::unknown_transaction), 1u);
    }
    {
        std::vector<std::byte> buffer(256);
        const auto m = parse(signed_request);
        stun::MessageWriter w(buffer, stun::Method::refresh, stun::MessageClass::success_response,
                              m.transaction_id());
        w.add_message_integrity(md5_key());
        EXPECT_TRUE(client->on_datagram(server, w.finish()));
        EXPECT_EQ(client->drops(TurnDrop::wrong_method), 1u);
    }
    // A signed success without XOR-RELAYED-ADDRESS.
    EXPECT_TRUE(answer(signed_request, stun::MessageClass::success_response,
                       [](stun::MessageWriter& w) { w.add_u32(stun::attr::lifetime, 600); },
                       Sign::md5));
    EXPECT_EQ(client->drops(TurnDrop::bad_attribute), 1u);
    // Garbage and a malformed STUN message from the server.
    EXPECT_TRUE(client->on_datagram(server, hex("ff00")));
    EXPECT_EQ(client->drops(TurnDrop::not_turn), 1u);
    EXPECT_TRUE(client->on_datagram(server, hex("0101 0004 2112a442 000000000000000000000000")));
    EXPECT_EQ(client->drops(TurnDrop::malformed), 1u);
    // None of it ended the transaction; the real answer does.
    EXPECT_TRUE(allocations.empty());
    EXPECT_TRUE(answer_allocate(signed_request));
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::success);
}

TEST_F(TurnClientTest, BindingMessagesFromTheServerAreTheOwners) {
    make(config());
    allocate_ok();
    std::vector<std::byte> buffer(64);
    stun::TransactionId id{};
    stun::MessageWriter w(buffer, stun::Method::binding, stun::MessageClass::success_response, id);
    w.add_xor_address(stun::attr::xor_mapped_address, mapped);
    EXPECT_FALSE(client->on_datagram(server, w.finish()));
    EXPECT_EQ(client->drops(TurnDrop::unknown_transaction), 0u);
}

TEST_F(TurnClientTest, PermissionThenChannelBind) {
    make(config());
    allocate_ok();
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    EXPECT_TRUE(peer_results.empty());
    run_for(0us);
    {
        // RFC 8656 §10.1: XOR-PEER-ADDRESS, signed.
        const auto m = parse(last());
        EXPECT_TRUE(m.is(stun::Method::create_permission, stun::MessageClass::request));
        stun::Address a;
        ASSERT_TRUE(m.find(stun::attr::xor_peer_address));
        EXPECT_EQ(stun::decode_xor_address(*m.find(stun::attr::xor_peer_address),
                                           m.transaction_id(), a),
                  stun::ParseError::ok);
        EXPECT_EQ(a, peer);
        EXPECT_EQ(stun::verify_message_integrity(m, md5_key()), stun::IntegrityResult::ok);
    }
    ASSERT_TRUE(answer_ok(last()));
    EXPECT_TRUE(peer_results.empty());  // the channel comes next
    run_for(0us);
    {
        // RFC 8656 §12.1: CHANNEL-NUMBER 0x4000, XOR-PEER-ADDRESS.
        const auto m = parse(last());
        EXPECT_TRUE(m.is(stun::Method::channel_bind, stun::MessageClass::request));
        std::uint16_t channel = 0;
        ASSERT_TRUE(m.find(stun::attr::channel_number));
        EXPECT_EQ(stun::decode_channel_number(*m.find(stun::attr::channel_number), channel),
                  stun::ParseError::ok);
        EXPECT_EQ(channel, 0x4000);
        EXPECT_EQ(stun::verify_message_integrity(m, md5_key()), stun::IntegrityResult::ok);
    }
    ASSERT_TRUE(answer_ok(last()));
    ASSERT_EQ(peer_results, std::vector<std::string>{""});
    EXPECT_EQ(client->channel_of(peer), 0x4000);
    add_peer_ok(peer2);
    EXPECT_EQ(client->channel_of(peer2), 0x4001);
    // Adding a ready peer again answers at once, from a timer, with nothing sent.
    const auto sent = socket.sent.size();
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(0us);
    EXPECT_EQ(peer_results.back(), "");
    EXPECT_EQ(socket.sent.size(), sent);
}

TEST_F(TurnClientTest, DeniedPeerReported403) {
    make(config());
    allocate_ok();
    const auto loopback = stun::Address::v4(0x7F000001, 3480);
    client->add_peer(loopback, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(0us);
    ASSERT_TRUE(answer_error(last(), 403, Sign::md5));
    ASSERT_EQ(peer_results,
              std::vector<std::string>{"CreatePermission 127.0.0.1:3480: 403 Forbidden"});
    const std::array<std::byte, 1> one{};
    EXPECT_FALSE(client->send(loopback, one));
    EXPECT_EQ(client->drops(TurnDrop::send_no_permission), 1u);
    // Nor is its data taken: it holds no permission (RFC 8656 §11.4).
    std::vector<std::byte> buffer(128);
    stun::TransactionId id{};
    stun::MessageWriter w(buffer, stun::Method::data, stun::MessageClass::indication, id);
    w.add_xor_address(stun::attr::xor_peer_address, loopback);
    w.add(stun::attr::data, bytes_of("x"));
    EXPECT_TRUE(client->on_datagram(server, w.finish()));
    EXPECT_EQ(client->drops(TurnDrop::unknown_peer), 1u);
    EXPECT_TRUE(received.empty());
    EXPECT_EQ(client->state(), TurnState::allocated);
}

TEST_F(TurnClientTest, AddPeerBeforeAllocationAnswersNotAllocated) {
    make(config());
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(0us);
    EXPECT_EQ(peer_results, std::vector<std::string>{"not allocated"});
    EXPECT_TRUE(socket.sent.empty());
}

TEST_F(TurnClientTest, PeerTimeoutReported) {
    make(config());
    allocate_ok();
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(60s);
    EXPECT_EQ(peer_results,
              std::vector<std::string>{"CreatePermission 198.51.100.7:3480: timeout"});
}

TEST_F(TurnClientTest, SendBuildsChannelData) {
    make(config());
    allocate_ok();
    add_peer_ok(peer);
    const auto before = socket.sent.size();
    EXPECT_TRUE(client->send(peer, bytes_of("hello")));
    ASSERT_EQ(socket.sent.size(), before + 1);
    EXPECT_EQ(last().to, server);
    // RFC 8656 §12.4: channel 0x4000, length 5, the data; unpadded over UDP (§12.5).
    EXPECT_EQ(last().datagram, hex("4000 0005 68656c6c6f"));
    EXPECT_EQ(client->counters().channel_data_sent, 1u);
}

TEST_F(TurnClientTest, SendBuildsSendIndicationWithoutChannels) {
    auto c = config();
    c.use_channels = false;
    make(c);
    allocate_ok();
    add_peer_ok(peer, false);
    EXPECT_EQ(client->channel_of(peer), 0);
    EXPECT_TRUE(client->send(peer, bytes_of("hello")));
    // RFC 8656 §11.1: Send indication (0x0016), XOR-PEER-ADDRESS 198.51.100.7:3480 (port XOR
    // 0x2112, address XOR the cookie), DATA "hello" padded to 8; the random transaction ID
    // copied from what was sent.
    std::vector<std::byte> expected = hex(
        "0016 0018 2112a442 000000000000000000000000"
        "0012 0008 0001 2c8a e721c045"
        "0013 0005 68656c6c6f 000000");
    std::copy(last().datagram.begin() + 8, last().datagram.begin() + 20, expected.begin() + 8);
    EXPECT_EQ(last().datagram, expected);
    EXPECT_EQ(client->counters().send_indications_sent, 1u);
}

TEST_F(TurnClientTest, SendIndicationWhileTheChannelIsBeingBound) {
    make(config());
    allocate_ok();
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(0us);
    const std::array<std::byte, 1> one{};
    EXPECT_FALSE(client->send(peer, one));  // no permission yet
    EXPECT_EQ(client->drops(TurnDrop::send_no_permission), 1u);
    ASSERT_TRUE(answer_ok(last()));
    run_for(0us);  // ChannelBind in flight, the permission held
    EXPECT_TRUE(client->send(peer, one));
    EXPECT_TRUE(parse(last()).is(stun::Method::send, stun::MessageClass::indication));
}

TEST_F(TurnClientTest, DataPathDoesNotAllocate) {
    for (const bool channels : {true, false}) {
        SCOPED_TRACE(channels ? "ChannelData" : "Send and Data indications");
        socket.sent.clear();
        socket.sent.reserve(4096);
        allocations.clear();
        auto c = config();
        c.use_channels = channels;
        make(c);
        allocate_ok();
        add_peer_ok(peer, channels);
        std::uint64_t bytes_received = 0;
        client->on_data([&](const stun::Address&, std::span<const std::byte> data) {
            bytes_received += data.size();
        });
        std::vector<std::byte> payload(160, std::byte{0x5A});
        std::vector<std::byte> incoming;
        if (channels) {
            incoming = hex("4000 00a0");
            incoming.insert(incoming.end(), payload.begin(), payload.end());
        } else {
            incoming.resize(256);
            stun::TransactionId id{};
            stun::MessageWriter w(incoming, stun::Method::data, stun::MessageClass::indication,
                                  id);
            w.add_xor_address(stun::attr::xor_peer_address, peer);
            w.add(stun::attr::data, payload);
            incoming.resize(w.finish().size());
        }
        // Warm-up: OpenSSL's generator sets itself up on its first use (stun/crypto.h).
        ASSERT_TRUE(client->send(peer, payload));
        const std::uint64_t before = heap_allocations.load();
        for (int i = 0; i < 1000; ++i) {
            EXPECT_TRUE(client->send(peer, payload));
            EXPECT_TRUE(client->on_datagram(server, incoming));
        }
        const std::uint64_t after = heap_allocations.load();
        // The recorder copies each datagram into a vector: one allocation per send, and no
        // more is allowed.
        EXPECT_EQ(after - before, 1000u);
        EXPECT_EQ(bytes_received, 1000u * payload.size());
    }
}

TEST_F(TurnClientTest, SendRefusalsCounted) {
    make(config());
    const std::array<std::byte, 1> one{};
    EXPECT_FALSE(client->send(peer, one));
    EXPECT_EQ(client->drops(TurnDrop::send_not_allocated), 1u);
    allocate_ok();
    EXPECT_FALSE(client->send(peer, one));
    EXPECT_EQ(client->drops(TurnDrop::send_no_permission), 1u);
    add_peer_ok(peer);
    std::vector<std::byte> huge(70000);
    EXPECT_FALSE(client->send(peer, huge));
    EXPECT_EQ(client->drops(TurnDrop::send_too_large), 1u);
    socket.accept = false;
    EXPECT_FALSE(client->send(peer, one));
    EXPECT_EQ(client->drops(TurnDrop::send_failed), 1u);
}

TEST_F(TurnClientTest, ReceivesDataIndicationsAndChannelData) {
    make(config());
    allocate_ok();
    add_peer_ok(peer);
    // A Data indication from the peer (RFC 8656 §11.4).
    std::vector<std::byte> buffer(256);
    stun::TransactionId id{};
    id[0] = std::byte{7};
    auto data_indication = [&](const stun::Address& from, std::string_view payload) {
        stun::MessageWriter w(buffer, stun::Method::data, stun::MessageClass::indication, id);
        w.add_xor_address(stun::attr::xor_peer_address, from);
        w.add(stun::attr::data, bytes_of(payload));
        const auto out = w.finish();
        return std::vector<std::byte>(out.begin(), out.end());
    };
    EXPECT_TRUE(client->on_datagram(server, data_indication(peer, "indicated")));
    // ChannelData on 0x4000, unpadded and padded (RFC 8656 §12.5: tolerated over UDP).
    EXPECT_TRUE(client->on_datagram(server, hex("4000 0005 68656c6c6f")));
    EXPECT_TRUE(client->on_datagram(server, hex("4000 0003 616263 00")));
    ASSERT_EQ(received.size(), 3u);
    EXPECT_EQ(received[0], std::make_pair(peer, std::string("indicated")));
    EXPECT_EQ(received[1], std::make_pair(peer, std::string("hello")));
    EXPECT_EQ(received[2], std::make_pair(peer, std::string("abc")));
    EXPECT_EQ(client->counters().data_indications_received, 1u);
    EXPECT_EQ(client->counters().channel_data_received, 2u);

    // What is not for a known peer is dropped and counted.
    EXPECT_TRUE(client->on_datagram(server, data_indication(peer2, "stranger")));
    EXPECT_EQ(client->drops(TurnDrop::unknown_peer), 1u);
    // A permission is per IP address (RFC 8656 §9): the peer from another port (a symmetric
    // NAT's mapping towards the relay) is delivered, with that port.
    auto other_port = peer;
    other_port.port = 40000;
    EXPECT_TRUE(client->on_datagram(server, data_indication(other_port, "moved")));
    ASSERT_EQ(received.size(), 4u);
    EXPECT_EQ(received[3], std::make_pair(other_port, std::string("moved")));
    EXPECT_EQ(client->drops(TurnDrop::unknown_peer), 1u);
    EXPECT_TRUE(client->on_datagram(server, hex("4001 0001 61")));
    EXPECT_EQ(client->drops(TurnDrop::unknown_channel), 1u);
    EXPECT_TRUE(client->on_datagram(server, hex("4000 0009 616263")));
    EXPECT_EQ(client->drops(TurnDrop::bad_channel_data), 1u);
    {
        stun::MessageWriter w(buffer, stun::Method::data, stun::MessageClass::indication, id);
        w.add(stun::attr::data, bytes_of("no peer"));
        EXPECT_TRUE(client->on_datagram(server, w.finish()));
        EXPECT_EQ(client->drops(TurnDrop::bad_data_indication), 1u);
    }
    {
        stun::MessageWriter w(buffer, stun::Method::allocate, stun::MessageClass::request, id);
        EXPECT_TRUE(client->on_datagram(server, w.finish()));
        EXPECT_EQ(client->drops(TurnDrop::unexpected_message), 1u);
    }
    // From the peer itself, not through the server: the owner's business.
    EXPECT_FALSE(client->on_datagram(peer, hex("4000 0001 61")));
    EXPECT_EQ(received.size(), 4u);
}

TEST_F(TurnClientTest, RefreshesFireOnTime) {
    make(config());
    allocate_ok(600);
    const Time allocated_at = clock.now();
    add_peer_ok(peer);
    const Time peer_at = clock.now();
    ASSERT_EQ(peer_at, allocated_at);  // the test's server answers at once
    // Permission at +4 min (RFC 8656 §9: 5 min), channel at +9 min (§12: 10 min), allocation
    // at lifetime - 60 s = +9 min.
    std::vector<std::pair<Time, stun::Method>> seen;
    const auto answered = socket.sent.size();
    auto serve_until = [&](Time end) {
        std::size_t next = socket.sent.size();
        while (clock.now() < end) {
            const auto deadline = loop.timers().next_deadline();
            if (!deadline || *deadline > end) break;
            run_to(*deadline);
            while (next < socket.sent.size()) {
                const Sent s = socket.sent[next++];
                const auto m = parse(s);
                seen.emplace_back(s.at - allocated_at, static_cast<stun::Method>(m.method()));
                if (m.method() == static_cast<std::uint16_t>(stun::Method::refresh))
                    ASSERT_TRUE(answer(s, stun::MessageClass::success_response,
                                       [](stun::MessageWriter& w) {
                                           w.add_u32(stun::attr::lifetime, 600);
                                       },
                                       Sign::md5));
                else
                    ASSERT_TRUE(answer_ok(s));
            }
        }
        run_to(end);
    };
    serve_until(allocated_at + 10min);
    ASSERT_GT(socket.sent.size(), answered);
    const std::vector<std::pair<Time, stun::Method>> expected = {
        {4min, stun::Method::create_permission},
        {8min, stun::Method::create_permission},
        {9min, stun::Method::refresh},
        {9min, stun::Method::channel_bind},
    };
    EXPECT_EQ(seen, expected);
    EXPECT_EQ(client->counters().allocation_refreshes, 1u);
    EXPECT_EQ(client->counters().permission_refreshes, 2u);
    EXPECT_EQ(client->counters().channel_refreshes, 1u);
    // The refresh asks for the configured lifetime again, signed.
    for (auto it = socket.sent.rbegin(); it != socket.sent.rend(); ++it) {
        const auto m = parse(*it);
        if (m.method() != static_cast<std::uint16_t>(stun::Method::refresh)) continue;
        EXPECT_EQ(u32(m, stun::attr::lifetime), 600u);
        EXPECT_EQ(stun::verify_message_integrity(m, md5_key()), stun::IntegrityResult::ok);
        break;
    }
    EXPECT_TRUE(failures.empty());
}

TEST_F(TurnClientTest, ShortLifetimeRefreshedAtHalf) {
    make(config());
    allocate_ok(100);
    const Time at = clock.now();
    run_for(49s);
    EXPECT_FALSE(parse(last()).is(stun::Method::refresh, stun::MessageClass::request));
    run_for(1s);
    ASSERT_TRUE(parse(last()).is(stun::Method::refresh, stun::MessageClass::request));
    EXPECT_EQ(last().at - at, 50s);
}

TEST_F(TurnClientTest, RefreshStaleNonceRetriedThenSucceeds) {
    make(config());
    allocate_ok(600);
    run_for(540s);
    ASSERT_TRUE(parse(last()).is(stun::Method::refresh, stun::MessageClass::request));
    ASSERT_TRUE(answer_error(last(), 438, Sign::none, "nonce-2"));
    run_for(0us);
    EXPECT_EQ(text(parse(last()), stun::attr::nonce), "nonce-2");
    ASSERT_TRUE(answer(last(), stun::MessageClass::success_response,
                       [](stun::MessageWriter& w) { w.add_u32(stun::attr::lifetime, 600); },
                       Sign::md5));
    EXPECT_TRUE(failures.empty());
    EXPECT_EQ(client->state(), TurnState::allocated);
    EXPECT_EQ(client->counters().stale_nonce_retries, 1u);
}

TEST_F(TurnClientTest, RefreshFailuresReported) {
    make(config());
    allocate_ok(600);
    run_for(540s);
    ASSERT_TRUE(answer_error(last(), 437, Sign::md5));
    EXPECT_EQ(failures, std::vector<std::string>{"Refresh: 437 Allocation Mismatch"});
    EXPECT_EQ(client->state(), TurnState::failed);
    const std::array<std::byte, 1> one{};
    EXPECT_FALSE(client->send(peer, one));
}

TEST_F(TurnClientTest, RefreshTimeoutReported) {
    make(config());
    allocate_ok(600);
    run_for(540s + 39500ms);
    EXPECT_EQ(failures, std::vector<std::string>{"Refresh: timeout"});
    EXPECT_EQ(client->state(), TurnState::failed);
}

TEST_F(TurnClientTest, PermissionRefreshFailureReported) {
    make(config());
    allocate_ok(600);
    add_peer_ok(peer);
    run_for(4min);
    ASSERT_TRUE(parse(last()).is(stun::Method::create_permission, stun::MessageClass::request));
    ASSERT_TRUE(answer_error(last(), 403, Sign::md5));
    EXPECT_EQ(failures,
              std::vector<std::string>{"CreatePermission 198.51.100.7:3480: 403 Forbidden"});
    const std::array<std::byte, 1> one{};
    EXPECT_FALSE(client->send(peer, one));
    EXPECT_EQ(client->state(), TurnState::allocated);
}

TEST_F(TurnClientTest, ReleaseSendsLifetimeZeroAndStopsTimers) {
    make(config());
    allocate_ok(600);
    add_peer_ok(peer);
    std::vector<std::string> released;
    client->release([&](const std::string& e) { released.push_back(e); });
    EXPECT_EQ(client->state(), TurnState::released);
    run_for(0us);
    const auto m = parse(last());
    EXPECT_TRUE(m.is(stun::Method::refresh, stun::MessageClass::request));
    EXPECT_EQ(u32(m, stun::attr::lifetime), 0u);
    EXPECT_EQ(stun::verify_message_integrity(m, md5_key()), stun::IntegrityResult::ok);
    ASSERT_TRUE(answer(last(), stun::MessageClass::success_response,
                       [](stun::MessageWriter& w) { w.add_u32(stun::attr::lifetime, 0); },
                       Sign::md5));
    EXPECT_EQ(released, std::vector<std::string>{""});
    // No refresh of anything afterwards.
    const auto sent = socket.sent.size();
    EXPECT_EQ(loop.timers().size(), 0u);
    run_for(30min);
    EXPECT_EQ(socket.sent.size(), sent);
    const std::array<std::byte, 1> one{};
    EXPECT_FALSE(client->send(peer, one));
    EXPECT_EQ(client->drops(TurnDrop::send_not_allocated), 1u);
}

TEST_F(TurnClientTest, ReleaseEndsWhatIsInFlightOnce) {
    make(config());
    start_allocate();
    std::vector<std::string> released;
    client->release([&](const std::string& e) { released.push_back(e); });
    run_for(60s);
    ASSERT_EQ(allocations.size(), 1u);
    EXPECT_EQ(allocations[0].status, TransactionStatus::timeout);
    EXPECT_EQ(allocations[0].error_reason, "released before the answer");
    EXPECT_EQ(released, std::vector<std::string>{"not allocated"});
    EXPECT_EQ(socket.sent.size(), 1u);  // the first Allocate only

    allocations.clear();
    socket.sent.clear();
    make(config());
    allocate_ok();
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(0us);
    client->release();
    run_for(60s);
    EXPECT_EQ(peer_results, std::vector<std::string>{"released"});
}

TEST_F(TurnClientTest, AllocationFailureEndsAddPeerInFlight) {
    make(config());
    allocate_ok(600);
    run_for(540s);
    const Sent refresh = last();
    client->add_peer(peer, [this](const std::string& e) { peer_results.push_back(e); });
    run_for(0us);
    const Sent permission = last();
    ASSERT_TRUE(answer_error(refresh, 437, Sign::md5));
    ASSERT_TRUE(answer_ok(permission));
    EXPECT_EQ(peer_results, std::vector<std::string>{"not allocated"});
}

TEST_F(TurnClientTest, ReleaseWithoutAllocationSendsNothing) {
    make(config());
    std::vector<std::string> released;
    client->release([&](const std::string& e) { released.push_back(e); });
    run_for(0us);
    EXPECT_EQ(released, std::vector<std::string>{"not allocated"});
    EXPECT_TRUE(socket.sent.empty());
}

TEST_F(TurnClientTest, ConfigRefusalsNameTheField) {
    auto c = config();
    c.username.clear();
    EXPECT_THROW(TurnClient(loop, socket, c), std::invalid_argument);
    c = config();
    c.lifetime = 0s;
    EXPECT_THROW(TurnClient(loop, socket, c), std::invalid_argument);
    make(config());
    start_allocate();
    EXPECT_THROW(client->allocate([](const TurnAllocation&) {}), std::logic_error);
}

TEST_F(TurnClientTest, DropNamesAndHelpCoverEveryReason) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(TurnDrop::count); ++i) {
        EXPECT_NE(to_string(static_cast<TurnDrop>(i)), "?");
        EXPECT_NE(help(static_cast<TurnDrop>(i)), "?");
    }
}

}  // namespace
}  // namespace punch
