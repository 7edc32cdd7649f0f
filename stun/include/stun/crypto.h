// The digests the codec needs, by OpenSSL (HMAC, MD5, SHA-256, random) and libdeflate (CRC-32).
//
// Inputs are given as several spans so that a message can be hashed with a rewritten header
// without copying it. None of these allocates except random_bytes() (OpenSSL's generator sets
// itself up on first use); crypto.cc says why it uses OpenSSL's low-level digest functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace stun {

using Parts = std::initializer_list<std::span<const std::byte>>;

void hmac_sha1(std::span<const std::byte> key, Parts data, std::span<std::byte, 20> out) noexcept;
void hmac_sha256(std::span<const std::byte> key, Parts data,
                 std::span<std::byte, 32> out) noexcept;
void md5(Parts data, std::span<std::byte, 16> out) noexcept;
void sha256(Parts data, std::span<std::byte, 32> out) noexcept;
std::uint32_t crc32(Parts data) noexcept;

/// Cryptographically random bytes (transaction IDs, nonces); false if the generator failed.
[[nodiscard]] bool random_bytes(std::span<std::byte> out) noexcept;

/// Constant-time equality of two equally long byte strings.
[[nodiscard]] bool equal_constant_time(std::span<const std::byte> a,
                                       std::span<const std::byte> b) noexcept;

}  // namespace stun
