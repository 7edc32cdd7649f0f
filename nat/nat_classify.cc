#include "punch/nat_classify.h"

namespace punch {

namespace {

bool answered(const TestResult& t) noexcept { return t.outcome == TestOutcome::success; }

}  // namespace

MappingBehavior classify_mapping(const ProbeResults& r) noexcept {
    if (!answered(r.mapping1)) return MappingBehavior::unknown;
    // §4.3: "If this address and port are the same as the local IP address and port of the
    // socket used to send the request, the client knows that it is not NATed and the effective
    // mapping will be Endpoint-Independent." No OTHER-ADDRESS is needed to know that much.
    if (r.mapping1.mapped == r.local) return MappingBehavior::no_nat;
    // "If OTHER-ADDRESS is not returned, the server does not support this usage and this test
    // cannot be run": test II goes to OTHER-ADDRESS's IP.
    if (!r.mapping1.other_address) return MappingBehavior::unknown;
    if (!answered(r.mapping2)) return MappingBehavior::unknown;
    // "If the XOR-MAPPED-ADDRESS in the Binding Response is the same as test I the NAT
    // currently has Endpoint-Independent Mapping."
    if (r.mapping2.mapped == r.mapping1.mapped) return MappingBehavior::endpoint_independent;
    if (!answered(r.mapping3)) return MappingBehavior::unknown;
    // "If the XOR-MAPPED-ADDRESS matches test II, the NAT currently has Address-Dependent
    // Mapping; if it doesn't match it currently has Address and Port-Dependent Mapping."
    return r.mapping3.mapped == r.mapping2.mapped ? MappingBehavior::address_dependent
                                                  : MappingBehavior::address_and_port_dependent;
}

FilteringBehavior classify_filtering(const ProbeResults& r) noexcept {
    if (!answered(r.filtering1)) return FilteringBehavior::unknown;
    const auto& s = r.server;
    switch (r.filtering2.outcome) {
    case TestOutcome::success: {
        // "If the client receives a response, the current behavior of the NAT is
        // Endpoint-Independent Filtering." Only if the answer did change IP and port: a
        // server that ignores CHANGE-REQUEST answers from where it was asked, and proves
        // nothing about the filter.
        const auto& f = r.filtering2.from;
        const bool changed = f.ip != s.ip && f.port != s.port;
        return changed ? FilteringBehavior::endpoint_independent : FilteringBehavior::unknown;
    }
    case TestOutcome::timeout: break;
    case TestOutcome::error_response:
    case TestOutcome::not_run: return FilteringBehavior::unknown;
    }
    switch (r.filtering3.outcome) {
    case TestOutcome::success: {
        // "If the client receives a response, the current behavior is Address-Dependent
        // Filtering" — from the same IP, another port, or the test did not test that.
        const auto& f = r.filtering3.from;
        const bool changed = f.ip == s.ip && f.port != s.port;
        return changed ? FilteringBehavior::address_dependent : FilteringBehavior::unknown;
    }
    case TestOutcome::timeout: return FilteringBehavior::address_and_port_dependent;
    case TestOutcome::error_response:
    case TestOutcome::not_run: return FilteringBehavior::unknown;
    }
    return FilteringBehavior::unknown;
}

Hairpinning classify_hairpinning(const ProbeResults& r) noexcept {
    switch (r.hairpin) {
    case HairpinOutcome::received: return Hairpinning::supported;
    case HairpinOutcome::timeout: return Hairpinning::not_supported;
    case HairpinOutcome::not_run: return Hairpinning::unknown;
    }
    return Hairpinning::unknown;
}

NatType nat_type(MappingBehavior mapping, FilteringBehavior filtering, bool blocked) noexcept {
    if (blocked) return NatType::blocked;
    switch (mapping) {
    case MappingBehavior::unknown: return NatType::unknown;
    // Whatever the filter: a new mapping per destination defeats the reflexive address.
    case MappingBehavior::address_dependent:
    case MappingBehavior::address_and_port_dependent: return NatType::symmetric;
    case MappingBehavior::no_nat:
    case MappingBehavior::endpoint_independent: break;
    }
    const bool nat = mapping == MappingBehavior::endpoint_independent;
    switch (filtering) {
    case FilteringBehavior::unknown: return NatType::unknown;
    case FilteringBehavior::endpoint_independent: return nat ? NatType::full_cone : NatType::none;
    case FilteringBehavior::address_dependent: return NatType::address_restricted;
    case FilteringBehavior::address_and_port_dependent: return NatType::port_restricted;
    }
    return NatType::unknown;
}

Classification classify(const ProbeResults& r) noexcept {
    Classification c;
    c.mapping = classify_mapping(r);
    c.filtering = classify_filtering(r);
    c.hairpinning = classify_hairpinning(r);
    c.type = nat_type(c.mapping, c.filtering, r.mapping1.outcome == TestOutcome::timeout);
    return c;
}

std::string_view to_string(TestOutcome v) noexcept {
    switch (v) {
    case TestOutcome::not_run: return "not_run";
    case TestOutcome::timeout: return "timeout";
    case TestOutcome::error_response: return "error_response";
    case TestOutcome::success: return "success";
    }
    return "?";
}

std::string_view to_string(HairpinOutcome v) noexcept {
    switch (v) {
    case HairpinOutcome::not_run: return "not_run";
    case HairpinOutcome::received: return "received";
    case HairpinOutcome::timeout: return "timeout";
    }
    return "?";
}

std::string_view to_string(MappingBehavior v) noexcept {
    switch (v) {
    case MappingBehavior::unknown: return "unknown";
    case MappingBehavior::no_nat: return "no_nat";
    case MappingBehavior::endpoint_independent: return "endpoint_independent";
    case MappingBehavior::address_dependent: return "address_dependent";
    case MappingBehavior::address_and_port_dependent: return "address_and_port_dependent";
    }
    return "?";
}

std::string_view to_string(FilteringBehavior v) noexcept {
    switch (v) {
    case FilteringBehavior::unknown: return "unknown";
    case FilteringBehavior::endpoint_independent: return "endpoint_independent";
    case FilteringBehavior::address_dependent: return "address_dependent";
    case FilteringBehavior::address_and_port_dependent: return "address_and_port_dependent";
    }
    return "?";
}

std::string_view to_string(Hairpinning v) noexcept {
    switch (v) {
    case Hairpinning::unknown: return "unknown";
    case Hairpinning::supported: return "supported";
    case Hairpinning::not_supported: return "not_supported";
    }
    return "?";
}

std::string_view to_string(NatType v) noexcept {
    switch (v) {
    case NatType::unknown: return "unknown";
    case NatType::blocked: return "blocked";
    case NatType::none: return "none";
    case NatType::full_cone: return "full_cone";
    case NatType::address_restricted: return "address_restricted";
    case NatType::port_restricted: return "port_restricted";
    case NatType::symmetric: return "symmetric";
    }
    return "?";
}

}  // namespace punch
