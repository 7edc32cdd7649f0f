// The probe (nat/probe.cc) end to end on loopback, against a small RFC 5780 server written
// here with the codec: two IPs (127.0.0.1 and 127.0.0.2) and two ports. The server can pretend
// to be behind each kind of NAT (the XOR-MAPPED-ADDRESS it reports) and can filter like one
// (the CHANGE-REQUEST answers it leaves out), so that every step of the probe runs on real
// sockets without root. Timeouts are bounded by a short retransmission policy; nothing sleeps.
#include <gtest/gtest.h>

#include <array>
#include <memory>

#include "punch/probe.h"
#include "stun/attributes.h"
#include "stun/writer.h"

namespace punch {
namespace {

enum class FakeMapping { none, endpoint_independent, address_dependent, address_and_port_dependent };
enum class FakeFiltering { endpoint_independent, address_dependent, address_and_port_dependent,
                           ignores_change_request };

class FakeRfc5780Server {
public:
    FakeRfc5780Server(EventLoop& loop, FakeMapping mapping, FakeFiltering filtering)
        : loop_(loop), mapping_(mapping), filtering_(filtering) {}

    ~FakeRfc5780Server() {
        for (auto& s : sockets_) loop_.unwatch(s);
    }

    // Binds (ip, port) for both IPs and two ports; false if the ports were taken on .2.
    bool start() {
        const auto ip1 = stun::Address::v4(0x7F000001, 0);
        if (!sockets_[0].open(ip1).empty() || !sockets_[1].open(ip1).empty()) return false;
        ports_ = {sockets_[0].local_address().port, sockets_[1].local_address().port};
        for (int p = 0; p < 2; ++p)
            if (!sockets_[2 + p].open(stun::Address::v4(0x7F000002, ports_[p])).empty())
                return false;
        for (int i = 0; i < 4; ++i)
            if (!loop_.watch(sockets_[i], [this, i] { on_readable(i); }).empty()) return false;
        return true;
    }

    [[nodiscard]] stun::Address primary() const { return address(0, 0); }
    int answered = 0;

private:
    [[nodiscard]] stun::Address address(int ip, int port) const {
        return stun::Address::v4(ip == 0 ? 0x7F000001 : 0x7F000002, ports_[port]);
    }

    // What a NAT of the pretended kind would have mapped `from` to, towards `to`.
    [[nodiscard]] stun::Address mapped(const stun::Address& from, int ip, int port) const {
        // 127.0.0.20: on loopback, like everything this test sends (the hairpin test sends
        // there), and another port: the probe's own sockets listen on every address.
        stun::Address m =
            stun::Address::v4(0x7F000014, static_cast<std::uint16_t>(from.port + 1000));
        switch (mapping_) {
        case FakeMapping::none: return from;
        case FakeMapping::endpoint_independent: break;
        case FakeMapping::address_dependent: m.port = static_cast<std::uint16_t>(m.port + ip); break;
        case FakeMapping::address_and_port_dependent:
            m.port = static_cast<std::uint16_t>(m.port + 2 * ip + port);
            break;
        }
        return m;
    }

    void on_readable(int index) {
        std::array<std::byte, 1500> buffer;
        stun::Address from;
        for (long n; (n = sockets_[index].receive_from(buffer, from)) >= 0;) {
            stun::Message m;
            const auto datagram = std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
            if (stun::Message::parse(datagram, m) != stun::ParseError::ok) continue;
            if (!m.is(stun::Method::binding, stun::MessageClass::request)) continue;
            std::uint32_t change = 0;
            if (const auto a = m.find(stun::attr::change_request))
                (void)stun::decode_u32(*a, change);
            const int ip = index / 2;
            const int port = index % 2;
            int out_ip = ip;
            int out_port = port;
            if (filtering_ != FakeFiltering::ignores_change_request) {
                if (change & stun::change_ip) out_ip = 1 - ip;
                if (change & stun::change_port) out_port = 1 - port;
            }
            // The pretended NAT's filter: what it would let in from (out_ip, out_port).
            const bool new_ip = out_ip != ip;
            const bool new_port = out_port != port;
            if (filtering_ == FakeFiltering::address_dependent && new_ip) continue;
            if (filtering_ == FakeFiltering::address_and_port_dependent && (new_ip || new_port))
                continue;
            std::array<std::byte, 256> response;
            stun::MessageWriter w(response, stun::Method::binding,
                                  stun::MessageClass::success_response, m.transaction_id());
            w.add_xor_address(stun::attr::xor_mapped_address, mapped(from, ip, port));
            w.add_address(stun::attr::response_origin, address(out_ip, out_port));
            w.add_address(stun::attr::other_address, address(1 - ip, 1 - port));
            w.add_fingerprint();
            const auto bytes = w.finish();
            if (sockets_[2 * out_ip + out_port].send_to(from, bytes)) ++answered;
        }
    }

    EventLoop& loop_;
    FakeMapping mapping_;
    FakeFiltering filtering_;
    std::array<UdpSocket, 4> sockets_;
    std::array<std::uint16_t, 2> ports_{};
};

class ProbeTest : public ::testing::Test {
protected:
    ProbeReport probe(FakeMapping mapping, FakeFiltering filtering) {
        FakeRfc5780Server server(loop, mapping, filtering);
        if (!server.start()) {
            ADD_FAILURE() << "could not bind the fake server on 127.0.0.1 and 127.0.0.2";
            return {};
        }
        ProbeConfig config;
        config.servers.push_back({"fake", server.primary()});
        config.policy.initial_rto = std::chrono::milliseconds(50);
        config.policy.max_duration = std::chrono::milliseconds(300);
        ProbeReport report;
        EXPECT_EQ(run_probe(loop, config, report), "");
        EXPECT_GT(server.answered, 0);
        return report;
    }

    SteadyClock clock;
    EventLoop loop{clock};
};

TEST_F(ProbeTest, NoNat) {
    const auto r = probe(FakeMapping::none, FakeFiltering::endpoint_independent);
    ASSERT_TRUE(r.nearest);
    ASSERT_TRUE(r.classifier);
    EXPECT_EQ(r.reflexive, r.local);
    EXPECT_EQ(r.classification.mapping, MappingBehavior::no_nat);
    EXPECT_EQ(r.tests.mapping2.outcome, TestOutcome::not_run);
    EXPECT_EQ(r.classification.filtering, FilteringBehavior::endpoint_independent);
    EXPECT_EQ(r.classification.hairpinning, Hairpinning::supported);
    EXPECT_EQ(r.classification.type, NatType::none);
}

TEST_F(ProbeTest, EachPretendedNat) {
    struct Case {
        FakeMapping mapping;
        FakeFiltering filtering;
        MappingBehavior want_mapping;
        FilteringBehavior want_filtering;
        NatType want;
    };
    const Case cases[] = {
        {FakeMapping::endpoint_independent, FakeFiltering::endpoint_independent,
         MappingBehavior::endpoint_independent, FilteringBehavior::endpoint_independent,
         NatType::full_cone},
        {FakeMapping::endpoint_independent, FakeFiltering::address_dependent,
         MappingBehavior::endpoint_independent, FilteringBehavior::address_dependent,
         NatType::address_restricted},
        {FakeMapping::endpoint_independent, FakeFiltering::address_and_port_dependent,
         MappingBehavior::endpoint_independent, FilteringBehavior::address_and_port_dependent,
         NatType::port_restricted},
        {FakeMapping::address_dependent, FakeFiltering::address_and_port_dependent,
         MappingBehavior::address_dependent, FilteringBehavior::address_and_port_dependent,
         NatType::symmetric},
        {FakeMapping::address_and_port_dependent, FakeFiltering::address_and_port_dependent,
         MappingBehavior::address_and_port_dependent,
         FilteringBehavior::address_and_port_dependent, NatType::symmetric},
        {FakeMapping::endpoint_independent, FakeFiltering::ignores_change_request,
         MappingBehavior::endpoint_independent, FilteringBehavior::unknown, NatType::unknown},
    };
    for (const Case& c : cases) {
        const auto r = probe(c.mapping, c.filtering);
        SCOPED_TRACE(std::string(to_string(c.want)));
        EXPECT_EQ(r.classification.mapping, c.want_mapping);
        EXPECT_EQ(r.classification.filtering, c.want_filtering);
        EXPECT_EQ(r.classification.type, c.want);
        EXPECT_EQ(r.reflexive.port, static_cast<std::uint16_t>(r.local.port + 1000));
        // The pretended NAT does not hairpin: nobody listens on 127.0.0.20.
        EXPECT_EQ(r.classification.hairpinning, Hairpinning::not_supported);
    }
}

TEST_F(ProbeTest, NearestIsTheOneThatAnswers) {
    FakeRfc5780Server server(loop, FakeMapping::none, FakeFiltering::endpoint_independent);
    ASSERT_TRUE(server.start());
    // A port nobody listens on: the kernel's ICMP port unreachable is skipped, and the server
    // is reported as a timeout.
    UdpSocket placeholder;
    ASSERT_EQ(placeholder.open(stun::Address::v4(0x7F000001, 0)), "");
    const auto silent = placeholder.local_address();
    placeholder.close();
    ProbeConfig config;
    config.servers.push_back({"silent", silent});
    config.servers.push_back({"fake", server.primary()});
    config.policy.initial_rto = std::chrono::milliseconds(50);
    config.policy.max_duration = std::chrono::milliseconds(300);
    ProbeReport r;
    ASSERT_EQ(run_probe(loop, config, r), "");
    ASSERT_TRUE(r.nearest);
    EXPECT_EQ(*r.nearest, 1u);
    EXPECT_EQ(r.servers[0].result.status, TransactionStatus::timeout);
    EXPECT_GE(r.servers[0].result.sends, 2u);
    EXPECT_EQ(r.servers[1].result.status, TransactionStatus::success);
    EXPECT_EQ(r.classification.type, NatType::none);
}

TEST_F(ProbeTest, Refusals) {
    ProbeReport r;
    EXPECT_NE(run_probe(loop, {}, r).find("no STUN server"), std::string::npos);
    ProbeConfig mixed;
    stun::Address v6;
    ASSERT_EQ(resolve_host_port("[::1]:3478", v6), "");
    mixed.servers.push_back({"a:3478", stun::Address::v4(0x7F000001, 3478)});
    mixed.servers.push_back({"[::1]:3478", v6});
    EXPECT_NE(run_probe(loop, mixed, r).find("one address family"), std::string::npos);
}

}  // namespace
}  // namespace punch
