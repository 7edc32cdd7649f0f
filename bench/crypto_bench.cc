// Why stun/crypto.cc uses what it uses, measured: CRC-32 by libdeflate against zlib, and HMAC
// over OpenSSL's low-level digests against OpenSSL's one-shot HMAC() (which allocates on every
// call in OpenSSL 3.0). Each codec benchmark names the library call it replaced as its baseline.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "stun/crypto.h"

namespace {

std::array<std::byte, 256> sample_bytes() {
    std::array<std::byte, 256> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7 + 3);
    return bytes;
}

// 24 bytes: a Binding request up to its FINGERPRINT; 88: the RFC 5769 §2.1 ICE check.
void BM_Baseline_Crc32Zlib(benchmark::State& state) {
    const auto bytes = sample_bytes();
    const auto length = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        benchmark::DoNotOptimize(
            crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), length));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_Crc32Zlib)->Arg(24)->Arg(88);

void BM_Crypto_Crc32(benchmark::State& state) {
    const auto bytes = sample_bytes();
    const auto length = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        benchmark::DoNotOptimize(stun::crc32({std::span<const std::byte>(bytes).first(length)}));
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel("baseline=BM_Baseline_Crc32Zlib/" + std::to_string(length));
}
BENCHMARK(BM_Crypto_Crc32)->Arg(24)->Arg(88);

// 100 bytes under a 16-byte key: a TURN request verified with a long-term key.
void BM_Baseline_HmacSha1OpensslHmac(benchmark::State& state) {
    const auto bytes = sample_bytes();
    const auto key = sample_bytes();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int out_length = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        HMAC(EVP_sha1(), key.data(), 16, reinterpret_cast<const unsigned char*>(bytes.data()),
             100, out, &out_length);
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_HmacSha1OpensslHmac);

void BM_Crypto_HmacSha1(benchmark::State& state) {
    const auto bytes = sample_bytes();
    const auto key = sample_bytes();
    std::array<std::byte, 20> out{};
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        stun::hmac_sha1(std::span<const std::byte>(key).first(16),
                        {std::span<const std::byte>(bytes).first(100)}, out);
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel("baseline=BM_Baseline_HmacSha1OpensslHmac");
}
BENCHMARK(BM_Crypto_HmacSha1);

}  // namespace
