// stun_dump: decodes STUN/TURN messages and ChannelData frames and checks their integrity.
//
//   stun_dump [--password PASSWORD] FILE...       raw datagrams, one per file
//   stun_dump [--password PASSWORD] --hex HEX...  datagrams as hex (spaces and colons allowed)
//
// With --password, MESSAGE-INTEGRITY(-SHA256) is checked with the long-term key when the
// message carries USERNAME and REALM (MD5(username:realm:password)), else with the short-term
// key (the password itself). Exit status: 0 when every input decoded and every check that
// could run passed, 1 otherwise, 2 on a usage error.
#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/channel_data.h"
#include "stun/credentials.h"
#include "stun/demux.h"
#include "stun/integrity.h"
#include "stun/message.h"

namespace {

std::string hex(std::span<const std::byte> bytes) {
    std::string s;
    for (const std::byte b : bytes) {
        char two[3];
        std::snprintf(two, sizeof two, "%02x", std::to_integer<unsigned>(b));
        s += two;
    }
    return s;
}

std::string quoted(std::string_view text) {
    std::string s = "\"";
    for (const char c : text) {
        // Bytes of 0x80 and above are UTF-8 and printed as they are; controls are escaped.
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u != 0x7F) {
            s += c;
        } else {
            char escaped[5];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned char>(c));
            s += escaped;
        }
    }
    return s + "\"";
}

const char* class_name(stun::MessageClass c) {
    switch (c) {
    case stun::MessageClass::request: return "request";
    case stun::MessageClass::indication: return "indication";
    case stun::MessageClass::success_response: return "success response";
    case stun::MessageClass::error_response: return "error response";
    }
    return "?";
}

std::string address_text(const stun::Address& a) {
    char text[48];
    return {text, a.format(text)};
}

// One line describing an attribute's value; "!" and the error for a value that does not decode.
std::string describe(const stun::Message& m, const stun::Attribute& a) {
    using namespace stun;
    auto failed = [](ParseError e) { return "! " + std::string(to_string(e)); };
    switch (a.type) {
    case attr::mapped_address:
    case attr::alternate_server:
    case attr::response_origin:
    case attr::other_address: {
        Address address;
        const ParseError e = decode_address(a, address);
        return e == ParseError::ok ? address_text(address) : failed(e);
    }
    case attr::xor_mapped_address:
    case attr::xor_peer_address:
    case attr::xor_relayed_address: {
        Address address;
        const ParseError e = decode_xor_address(a, m.transaction_id(), address);
        return e == ParseError::ok ? address_text(address) : failed(e);
    }
    case attr::username:
    case attr::realm:
    case attr::nonce:
    case attr::software:
    case attr::alternate_domain: {
        std::string_view text;
        const ParseError e = decode_text(a, text);
        if (e != ParseError::ok) return failed(e);
        std::string s = quoted(text);
        if (a.type == attr::nonce) {
            if (const auto features = nonce_security_features(text)) {
                char bits[32];
                std::snprintf(bits, sizeof bits, " (security features 0x%06x)", *features);
                s += bits;
            }
        }
        return s;
    }
    case attr::error_code: {
        ErrorCodeValue v;
        const ParseError e = decode_error_code(a, v);
        return e == ParseError::ok ? std::to_string(v.code) + " " + quoted(v.reason) : failed(e);
    }
    case attr::lifetime:
    case attr::priority:
    case attr::change_request: {
        std::uint32_t v = 0;
        const ParseError e = decode_u32(a, v);
        return e == ParseError::ok ? std::to_string(v) : failed(e);
    }
    case attr::ice_controlled:
    case attr::ice_controlling:
    case attr::reservation_token: {
        std::uint64_t v = 0;
        const ParseError e = decode_u64(a, v);
        char text[24];
        std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(v));
        return e == ParseError::ok ? std::string(text) : failed(e);
    }
    case attr::channel_number: {
        std::uint16_t v = 0;
        const ParseError e = decode_channel_number(a, v);
        char text[8];
        std::snprintf(text, sizeof text, "0x%04x", v);
        return e == ParseError::ok ? std::string(text) : failed(e);
    }
    case attr::requested_transport: {
        std::uint8_t v = 0;
        const ParseError e = decode_requested_transport(a, v);
        return e == ParseError::ok ? (v == transport_udp ? "UDP" : std::to_string(v)) : failed(e);
    }
    case attr::unknown_attributes: {
        std::uint16_t types[32];
        std::size_t count = 0;
        const ParseError e = decode_unknown_attributes(a, types, count);
        if (e != ParseError::ok) return failed(e);
        std::string s;
        for (std::size_t i = 0; i < count && i < std::size(types); ++i) {
            char text[8];
            std::snprintf(text, sizeof text, "0x%04x ", types[i]);
            s += text;
        }
        return s;
    }
    case attr::fingerprint:
        return verify_fingerprint(m) == IntegrityResult::ok ? "CRC-32 ok" : "CRC-32 MISMATCH";
    default:
        return a.value.size() <= 32 ? hex(a.value) : hex(a.value.first(32)) + "...";
    }
}

bool check_integrity(const stun::Message& m, const std::string& password) {
    using namespace stun;
    const auto username = m.find(attr::username);
    const auto realm = m.find(attr::realm);
    std::array<std::byte, 16> long_term{};
    std::span<const std::byte> key;
    char storage[513];
    const char* kind = "short-term";
    if (username && realm) {
        kind = "long-term";
        std::string_view user_text, realm_text;
        if (decode_text(*username, user_text) != ParseError::ok ||
            decode_text(*realm, realm_text) != ParseError::ok ||
            long_term_key_md5(user_text, realm_text, password, long_term) != CredentialError::ok) {
            std::printf("  integrity            cannot derive the long-term key\n");
            return false;
        }
        key = long_term;
    } else if (short_term_key(password, storage, key) != CredentialError::ok) {
        std::printf("  integrity            the password fails SASLprep\n");
        return false;
    }
    bool ok = true;
    if (m.message_integrity()) {
        const bool pass = verify_message_integrity(m, key) == IntegrityResult::ok;
        std::printf("  MESSAGE-INTEGRITY    %s key: %s\n", kind, pass ? "ok" : "MISMATCH");
        ok = ok && pass;
    }
    if (m.message_integrity_sha256()) {
        const bool pass = verify_message_integrity_sha256(m, key) == IntegrityResult::ok;
        std::printf("  MESSAGE-INTEGRITY-SHA256 %s key: %s\n", kind, pass ? "ok" : "MISMATCH");
        ok = ok && pass;
    }
    return ok;
}

bool dump(const std::string& name, std::span<const std::byte> datagram,
          const std::string& password) {
    using namespace stun;
    std::printf("%s: %zu bytes, %s\n", name.c_str(), datagram.size(),
                std::string(to_string(classify(datagram))).c_str());
    if (classify(datagram) == PacketKind::turn_channel) {
        ChannelData frame;
        const ParseError e = parse_channel_data(datagram, frame);
        if (e != ParseError::ok) {
            std::printf("  refused: %s\n", std::string(to_string(e)).c_str());
            return false;
        }
        std::printf("  ChannelData channel 0x%04x, %zu bytes of data\n", frame.channel,
                    frame.data.size());
        return true;
    }
    Message m;
    if (const ParseError e = Message::parse(datagram, m); e != ParseError::ok) {
        std::printf("  refused: %s\n", std::string(to_string(e)).c_str());
        return false;
    }
    const std::string_view method = method_name(m.method());
    std::printf("  %s %s, transaction %s\n",
                method.empty() ? ("method 0x" + std::to_string(m.method())).c_str()
                               : std::string(method).c_str(),
                class_name(m.message_class()), hex(m.transaction_id()).c_str());
    bool ok = true;
    for (const Attribute a : m) {
        const std::string_view name_of = attribute_name(a.type);
        char type[32];
        std::snprintf(type, sizeof type, "0x%04x", a.type);
        std::printf("  %-24s %s%s\n", name_of.empty() ? type : std::string(name_of).c_str(),
                    describe(m, a).c_str(), m.visible(a) ? "" : "  (ignored: after integrity)");
    }
    if (m.fingerprint()) ok = ok && verify_fingerprint(m) == IntegrityResult::ok;
    if (!password.empty() && (m.message_integrity() || m.message_integrity_sha256()))
        ok = check_integrity(m, password) && ok;
    return ok;
}

std::vector<std::byte> from_hex(const std::string& text, bool& ok) {
    std::vector<std::byte> bytes;
    std::string digits;
    for (const char c : text)
        if (std::isspace(static_cast<unsigned char>(c)) == 0 && c != ':') digits += c;
    ok = digits.size() % 2 == 0;
    for (std::size_t i = 0; ok && i < digits.size(); i += 2) {
        const std::string pair = digits.substr(i, 2);
        ok = std::isxdigit(static_cast<unsigned char>(pair[0])) != 0 &&
             std::isxdigit(static_cast<unsigned char>(pair[1])) != 0;
        if (ok) bytes.push_back(static_cast<std::byte>(std::stoul(pair, nullptr, 16)));
    }
    return bytes;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Decode STUN/TURN messages and ChannelData frames and check their integrity."};
    std::string password;
    std::vector<std::string> files;
    std::vector<std::string> hex_inputs;
    app.add_option("--password", password,
                   "check MESSAGE-INTEGRITY with this password (long-term key when the message "
                   "has USERNAME and REALM, short-term otherwise)");
    app.add_option("--hex", hex_inputs, "datagrams given as hex strings");
    app.add_option("files", files, "files, each holding one raw datagram");
    CLI11_PARSE(app, argc, argv);
    if (files.empty() && hex_inputs.empty()) {
        std::fprintf(stderr, "stun_dump: nothing to decode; give FILE... or --hex HEX "
                             "(see stun_dump --help)\n");
        return 2;
    }
    bool all_ok = true;
    for (const std::string& file : files) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "stun_dump: cannot read %s\n", file.c_str());
            all_ok = false;
            continue;
        }
        const std::string raw{std::istreambuf_iterator<char>(in), {}};
        all_ok = dump(file, stun::as_bytes(raw), password) && all_ok;
    }
    for (std::size_t i = 0; i < hex_inputs.size(); ++i) {
        bool hex_ok = false;
        const auto bytes = from_hex(hex_inputs[i], hex_ok);
        if (!hex_ok) {
            std::fprintf(stderr, "stun_dump: --hex argument %zu is not an even number of hex "
                                 "digits\n", i + 1);
            all_ok = false;
            continue;
        }
        all_ok = dump("hex #" + std::to_string(i + 1), bytes, password) && all_ok;
    }
    return all_ok ? 0 : 1;
}
