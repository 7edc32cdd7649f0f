// NAT behaviour discovery's decisions (RFC 5780 §4.3 mapping, §4.4 filtering, §4.5 hairpinning)
// as pure functions over what the probes saw.
//
// The probe (probe.h) runs the tests on sockets; everything it concludes is decided here, from
// a ProbeResults it fills, so that unit tests reach every combination of outcomes, timeouts
// included, without a network.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "stun/address.h"

namespace punch {

/// How one Binding test ended, as far as classification cares.
enum class TestOutcome : std::uint8_t {
    not_run,         ///< the probe did not send it (an earlier result made it unnecessary)
    timeout,         ///< no valid response within the bound
    error_response,  ///< the server answered with an error (e.g. 420: no CHANGE-REQUEST here)
    success,         ///< a valid success response
};

struct TestResult {
    TestOutcome outcome = TestOutcome::not_run;
    stun::Address mapped;                       ///< XOR-MAPPED-ADDRESS, on success
    stun::Address from;                         ///< the response's source, on success
    std::optional<stun::Address> other_address;  ///< OTHER-ADDRESS, on success
};

enum class HairpinOutcome : std::uint8_t {
    not_run,
    received,   ///< our request to our own mapped address came back to the mapping socket
    timeout,    ///< it did not
};

/// Everything the tests saw. Mapping tests run on one socket, filtering tests on a second,
/// fresh one: the mapping tests send to the server's alternate address, which would open an
/// address-dependent filter to it and make an ADF NAT look EIF (RFC 5780 §4.4 needs a
/// mapping that has only ever sent to the primary address).
struct ProbeResults {
    stun::Address server;  ///< the primary address the tests went to
    /// The mapping socket's own address (the source the kernel routes from, and its port).
    stun::Address local;
    TestResult mapping1;    ///< §4.3 test I: to the primary address
    TestResult mapping2;    ///< §4.3 test II: to the alternate IP, the primary port
    TestResult mapping3;    ///< §4.3 test III: to the alternate IP and port
    TestResult filtering1;  ///< §4.4 test I: to the primary address
    TestResult filtering2;  ///< §4.4 test II: CHANGE-REQUEST change IP and port
    TestResult filtering3;  ///< §4.4 test III: CHANGE-REQUEST change port
    HairpinOutcome hairpin = HairpinOutcome::not_run;
};

enum class MappingBehavior : std::uint8_t {
    unknown,
    no_nat,  ///< the mapped address is our own
    endpoint_independent,
    address_dependent,
    address_and_port_dependent,
};

enum class FilteringBehavior : std::uint8_t {
    unknown,
    endpoint_independent,
    address_dependent,
    address_and_port_dependent,
};

enum class Hairpinning : std::uint8_t { unknown, supported, not_supported };

/// The NAT type the ladder and the coordinator reason with (RFC 3489's names for RFC 5780's
/// behaviours). A host without NAT but behind a filtering firewall gets the type of the cone
/// NAT with that filtering: the identity mapping is endpoint-independent, and for punching
/// only mapping and filtering matter.
enum class NatType : std::uint8_t {
    unknown,             ///< a test needed for the decision failed or could not run
    blocked,             ///< no answer to test I: UDP to the server does not get through
    none,                ///< no NAT, no filtering
    full_cone,           ///< EIM + EIF
    address_restricted,  ///< EIM + ADF
    port_restricted,     ///< EIM + APDF
    symmetric,           ///< ADM or APDM, whatever the filtering
};

struct Classification {
    MappingBehavior mapping = MappingBehavior::unknown;
    FilteringBehavior filtering = FilteringBehavior::unknown;
    Hairpinning hairpinning = Hairpinning::unknown;
    NatType type = NatType::unknown;
};

/// RFC 5780 §4.3. Test I's mapped address equal to `local`: no NAT (tests II and III are not
/// needed). Else test I must carry OTHER-ADDRESS; test II's mapped address equal to test I's:
/// endpoint-independent; else test III's equal to test II's: address-dependent, different:
/// address-and-port-dependent. Any test needed that did not succeed: unknown.
[[nodiscard]] MappingBehavior classify_mapping(const ProbeResults& r) noexcept;

/// RFC 5780 §4.4. Test I must succeed. Test II answered (from another IP and another port than
/// `server`'s): endpoint-independent. Test II timed out and test III answered (from the same
/// IP, another port): address-dependent; both timed out: address-and-port-dependent. An answer
/// from the wrong address (a server that ignores CHANGE-REQUEST), an error response, or a test
/// not run: unknown.
[[nodiscard]] FilteringBehavior classify_filtering(const ProbeResults& r) noexcept;

/// RFC 5780 §4.5: received: supported; timed out: not supported; not run: unknown.
[[nodiscard]] Hairpinning classify_hairpinning(const ProbeResults& r) noexcept;

/// The type from the behaviours; `blocked` when mapping test I timed out.
[[nodiscard]] NatType nat_type(MappingBehavior mapping, FilteringBehavior filtering,
                               bool blocked) noexcept;

/// All of the above.
[[nodiscard]] Classification classify(const ProbeResults& r) noexcept;

/// Snake-case names for reports and JSON ("endpoint_independent", "port_restricted").
[[nodiscard]] std::string_view to_string(TestOutcome v) noexcept;
[[nodiscard]] std::string_view to_string(HairpinOutcome v) noexcept;
[[nodiscard]] std::string_view to_string(MappingBehavior v) noexcept;
[[nodiscard]] std::string_view to_string(FilteringBehavior v) noexcept;
[[nodiscard]] std::string_view to_string(Hairpinning v) noexcept;
[[nodiscard]] std::string_view to_string(NatType v) noexcept;

}  // namespace punch
