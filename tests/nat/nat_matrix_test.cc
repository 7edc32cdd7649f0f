// The NAT compatibility matrix (nat/include/punch/nat_matrix.h): the whole 7×7 table, its
// derivation from RFC 4787 mapping and filtering, the NAT lab's measurement, and the table in
// docs/ladder.md (the test's one argument: that file's path).
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "punch/nat_matrix.h"

namespace {

using punch::can_punch;
using punch::NatType;
using punch::nat_matrix_order;

std::string ladder_md_path;

std::string name(NatType t) { return std::string(punch::to_string(t)); }

// The 7×7 table stated differently from the header: every pair punches except these (and
// their mirror images).
TEST(NatMatrix, EveryPairPunchesExceptTheListedOnes) {
    const std::set<std::pair<NatType, NatType>> fail = {
        {NatType::symmetric, NatType::symmetric},
        {NatType::symmetric, NatType::port_restricted},
        {NatType::unknown, NatType::port_restricted},
        {NatType::unknown, NatType::symmetric},
        {NatType::unknown, NatType::unknown},
    };
    for (const NatType a : nat_matrix_order)
        for (const NatType b : nat_matrix_order) {
            const bool expected = a != NatType::blocked && b != NatType::blocked &&
                                  !fail.contains({a, b}) && !fail.contains({b, a});
            EXPECT_EQ(can_punch(a, b), expected) << name(a) << " with " << name(b);
        }
}

TEST(NatMatrix, IsSymmetric) {
    for (const NatType a : nat_matrix_order)
        for (const NatType b : nat_matrix_order)
            EXPECT_EQ(can_punch(a, b), can_punch(b, a)) << name(a) << " with " << name(b);
}

// The five known types from their RFC 4787 behaviours: two endpoint-independent mappings
// always punch; a dependent mapping needs the other side to take a port it never sent to
// (endpoint-independent or address-dependent filtering, or no NAT); two dependent mappings
// never do.
TEST(NatMatrix, FollowsFromMappingAndFiltering) {
    struct Behaviour {
        NatType type;
        bool dependent_mapping;
        bool accepts_unknown_port;
    };
    const Behaviour known[] = {
        {NatType::none, false, true},
        {NatType::full_cone, false, true},
        {NatType::address_restricted, false, true},
        {NatType::port_restricted, false, false},
        {NatType::symmetric, true, false},
    };
    for (const auto& a : known)
        for (const auto& b : known) {
            bool expected = true;
            if (a.dependent_mapping && b.dependent_mapping) expected = false;
            else if (a.dependent_mapping) expected = b.accepts_unknown_port;
            else if (b.dependent_mapping) expected = a.accepts_unknown_port;
            EXPECT_EQ(can_punch(a.type, b.type), expected)
                << name(a.type) << " with " << name(b.type);
        }
}

// docs/ladder.md "The NAT matrix, measured" (natlab_ladder, 2026-11-24): the rung every pair of
// the lab's Linux NATs took, rows and columns none, full cone, address-restricted,
// port-restricted, symmetric.
TEST(NatMatrix, MatchesTheNatLabMeasurement) {
    const char* measured[5][5] = {
        {"p2p", "p2p", "p2p", "p2p", "p2p"},
        {"p2p", "p2p", "p2p", "p2p", "p2p"},
        {"p2p", "p2p", "p2p", "p2p", "p2p"},
        {"p2p", "p2p", "p2p", "p2p", "relay"},
        {"p2p", "p2p", "p2p", "relay", "relay"},
    };
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < 5; ++j)
            EXPECT_EQ(can_punch(nat_matrix_order[i], nat_matrix_order[j]),
                      std::string(measured[i][j]) == "p2p")
                << name(nat_matrix_order[i]) << " with " << name(nat_matrix_order[j]);
}

TEST(NatMatrix, NamesAndUnrecognisedNamesCountAsUnknown) {
    for (const NatType t : nat_matrix_order) {
        ASSERT_TRUE(punch::nat_type_from_string(punch::to_string(t)).has_value()) << name(t);
        EXPECT_EQ(*punch::nat_type_from_string(punch::to_string(t)), t);
    }
    EXPECT_FALSE(punch::nat_type_from_string("Symmetric").has_value());
    EXPECT_FALSE(punch::nat_type_from_string("").has_value());
    EXPECT_TRUE(can_punch("symmetric", "full_cone"));
    EXPECT_FALSE(can_punch("symmetric", "port_restricted"));
    // Unknown: as symmetric.
    EXPECT_TRUE(can_punch("", "address_restricted"));
    EXPECT_FALSE(can_punch("full-cone", "port_restricted"));
    EXPECT_FALSE(can_punch("bogus", "bogus"));
    EXPECT_FALSE(can_punch("none", "blocked"));
}

// Cells of a markdown table row, trimmed, without backticks.
std::vector<std::string> cells(const std::string& line) {
    std::vector<std::string> out;
    std::string cell;
    for (std::size_t i = 1; i < line.size(); ++i) {
        if (line[i] == '|') {
            const auto first = cell.find_first_not_of(" `");
            const auto last = cell.find_last_not_of(" `");
            out.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
            cell.clear();
        } else {
            cell += line[i];
        }
    }
    return out;
}

// The table in docs/ladder.md "The NAT compatibility matrix" says what the code says: a header
// row naming the seven types in nat_matrix_order, then one row per type, "yes" or "no".
TEST(NatMatrix, DocTableEqualsTheCode) {
    ASSERT_FALSE(ladder_md_path.empty()) << "usage: nat_nat_matrix_test PATH/docs/ladder.md";
    std::ifstream in(ladder_md_path);
    ASSERT_TRUE(in) << "cannot read " << ladder_md_path;
    std::string line;
    while (std::getline(in, line) && line != "## The NAT compatibility matrix") {}
    ASSERT_EQ(line, "## The NAT compatibility matrix") << "no such section in " << ladder_md_path;
    std::vector<std::vector<std::string>> rows;
    while (std::getline(in, line) && line.rfind("## ", 0) != 0) {
        if (line.rfind("|", 0) == 0) rows.push_back(cells(line));
        else if (!rows.empty()) break;  // the first table only
    }
    ASSERT_EQ(rows.size(), 2 + nat_matrix_order.size()) << "header, separator, seven rows";
    ASSERT_EQ(rows[0].size(), 1 + nat_matrix_order.size());
    for (std::size_t j = 0; j < nat_matrix_order.size(); ++j)
        EXPECT_EQ(rows[0][1 + j], name(nat_matrix_order[j])) << "column " << j + 1;
    for (std::size_t i = 0; i < nat_matrix_order.size(); ++i) {
        const auto& row = rows[2 + i];
        ASSERT_EQ(row.size(), 1 + nat_matrix_order.size()) << "row " << i + 1;
        EXPECT_EQ(row[0], name(nat_matrix_order[i])) << "row " << i + 1;
        for (std::size_t j = 0; j < nat_matrix_order.size(); ++j)
            EXPECT_EQ(row[1 + j], can_punch(nat_matrix_order[i], nat_matrix_order[j]) ? "yes" : "no")
                << name(nat_matrix_order[i]) << " with " << name(nat_matrix_order[j]);
    }
}

}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc > 1) ladder_md_path = argv[1];
    return RUN_ALL_TESTS();
}
