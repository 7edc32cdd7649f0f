// The STUN role's fast path (respond_plain_binding in engine/stun_responder.cc), which answers
// from the port's templates and completes checksums and FINGERPRINT from sums of fields
// (stun/crc32_terms.h): on random transaction IDs, clients and ports, for every layout it
// writes (IPv4 and IPv6, with and without OTHER-ADDRESS, SOFTWARE of every padding), each
// response is the general path's byte for byte (the same request to the context unprepared),
// is checked by the codec's own parser and its CRC-32 over the bytes (libdeflate), and each
// request with a corrupted FINGERPRINT is dropped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/checksum.h"
#include "engine/handler.h"
#include "engine/port_context.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/writer.h"
#include "test_support.h"

namespace engine {
namespace {

struct Case {
    bool ipv6;
    bool alternate;
    std::size_t software_length;
};

PortContext make_port(const Case& c) {
    PortContext port;
    port.mac = {std::byte{0x02}, std::byte{0x50}, std::byte{0}, std::byte{0}, std::byte{0},
                std::byte{2}};
    port.ipv4.primary = test::address("198.18.0.2");
    port.ipv6.primary = test::address("2001:db8::2");
    if (c.alternate) {
        port.ipv4.alternate = test::address("198.18.0.3");
        port.ipv6.alternate = test::address("2001:db8::3");
        port.stun_alternate_port = 3479;
    } else {
        port.stun_alternate_port = 0;
    }
    port.software = std::string(c.software_length, 's');
    port.prepare();
    return port;
}

// An Ethernet/IP/UDP frame holding a Binding request with FINGERPRINT from `client` to
// `server_ip`:`server_port`, checksums right.
std::vector<std::byte> make_request(const PortContext& port, const stun::Address& client,
                                    const std::byte* server_ip, std::uint16_t server_port,
                                    const stun::TransactionId& txid) {
    const bool ipv6 = client.family == stun::AddressFamily::ipv6;
    const std::size_t ip_size = ipv6 ? 40 : 20;
    const std::size_t udp_length = 8 + 28;
    std::vector<std::byte> f(14 + ip_size + udp_length);
    std::memcpy(f.data(), port.mac.data(), 6);
    f[6] = std::byte{0x02};
    stun::store_be16(f.data() + 12, ipv6 ? ethertype::ipv6 : ethertype::ipv4);
    std::byte* h = f.data() + 14;
    const std::size_t address_size = ipv6 ? 16 : 4;
    std::byte* addresses = h + (ipv6 ? 8 : 12);
    if (ipv6) {
        h[0] = std::byte{0x60};
        stun::store_be16(h + 4, static_cast<std::uint16_t>(udp_length));
        h[6] = std::byte{ip_protocol::udp};
        h[7] = std::byte{64};
    } else {
        h[0] = std::byte{0x45};
        stun::store_be16(h + 2, static_cast<std::uint16_t>(20 + udp_length));
        h[8] = std::byte{64};
        h[9] = std::byte{ip_protocol::udp};
    }
    std::memcpy(addresses, client.ip.data(), address_size);
    std::memcpy(addresses + address_size, server_ip, address_size);
    if (!ipv6) stun::store_be16(h + 10, ipv4_header_checksum({h, 20}));
    std::byte* u = h + ip_size;
    stun::store_be16(u, client.port);
    stun::store_be16(u + 2, server_port);
    stun::store_be16(u + 4, static_cast<std::uint16_t>(udp_length));
    stun::MessageWriter w(std::span<std::byte>(u + 8, 28), stun::Method::binding,
                          stun::MessageClass::request, txid);
    w.add_fingerprint();
    EXPECT_TRUE(w.ok());
    const std::uint16_t sum =
        transport_checksum({addresses, 2 * address_size}, ip_protocol::udp, {u, udp_length});
    stun::store_be16(u + 6, sum == 0 ? 0xFFFF : sum);
    return f;
}

class StunFastPathTest : public ::testing::TestWithParam<Case> {};

TEST_P(StunFastPathTest, EveryResponseParsesAndItsFingerprintVerifies) {
    const Case c = GetParam();
    const PortContext port = make_port(c);
    PortContext unprepared = port;
    for (BindingTemplate& t : unprepared.binding_templates) t = BindingTemplate{};
    // A context whose templates carry a mark (a bit of the source MAC flipped): the fast path
    // answers from them, so its answers carry the mark.
    PortContext marked = port;
    for (BindingTemplate& t : marked.binding_templates)
        if (!t.frame.empty()) t.frame[6] ^= std::byte{1};
    std::mt19937 random(static_cast<unsigned>(c.software_length * 4 + c.ipv6 * 2 + c.alternate));
    CoreCounters counters;
    for (int round = 0; round < 300; ++round) {
        stun::Address client;
        client.family = c.ipv6 ? stun::AddressFamily::ipv6 : stun::AddressFamily::ipv4;
        for (std::size_t i = 0; i < client.ip_size(); ++i)
            client.ip[i] = static_cast<std::byte>(random());
        // Not multicast, loopback or ours.
        client.ip[0] = c.ipv6 ? std::byte{0x20} : std::byte{0x0B};
        client.port = static_cast<std::uint16_t>(1 + random() % 65535);
        stun::TransactionId txid;
        for (auto& b : txid) b = static_cast<std::byte>(random());
        const OwnedAddresses& owned = c.ipv6 ? port.ipv6 : port.ipv4;
        const bool to_alternate_ip = c.alternate && random() % 2 == 1;
        const bool to_alternate_port = c.alternate && random() % 2 == 1;
        const std::byte* server_ip = owned.at(to_alternate_ip ? 1 : 0)->ip.data();
        const std::uint16_t server_port = to_alternate_port ? 3479 : 3478;

        auto frame = make_request(port, client, server_ip, server_port, txid);
        frame.resize(frame.size() + max_response_growth(port));
        Frame f{frame.data(), static_cast<std::uint16_t>(frame.size() - max_response_growth(port)),
                static_cast<std::uint16_t>(frame.size())};
        const auto request = frame;
        ASSERT_TRUE(handle_frame(f, port, counters).transmits());
        const auto request_length =
            static_cast<std::uint16_t>(request.size() - max_response_growth(port));
        auto general = request;
        Frame e{general.data(), request_length, static_cast<std::uint16_t>(general.size())};
        ASSERT_TRUE(handle_frame(e, unprepared, counters).transmits());
        ASSERT_EQ(e.length, f.length);
        const auto differs = std::mismatch(f.data, f.data + f.length, e.data).first - f.data;
        ASSERT_EQ(differs, f.length) << "round " << round << ": the general path's answer differs";
        auto mark = request;
        Frame k{mark.data(), request_length, static_cast<std::uint16_t>(mark.size())};
        ASSERT_TRUE(handle_frame(k, marked, counters).transmits());
        EXPECT_EQ(mark[6], f.data[6] ^ std::byte{1}) << "not answered from the template";
        // The IPv4 header and UDP checksums verify (the general path once carried out of 32
        // bits and lost one in the header's for some client addresses).
        const std::size_t address_size = c.ipv6 ? 16 : 4;
        const std::size_t udp = 14 + (c.ipv6 ? 40 : 20);
        if (!c.ipv6) {
            EXPECT_EQ(ipv4_header_checksum({f.data + 14, 20}), 0) << "round " << round;
        }
        EXPECT_EQ(transport_checksum({f.data + 14 + (c.ipv6 ? 8 : 12), 2 * address_size},
                                     ip_protocol::udp, {f.data + udp, f.length - udp}),
                  0)
            << "round " << round;
        const std::size_t stun_offset = udp + 8;
        stun::Message m;
        ASSERT_EQ(stun::Message::parse({f.data + stun_offset, f.length - stun_offset}, m),
                  stun::ParseError::ok);
        ASSERT_EQ(stun::verify_fingerprint(m), stun::IntegrityResult::ok) << "round " << round;
        const auto xma = m.find(stun::attr::xor_mapped_address);
        ASSERT_TRUE(xma);
        stun::Address mapped;
        ASSERT_EQ(stun::decode_xor_address(*xma, txid, mapped), stun::ParseError::ok);
        EXPECT_EQ(mapped, client);
        const auto other = m.find(stun::attr::other_address);
        EXPECT_EQ(other.has_value(), c.alternate);
        EXPECT_EQ(m.find(stun::attr::software).has_value(), c.software_length > 0);

        // The same request with one bit of its FINGERPRINT flipped is not answered.
        auto bad = make_request(port, client, server_ip, server_port, txid);
        bad[bad.size() - 1 - random() % 4] ^= static_cast<std::byte>(1u << (random() % 8));
        stun::store_be16(bad.data() + udp + 6, 0);
        const std::uint16_t sum = transport_checksum(
            {bad.data() + 14 + (c.ipv6 ? 8 : 12), 2 * address_size}, ip_protocol::udp,
            {bad.data() + udp, 36});
        stun::store_be16(bad.data() + udp + 6, sum == 0 ? 0xFFFF : sum);
        Frame g{bad.data(), static_cast<std::uint16_t>(bad.size()),
                static_cast<std::uint16_t>(bad.size())};
        const Verdict v = handle_frame(g, port, counters);
        EXPECT_FALSE(v.transmits());
        EXPECT_EQ(v.reason, DropReason::stun_bad_fingerprint);
    }
    EXPECT_TRUE(counters.conserved());
}

// The express lane (answer_express_ipv4) and the fast path against the general path on
// requests with a few bytes changed anywhere, checksums then made right or left wrong: the
// prepared context and the unprepared one give every frame the same verdict, the same drop
// reason and the same bytes. What the express lane lets through, the general path would have
// answered the same; what it declines, the general path decides.
TEST(StunExpressLaneTest, AgreesWithTheGeneralPathOnAlteredRequests) {
    const PortContext port = make_port({false, true, 9});
    PortContext unprepared = port;
    for (BindingTemplate& t : unprepared.binding_templates) t = BindingTemplate{};
    std::mt19937 random(7);
    std::size_t answered = 0;
    for (int round = 0; round < 20000; ++round) {
        const stun::Address client =
            stun::Address::v4(0x0B000000u + static_cast<std::uint32_t>(random() % 0xFFFFFF),
                               static_cast<std::uint16_t>(1 + random() % 65535));
        stun::TransactionId txid;
        for (auto& b : txid) b = static_cast<std::byte>(random());
        const std::byte* server_ip = port.ipv4.at(static_cast<int>(random() % 2))->ip.data();
        auto request = make_request(port, client, server_ip,
                                    random() % 2 == 0 ? 3478 : 3479, txid);
        if (random() % 4 == 0) {
            // Without FINGERPRINT: 20 bytes of STUN, lengths to match.
            request.resize(request.size() - 8);
            stun::store_be16(request.data() + 16, 48);
            stun::store_be16(request.data() + 38, 28);
            stun::store_be16(request.data() + 44, 0);
        }
        const int changes = static_cast<int>(random() % 3);
        for (int i = 0; i < changes; ++i)
            request[random() % request.size()] ^= static_cast<std::byte>(1 + random() % 255);
        if (random() % 4 != 0) {
            std::byte* h = request.data() + 14;
            stun::store_be16(h + 10, 0);
            stun::store_be16(h + 10, ipv4_header_checksum({h, 20}));
        }
        if (random() % 4 != 0 && request.size() >= 42) {
            std::byte* u = request.data() + 34;
            stun::store_be16(u + 6, 0);
            const std::uint16_t sum = transport_checksum({request.data() + 26, 8},
                                                         ip_protocol::udp,
                                                         {u, request.size() - 34});
            stun::store_be16(u + 6, sum == 0 ? 0xFFFF : sum);
        }
        const auto length = static_cast<std::uint16_t>(request.size());
        request.resize(request.size() + max_response_growth(port));
        auto general = request;
        Frame f{request.data(), length, static_cast<std::uint16_t>(request.size())};
        Frame g{general.data(), length, static_cast<std::uint16_t>(general.size())};
        CoreCounters fast_counters, general_counters;
        const Verdict fast = handle_frame(f, port, fast_counters);
        const Verdict slow = handle_frame(g, unprepared, general_counters);
        ASSERT_EQ(fast.action, slow.action) << "round " << round;
        if (!fast.transmits()) {
            ASSERT_EQ(fast.reason, slow.reason) << "round " << round;
            continue;
        }
        ++answered;
        ASSERT_EQ(f.length, g.length) << "round " << round;
        ASSERT_EQ(request, general) << "round " << round;
    }
    // Most requests with no byte changed are answered; the rest exercise the declines.
    EXPECT_GT(answered, 3000u);
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (bool ipv6 : {false, true})
        for (bool alternate : {false, true})
            for (std::size_t software : {0, 1, 2, 3, 4, 9, 31})
                cases.push_back({ipv6, alternate, software});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Layouts, StunFastPathTest, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                             return std::string(info.param.ipv6 ? "Ipv6" : "Ipv4") +
                                    (info.param.alternate ? "Alternate" : "Plain") + "Software" +
                                    std::to_string(info.param.software_length);
                         });

}  // namespace
}  // namespace engine
