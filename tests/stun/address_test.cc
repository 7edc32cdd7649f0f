// Tests for stun/address.cc: construction, parsing and formatting of transport addresses.
#include "stun/address.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>

#include "test_support.h"

namespace stun {
namespace {

using test::to_hex;

std::string formatted(const Address& a) {
    std::array<char, 48> out{};
    const std::size_t n = a.format(out);
    EXPECT_LE(n, out.size());
    return std::string(out.data(), n);
}

TEST(Address, V4FromHostOrder) {
    const Address a = Address::v4(0xC0000201, 3478);
    EXPECT_EQ(a.family, AddressFamily::ipv4);
    EXPECT_EQ(a.port, 3478);
    EXPECT_EQ(a.ip_size(), 4u);
    EXPECT_EQ(to_hex(a.ip_bytes()), "c0000201");
    EXPECT_EQ(to_hex(a.ip), "c0000201000000000000000000000000") << "the rest stays zero";
    EXPECT_EQ(formatted(a), "192.0.2.1:3478");
}

TEST(Address, V6FromBytes) {
    const auto bytes = test::hex("20010db8000000000000000000000001");
    const Address a = Address::v6(std::span<const std::byte, 16>(bytes.data(), 16), 3478);
    EXPECT_EQ(a.family, AddressFamily::ipv6);
    EXPECT_EQ(a.ip_size(), 16u);
    EXPECT_EQ(to_hex(a.ip_bytes()), "20010db8000000000000000000000001");
    EXPECT_EQ(formatted(a), "[2001:db8::1]:3478");
}

TEST(Address, Ipv4StringRoundTrip) {
    Address a;
    ASSERT_TRUE(Address::from_string("192.0.2.1", 32853, a));
    EXPECT_EQ(a, Address::v4(0xC0000201, 32853));
    EXPECT_EQ(formatted(a), "192.0.2.1:32853");
    ASSERT_TRUE(Address::from_string("255.255.255.255", 65535, a));
    EXPECT_EQ(formatted(a), "255.255.255.255:65535");
    ASSERT_TRUE(Address::from_string("0.0.0.0", 0, a));
    EXPECT_EQ(formatted(a), "0.0.0.0:0");
}

TEST(Address, Ipv6StringRoundTrip) {
    const std::pair<std::string_view, std::string_view> cases[] = {
        {"2001:db8::1", "[2001:db8::1]:3478"},
        {"2001:db8:1234:5678:11:2233:4455:6677", "[2001:db8:1234:5678:11:2233:4455:6677]:3478"},
        {"::1", "[::1]:3478"},
        {"::", "[::]:3478"},
        {"fe80::1:2", "[fe80::1:2]:3478"},
    };
    for (auto [text, expected] : cases) {
        Address a;
        ASSERT_TRUE(Address::from_string(text, 3478, a)) << text;
        EXPECT_EQ(a.family, AddressFamily::ipv6);
        EXPECT_EQ(formatted(a), expected);
    }
    Address a;
    ASSERT_TRUE(Address::from_string("2001:db8:1234:5678:11:2233:4455:6677", 1, a));
    EXPECT_EQ(to_hex(a.ip_bytes()), "20010db8123456780011223344556677");
}

TEST(Address, LongestIpv6FitsTheBuffer) {
    Address a;
    ASSERT_TRUE(Address::from_string("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535, a));
    const std::string s = formatted(a);
    EXPECT_LE(s.size(), 48u);
    EXPECT_EQ(s.front(), '[');
    EXPECT_NE(s.find("]:65535"), std::string::npos);
    Address back;
    ASSERT_TRUE(Address::from_string(s.substr(1, s.find(']') - 1), 65535, back)) << s;
    EXPECT_EQ(back, a);
}

TEST(Address, NotAnAddress) {
    Address a;
    for (std::string_view text : {"", "hello", "192.0.2", "192.0.2.256", "999.1.1.1",
                                  "192.0.2.1:3478", "2001:db8:::1", "2001:db8::g", "1.2.3.4 "}) {
        EXPECT_FALSE(Address::from_string(text, 1, a)) << '"' << text << '"';
    }
}

TEST(Address, EqualityComparesEverything) {
    EXPECT_EQ(Address::v4(0x7F000001, 1), Address::v4(0x7F000001, 1));
    EXPECT_NE(Address::v4(0x7F000001, 1), Address::v4(0x7F000001, 2));
    EXPECT_NE(Address::v4(0x7F000001, 1), Address::v4(0x7F000002, 1));
}

}  // namespace
}  // namespace stun
