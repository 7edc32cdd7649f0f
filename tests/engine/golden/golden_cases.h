// The golden-packet corpus (style rule 17), shared by the suites that replay it:
// tests/engine/golden_test.cc runs engine::handle_frame() on plain buffers,
// tests/engine/golden_ring_test.cc runs engine::Worker::poll() on a net_ring port. Every
// *.golden file in this folder is one frame, the port context it arrives on, the verdict the
// handlers must reach (transmit, drop <reason>, or to_control: handed, unchanged, to the
// control thread's neighbour cache), and for a transmitted frame the exact bytes they must
// send; a `relay` case may say when it arrives on the relay's clock (`relay_time:`). The files
// are written by make_golden.py (beside this header) from scapy and hand-built STUN,
// independently of the C++; rerun it after changing a case:
//
//   /usr/bin/python3 tests/engine/golden/make_golden.py
//
// The folder comes from the environment variable GOLDEN_DIR (meson sets it). Test-only: the
// helpers report through GoogleTest and may allocate and throw.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "engine/counters.h"
#include "engine/drop_reason.h"
#include "engine/frame.h"
#include "engine/handler.h"
#include "engine/peer_policy.h"
#include "engine/relay_role.h"
#include "stun/credentials.h"
#include "stun/writer.h"
#include "engine/port_context.h"
#include "stun/address.h"
#include "stun/bytes.h"

namespace engine::golden {

/// The buffer a frame gets when its file has no `capacity:` line.
inline constexpr std::size_t default_capacity = 2048;

/// A request a `relay` case's client sends before its input, on the same shard at the same
/// time, and the answer it must get: the state no single request can reach from the shard
/// golden_cases.h makes (a full channel table, say).
struct PreludeFrame {
    std::vector<std::byte> input;
    std::vector<std::byte> output;
};

struct GoldenCase {
    std::string file;         // file name, for messages
    std::string name;         // the case's name (the file's stem)
    std::string description;
    std::string context;      // full | no_alternate | trust_checksum
    std::size_t capacity = default_capacity;
    std::string pending;      // non-empty: an RFC requirement the handlers do not meet yet
    // `relay` cases: when the frame arrives, in seconds after the shard was made
    // (relay_setup_s); 1 unless the file has a `relay_time:` line (the expiry cases).
    std::uint64_t relay_time_s = 1;
    // `relay` cases: `prelude:`, pairs of hex frames (request, answer) separated by spaces.
    std::vector<PreludeFrame> prelude;
    std::vector<std::byte> input;
    bool transmit = false;
    bool to_control = false;  // neither transmitted nor dropped: for the neighbour cache
    DropReason reason = DropReason::truncated_frame;
    std::vector<std::byte> output;
};

// For gtest's messages about a parameter: the file, not a byte dump.
inline void PrintTo(const GoldenCase& golden, std::ostream* out) { *out << golden.file; }

inline std::optional<DropReason> drop_reason_named(std::string_view name) {
    for (std::size_t i = 0; i < drop_reason_count; ++i)
        if (drop_reasons[i].name == name) return static_cast<DropReason>(i);
    return std::nullopt;
}

inline bool parse_hex(std::string_view text, std::vector<std::byte>& out) {
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
inline bool parse_golden(const std::filesystem::path& path, GoldenCase& golden,
                         std::string& error) {
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
            "name", "description", "context", "capacity", "pending", "relay_time", "prelude",
            "input", "verdict", "output"};
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
    if (fields.contains("relay_time")) {
        const std::string& text = fields["relay_time"];
        char* end = nullptr;
        golden.relay_time_s = std::strtoull(text.c_str(), &end, 10);
        // Up to a day: far past every lifetime, and no overflow in ticks.
        if (text.empty() || *end != '\0' || golden.relay_time_s > 86'400 ||
            golden.context != "relay") {
            error = "relay_time must be 0..86400 seconds, in a `relay` case";
            return false;
        }
    }
    if (fields.contains("prelude")) {
        std::vector<std::vector<std::byte>> frames;
        std::string_view text = fields["prelude"];
        while (!text.empty()) {
            const std::size_t space = std::min(text.find(' '), text.size());
            frames.emplace_back();
            if (!parse_hex(text.substr(0, space), frames.back()) || frames.back().empty() ||
                frames.back().size() > golden.capacity) {
                error = "prelude: a frame is not hex, or longer than the capacity";
                return false;
            }
            text.remove_prefix(std::min(space + 1, text.size()));
        }
        if (frames.empty() || frames.size() % 2 != 0 || golden.context != "relay") {
            error = "prelude must be pairs of frames (request, answer), in a `relay` case";
            return false;
        }
        for (std::size_t i = 0; i < frames.size(); i += 2)
            golden.prelude.push_back({std::move(frames[i]), std::move(frames[i + 1])});
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
    } else if (verdict == "to_control") {
        golden.to_control = true;
        if (fields.contains("output")) {
            error = "a frame for the control thread has no output";
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
        error = "verdict must be `transmit`, `to_control` or `drop <reason>`";
        return false;
    }
    return true;
}

struct Corpus {
    std::string folder;
    std::vector<GoldenCase> cases;
    std::vector<std::string> errors;  // folder or file problems, each a failure
};

/// Every file of GOLDEN_DIR, sorted by name, loaded once per process.
inline const Corpus& corpus() {
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

/// The MAC every golden frame is addressed to: the port's own, in every context.
inline constexpr MacAddress port_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                                        std::byte{0},    std::byte{0}, std::byte{0x01}};
/// The resolved gateway's MAC in every context's neighbour snapshot (make_golden.py's
/// GATEWAY_MAC).
inline constexpr MacAddress gateway_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                                           std::byte{0},    std::byte{0}, std::byte{0xFE}};

// The `relay` context (make_golden.py's RELAY_*): `full` with a relay role. User "golden",
// password "golden-password", realm "punchline"; relay address 198.18.0.2 with one relay
// port, 49152, so that the relayed address is known; peers in 198.18.0.0/24 allowed (the
// golden addresses are all in 198.18/15, which the defaults refuse). Its clock: the state is
// made at relay_setup_s, the cases arrive one second later (or relay_time seconds later: the
// expiry cases). A second user, "other" (password "other-password"), for the requests of a
// user who does not own the allocation; one allocation per user, so that a second Allocate by
// "golden" meets its quota.
inline constexpr std::uint64_t relay_ticks_per_second = 1'000'000'000;
inline constexpr std::uint64_t relay_setup_s = 1'800'000'000;
inline constexpr std::uint64_t relay_setup_ticks = 100 * relay_ticks_per_second;

/// A shard as a worker keeps it up to `now_ticks`: its loop sweeps a few slots every
/// iteration (worker.cc), so by the time a case arrives, every slot has been swept and what
/// expired is gone, as sweep() removes it. Without this, an expired allocation would still be
/// found, and refused by the handler that meets it (ChannelData then drops as relay_no_channel,
/// not relay_no_allocation).
inline void sweep_relay_shard(RelayShard& shard, std::uint64_t now_ticks) {
    static_cast<void>(sweep(shard, now_ticks, shard.table().capacity()));
}

/// The relay clock a case's frame meets: its ticks and Unix seconds.
inline std::uint64_t relay_case_ticks(const GoldenCase& golden) {
    return relay_setup_ticks + golden.relay_time_s * relay_ticks_per_second;
}
inline std::uint64_t relay_case_s(const GoldenCase& golden) {
    return relay_setup_s + golden.relay_time_s;
}

inline std::shared_ptr<const RelayContext> make_relay_context() {
    const LongTermUser users[] = {{"golden", "golden-password"}, {"other", "other-password"}};
    CredentialsSettings settings;
    settings.realm = "punchline";
    settings.users = users;
    settings.nonce_keys.current.id = 1;
    settings.nonce_keys.current.secret.fill(std::byte{0x33});
    Credentials credentials;
    EXPECT_EQ(Credentials::build(settings, credentials), CredentialsError::ok);
    Cidr lan;
    EXPECT_EQ(parse_cidr("198.18.0.0/24", lan), CidrError::ok);
    auto parse = [](std::string_view text) {
        stun::Address a;
        EXPECT_TRUE(stun::Address::from_string(text, 0, a)) << text;
        return a;
    };
    const std::vector<stun::Address> own = {parse("198.18.0.2"), parse("198.18.0.3"),
                                            parse("2001:db8::2"), parse("2001:db8::3")};
    RelayAddress address;
    address.ipv4 = parse("198.18.0.2");
    address.families = relay_ipv4;
    RelayLimits limits;
    limits.ticks_per_second = relay_ticks_per_second;
    limits.max_allocations_per_user = 1;
    // A bandwidth cap of 1000 bytes a second, 1500 at once: each case's allocation starts
    // with a full bucket.
    limits.bandwidth = RateLimit::make(1000, 1500, relay_ticks_per_second);
    return std::make_shared<const RelayContext>(std::move(credentials),
                                                PeerPolicy({&lan, 1}, {}, own, {&address.ipv4, 1}),
                                                std::vector<RelayAddress>{address}, limits);
}

/// One case's relay shard, in the state the `relay` cases expect: the client 198.18.0.100:40000
/// (to 198.18.0.2:3478) holds an allocation on 198.18.0.2:49152, made the way a client makes
/// one (an Allocate answered 401, then one with the nonce and MESSAGE-INTEGRITY), with
/// permissions for 203.0.113.5, 198.18.0.77 and its own relayed address 198.18.0.2, channel
/// 0x4000 bound to 203.0.113.5:5000 and 0x4002 to 198.18.0.2:49152 (a hairpin to itself).
/// `relay_port` and `client_port` make another worker's shard: its one relay port, and the
/// client's port (its channel 0x4002 then points at the first shard's relayed address).
/// `with_reservation` (the `relay_reservation` context) gives the shard eight relay ports,
/// 49152-49159 (the first Allocate asks for EVEN-PORT, whose search starts at 49152 for its
/// transaction ID, so that it still gets 49152), and then has the client 198.18.0.100:40001
/// allocate with EVEN-PORT's R bit as user "other": 49154, with 49155 reserved under the
/// shard's first RESERVATION-TOKEN (make_golden.py computes it), then delete that allocation
/// (Refresh, LIFETIME 0: the reservation stays), so that "other" may allocate again.
inline std::unique_ptr<RelayShard> make_relay_shard(const RelayContext& context,
                                                    std::uint16_t relay_port = 49152,
                                                    std::uint16_t client_port = 40000,
                                                    bool with_reservation = false) {
    RelayTableLimits limits;
    limits.capacity = 16;
    limits.first_relay_port = relay_port;
    limits.relay_port_count = with_reservation ? 8 : 1;
    limits.max_permissions = 4;
    limits.max_channels = 4;
    limits.peer_entries = limits.capacity * 8;
    limits.reservations = limits.capacity;
    limits.ticks_per_second = relay_ticks_per_second;
    limits.seed = 1;
    auto shard = std::make_unique<RelayShard>(
        limits, *RateLimit::make(20, 40, relay_ticks_per_second), 64, 1);
    const std::optional<FiveTuple> five_tuple =
        FiveTuple::make(stun::Address::v4(0xC6120064, client_port),
                        stun::Address::v4(0xC6120002, 3478));
    stun::LongTermKeyMd5 key{};
    EXPECT_EQ(stun::long_term_key_md5("golden", "punchline", "golden-password", key),
              stun::CredentialError::ok);
    std::string nonce;
    std::uint8_t id = 0;
    // One request of `client`, with the nonce of its last answer: written, parsed, answered;
    // the answer's outcome returned.
    auto exchange_of = [&](const FiveTuple& client, std::string& client_nonce,
                           std::string_view user, const stun::LongTermKeyMd5& user_key,
                           stun::Method method, auto&& attributes) {
        std::array<std::byte, 512> request{};
        stun::TransactionId txid{};
        txid[0] = std::byte{++id};
        stun::MessageWriter w(request, method, stun::MessageClass::request, txid);
        attributes(w);
        if (!client_nonce.empty()) {
            w.add_text(stun::attr::username, user);
            w.add_text(stun::attr::realm, "punchline");
            w.add_text(stun::attr::nonce, client_nonce);
            w.add_message_integrity(user_key);
        }
        EXPECT_TRUE(w.ok());
        stun::Message m;
        EXPECT_EQ(stun::Message::parse({request.data(), w.size()}, m), stun::ParseError::ok);
        std::array<std::byte, 1024> out{};
        const TurnAnswer answer =
            handle_turn(context, *shard, m, {request.data(), w.size()}, client,
                        relay_setup_ticks, relay_setup_s, out);
        stun::Message response;
        if (answer.action == TurnAction::respond &&
            stun::Message::parse({out.data(), answer.response_length}, response) ==
                stun::ParseError::ok) {
            if (const auto n = response.find(stun::attr::nonce)) {
                std::string_view text;
                if (stun::decode_text(*n, text) == stun::ParseError::ok) client_nonce = text;
            }
        }
        return answer.outcome;
    };
    auto exchange = [&](stun::Method method, auto&& attributes) {
        return exchange_of(*five_tuple, nonce, "golden", key, method, attributes);
    };
    auto allocate = [with_reservation](stun::MessageWriter& w) {
        w.add_requested_transport(17);
        if (with_reservation) w.add_even_port(false);
    };
    EXPECT_EQ(exchange(stun::Method::allocate, allocate), TurnOutcome::auth_failed);
    EXPECT_EQ(exchange(stun::Method::allocate, allocate), TurnOutcome::allocated);
    EXPECT_EQ(exchange(stun::Method::create_permission,
                       [](stun::MessageWriter& w) {
                           w.add_xor_address(stun::attr::xor_peer_address,
                                             stun::Address::v4(0xCB007105, 0));
                           w.add_xor_address(stun::attr::xor_peer_address,
                                             stun::Address::v4(0xC612004D, 0));
                           w.add_xor_address(stun::attr::xor_peer_address,
                                             stun::Address::v4(0xC6120002, 0));
                       }),
              TurnOutcome::permission_installed);
    EXPECT_EQ(exchange(stun::Method::channel_bind,
                       [](stun::MessageWriter& w) {
                           w.add_channel_number(0x4000);
                           w.add_xor_address(stun::attr::xor_peer_address,
                                             stun::Address::v4(0xCB007105, 5000));
                       }),
              TurnOutcome::channel_bound);
    EXPECT_EQ(exchange(stun::Method::channel_bind,
                       [](stun::MessageWriter& w) {
                           w.add_channel_number(0x4002);
                           w.add_xor_address(stun::attr::xor_peer_address,
                                             stun::Address::v4(0xC6120002, 49152));
                       }),
              TurnOutcome::channel_bound);
    // What respond_turn() records when it answers the Allocate in a frame: the MAC it came
    // from, CLIENT_MAC (these requests went to handle_turn() directly).
    const std::uint32_t slot = shard->table().find(*five_tuple);
    EXPECT_NE(slot, RelayTable::no_slot);
    if (slot != RelayTable::no_slot) {
        const std::byte client_mac[6] = {std::byte{2}, std::byte{0}, std::byte{0},
                                         std::byte{0}, std::byte{0}, std::byte{0x99}};
        shard->table().at(slot).set_client_hop(client_mac);
    }
    if (with_reservation) {
        const std::optional<FiveTuple> second =
            FiveTuple::make(stun::Address::v4(0xC6120064, 40001),
                            stun::Address::v4(0xC6120002, 3478));
        std::string second_nonce;
        stun::LongTermKeyMd5 other_key{};
        EXPECT_EQ(stun::long_term_key_md5("other", "punchline", "other-password", other_key),
                  stun::CredentialError::ok);
        auto reserve = [](stun::MessageWriter& w) {
            w.add_requested_transport(17);
            w.add_even_port(true);
        };
        EXPECT_EQ(exchange_of(*second, second_nonce, "other", other_key,
                              stun::Method::allocate, reserve),
                  TurnOutcome::auth_failed);
        EXPECT_EQ(exchange_of(*second, second_nonce, "other", other_key,
                              stun::Method::allocate, reserve),
                  TurnOutcome::allocated);
        // Deleted (user "other" has a quota of one allocation); its reservation stays.
        EXPECT_EQ(exchange_of(*second, second_nonce, "other", other_key, stun::Method::refresh,
                              [](stun::MessageWriter& w) { w.add_u32(stun::attr::lifetime, 0); }),
                  TurnOutcome::deleted);
        EXPECT_TRUE(shard->table().relay_port_reserved(0, 49155));
        EXPECT_TRUE(shard->table().relay_port_available(0, 49154));
    }
    return shard;
}

// The three contexts make_golden.py names, as set up field by field, before
// PortContext::prepare(): the STUN role answers such a context by its general path alone.
// Client: 02:00:00:00:00:99, 198.18.0.100, 2001:db8::100, port 40000.
inline std::optional<PortContext> make_unprepared_context(std::string_view name) {
    auto address = [](std::string_view text) {
        stun::Address a;
        const bool ok = stun::Address::from_string(text, 0, a);
        EXPECT_TRUE(ok) << text;
        return a;
    };
    PortContext port;
    port.mac = port_mac;
    port.ipv4.primary = address("198.18.0.2");
    port.ipv6.primary = address("2001:db8::2");
    port.rx_checksum = RxChecksum::verify;
    port.stun_enabled = true;
    port.stun_port = 3478;
    port.software = "punchline";
    // The neighbour cache watches the gateways, as punchlined publishes it: 198.18.0.1
    // resolved, 2001:db8::1 still INCOMPLETE. Entries sorted as NeighbourTable::snapshot()
    // sorts them (IPv4 first).
    port.neighbours.ipv4 = {port.ipv4.primary, 24, address("198.18.0.1")};
    port.neighbours.ipv6 = {port.ipv6.primary, 64, address("2001:db8::1")};
    port.neighbours.entries = {{address("198.18.0.1"), gateway_mac, true},
                               {address("2001:db8::1"), {}, false}};
    if (name == "no_alternate") {
        port.stun_alternate_port = 0;
        return port;
    }
    port.ipv4.alternate = address("198.18.0.3");
    port.ipv6.alternate = address("2001:db8::3");
    port.stun_alternate_port = 3479;
    if (name == "full") return port;
    if (name == "relay" || name == "relay_reservation") {
        port.relay = make_relay_context();
        return port;
    }
    if (name == "trust_checksum") {
        port.rx_checksum = RxChecksum::trust;
        return port;
    }
    return std::nullopt;
}

/// A context make_golden.py names, prepared as punchlined prepares its ports (the STUN fast
/// path's templates made; `relay` with its relay role).
inline std::optional<PortContext> make_context(std::string_view name) {
    std::optional<PortContext> port = make_unprepared_context(name);
    if (port) port->prepare();
    return port;
}

// 16 bytes a line, offsets in hex; `mark` (if within the dump) is bracketed.
inline std::string hex_dump(std::span<const std::byte> bytes, std::size_t mark) {
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

inline std::string describe(const Verdict& v) {
    if (v.goes_to_control()) return "to_control";
    return v.transmits() ? std::string("transmit") : "drop " + std::string(to_string(v.reason));
}

/// The verdict a case expects, written as describe() writes one.
inline std::string expected_verdict(const GoldenCase& golden) {
    if (golden.to_control) return "to_control";
    return golden.transmit ? std::string("transmit")
                           : "drop " + std::string(to_string(golden.reason));
}

// A transmitted answer to UDP is a STUN response: the only UDP the handlers answer.
inline bool is_udp(std::span<const std::byte> frame) {
    if (frame.size() < ethernet_header_size + ipv6_header_size) return false;
    const std::uint16_t type = stun::load_be16(frame.data() + 12);
    if (type == ethertype::ipv4) return frame[ethernet_header_size + 9] == std::byte{17};
    if (type == ethertype::ipv6) return frame[ethernet_header_size + 6] == std::byte{17};
    return false;
}

// "stun_binding_ipv4_fingerprint" -> "StunBindingIpv4Fingerprint" (style rule 15).
inline std::string camel_case(std::string_view name) {
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

/// Checks that exactly one of stun_success / stun_error rose, matching the class bits of the
/// STUN message in a transmitted UDP frame; neither for anything else. For GoogleTest bodies.
inline void expect_stun_counters(const GoldenCase& golden, const CoreCounters& delta) {
    if (!is_udp(golden.input)) {
        EXPECT_EQ(delta.stun_success + delta.stun_error, 0u);
        return;
    }
    if (golden.context == "relay" || golden.context == "relay_reservation") {
        // What the relay role sends is counted by its shard, not as a STUN answer.
        EXPECT_EQ(delta.stun_success + delta.stun_error, 0u);
        return;
    }
    const std::size_t udp =
        ethernet_header_size +
        (stun::load_be16(golden.output.data() + 12) == ethertype::ipv6
             ? ipv6_header_size
             : (std::to_integer<std::size_t>(golden.output[14]) & 0xF) * 4);
    ASSERT_GE(golden.output.size(), udp + udp_header_size + 2);
    const std::uint16_t type = stun::load_be16(golden.output.data() + udp + udp_header_size);
    const bool error = (type & 0x0110) == 0x0110;
    EXPECT_EQ(delta.stun_error, error ? 1u : 0u);
    EXPECT_EQ(delta.stun_success, error ? 0u : 1u);
}

}  // namespace engine::golden
