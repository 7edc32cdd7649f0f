// STUN message writer into a caller-owned buffer (RFC 8489).
//
// The header is written at construction and its length field is kept current after every
// attribute, so the buffer holds a valid message at all times. Errors are sticky: the first
// failure is kept, later calls do nothing, and finish() returns an empty span. No allocation,
// no exceptions. The buffer may be the request's own (a response built in place): the caller
// reads what it needs from the request first, since attributes overwrite it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/errors.h"
#include "stun/message.h"

namespace stun {

class MessageWriter {
public:
    /// Writes the 20-byte header. Error buffer_too_small if `buffer` is shorter than 20 bytes.
    MessageWriter(std::span<std::byte> buffer, std::uint16_t method, MessageClass cls,
                  std::span<const std::byte, transaction_id_size> txid) noexcept;
    MessageWriter(std::span<std::byte> buffer, Method method, MessageClass cls,
                  std::span<const std::byte, transaction_id_size> txid) noexcept
        : MessageWriter(buffer, static_cast<std::uint16_t>(method), cls, txid) {}

    /// Any attribute from raw value bytes, zero-padded to 4.
    void add(std::uint16_t type, std::span<const std::byte> value) noexcept;
    /// A text attribute; value_too_long past text_send_limit(type).
    void add_text(std::uint16_t type, std::string_view text) noexcept;
    void add_u32(std::uint16_t type, std::uint32_t value) noexcept;
    void add_u64(std::uint16_t type, std::uint64_t value) noexcept;
    /// USE-CANDIDATE, DONT-FRAGMENT.
    void add_flag(std::uint16_t type) noexcept { add(type, {}); }
    void add_address(std::uint16_t type, const Address& address) noexcept;
    void add_xor_address(std::uint16_t type, const Address& address) noexcept;
    /// ERROR-CODE; `reason` defaults to the RFC's phrase. bad_value outside 300..699.
    void add_error_code(std::uint16_t code, std::string_view reason) noexcept;
    void add_error_code(std::uint16_t code) noexcept { add_error_code(code, reason_phrase(code)); }
    void add_unknown_attributes(std::span<const std::uint16_t> types) noexcept;
    void add_channel_number(std::uint16_t channel) noexcept;
    void add_requested_transport(std::uint8_t protocol) noexcept;
    /// REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY.
    void add_address_family(std::uint16_t type, AddressFamily family) noexcept;
    void add_even_port(bool reserve_next) noexcept;
    void add_response_port(std::uint16_t port) noexcept;
    void add_address_error_code(AddressFamily family, std::uint16_t code,
                                std::string_view reason) noexcept;
    void add_icmp(const IcmpValue& icmp) noexcept;
    void add_password_algorithm(const PasswordAlgorithmValue& algorithm) noexcept;
    void add_password_algorithms(std::span<const PasswordAlgorithmValue> algorithms) noexcept;
    /// PADDING of `length` zero bytes (RFC 5780 §7.6).
    void add_padding(std::size_t length) noexcept;

    /// MESSAGE-INTEGRITY: HMAC-SHA1 over the message so far, with the header's length counting
    /// the MESSAGE-INTEGRITY attribute itself (RFC 8489 §14.5).
    void add_message_integrity(std::span<const std::byte> key) noexcept;
    /// MESSAGE-INTEGRITY-SHA256, truncated to `length` bytes (16..32, a multiple of 4;
    /// bad_value otherwise) (RFC 8489 §14.6).
    void add_message_integrity_sha256(std::span<const std::byte> key,
                                      std::size_t length = 32) noexcept;
    /// FINGERPRINT: CRC-32 of the message so far XOR 0x5354554E (RFC 8489 §14.7). Last.
    void add_fingerprint() noexcept;

    [[nodiscard]] WriteError error() const noexcept { return error_; }
    [[nodiscard]] bool ok() const noexcept { return error_ == WriteError::ok; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The message written so far; empty if any call failed.
    [[nodiscard]] std::span<std::byte> finish() const noexcept {
        return ok() ? buffer_.first(size_) : std::span<std::byte>{};
    }
    [[nodiscard]] std::span<const std::byte, transaction_id_size> transaction_id() const noexcept {
        return std::span<const std::byte, transaction_id_size>(buffer_.data() + 8,
                                                               transaction_id_size);
    }

private:
    /// Reserves an attribute of `length` value bytes (zero padding written); returns a pointer
    /// to the value or nullptr on error.
    std::byte* reserve(std::uint16_t type, std::size_t length) noexcept;
    void fail(WriteError error) noexcept {
        if (error_ == WriteError::ok) error_ = error;
    }

    std::span<std::byte> buffer_;
    std::size_t size_ = 0;
    WriteError error_ = WriteError::ok;
    bool sealed_ = false;  // FINGERPRINT written
};

/// Starts an error response to `request` (same method, same transaction ID) with ERROR-CODE
/// and the RFC reason phrase. The caller adds UNKNOWN-ATTRIBUTES (420), ALTERNATE-SERVER (300),
/// REALM and NONCE (401, 438), integrity and FINGERPRINT as the case requires.
[[nodiscard]] MessageWriter begin_error_response(std::span<std::byte> buffer,
                                                 const Message& request,
                                                 std::uint16_t code) noexcept;

}  // namespace stun
