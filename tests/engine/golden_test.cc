// Golden packets (style rule 17): every tests/engine/golden/*.golden file is one frame, the
// port context it arrives on, the verdict engine::handle_frame() must reach, and for a
// transmitted frame the exact bytes it must send. The files are written by
// tests/engine/golden/make_golden.py from scapy and hand-built STUN, independently of this
// code; rerun it after changing a case:
//
//   /usr/bin/python3 tests/engine/golden/make_golden.py
//
// The folder comes from the environment variable GOLDEN_DIR (meson sets it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/counters.h"
#include "engine/drop_reason.h"
#include "engine/frame.h"
#include "engine/handler.h"
#include "engine/port_context.h"
#include "stun/address.h"
#include "stun/bytes.h"

namespace engine {
namespace {

constexpr std::size_t default_capacity = 2048;

struct GoldenCase {
    std::string file;         // file name, for messages
    std::string name;         // the case's name (the file's stem)
    std::string description;
    std::string context;      // full | no_alternate | trust_checksum
    std::size_t capacity = default_capacity;
    std::string pending;      // non-empty: an RFC requirement the handlers do not meet yet
    std::vector<std::byte> input;
    bool transmit = false;
    DropReason reason = DropReason::truncated_frame;
    std::vector<std::byte> output;
};

// For gtest's messages about a parameter: the file, not a byte dump.
void PrintTo(const GoldenCase& golden, std::ostream* out) { *out << golden.file; }

std::optional<DropReason> drop_reason_named(std::string_view name) {
    for (std::size_t i = 0; i < drop_reason_count; ++i)
        if (drop_reasons[i].name == name) return static_cast<DropReason>(i);
    return std::nullopt;
}

bool parse_hex(std::string_view text, std::vector<std::byte>& out) {
    if (text.size() % 2 != 0) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    out.clear();
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int high = nibble(text[i]);
        const int low = nibble(text[i + 1]);
        if (high < 0 || low < 0) return false;
        out.push_back(static_cast<std::byte>(high * 16 + low));
    }
    return true;
}

// Parses one file; on error returns false with `error` saying which line and why.
bool parse_golden(const std::filesystem::path& path, GoldenCase& golden, std::string& error) {
    std::ifstream in(path);
    if (!in) {
        error = "cannot open";
        return false;
    }
    golden.file = path.filename().string();
    std::map<std::string, std::string> fields;
    std::string line;
    for (unsigned number = 1; std::getline(in, line); ++number) {
        if (line.empty() || line[0] == '#') continue;
        const auto colon = line.find(": ");
        if (colon == std::string::npos) {
            error = "line " + std::to_string(number) + ": expected `key: value`";
            return false;
        }
        std::string key = line.substr(0, colon);
        static const std::vector<std::string> known = {
            "name", "description", "context", "capacity", "pending", "input", "verdict",
            "output"};
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            error = "line " + std::to_string(number) + ": unknown key `" + key + "`";
            return false;
        }
        if (!fields.emplace(key, line.substr(colon + 2)).second) {
            error = "line " + std::to_string(number) + ": `" + key + "` given twice";
            return false;
        }
    }
    for (const char* required : {"name", "context", "input", "verdict"}) {
        if (!fields.contains(required)) {
            error = std::string("no `") + required + "` line";
            return false;
        }
    }
    golden.name = fields["name"];
    if (golden.name + ".golden" != golden.file) {
        error = "name `" + golden.name + "` differs from the file name";
        return false;
    }
    golden.description = fields["description"];
    golden.context = fields["context"];
    golden.pending = fields["pending"];
    if (fields.contains("capacity")) {
        golden.capacity = std::strtoul(fields["capacity"].c_str(), nullptr, 10);
        if (golden.capacity == 0 || golden.capacity > 0xFFFF) {
            error = "capacity must be 1..65535";
            return false;
        }
    }
    if (!parse_hex(fields["input"], golden.input) || golden.input.empty()) {
        error = "input is not hex";
        return false;
    }
    if (golden.input.size() > golden.capacity) {
        error = "input longer than its capacity";
        return false;
    }
    const std::string& verdict = fields["verdict"];
    if (verdict == "transmit") {
        golden.transmit = true;
        if (!fields.contains("output") || !parse_hex(fields["output"], golden.output) ||
            golden.output.empty()) {
            error = "verdict transmit needs a hex `output` line";
            return false;
        }
    } else if (verdict.starts_with("drop ")) {
        const auto reason = drop_reason_named(std::string_view(verdict).substr(5));
        if (!reason) {
            error = "unknown drop reason in `" + verdict + "` (not in drop_reason.h)";
            return false;
        }
        golden.reason = *reason;
        if (fields.contains("output")) {
            error = "a dropped frame has no output";
            return false;
        }
    } else {
        error = "verdict must be `transmit` or `drop <reason>`";
        return false;
    }
    return true;
}

struct Corpus {
    std::string folder;
    std::vector<GoldenCase> cases;
    std::vector<std::string> errors;  // folder or file problems, each a failure
};

const Corpus& corpus() {
    static const Corpus loaded = [] {
        Corpus c;
        const char* folder = std::getenv("GOLDEN_DIR");
        if (folder == nullptr || *folder == '\0') {
            c.errors.push_back("GOLDEN_DIR is not set: point it at tests/engine/golden");
            return c;
        }
        c.folder = folder;
        std::error_code ec;
        std::vector<std::filesystem::path> files;
        for (const auto& entry : std::filesystem::directory_iterator(folder, ec))
            if (entry.path().extension() == ".golden") files.push_back(entry.path());
        if (ec) {
            c.errors.push_back("cannot list GOLDEN_DIR=" + c.folder + ": " + ec.message());
            return c;
        }
        std::sort(files.begin(), files.end());
        for (const auto& path : files) {
            GoldenCase golden;
            std::string error;
            if (parse_golden(path, golden, error))
                c.cases.push_back(std::move(golden));
            else
                c.errors.push_back(path.filename().string() + ": " + error);
        }
        if (c.cases.empty() && c.errors.empty())
            c.errors.push_back("no *.golden files in GOLDEN_DIR=" + c.folder);
        return c;
    }();
    return loaded;
}

// The three contexts make_golden.py names. Client: 02:00:00:00:00:99, 198.18.0.100,
// 2001:db8::100, port 40000.
std::optional<PortContext> make_context(std::string_view name) {
    auto address = [](std::string_view text) {
        stun::Address a;
        const bool ok = stun::Address::from_string(text, 0, a);
        EXPECT_TRUE(ok) << text;
        return a;
    };
    PortContext port;
    port.mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                std::byte{0},    std::byte{0}, std::byte{0x01}};
    port.ipv4.primary = address("198.18.0.2");
    port.ipv6.primary = address("2001:db8::2");
    port.rx_checksum = RxChecksum::verify;
    port.stun_enabled = true;
    port.stun_port = 3478;
    port.software = "punchline";
    if (name == "no_alternate") {
        port.stun_alternate_port = 0;
        return port;
    }
    port.ipv4.alternate = address("198.18.0.3");
    port.ipv6.alternate = address("2001:db8::3");
    port.stun_alternate_port = 3479;
    if (name == "full") return port;
    if (name == "trust_checksum") {
        port.rx_checksum = RxChecksum::trust;
        return port;
    }
    return std::nullopt;
}

// 16 bytes a line, offsets in hex; `mark` (if within the dump) is bracketed.
std::string hex_dump(std::span<const std::byte> bytes, std::size_t mark) {
    std::string out;
    char cell[32];
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i % 16 == 0) {
            std::snprintf(cell, sizeof cell, "%s%04zx:", i == 0 ? "" : "\n", i);
            out += cell;
        }
        std::snprintf(cell, sizeof cell, i == mark ? "[%02x]" : " %02x ",
                      std::to_integer<unsigned>(bytes[i]));
        out += cell;
    }
    return out;
}

std::string describe(const Verdict& v) {
    return v.transmits() ? std::string("transmit") : "drop " + std::string(to_string(v.reason));
}

// A transmitted answer to UDP is a STUN response: the only UDP the handlers answer.
bool is_udp(std::span<const std::byte> frame) {
    if (frame.size() < ethernet_header_size + ipv6_header_size) return false;
    const std::uint16_t type = stun::load_be16(frame.data() + 12);
    if (type == ethertype::ipv4) return frame[ethernet_header_size + 9] == std::byte{17};
    if (type == ethertype::ipv6) return frame[ethernet_header_size + 6] == std::byte{17};
    return false;
}

// What one run of the handlers produced.
struct Outcome {
    Verdict verdict;
    std::vector<std::byte> output;
    CoreCounters counters;
};

Outcome run(const GoldenCase& golden, const PortContext& port) {
    // Bytes past the input are poisoned so that a response relying on zeroed tailroom shows.
    std::vector<std::byte> buffer(golden.capacity, std::byte{0xA5});
    std::copy(golden.input.begin(), golden.input.end(), buffer.begin());
    Frame frame{buffer.data(), static_cast<std::uint16_t>(golden.input.size()),
                static_cast<std::uint16_t>(golden.capacity)};
    Outcome outcome;
    outcome.verdict = handle_frame(frame, port, outcome.counters);
    if (outcome.verdict.transmits())
        outcome.output.assign(buffer.begin(), buffer.begin() + frame.length);
    return outcome;
}

bool matches(const GoldenCase& golden, const Outcome& outcome) {
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

    const std::string expected_verdict =
        golden.transmit ? std::string("transmit")
                        : "drop " + std::string(to_string(golden.reason));
    ASSERT_EQ(describe(outcome.verdict), expected_verdict);

    // Counters: one packet in, and it is accounted for exactly once (design.md §3).
    const CoreCounters& counters = outcome.counters;
    EXPECT_TRUE(counters.conserved());
    EXPECT_EQ(counters.rx_packets, 1u);
    EXPECT_EQ(counters.rx_bytes, golden.input.size());
    EXPECT_EQ(counters.handed_off, 0u);
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
        // Exactly one of success / error is counted, matching the response's class bits.
        const std::size_t udp = ethernet_header_size +
                                (stun::load_be16(golden.output.data() + 12) == ethertype::ipv6
                                     ? ipv6_header_size
                                     : (std::to_integer<std::size_t>(golden.output[14]) & 0xF) *
                                           4);
        ASSERT_GE(golden.output.size(), udp + udp_header_size + 2);
        const std::uint16_t type = stun::load_be16(golden.output.data() + udp + udp_header_size);
        const bool error = (type & 0x0110) == 0x0110;
        EXPECT_EQ(counters.stun_error, error ? 1u : 0u);
        EXPECT_EQ(counters.stun_success, error ? 0u : 1u);
    } else {
        EXPECT_EQ(counters.stun_success + counters.stun_error, 0u);
    }
}

// "stun_binding_ipv4_fingerprint" -> "StunBindingIpv4Fingerprint" (style rule 15).
std::string camel_case(std::string_view name) {
    std::string out;
    bool upper = true;
    for (const char c : name) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) {
            upper = true;
            continue;
        }
        out += upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
        upper = false;
    }
    return out.empty() ? "Unnamed" : out;
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
        if (golden.transmit) continue;
        const auto reason = static_cast<std::size_t>(golden.reason);
        EXPECT_LT(reason, first_worker)
            << golden.file << ": " << drop_reasons[reason].name
            << " is a worker-loop reason, which handle_frame() never returns";
        if (golden.pending.empty()) covered[reason] = true;
    }
    for (std::size_t i = 0; i < first_worker; ++i)
        EXPECT_TRUE(covered[i]) << "no golden packet is dropped as " << drop_reasons[i].name;
}

}  // namespace
}  // namespace engine
