// Wire constants of STUN (RFC 8489), TURN (RFC 8656), NAT behaviour discovery (RFC 5780) and
// ICE (RFC 8445): methods, classes, attribute types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace stun {

/// RFC 8489 §5: the fixed value in bytes 4..7 of every STUN header.
inline constexpr std::uint32_t magic_cookie = 0x2112A442;
/// RFC 8489 §5: header size.
inline constexpr std::size_t header_size = 20;
/// RFC 8489 §5: transaction ID size.
inline constexpr std::size_t transaction_id_size = 12;
/// RFC 8489 §14: type (2) + length (2).
inline constexpr std::size_t attribute_header_size = 4;
/// RFC 8489 §14.7: FINGERPRINT is CRC-32 XOR this value ("STUN").
inline constexpr std::uint32_t fingerprint_xor = 0x5354554E;

/// RFC 8489 §5: the class bits C1 C0 of the message type.
enum class MessageClass : std::uint8_t {
    request = 0b00,
    indication = 0b01,
    success_response = 0b10,
    error_response = 0b11,
};

/// STUN methods: RFC 8489 §18.2 (Binding) and RFC 8656 §17 (TURN).
enum class Method : std::uint16_t {
    binding = 0x001,
    allocate = 0x003,
    refresh = 0x004,
    send = 0x006,
    data = 0x007,
    create_permission = 0x008,
    channel_bind = 0x009,
};

/// Attribute types. Comprehension-required are 0x0000-0x7FFF, optional 0x8000-0xFFFF
/// (RFC 8489 §14).
namespace attr {
// RFC 8489 §18.3
inline constexpr std::uint16_t mapped_address = 0x0001;
inline constexpr std::uint16_t username = 0x0006;
inline constexpr std::uint16_t message_integrity = 0x0008;
inline constexpr std::uint16_t error_code = 0x0009;
inline constexpr std::uint16_t unknown_attributes = 0x000A;
inline constexpr std::uint16_t realm = 0x0014;
inline constexpr std::uint16_t nonce = 0x0015;
inline constexpr std::uint16_t message_integrity_sha256 = 0x001C;
inline constexpr std::uint16_t password_algorithm = 0x001D;
inline constexpr std::uint16_t userhash = 0x001E;
inline constexpr std::uint16_t xor_mapped_address = 0x0020;
inline constexpr std::uint16_t password_algorithms = 0x8002;
inline constexpr std::uint16_t alternate_domain = 0x8003;
inline constexpr std::uint16_t software = 0x8022;
inline constexpr std::uint16_t alternate_server = 0x8023;
inline constexpr std::uint16_t fingerprint = 0x8028;
// RFC 8656 §18
inline constexpr std::uint16_t channel_number = 0x000C;
inline constexpr std::uint16_t lifetime = 0x000D;
inline constexpr std::uint16_t xor_peer_address = 0x0012;
inline constexpr std::uint16_t data = 0x0013;
inline constexpr std::uint16_t xor_relayed_address = 0x0016;
inline constexpr std::uint16_t requested_address_family = 0x0017;
inline constexpr std::uint16_t even_port = 0x0018;
inline constexpr std::uint16_t requested_transport = 0x0019;
inline constexpr std::uint16_t dont_fragment = 0x001A;
inline constexpr std::uint16_t reservation_token = 0x0022;
inline constexpr std::uint16_t additional_address_family = 0x8000;
inline constexpr std::uint16_t address_error_code = 0x8001;
inline constexpr std::uint16_t icmp = 0x8004;
// RFC 5780 §7
inline constexpr std::uint16_t change_request = 0x0003;
inline constexpr std::uint16_t padding = 0x0026;
inline constexpr std::uint16_t response_port = 0x0027;
inline constexpr std::uint16_t response_origin = 0x802B;
inline constexpr std::uint16_t other_address = 0x802C;
// RFC 8445 §16.1
inline constexpr std::uint16_t priority = 0x0024;
inline constexpr std::uint16_t use_candidate = 0x0025;
inline constexpr std::uint16_t ice_controlled = 0x8029;
inline constexpr std::uint16_t ice_controlling = 0x802A;
}  // namespace attr

/// RFC 8489 §14: the comprehension-required range.
constexpr bool is_comprehension_required(std::uint16_t type) noexcept { return type < 0x8000; }

/// True for every attribute type this codec knows (those in namespace attr).
bool is_known_attribute(std::uint16_t type) noexcept;

/// The attribute's RFC name ("XOR-MAPPED-ADDRESS"), or "" when unknown.
std::string_view attribute_name(std::uint16_t type) noexcept;

/// The method's RFC name ("Binding", "CreatePermission"), or "" when unknown.
std::string_view method_name(std::uint16_t method) noexcept;

/// RFC 8489 §5: the 16-bit message type from a 12-bit method and a class:
/// M11..M7 C1 M6..M4 C0 M3..M0.
constexpr std::uint16_t message_type(std::uint16_t method, MessageClass cls) noexcept {
    const auto c = static_cast<std::uint16_t>(cls);
    return static_cast<std::uint16_t>(((method & 0x0F80) << 2) | ((method & 0x0070) << 1) |
                                      (method & 0x000F) | ((c & 0b10) << 7) | ((c & 0b01) << 4));
}
constexpr std::uint16_t message_type(Method method, MessageClass cls) noexcept {
    return message_type(static_cast<std::uint16_t>(method), cls);
}

constexpr std::uint16_t method_of(std::uint16_t type) noexcept {
    return static_cast<std::uint16_t>(((type & 0x3E00) >> 2) | ((type & 0x00E0) >> 1) |
                                      (type & 0x000F));
}
constexpr MessageClass class_of(std::uint16_t type) noexcept {
    return static_cast<MessageClass>(((type & 0x0100) >> 7) | ((type & 0x0010) >> 4));
}

/// RFC 8656 §14: IANA protocol number of UDP, the only REQUESTED-TRANSPORT a UDP relay serves.
inline constexpr std::uint8_t transport_udp = 17;

/// RFC 8656 §12: channel numbers a client may bind; our clients choose from these.
inline constexpr std::uint16_t channel_min = 0x4000;
inline constexpr std::uint16_t channel_max = 0x4FFF;
/// The last channel number a server accepts: RFC 5766 §11's 0x7FFF, which RFC 8656 §12
/// narrowed to 0x4FFF (RFC 7983 keeps first bytes 64-79 for TURN). Clients still bind
/// 0x5000-0x7FFF (coturn's turnutils_uclient picks from 0x4000-0x7FFF), and coturn's and
/// pion's servers accept them; so does ours. ChannelData on a server's port starts 64-127.
inline constexpr std::uint16_t channel_accepted_max = 0x7FFF;

/// RFC 5780 §7.2: CHANGE-REQUEST flag bits.
inline constexpr std::uint32_t change_ip = 0x4;
inline constexpr std::uint32_t change_port = 0x2;

/// RFC 8489 §18.5: PASSWORD-ALGORITHM values.
enum class PasswordAlgorithm : std::uint16_t { md5 = 0x0001, sha256 = 0x0002 };

}  // namespace stun
