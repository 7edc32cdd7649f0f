// Zero-copy STUN message reader (RFC 8489).
//
// Message::parse() validates the header and walks every attribute once, checking each length
// before it is used. After a successful parse, attribute access cannot read out of bounds. The
// Message is a view: it borrows the datagram, which must outlive it. No allocation, no
// exceptions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "stun/constants.h"
#include "stun/errors.h"

namespace stun {

using TransactionId = std::array<std::byte, transaction_id_size>;

/// One attribute as found in a message: its type and a view of its value (without padding).
struct Attribute {
    std::uint16_t type = 0;
    std::span<const std::byte> value;
    /// Offset of the attribute's 4-byte header from the start of the message.
    std::uint32_t offset = 0;
};

class Message {
public:
    /// Validates `datagram` as a STUN message and fills `out`.
    ///
    /// Errors: truncated_header, not_stun, bad_magic_cookie, length_not_multiple_of_4,
    /// length_mismatch, attribute_overrun, fingerprint_not_last, bad_integrity_length,
    /// bad_fingerprint_length. On error `out` is left unchanged.
    ///
    /// Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT,
    /// and after MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT, are bounds-checked but not
    /// visible to find() and unknown_comprehension_required() (RFC 8489 §14.5, §14.6: "agents
    /// MUST ignore all other attributes that follow MESSAGE-INTEGRITY").
    ///
    /// Cost: one pass over the attribute headers; ≈ 15 ns for a Binding request with
    /// FINGERPRINT, ≈ 38 ns for an ICE check with six attributes (bench/stun_codec_bench).
    [[nodiscard]] static ParseError parse(std::span<const std::byte> datagram,
                                          Message& out) noexcept;

    /// Cheap pre-filter for demultiplexing (RFC 8489 §5, RFC 7983): at least a header, the
    /// top two bits zero, the magic cookie present, the length a multiple of 4.
    [[nodiscard]] static bool looks_like_stun(std::span<const std::byte> datagram) noexcept;

    [[nodiscard]] std::uint16_t type() const noexcept;
    [[nodiscard]] std::uint16_t method() const noexcept { return method_of(type()); }
    [[nodiscard]] MessageClass message_class() const noexcept { return class_of(type()); }
    [[nodiscard]] bool is(Method m, MessageClass c) const noexcept {
        return type() == message_type(m, c);
    }
    [[nodiscard]] std::span<const std::byte, transaction_id_size> transaction_id() const noexcept {
        return bytes_.subspan<8, transaction_id_size>();
    }
    /// The whole message, header included.
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }

    /// Iterates over every attribute in wire order, duplicates and ignored ones included (for
    /// dumps and fuzzing; a server uses find()). visible() tells whether one counts.
    class Iterator {
    public:
        using value_type = Attribute;
        using difference_type = std::ptrdiff_t;
        Iterator() = default;
        Iterator(const std::byte* base, std::uint32_t offset) : base_(base), offset_(offset) {}
        Attribute operator*() const noexcept;
        Iterator& operator++() noexcept;
        Iterator operator++(int) noexcept {
            Iterator old = *this;
            ++*this;
            return old;
        }
        bool operator==(const Iterator& other) const noexcept { return offset_ == other.offset_; }

    private:
        const std::byte* base_ = nullptr;
        std::uint32_t offset_ = 0;
    };
    [[nodiscard]] Iterator begin() const noexcept { return {bytes_.data(), header_size}; }
    [[nodiscard]] Iterator end() const noexcept {
        return {bytes_.data(), static_cast<std::uint32_t>(bytes_.size())};
    }
    /// False for an attribute that RFC 8489 §14.5/§14.6 says to ignore.
    [[nodiscard]] bool visible(const Attribute& a) const noexcept {
        return a.offset < visible_end_ || a.offset == integrity_sha256_offset_ ||
               a.offset == fingerprint_offset_;
    }

    /// The first visible attribute of `type` (RFC 8489 §14: later duplicates are ignored).
    [[nodiscard]] std::optional<Attribute> find(std::uint16_t type) const noexcept;

    [[nodiscard]] std::optional<Attribute> message_integrity() const noexcept {
        return at(integrity_offset_);
    }
    [[nodiscard]] std::optional<Attribute> message_integrity_sha256() const noexcept {
        return at(integrity_sha256_offset_);
    }
    [[nodiscard]] std::optional<Attribute> fingerprint() const noexcept {
        return at(fingerprint_offset_);
    }

    /// Collects the visible comprehension-required attributes that `known` rejects, for a 420
    /// response's UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1). Writes up to out.size() distinct types
    /// and returns how many distinct ones there are (which may exceed out.size()).
    [[nodiscard]] std::size_t unknown_comprehension_required(
        std::span<std::uint16_t> out,
        bool (*known)(std::uint16_t) = &is_known_attribute) const noexcept;

private:
    [[nodiscard]] std::optional<Attribute> at(std::uint32_t offset) const noexcept;

    std::span<const std::byte> bytes_;
    std::uint32_t visible_end_ = header_size;
    // Offsets of the attribute headers; 0 means absent (no attribute starts at offset 0).
    std::uint32_t integrity_offset_ = 0;
    std::uint32_t integrity_sha256_offset_ = 0;
    std::uint32_t fingerprint_offset_ = 0;
};

}  // namespace stun
