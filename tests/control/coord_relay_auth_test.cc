// The TURN REST credentials punchcoord issues, checked by the relay's own code: an Allocate
// signed with them as a TURN client signs it (RFC 8489 §9.2.2: key = MD5(username ":" realm
// ":" password)) passes engine::authenticate() on a relay whose relay.rest_secrets holds the
// coordinator's secret, and fails with another secret or past the expiry.
#include <array>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "control/coordinator.h"
#include "engine/turn_auth.h"
#include "engine/turn_nonce.h"
#include "stun/constants.h"
#include "stun/credentials.h"
#include "stun/crypto.h"
#include "stun/message.h"
#include "stun/writer.h"

namespace control {
namespace {

constexpr std::string_view realm = "punchline";
constexpr std::uint64_t unix_now_s = 1'800'000'000;

engine::NonceKeys nonce_keys() {
    engine::NonceKeys keys;
    keys.current.id = 1;
    keys.current.secret.fill(std::byte{0x3C});
    return keys;
}

engine::Credentials relay_credentials(std::string_view secret) {
    const std::string_view secrets[] = {secret};
    engine::Credentials out;
    EXPECT_EQ(engine::Credentials::build({realm, {}, secrets, nonce_keys(), 600}, out),
              engine::CredentialsError::ok);
    return out;
}

// What join hands out for `secret`.
nlohmann::json issued_turn(const std::string& secret) {
    CoordinatorConfig config;
    config.relay_servers = {"203.0.113.4:3478"};
    config.rest_secret = secret;
    config.rest_ttl_s = 600;
    Coordinator coordinator(config,
                            [](std::span<std::byte> out) { return stun::random_bytes(out); });
    Effects effects;
    const CoordTime now{0, unix_now_s * 1000};
    EXPECT_TRUE(coordinator.open(1, "198.51.100.7", now, effects));
    coordinator.handle_line(1, R"({"op":"join","room":"call-1","name":"alice","candidates":[]})",
                            now, effects);
    return nlohmann::json::parse(effects.messages.back().line)["turn"];
}

engine::AuthVerdict allocate_with(const nlohmann::json& turn, const engine::Credentials& relay,
                                  std::uint64_t at_s) {
    const stun::Address client = stun::Address::v4(0xC6336407, 40000);  // 198.51.100.7
    std::array<char, engine::turn_nonce_size> nonce{};
    EXPECT_EQ(engine::make_nonce(nonce_keys(), client, at_s, nonce), engine::turn_nonce_size);
    const std::string username = turn["username"];
    const std::string password = turn["password"];
    stun::LongTermKeyMd5 key;
    EXPECT_EQ(stun::long_term_key_md5(username, realm, password, key), stun::CredentialError::ok);
    std::vector<std::byte> buffer(1500);
    std::array<std::byte, stun::transaction_id_size> txid{};
    txid.fill(std::byte{7});
    stun::MessageWriter writer(buffer, stun::Method::allocate, stun::MessageClass::request, txid);
    writer.add_requested_transport(stun::transport_udp);
    writer.add_text(stun::attr::username, username);
    writer.add_text(stun::attr::realm, realm);
    writer.add_text(stun::attr::nonce, std::string_view(nonce.data(), nonce.size()));
    writer.add_message_integrity(key);
    EXPECT_TRUE(writer.ok());
    const auto bytes = writer.finish();
    stun::Message message;
    EXPECT_EQ(stun::Message::parse(bytes, message), stun::ParseError::ok);
    return engine::authenticate(relay, message, client, at_s).verdict;
}

TEST(CoordRelayAuthTest, TheRelayAcceptsIssuedCredentials) {
    const nlohmann::json turn = issued_turn("shared-with-the-relays");
    ASSERT_TRUE(turn.is_object());
    EXPECT_EQ(allocate_with(turn, relay_credentials("shared-with-the-relays"), unix_now_s),
              engine::AuthVerdict::ok);
    // Valid through its expiry second (stun/rest.h), refused after.
    EXPECT_EQ(allocate_with(turn, relay_credentials("shared-with-the-relays"), unix_now_s + 600),
              engine::AuthVerdict::ok);
    EXPECT_EQ(allocate_with(turn, relay_credentials("shared-with-the-relays"), unix_now_s + 601),
              engine::AuthVerdict::rest_username_expired);
}

TEST(CoordRelayAuthTest, AnotherSecretIsRefused) {
    const nlohmann::json turn = issued_turn("the-coordinators-own");
    EXPECT_EQ(allocate_with(turn, relay_credentials("the-relays-secret"), unix_now_s),
              engine::AuthVerdict::integrity_mismatch);
}

}  // namespace
}  // namespace control
