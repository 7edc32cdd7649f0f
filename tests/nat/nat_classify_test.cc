// RFC 5780 classification (nat/nat_classify.cc) over every combination of test outcomes.
//
// The expectations are written here from the RFC's text a second time, as a table of what
// each test's outcome means, not by calling the decisions they check; then every combination
// of outcomes (timeouts, error responses, answers from the right and the wrong address, equal
// and different mapped addresses) is run through both.
#include <gtest/gtest.h>

#include <vector>

#include "punch/nat_classify.h"

namespace punch {
namespace {

const stun::Address server = stun::Address::v4(0xCB007102, 3478);        // 203.0.113.2:3478
const stun::Address alternate = stun::Address::v4(0xCB007103, 3479);     // 203.0.113.3:3479
const stun::Address alternate_ip = stun::Address::v4(0xCB007103, 3478);  // other IP, our port
const stun::Address same_ip_other_port = stun::Address::v4(0xCB007102, 3479);
const stun::Address local = stun::Address::v4(0xC6120A0A, 40000);        // 198.18.10.10:40000
const stun::Address public1 = stun::Address::v4(0xCB007114, 40000);
const stun::Address public2 = stun::Address::v4(0xCB007114, 40001);
const stun::Address public3 = stun::Address::v4(0xCB007114, 40002);

TestResult answer(const stun::Address& mapped, const stun::Address& from,
                  bool with_other = false) {
    TestResult t;
    t.outcome = TestOutcome::success;
    t.mapped = mapped;
    t.from = from;
    if (with_other) t.other_address = alternate;
    return t;
}

TestResult outcome(TestOutcome o) {
    TestResult t;
    t.outcome = o;
    return t;
}

// Mapping test I's cases, and what they mean.
enum class M1 { timeout, error, not_run, local_no_other, local, nat_no_other, nat };
// Tests II and III: not run, timeout, error, or an answer equal to or unlike the previous one.
enum class Mx { not_run, timeout, error, same, different };
enum class Fx { not_run, timeout, error, right_source, wrong_source };

constexpr M1 all_m1[] = {M1::timeout, M1::error, M1::not_run, M1::local_no_other, M1::local,
                          M1::nat_no_other, M1::nat};
constexpr Mx all_mx[] = {Mx::not_run, Mx::timeout, Mx::error, Mx::same, Mx::different};
constexpr Fx all_fx[] = {Fx::not_run, Fx::timeout, Fx::error, Fx::right_source,
                          Fx::wrong_source};

void fill_mapping(ProbeResults& r, M1 m1, Mx m2, Mx m3) {
    switch (m1) {
    case M1::timeout: r.mapping1 = outcome(TestOutcome::timeout); break;
    case M1::error: r.mapping1 = outcome(TestOutcome::error_response); break;
    case M1::not_run: r.mapping1 = outcome(TestOutcome::not_run); break;
    case M1::local_no_other: r.mapping1 = answer(local, server); break;
    case M1::local: r.mapping1 = answer(local, server, true); break;
    case M1::nat_no_other: r.mapping1 = answer(public1, server); break;
    case M1::nat: r.mapping1 = answer(public1, server, true); break;
    }
    auto later = [](Mx m, const stun::Address& previous, const stun::Address& other,
                    const stun::Address& from) {
        switch (m) {
        case Mx::not_run: return outcome(TestOutcome::not_run);
        case Mx::timeout: return outcome(TestOutcome::timeout);
        case Mx::error: return outcome(TestOutcome::error_response);
        case Mx::same: return answer(previous, from);
        case Mx::different: return answer(other, from);
        }
        return TestResult{};
    };
    r.mapping2 = later(m2, r.mapping1.mapped, public2, alternate_ip);
    r.mapping3 = later(m3, r.mapping2.mapped,
                       r.mapping2.mapped == public3 ? public2 : public3, alternate);
}

void fill_filtering(ProbeResults& r, Fx f1, Fx f2, Fx f3) {
    auto test = [](Fx f, const stun::Address& right, const stun::Address& wrong) {
        switch (f) {
        case Fx::not_run: return outcome(TestOutcome::not_run);
        case Fx::timeout: return outcome(TestOutcome::timeout);
        case Fx::error: return outcome(TestOutcome::error_response);
        case Fx::right_source: return answer(public1, right);
        case Fx::wrong_source: return answer(public1, wrong);
        }
        return TestResult{};
    };
    // Test I has no CHANGE-REQUEST: the primary address is its right source.
    r.filtering1 = test(f1, server, alternate);
    r.filtering2 = test(f2, alternate, server);  // change IP and port
    r.filtering3 = test(f3, same_ip_other_port, server);  // change port
}

// RFC 5780 §4.3, as a table of the cases that decide; everything else is unknown.
MappingBehavior expected_mapping(M1 m1, Mx m2, Mx m3) {
    if (m1 == M1::local || m1 == M1::local_no_other) return MappingBehavior::no_nat;
    if (m1 != M1::nat) return MappingBehavior::unknown;  // no test I, or no OTHER-ADDRESS
    if (m2 == Mx::same) return MappingBehavior::endpoint_independent;
    if (m2 != Mx::different) return MappingBehavior::unknown;
    if (m3 == Mx::same) return MappingBehavior::address_dependent;
    if (m3 == Mx::different) return MappingBehavior::address_and_port_dependent;
    return MappingBehavior::unknown;
}

// RFC 5780 §4.4, likewise.
FilteringBehavior expected_filtering(Fx f1, Fx f2, Fx f3) {
    const bool test1_answered = f1 == Fx::right_source || f1 == Fx::wrong_source;
    if (!test1_answered) return FilteringBehavior::unknown;
    if (f2 == Fx::right_source) return FilteringBehavior::endpoint_independent;
    if (f2 != Fx::timeout) return FilteringBehavior::unknown;
    if (f3 == Fx::right_source) return FilteringBehavior::address_dependent;
    if (f3 == Fx::timeout) return FilteringBehavior::address_and_port_dependent;
    return FilteringBehavior::unknown;
}

TEST(NatClassify, EveryMappingCombination) {
    int cases = 0;
    for (const M1 m1 : all_m1)
        for (const Mx m2 : all_mx)
            for (const Mx m3 : all_mx) {
                ProbeResults r;
                r.server = server;
                r.local = local;
                fill_mapping(r, m1, m2, m3);
                EXPECT_EQ(classify_mapping(r), expected_mapping(m1, m2, m3))
                    << "test I " << int(m1) << ", II " << int(m2) << ", III " << int(m3);
                ++cases;
            }
    EXPECT_EQ(cases, 7 * 5 * 5);
}

TEST(NatClassify, EveryFilteringCombination) {
    int cases = 0;
    for (const Fx f1 : all_fx)
        for (const Fx f2 : all_fx)
            for (const Fx f3 : all_fx) {
                ProbeResults r;
                r.server = server;
                fill_filtering(r, f1, f2, f3);
                EXPECT_EQ(classify_filtering(r), expected_filtering(f1, f2, f3))
                    << "test I " << int(f1) << ", II " << int(f2) << ", III " << int(f3);
                ++cases;
            }
    EXPECT_EQ(cases, 125);
}

TEST(NatClassify, Hairpinning) {
    ProbeResults r;
    EXPECT_EQ(classify_hairpinning(r), Hairpinning::unknown);
    r.hairpin = HairpinOutcome::received;
    EXPECT_EQ(classify_hairpinning(r), Hairpinning::supported);
    r.hairpin = HairpinOutcome::timeout;
    EXPECT_EQ(classify_hairpinning(r), Hairpinning::not_supported);
}

// Every mapping × filtering pair, and blocked, as one table.
TEST(NatClassify, TypeOfEveryBehaviourPair) {
    using M = MappingBehavior;
    using F = FilteringBehavior;
    using T = NatType;
    struct Row {
        M mapping;
        T by_filtering[4];  // unknown, EIF, ADF, APDF
    };
    const Row table[] = {
        {M::unknown, {T::unknown, T::unknown, T::unknown, T::unknown}},
        {M::no_nat, {T::unknown, T::none, T::address_restricted, T::port_restricted}},
        {M::endpoint_independent,
         {T::unknown, T::full_cone, T::address_restricted, T::port_restricted}},
        {M::address_dependent, {T::symmetric, T::symmetric, T::symmetric, T::symmetric}},
        {M::address_and_port_dependent,
         {T::symmetric, T::symmetric, T::symmetric, T::symmetric}},
    };
    const F filterings[] = {F::unknown, F::endpoint_independent, F::address_dependent,
                            F::address_and_port_dependent};
    for (const Row& row : table)
        for (int f = 0; f < 4; ++f) {
            EXPECT_EQ(nat_type(row.mapping, filterings[f], false), row.by_filtering[f])
                << to_string(row.mapping) << " + " << to_string(filterings[f]);
            EXPECT_EQ(nat_type(row.mapping, filterings[f], true), T::blocked);
        }
}

// The whole product through classify(): the type agrees with the two behaviours, and a test I
// that timed out is "blocked" whatever else happened.
TEST(NatClassify, EveryCombinationEndToEnd) {
    int cases = 0;
    for (const M1 m1 : all_m1)
        for (const Mx m2 : all_mx)
            for (const Mx m3 : all_mx)
                for (const Fx f1 : all_fx)
                    for (const Fx f2 : all_fx)
                        for (const Fx f3 : all_fx)
                            for (const HairpinOutcome h :
                                 {HairpinOutcome::not_run, HairpinOutcome::received,
                                  HairpinOutcome::timeout}) {
                                ProbeResults r;
                                r.server = server;
                                r.local = local;
                                fill_mapping(r, m1, m2, m3);
                                fill_filtering(r, f1, f2, f3);
                                r.hairpin = h;
                                const Classification c = classify(r);
                                const auto mapping = expected_mapping(m1, m2, m3);
                                const auto filtering = expected_filtering(f1, f2, f3);
                                ASSERT_EQ(c.mapping, mapping);
                                ASSERT_EQ(c.filtering, filtering);
                                ASSERT_EQ(c.hairpinning, classify_hairpinning(r));
                                if (m1 == M1::timeout)
                                    ASSERT_EQ(c.type, NatType::blocked);
                                else
                                    ASSERT_EQ(c.type, nat_type(mapping, filtering, false));
                                ++cases;
                            }
    EXPECT_EQ(cases, 7 * 25 * 125 * 3);
}

// The five lab NATs as the probe sees them, by name.
TEST(NatClassify, TheLabTypes) {
    struct Case {
        const char* name;
        M1 m1;
        Mx m2, m3;
        Fx f2, f3;
        NatType type;
    };
    const Case cases[] = {
        {"no NAT", M1::local, Mx::not_run, Mx::not_run, Fx::right_source, Fx::right_source,
         NatType::none},
        {"full cone", M1::nat, Mx::same, Mx::same, Fx::right_source, Fx::right_source,
         NatType::full_cone},
        {"address-restricted", M1::nat, Mx::same, Mx::same, Fx::timeout, Fx::right_source,
         NatType::address_restricted},
        {"port-restricted", M1::nat, Mx::same, Mx::same, Fx::timeout, Fx::timeout,
         NatType::port_restricted},
        {"symmetric", M1::nat, Mx::different, Mx::different, Fx::timeout, Fx::timeout,
         NatType::symmetric},
        {"CHANGE-REQUEST ignored", M1::nat, Mx::same, Mx::same, Fx::wrong_source,
         Fx::wrong_source, NatType::unknown},
    };
    for (const Case& c : cases) {
        ProbeResults r;
        r.server = server;
        r.local = local;
        fill_mapping(r, c.m1, c.m2, c.m3);
        fill_filtering(r, Fx::right_source, c.f2, c.f3);
        EXPECT_EQ(classify(r).type, c.type) << c.name;
    }
}

TEST(NatClassify, Names) {
    EXPECT_EQ(to_string(NatType::port_restricted), "port_restricted");
    EXPECT_EQ(to_string(MappingBehavior::address_and_port_dependent), "address_and_port_dependent");
    EXPECT_EQ(to_string(FilteringBehavior::endpoint_independent), "endpoint_independent");
    EXPECT_EQ(to_string(Hairpinning::not_supported), "not_supported");
    EXPECT_EQ(to_string(TestOutcome::error_response), "error_response");
}

}  // namespace
}  // namespace punch
