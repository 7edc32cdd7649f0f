// The TURN relay role (RFC 8656) driven as a client drives it: requests built with
// stun::MessageWriter, signed with a real long-term key whose nonce came from a first 401, the
// responses parsed back and their integrity verified with the client's key; time from an
// injected clock. Every error code the role answers comes up in at least one test.
#include "engine/relay_role.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/credentials.h"
#include "stun/integrity.h"
#include "stun/writer.h"
#include "allocation_count.h"
#include "test_support.h"

namespace {

using engine::TurnAction;
using engine::TurnAnswer;
using engine::TurnOutcome;
using stun::AddressFamily;
using stun::Method;
using stun::MessageClass;

constexpr std::string_view test_realm = "example.org";
constexpr std::uint64_t ticks_per_second = 1'000'000;  // the injected clock counts µs
constexpr std::uint64_t start_ticks = 5'000 * ticks_per_second;
constexpr std::uint64_t start_s = 1'700'000'000;
constexpr std::uint16_t first_relay_port = 50000;
constexpr std::uint32_t relay_port_count = 16;
constexpr std::uint16_t max_permissions = 8;
constexpr std::uint16_t max_channels = 4;

stun::Address at(std::string_view ip, std::uint16_t port) {
    stun::Address a = engine::test::address(ip);
    a.port = port;
    return a;
}

const stun::Address server = at("192.0.2.1", 3478);
const stun::Address relay_ipv4 = at("203.0.113.1", 0);
const stun::Address relay_ipv6 = at("2001:db8::1", 0);
const stun::Address peer_a = at("93.184.216.34", 6000);
const stun::Address peer_b = at("8.8.8.8", 6001);
const stun::Address peer_ipv6 = at("2606:4700::1111", 6002);
const stun::Address loopback_peer = at("127.0.0.1", 6003);

engine::Credentials make_credentials() {
    engine::NonceKeys keys;
    keys.current.id = 1;
    keys.current.secret.fill(std::byte{0x5A});
    const engine::LongTermUser users[] = {{"alice", "alice-password"}, {"bob", "bob-password"}};
    engine::Credentials out;
    if (engine::Credentials::build({test_realm, users, {}, keys, 600}, out) !=
        engine::CredentialsError::ok)
        throw std::runtime_error("test credentials");
    return out;
}

engine::RelayContext make_context(std::uint8_t families, engine::RelayDrain drain = {}) {
    const stun::Address own[] = {server, relay_ipv4, relay_ipv6};
    engine::RelayLimits limits;
    limits.max_lifetime_s = 3600;
    limits.max_allocations_per_user = 2;
    limits.ticks_per_second = ticks_per_second;
    return engine::RelayContext(make_credentials(), engine::PeerPolicy({}, {}, own),
                                {{relay_ipv4, relay_ipv6, families}}, limits, std::move(drain));
}

// Peer entries for every allocation's largest set unless a test asks for fewer.
engine::RelayTableLimits table_limits(std::uint32_t port_count = relay_port_count,
                                      std::uint32_t peer_entries = 8 * (max_permissions +
                                                                        max_channels)) {
    engine::RelayTableLimits limits;
    limits.capacity = 8;
    limits.first_relay_port = first_relay_port;
    limits.relay_port_count = port_count;
    limits.max_permissions = max_permissions;
    limits.max_channels = max_channels;
    limits.peer_entries = peer_entries;
    limits.reservations = limits.capacity;
    limits.ticks_per_second = ticks_per_second;
    limits.seed = 7;
    return limits;
}

std::unique_ptr<engine::RelayShard> make_shard(std::uint32_t port_count = relay_port_count,
                                               std::uint32_t peer_entries = 8 * (max_permissions +
                                                                                 max_channels)) {
    // Three unauthenticated requests at once, then one a second.
    const auto rate = engine::RateLimit::make(1, 3, ticks_per_second);
    return std::make_unique<engine::RelayShard>(table_limits(port_count, peer_entries), *rate,
                                                64, 11);
}

stun::Message parse(std::span<const std::byte> bytes) {
    stun::Message message;
    EXPECT_EQ(stun::Message::parse(bytes, message), stun::ParseError::ok);
    return message;
}

// A TURN client on one 5-tuple, with its long-term key and the nonce of its last challenge.
struct Client {
    stun::Address address;
    engine::FiveTuple tuple;
    std::string username;
    stun::LongTermKeyMd5 key{};
    std::string nonce;
    std::uint32_t next_transaction = 1;
};

using Attributes = std::function<void(stun::MessageWriter&)>;

struct Options {
    bool sign = true;
    bool fingerprint = false;
};

// One exchange: the request (kept: a forward's payload points into it), the answer, and the
// response bytes.
struct Exchange {
    std::vector<std::byte> request;
    TurnAnswer answer;
    std::vector<std::byte> response;

    [[nodiscard]] stun::Message message() const { return parse(response); }
    // 0 for a success response, else its ERROR-CODE.
    [[nodiscard]] std::uint16_t code() const {
        if (answer.action != TurnAction::respond) return 0xFFFF;
        const stun::Message m = message();
        const auto attribute = m.find(stun::attr::error_code);
        if (!attribute) return 0;
        stun::ErrorCodeValue error;
        EXPECT_EQ(stun::decode_error_code(*attribute, error), stun::ParseError::ok);
        EXPECT_EQ(m.message_class(), MessageClass::error_response);
        return error.code;
    }
};

class RelayRole : public ::testing::Test {
protected:
    engine::RelayContext context = make_context(engine::relay_ipv4 | engine::relay_ipv6);
    std::unique_ptr<engine::RelayShard> shard = make_shard();
    std::uint64_t now_ticks = start_ticks;
    std::uint64_t now_s = start_s;

    void advance(std::uint64_t seconds) {
        now_ticks += seconds * ticks_per_second;
        now_s += seconds;
    }

    Client make_client(std::string_view username, std::string_view password,
                       std::uint16_t port = 40000, std::string_view ip = "198.51.100.7") {
        Client c;
        c.address = at(ip, port);
        c.tuple = *engine::FiveTuple::make(c.address, server);
        c.username = std::string(username);
        EXPECT_EQ(stun::long_term_key_md5(username, test_realm, password, c.key),
                  stun::CredentialError::ok);
        return c;
    }

    std::vector<std::byte> build(Client& c, Method method, MessageClass message_class,
                                 const Attributes& attributes, const Options& options = {}) {
        stun::TransactionId id{};
        stun::store_be32(id.data(), 0xC0FFEE00u ^ c.address.port);
        stun::store_be32(id.data() + 8, c.next_transaction++);
        std::vector<std::byte> buffer(1500);
        stun::MessageWriter writer(buffer, method, message_class, id);
        if (attributes) attributes(writer);
        if (options.sign) {
            writer.add_text(stun::attr::username, c.username);
            writer.add_text(stun::attr::realm, test_realm);
            writer.add_text(stun::attr::nonce, c.nonce);
            writer.add_message_integrity(c.key);
        }
        if (options.fingerprint) writer.add_fingerprint();
        EXPECT_TRUE(writer.ok()) << stun::to_string(writer.error());
        buffer.resize(writer.size());
        return buffer;
    }

    Exchange send(const Client& c, std::vector<std::byte> request) {
        Exchange e;
        e.request = std::move(request);
        e.response.resize(1500);
        const stun::Message message = parse(e.request);
        e.answer = engine::handle_turn(context, *shard, message, e.request, c.tuple, now_ticks,
                                       now_s, e.response);
        e.response.resize(e.answer.action == TurnAction::respond ? e.answer.response_length : 0);
        if (e.answer.action == TurnAction::respond && e.code() != 401 && e.code() != 400 &&
            e.code() != 438) {
            // RFC 8489 §9.2.4: every answer to an authenticated request is signed.
            EXPECT_EQ(stun::verify_message_integrity(e.message(), c.key),
                      stun::IntegrityResult::ok);
        }
        return e;
    }

    Exchange request(Client& c, Method method, const Attributes& attributes,
                     const Options& options = {}) {
        return send(c, build(c, method, MessageClass::request, attributes, options));
    }

    // A real client's first step: an Allocate without credentials, answered 401 with a NONCE.
    void challenge(Client& c) {
        const Exchange e = request(
            c, Method::allocate,
            [](stun::MessageWriter& w) { w.add_requested_transport(stun::transport_udp); },
            {.sign = false});
        ASSERT_EQ(e.code(), 401);
        EXPECT_EQ(e.answer.outcome, TurnOutcome::auth_failed);
        EXPECT_EQ(e.answer.auth, engine::AuthVerdict::missing_integrity);
        take_nonce(c, e);
    }

    static void take_nonce(Client& c, const Exchange& e) {
        const stun::Message m = e.message();
        std::string_view nonce;
        ASSERT_TRUE(m.find(stun::attr::nonce));
        ASSERT_EQ(stun::decode_text(*m.find(stun::attr::nonce), nonce), stun::ParseError::ok);
        c.nonce = std::string(nonce);
    }

    Exchange allocate(Client& c, const Attributes& more = {}, const Options& options = {}) {
        return request(
            c, Method::allocate,
            [&](stun::MessageWriter& w) {
                w.add_requested_transport(stun::transport_udp);
                if (more) more(w);
            },
            options);
    }

    // A client with an allocation.
    Client allocated(std::string_view username = "alice",
                     std::string_view password = "alice-password", std::uint16_t port = 40000,
                     std::string_view ip = "198.51.100.7") {
        Client c = make_client(username, password, port, ip);
        challenge(c);
        const Exchange e = allocate(c);
        EXPECT_EQ(e.code(), 0);
        EXPECT_EQ(e.answer.outcome, TurnOutcome::allocated);
        return c;
    }

    Exchange refresh(Client& c, std::optional<std::uint32_t> lifetime,
                     std::optional<AddressFamily> family = std::nullopt) {
        return request(c, Method::refresh, [&](stun::MessageWriter& w) {
            if (lifetime) w.add_u32(stun::attr::lifetime, *lifetime);
            if (family) w.add_address_family(stun::attr::requested_address_family, *family);
        });
    }

    Exchange create_permission(Client& c, std::vector<stun::Address> peers) {
        return request(c, Method::create_permission, [&](stun::MessageWriter& w) {
            for (const stun::Address& p : peers) w.add_xor_address(stun::attr::xor_peer_address, p);
        });
    }

    Exchange channel_bind(Client& c, std::uint16_t number, const stun::Address& peer) {
        return request(c, Method::channel_bind, [&](stun::MessageWriter& w) {
            w.add_channel_number(number);
            w.add_xor_address(stun::attr::xor_peer_address, peer);
        });
    }

    Exchange send_indication(Client& c, const stun::Address& peer,
                             std::span<const std::byte> payload, bool with_data = true) {
        return send(c, build(
                           c, Method::send, MessageClass::indication,
                           [&](stun::MessageWriter& w) {
                               w.add_xor_address(stun::attr::xor_peer_address, peer);
                               if (with_data) w.add(stun::attr::data, payload);
                           },
                           {.sign = false}));
    }

    const engine::Allocation* allocation_of(const Client& c) {
        const std::uint32_t slot = shard->table().find(c.tuple);
        return slot == engine::RelayTable::no_slot ? nullptr : &shard->table().at(slot);
    }
};

std::uint32_t lifetime_of(const stun::Message& m) {
    std::uint32_t value = 0;
    const std::optional<stun::Attribute> attribute = m.find(stun::attr::lifetime);
    EXPECT_TRUE(attribute);
    if (attribute) {
        EXPECT_EQ(stun::decode_u32(*attribute, value), stun::ParseError::ok);
    }
    return value;
}

std::vector<stun::Address> relayed_addresses(const stun::Message& m) {
    std::vector<stun::Address> out;
    for (const stun::Attribute a : m) {
        if (a.type != stun::attr::xor_relayed_address) continue;
        stun::Address address;
        EXPECT_EQ(stun::decode_xor_address(a, m.transaction_id(), address), stun::ParseError::ok);
        out.push_back(address);
    }
    return out;
}

// --- Allocate (RFC 8656 §7.2) ---

TEST_F(RelayRole, AllocateDanceFromChallengeToRelayedAddress) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c, {}, {.fingerprint = true});
    ASSERT_EQ(e.answer.action, TurnAction::respond);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::allocated);
    const stun::Message m = e.message();
    EXPECT_TRUE(m.is(Method::allocate, MessageClass::success_response));
    EXPECT_TRUE(std::ranges::equal(m.transaction_id(), parse(e.request).transaction_id()));
    EXPECT_EQ(stun::verify_message_integrity(m, c.key), stun::IntegrityResult::ok);
    EXPECT_EQ(stun::verify_fingerprint(m), stun::IntegrityResult::ok);
    const std::vector<stun::Address> relayed = relayed_addresses(m);
    ASSERT_EQ(relayed.size(), 1u);  // RFC 6156 §4.2: IPv4 by default
    EXPECT_EQ(relayed[0].family, AddressFamily::ipv4);
    EXPECT_EQ(relayed[0].ip, relay_ipv4.ip);
    EXPECT_GE(relayed[0].port, first_relay_port);
    EXPECT_LT(relayed[0].port, first_relay_port + relay_port_count);
    EXPECT_EQ(lifetime_of(m), 600u);
    stun::Address mapped;
    ASSERT_TRUE(m.find(stun::attr::xor_mapped_address));
    ASSERT_EQ(stun::decode_xor_address(*m.find(stun::attr::xor_mapped_address),
                                       m.transaction_id(), mapped),
              stun::ParseError::ok);
    EXPECT_EQ(mapped, c.address);
    const engine::Allocation* a = allocation_of(c);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->relay_port(), relayed[0].port);
    EXPECT_TRUE(shard->table().username_equals(shard->table().find(c.tuple), "alice"));
    EXPECT_EQ(a->expiry(), now_ticks + 600 * ticks_per_second);
    EXPECT_EQ(shard->allocations_of("alice"), 1u);
}

TEST_F(RelayRole, ResponseWithoutFingerprintWhenTheRequestHadNone) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c);
    EXPECT_FALSE(e.message().fingerprint());
}

TEST_F(RelayRole, ResponseWrittenInTheRequestsOwnBuffer) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    std::vector<std::byte> bytes = build(c, Method::allocate, MessageClass::request,
                                         [](stun::MessageWriter& w) {
                                             w.add_requested_transport(stun::transport_udp);
                                         });
    const std::size_t request_size = bytes.size();
    bytes.resize(1500);
    const stun::Message message = parse(std::span(bytes).first(request_size));
    const TurnAnswer answer =
        engine::handle_turn(context, *shard, message, std::span(bytes).first(request_size),
                            c.tuple, now_ticks, now_s, bytes);
    ASSERT_EQ(answer.action, TurnAction::respond);
    ASSERT_EQ(answer.outcome, TurnOutcome::allocated);
    const stun::Message m = parse(std::span(bytes).first(answer.response_length));
    EXPECT_EQ(stun::verify_message_integrity(m, c.key), stun::IntegrityResult::ok);
    EXPECT_EQ(relayed_addresses(m).size(), 1u);
}

TEST_F(RelayRole, LifetimeNegotiatedBetweenDefaultAndMaximum) {
    // §7.2: min(requested, maximum), and the default when that is below it.
    const std::pair<std::uint32_t, std::uint32_t> cases[] = {
        {100, 600}, {1200, 1200}, {100000, 3600}};
    std::uint16_t port = 41000;
    for (const auto& [requested, granted] : cases) {
        Client c = make_client("bob", "bob-password", port++);
        challenge(c);
        const std::uint32_t asked = requested;  // a lambda may not capture a binding (clang)
        const Exchange e = allocate(
            c, [asked](stun::MessageWriter& w) { w.add_u32(stun::attr::lifetime, asked); });
        ASSERT_EQ(e.code(), 0) << requested;
        EXPECT_EQ(lifetime_of(e.message()), granted) << requested;
        ASSERT_EQ(refresh(c, 0).code(), 0);  // bob's quota is 2
    }
}

TEST_F(RelayRole, RetransmittedAllocateGetsIdenticalBytesAndANewOneGets437) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange first = allocate(c, {}, {.fingerprint = true});
    ASSERT_EQ(first.code(), 0);
    const Exchange again = send(c, first.request);
    EXPECT_EQ(again.answer.outcome, TurnOutcome::retransmission);
    EXPECT_EQ(again.response, first.response);
    EXPECT_EQ(shard->table().size(), 1u);
    // A new transaction on the same 5-tuple: §7.2, 437.
    const Exchange other = allocate(c);
    EXPECT_EQ(other.code(), 437);
    EXPECT_EQ(other.answer.outcome, TurnOutcome::allocation_exists);
}

struct AllocateErrorCase {
    const char* name;
    std::function<void(stun::MessageWriter&)> attributes;  // REQUESTED-TRANSPORT is not added
    std::uint16_t code;
    TurnOutcome outcome;
};

TEST_F(RelayRole, AllocateErrorsOneCaseEach) {
    const auto udp = [](stun::MessageWriter& w) { w.add_requested_transport(stun::transport_udp); };
    const auto token = [](stun::MessageWriter& w) { w.add_u64(stun::attr::reservation_token, 42); };
    const AllocateErrorCase cases[] = {
        {"no REQUESTED-TRANSPORT", {}, 400, TurnOutcome::missing_transport},
        {"malformed REQUESTED-TRANSPORT",
         [](stun::MessageWriter& w) {
             w.add_u64(stun::attr::requested_transport, 17);  // 8 bytes, not 4
         },
         400, TurnOutcome::missing_transport},
        {"TCP", [](stun::MessageWriter& w) { w.add_requested_transport(6); }, 442,
         TurnOutcome::unsupported_transport},
        {"RESERVATION-TOKEN with EVEN-PORT",
         [&](stun::MessageWriter& w) {
             udp(w);
             token(w);
             w.add_even_port(false);
         },
         400, TurnOutcome::token_with_family_or_even_port},
        {"RESERVATION-TOKEN with REQUESTED-ADDRESS-FAMILY",
         [&](stun::MessageWriter& w) {
             udp(w);
             token(w);
             w.add_address_family(stun::attr::requested_address_family, AddressFamily::ipv4);
         },
         400, TurnOutcome::token_with_family_or_even_port},
        {"RESERVATION-TOKEN with ADDITIONAL-ADDRESS-FAMILY",
         [&](stun::MessageWriter& w) {
             udp(w);
             token(w);
             w.add_address_family(stun::attr::additional_address_family, AddressFamily::ipv6);
         },
         400, TurnOutcome::token_with_family_or_even_port},
        {"EVEN-PORT with R and ADDITIONAL-ADDRESS-FAMILY",
         [&](stun::MessageWriter& w) {
             udp(w);
             w.add_even_port(true);
             w.add_address_family(stun::attr::additional_address_family, AddressFamily::ipv6);
         },
         400, TurnOutcome::bad_family_attribute},
        {"unknown RESERVATION-TOKEN",
         [&](stun::MessageWriter& w) {
             udp(w);
             token(w);
         },
         508, TurnOutcome::unknown_reservation},
        {"both family attributes",
         [&](stun::MessageWriter& w) {
             udp(w);
             w.add_address_family(stun::attr::requested_address_family, AddressFamily::ipv4);
             w.add_address_family(stun::attr::additional_address_family, AddressFamily::ipv6);
         },
         400, TurnOutcome::bad_family_attribute},
        {"ADDITIONAL-ADDRESS-FAMILY IPv4",
         [&](stun::MessageWriter& w) {
             udp(w);
             w.add_address_family(stun::attr::additional_address_family, AddressFamily::ipv4);
         },
         400, TurnOutcome::bad_family_attribute},
        {"malformed REQUESTED-ADDRESS-FAMILY",
         [&](stun::MessageWriter& w) {
             udp(w);
             const std::byte family_3[4] = {std::byte{3}};
             w.add(stun::attr::requested_address_family, family_3);
         },
         400, TurnOutcome::bad_family_attribute},
        {"malformed DONT-FRAGMENT",
         [&](stun::MessageWriter& w) {
             udp(w);
             w.add_u32(stun::attr::dont_fragment, 1);
         },
         400, TurnOutcome::bad_allocate_attribute},
        {"unknown comprehension-required attribute",
         [&](stun::MessageWriter& w) {
             udp(w);
             w.add_u32(stun::attr::change_request, 0);
         },
         420, TurnOutcome::unknown_attribute},
    };
    Client c = make_client("alice", "alice-password");
    challenge(c);
    for (const AllocateErrorCase& t : cases) {
        const Exchange e = request(c, Method::allocate, t.attributes);
        EXPECT_EQ(e.code(), t.code) << t.name;
        EXPECT_EQ(e.answer.outcome, t.outcome) << t.name;
        EXPECT_EQ(e.answer.error_code, t.code) << t.name;
        EXPECT_EQ(engine::turn_outcome_codes[static_cast<std::size_t>(t.outcome)], t.code)
            << t.name;
    }
    EXPECT_EQ(shard->table().size(), 0u);
}

TEST_F(RelayRole, UnknownAttributeIsListed) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c, [](stun::MessageWriter& w) {
        w.add_u32(stun::attr::change_request, 0);
        w.add_u32(0x7F01, 0);
        w.add_u32(0xC001, 0);  // comprehension-optional: ignored
    });
    ASSERT_EQ(e.code(), 420);
    std::array<std::uint16_t, 4> listed{};
    std::size_t count = 0;
    ASSERT_TRUE(e.message().find(stun::attr::unknown_attributes));
    ASSERT_EQ(stun::decode_unknown_attributes(*e.message().find(stun::attr::unknown_attributes),
                                              listed, count),
              stun::ParseError::ok);
    ASSERT_EQ(count, 2u);
    EXPECT_EQ(listed[0], stun::attr::change_request);
    EXPECT_EQ(listed[1], 0x7F01);
}

TEST_F(RelayRole, DontFragmentAccepted) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e =
        allocate(c, [](stun::MessageWriter& w) { w.add_flag(stun::attr::dont_fragment); });
    EXPECT_EQ(e.code(), 0);
}

TEST_F(RelayRole, RequestedFamilyTheServerLacksGets440) {
    context = make_context(engine::relay_ipv4);
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c, [](stun::MessageWriter& w) {
        w.add_address_family(stun::attr::requested_address_family, AddressFamily::ipv6);
    });
    EXPECT_EQ(e.code(), 440);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::family_not_supported);
}

TEST_F(RelayRole, RequestedIpv6GetsAnIpv6RelayedAddress) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c, [](stun::MessageWriter& w) {
        w.add_address_family(stun::attr::requested_address_family, AddressFamily::ipv6);
    });
    ASSERT_EQ(e.code(), 0);
    const std::vector<stun::Address> relayed = relayed_addresses(e.message());
    ASSERT_EQ(relayed.size(), 1u);
    EXPECT_EQ(relayed[0].ip, relay_ipv6.ip);
    EXPECT_EQ(allocation_of(c)->families(), engine::relay_ipv6);
}

TEST_F(RelayRole, AdditionalFamilyGivesBothOrSaysWhyNot) {
    const auto dual = [](stun::MessageWriter& w) {
        w.add_address_family(stun::attr::additional_address_family, AddressFamily::ipv6);
    };
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c, dual);
    ASSERT_EQ(e.code(), 0);
    const std::vector<stun::Address> relayed = relayed_addresses(e.message());
    ASSERT_EQ(relayed.size(), 2u);
    EXPECT_EQ(relayed[0].family, AddressFamily::ipv4);
    EXPECT_EQ(relayed[1].family, AddressFamily::ipv6);
    EXPECT_EQ(relayed[0].port, relayed[1].port);
    EXPECT_FALSE(e.message().find(stun::attr::address_error_code));

    // An IPv4-only server: the IPv4 allocation, and ADDRESS-ERROR-CODE 440 for IPv6.
    context = make_context(engine::relay_ipv4);
    Client d = make_client("bob", "bob-password", 40001);
    challenge(d);
    const Exchange f = allocate(d, dual);
    ASSERT_EQ(f.code(), 0);
    EXPECT_EQ(relayed_addresses(f.message()).size(), 1u);
    stun::AddressErrorCodeValue error;
    ASSERT_TRUE(f.message().find(stun::attr::address_error_code));
    ASSERT_EQ(stun::decode_address_error_code(*f.message().find(stun::attr::address_error_code),
                                              error),
              stun::ParseError::ok);
    EXPECT_EQ(error.family, AddressFamily::ipv6);
    EXPECT_EQ(error.code, 440);
}

TEST_F(RelayRole, EvenPortHonoured) {
    for (std::uint16_t port = 40000; port < 40002; ++port) {
        Client c = make_client("alice", "alice-password", port);
        challenge(c);
        const Exchange e =
            allocate(c, [](stun::MessageWriter& w) { w.add_even_port(false); });
        ASSERT_EQ(e.code(), 0);
        EXPECT_EQ(relayed_addresses(e.message()).at(0).port % 2, 0);
    }
}

// --- Reservations (RFC 8656 §7.2: EVEN-PORT's R bit, then RESERVATION-TOKEN) ---

std::optional<std::uint64_t> reservation_token_of(const stun::Message& m) {
    const std::optional<stun::Attribute> attribute = m.find(stun::attr::reservation_token);
    if (!attribute) return std::nullopt;
    std::uint64_t token = 0;
    EXPECT_EQ(stun::decode_u64(*attribute, token), stun::ParseError::ok);
    return token;
}

const auto reserve_next_port = [](stun::MessageWriter& w) { w.add_even_port(true); };

Attributes with_token(std::uint64_t token) {
    return [token](stun::MessageWriter& w) { w.add_u64(stun::attr::reservation_token, token); };
}

TEST_F(RelayRole, ReserveBitGivesAnEvenPortAndATokenForTheNext) {
    Client rtp = make_client("alice", "alice-password", 40000);
    challenge(rtp);
    const Exchange first = allocate(rtp, reserve_next_port, {.fingerprint = true});
    ASSERT_EQ(first.code(), 0);
    EXPECT_EQ(first.answer.outcome, TurnOutcome::allocated);
    const stun::Message m = first.message();
    EXPECT_EQ(stun::verify_fingerprint(m), stun::IntegrityResult::ok);
    const std::uint16_t port = relayed_addresses(m).at(0).port;
    EXPECT_EQ(port % 2, 0);
    const std::optional<std::uint64_t> token = reservation_token_of(m);
    ASSERT_TRUE(token.has_value());
    EXPECT_TRUE(shard->table().relay_port_reserved(0, static_cast<std::uint16_t>(port + 1)));

    // The retransmission carries the same token, and reserves nothing more.
    const Exchange again = send(rtp, first.request);
    EXPECT_EQ(again.answer.outcome, TurnOutcome::retransmission);
    EXPECT_EQ(again.response, first.response);
    EXPECT_EQ(shard->table().reservation_count(), 1u);

    // RTCP's Allocate, from another port, with the token: exactly the next port, same
    // relayed IP, no token of its own.
    Client rtcp = make_client("alice", "alice-password", 40001);
    challenge(rtcp);
    const Exchange second = allocate(rtcp, with_token(*token));
    ASSERT_EQ(second.code(), 0);
    EXPECT_EQ(second.answer.outcome, TurnOutcome::allocated);
    const std::vector<stun::Address> relayed = relayed_addresses(second.message());
    ASSERT_EQ(relayed.size(), 1u);
    EXPECT_EQ(relayed[0].port, port + 1);
    EXPECT_EQ(relayed[0].ip, relay_ipv4.ip);
    EXPECT_FALSE(reservation_token_of(second.message()));
    EXPECT_EQ(allocation_of(rtcp)->relay_port(), port + 1);
    EXPECT_EQ(shard->table().reservation_count(), 0u);
    EXPECT_EQ(send(rtcp, second.request).response, second.response);  // retransmission

    // Honoured once: the token is spent.
    Client third = make_client("bob", "bob-password", 40002);
    challenge(third);
    const Exchange spent = allocate(third, with_token(*token));
    EXPECT_EQ(spent.code(), 508);
    EXPECT_EQ(spent.answer.outcome, TurnOutcome::unknown_reservation);
}

TEST_F(RelayRole, TokensDifferAndAreNotACounter) {
    // One client, allocating and deleting: each reservation its own token.
    Client c = make_client("alice", "alice-password");
    challenge(c);
    std::vector<std::uint64_t> tokens;
    for (int i = 0; i < 4; ++i) {
        const Exchange e = allocate(c, reserve_next_port);
        ASSERT_EQ(e.code(), 0);
        tokens.push_back(reservation_token_of(e.message()).value_or(0));
        ASSERT_EQ(refresh(c, 0).code(), 0);
    }
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        EXPECT_NE(tokens[i], 0u);
        for (std::size_t j = 0; j < i; ++j) {
            EXPECT_NE(tokens[i], tokens[j]);
            // Not n, n+1, ... nor any small step apart.
            EXPECT_GT(tokens[i] > tokens[j] ? tokens[i] - tokens[j] : tokens[j] - tokens[i],
                      std::uint64_t{1} << 32);
        }
    }
}

TEST_F(RelayRole, ReservationHeldThirtySecondsThenItsPortReturns) {
    Client rtp = make_client("alice", "alice-password", 40000);
    challenge(rtp);
    const Exchange first = allocate(rtp, reserve_next_port);
    ASSERT_EQ(first.code(), 0);
    const std::uint64_t token = reservation_token_of(first.message()).value_or(0);
    const auto reserved =
        static_cast<std::uint16_t>(relayed_addresses(first.message()).at(0).port + 1);
    ASSERT_EQ(context.limits().reservation_lifetime_s, 30u);

    advance(29);
    EXPECT_EQ(engine::sweep(*shard, now_ticks, 8), 0u);
    EXPECT_TRUE(shard->table().relay_port_reserved(0, reserved));
    advance(1);
    // Not swept yet: the Allocate itself finds it expired.
    Client rtcp = make_client("alice", "alice-password", 40001);
    challenge(rtcp);
    const Exchange late = allocate(rtcp, with_token(token));
    EXPECT_EQ(late.code(), 508);
    EXPECT_EQ(late.answer.outcome, TurnOutcome::unknown_reservation);
    EXPECT_FALSE(shard->table().relay_port_reserved(0, reserved));
    EXPECT_TRUE(shard->table().relay_port_available(0, reserved));
    EXPECT_EQ(shard->table().reservation_count(), 0u);
}

TEST_F(RelayRole, SweepReleasesAnExpiredReservation) {
    Client rtp = make_client("alice", "alice-password", 40000);
    challenge(rtp);
    const Exchange first = allocate(rtp, reserve_next_port);
    ASSERT_EQ(first.code(), 0);
    const auto reserved =
        static_cast<std::uint16_t>(relayed_addresses(first.message()).at(0).port + 1);
    advance(30);
    static_cast<void>(engine::sweep(*shard, now_ticks, 8));
    EXPECT_TRUE(shard->table().relay_port_available(0, reserved));
    EXPECT_EQ(shard->table().reservation_count(), 0u);
    EXPECT_TRUE(allocation_of(rtp) != nullptr);  // the allocation itself lives on
}

TEST_F(RelayRole, ReservedPortIsNotHandedToAnotherAllocation) {
    // Two relay ports: R takes 50000 and reserves 50001; a plain Allocate finds none left,
    // the token's Allocate gets 50001.
    shard = make_shard(2);
    Client rtp = make_client("alice", "alice-password", 40000);
    challenge(rtp);
    const Exchange first = allocate(rtp, reserve_next_port);
    ASSERT_EQ(first.code(), 0);
    EXPECT_EQ(relayed_addresses(first.message()).at(0).port, first_relay_port);
    Client other = make_client("bob", "bob-password", 40001);
    challenge(other);
    const Exchange refused = allocate(other);
    EXPECT_EQ(refused.code(), 508);
    EXPECT_EQ(refused.answer.outcome, TurnOutcome::no_relay_port);
    const Exchange even = allocate(other, [](stun::MessageWriter& w) { w.add_even_port(false); });
    EXPECT_EQ(even.answer.outcome, TurnOutcome::even_port_unavailable);
    const Exchange claimed =
        allocate(other, with_token(reservation_token_of(first.message()).value_or(0)));
    ASSERT_EQ(claimed.code(), 0);
    EXPECT_EQ(relayed_addresses(claimed.message()).at(0).port, first_relay_port + 1);
}

TEST_F(RelayRole, ReserveBitWithoutAFreeEvenPairGets508) {
    // One relay port, 50000: even, but 50001 is not this worker's.
    shard = make_shard(1);
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = allocate(c, reserve_next_port);
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::even_port_unavailable);
    EXPECT_EQ(shard->table().reservation_count(), 0u);
    // EVEN-PORT without R is satisfied.
    EXPECT_EQ(allocate(c, [](stun::MessageWriter& w) { w.add_even_port(false); }).code(), 0);
}

TEST_F(RelayRole, ReservationsBoundedByTheTable) {
    // The table holds 8 allocations; 8 reservations whose allocations were deleted fill the
    // reservation records, and a ninth R is refused while a plain Allocate still succeeds.
    Client c = make_client("alice", "alice-password");
    challenge(c);
    for (int i = 0; i < 8; ++i) {
        ASSERT_EQ(allocate(c, reserve_next_port).code(), 0) << i;
        ASSERT_EQ(refresh(c, 0).code(), 0);
    }
    EXPECT_EQ(shard->table().reservation_count(), 8u);
    const Exchange refused = allocate(c, reserve_next_port);
    EXPECT_EQ(refused.code(), 508);
    EXPECT_EQ(refused.answer.outcome, TurnOutcome::reservations_full);
    // One expires: room again.
    advance(30);
    static_cast<void>(engine::sweep(*shard, now_ticks, 8));
    EXPECT_EQ(shard->table().reservation_count(), 0u);
    EXPECT_EQ(allocate(c, reserve_next_port).code(), 0);
}

TEST_F(RelayRole, ReservationKeepsItsFamily) {
    // §7.2: the token's Allocate carries no family attribute; the reservation made for IPv6
    // gives IPv6.
    Client rtp = make_client("alice", "alice-password", 40000);
    challenge(rtp);
    const Exchange first = allocate(rtp, [](stun::MessageWriter& w) {
        w.add_even_port(true);
        w.add_address_family(stun::attr::requested_address_family, AddressFamily::ipv6);
    });
    ASSERT_EQ(first.code(), 0);
    Client rtcp = make_client("alice", "alice-password", 40001);
    challenge(rtcp);
    const Exchange second =
        allocate(rtcp, with_token(reservation_token_of(first.message()).value_or(0)));
    ASSERT_EQ(second.code(), 0);
    const std::vector<stun::Address> relayed = relayed_addresses(second.message());
    ASSERT_EQ(relayed.size(), 1u);
    EXPECT_EQ(relayed[0].family, AddressFamily::ipv6);
    EXPECT_EQ(relayed[0].ip, relay_ipv6.ip);
    EXPECT_EQ(relayed[0].port, relayed_addresses(first.message()).at(0).port + 1);
}

TEST_F(RelayRole, TokenFromAnotherWorkerGets508) {
    // Two workers' shards: the token of one names nothing on the other (relay_role.h).
    Client rtp = make_client("alice", "alice-password", 40000);
    challenge(rtp);
    const Exchange first = allocate(rtp, reserve_next_port);
    ASSERT_EQ(first.code(), 0);
    const std::uint64_t token = reservation_token_of(first.message()).value_or(0);
    std::unique_ptr<engine::RelayShard> mine = std::exchange(shard, make_shard());
    Client rtcp = make_client("alice", "alice-password", 40001);
    challenge(rtcp);
    const Exchange elsewhere = allocate(rtcp, with_token(token));
    EXPECT_EQ(elsewhere.code(), 508);
    EXPECT_EQ(elsewhere.answer.outcome, TurnOutcome::unknown_reservation);
    EXPECT_EQ(mine->table().reservation_count(), 1u);
}

TEST_F(RelayRole, UserQuotaGets486UntilAnAllocationGoes) {
    // From three hosts, so that no source IP's unauthenticated-request bucket runs dry.
    Client first = allocated("alice", "alice-password", 40000, "198.51.100.7");
    Client second = allocated("alice", "alice-password", 40001, "198.51.100.8");
    Client third = make_client("alice", "alice-password", 40002, "198.51.100.9");
    challenge(third);
    const Exchange refused = allocate(third);
    EXPECT_EQ(refused.code(), 486);
    EXPECT_EQ(refused.answer.outcome, TurnOutcome::user_quota_reached);
    // Another user is not held back by alice's count.
    Client bob = allocated("bob", "bob-password", 40003, "198.51.100.10");
    EXPECT_EQ(shard->allocations_of("alice"), 2u);
    EXPECT_EQ(shard->allocations_of("bob"), 1u);
    ASSERT_EQ(refresh(first, 0).code(), 0);
    EXPECT_EQ(shard->allocations_of("alice"), 1u);
    EXPECT_EQ(allocate(third).code(), 0);
}

TEST_F(RelayRole, NoRelayPortLeftGets508) {
    shard = make_shard(1);
    Client first = allocated("alice", "alice-password", 40000);
    Client second = make_client("bob", "bob-password", 40001);
    challenge(second);
    const Exchange e = allocate(second);
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::no_relay_port);
}

// --- Authentication (RFC 8489 §9.2.4, RFC 8656 §5) ---

TEST_F(RelayRole, WrongPasswordGets401AndAStaleNonce438) {
    Client c = make_client("alice", "not-alices-password");
    challenge(c);
    Exchange e = allocate(c);
    EXPECT_EQ(e.code(), 401);
    EXPECT_EQ(e.answer.auth, engine::AuthVerdict::integrity_mismatch);

    Client d = make_client("alice", "alice-password", 40001);
    challenge(d);
    advance(601);
    e = allocate(d);
    EXPECT_EQ(e.code(), 438);
    EXPECT_EQ(e.answer.auth, engine::AuthVerdict::stale_nonce);
    take_nonce(d, e);  // the 438 carries a fresh nonce
    EXPECT_EQ(allocate(d).code(), 0);

    // Counted by outcome, and the refused authentications by verdict: the two challenges
    // (401 without credentials), the wrong password, the stale nonce; one allocation.
    const engine::RelayCounters& counters = shard->counters();
    EXPECT_EQ(counters.outcome(TurnOutcome::auth_failed), 4u);
    EXPECT_EQ(counters.outcome(TurnOutcome::allocated), 1u);
    auto failures = [&](engine::AuthVerdict verdict) {
        return counters.auth_failures[static_cast<std::size_t>(verdict)];
    };
    EXPECT_EQ(failures(engine::AuthVerdict::integrity_mismatch), 1u);
    EXPECT_EQ(failures(engine::AuthVerdict::stale_nonce), 1u);
}

TEST_F(RelayRole, AnotherUsersRequestOnTheAllocationGets441) {
    Client alice = allocated();
    Client bob = make_client("bob", "bob-password", alice.address.port);  // alice's 5-tuple
    challenge(bob);
    const Exchange e = refresh(bob, 1200);
    EXPECT_EQ(e.code(), 441);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::wrong_credentials);
    EXPECT_EQ(allocation_of(alice)->expiry(), now_ticks + 600 * ticks_per_second);
}

TEST_F(RelayRole, UnauthenticatedRequestsAreRateLimitedPerSource) {
    Client c = make_client("alice", "alice-password");
    challenge(c);  // the first of the bucket's three tokens
    const auto unsigned_allocate = [&] { return allocate(c, {}, {.sign = false}); };
    for (int i = 0; i < 2; ++i) EXPECT_EQ(unsigned_allocate().code(), 401) << i;
    const Exchange dropped = unsigned_allocate();
    EXPECT_EQ(dropped.answer.action, TurnAction::drop);
    EXPECT_EQ(dropped.answer.outcome, TurnOutcome::rate_limited);
    EXPECT_TRUE(dropped.response.empty());
    // Another port of the same host draws on the same bucket.
    Client other_port = make_client("alice", "alice-password", 40001);
    EXPECT_EQ(allocate(other_port, {}, {.sign = false}).answer.outcome,
              TurnOutcome::rate_limited);
    // Authenticated requests do not draw on it.
    EXPECT_EQ(allocate(c).code(), 0);
    now_ticks += ticks_per_second;  // one token back
    EXPECT_EQ(unsigned_allocate().code(), 401);
}

TEST_F(RelayRole, UnknownAttributeOnAnAllocationIsSignedAndRemembered) {
    Client c = allocated();
    const Exchange first = request(c, Method::refresh, [](stun::MessageWriter& w) {
        w.add_u32(stun::attr::priority, 1);  // ICE's: nothing to a TURN server
    });
    ASSERT_EQ(first.code(), 420);
    const Exchange again = send(c, first.request);
    EXPECT_EQ(again.answer.outcome, TurnOutcome::retransmission);
    EXPECT_EQ(again.response, first.response);
}

// --- Refresh (RFC 8656 §8.2) and expiry (§6) ---

TEST_F(RelayRole, RefreshWithoutAllocationGets437) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    const Exchange e = refresh(c, 600);
    EXPECT_EQ(e.code(), 437);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::no_allocation);
}

TEST_F(RelayRole, RefreshExtendsAndLifetimeZeroDeletes) {
    Client c = allocated();
    advance(100);
    Exchange e = refresh(c, 1200);
    ASSERT_EQ(e.code(), 0);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::refreshed);
    EXPECT_EQ(lifetime_of(e.message()), 1200u);
    EXPECT_EQ(allocation_of(c)->expiry(), now_ticks + 1200 * ticks_per_second);
    const std::uint16_t port = allocation_of(c)->relay_port();

    e = refresh(c, 0);
    ASSERT_EQ(e.code(), 0);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::deleted);
    EXPECT_EQ(lifetime_of(e.message()), 0u);
    EXPECT_EQ(allocation_of(c), nullptr);
    EXPECT_TRUE(shard->table().relay_port_available(0, port));
    EXPECT_EQ(shard->allocations_of("alice"), 0u);
    EXPECT_EQ(refresh(c, 600).code(), 437);
}

TEST_F(RelayRole, RefreshOfOneFamilyOfADualAllocation) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    ASSERT_EQ(allocate(c, [](stun::MessageWriter& w) {
                  w.add_address_family(stun::attr::additional_address_family,
                                       AddressFamily::ipv6);
              }).code(),
              0);
    ASSERT_EQ(refresh(c, 0, AddressFamily::ipv6).code(), 0);
    ASSERT_NE(allocation_of(c), nullptr);
    EXPECT_EQ(allocation_of(c)->families(), engine::relay_ipv4);
    // The IPv6 address is gone: 443 for it now.
    const Exchange e = refresh(c, 600, AddressFamily::ipv6);
    EXPECT_EQ(e.code(), 443);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::refresh_family_mismatch);
}

TEST_F(RelayRole, AllocationExpiresAfterItsLifetime) {
    Client c = allocated();
    advance(599);
    ASSERT_EQ(create_permission(c, {peer_a}).code(), 0);  // still there
    advance(1);
    Exchange e = refresh(c, 600);
    if (e.code() == 438) {
        take_nonce(c, e);
        e = refresh(c, 600);
    }
    EXPECT_EQ(e.code(), 437);
    EXPECT_EQ(shard->table().size(), 0u);
    EXPECT_EQ(shard->allocations_of("alice"), 0u);
}

TEST_F(RelayRole, SweepErasesExpiredAllocations) {
    Client c = allocated();
    EXPECT_EQ(engine::sweep(*shard, now_ticks, 100), 0u);
    now_ticks += 600 * ticks_per_second;
    EXPECT_EQ(engine::sweep(*shard, now_ticks, 100), 1u);
    EXPECT_EQ(shard->table().size(), 0u);
    EXPECT_EQ(shard->allocations_of("alice"), 0u);
}

// --- The operator's kills (punchctl allocations kill) ---

TEST_F(RelayRole, KillAllocationDeletesTheSlotWhileItHoldsTheKey) {
    Client alice = allocated("alice", "alice-password", 40000, "198.51.100.7");
    Client other = allocated("alice", "alice-password", 40001, "198.51.100.8");
    const std::uint32_t slot = shard->table().find(alice.tuple);
    ASSERT_NE(slot, engine::RelayTable::no_slot);
    // Another 5-tuple named with the slot (the slot was taken again): nothing goes.
    EXPECT_FALSE(engine::kill_allocation(*shard, slot, other.tuple));
    EXPECT_FALSE(engine::kill_allocation(*shard, shard->table().capacity() - 1, alice.tuple));
    EXPECT_EQ(shard->table().size(), 2u);
    EXPECT_TRUE(engine::kill_allocation(*shard, slot, alice.tuple));
    EXPECT_EQ(allocation_of(alice), nullptr);
    EXPECT_EQ(shard->allocations_of("alice"), 1u);
    EXPECT_EQ(shard->counters().killed, 1u);
    // Twice: the slot is free now.
    EXPECT_FALSE(engine::kill_allocation(*shard, slot, alice.tuple));
    EXPECT_EQ(shard->counters().killed, 1u);
    // The client learns it from its next request (RFC 8656 §8.2: 437 without an allocation).
    EXPECT_EQ(refresh(alice, 600).code(), 437);
    EXPECT_NE(allocation_of(other), nullptr);
}

TEST_F(RelayRole, KillUserAllocationsInStepsKeepsTheQuotaCounts) {
    Client a1 = allocated("alice", "alice-password", 40000, "198.51.100.7");
    Client bob = allocated("bob", "bob-password", 40001, "198.51.100.8");
    Client a2 = allocated("alice", "alice-password", 40002, "198.51.100.9");
    ASSERT_EQ(shard->allocations_of("alice"), 2u);
    const std::uint64_t hash = shard->table().username_hash("alice");
    std::uint32_t cursor = 0;
    std::size_t killed = 0;
    unsigned steps = 0;
    for (engine::KillProgress p{}; !p.done; ++steps) {
        p = engine::kill_user_allocations(*shard, hash, 5, cursor, 1);
        killed += p.killed;
        ASSERT_LT(steps, 10u);
    }
    EXPECT_EQ(killed, 2u);
    EXPECT_EQ(steps, 3u);  // one slot a step, three slots used
    EXPECT_EQ(allocation_of(a1), nullptr);
    EXPECT_EQ(allocation_of(a2), nullptr);
    EXPECT_NE(allocation_of(bob), nullptr);
    EXPECT_EQ(shard->allocations_of("alice"), 0u);
    EXPECT_EQ(shard->allocations_of("bob"), 1u);
    EXPECT_EQ(shard->counters().killed, 2u);
    // The count is right again: alice may allocate up to her quota (2 in this fixture).
    Client a3 = allocated("alice", "alice-password", 40003, "198.51.100.10");
    Client a4 = allocated("alice", "alice-password", 40004, "198.51.100.11");
    EXPECT_EQ(shard->allocations_of("alice"), 2u);
    // Same hash, other length: not alice's. A name nobody holds: none, done at once.
    cursor = 0;
    const engine::KillProgress other_length =
        engine::kill_user_allocations(*shard, hash, 4, cursor, 100);
    EXPECT_EQ(other_length.killed, 0u);
    EXPECT_TRUE(other_length.done);
    cursor = 0;
    EXPECT_EQ(engine::kill_user_allocations(*shard, shard->table().username_hash("carol"), 5,
                                            cursor, 100)
                  .killed,
              0u);
    EXPECT_EQ(shard->table().size(), 3u);
}

// --- CreatePermission (RFC 8656 §10.2) ---

TEST_F(RelayRole, CreatePermissionInstallsAndRefreshes) {
    Client c = allocated();
    Exchange e = create_permission(c, {peer_a, peer_b});
    ASSERT_EQ(e.code(), 0);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::permission_installed);
    EXPECT_TRUE(allocation_of(c)->permits(peer_a, now_ticks));
    EXPECT_TRUE(allocation_of(c)->permits(peer_b, now_ticks));
    advance(200);
    ASSERT_EQ(create_permission(c, {peer_a}).code(), 0);
    advance(200);  // 400 s after the first: only the refreshed one is left (§9: 300 s)
    EXPECT_TRUE(allocation_of(c)->permits(peer_a, now_ticks));
    EXPECT_FALSE(allocation_of(c)->permits(peer_b, now_ticks));
}

TEST_F(RelayRole, CreatePermissionErrors) {
    Client c = allocated();
    Exchange e = create_permission(c, {});
    EXPECT_EQ(e.code(), 400);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::missing_peer_address);
    e = create_permission(c, {peer_a, peer_ipv6});
    EXPECT_EQ(e.code(), 443);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::peer_family_mismatch);
    e = create_permission(c, {peer_a, loopback_peer});
    EXPECT_EQ(e.code(), 403);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::peer_forbidden);
    // All or nothing: peer_a came with a refused peer each time, and is not installed.
    EXPECT_FALSE(allocation_of(c)->permits(peer_a, now_ticks));
    EXPECT_EQ(allocation_of(c)->permission_count(), 0u);

    std::vector<stun::Address> too_many;
    for (std::uint32_t i = 0; i <= max_permissions; ++i)
        too_many.push_back(stun::Address::v4(0x5DB8D800 + i, 7000));  // 93.184.216.x
    e = create_permission(c, too_many);
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::permission_quota);
    EXPECT_EQ(allocation_of(c)->permission_count(), 0u);
    too_many.pop_back();
    EXPECT_EQ(create_permission(c, too_many).code(), 0);
    EXPECT_EQ(allocation_of(c)->permission_count(), max_permissions);
}

// The worker's peer entries (relay.peer_entries) run out: CreatePermission (all or nothing)
// and ChannelBind get 508 under an outcome of their own, below the allocation's limits, and
// succeed again once an entry is free.
TEST_F(RelayRole, PeerEntriesRunOutWith508) {
    shard = make_shard(relay_port_count, 2);
    Client c = allocated();
    ASSERT_EQ(create_permission(c, {peer_a}).code(), 0);
    const stun::Address peer_c = stun::Address::v4(0x5DB8D801, 7000);  // 93.184.216.1
    const stun::Address peer_d = stun::Address::v4(0x5DB8D802, 7000);
    // One entry left, two new IPs: refused whole.
    Exchange e = create_permission(c, {peer_c, peer_d});
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::peer_entries_full);
    EXPECT_FALSE(allocation_of(c)->permits(peer_c, now_ticks));
    EXPECT_EQ(allocation_of(c)->permission_count(), 1u);
    ASSERT_EQ(create_permission(c, {peer_c}).code(), 0);
    EXPECT_EQ(shard->table().free_peer_entries(), 0u);
    e = channel_bind(c, 0x4000, peer_d);
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::peer_entries_full);
    EXPECT_FALSE(allocation_of(c)->permits(peer_d, now_ticks));
    // A channel to a peer whose IP has a permission takes no entry: bound.
    EXPECT_EQ(channel_bind(c, 0x4001, peer_a).code(), 0);
    EXPECT_EQ(allocation_of(c)->channel(0x4001, now_ticks)->peer, peer_a);
    // 300 s on, peer_c's permission has expired (peer_a's was refreshed by the bind at 0 s
    // too, so both have): the entries come back.
    advance(301);
    EXPECT_EQ(channel_bind(c, 0x4002, peer_d).code(), 0);
    EXPECT_TRUE(allocation_of(c)->permits(peer_d, now_ticks));
    EXPECT_EQ(shard->counters().outcome(TurnOutcome::peer_entries_full), 2u);
}

TEST_F(RelayRole, CreatePermissionWithoutAllocationGets437) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    EXPECT_EQ(create_permission(c, {peer_a}).code(), 437);
}

TEST_F(RelayRole, RetransmittedCreatePermissionGetsIdenticalBytes) {
    Client c = allocated();
    const Exchange first = create_permission(c, {loopback_peer});
    ASSERT_EQ(first.code(), 403);
    const Exchange again = send(c, first.request);
    EXPECT_EQ(again.answer.outcome, TurnOutcome::retransmission);
    EXPECT_EQ(again.answer.error_code, 403);
    EXPECT_EQ(again.response, first.response);
}

// --- ChannelBind (RFC 8656 §12.2) ---

TEST_F(RelayRole, ChannelBindInstallsChannelAndPermissionAndRefreshes) {
    Client c = allocated();
    Exchange e = channel_bind(c, 0x4000, peer_a);
    ASSERT_EQ(e.code(), 0);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::channel_bound);
    const std::optional<engine::Channel> channel = allocation_of(c)->channel(0x4000, now_ticks);
    ASSERT_TRUE(channel);
    EXPECT_EQ(channel->peer, peer_a);
    EXPECT_TRUE(allocation_of(c)->permits(peer_a, now_ticks));
    advance(500);
    ASSERT_EQ(channel_bind(c, 0x4000, peer_a).code(), 0);  // refresh, §12.2
    advance(200);  // 700 s after the bind, 200 s after the refresh
    EXPECT_TRUE(allocation_of(c)->channel(0x4000, now_ticks));
    EXPECT_TRUE(allocation_of(c)->permits(peer_a, now_ticks));
}

TEST_F(RelayRole, ChannelBindErrors) {
    Client c = allocated();
    ASSERT_EQ(channel_bind(c, 0x4000, peer_a).code(), 0);
    struct Case {
        const char* name;
        std::uint16_t number;
        stun::Address peer;
        std::uint16_t code;
        TurnOutcome outcome;
    };
    const Case cases[] = {
        {"below the range", 0x3FFF, peer_b, 400, TurnOutcome::bad_channel_number},
        {"above RFC 5766's range", 0x8000, peer_b, 400, TurnOutcome::bad_channel_number},
        {"number bound to another peer", 0x4000, peer_b, 400,
         TurnOutcome::channel_number_in_use},
        {"peer bound to another number", 0x4001, peer_a, 400, TurnOutcome::channel_peer_in_use},
        {"IPv6 peer on an IPv4 allocation", 0x4001, peer_ipv6, 443,
         TurnOutcome::peer_family_mismatch},
        {"loopback peer", 0x4001, loopback_peer, 403, TurnOutcome::peer_forbidden},
    };
    for (const Case& t : cases) {
        const Exchange e = channel_bind(c, t.number, t.peer);
        EXPECT_EQ(e.code(), t.code) << t.name;
        EXPECT_EQ(e.answer.outcome, t.outcome) << t.name;
    }
    EXPECT_FALSE(allocation_of(c)->permits(peer_b, now_ticks));
    const Exchange missing = request(c, Method::channel_bind, [](stun::MessageWriter& w) {
        w.add_channel_number(0x4002);
    });
    EXPECT_EQ(missing.code(), 400);
    EXPECT_EQ(missing.answer.outcome, TurnOutcome::missing_peer_address);

    for (std::uint16_t i = 1; i < max_channels; ++i)
        ASSERT_EQ(channel_bind(c, static_cast<std::uint16_t>(0x4000 + i),
                               stun::Address::v4(0x5DB8D800 + i, 7000))
                      .code(),
                  0)
            << i;
    const Exchange full = channel_bind(c, 0x4100, stun::Address::v4(0x5DB8D8F0, 7000));
    EXPECT_EQ(full.code(), 508);
    EXPECT_EQ(full.answer.outcome, TurnOutcome::channel_quota);
}

// --- Send indication (RFC 8656 §11.2) ---

TEST_F(RelayRole, SendIndicationForwardedOrDropped) {
    const std::byte payload[] = {std::byte{'h'}, std::byte{'i'}, std::byte{'!'}};
    Client c = make_client("alice", "alice-password");
    Exchange e = send_indication(c, peer_a, payload);
    EXPECT_EQ(e.answer.action, TurnAction::drop);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::send_no_allocation);

    c = allocated();
    e = send_indication(c, peer_a, payload);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::send_no_permission);
    ASSERT_EQ(create_permission(c, {peer_a}).code(), 0);

    e = send_indication(c, peer_a, payload);
    ASSERT_EQ(e.answer.action, TurnAction::forward);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::forwarded);
    EXPECT_EQ(e.answer.peer, peer_a);
    EXPECT_EQ(e.answer.slot, shard->table().find(c.tuple));
    ASSERT_EQ(e.answer.payload.size(), sizeof payload);
    EXPECT_TRUE(std::ranges::equal(e.answer.payload, payload));
    // A view into the request's bytes, not a copy.
    EXPECT_GE(e.answer.payload.data(), e.request.data());
    EXPECT_LT(e.answer.payload.data(), e.request.data() + e.request.size());

    // The port does not matter (§9), the IP does.
    stun::Address other_port = peer_a;
    other_port.port = 9;
    EXPECT_EQ(send_indication(c, other_port, payload).answer.action, TurnAction::forward);
    EXPECT_EQ(send_indication(c, peer_b, payload).answer.outcome,
              TurnOutcome::send_no_permission);
    EXPECT_EQ(send_indication(c, peer_a, payload, false).answer.outcome,
              TurnOutcome::send_missing_data);
    const Exchange no_peer = send(
        c, build(c, Method::send, MessageClass::indication,
                 [&](stun::MessageWriter& w) { w.add(stun::attr::data, payload); },
                 {.sign = false}));
    EXPECT_EQ(no_peer.answer.outcome, TurnOutcome::send_missing_peer_address);
    advance(300);  // the permission expires (§9)
    EXPECT_EQ(send_indication(c, peer_a, payload).answer.outcome,
              TurnOutcome::send_no_permission);
}

TEST_F(RelayRole, OtherMessagesAreDropped) {
    Client c = make_client("alice", "alice-password");
    const Exchange binding = send(c, build(c, Method::binding, MessageClass::request, {},
                                           {.sign = false}));
    EXPECT_EQ(binding.answer.outcome, TurnOutcome::not_turn);
    const Exchange data = send(c, build(c, Method::data, MessageClass::indication, {},
                                        {.sign = false}));
    EXPECT_EQ(data.answer.outcome, TurnOutcome::not_turn);
}

// --- Drain (punchctl drain; RFC 8489 §10, RFC 8656 §7.2) ---

const stun::Address alternate_ipv4 = at("198.51.100.20", 3478);
const stun::Address alternate_ipv6 = at("2001:db8::20", 3478);

// Golden: the 300 a drained Allocate gets, byte for byte: ERROR-CODE 300 "Try Alternate",
// ALTERNATE-SERVER (§14.15, MAPPED-ADDRESS's encoding), MESSAGE-INTEGRITY with the client's
// key (§10: the request was authenticated, so is the redirection), nothing else.
TEST_F(RelayRole, DrainingAllocateGets300NamingTheAlternateServer) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    context = make_context(engine::relay_ipv4 | engine::relay_ipv6, {true, alternate_ipv4});
    const Exchange e = allocate(c);
    ASSERT_EQ(e.answer.action, TurnAction::respond);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::draining_redirected);
    EXPECT_EQ(e.answer.error_code, 300);
    std::vector<std::byte> golden(1500);
    stun::TransactionId id{};
    const stun::Message request = parse(e.request);
    std::copy(request.transaction_id().begin(), request.transaction_id().end(), id.begin());
    stun::MessageWriter writer(golden, Method::allocate, MessageClass::error_response, id);
    writer.add_error_code(300, "Try Alternate");
    writer.add_address(stun::attr::alternate_server, alternate_ipv4);
    writer.add_message_integrity(c.key);
    golden.resize(writer.finish().size());
    EXPECT_EQ(e.response, golden);
    EXPECT_EQ(shard->table().size(), 0u);
    EXPECT_EQ(shard->counters().outcome(TurnOutcome::draining_redirected), 1u);
    // A retransmission is answered alike: nothing was allocated to remember it on.
    EXPECT_EQ(send(c, e.request).response, golden);
}

TEST_F(RelayRole, DrainingWithoutAnAlternateOfTheClientsFamilyGets508) {
    Client c = make_client("alice", "alice-password");
    challenge(c);
    context = make_context(engine::relay_ipv4 | engine::relay_ipv6, {true, std::nullopt});
    Exchange e = allocate(c);
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::draining_refused);
    EXPECT_FALSE(e.message().find(stun::attr::alternate_server));
    // An IPv6 alternate cannot serve an IPv4 client (its address family): 508 too.
    context = make_context(engine::relay_ipv4 | engine::relay_ipv6, {true, alternate_ipv6});
    e = allocate(c);
    EXPECT_EQ(e.code(), 508);
    EXPECT_EQ(e.answer.outcome, TurnOutcome::draining_refused);
    EXPECT_EQ(shard->counters().outcome(TurnOutcome::draining_refused), 2u);
    EXPECT_EQ(shard->table().size(), 0u);
}

TEST_F(RelayRole, DrainingKeepsExistingAllocationsWorking) {
    Client c = allocated();
    context = make_context(engine::relay_ipv4 | engine::relay_ipv6, {true, alternate_ipv4});
    // §8.2, §10.2, §12.2 and §11.2: an allocation made before the drain is refreshed, gets
    // permissions and channels, and its Send indications are forwarded.
    EXPECT_EQ(refresh(c, 1200).code(), 0);
    EXPECT_EQ(create_permission(c, {peer_a}).code(), 0);
    EXPECT_EQ(channel_bind(c, 0x4001, peer_b).code(), 0);
    const std::array<std::byte, 4> payload{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    EXPECT_EQ(send_indication(c, peer_a, payload).answer.outcome, TurnOutcome::forwarded);
    // Its own Allocate again is still the §7.2 437, not a redirection.
    EXPECT_EQ(allocate(c).answer.outcome, TurnOutcome::allocation_exists);
    // A new 5-tuple is redirected; undrained, it allocates.
    Client other = make_client("bob", "bob-password", 40001);
    challenge(other);
    EXPECT_EQ(allocate(other).code(), 300);
    context = make_context(engine::relay_ipv4 | engine::relay_ipv6, {false, alternate_ipv4});
    EXPECT_EQ(allocate(other).answer.outcome, TurnOutcome::allocated);
    EXPECT_EQ(shard->table().size(), 2u);
}

// --- The fast path's budget ---

TEST_F(RelayRole, NoHeapAllocationOnTheSuccessPathAfterWarmUp) {
    Client c = allocated();
    Client d = make_client("bob", "bob-password", 40001);
    challenge(d);
    ASSERT_EQ(create_permission(c, {peer_a}).code(), 0);
    const std::byte payload[] = {std::byte{1}, std::byte{2}};
    // Built beforehand: building requests allocates, handling them must not.
    std::vector<std::vector<std::byte>> requests;
    requests.push_back(build(c, Method::refresh, MessageClass::request, [](auto& w) {
        w.add_u32(stun::attr::lifetime, 600);
    }));
    requests.push_back(build(c, Method::create_permission, MessageClass::request, [](auto& w) {
        w.add_xor_address(stun::attr::xor_peer_address, peer_b);
    }));
    requests.push_back(build(c, Method::channel_bind, MessageClass::request, [](auto& w) {
        w.add_channel_number(0x4000);
        w.add_xor_address(stun::attr::xor_peer_address, peer_a);
    }));
    requests.push_back(build(c, Method::send, MessageClass::indication,
                             [&](auto& w) {
                                 w.add_xor_address(stun::attr::xor_peer_address, peer_a);
                                 w.add(stun::attr::data, payload);
                             },
                             {.sign = false}));
    const std::vector<std::byte> new_allocation = build(
        d, Method::allocate, MessageClass::request,
        [](auto& w) { w.add_requested_transport(stun::transport_udp); });
    std::vector<std::byte> out(1500);
    const std::size_t before = engine::test::allocations();
    for (const auto& bytes : requests) {
        stun::Message message;
        ASSERT_EQ(stun::Message::parse(bytes, message), stun::ParseError::ok);
        const TurnAnswer answer = engine::handle_turn(context, *shard, message, bytes, c.tuple,
                                                      now_ticks, now_s, out);
        EXPECT_NE(answer.action, TurnAction::drop) << engine::to_string(answer.outcome);
    }
    stun::Message message;
    ASSERT_EQ(stun::Message::parse(new_allocation, message), stun::ParseError::ok);
    const TurnAnswer answer = engine::handle_turn(context, *shard, message, new_allocation,
                                                  d.tuple, now_ticks, now_s, out);
    EXPECT_EQ(answer.outcome, TurnOutcome::allocated);
    EXPECT_EQ(engine::test::allocations(), before);
}

TEST(TurnOutcomes, EveryOutcomeHasANameHelpAndAnRfcCode) {
    for (std::size_t i = 0; i < engine::turn_outcome_count; ++i) {
        EXPECT_FALSE(engine::turn_outcomes[i].name.empty()) << i;
        EXPECT_FALSE(engine::turn_outcomes[i].help.empty()) << i;
        const std::uint16_t code = engine::turn_outcome_codes[i];
        if (code != 0) {
            EXPECT_FALSE(stun::reason_phrase(code).empty()) << code;
        }
    }
    EXPECT_EQ(engine::to_string(TurnOutcome::allocated), "allocated");
    EXPECT_EQ(engine::to_string(TurnOutcome::response_too_large), "response_too_large");
}

TEST(RelayLimits, FromConfig) {
    engine::RelayConfig config;
    config.allocation_lifetime_max_s = 7200;
    config.max_allocations_per_user = 3;
    config.port_first = 50000;
    config.port_last = 50999;
    const engine::RelayLimits limits = engine::RelayLimits::from(config, 2'000'000'000);
    EXPECT_EQ(limits.first_relay_port, 50000);
    EXPECT_EQ(limits.last_relay_port, 50999);
    EXPECT_FALSE(limits.bandwidth) << "0 bytes a second: unlimited";
    config.bandwidth_bytes_per_s = 125000;
    config.bandwidth_burst_bytes = 250000;
    const engine::RelayLimits capped = engine::RelayLimits::from(config, 2'000'000'000);
    ASSERT_TRUE(capped.bandwidth);
    EXPECT_EQ(capped.bandwidth->tokens_per_second(), 125000u);
    EXPECT_EQ(capped.bandwidth->burst(), 250000u);
    EXPECT_EQ(limits.default_lifetime_s, 600u);
    EXPECT_EQ(limits.max_lifetime_s, 7200u);
    EXPECT_EQ(limits.permission_lifetime_s, 300u);
    EXPECT_EQ(limits.channel_lifetime_s, 600u);
    EXPECT_EQ(limits.max_allocations_per_user, 3u);
    EXPECT_EQ(limits.ticks_per_second, 2'000'000'000u);
}

TEST(RelayContext, RefusesInconsistentSettings) {
    const stun::Address own[] = {server};
    EXPECT_THROW(engine::RelayContext(make_credentials(), engine::PeerPolicy({}, {}, own), {},
                                      engine::RelayLimits{}),
                 std::invalid_argument);
    EXPECT_THROW(engine::RelayContext(make_credentials(), engine::PeerPolicy({}, {}, own),
                                      {{relay_ipv4, relay_ipv6, engine::relay_ipv4},
                                       {relay_ipv4, relay_ipv6, engine::relay_ipv6}},
                                      engine::RelayLimits{}),
                 std::invalid_argument);
    engine::RelayLimits limits;
    limits.default_lifetime_s = 7200;
    EXPECT_THROW(engine::RelayContext(make_credentials(), engine::PeerPolicy({}, {}, own),
                                      {{relay_ipv4, relay_ipv6, engine::relay_ipv4}}, limits),
                 std::invalid_argument);
}

}  // namespace
