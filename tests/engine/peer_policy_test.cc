// PeerPolicy: every default range at its edges, the IPv4 addresses that IPv6 transition
// prefixes embed, the order of the configured rules, and the CIDR parser's errors.
#include "engine/peer_policy.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "allocation_count.h"
#include "test_support.h"

namespace {

using engine::Cidr;
using engine::CidrError;
using engine::PeerPolicy;
using engine::PeerVerdict;
using engine::test::address;

struct Case {
    std::string_view peer;
    PeerVerdict expected;
};

Cidr cidr(std::string_view text) {
    Cidr out;
    EXPECT_EQ(engine::parse_cidr(text, out), CidrError::ok) << text;
    return out;
}

void expect_verdicts(const PeerPolicy& policy, const std::vector<Case>& cases) {
    for (const Case& c : cases)
        EXPECT_EQ(engine::to_string(policy.check(address(c.peer))), engine::to_string(c.expected))
            << c.peer;
}

const PeerPolicy defaults_only({}, {}, {});

TEST(PeerPolicy, Ipv4DefaultRangesAtTheirEdges) {
    // Each range: its first and last address, and the addresses just outside it.
    expect_verdicts(defaults_only, {
        {"0.0.0.0", PeerVerdict::unspecified},
        {"0.255.255.255", PeerVerdict::unspecified},
        {"1.0.0.0", PeerVerdict::allowed},
        {"9.255.255.255", PeerVerdict::allowed},
        {"10.0.0.0", PeerVerdict::private_network},
        {"10.255.255.255", PeerVerdict::private_network},
        {"11.0.0.0", PeerVerdict::allowed},
        {"100.63.255.255", PeerVerdict::allowed},
        {"100.64.0.0", PeerVerdict::shared_address_space},
        {"100.127.255.255", PeerVerdict::shared_address_space},
        {"100.128.0.0", PeerVerdict::allowed},
        {"126.255.255.255", PeerVerdict::allowed},
        {"127.0.0.0", PeerVerdict::loopback},
        {"127.255.255.255", PeerVerdict::loopback},
        {"128.0.0.0", PeerVerdict::allowed},
        {"169.253.255.255", PeerVerdict::allowed},
        {"169.254.0.0", PeerVerdict::link_local},
        {"169.254.255.255", PeerVerdict::link_local},
        {"169.255.0.0", PeerVerdict::allowed},
        {"172.15.255.255", PeerVerdict::allowed},
        {"172.16.0.0", PeerVerdict::private_network},
        {"172.31.255.255", PeerVerdict::private_network},
        {"172.32.0.0", PeerVerdict::allowed},
        {"191.255.255.255", PeerVerdict::allowed},
        {"192.0.0.0", PeerVerdict::protocol_assignments},
        {"192.0.0.255", PeerVerdict::protocol_assignments},
        {"192.0.1.0", PeerVerdict::allowed},
        {"192.167.255.255", PeerVerdict::allowed},
        {"192.168.0.0", PeerVerdict::private_network},
        {"192.168.255.255", PeerVerdict::private_network},
        {"192.169.0.0", PeerVerdict::allowed},
        {"198.17.255.255", PeerVerdict::allowed},
        {"198.18.0.0", PeerVerdict::benchmarking},
        {"198.19.255.255", PeerVerdict::benchmarking},
        {"198.20.0.0", PeerVerdict::allowed},
        {"223.255.255.255", PeerVerdict::allowed},
        {"224.0.0.0", PeerVerdict::multicast},
        {"239.255.255.255", PeerVerdict::multicast},
        {"240.0.0.0", PeerVerdict::reserved},
        {"255.255.255.255", PeerVerdict::reserved},
    });
}

TEST(PeerPolicy, Ipv6DefaultRangesAtTheirEdges) {
    expect_verdicts(defaults_only, {
        {"::", PeerVerdict::unspecified},
        {"::1", PeerVerdict::loopback},
        {"::2", PeerVerdict::reserved},
        {"::ffff:ffff", PeerVerdict::reserved},  // last of the IPv4-compatible ::/96
        {"::1:0:0", PeerVerdict::allowed},
        {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::allowed},
        {"fe80::", PeerVerdict::link_local},
        {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::link_local},
        {"fec0::", PeerVerdict::allowed},
        {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::allowed},
        {"fc00::", PeerVerdict::private_network},
        {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::private_network},
        {"fe00::", PeerVerdict::allowed},
        {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::allowed},
        {"ff00::", PeerVerdict::multicast},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::multicast},
        {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::allowed},
        {"2001::", PeerVerdict::teredo},
        {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", PeerVerdict::teredo},
        {"2001:1::", PeerVerdict::allowed},
        {"2606:4700::1111", PeerVerdict::allowed},
    });
}

TEST(PeerPolicy, EmbeddedIpv4AddressesAreJudgedAsIpv4) {
    expect_verdicts(defaults_only, {
        // IPv4-mapped, ::ffff:0:0/96
        {"::ffff:10.0.0.1", PeerVerdict::private_network},
        {"::ffff:127.0.0.1", PeerVerdict::loopback},
        {"::ffff:0.0.0.0", PeerVerdict::unspecified},
        {"::ffff:8.8.8.8", PeerVerdict::allowed},
        // NAT64's well-known prefix, 64:ff9b::/96
        {"64:ff9b::127.0.0.1", PeerVerdict::loopback},
        {"64:ff9b::169.254.169.254", PeerVerdict::link_local},
        {"64:ff9b::1.1.1.1", PeerVerdict::allowed},
        {"64:ff9b:1::10.0.0.1", PeerVerdict::allowed},  // RFC 8215's local-use /48: not ours
        // 6to4, 2002::/16: the IPv4 address is bits 16..47
        {"2002:c0a8:0101::1", PeerVerdict::private_network},
        {"2002:7f00:0001::", PeerVerdict::loopback},
        {"2002:e000:0001::5", PeerVerdict::multicast},
        {"2002:0808:0808::1", PeerVerdict::allowed},
    });
}

TEST(PeerPolicy, PortIsIgnored) {
    stun::Address peer = address("10.0.0.1");
    peer.port = 3478;
    EXPECT_EQ(defaults_only.check(peer), PeerVerdict::private_network);
    peer = address("8.8.8.8");
    peer.port = 0;
    EXPECT_EQ(defaults_only.check(peer), PeerVerdict::allowed);
}

TEST(PeerPolicy, AllowOverridesTheDefaults) {
    const std::vector<Cidr> allow = {cidr("10.1.0.0/16"), cidr("fd00:1::/32"),
                                     cidr("127.0.0.53")};
    const PeerPolicy policy(allow, {}, {});
    expect_verdicts(policy, {
        {"10.1.2.3", PeerVerdict::allowed},
        {"10.1.255.255", PeerVerdict::allowed},
        {"10.2.0.0", PeerVerdict::private_network},
        {"fd00:1::7", PeerVerdict::allowed},
        {"fd00:2::7", PeerVerdict::private_network},
        {"127.0.0.53", PeerVerdict::allowed},
        {"127.0.0.1", PeerVerdict::loopback},
        {"::ffff:10.1.2.3", PeerVerdict::allowed},  // the embedded form too
    });
}

TEST(PeerPolicy, DenyOverridesAllow) {
    const std::vector<Cidr> allow = {cidr("10.0.0.0/8"), cidr("8.8.0.0/16")};
    const std::vector<Cidr> deny = {cidr("10.1.0.0/16"), cidr("8.8.8.0/24"),
                                    cidr("2606:4700::/32")};
    const PeerPolicy policy(allow, deny, {});
    expect_verdicts(policy, {
        {"10.1.2.3", PeerVerdict::denied_by_config},
        {"10.2.2.3", PeerVerdict::allowed},
        {"8.8.8.8", PeerVerdict::denied_by_config},
        {"8.8.4.4", PeerVerdict::allowed},
        {"2606:4700::1111", PeerVerdict::denied_by_config},
        {"2606:4701::1111", PeerVerdict::allowed},
        // A deny reaches the embedded forms, so they cannot be used to get around it.
        {"::ffff:8.8.8.8", PeerVerdict::denied_by_config},
        {"64:ff9b::8.8.8.8", PeerVerdict::denied_by_config},
        {"2002:0808:0808::1", PeerVerdict::denied_by_config},
    });
}

TEST(PeerPolicy, OwnAddressesAreRefusedEvenIfAllowed) {
    const std::vector<Cidr> allow = {cidr("203.0.113.0/24"), cidr("2001:db8::/32")};
    stun::Address own_v4 = address("203.0.113.5");
    own_v4.port = 3478;  // ports play no part
    const std::vector<stun::Address> own = {own_v4, address("2001:db8::5")};
    const PeerPolicy policy(allow, {}, own);
    expect_verdicts(policy, {
        {"203.0.113.5", PeerVerdict::own_address},
        {"203.0.113.6", PeerVerdict::allowed},
        {"2001:db8::5", PeerVerdict::own_address},
        {"2001:db8::6", PeerVerdict::allowed},
        {"::ffff:203.0.113.5", PeerVerdict::own_address},
        {"64:ff9b::203.0.113.5", PeerVerdict::own_address},
        {"2002:cb00:7105::", PeerVerdict::own_address},
    });
    // Own addresses win over a deny as well: the more specific reason.
    const std::vector<Cidr> deny = {cidr("203.0.113.0/24")};
    EXPECT_EQ(PeerPolicy(allow, deny, own).check(address("203.0.113.5")),
              PeerVerdict::own_address);
}

// Rule 3: the relayed addresses are peers (two clients of one server relay to each other),
// exactly and in their own family only; a deny still refuses them, and the server's other
// addresses stay refused.
TEST(PeerPolicy, RelayedAddressesAreAllowedExactlyUnlessDenied) {
    const std::vector<stun::Address> own = {address("10.0.0.2"), address("10.0.0.3"),
                                            address("fd00::2")};
    const std::vector<stun::Address> relayed = {address("10.0.0.2"), address("fd00::2")};
    const PeerPolicy policy({}, {}, own, relayed);
    expect_verdicts(policy, {
        // Inside default-refused ranges (RFC 1918, RFC 4193), allowed all the same.
        {"10.0.0.2", PeerVerdict::relayed_address},
        {"fd00::2", PeerVerdict::relayed_address},
        {"10.0.0.3", PeerVerdict::own_address},
        {"10.0.0.4", PeerVerdict::private_network},
        {"::ffff:10.0.0.2", PeerVerdict::own_address},
        {"64:ff9b::10.0.0.2", PeerVerdict::own_address},
    });
    EXPECT_TRUE(relays_to(PeerVerdict::relayed_address));
    EXPECT_TRUE(relays_to(PeerVerdict::allowed));
    EXPECT_FALSE(relays_to(PeerVerdict::own_address));
    const std::vector<Cidr> deny = {cidr("10.0.0.0/24")};
    EXPECT_EQ(PeerPolicy({}, deny, own, relayed).check(address("10.0.0.2")),
              PeerVerdict::denied_by_config);
}

TEST(PeerPolicy, AllowingADefaultIpv4RangeOpensItsEmbeddedForms) {
    const std::vector<Cidr> allow = {cidr("192.168.7.0/24")};
    const PeerPolicy policy(allow, {}, {});
    expect_verdicts(policy, {
        {"192.168.7.1", PeerVerdict::allowed},
        {"::ffff:192.168.7.1", PeerVerdict::allowed},
        {"64:ff9b::192.168.7.1", PeerVerdict::allowed},
        {"::ffff:192.168.8.1", PeerVerdict::private_network},
    });
}

TEST(AllocationCount, SeesAnAllocation) {
    // Proves the test below can fail.
    const std::size_t before = engine::test::allocations();
    const auto allocated = std::make_unique<int>(1);
    EXPECT_EQ(engine::test::allocations() - before, 1u);
}

TEST(PeerPolicy, CheckDoesNotAllocate) {
    const std::vector<Cidr> allow = {cidr("10.1.0.0/16")};
    const std::vector<Cidr> deny = {cidr("8.8.8.0/24")};
    const std::vector<stun::Address> own = {address("203.0.113.5")};
    const PeerPolicy policy(allow, deny, own);
    const stun::Address peers[] = {address("10.1.2.3"), address("8.8.8.8"),
                                   address("203.0.113.5"), address("::ffff:127.0.0.1"),
                                   address("2606:4700::1111")};
    Cidr parsed;
    const std::size_t before = engine::test::allocations();
    unsigned allowed = 0;
    for (int round = 0; round < 100; ++round) {
        for (const stun::Address& peer : peers)
            allowed += policy.check(peer) == PeerVerdict::allowed ? 1 : 0;
        allowed += engine::parse_cidr("2001:db8::/32", parsed) == CidrError::ok ? 1 : 0;
    }
    EXPECT_EQ(engine::test::allocations() - before, 0u);
    EXPECT_EQ(allowed, 300u);
}

struct ParseCase {
    std::string_view name;
    std::string_view text;
    CidrError expected;
};

TEST(ParseCidr, OneCasePerError) {
    const ParseCase cases[] = {
        {"Ipv4Prefix", "10.0.0.0/8", CidrError::ok},
        {"Ipv6Prefix", "fc00::/7", CidrError::ok},
        {"Everything", "0.0.0.0/0", CidrError::ok},
        {"EverythingIpv6", "::/0", CidrError::ok},
        {"BareIpv4", "192.0.2.1", CidrError::ok},
        {"BareIpv6", "2001:db8::1", CidrError::ok},
        {"Empty", "", CidrError::bad_address},
        {"OnlyPrefix", "/8", CidrError::bad_address},
        {"ThreeOctets", "10.0.0/8", CidrError::bad_address},
        {"Name", "localhost/8", CidrError::bad_address},
        {"SpaceBeforeSlash", "10.0.0.0 /8", CidrError::bad_address},
        {"EmptyPrefix", "10.0.0.0/", CidrError::bad_prefix},
        {"LetterPrefix", "10.0.0.0/x", CidrError::bad_prefix},
        {"SignedPrefix", "10.0.0.0/+8", CidrError::bad_prefix},
        {"NegativePrefix", "10.0.0.0/-1", CidrError::bad_prefix},
        {"TwoSlashes", "10.0.0.0/8/8", CidrError::bad_prefix},
        {"TrailingSpace", "10.0.0.0/8 ", CidrError::bad_prefix},
        {"Ipv4PrefixTooLong", "10.0.0.0/33", CidrError::prefix_too_long},
        {"Ipv6PrefixTooLong", "::/129", CidrError::prefix_too_long},
        {"PrefixThatWouldWrap", "10.0.0.0/18446744073709551648", CidrError::prefix_too_long},
        {"Ipv4HostBits", "10.0.0.1/8", CidrError::host_bits_set},
        {"Ipv4HostBitInLastByte", "192.168.1.1/31", CidrError::host_bits_set},
        {"Ipv6HostBits", "fe80::1/10", CidrError::host_bits_set},
        {"Ipv6HostBitsInSecondWord", "2001:db8::1/64", CidrError::host_bits_set},
    };
    for (const ParseCase& c : cases) {
        Cidr out;
        EXPECT_EQ(engine::to_string(engine::parse_cidr(c.text, out)),
                  engine::to_string(c.expected))
            << c.name << ": \"" << c.text << "\"";
    }
}

TEST(ParseCidr, WritesFamilyPrefixAndNetwork) {
    Cidr out = cidr("172.16.0.0/12");
    EXPECT_EQ(out.family, stun::AddressFamily::ipv4);
    EXPECT_EQ(out.prefix_length, 12);
    EXPECT_EQ(out.network, address("172.16.0.0").ip);
    out = cidr("2001:db8::7");
    EXPECT_EQ(out.family, stun::AddressFamily::ipv6);
    EXPECT_EQ(out.prefix_length, 128);
    EXPECT_EQ(out.network, address("2001:db8::7").ip);
    // Left as it was on an error.
    const Cidr before = out;
    EXPECT_EQ(engine::parse_cidr("10.0.0.1/8", out), CidrError::host_bits_set);
    EXPECT_EQ(out, before);
}

TEST(Cidr, ContainsOnlyItsOwnFamily) {
    const Cidr all_ipv4 = cidr("0.0.0.0/0");
    EXPECT_TRUE(all_ipv4.contains(address("255.255.255.255")));
    EXPECT_FALSE(all_ipv4.contains(address("::")));
    const Cidr host = cidr("198.51.100.7");
    EXPECT_TRUE(host.contains(address("198.51.100.7")));
    EXPECT_FALSE(host.contains(address("198.51.100.6")));
    EXPECT_FALSE(host.contains(address("::ffff:198.51.100.7")));  // the policy embeds, not Cidr
}

TEST(PeerVerdict, NamesAreUniqueAndHaveHelp) {
    std::set<std::string_view> names;
    for (const engine::ReasonInfo& info : engine::peer_verdicts) {
        EXPECT_FALSE(info.name.empty());
        EXPECT_FALSE(info.help.empty()) << info.name;
        EXPECT_TRUE(names.insert(info.name).second) << info.name;
    }
    EXPECT_EQ(engine::to_string(PeerVerdict::private_network), "private_network");
    EXPECT_EQ(engine::to_string(PeerVerdict::own_address), "own_address");
    EXPECT_EQ(engine::to_string(CidrError::host_bits_set), "host_bits_set");
}

}  // namespace
