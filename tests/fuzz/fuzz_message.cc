// libFuzzer target: the STUN message reader, every typed decoder, the integrity checks and the
// writer (style rule 16). Seeds: tests/fuzz/corpus/message/ (tests/fuzz/make_corpus.py).
//
// Besides "no sanitizer report", the target traps (__builtin_trap) when an invariant of the
// contract in stun/include/stun/*.h breaks:
//   1. a datagram that parses passes looks_like_stun(), and classifies as PacketKind::stun
//      exactly when its method is below 0x100 (RFC 7983 §7 demultiplexes on the first byte,
//      0 0 M11 M10 M9 M8 M7 C1, so STUN is 0..3 only for those methods);
//   2. every attribute lies inside the message, after the header; find() sees every visible
//      one, and MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT are visible when present;
//   3. a nonce's security features survive write_nonce_cookie(); a USERNAME yields a TURN REST
//      key exactly when it parses as a REST username;
//   4. the response the writer builds from the decoded attributes parses, and its FINGERPRINT
//      and MESSAGE-INTEGRITY(-SHA256) verify with the keys it was written with;
//   5. decoding that response and writing it again gives the same bytes (decode and encode are
//      inverse on everything the writer emits), and needs a buffer of exactly that size;
//   6. a request with unknown comprehension-required attributes gets a well-formed 420.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/credentials.h"
#include "stun/demux.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/rest.h"
#include "stun/writer.h"

namespace {

void check(bool invariant) {
    if (!invariant) __builtin_trap();
}

// The RFC 5769 credentials, which the seed corpus uses too, so that seeds reach the "ok" side
// of every integrity check: the short-term password (§2.1-§2.3) and the long-term keys of
// username "マトリックス", realm "example.org", password "TheMatrIX" (§2.4).
struct Keys {
    std::span<const std::byte> short_term;
    stun::LongTermKeyMd5 long_term_md5{};
    stun::LongTermKeySha256 long_term_sha256{};
};

const Keys& keys() {
    static const Keys k = [] {
        static constexpr std::string_view password = "VOkJxbRl1RmTxUk/WvJxBt";
        static constexpr std::string_view username =
            "\xE3\x83\x9E\xE3\x83\x88\xE3\x83\xAA\xE3\x83\x83\xE3\x82\xAF\xE3\x82\xB9";
        Keys out;
        out.short_term = stun::as_bytes(password);
        check(stun::long_term_key_md5(username, "example.org", "TheMatrIX", out.long_term_md5) ==
              stun::CredentialError::ok);
        check(stun::long_term_key_sha256(username, "example.org", "TheMatrIX",
                                         out.long_term_sha256) == stun::CredentialError::ok);
        return out;
    }();
    return k;
}

// A response class for a message: requests get a success response, the rest keep their class,
// so that writing a written response again keeps its type (invariant 5).
stun::MessageClass response_class(stun::MessageClass cls) {
    return cls == stun::MessageClass::request ? stun::MessageClass::success_response : cls;
}

// Decodes every visible attribute of `message` and writes what decoded into a new message in
// `buffer`, integrity and FINGERPRINT last. Returns the written message, empty when the writer
// failed (e.g. the input does not fit 2 KiB), which is not a bug.
std::span<std::byte> decode_and_rewrite(const stun::Message& message, std::span<std::byte> buffer) {
    using namespace stun;
    MessageWriter writer(buffer, message.method(), response_class(message.message_class()),
                         message.transaction_id());
    const Keys& k = keys();

    for (const Attribute a : message) {
        if (!message.visible(a)) continue;  // RFC 8489 §14.5, §14.6: ignored, so not copied
        switch (a.type) {
        case attr::mapped_address:
        case attr::alternate_server:
        case attr::response_origin:
        case attr::other_address: {
            Address address;
            if (decode_address(a, address) == ParseError::ok) {
                std::array<char, 48> text{};
                check(address.format(text) <= text.size());
                writer.add_address(a.type, address);
            }
            break;
        }
        case attr::xor_mapped_address:
        case attr::xor_peer_address:
        case attr::xor_relayed_address: {
            Address address;
            if (decode_xor_address(a, message.transaction_id(), address) == ParseError::ok) {
                writer.add_xor_address(a.type, address);
            }
            break;
        }
        case attr::username:
        case attr::realm:
        case attr::nonce:
        case attr::software:
        case attr::alternate_domain: {
            std::string_view text;
            if (decode_text(a, text) != ParseError::ok) break;
            check(text.size() <= text_limit(a.type));
            if (a.type == attr::username) {
                // A TURN REST server (rest.h) derives the key from the packet's USERNAME.
                static constexpr std::string_view secret = "fuzz-shared-secret";
                RestUsername rest;
                const RestError parsed = parse_rest_username(text, rest);
                LongTermKeyMd5 key{};
                const RestError derived =
                    rest_long_term_key(as_bytes(secret), text, "example.org", 0, key);
                // At time 0 nothing has expired: the key derives exactly when the name parses.
                check((parsed == RestError::ok) == (derived == RestError::ok));
                if (derived == RestError::ok) (void)verify_message_integrity(message, key);
            }
            if (a.type == attr::nonce) {
                if (const auto features = nonce_security_features(text)) {
                    std::array<char, 13> cookie{};
                    write_nonce_cookie(*features, cookie);
                    check(nonce_security_features({cookie.data(), cookie.size()}) == features);
                }
            }
            writer.add_text(a.type, text);
            break;
        }
        case attr::lifetime:
        case attr::priority:
        case attr::change_request: {
            std::uint32_t value = 0;
            if (decode_u32(a, value) == ParseError::ok) writer.add_u32(a.type, value);
            break;
        }
        case attr::ice_controlled:
        case attr::ice_controlling:
        case attr::reservation_token: {
            std::uint64_t value = 0;
            if (decode_u64(a, value) == ParseError::ok) writer.add_u64(a.type, value);
            break;
        }
        case attr::use_candidate:
        case attr::dont_fragment:
            if (decode_flag(a) == ParseError::ok) writer.add_flag(a.type);
            break;
        case attr::error_code: {
            ErrorCodeValue value;
            if (decode_error_code(a, value) == ParseError::ok) {
                check(value.code >= 300 && value.code <= 699);
                (void)reason_phrase(value.code);
                writer.add_error_code(value.code, value.reason);
            }
            break;
        }
        case attr::unknown_attributes: {
            std::array<std::uint16_t, 32> types{};
            std::size_t count = 0;
            if (decode_unknown_attributes(a, types, count) == ParseError::ok &&
                count <= types.size()) {
                writer.add_unknown_attributes(std::span<const std::uint16_t>(types).first(count));
            }
            break;
        }
        case attr::channel_number: {
            std::uint16_t channel = 0;
            if (decode_channel_number(a, channel) == ParseError::ok) {
                writer.add_channel_number(channel);
            }
            break;
        }
        case attr::requested_transport: {
            std::uint8_t protocol = 0;
            if (decode_requested_transport(a, protocol) == ParseError::ok) {
                writer.add_requested_transport(protocol);
            }
            break;
        }
        case attr::requested_address_family:
        case attr::additional_address_family: {
            AddressFamily family{};
            if (decode_address_family(a, family) == ParseError::ok) {
                writer.add_address_family(a.type, family);
            }
            break;
        }
        case attr::even_port: {
            bool reserve_next = false;
            if (decode_even_port(a, reserve_next) == ParseError::ok) {
                writer.add_even_port(reserve_next);
            }
            break;
        }
        case attr::response_port: {
            std::uint16_t port = 0;
            if (decode_response_port(a, port) == ParseError::ok) writer.add_response_port(port);
            break;
        }
        case attr::address_error_code: {
            AddressErrorCodeValue value;
            if (decode_address_error_code(a, value) == ParseError::ok) {
                writer.add_address_error_code(value.family, value.code, value.reason);
            }
            break;
        }
        case attr::icmp: {
            IcmpValue value;
            if (decode_icmp(a, value) == ParseError::ok) writer.add_icmp(value);
            break;
        }
        case attr::password_algorithm: {
            PasswordAlgorithmValue value;
            if (decode_password_algorithm(a, value) == ParseError::ok) {
                writer.add_password_algorithm(value);
            }
            break;
        }
        case attr::password_algorithms: {
            std::array<PasswordAlgorithmValue, 16> values{};
            std::size_t count = 0;
            if (decode_password_algorithms(a, values, count) == ParseError::ok &&
                count <= values.size()) {
                writer.add_password_algorithms(
                    std::span<const PasswordAlgorithmValue>(values).first(count));
            }
            break;
        }
        case attr::userhash: {
            std::span<const std::byte, 32> hash = k.long_term_sha256;  // overwritten on ok
            if (decode_userhash(a, hash) == ParseError::ok) writer.add(a.type, hash);
            break;
        }
        case attr::padding:
            writer.add_padding(a.value.size());
            break;
        case attr::message_integrity:
        case attr::message_integrity_sha256:
        case attr::fingerprint:
            break;  // written last, below
        default:
            (void)attribute_name(a.type);
            writer.add(a.type, a.value);  // DATA, and types the codec does not know
            break;
        }
    }

    // RFC 8489 §14.5-§14.7: MESSAGE-INTEGRITY, then MESSAGE-INTEGRITY-SHA256, then FINGERPRINT.
    if (message.message_integrity()) writer.add_message_integrity(k.long_term_md5);
    if (const auto sha256 = message.message_integrity_sha256()) {
        writer.add_message_integrity_sha256(k.long_term_sha256, sha256->value.size());
    }
    if (message.fingerprint()) writer.add_fingerprint();
    return writer.finish();
}

void check_message(const stun::Message& message, std::span<const std::byte> datagram) {
    using namespace stun;
    // Invariant 1.
    check(Message::looks_like_stun(datagram));
    check((classify(datagram) == PacketKind::stun) == (message.method() < 0x100));
    check(message.bytes().data() == datagram.data() && message.bytes().size() == datagram.size());
    (void)method_name(message.method());

    // Invariant 2.
    const std::byte* const begin = datagram.data() + header_size;
    const std::byte* const end = datagram.data() + datagram.size();
    for (const Attribute a : message) {
        check(a.offset >= header_size && a.offset + attribute_header_size <= datagram.size());
        check(a.value.data() >= begin && a.value.data() + a.value.size() <= end);
        if (message.visible(a)) check(message.find(a.type).has_value());
    }
    for (const auto& special :
         {message.message_integrity(), message.message_integrity_sha256(), message.fingerprint()}) {
        if (special) check(message.visible(*special));
    }

    std::array<std::uint16_t, 8> unknown{};
    const std::size_t unknown_count = message.unknown_comprehension_required(unknown);
    for (std::size_t i = 0; i < unknown_count && i < unknown.size(); ++i) {
        check(is_comprehension_required(unknown[i]) && !is_known_attribute(unknown[i]));
    }
    if (unknown_count > 0 && message.message_class() == MessageClass::request) {
        // What a server answers (RFC 8489 §6.3.1): 420 with UNKNOWN-ATTRIBUTES.
        std::array<std::byte, 256> buffer{};
        MessageWriter writer = begin_error_response(buffer, message, error_code::unknown_attribute);
        writer.add_unknown_attributes(
            std::span<const std::uint16_t>(unknown).first(std::min(unknown_count, unknown.size())));
        writer.add_fingerprint();
        Message answer;
        check(Message::parse(writer.finish(), answer) == ParseError::ok);
        check(answer.method() == message.method() &&
              answer.message_class() == MessageClass::error_response);
        check(std::memcmp(answer.transaction_id().data(), message.transaction_id().data(),
                          transaction_id_size) == 0);
        ErrorCodeValue error;
        const auto error_attribute = answer.find(attr::error_code);
        check(error_attribute && decode_error_code(*error_attribute, error) == ParseError::ok &&
              error.code == error_code::unknown_attribute);
    }

    const Keys& k = keys();
    (void)verify_message_integrity(message, k.short_term);
    (void)verify_message_integrity(message, k.long_term_md5);
    (void)verify_message_integrity_sha256(message, k.short_term);
    (void)verify_message_integrity_sha256(message, k.long_term_sha256);
    (void)verify_fingerprint(message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace stun;
    const std::span<const std::byte> datagram(reinterpret_cast<const std::byte*>(data), size);
    (void)classify(datagram);

    Message message;
    const ParseError error = Message::parse(datagram, message);
    (void)to_string(error);
    if (error != ParseError::ok) return 0;
    check_message(message, datagram);

    // Invariants 4 and 5.
    std::array<std::byte, 2048> first_buffer{};
    const std::span<std::byte> first = decode_and_rewrite(message, first_buffer);
    if (first.empty()) return 0;

    Message response;
    check(Message::parse(first, response) == ParseError::ok);
    const Keys& k = keys();
    if (response.fingerprint()) check(verify_fingerprint(response) == IntegrityResult::ok);
    if (response.message_integrity()) {
        check(verify_message_integrity(response, k.long_term_md5) == IntegrityResult::ok);
    }
    if (response.message_integrity_sha256()) {
        check(verify_message_integrity_sha256(response, k.long_term_sha256) ==
              IntegrityResult::ok);
    }

    // Written again into a buffer of exactly its size: the same bytes. Into a buffer 4 bytes
    // short (attributes come in multiples of 4): nothing.
    std::array<std::byte, 2048> second_buffer{};
    const std::span<std::byte> second =
        decode_and_rewrite(response, std::span<std::byte>(second_buffer).first(first.size()));
    check(second.size() == first.size() &&
          std::memcmp(second.data(), first.data(), first.size()) == 0);
    check(decode_and_rewrite(response,
                             std::span<std::byte>(second_buffer).first(first.size() - 4))
              .empty());
    return 0;
}
