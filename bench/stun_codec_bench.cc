// Google Benchmarks of the STUN/TURN wire codec (style rule 19).
//
// Every figure is read beside a same-run floor, BM_Baseline_CopyBindingRequest: a memcpy of the
// Binding request the parse benchmarks parse, from an aligned receive buffer to an aligned
// transmit buffer, which is the least a server does with a request it answers. Each
// non-baseline benchmark names that floor in its label ("baseline=..."); scripts/bench turns the
// medians into ratios against it. The inputs are the packets a STUN/TURN edge sees most:
//   - a Binding request as a browser sends it to a STUN server: header + FINGERPRINT (28 bytes);
//   - an ICE connectivity check, RFC 5769 §2.1 (108 bytes): the "Ice" variants;
//   - an authenticated TURN Allocate request (long-term MESSAGE-INTEGRITY);
//   - a ChannelData frame carrying 160 bytes (a 20 ms G.711 RTP packet's size).
// Target (issue): parse a Binding request and build its answer "well under 100 ns".
//
// Run: build/bench/stun_codec_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true        (or scripts/bench)
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/credentials.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/writer.h"
#include "tests/stun/rfc5769_vectors.h"

namespace {

constexpr std::string_view baseline_label = "baseline=BM_Baseline_CopyBindingRequest";

// A Binding request with only FINGERPRINT, as browsers send to a STUN server for their
// server-reflexive candidate. The same bytes as tests/fuzz/corpus/message/
// binding_request_fingerprint.bin (tests/fuzz/make_corpus.py), FINGERPRINT computed there.
constexpr unsigned char binding_request[] = {
    0x00, 0x01, 0x00, 0x08,  // Binding request, length 8
    0x21, 0x12, 0xa4, 0x42,  // magic cookie
    0x34, 0x9f, 0x0f, 0xfb,  // transaction ID
    0xdb, 0x2d, 0x69, 0xad,
    0x01, 0x34, 0x98, 0xa3,
    0x80, 0x28, 0x00, 0x04,  // FINGERPRINT
    0x35, 0x0a, 0x18, 0x1f,
};

// The client's source address, which a Binding success response reflects.
const stun::Address client_address = stun::Address::v4(0xC0000201, 32853);  // 192.0.2.1

// A packet buffer as a NIC fills it: cache-line aligned, room for a full MTU.
struct alignas(64) PacketBuffer {
    std::array<std::byte, 2048> bytes{};

    std::span<const std::byte> load(std::span<const unsigned char> packet) {
        std::memcpy(bytes.data(), packet.data(), packet.size());
        return std::span<const std::byte>(bytes).first(packet.size());
    }
};

// ------------------------------------------------------------------------------ baselines

void copy_request(benchmark::State& state, std::span<const unsigned char> packet) {
    PacketBuffer rx;
    PacketBuffer tx;
    const std::span<const std::byte> request = rx.load(packet);
    for (auto _ : state) {
        benchmark::DoNotOptimize(rx.bytes.data());
        std::memcpy(tx.bytes.data(), request.data(), request.size());
        benchmark::DoNotOptimize(tx.bytes.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(request.size()));
}

void BM_Baseline_CopyBindingRequest(benchmark::State& state) {
    copy_request(state, binding_request);
}
BENCHMARK(BM_Baseline_CopyBindingRequest);

void BM_Baseline_CopyBindingRequestIce(benchmark::State& state) {
    copy_request(state, stun::rfc5769::sample_request);
}
BENCHMARK(BM_Baseline_CopyBindingRequestIce);

// ------------------------------------------------------------------------------ parse

// Message::parse and the lookups a Binding handler makes: FINGERPRINT, MESSAGE-INTEGRITY and
// USERNAME (present in ICE checks, absent from a STUN server's requests).
void parse_request(benchmark::State& state, std::span<const unsigned char> packet,
                   std::string_view label) {
    PacketBuffer rx;
    const std::span<const std::byte> request = rx.load(packet);
    for (auto _ : state) {
        benchmark::DoNotOptimize(rx.bytes.data());
        stun::Message message;
        if (stun::Message::parse(request, message) != stun::ParseError::ok) {
            state.SkipWithError("the request does not parse");
            break;
        }
        auto fingerprint = message.fingerprint();
        auto integrity = message.message_integrity();
        auto username = message.find(stun::attr::username);
        benchmark::DoNotOptimize(fingerprint);
        benchmark::DoNotOptimize(integrity);
        benchmark::DoNotOptimize(username);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(std::string(label));
}

void BM_Stun_ParseBindingRequest(benchmark::State& state) {
    parse_request(state, binding_request, baseline_label);
}
BENCHMARK(BM_Stun_ParseBindingRequest);

void BM_Stun_ParseBindingRequestIce(benchmark::State& state) {
    // Compared with copying the same 108 bytes.
    parse_request(state, stun::rfc5769::sample_request,
                  "baseline=BM_Baseline_CopyBindingRequestIce");
}
BENCHMARK(BM_Stun_ParseBindingRequestIce);

// ------------------------------------------------------------------------------ build

void BM_Stun_BuildBindingSuccess(benchmark::State& state) {
    PacketBuffer tx;
    const stun::TransactionId txid = [] {
        stun::TransactionId id{};
        std::memcpy(id.data(), binding_request + 8, id.size());
        return id;
    }();
    for (auto _ : state) {
        benchmark::DoNotOptimize(txid.data());
        stun::MessageWriter writer(tx.bytes, stun::Method::binding,
                                   stun::MessageClass::success_response, txid);
        writer.add_xor_address(stun::attr::xor_mapped_address, client_address);
        writer.add_fingerprint();
        const std::span<std::byte> response = writer.finish();
        if (response.empty()) {
            state.SkipWithError("the writer failed");
            break;
        }
        benchmark::DoNotOptimize(response.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(std::string(baseline_label));
}
BENCHMARK(BM_Stun_BuildBindingSuccess);

// ------------------------------------------------------------------------------ answer

// What a STUN server does per Binding request: parse, check it is a Binding request, check
// its FINGERPRINT when it has one (RFC 8489 §7.3: a message whose FINGERPRINT is wrong is
// discarded), and answer with XOR-MAPPED-ADDRESS, plus FINGERPRINT when the request had one.
// The target: well under 100 ns.
void BM_Stun_ParseAndRespondBinding(benchmark::State& state) {
    PacketBuffer rx;
    PacketBuffer tx;
    const std::span<const std::byte> datagram = rx.load(binding_request);
    for (auto _ : state) {
        benchmark::DoNotOptimize(rx.bytes.data());
        stun::Message request;
        if (stun::Message::parse(datagram, request) != stun::ParseError::ok ||
            !request.is(stun::Method::binding, stun::MessageClass::request)) {
            state.SkipWithError("the request does not parse as a Binding request");
            break;
        }
        const bool has_fingerprint = request.fingerprint().has_value();
        if (has_fingerprint && stun::verify_fingerprint(request) != stun::IntegrityResult::ok) {
            state.SkipWithError("the request's FINGERPRINT does not verify");
            break;
        }
        stun::MessageWriter writer(tx.bytes, stun::Method::binding,
                                   stun::MessageClass::success_response,
                                   request.transaction_id());
        writer.add_xor_address(stun::attr::xor_mapped_address, client_address);
        if (has_fingerprint) writer.add_fingerprint();
        const std::span<std::byte> response = writer.finish();
        if (response.empty()) {
            state.SkipWithError("the writer failed");
            break;
        }
        benchmark::DoNotOptimize(response.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(std::string(baseline_label));
}
BENCHMARK(BM_Stun_ParseAndRespondBinding);

// ------------------------------------------------------------------------------ integrity

// An authenticated TURN Allocate request (RFC 8656 §7.1) and its long-term key, computed once
// as a server caches it per user; the loop measures the HMAC-SHA1 check alone.
void BM_Stun_VerifyLongTermIntegrity(benchmark::State& state) {
    stun::LongTermKeyMd5 key{};
    if (stun::long_term_key_md5("alice", "example.org", "correct horse battery staple", key) !=
        stun::CredentialError::ok) {
        state.SkipWithError("long_term_key_md5 failed");
        return;
    }
    PacketBuffer rx;
    const stun::TransactionId txid = {std::byte{0x61}, std::byte{0x6c}, std::byte{0x6c},
                                      std::byte{0x6f}, std::byte{0x63}, std::byte{0x61},
                                      std::byte{0x74}, std::byte{0x65}, std::byte{0x2d},
                                      std::byte{0x30}, std::byte{0x30}, std::byte{0x31}};
    stun::MessageWriter writer(rx.bytes, stun::Method::allocate, stun::MessageClass::request,
                               txid);
    writer.add_requested_transport(stun::transport_udp);
    writer.add_text(stun::attr::username, "alice");
    writer.add_text(stun::attr::realm, "example.org");
    writer.add_text(stun::attr::nonce, "obMatJos2gAAAf3b1c0ffee0123456789");
    writer.add_message_integrity(key);
    const std::span<const std::byte> datagram = writer.finish();
    stun::Message request;
    if (datagram.empty() || stun::Message::parse(datagram, request) != stun::ParseError::ok ||
        stun::verify_message_integrity(request, key) != stun::IntegrityResult::ok) {
        state.SkipWithError("the Allocate request does not verify");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(request);
        const stun::IntegrityResult result = stun::verify_message_integrity(request, key);
        benchmark::DoNotOptimize(result);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(datagram.size()));
    state.SetLabel(std::string(baseline_label));
}
BENCHMARK(BM_Stun_VerifyLongTermIntegrity);

void BM_Stun_VerifyFingerprint(benchmark::State& state) {
    PacketBuffer rx;
    const std::span<const std::byte> datagram = rx.load(binding_request);
    stun::Message request;
    if (stun::Message::parse(datagram, request) != stun::ParseError::ok ||
        stun::verify_fingerprint(request) != stun::IntegrityResult::ok) {
        state.SkipWithError("the request's FINGERPRINT does not verify");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(request);
        const stun::IntegrityResult result = stun::verify_fingerprint(request);
        benchmark::DoNotOptimize(result);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(datagram.size()));
    state.SetLabel(std::string(baseline_label));
}
BENCHMARK(BM_Stun_VerifyFingerprint);

// ------------------------------------------------------------------------------ ChannelData

void BM_Stun_ParseChannelData(benchmark::State& state) {
    std::array<std::byte, 160> payload{};
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i);
    PacketBuffer rx;
    const std::size_t size = stun::write_channel_data(rx.bytes, 0x4000, payload, false);
    const std::span<const std::byte> datagram = std::span<const std::byte>(rx.bytes).first(size);
    if (size != stun::channel_data_header_size + payload.size()) {
        state.SkipWithError("write_channel_data failed");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(rx.bytes.data());
        stun::ChannelData frame;
        const stun::ParseError error = stun::parse_channel_data(datagram, frame);
        benchmark::DoNotOptimize(error);
        benchmark::DoNotOptimize(frame);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(datagram.size()));
    state.SetLabel(std::string(baseline_label));
}
BENCHMARK(BM_Stun_ParseChannelData);

}  // namespace

BENCHMARK_MAIN();
