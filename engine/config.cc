// punchlined's configuration: the TOML file read key by key into EngineConfig and validated as a
// whole (style rule 13) before the engine applies any of it.
//
// Every problem is a ConfigError that names the dotted key (`port[0].ipv4[1]`), the line where
// its value stands, and what was expected, so that an operator can fix the file without reading
// this code. Keys the struct does not know are errors too: a typo must not silently leave a
// setting at its default. Start-up code: exceptions are fine here (style rule 12).
#include "engine/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "engine/peer_policy.h"
#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/credentials.h"

namespace engine {
namespace {

[[noreturn]] void fail(const std::string& key, unsigned line, const std::string& what) {
    throw ConfigError(key, line, what);
}

unsigned line_of(const toml::node& node) { return node.source().begin.line; }

std::string child_key(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string element_key(const std::string& array_key, std::size_t index) {
    return array_key + "[" + std::to_string(index) + "]";
}

std::string quoted(std::string_view text) {
    // Long strings are cut: the message is for a terminal, the line number finds the rest.
    constexpr std::size_t shown = 64;
    std::string out = "\"";
    for (const char c : text.substr(0, shown)) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            out += '?';
        } else {
            out += c;
        }
    }
    out += text.size() > shown ? "\"..." : "\"";
    return out;
}

// What the file holds where something else was expected, as the operator wrote it.
std::string describe(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string: return quoted(node.as_string()->get());
        case toml::node_type::integer: return std::to_string(node.as_integer()->get());
        case toml::node_type::boolean: return node.as_boolean()->get() ? "true" : "false";
        case toml::node_type::table: return "a table";
        case toml::node_type::array:
            return node.as_array()->empty() ? "an empty array" : "an array";
        default: {
            // Floating point, dates and times: toml++ prints them as TOML writes them.
            std::ostringstream out;
            node.visit([&out](const auto& value) {
                if constexpr (toml::is_value<decltype(value)>) out << value;
            });
            return out.str();
        }
    }
}

std::string got(const toml::node& node) { return ", got " + describe(node); }

// What a secret (a password, a REST secret) is, without what it says: messages end up in logs.
std::string got_secret(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string: {
            const std::size_t size = node.as_string()->get().size();
            return ", got a string of " + std::to_string(size) + (size == 1 ? " byte" : " bytes");
        }
        case toml::node_type::integer: return ", got an integer";
        case toml::node_type::floating_point: return ", got a floating-point number";
        case toml::node_type::boolean: return ", got a boolean";
        case toml::node_type::table:
        case toml::node_type::array: return got(node);
        default: return ", got a date or time";
    }
}

std::string join(std::initializer_list<std::string_view> words) {
    std::string out;
    for (const std::string_view word : words) {
        if (!out.empty()) out += ", ";
        out += word;
    }
    return out;
}

// Rejects the first key (in file order) of `table` that is not in `known`.
void reject_unknown_keys(const toml::table& table, const std::string& table_key,
                         std::initializer_list<std::string_view> known) {
    const toml::key* first_unknown = nullptr;
    for (const auto& [key, node] : table) {
        if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
        if (first_unknown == nullptr ||
            key.source().begin.line < first_unknown->source().begin.line)
            first_unknown = &key;
    }
    if (first_unknown != nullptr)
        fail(child_key(table_key, first_unknown->str()), first_unknown->source().begin.line,
             "unknown key; known keys here: " + join(known));
}

// An optional sub-table of the root; null when absent.
const toml::table* optional_table(const toml::table& root, std::string_view name) {
    const toml::node* node = root.get(name);
    if (node == nullptr) return nullptr;
    const toml::table* table = node->as_table();
    if (table == nullptr)
        fail(std::string(name), line_of(*node),
             "expected a table [" + std::string(name) + "]" + got(*node));
    return table;
}

std::int64_t read_integer(const toml::node& node, const std::string& key, std::int64_t min,
                          std::int64_t max, std::string_view note = {}) {
    const toml::value<std::int64_t>* value = node.as_integer();
    if (value == nullptr || value->get() < min || value->get() > max)
        fail(key, line_of(node),
             "expected an integer " + std::to_string(min) + ".." + std::to_string(max) +
                 std::string(note) + got(node));
    return value->get();
}

bool read_bool(const toml::node& node, const std::string& key) {
    const toml::value<bool>* value = node.as_boolean();
    if (value == nullptr) fail(key, line_of(node), "expected true or false" + got(node));
    return value->get();
}

const std::string& read_string(const toml::node& node, const std::string& key,
                               std::string_view expected = "expected a string") {
    const toml::value<std::string>* value = node.as_string();
    if (value == nullptr) fail(key, line_of(node), std::string(expected) + got(node));
    return value->get();
}

std::string_view family_name(stun::AddressFamily family) {
    return family == stun::AddressFamily::ipv4 ? "IPv4" : "IPv6";
}

std::string_view family_example(stun::AddressFamily family) {
    return family == stun::AddressFamily::ipv4 ? "198.18.0.2" : "2001:db8::2";
}

stun::Address read_address(const toml::node& node, const std::string& key,
                           stun::AddressFamily family) {
    const std::string expected = "expected an " + std::string(family_name(family)) +
                                 " address like " + std::string(family_example(family));
    const std::string& text = read_string(node, key, expected);
    stun::Address address;
    if (!stun::Address::from_string(text, 0, address))
        fail(key, line_of(node), expected + got(node));
    if (address.family != family)
        fail(key, line_of(node),
             expected + got(node) + " (an " + std::string(family_name(address.family)) +
                 " address)");
    return address;
}

// The mask of byte `index` of an address under a prefix of `prefix_length` bits.
std::byte prefix_mask(std::size_t index, unsigned prefix_length) {
    const std::size_t bits_before = index * 8;
    const std::size_t bits_here =
        prefix_length > bits_before ? std::min<std::size_t>(8, prefix_length - bits_before) : 0;
    return static_cast<std::byte>((0xff00u >> bits_here) & 0xffu);
}

bool same_prefix(const stun::Address& a, const stun::Address& b, unsigned prefix_length) {
    for (std::size_t i = 0; i < a.ip_size(); ++i) {
        const std::byte mask = prefix_mask(i, prefix_length);
        if ((a.ip[i] & mask) != (b.ip[i] & mask)) return false;
    }
    return true;
}

// The network address of `address` under `prefix_length`, as text: "198.18.0.0".
std::string network_text(const stun::Address& address, unsigned prefix_length) {
    std::array<std::byte, 16> network{};
    for (std::size_t i = 0; i < address.ip_size(); ++i)
        network[i] = address.ip[i] & prefix_mask(i, prefix_length);
    char text[INET6_ADDRSTRLEN] = {};
    const int family = address.family == stun::AddressFamily::ipv4 ? AF_INET : AF_INET6;
    if (inet_ntop(family, network.data(), text, sizeof text) == nullptr) return "?";
    return text;
}

// Where an address was read, to name the first owner when a second port claims it.
struct AddressSite {
    stun::Address address;
    std::string key;
    unsigned line;
    std::string text;
};

std::vector<stun::Address> read_address_list(const toml::node& node, const std::string& key,
                                             stun::AddressFamily family,
                                             std::vector<AddressSite>& sites) {
    const std::string example = family == stun::AddressFamily::ipv4
                                    ? R"(["198.18.0.2", "198.18.0.3"])"
                                    : R"(["2001:db8::2", "2001:db8::3"])";
    const std::string expected = "expected an array of 1 or 2 " +
                                 std::string(family_name(family)) +
                                 " addresses (primary, then RFC 5780 alternate), e.g. " + example;
    const toml::array* array = node.as_array();
    if (array == nullptr || array->empty()) fail(key, line_of(node), expected + got(node));
    if (array->size() > 2)
        fail(element_key(key, 2), line_of(*array->get(2)),
             expected + ", got " + std::to_string(array->size()) + " addresses");
    std::vector<stun::Address> addresses;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string this_key = element_key(key, i);
        const stun::Address address = read_address(element, this_key, family);
        // RFC 5780 §6.1: a CHANGE-REQUEST for "change IP" is answered from the alternate
        // address; were it the primary, the client's NAT behaviour tests would learn nothing.
        if (i == 1 && address == addresses[0])
            fail(this_key, line_of(element),
                 "expected an alternate address other than the primary" + got(element));
        addresses.push_back(address);
        sites.push_back({address, this_key, line_of(element), element.as_string()->get()});
    }
    return addresses;
}

std::optional<stun::Address> read_gateway(const toml::table& table, std::string_view name,
                                          const std::string& port_key, stun::AddressFamily family,
                                          const std::vector<stun::Address>& addresses,
                                          unsigned prefix_length) {
    const toml::node* node = table.get(name);
    if (node == nullptr) return std::nullopt;
    const std::string key = child_key(port_key, name);
    const stun::Address gateway = read_address(*node, key, family);
    const std::string list = family == stun::AddressFamily::ipv4 ? "ipv4" : "ipv6";
    const std::string prefix = family == stun::AddressFamily::ipv4 ? "prefix4" : "prefix6";
    if (addresses.empty())
        fail(key, line_of(*node),
             "expected " + list + " addresses on this port too: a gateway must be on-link, "
             "inside the subnet of the port's primary " + list + " address");
    if (std::find(addresses.begin(), addresses.end(), gateway) != addresses.end())
        fail(key, line_of(*node),
             "expected a next hop other than the port's own address" + got(*node));
    // The next hop is resolved by ARP or neighbour discovery on this port's link: it must be
    // inside the subnet of the port's primary address.
    if (!same_prefix(gateway, addresses[0], prefix_length))
        fail(key, line_of(*node),
             "expected an on-link gateway inside " + network_text(addresses[0], prefix_length) +
                 "/" + std::to_string(prefix_length) + " (the primary " + list +
                 " address and " + prefix + ")" + got(*node));
    return gateway;
}

void read_eal(const toml::table& root, EngineConfig& config) {
    const std::string expected =
        R"(expected the EAL arguments, e.g. ["-l", "0-1", "--no-pci", ...])";
    const toml::table* eal = optional_table(root, "eal");
    if (eal == nullptr)
        fail("eal", 0,
             R"(missing; expected an [eal] table with the EAL arguments, e.g. args = ["-l", )"
             R"("0-1", "--no-pci", ...])");
    reject_unknown_keys(*eal, "eal", {"args"});
    const toml::node* args = eal->get("args");
    if (args == nullptr) fail("eal.args", line_of(*eal), "missing; " + expected);
    const toml::array* array = args->as_array();
    if (array == nullptr || array->empty()) fail("eal.args", line_of(*args), expected + got(*args));
    for (std::size_t i = 0; i < array->size(); ++i)
        config.eal_args.push_back(read_string(*array->get(i), element_key("eal.args", i)));
}

void read_engine(const toml::table& root, EngineConfig& config) {
    const toml::table* engine = optional_table(root, "engine");
    if (engine == nullptr) return;
    reject_unknown_keys(*engine, "engine", {"workers", "mbufs", "burst", "steering"});
    if (const toml::node* workers = engine->get("workers")) {
        const toml::array* array = workers->as_array();
        if (array == nullptr || array->empty())
            fail("engine.workers", line_of(*workers),
                 "expected a non-empty array of worker lcore ids, e.g. [1]" + got(*workers));
        config.workers.clear();
        for (std::size_t i = 0; i < array->size(); ++i) {
            const toml::node& element = *array->get(i);
            const std::string key = element_key("engine.workers", i);
            const auto lcore =
                static_cast<unsigned>(read_integer(element, key, 0, 1023, " (an lcore id)"));
            const auto same = std::find(config.workers.begin(), config.workers.end(), lcore);
            if (same != config.workers.end())
                fail(key, line_of(element),
                     "expected distinct lcore ids; " + std::to_string(lcore) + " is also " +
                         element_key("engine.workers",
                                     static_cast<std::size_t>(same - config.workers.begin())));
            config.workers.push_back(lcore);
        }
    }
    if (const toml::node* mbufs = engine->get("mbufs"))
        config.mbufs = static_cast<unsigned>(read_integer(*mbufs, "engine.mbufs", 1023, 1048575));
    if (const toml::node* burst = engine->get("burst"))
        config.burst = static_cast<unsigned>(read_integer(*burst, "engine.burst", 1, 512));
    if (const toml::node* steering = engine->get("steering")) {
        const std::string expected = "expected \"auto\" or \"software\"";
        const std::string& text = read_string(*steering, "engine.steering", expected);
        if (text == "auto") {
            config.steering = Steering::automatic;
        } else if (text == "software") {
            config.steering = Steering::software;
        } else {
            fail("engine.steering", line_of(*steering), expected + got(*steering));
        }
    }
}

void read_stun(const toml::table& root, EngineConfig& config) {
    const toml::table* stun = optional_table(root, "stun");
    if (stun == nullptr) return;
    StunConfig& out = config.stun;
    reject_unknown_keys(*stun, "stun", {"enabled", "port", "alternate_port", "software"});
    if (const toml::node* enabled = stun->get("enabled"))
        out.enabled = read_bool(*enabled, "stun.enabled");
    if (const toml::node* port = stun->get("port"))
        out.port = static_cast<std::uint16_t>(read_integer(*port, "stun.port", 1, 65535));
    const toml::node* alternate = stun->get("alternate_port");
    if (alternate != nullptr)
        out.alternate_port = static_cast<std::uint16_t>(
            read_integer(*alternate, "stun.alternate_port", 0, 65535, " (0: no alternate port)"));
    if (out.alternate_port != 0 && out.alternate_port == out.port)
        fail("stun.alternate_port", alternate != nullptr ? line_of(*alternate) : line_of(*stun),
             "expected 0 or a port other than stun.port (" + std::to_string(out.port) +
                 "), got " + (alternate != nullptr ? "" : "the default ") +
                 std::to_string(out.alternate_port));
    if (const toml::node* software = stun->get("software")) {
        const std::string& text = read_string(*software, "stun.software");
        // RFC 8489 §14.14: SOFTWARE "MUST be a UTF-8-encoded sequence of fewer than 128
        // characters (which can be as long as 509 when encoding them ...)".
        const std::size_t limit = stun::text_send_limit(stun::attr::software);
        if (text.size() > limit)
            fail("stun.software", line_of(*software),
                 "expected a string of at most " + std::to_string(limit) +
                     " bytes (RFC 8489 §14.14), got " + std::to_string(text.size()) + " bytes");
        out.software = text;
    }
}

void read_neighbour(const toml::table& root, EngineConfig& config) {
    const toml::table* table = optional_table(root, "neighbour");
    if (table == nullptr) return;
    NeighbourConfig& out = config.neighbour;
    reject_unknown_keys(*table, "neighbour",
                        {"reachable_ms", "retransmit_ms", "max_probes", "failed_retry_ms",
                         "capacity"});
    auto read = [&](std::string_view name, std::uint32_t& value, std::int64_t min,
                    std::int64_t max, std::string_view note = {}) {
        if (const toml::node* node = table->get(name))
            value = static_cast<std::uint32_t>(
                read_integer(*node, child_key("neighbour", name), min, max, note));
    };
    read("reachable_ms", out.reachable_ms, 100, 3600000, " (milliseconds)");
    read("retransmit_ms", out.retransmit_ms, 100, 60000, " (milliseconds)");
    read("max_probes", out.max_probes, 1, 20);
    read("failed_retry_ms", out.failed_retry_ms, 100, 3600000, " (milliseconds)");
    // Two: a port's gateway4 and gateway6 always have their entries.
    read("capacity", out.capacity, 2, 4096, " (entries per port, the gateways included)");
}

const toml::array& read_array(const toml::node& node, const std::string& key,
                              const std::string& expected) {
    const toml::array* array = node.as_array();
    if (array == nullptr) fail(key, line_of(node), expected + got(node));
    return *array;
}

// RFC 8489 §14.9: REALM "MUST be a UTF-8-encoded sequence of fewer than 128 characters (which
// can be as long as 509 bytes when encoding them ...) and MUST have been processed using the
// OpaqueString profile"; its text is RFC 3261's realm-value without the quotes, "a sequence of
// qdtext or quoted-pair":
//   qdtext      = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
//   quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
// A CR or LF (LWS's line folding) is refused; SASLprep refuses control characters anyway.
void check_realm(const std::string& realm, const toml::node& node) {
    const std::string key = "relay.realm";
    if (realm.empty()) fail(key, line_of(node), "expected a non-empty realm" + got(node));
    const std::size_t characters = static_cast<std::size_t>(
        std::count_if(realm.begin(), realm.end(),
                      [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
    // 127 characters of UTF-8 take 508 bytes at most: within text_send_limit(attr::realm).
    if (characters >= 128)
        fail(key, line_of(node),
             "expected fewer than 128 characters (RFC 8489 §14.9), got " +
                 std::to_string(characters) + " characters");
    for (std::size_t i = 0; i < realm.size(); ++i) {
        const auto c = static_cast<unsigned char>(realm[i]);
        const auto next = i + 1 < realm.size() ? static_cast<unsigned char>(realm[i + 1]) : 0;
        const bool quoted_pair = c == '\\' && i + 1 < realm.size() && next != '\r' &&
                                 next != '\n' && next < 0x80;
        if (quoted_pair) {
            ++i;
        } else if (c == '"' || c == '\\' || c == '\r' || c == '\n') {
            fail(key, line_of(node),
                 "expected qdtext or quoted-pair (RFC 8489 §14.9): a quote or a backslash "
                 "only escaped by a backslash, no line breaks" + got(node));
        }
    }
    std::array<char, 513> buffer{};
    std::string_view prepared;
    const stun::CredentialError error = stun::saslprep(realm, buffer, prepared);
    if (error != stun::CredentialError::ok || prepared != realm)
        fail(key, line_of(node),
             "expected a realm that SASLprep (RFC 4013) leaves as it is (RFC 8489 §14.9: "
             "processed with OpaqueString)" + got(node) +
             (error != stun::CredentialError::ok
                  ? " (" + std::string(stun::to_string(error)) + ")"
                  : " (prepared: " + quoted(prepared) + ")"));
}

// "first-last": two numbers of 1 to 5 digits, no sign, no spaces.
bool parse_port_range(std::string_view text, unsigned& first, unsigned& last) {
    auto parse = [](std::string_view digits, unsigned& out) {
        const char* end = digits.data() + digits.size();
        // from_chars takes no sign for an unsigned type.
        return !digits.empty() && digits.size() <= 5 &&
               std::from_chars(digits.data(), end, out).ptr == end;
    };
    const std::size_t dash = text.find('-');
    return dash != std::string_view::npos && parse(text.substr(0, dash), first) &&
           parse(text.substr(dash + 1), last);
}

void read_relay_ports(const toml::node& node, RelayConfig& out) {
    const std::string key = "relay.ports";
    const std::string expected =
        R"(expected a port range like "49152-65535" (first-last, inclusive))";
    const std::string& text = read_string(node, key, expected);
    unsigned first = 0;
    unsigned last = 0;
    if (!parse_port_range(text, first, last)) fail(key, line_of(node), expected + got(node));
    // Below 1024 are the system ports (RFC 6335 §6): other services' listeners, not relays.
    if (first < 1024 || last > 65535)
        fail(key, line_of(node),
             "expected ports 1024..65535 (below 1024: system ports)" + got(node));
    if (first > last)
        fail(key, line_of(node), "expected the first port no higher than the last" + got(node));
    out.port_first = static_cast<std::uint16_t>(first);
    out.port_last = static_cast<std::uint16_t>(last);
}

// Long-term credentials: `users = [{ name = "alice", password = "..." }]` or [[relay.users]].
void read_relay_users(const toml::node& node, RelayConfig& out) {
    const std::string expected =
        R"(expected an array of user tables, e.g. [{ name = "alice", password = "..." }])";
    const toml::array& array = read_array(node, "relay.users", expected);
    std::vector<unsigned> name_lines;
    for (std::size_t i = 0; i < array.size(); ++i) {
        const toml::node& element = *array.get(i);
        const std::string key = element_key("relay.users", i);
        const toml::table* table = element.as_table();
        if (table == nullptr) fail(key, line_of(element), expected + got(element));
        reject_unknown_keys(*table, key, {"name", "password"});

        const std::string name_key = child_key(key, "name");
        const toml::node* name = table->get("name");
        if (name == nullptr)
            fail(name_key, line_of(*table), "missing; expected the user's name, e.g. \"alice\"");
        const std::string& written = read_string(*name, name_key);
        // RFC 8489 §14.3: USERNAME is processed with OpaqueString (here SASLprep, as the
        // credential keys are: stun/credentials.h) and "MUST contain ... fewer than 509 bytes".
        std::array<char, 513> buffer{};
        std::string_view prepared;
        const stun::CredentialError name_error = stun::saslprep(written, buffer, prepared);
        if (name_error == stun::CredentialError::prohibited_character)
            fail(name_key, line_of(*name),
                 "expected a name SASLprep (RFC 4013) accepts" + got(*name) + " (" +
                     std::string(stun::to_string(name_error)) + ")");
        const std::size_t name_limit = stun::text_send_limit(stun::attr::username);
        if (name_error != stun::CredentialError::ok || prepared.size() > name_limit)
            fail(name_key, line_of(*name),
                 "expected a name of at most " + std::to_string(name_limit) +
                     " bytes after SASLprep (RFC 8489 §14.3), got " +
                     (name_error == stun::CredentialError::ok
                          ? std::to_string(prepared.size()) + " bytes"
                          : "more than 512 bytes"));
        if (prepared.empty())
            fail(name_key, line_of(*name),
                 "expected a non-empty name after SASLprep" + got(*name));
        RelayUser relay_user{std::string(prepared), {}};
        for (std::size_t other = 0; other < out.users.size(); ++other)
            if (out.users[other].name == relay_user.name)
                fail(name_key, line_of(*name),
                     "expected a name no other user has; " +
                         child_key(element_key("relay.users", other), "name") + " (line " +
                         std::to_string(name_lines[other]) + ") is also " +
                         quoted(relay_user.name) +
                         (relay_user.name != written ? " after SASLprep" : ""));

        const std::string password_key = child_key(key, "password");
        const std::string user = " of user " + quoted(relay_user.name);
        const toml::node* password = table->get("password");
        if (password == nullptr)
            fail(password_key, line_of(*table), "missing; expected the password" + user);
        const toml::value<std::string>* text = password->as_string();
        if (text == nullptr || text->get().empty())
            fail(password_key, line_of(*password),
                 "expected a non-empty password" + user + got_secret(*password));
        // RFC 8489 §9.2.2: the key is made from OpaqueString(password); one SASLprep refuses
        // would let no client in, and the operator would learn it only from 401s.
        const stun::CredentialError password_error =
            stun::saslprep(text->get(), buffer, prepared);
        if (password_error != stun::CredentialError::ok)
            fail(password_key, line_of(*password),
                 "expected a password" + user + " that SASLprep (RFC 4013) accepts" +
                     got_secret(*password) + " (" + std::string(stun::to_string(password_error)) +
                     ")");
        relay_user.password = text->get();
        out.users.push_back(std::move(relay_user));
        name_lines.push_back(line_of(*name));
    }
}

// Shared secrets (TURN REST's relay.rest_secrets, HMAC-SHA1 keys, stun/rest.h; the SFU's
// sfu.token_secrets, HMAC-SHA256 keys, stun/sfu_token.h): used as bytes, never prepared.
void read_secrets(const toml::node& node, const std::string& array_key,
                  std::vector<std::string>& out) {
    // Every client holds a username and the password HMAC(secret, username) made from it:
    // enough to search for the secret offline, so a short one is soon found. 16 bytes is the
    // floor (RFC 2104 §3 would have 20, SHA-1's output).
    constexpr std::size_t shortest = 16;
    const toml::array* array = node.as_array();
    if (array == nullptr)
        fail(array_key, line_of(node),
             R"(expected an array of secrets, e.g. ["<16 bytes or more>"])" + got_secret(node));
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string key = element_key(array_key, i);
        const toml::value<std::string>* secret = element.as_string();
        if (secret == nullptr || secret->get().size() < shortest)
            fail(key, line_of(element),
                 "expected a secret of at least " + std::to_string(shortest) + " bytes" +
                     got_secret(element));
        const auto same = std::find(out.begin(), out.end(), secret->get());
        if (same != out.end())
            fail(key, line_of(element),
                 "expected distinct secrets; this one is also " +
                     element_key(array_key, static_cast<std::size_t>(same - out.begin())));
        out.push_back(secret->get());
    }
}

std::vector<Cidr> read_peer_list(const toml::node& node, const std::string& key) {
    const std::string expected =
        R"(expected an address or a prefix like "10.0.0.0/8" or "fc00::/7")";
    const toml::array& array =
        read_array(node, key, R"(expected an array of prefixes, e.g. ["10.1.2.0/24"])");
    std::vector<Cidr> list;
    for (std::size_t i = 0; i < array.size(); ++i) {
        const toml::node& element = *array.get(i);
        const std::string this_key = element_key(key, i);
        const std::string& text = read_string(element, this_key, expected);
        Cidr cidr;
        const CidrError error = parse_cidr(text, cidr);
        if (error != CidrError::ok)
            fail(this_key, line_of(element),
                 expected + got(element) + " (" + std::string(to_string(error)) + ")");
        list.push_back(cidr);
    }
    return list;
}

// "198.51.100.20:3478" or "[2001:db8::20]:3478": RFC 8489 §14.15's ALTERNATE-SERVER is an
// address and a port, and a client tries exactly that transport address.
stun::Address read_alternate_server(const toml::node& node) {
    const std::string key = "relay.alternate_server";
    const std::string expected =
        R"(expected another relay's IP:port, e.g. "198.51.100.20:3478" or "[2001:db8::20]:3478")";
    const std::string& text = read_string(node, key, expected);
    std::string_view ip = text;
    std::string_view port;
    if (ip.starts_with('[')) {
        const std::size_t close = ip.find("]:");
        if (close == std::string_view::npos) fail(key, line_of(node), expected + got(node));
        port = ip.substr(close + 2);
        ip = ip.substr(1, close - 1);
    } else {
        const std::size_t colon = ip.find(':');
        if (colon == std::string_view::npos || ip.find(':', colon + 1) != std::string_view::npos)
            fail(key, line_of(node), expected + got(node));
        port = ip.substr(colon + 1);
        ip = ip.substr(0, colon);
    }
    unsigned number = 0;
    const char* end = port.data() + port.size();
    stun::Address address;
    if (port.empty() || port.size() > 5 || std::from_chars(port.data(), end, number).ptr != end ||
        number == 0 || number > 65535 ||
        !stun::Address::from_string(ip, static_cast<std::uint16_t>(number), address) ||
        (text.starts_with('[') && address.family != stun::AddressFamily::ipv6))
        fail(key, line_of(node), expected + got(node));
    return address;
}

// The checks against the rest of the file, for an enabled relay only: a disabled section
// must never stop the engine.
void check_relay(const toml::table& table, const EngineConfig& config) {
    const RelayConfig& relay = config.relay;
    const toml::node* ports = table.get("ports");
    const std::string range =
        std::to_string(relay.port_first) + "-" + std::to_string(relay.port_last);
    const unsigned ports_line = ports != nullptr ? line_of(*ports) : line_of(table);
    const std::string got_ports =
        ports != nullptr ? got(*ports) : ", got the default " + quoted(range);
    // A datagram to stun.port or stun.alternate_port is the listener's: a relay port there
    // would never see its peers' packets.
    auto refuse_service_port = [&](std::string_view name, std::uint16_t port) {
        if (port != 0 && port >= relay.port_first && port <= relay.port_last)
            fail("relay.ports", ports_line,
                 "expected a range without " + std::string(name) + " (" + std::to_string(port) +
                     ")" + got_ports);
    };
    refuse_service_port("stun.port", config.stun.port);
    refuse_service_port("stun.alternate_port", config.stun.alternate_port);
    // Relay ports are shared out among the workers, and a relay port's owner core is the one
    // its number encodes (design.md §3): each worker needs one at least.
    const std::size_t port_count = std::size_t{relay.port_last} - relay.port_first + 1;
    if (port_count < config.workers.size())
        fail("relay.ports", ports_line,
             "expected at least one port per worker (" + std::to_string(config.workers.size()) +
                 " in engine.workers)" + got_ports + " (" + std::to_string(port_count) +
                 (port_count == 1 ? " port)" : " ports)"));
    if (relay.users.empty() && relay.rest_secrets.empty())
        fail("relay.enabled", line_of(*table.get("enabled")),
             "expected users or rest_secrets too: a relay without credentials lets no one "
             R"(allocate; add users = [{ name = "alice", password = "..." }] or )"
             R"(rest_secrets = ["<16 bytes or more>"])");
}

void read_relay(const toml::table& root, EngineConfig& config) {
    const toml::table* table = optional_table(root, "relay");
    if (table == nullptr) return;
    RelayConfig& out = config.relay;
    reject_unknown_keys(
        *table, "relay",
        {"enabled", "realm", "ports", "users", "rest_secrets", "nonce_lifetime_s",
         "allocation_lifetime_max_s", "max_allocations", "max_allocations_per_user",
         "max_permissions_per_allocation", "max_channels_per_allocation", "peer_entries",
         "reservations",
         "bandwidth_bytes_per_s", "bandwidth_burst_bytes", "unauthenticated_requests_per_s",
         "unauthenticated_burst", "peer_allow", "peer_deny", "alternate_server"});
    if (const toml::node* enabled = table->get("enabled"))
        out.enabled = read_bool(*enabled, "relay.enabled");
    if (const toml::node* realm = table->get("realm")) {
        out.realm = read_string(*realm, "relay.realm");
        check_realm(out.realm, *realm);
    }
    if (const toml::node* ports = table->get("ports")) read_relay_ports(*ports, out);
    if (const toml::node* users = table->get("users")) read_relay_users(*users, out);
    if (const toml::node* secrets = table->get("rest_secrets")) read_secrets(*secrets, "relay.rest_secrets", out.rest_secrets);

    auto read = [&]<typename T>(std::string_view name, T& value, std::int64_t min,
                                std::int64_t max, std::string_view note = {}) {
        if (const toml::node* node = table->get(name))
            value = static_cast<T>(read_integer(*node, child_key("relay", name), min, max, note));
    };
    read("nonce_lifetime_s", out.nonce_lifetime_s, 5, 86400, " (seconds)");
    // RFC 8656 §7.2: a client that asks for less than the default lifetime gets the default,
    // so a cap below it could not be kept.
    read("allocation_lifetime_max_s", out.allocation_lifetime_max_s,
         RelayConfig::default_allocation_lifetime_s, 86400,
         " (seconds; not below RFC 8656 §7.2's default lifetime, 600)");
    read("max_allocations", out.max_allocations, 1, 1048576);
    read("max_allocations_per_user", out.max_allocations_per_user, 1, 1048576);
    read("max_permissions_per_allocation", out.max_permissions_per_allocation, 1, 4096);
    read("max_channels_per_allocation", out.max_channels_per_allocation, 1, 4096,
         " (RFC 8656 §12: channel numbers 0x4000-0x4FFF)");
    read("peer_entries", out.peer_entries, 1, 67108864,
         " (permissions and channels of all allocations: one entry per peer)");
    read("reservations", out.reservations, 1, 1048576, " (EVEN-PORT reservations at once)");
    if (const toml::node* reservations = table->get("reservations");
        reservations != nullptr && out.reservations > out.max_allocations)
        fail("relay.reservations", line_of(*reservations),
             "expected at most relay.max_allocations (" + std::to_string(out.max_allocations) +
                 ")" + got(*reservations));
    // Token buckets (engine/rate_limit.h): RateLimit::make() needs burst × the clock's ticks
    // per second to fit 64 bits; bursts of 10^9 keep that so up to an 18 GHz clock.
    constexpr std::int64_t largest_bucket = 1000000000;
    read("bandwidth_bytes_per_s", out.bandwidth_bytes_per_s, 0, largest_bucket,
         " (bytes per second; 0: unlimited)");
    const toml::node* burst = table->get("bandwidth_burst_bytes");
    // A bucket must hold the largest packet, or that packet never passes (TokenBucket::take).
    constexpr std::int64_t largest_packet = 1500;
    read("bandwidth_burst_bytes", out.bandwidth_burst_bytes, largest_packet, largest_bucket,
         " (bytes, at least one full-size packet)");
    if (burst != nullptr && out.bandwidth_bytes_per_s == 0)
        fail("relay.bandwidth_burst_bytes", line_of(*burst),
             "expected relay.bandwidth_bytes_per_s too: without a bandwidth there is no bucket "
             "to size");
    if (burst == nullptr) out.bandwidth_burst_bytes = out.bandwidth_bytes_per_s;
    if (burst == nullptr && out.bandwidth_bytes_per_s != 0 &&
        out.bandwidth_burst_bytes < largest_packet)
        fail("relay.bandwidth_burst_bytes", line_of(*table),
             "expected at least " + std::to_string(largest_packet) +
                 " bytes (one full-size packet), got the default " +
                 std::to_string(out.bandwidth_burst_bytes) +
                 " (one second of relay.bandwidth_bytes_per_s)");
    read("unauthenticated_requests_per_s", out.unauthenticated_requests_per_s, 1, 1000000,
         " (requests per second)");
    read("unauthenticated_burst", out.unauthenticated_burst, 1, 1000000, " (requests)");

    if (const toml::node* allow = table->get("peer_allow"))
        out.peer_allow = read_peer_list(*allow, "relay.peer_allow");
    if (const toml::node* deny = table->get("peer_deny"))
        out.peer_deny = read_peer_list(*deny, "relay.peer_deny");
    if (const toml::node* alternate = table->get("alternate_server"))
        out.alternate_server = read_alternate_server(*alternate);
    if (out.enabled) check_relay(*table, config);
}

// The SFU role (SfuConfig, docs/sfu.md). On when token_secrets is set; the checks against the
// other listeners apply only then, so that a section without secrets never stops the engine.
void read_sfu(const toml::table& root, EngineConfig& config) {
    const toml::table* table = optional_table(root, "sfu");
    if (table == nullptr) return;
    SfuConfig& out = config.sfu;
    reject_unknown_keys(*table, "sfu",
                        {"port", "token_secrets", "max_legs", "max_legs_per_session",
                         "leg_timeout_s", "unauthenticated_requests_per_s",
                         "unauthenticated_burst"});
    auto read = [&]<typename T>(std::string_view name, T& value, std::int64_t min,
                                std::int64_t max, std::string_view note = {}) {
        if (const toml::node* node = table->get(name))
            value = static_cast<T>(read_integer(*node, child_key("sfu", name), min, max, note));
    };
    read("port", out.port, 1, 65535);
    if (const toml::node* secrets = table->get("token_secrets"))
        read_secrets(*secrets, "sfu.token_secrets", out.token_secrets);
    read("max_legs", out.max_legs, 1, 1048576, " (legs per worker)");
    // A session of one leg forwards to nobody: 2 is a 1:1 call.
    read("max_legs_per_session", out.max_legs_per_session, 2, 1024, " (2 for a 1:1 call)");
    read("leg_timeout_s", out.leg_timeout_s, 1, 3600, " (seconds)");
    read("unauthenticated_requests_per_s", out.unauthenticated_requests_per_s, 1, 1000000,
         " (requests per second)");
    read("unauthenticated_burst", out.unauthenticated_burst, 1, 1000000, " (requests)");
    if (!out.enabled()) return;
    // A datagram to a STUN port is the STUN role's, to a relay port the relay's: the SFU port
    // must be neither, or its participants' packets would never reach it.
    const toml::node* port = table->get("port");
    const unsigned port_line = port != nullptr ? line_of(*port) : line_of(*table);
    const std::string got_port = port != nullptr ? got(*port)
                                                 : ", got the default " + std::to_string(out.port);
    auto refuse = [&](std::string_view name, bool clash) {
        if (clash)
            fail("sfu.port", port_line,
                 "expected a port other than " + std::string(name) + got_port);
    };
    refuse("stun.port (" + std::to_string(config.stun.port) + ")",
           config.stun.enabled && out.port == config.stun.port);
    refuse("stun.alternate_port (" + std::to_string(config.stun.alternate_port) + ")",
           config.stun.enabled && config.stun.alternate_port != 0 &&
               out.port == config.stun.alternate_port);
    refuse("the relay ports (relay.ports " + std::to_string(config.relay.port_first) + "-" +
               std::to_string(config.relay.port_last) + ")",
           config.relay.enabled && out.port >= config.relay.port_first &&
               out.port <= config.relay.port_last);
}

// The management socket (ControlConfig). The group is only checked for its spelling here: the
// engine resolves it at start-up, where the system's group database is.
void read_control(const toml::table& root, EngineConfig& config) {
    const toml::table* table = optional_table(root, "control");
    if (table == nullptr) return;
    ControlConfig& out = config.control;
    reject_unknown_keys(*table, "control", {"socket", "group"});
    if (const toml::node* socket = table->get("socket")) {
        const std::string expected =
            "expected an absolute path of at most 107 bytes, e.g. \"" +
            std::string(ControlConfig::default_socket) + "\"";
        const std::string& path = read_string(*socket, "control.socket", expected);
        // sockaddr_un::sun_path holds 108 bytes with the terminating NUL.
        if (path.size() < 2 || path.front() != '/' || path.back() == '/' || path.size() > 107 ||
            path.find('\0') != std::string::npos)
            fail("control.socket", line_of(*socket),
                 expected + got(*socket) +
                     (path.size() > 107 ? " (" + std::to_string(path.size()) + " bytes)" : ""));
        out.socket = path;
    }
    if (const toml::node* group = table->get("group")) {
        const std::string expected =
            "expected a group name (letters, digits, '.', '_', '-'; at most 32 bytes; not "
            "starting with '-'), e.g. \"punchline\"";
        const std::string& name = read_string(*group, "control.group", expected);
        const bool spelled = !name.empty() && name.size() <= 32 && name.front() != '-' &&
                             std::all_of(name.begin(), name.end(), [](char c) {
                                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                        (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                                        c == '-';
                             });
        if (!spelled) fail("control.group", line_of(*group), expected + got(*group));
        out.group = name;
    }
}

// The Prometheus endpoint (MetricsConfig): "IP:PORT" or "[IPv6]:PORT", a literal address (no
// host name: the engine resolves nothing at start-up).
void read_metrics(const toml::table& root, EngineConfig& config) {
    const toml::table* table = optional_table(root, "metrics");
    if (table == nullptr) return;
    reject_unknown_keys(*table, "metrics", {"listen"});
    const toml::node* listen = table->get("listen");
    if (listen == nullptr) return;
    const std::string expected = "expected an address and a port (0..65535), \"127.0.0.1:" +
                                 std::to_string(MetricsConfig::default_port) + "\" or \"[::1]:" +
                                 std::to_string(MetricsConfig::default_port) + "\"";
    const std::string_view text = read_string(*listen, "metrics.listen", expected);
    std::string_view ip;
    std::string_view port;
    if (text.starts_with('[')) {
        const std::size_t close = text.find("]:");
        if (close != std::string_view::npos) {
            ip = text.substr(1, close - 1);
            port = text.substr(close + 2);
        }
    } else if (const std::size_t colon = text.find(':');
               colon != std::string_view::npos && colon == text.rfind(':')) {
        ip = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned number = 0;
    stun::Address address;
    const bool port_ok = !port.empty() && port.size() <= 5 &&
                         std::from_chars(port.data(), port.data() + port.size(), number).ptr ==
                             port.data() + port.size() &&
                         number <= 65535;
    if (!port_ok || !stun::Address::from_string(ip, static_cast<std::uint16_t>(number), address))
        fail("metrics.listen", line_of(*listen), expected + got(*listen));
    // "[198.18.0.2]:9641": brackets are for IPv6 (RFC 3986 §3.2.2).
    if (text.starts_with('[') != (address.family == stun::AddressFamily::ipv6))
        fail("metrics.listen", line_of(*listen),
             expected + got(*listen) + " (brackets around an IPv6 address only)");
    config.metrics.listen = address;
}

void read_log(const toml::table& root, EngineConfig& config) {
    const toml::table* table = optional_table(root, "log");
    if (table == nullptr) return;
    reject_unknown_keys(*table, "log", {"level", "target"});
    if (const toml::node* level = table->get("level")) {
        const std::string expected = "expected one of error, warn, info, debug";
        const std::string& text = read_string(*level, "log.level", expected);
        if (text == "error") {
            config.log.level = LogLevel::error;
        } else if (text == "warn") {
            config.log.level = LogLevel::warn;
        } else if (text == "info") {
            config.log.level = LogLevel::info;
        } else if (text == "debug") {
            config.log.level = LogLevel::debug;
        } else {
            fail("log.level", line_of(*level), expected + got(*level));
        }
    }
    if (const toml::node* target = table->get("target")) {
        const std::string expected = "expected one of stderr, syslog";
        const std::string& text = read_string(*target, "log.target", expected);
        if (text == "stderr") {
            config.log.target = LogTarget::stderr_stream;
        } else if (text == "syslog") {
            config.log.target = LogTarget::syslog;
        } else {
            fail("log.target", line_of(*target), expected + got(*target));
        }
    }
}

PortConfig read_port(const toml::table& table, const std::string& key,
                     std::vector<AddressSite>& sites) {
    PortConfig port;
    reject_unknown_keys(
        table, key,
        {"device", "ipv4", "ipv6", "gateway4", "prefix4", "gateway6", "prefix6", "rx_checksum"});
    const std::string device_expected =
        R"(expected the EAL device name, e.g. "net_tap0" or "0000:03:00.0")";
    const toml::node* device = table.get("device");
    if (device == nullptr)
        fail(child_key(key, "device"), line_of(table), "missing; " + device_expected);
    port.device = read_string(*device, child_key(key, "device"), device_expected);
    if (port.device.empty())
        fail(child_key(key, "device"), line_of(*device), device_expected + got(*device));

    if (const toml::node* prefix = table.get("prefix4"))
        port.prefix4 =
            static_cast<std::uint8_t>(read_integer(*prefix, child_key(key, "prefix4"), 1, 32));
    if (const toml::node* prefix = table.get("prefix6"))
        port.prefix6 =
            static_cast<std::uint8_t>(read_integer(*prefix, child_key(key, "prefix6"), 1, 128));
    if (const toml::node* list = table.get("ipv4"))
        port.ipv4 =
            read_address_list(*list, child_key(key, "ipv4"), stun::AddressFamily::ipv4, sites);
    if (const toml::node* list = table.get("ipv6"))
        port.ipv6 =
            read_address_list(*list, child_key(key, "ipv6"), stun::AddressFamily::ipv6, sites);
    if (port.ipv4.empty() && port.ipv6.empty())
        fail(key, line_of(table),
             "missing addresses; expected "
             R"(ipv4 = ["198.18.0.2"] or ipv6 = ["2001:db8::2"] or both)");
    port.gateway4 = read_gateway(table, "gateway4", key, stun::AddressFamily::ipv4, port.ipv4,
                                 port.prefix4);
    port.gateway6 = read_gateway(table, "gateway6", key, stun::AddressFamily::ipv6, port.ipv6,
                                 port.prefix6);

    if (const toml::node* checksum = table.get("rx_checksum")) {
        const std::string expected = "expected one of verify, trust";
        const std::string& text = read_string(*checksum, child_key(key, "rx_checksum"), expected);
        if (text == "verify") {
            port.rx_checksum = RxChecksum::verify;
        } else if (text == "trust") {
            port.rx_checksum = RxChecksum::trust;
        } else {
            fail(child_key(key, "rx_checksum"), line_of(*checksum), expected + got(*checksum));
        }
    }
    return port;
}

void read_ports(const toml::table& root, EngineConfig& config) {
    const std::string expected = "expected at least one [[port]] table with a device and its "
                                 "ipv4 or ipv6 addresses";
    const toml::node* node = root.get("port");
    if (node == nullptr) fail("port", 0, "missing; " + expected);
    const toml::array* array = node->as_array();
    if (array == nullptr)
        fail("port", line_of(*node),
             "expected [[port]] tables (double brackets: one per port)" + got(*node));
    if (array->empty()) fail("port", line_of(*node), expected + got(*node));

    std::vector<AddressSite> sites;
    std::vector<std::pair<std::string, std::string>> devices;  // device, the key that has it
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string key = element_key("port", i);
        const toml::table* table = element.as_table();
        if (table == nullptr)
            fail(key, line_of(element), "expected a [[port]] table" + got(element));
        const std::size_t first_site = sites.size();
        PortConfig port = read_port(*table, key, sites);

        for (const auto& [device, other] : devices)
            if (device == port.device)
                fail(child_key(key, "device"), line_of(*table->get("device")),
                     "expected a device no other port uses; " + other + " is also " +
                         quoted(device));
        devices.emplace_back(port.device, child_key(key, "device"));
        // An address answers on one port only: two would both answer ARP and neighbour
        // solicitations for it, and replies could leave by either.
        for (std::size_t s = first_site; s < sites.size(); ++s)
            for (std::size_t earlier = 0; earlier < first_site; ++earlier)
                if (sites[earlier].address == sites[s].address)
                    fail(sites[s].key, sites[s].line,
                         "expected an address no other port has; " + quoted(sites[s].text) +
                             " is also " + sites[earlier].key + " (line " +
                             std::to_string(sites[earlier].line) + ")");
        config.ports.push_back(std::move(port));
    }
}

bool is_bare_key_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

std::string_view trimmed(std::string_view text) {
    const std::size_t first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// A dotted name made of bare keys ("stun", "port . x" as "port.x"), or "" when `text` is
// something else (quoted keys included).
std::string bare_dotted_name(std::string_view text) {
    std::string name;
    for (;;) {
        const std::size_t dot = text.find('.');
        const std::string_view part = trimmed(text.substr(0, dot));
        if (part.empty() || !std::all_of(part.begin(), part.end(), is_bare_key_char)) return {};
        name += part;
        if (dot == std::string_view::npos) return name;
        name += '.';
        text.remove_prefix(dot + 1);
    }
}

// The name in a table header line ("[stun]", "[[port]]"), or "" when `line` is not one.
std::string header_name(std::string_view line, std::string_view open, std::string_view close) {
    if (!line.starts_with(open)) return {};
    const std::size_t end = line.find(close, open.size());
    if (end == std::string_view::npos) return {};
    return bare_dotted_name(line.substr(open.size(), end - open.size()));
}

// The key a syntax error stands at, for its message: the `key = ...` or table header on the
// error's line, under the header above it (`port = 70000x` after [stun] gives "stun.port"; the
// second `[[port]]` gives "port[1]"). "" when the line starts with neither, e.g. inside a
// multi-line array: the line number then points at it alone. A hint, not a parse: a line of a
// multi-line string that looks like a header would mislead it, hence only bare keys count.
std::string key_at_line(std::string_view text, unsigned line) {
    std::string table;
    std::vector<std::pair<std::string, std::size_t>> array_counts;
    unsigned number = 0;
    while (!text.empty() && ++number <= line) {
        const std::size_t end = text.find('\n');
        std::string_view current = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        current = trimmed(current);

        const bool array_header = current.starts_with("[[");
        std::string header = array_header ? header_name(current, "[[", "]]")
                                          : header_name(current, "[", "]");
        const bool is_header = !header.empty();
        if (is_header && array_header) {
            auto count = std::find_if(array_counts.begin(), array_counts.end(),
                                      [&](const auto& c) { return c.first == header; });
            if (count == array_counts.end())
                count = array_counts.insert(array_counts.end(), {header, 0});
            header = element_key(header, count->second++);
        }
        if (is_header) table = header;
        if (number != line) continue;
        if (is_header) return table;
        const std::size_t equals = current.find('=');
        if (equals == std::string_view::npos) return {};
        const std::string key = bare_dotted_name(current.substr(0, equals));
        return key.empty() ? std::string{} : child_key(table, key);
    }
    return {};
}

[[noreturn]] void cannot_read(const std::string& path, int error) {
    const std::string reason = std::error_code(error, std::generic_category()).message();
    fail("file", 0, "cannot read " + path + ": " + reason);
}

std::string read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) cannot_read(path, errno);
    std::string text;
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            const int error = errno;
            ::close(fd);
            cannot_read(path, error);
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

}  // namespace

std::string ConfigError::format(const std::string& source, const std::string& key,
                                unsigned line, const std::string& expected) {
    std::string out;
    if (!source.empty()) out.append(source).append(": ");
    if (!key.empty() && line != 0) {
        out += key + " (line " + std::to_string(line) + "): ";
    } else if (!key.empty()) {
        out += key + ": ";
    } else if (line != 0) {
        out += "line " + std::to_string(line) + ": ";
    }
    return out + expected;
}

namespace {

EngineConfig parse_unnamed(std::string_view toml_text, std::string_view source_name) {
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& error) {
        const unsigned line = error.source().begin.line;
        fail(key_at_line(toml_text, line), line, std::string(error.description()));
    }
    EngineConfig config;
    reject_unknown_keys(root, "",
                        {"eal", "engine", "stun", "neighbour", "relay", "sfu", "node", "control",
                         "metrics", "log", "port"});
    read_eal(root, config);
    read_engine(root, config);
    read_stun(root, config);
    read_neighbour(root, config);
    read_relay(root, config);  // after engine and stun: it is checked against them
    read_sfu(root, config);    // after stun and relay: likewise
    read_control(root, config);
    read_metrics(root, config);
    read_log(root, config);
    read_ports(root, config);
    return config;
}

}  // namespace

EngineConfig parse_config(std::string_view toml_text, std::string_view source_name) {
    try {
        return parse_unnamed(toml_text, source_name);
    } catch (const ConfigError& error) {
        throw error.in(std::string(source_name));
    }
}

EngineConfig load_config(const std::string& path) { return parse_config(read_file(path), path); }

}  // namespace engine
