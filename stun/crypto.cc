// Digests by OpenSSL, CRC-32 by libdeflate.
//
// Why the low-level OpenSSL digest functions (SHA1_Init ...) and not EVP: OpenSSL 3.0's EVP
// layer allocates on every init (measured here: EVP_MAC_init 5 mallocs, HMAC() 13, HMAC_CTX
// re-key 6, EVP_DigestInit 1-2; an HMAC-SHA1 with a new key costs ~1 us), and the codec must
// not allocate per message. The low-level functions run on a stack context with no allocation
// (SHA-1 of 100 bytes: ~60 ns). HMAC is then RFC 2104's construction over them; tests check it
// against OpenSSL's own HMAC() and the RFC 2202 / RFC 4231 vectors. They are deprecated in
// OpenSSL 3 but present in every 3.x release.
//
// Why libdeflate and not zlib for CRC-32 (same polynomial, same result): on the short inputs
// STUN has, Debian 12's zlib costs 30 ns for 24 bytes and 109 ns for 88, libdeflate (PCLMULQDQ
// folding where the CPU has it) 17 ns and 22 ns; a Binding answer computes two CRCs.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "stun/crypto.h"

#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <libdeflate.h>

#include <cstring>

#include "stun/crc32_terms.h"

namespace stun {
namespace {

// Adapters so that one HMAC template serves SHA-1 and SHA-256.
struct Sha1 {
    using Context = SHA_CTX;
    static constexpr std::size_t block_size = SHA_CBLOCK;
    static constexpr std::size_t digest_size = SHA_DIGEST_LENGTH;
    static void init(Context& c) noexcept { SHA1_Init(&c); }
    static void update(Context& c, const void* p, std::size_t n) noexcept { SHA1_Update(&c, p, n); }
    static void final(Context& c, unsigned char* out) noexcept { SHA1_Final(out, &c); }
};

struct Sha256 {
    using Context = SHA256_CTX;
    static constexpr std::size_t block_size = SHA256_CBLOCK;
    static constexpr std::size_t digest_size = SHA256_DIGEST_LENGTH;
    static void init(Context& c) noexcept { SHA256_Init(&c); }
    static void update(Context& c, const void* p, std::size_t n) noexcept {
        SHA256_Update(&c, p, n);
    }
    static void final(Context& c, unsigned char* out) noexcept { SHA256_Final(out, &c); }
};

// RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text)); a key longer than the block is hashed first.
template <typename Hash>
void hmac(std::span<const std::byte> key, Parts data, std::byte* out) noexcept {
    unsigned char block[Hash::block_size] = {};
    typename Hash::Context context;
    if (key.size() > Hash::block_size) {
        Hash::init(context);
        Hash::update(context, key.data(), key.size());
        Hash::final(context, block);
    } else if (!key.empty()) {
        std::memcpy(block, key.data(), key.size());
    }
    unsigned char pad[Hash::block_size];
    for (std::size_t i = 0; i < Hash::block_size; ++i) pad[i] = block[i] ^ 0x36;
    Hash::init(context);
    Hash::update(context, pad, sizeof pad);
    for (const auto part : data) Hash::update(context, part.data(), part.size());
    unsigned char inner[Hash::digest_size];
    Hash::final(context, inner);
    for (std::size_t i = 0; i < Hash::block_size; ++i) pad[i] = block[i] ^ 0x5c;
    Hash::init(context);
    Hash::update(context, pad, sizeof pad);
    Hash::update(context, inner, sizeof inner);
    Hash::final(context, reinterpret_cast<unsigned char*>(out));
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

}  // namespace

void hmac_sha1(std::span<const std::byte> key, Parts data, std::span<std::byte, 20> out) noexcept {
    hmac<Sha1>(key, data, out.data());
}

void hmac_sha256(std::span<const std::byte> key, Parts data,
                 std::span<std::byte, 32> out) noexcept {
    hmac<Sha256>(key, data, out.data());
}

void md5(Parts data, std::span<std::byte, 16> out) noexcept {
    MD5_CTX context;
    MD5_Init(&context);
    for (const auto part : data) MD5_Update(&context, part.data(), part.size());
    MD5_Final(reinterpret_cast<unsigned char*>(out.data()), &context);
}

void sha256(Parts data, std::span<std::byte, 32> out) noexcept {
    SHA256_CTX context;
    SHA256_Init(&context);
    for (const auto part : data) SHA256_Update(&context, part.data(), part.size());
    SHA256_Final(reinterpret_cast<unsigned char*>(out.data()), &context);
}

bool crc32_terms_supported() noexcept {
#if STUN_CRC32_TERMS
    static const bool supported = __builtin_cpu_supports("pclmul") != 0;
    return supported;
#else
    return false;
#endif
}

std::uint32_t crc32(Parts data) noexcept {
    std::uint32_t crc = 0;
    for (const auto part : data) crc = libdeflate_crc32(crc, part.data(), part.size());
    return crc;
}

bool random_bytes(std::span<std::byte> out) noexcept {
    return RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                      static_cast<int>(out.size())) == 1;
}

bool equal_constant_time(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace stun
