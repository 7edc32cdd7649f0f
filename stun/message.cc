#include "stun/message.h"

#include "stun/bytes.h"

namespace stun {

bool Message::looks_like_stun(std::span<const std::byte> d) noexcept {
    return d.size() >= header_size && (std::to_integer<unsigned>(d[0]) & 0xC0) == 0 &&
           load_be32(d.data() + 4) == magic_cookie && (load_be16(d.data() + 2) & 3) == 0;
}

ParseError Message::parse(std::span<const std::byte> d, Message& out) noexcept {
    // RFC 8489 §6.3: "the most significant 2 bits of every STUN message MUST be zeroes ...
    // the magic cookie field has the correct value, the message length is sensible".
    if (d.size() < header_size) return ParseError::truncated_header;
    if ((std::to_integer<unsigned>(d[0]) & 0xC0) != 0) return ParseError::not_stun;
    if (load_be32(d.data() + 4) != magic_cookie) return ParseError::bad_magic_cookie;
    const std::uint16_t length = load_be16(d.data() + 2);
    // RFC 8489 §5: "the message length MUST contain a size that is a multiple of 4 bytes".
    if ((length & 3) != 0) return ParseError::length_not_multiple_of_4;
    if (header_size + length != d.size()) return ParseError::length_mismatch;

    const auto end = static_cast<std::uint32_t>(d.size());
    std::uint32_t offset = header_size;
    std::uint32_t visible_end = end;
    std::uint32_t integrity = 0;
    std::uint32_t integrity_sha256 = 0;
    std::uint32_t fingerprint = 0;
    // The remaining length is a multiple of 4, so an attribute header always fits.
    while (offset < end) {
        const std::uint16_t type = load_be16(d.data() + offset);
        const std::uint16_t value_length = load_be16(d.data() + offset + 2);
        const std::uint32_t next =
            offset + static_cast<std::uint32_t>(attribute_header_size + padded4(value_length));
        if (next > end) return ParseError::attribute_overrun;
        // RFC 8489 §14.7: "the FINGERPRINT attribute MUST be the last attribute".
        if (fingerprint != 0) return ParseError::fingerprint_not_last;
        switch (type) {
        case attr::message_integrity:
            // RFC 8489 §14.5: 20 bytes of HMAC-SHA1.
            if (value_length != 20) return ParseError::bad_integrity_length;
            if (integrity == 0 && integrity_sha256 == 0) {
                integrity = offset;
                visible_end = next;
            }
            break;
        case attr::message_integrity_sha256:
            // RFC 8489 §14.6: "at least 16 bytes ... MUST be a multiple of 4 ... at most 32".
            if (value_length < 16 || value_length > 32 || (value_length & 3) != 0)
                return ParseError::bad_integrity_length;
            if (integrity_sha256 == 0) {
                integrity_sha256 = offset;
                if (integrity == 0) visible_end = next;
            }
            break;
        case attr::fingerprint:
            if (value_length != 4) return ParseError::bad_fingerprint_length;
            fingerprint = offset;
            break;
        default:
            break;
        }
        offset = next;
    }
    out.bytes_ = d;
    out.visible_end_ = visible_end;
    out.integrity_offset_ = integrity;
    out.integrity_sha256_offset_ = integrity_sha256;
    out.fingerprint_offset_ = fingerprint;
    return ParseError::ok;
}

std::uint16_t Message::type() const noexcept { return load_be16(bytes_.data()); }

Attribute Message::Iterator::operator*() const noexcept {
    const std::uint16_t length = load_be16(base_ + offset_ + 2);
    return {load_be16(base_ + offset_), {base_ + offset_ + attribute_header_size, length},
            offset_};
}

Message::Iterator& Message::Iterator::operator++() noexcept {
    offset_ += static_cast<std::uint32_t>(attribute_header_size +
                                          padded4(load_be16(base_ + offset_ + 2)));
    return *this;
}

std::optional<Attribute> Message::at(std::uint32_t offset) const noexcept {
    if (offset == 0) return std::nullopt;
    return *Iterator(bytes_.data(), offset);
}

std::optional<Attribute> Message::find(std::uint16_t type) const noexcept {
    switch (type) {
    case attr::message_integrity: return at(integrity_offset_);
    case attr::message_integrity_sha256: return at(integrity_sha256_offset_);
    case attr::fingerprint: return at(fingerprint_offset_);
    default: break;
    }
    for (Iterator it = begin(), last(bytes_.data(), visible_end_); it != last; ++it) {
        const Attribute a = *it;
        if (a.type == type) return a;
    }
    return std::nullopt;
}

std::size_t Message::unknown_comprehension_required(std::span<std::uint16_t> out,
                                                    bool (*known)(std::uint16_t)) const noexcept {
    std::size_t count = 0;
    const Iterator first = begin();
    const Iterator last(bytes_.data(), visible_end_);
    for (Iterator it = first; it != last; ++it) {
        const std::uint16_t type = (*it).type;
        if (!is_comprehension_required(type) || known(type)) continue;
        // Count each type once: this path only runs for messages that get a 420, so the
        // quadratic re-walk over a handful of attributes is cheaper than any bookkeeping.
        bool seen = false;
        for (Iterator earlier = first; earlier != it && !seen; ++earlier)
            seen = (*earlier).type == type;
        if (seen) continue;
        if (count < out.size()) out[count] = type;
        ++count;
    }
    return count;
}

}  // namespace stun
