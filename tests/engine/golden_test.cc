// Golden packets (style rule 17) on plain buffers: every tests/engine/golden/*.golden file is
// one frame, the port context it arrives on, the verdict engine::handle_frame() must reach,
// and for a transmitted frame the exact bytes it must send. The files, their generator
// (make_golden.py) and their parser are described in tests/engine/golden/golden_cases.h;
// golden_ring_test.cc replays the same files through the worker loop on a net_ring port.
//
// The folder comes from the environment variable GOLDEN_DIR (meson sets it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/checksum.h"
#include "engine/counters.h"
#include "engine/drop_reason.h"
#include "engine/frame.h"
#include "engine/handler.h"
#include "engine/port_context.h"
#include "golden/golden_cases.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/message.h"

namespace engine {
namespace {

using golden::camel_case;
using golden::corpus;
using golden::Corpus;
using golden::describe;
using golden::expect_stun_counters;
using golden::GoldenCase;
using golden::hex_dump;
using golden::is_udp;
using golden::make_context;

// What one run of the handlers produced.
struct Outcome {
    Verdict verdict;
    std::vector<std::byte> output;
    std::vector<std::byte> buffer;  // the input's bytes after the handlers ran
    CoreCounters counters;
};

// Headroom before the frame, as an mbuf has (RTE_PKTMBUF_HEADROOM): the relay writes longer
// headers into it.
constexpr std::size_t golden_headroom = 128;

Outcome run(const GoldenCase& golden, const PortContext& port) {
    // Bytes past the input are poisoned so that a response relying on zeroed tailroom shows;
    // the headroom too.
    std::vector<std::byte> room(golden_headroom + golden.capacity, std::byte{0xA5});
    std::byte* const start = room.data() + golden_headroom;
    std::copy(golden.input.begin(), golden.input.end(), start);
    Frame frame{start, static_cast<std::uint16_t>(golden.input.size()),
                static_cast<std::uint16_t>(golden.capacity)};
    frame.headroom = golden_headroom;
    Outcome outcome;
    // A relay context's cases meet a shard in the state golden_cases.h makes, a second later
    // (or as much later as the case's relay_time says).
    std::unique_ptr<RelayShard> shard;
    std::optional<RelayState> relay;
    if (port.relay) {
        shard = golden::make_relay_shard(*port.relay, 49152, 40000,
                                         golden.context == "relay_reservation");
        golden::sweep_relay_shard(*shard, golden::relay_case_ticks(golden));
        relay.emplace(RelayState{*shard, golden::relay_case_ticks(golden),
                                 golden::relay_case_s(golden)});
        // The requests that come first, each answered as the file says; counted apart.
        for (const golden::PreludeFrame& prelude : golden.prelude) {
            std::vector<std::byte> before(golden_headroom + golden.capacity, std::byte{0xA5});
            std::copy(prelude.input.begin(), prelude.input.end(),
                      before.begin() + golden_headroom);
            Frame first{before.data() + golden_headroom,
                        static_cast<std::uint16_t>(prelude.input.size()),
                        static_cast<std::uint16_t>(golden.capacity)};
            first.headroom = golden_headroom;
            CoreCounters ignored;
            const Verdict verdict = handle_frame(first, port, ignored, &*relay);
            EXPECT_TRUE(verdict.transmits() &&
                        std::equal(first.data, first.data + first.length,
                                   prelude.output.begin(), prelude.output.end()))
                << "a prelude request was not answered as the file says: "
                << describe(verdict);
        }
    }
    outcome.verdict = handle_frame(frame, port, outcome.counters, relay ? &*relay : nullptr);
    // The frame may start elsewhere now (the relay moves it within the buffer).
    if (outcome.verdict.transmits()) outcome.output.assign(frame.data, frame.data + frame.length);
    outcome.buffer.assign(start, start + golden.input.size());
    return outcome;
}

bool matches(const GoldenCase& golden, const Outcome& outcome) {
    if (outcome.verdict.goes_to_control() != golden.to_control) return false;
    if (outcome.verdict.transmits() != golden.transmit) return false;
    if (!golden.transmit) return outcome.verdict.reason == golden.reason;
    return outcome.output == golden.output;
}

class GoldenPacketTest : public testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenPacketTest, ProducesExpectedVerdictAndBytes) {
    const GoldenCase& golden = GetParam();
    SCOPED_TRACE(golden.file + ": " + golden.description);
    const std::optional<PortContext> port = make_context(golden.context);
    ASSERT_TRUE(port.has_value()) << "unknown context `" << golden.context << "`";

    const Outcome outcome = run(golden, *port);
    if (!golden.pending.empty()) {
        ASSERT_FALSE(matches(golden, outcome))
            << "pending case now passes: remove its `pending:` mark in make_golden.py";
        GTEST_SKIP() << "pending: " << golden.pending << " (handlers gave: "
                     << describe(outcome.verdict)
                     << (outcome.verdict.transmits()
                             ? ", " + std::to_string(outcome.output.size()) + " bytes"
                             : std::string())
                     << ")";
    }

    ASSERT_EQ(describe(outcome.verdict), golden::expected_verdict(golden));

    // Counters: one packet in, and it is accounted for exactly once (design.md §3).
    const CoreCounters& counters = outcome.counters;
    EXPECT_TRUE(counters.conserved());
    EXPECT_EQ(counters.rx_packets, 1u);
    EXPECT_EQ(counters.rx_bytes, golden.input.size());
    if (golden.to_control) {
        // Handed off, to the control thread, as it came: the control thread parses the
        // original bytes.
        EXPECT_EQ(counters.handed_off, 1u);
        EXPECT_EQ(counters.to_control, 1u);
        EXPECT_EQ(counters.tx_packets, 0u);
        EXPECT_EQ(counters.dropped(), 0u);
        EXPECT_EQ(outcome.buffer, golden.input) << "the handlers changed a frame they handed on";
        EXPECT_EQ(counters.stun_success + counters.stun_error, 0u);
        return;
    }
    EXPECT_EQ(counters.handed_off, 0u);
    EXPECT_EQ(counters.to_control, 0u);
    if (!golden.transmit) {
        EXPECT_EQ(counters.drops[static_cast<std::size_t>(golden.reason)], 1u);
        EXPECT_EQ(counters.tx_packets, 0u);
        return;
    }
    EXPECT_EQ(counters.tx_packets, 1u);
    EXPECT_EQ(counters.tx_bytes, outcome.output.size());
    EXPECT_EQ(counters.dropped(), 0u);

    if (outcome.output != golden.output) {
        const auto [first, ignored] = std::mismatch(
            outcome.output.begin(), outcome.output.end(), golden.output.begin(),
            golden.output.end());
        const auto offset = static_cast<std::size_t>(first - outcome.output.begin());
        ADD_FAILURE() << "output differs at offset " << offset << " (0x" << std::hex << offset
                      << std::dec << "); got " << outcome.output.size() << " bytes, expected "
                      << golden.output.size() << "\nexpected:\n"
                      << hex_dump(golden.output, offset) << "\ngot:\n"
                      << hex_dump(outcome.output, offset);
    }

    if (is_udp(golden.input)) {
        // No amplification: a STUN answer outgrows its request by a bounded amount.
        EXPECT_LE(outcome.output.size(), golden.input.size() + max_response_growth(*port));
    }
    expect_stun_counters(golden, counters);
}

// The STUN role's fast path answers from the prepared context's templates; a context never
// prepared is answered by the general path alone. Both give every case the same verdict and
// the same bytes (and so both meet the golden files).
TEST_P(GoldenPacketTest, GeneralPathGivesTheSameAnswer) {
    const GoldenCase& golden = GetParam();
    SCOPED_TRACE(golden.file + ": " + golden.description);
    const std::optional<PortContext> prepared = make_context(golden.context);
    const std::optional<PortContext> unprepared = golden::make_unprepared_context(golden.context);
    ASSERT_TRUE(prepared.has_value() && unprepared.has_value());
    const Outcome fast = run(golden, *prepared);
    const Outcome general = run(golden, *unprepared);
    EXPECT_EQ(describe(general.verdict), describe(fast.verdict));
    EXPECT_EQ(general.output, fast.output);
    EXPECT_EQ(general.buffer, fast.buffer);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenPacketTest, testing::ValuesIn(corpus().cases),
                         [](const testing::TestParamInfo<GoldenCase>& info) {
                             return camel_case(info.param.name);
                         });
// A missing or empty folder is reported by GoldenCorpusTest.LoadsEveryFile, with the reason.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenPacketTest);

TEST(GoldenCorpusTest, LoadsEveryFile) {
    const Corpus& c = corpus();
    for (const std::string& error : c.errors) ADD_FAILURE() << error;
    EXPECT_FALSE(c.cases.empty()) << "no golden case was loaded";
}

TEST(GoldenCorpusTest, NamesAreDistinctAfterCamelCase) {
    std::map<std::string, std::string> seen;
    for (const GoldenCase& golden : corpus().cases) {
        const auto [it, inserted] = seen.emplace(camel_case(golden.name), golden.name);
        EXPECT_TRUE(inserted) << golden.name << " and " << it->second << " share a test name";
    }
}

// The reason table is complete: each reason handle_frame() can give is produced by at least
// one golden packet that the handlers currently pass (pending cases do not count). The worker
// loop's reasons (from first_worker_drop_reason on) are never a handler's verdict.
TEST(GoldenCorpusTest, CoversEveryHandlerDropReason) {
    const auto first_worker = static_cast<std::size_t>(first_worker_drop_reason);
    std::vector<bool> covered(drop_reason_count, false);
    for (const GoldenCase& golden : corpus().cases) {
        if (golden.transmit || golden.to_control) continue;
        const auto reason = static_cast<std::size_t>(golden.reason);
        EXPECT_LT(reason, first_worker)
            << golden.file << ": " << drop_reasons[reason].name
            << " is a worker-loop reason, which handle_frame() never returns";
        if (golden.pending.empty()) covered[reason] = true;
    }
    // The SFU role's reasons need a leg table and a membership, which a golden file cannot
    // carry: tests/engine/sfu_role_test.cc produces each of them from whole frames.
    for (std::size_t i = 0; i < first_worker; ++i)
        EXPECT_TRUE(covered[i] || drop_reasons[i].name.starts_with("sfu_"))
            << "no golden packet is dropped as " << drop_reasons[i].name;
}

// The neighbour cache's path is covered for both protocols: at least one ARP frame and one
// neighbour advertisement reach the control thread.
TEST(GoldenCorpusTest, CoversTheControlThreadPathForArpAndNdp) {
    bool arp = false;
    bool ndp = false;
    for (const GoldenCase& golden : corpus().cases) {
        if (!golden.to_control || !golden.pending.empty()) continue;
        const std::uint16_t type = stun::load_be16(golden.input.data() + 12);
        arp = arp || type == ethertype::arp;
        ndp = ndp || type == ethertype::ipv6;
    }
    EXPECT_TRUE(arp) << "no ARP golden packet has the verdict to_control";
    EXPECT_TRUE(ndp) << "no neighbour advertisement golden packet has the verdict to_control";
}

// A hairpin across workers (peer_policy.h, rule 3): the client's relay sends to a relayed
// address on a relay port its worker does not own. The frame, rewritten as it would leave,
// goes back to the worker loop (Verdict::hairpin, counted handed off), which hands it to the
// port's owner; there handle_hairpin() delivers it to the allocation on that port, to its
// client as a Data indication from the first relayed address. relay_send_hairpin's input is
// the client's Send indication to 198.18.0.2:49152; here its worker's shard owns 49153.
TEST(GoldenHairpinTest, ARelayPortOfAnotherWorkerGetsTheDatagramThroughTheWorkerLoop) {
    const auto found = std::find_if(corpus().cases.begin(), corpus().cases.end(),
                                    [](const GoldenCase& c) { return c.name == "relay_send_hairpin"; });
    ASSERT_NE(found, corpus().cases.end());
    const std::optional<PortContext> port = make_context("relay");
    ASSERT_TRUE(port && port->relay);
    const std::uint64_t now = golden::relay_setup_ticks + golden::relay_ticks_per_second;
    // Worker 0: this client (port 40000), relayed on 49153. Worker 1: another client (40001),
    // relayed on 49152, with a permission for 198.18.0.2.
    const auto mine = golden::make_relay_shard(*port->relay, 49153, 40000);
    const auto theirs = golden::make_relay_shard(*port->relay, 49152, 40001);
    RelayState relay_mine{*mine, now, golden::relay_setup_s + 1};
    RelayState relay_theirs{*theirs, now, golden::relay_setup_s + 1};

    std::vector<std::byte> room(128 + found->capacity, std::byte{0xA5});
    std::copy(found->input.begin(), found->input.end(), room.begin() + 128);
    Frame frame{room.data() + 128, static_cast<std::uint16_t>(found->input.size()),
                static_cast<std::uint16_t>(found->capacity)};
    frame.headroom = 128;
    CoreCounters counters_mine;
    const Verdict handed = handle_frame(frame, *port, counters_mine, &relay_mine);
    ASSERT_TRUE(handed.hairpins()) << describe(handed);
    EXPECT_EQ(counters_mine.handed_off, 1u);
    EXPECT_EQ(counters_mine.hairpinned, 1u);
    EXPECT_TRUE(counters_mine.conserved());
    // As it would leave: to the port's own MAC, 198.18.0.2:49153 → 198.18.0.2:49152.
    EXPECT_TRUE(std::equal(frame.data, frame.data + 6, port->mac.begin()));
    EXPECT_EQ(stun::load_be16(frame.data + 34), 49153);
    EXPECT_EQ(stun::load_be16(frame.data + 36), 49152);

    // Its owner finds nothing on 49152 in a shard without it...
    {
        std::vector<std::byte> copy(frame.data - frame.headroom, frame.data + frame.length);
        Frame again{copy.data() + frame.headroom, frame.length,
                    static_cast<std::uint16_t>(frame.length)};
        again.headroom = frame.headroom;
        CoreCounters counters;
        const Verdict dropped = handle_hairpin(again, *port, counters, &relay_mine);
        EXPECT_EQ(describe(dropped), "drop relay_no_allocation");
        EXPECT_TRUE(counters.conserved());
    }
    // ...and the allocation there in its own.
    CoreCounters counters_theirs;
    const Verdict delivered = handle_hairpin(frame, *port, counters_theirs, &relay_theirs);
    ASSERT_TRUE(delivered.transmits()) << describe(delivered);
    EXPECT_EQ(counters_theirs.rx_packets, 1u);
    EXPECT_EQ(counters_theirs.tx_packets, 1u);
    EXPECT_TRUE(counters_theirs.conserved());
    // To the other client, from the STUN port, with a UDP checksum that verifies.
    const std::byte* ip = frame.data + ethernet_header_size;
    EXPECT_EQ(stun::load_be32(ip + 16), 0xC6120064u);
    const std::byte* udp = ip + ipv4_header_size;
    EXPECT_EQ(stun::load_be16(udp), 3478);
    EXPECT_EQ(stun::load_be16(udp + 2), 40001);
    const std::size_t udp_length = stun::load_be16(udp + 4);
    EXPECT_EQ(transport_checksum({ip + 12, 8}, ip_protocol::udp, {udp, udp_length}), 0);
    stun::Message indication;
    ASSERT_EQ(stun::Message::parse({udp + udp_header_size, udp_length - udp_header_size},
                                   indication),
              stun::ParseError::ok);
    EXPECT_EQ(indication.method(), static_cast<std::uint16_t>(stun::Method::data));
    const auto peer_attribute = indication.find(stun::attr::xor_peer_address);
    ASSERT_TRUE(peer_attribute);
    stun::Address peer;
    ASSERT_EQ(stun::decode_xor_address(*peer_attribute, indication.transaction_id(), peer),
              stun::ParseError::ok);
    EXPECT_EQ(peer, stun::Address::v4(0xC6120002, 49153));
    const auto data = indication.find(stun::attr::data);
    ASSERT_TRUE(data);
    const std::string_view text(reinterpret_cast<const char*>(data->value.data()),
                                data->value.size());
    EXPECT_EQ(text, "media over the relay");
}

// The bandwidth cap (RelayLimits::bandwidth: 1000 bytes a second, 1500 at once in the relay
// context): relay_channel_data's 18 bytes of data go 83 times from a full bucket, the 84th
// is dropped (relay_bandwidth) and counted; a second later 1000 more bytes' worth go.
TEST(GoldenBandwidthTest, AnAllocationRelaysWhatItsBucketPaysForAndNoMore) {
    const auto found = std::find_if(corpus().cases.begin(), corpus().cases.end(),
                                    [](const GoldenCase& c) { return c.name == "relay_channel_data"; });
    ASSERT_NE(found, corpus().cases.end());
    const std::optional<PortContext> port = make_context("relay");
    ASSERT_TRUE(port && port->relay && port->relay->limits().bandwidth);
    const auto shard = golden::make_relay_shard(*port->relay);
    std::uint64_t now = golden::relay_setup_ticks + golden::relay_ticks_per_second;
    CoreCounters counters;
    // How many copies of the frame go before the first is dropped, at `now`.
    auto relayed_until_dropped = [&] {
        for (int sent = 0; sent < 1000; ++sent) {
            std::vector<std::byte> room(128 + found->capacity);
            std::copy(found->input.begin(), found->input.end(), room.begin() + 128);
            Frame frame{room.data() + 128, static_cast<std::uint16_t>(found->input.size()),
                        static_cast<std::uint16_t>(found->capacity)};
            frame.headroom = 128;
            RelayState relay{*shard, now, golden::relay_setup_s + 1};
            const Verdict verdict = handle_frame(frame, *port, counters, &relay);
            if (!verdict.transmits()) {
                EXPECT_EQ(describe(verdict), "drop relay_bandwidth");
                return sent;
            }
        }
        return -1;
    };
    EXPECT_EQ(relayed_until_dropped(), 1500 / 18);
    now += golden::relay_ticks_per_second;
    EXPECT_EQ(relayed_until_dropped(), (1500 % 18 + 1000) / 18);
    EXPECT_EQ(counters.drops[static_cast<std::size_t>(DropReason::relay_bandwidth)], 2u);
    EXPECT_EQ(shard->counters().to_peer_packets, 1500u / 18 + (1500 % 18 + 1000) / 18);
    EXPECT_TRUE(counters.conserved());
}

}  // namespace
}  // namespace engine
