// Zero allocations on the fast path, as a tested property (style rule 5): after one warm-up
// round (OpenSSL contexts are created once per thread on first use), parsing, walking,
// decoding, writing, verifying and ChannelData framing make no operator-new call and no
// OpenSSL allocation.
//
// This binary replaces the global operator new/delete and installs counting allocators in
// OpenSSL with CRYPTO_set_mem_functions, which only works before OpenSSL's first allocation:
// hence its own main() and its own process.
#include <openssl/crypto.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "rfc5769_vectors.h"
#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/demux.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/writer.h"
#include "test_support.h"

// ---------------------------------------------------------------------------------------------
// Counting allocators. Single-threaded test, but the counters are atomics (relaxed: they are
// read on the same thread that bumps them) in case a library starts a thread behind our back.

namespace {
std::atomic<std::size_t> operator_new_calls{0};
std::atomic<std::size_t> openssl_allocations{0};
bool openssl_hooks_installed = false;

void* counted_malloc(std::size_t size) {
    operator_new_calls.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size == 0 ? 1 : size);
}

void* counted_aligned(std::size_t size, std::align_val_t alignment) {
    operator_new_calls.fetch_add(1, std::memory_order_relaxed);
    void* p = nullptr;
    const auto a = std::max(static_cast<std::size_t>(alignment), sizeof(void*));
    if (posix_memalign(&p, a, size == 0 ? 1 : size) != 0) return nullptr;
    return p;
}

void* openssl_malloc(std::size_t size, const char*, int) {
    openssl_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size);
}
void* openssl_realloc(void* p, std::size_t size, const char*, int) {
    if (size != 0) openssl_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, size);
}
void openssl_free(void* p, const char*, int) { std::free(p); }
}  // namespace

void* operator new(std::size_t size) {
    if (void* p = counted_malloc(size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
    if (void* p = counted_malloc(size)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return counted_malloc(size);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
    if (void* p = counted_aligned(size, alignment)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
    if (void* p = counted_aligned(size, alignment)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    return counted_aligned(size, alignment);
}
void* operator new[](std::size_t size, std::align_val_t alignment,
                     const std::nothrow_t&) noexcept {
    return counted_aligned(size, alignment);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace stun {
namespace {

using test::bytes_of;

struct Counts {
    std::size_t operator_new = 0;
    std::size_t openssl = 0;
};

Counts counts_now() {
    return {operator_new_calls.load(std::memory_order_relaxed),
            openssl_allocations.load(std::memory_order_relaxed)};
}

// The measured work. Touches no GoogleTest API (assertions may allocate); each failed check
// sets one bit of the result, reported after the measurement.
class FastPath {
public:
    FastPath() {
        // Keys and the every-attribute message are prepared outside the measurement: SASLprep
        // (libidn) may allocate, and runs when credentials are configured, not per packet.
        const std::array<std::byte, 32> hash{};
        const std::uint16_t unknown[] = {0x7FFF};
        const PasswordAlgorithmValue algorithms[] = {{1, {}}, {2, {}}};
        MessageWriter w(every_attribute_buffer_, Method::allocate, MessageClass::success_response,
                        bytes_of(rfc5769::sample_request).subspan<8, 12>());
        Address v6;
        Address::from_string("2001:db8::1", 3478, v6);
        w.add_address(attr::mapped_address, Address::v4(0xC0000201, 1));
        w.add_xor_address(attr::xor_mapped_address, v6);
        w.add_xor_address(attr::xor_peer_address, Address::v4(0xC0000201, 3));
        w.add_xor_address(attr::xor_relayed_address, v6);
        w.add_address(attr::alternate_server, v6);
        w.add_address(attr::response_origin, Address::v4(0xC0000201, 6));
        w.add_address(attr::other_address, Address::v4(0xC0000201, 7));
        w.add_text(attr::username, "user");
        w.add(attr::userhash, hash);
        w.add_error_code(420);
        w.add_text(attr::realm, "realm");
        w.add_text(attr::nonce, "obMatJos2gAAAnonce");
        w.add_password_algorithm({2, {}});
        w.add_password_algorithms(algorithms);
        w.add_unknown_attributes(unknown);
        w.add_text(attr::software, "software");
        w.add_text(attr::alternate_domain, "example.org");
        w.add_channel_number(0x4000);
        w.add_u32(attr::lifetime, 600);
        w.add(attr::data, test::text_bytes("data"));
        w.add_address_family(attr::requested_address_family, AddressFamily::ipv4);
        w.add_even_port(true);
        w.add_requested_transport(transport_udp);
        w.add_flag(attr::dont_fragment);
        w.add_u64(attr::reservation_token, 1);
        w.add_address_family(attr::additional_address_family, AddressFamily::ipv6);
        w.add_address_error_code(AddressFamily::ipv6, 440, "");
        w.add_icmp({3, 1, 0});
        w.add_u32(attr::change_request, change_ip);
        w.add_response_port(1);
        w.add_padding(4);
        w.add_u32(attr::priority, 1);
        w.add_flag(attr::use_candidate);
        w.add_u64(attr::ice_controlled, 1);
        w.add_u64(attr::ice_controlling, 2);
        w.add_message_integrity(key_);
        w.add_message_integrity_sha256(key_);
        w.add_fingerprint();
        every_attribute_ = w.finish();
    }

    [[nodiscard]] bool prepared() const { return !every_attribute_.empty(); }

    // Returns a bit mask of the checks that failed; 0 when all passed.
    std::uint32_t run() noexcept {
        std::uint32_t failed = 0;
        std::uint32_t bit = 1;
        const auto check = [&](bool ok) {
            if (!ok) failed |= bit;
            bit <<= 1;
        };

        // Parse the RFC 5769 vectors; walk and find.
        const std::span<const std::byte> vectors[] = {
            bytes_of(rfc5769::sample_request), bytes_of(rfc5769::sample_ipv4_response),
            bytes_of(rfc5769::sample_ipv6_response), bytes_of(rfc5769::sample_long_term_request)};
        const std::span<const std::byte> short_key = test::text_bytes(rfc5769::short_term_password);
        for (std::size_t i = 0; i < 4; ++i) {
            Message m;
            check(Message::parse(vectors[i], m) == ParseError::ok);
            std::size_t walked = 0;
            bool decoded = true;
            for (Attribute a : m) {
                ++walked;
                decoded = decoded && test::decode_any(m, a) == ParseError::ok;
            }
            check(walked == (i == 0 ? 6u : 4u));
            check(decoded);
            check(m.find(i == 3 ? attr::realm : attr::software).has_value());
            check(!m.find(attr::lifetime).has_value());
            const auto key = i == 3 ? bytes_of(rfc5769::long_term_key) : short_key;
            check(verify_message_integrity(m, key) == IntegrityResult::ok);
            check(verify_fingerprint(m) ==
                  (i == 3 ? IntegrityResult::missing : IntegrityResult::ok));
            std::array<std::uint16_t, 4> unknown{};
            check(m.unknown_comprehension_required(unknown) == 0);
        }
        {
            Message m;
            check(Message::parse(vectors[1], m) == ParseError::ok);
            Address mapped;
            const auto xma = m.find(attr::xor_mapped_address);
            check(xma && decode_xor_address(*xma, m.transaction_id(), mapped) == ParseError::ok &&
                  mapped == Address::v4(0xC0000201, 32853));
        }

        // Decode every attribute type.
        {
            Message m;
            check(Message::parse(every_attribute_, m) == ParseError::ok);
            std::size_t decoded = 0;
            for (Attribute a : m) {
                if (test::decode_any(m, a) == ParseError::ok) ++decoded;
            }
            check(decoded == 38);
            check(verify_message_integrity(m, key_) == IntegrityResult::ok);
            check(verify_message_integrity_sha256(m, key_) == IntegrityResult::ok);
            check(verify_fingerprint(m) == IntegrityResult::ok);
            std::string_view nonce;
            check(decode_text(*m.find(attr::nonce), nonce) == ParseError::ok &&
                  nonce_security_features(nonce) == feature_password_algorithms);
        }

        // Write a Binding success response as a server does, and check it.
        {
            Message request;
            check(Message::parse(vectors[0], request) == ParseError::ok);
            std::array<std::byte, 256> buffer;
            MessageWriter w(buffer, Method::binding, MessageClass::success_response,
                            request.transaction_id());
            w.add_xor_address(attr::xor_mapped_address, Address::v4(0xC0000201, 32853));
            w.add_message_integrity(short_key);
            w.add_message_integrity_sha256(short_key);
            w.add_fingerprint();
            check(w.ok());
            Message response;
            check(Message::parse(w.finish(), response) == ParseError::ok);
            check(verify_message_integrity(response, short_key) == IntegrityResult::ok);
            check(verify_message_integrity_sha256(response, short_key) == IntegrityResult::ok);
            check(verify_fingerprint(response) == IntegrityResult::ok);

            // And a 420 with UNKNOWN-ATTRIBUTES.
            MessageWriter e = begin_error_response(buffer, request, error_code::unknown_attribute);
            const std::uint16_t unknown[] = {0x7FFF};
            e.add_unknown_attributes(unknown);
            e.add_fingerprint();
            check(e.ok());
        }

        // ChannelData both ways, and the demultiplexer.
        {
            std::array<std::byte, 64> frame;
            const auto payload = test::text_bytes("hello");
            const std::size_t n = write_channel_data(frame, 0x4001, payload, true);
            check(n == 12);
            ChannelData cd;
            check(parse_channel_data(std::span(frame).first(n), cd) == ParseError::ok &&
                  cd.channel == 0x4001 && cd.data.size() == 5);
            write_channel_data_header(frame.data(), 0x4002, 0);
            check(classify(std::span(frame).first(4)) == PacketKind::turn_channel);
            check(classify(vectors[0]) == PacketKind::stun);
            check(Message::looks_like_stun(vectors[0]));
            std::array<char, 13> cookie;
            write_nonce_cookie(feature_password_algorithms, cookie);
            check(cookie[0] == 'o');
        }
        return failed;
    }

private:
    std::span<const std::byte> key_ = test::text_bytes("a 16+ byte long-term key");
    std::array<std::byte, 1024> every_attribute_buffer_{};
    std::span<const std::byte> every_attribute_;
};

TEST(NoAllocation, OpensslCountingAllocatorsInstalled) {
    // CRYPTO_set_mem_functions refuses once OpenSSL has allocated; then the OpenSSL count
    // below would be meaningless.
    EXPECT_TRUE(openssl_hooks_installed);
}

TEST(NoAllocation, CountersSeeAllocations) {
    // Proves the test can fail: both counters move when something allocates.
    const Counts before = counts_now();
    void* volatile p = ::operator new(64);
    ::operator delete(p);
    auto* v = new std::vector<int>(100);
    delete v;
    void* q = OPENSSL_malloc(64);
    OPENSSL_free(q);
    const Counts after = counts_now();
    EXPECT_GE(after.operator_new - before.operator_new, 3u);
    EXPECT_EQ(after.openssl - before.openssl, 1u);
}

TEST(NoAllocation, FastPathAfterWarmUp) {
    FastPath work;
    ASSERT_TRUE(work.prepared());
    const std::uint32_t warm_up_failed = work.run();
    ASSERT_EQ(warm_up_failed, 0u) << "bit mask of failed checks in the warm-up round";

    const Counts before = counts_now();
    std::uint32_t failed = 0;
    for (int round = 0; round < 10; ++round) failed |= work.run();
    const Counts after = counts_now();

    EXPECT_EQ(failed, 0u) << "bit mask of failed checks";
    EXPECT_EQ(after.operator_new - before.operator_new, 0u) << "operator new calls in 10 rounds";
    EXPECT_EQ(after.openssl - before.openssl, 0u) << "OpenSSL allocations in 10 rounds";
}

}  // namespace
}  // namespace stun

int main(int argc, char** argv) {
    // First thing: OpenSSL accepts allocator hooks only before its first allocation.
    openssl_hooks_installed =
        CRYPTO_set_mem_functions(openssl_malloc, openssl_realloc, openssl_free) == 1;
    testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
