// The NAT compatibility matrix: which pairs of NAT types can punch a UDP path to each other
// (design.md §4-§5), as data in one place. The ladder predicts its rung from it, and SFU
// selection (sfu_select.h, patent claim 4) keeps the nodes that can punch with both clients.
//
// The reasoning, in RFC 4787's terms (§4.1 mapping, §5 filtering), for two endpoints that each
// send test packets to the other's server-reflexive address and answer every test packet at the
// address it came from (peer-reflexive learning, docs/ladder.md "Punching"):
//
// - Both mappings endpoint-independent (none, full_cone, address_restricted, port_restricted):
//   each side's public address towards the peer is the one its STUN server saw, so each side's
//   test packets go to the right address and open its own filter for exactly that address; once
//   both have sent, both filters let the other in, whatever their filtering. Every pair punches.
// - One side symmetric (address- or address-and-port-dependent mapping, ADM/APDM): its public
//   port towards a new peer is not the one its STUN server saw and cannot be known in advance,
//   so the other side sends to the wrong port and its filter is open for that wrong port only.
//   The symmetric side's test packet arrives from the new port; it gets in only if the other
//   side's filter accepts a port it never sent to: endpoint-independent filtering (full_cone),
//   address-dependent filtering (address_restricted: it sent to that IP already), or no NAT.
//   Then the answer goes to the peer-reflexive address, which the symmetric NAT lets in (that is
//   where it sent from). Against port_restricted (APDF) the packet is dropped: no path.
//   (address_restricted assumes the symmetric NAT keeps one public IP for one host, RFC 4787
//   §4.1 REQ-2 "paired" pooling, as Linux's masquerade does; a NAT that changes IP per
//   destination defeats ADF too.)
// - Both symmetric: neither side knows the other's port; no path (port prediction is not
//   attempted).
// - unknown (classification failed, but UDP reached the STUN server): assumed as bad as any
//   NAT that passes UDP, i.e. symmetric with APDF. The pairs the matrix allows then punch
//   whatever the NAT really is; the price is a call sent to an SFU node or the relay that might
//   have punched. unknown↔unknown: no.
// - blocked (no STUN server answered over UDP): no UDP path at all, so nothing punches, not
//   even with a host without NAT. Only a relay over another transport could carry such a call.
//
// Measured in the NAT lab (docs/ladder.md "The NAT matrix, measured"): every pair of the five
// known types punches except symmetric↔symmetric and symmetric↔port_restricted, as above.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include "punch/nat_classify.h"

namespace punch {

/// The matrix's rows and columns in the order docs/ladder.md prints them: best first, then the
/// two types classification could not settle.
inline constexpr std::array<NatType, 7> nat_matrix_order = {
    NatType::none,      NatType::full_cone, NatType::address_restricted, NatType::port_restricted,
    NatType::symmetric, NatType::unknown,   NatType::blocked};

/// The matrix itself, rows and columns in nat_matrix_order; true: a UDP path can be punched
/// (header comment for each row's reason). Symmetric by construction (checked at compile time).
// clang-format off
inline constexpr std::array<std::array<bool, 7>, 7> nat_matrix = {{
    //  none   full   addr   port   symm   unkn   blocked
    {{true,  true,  true,  true,  true,  true,  false}},  // none: accepts any source
    {{true,  true,  true,  true,  true,  true,  false}},  // full_cone: EIM + EIF, accepts any source
    {{true,  true,  true,  true,  true,  true,  false}},  // address_restricted: EIM + ADF, any port of an IP it sent to
    {{true,  true,  true,  true,  false, false, false}},  // port_restricted: EIM + APDF, only the address it sent to
    {{true,  true,  true,  false, false, false, false}},  // symmetric: ADM/APDM, its port is unknown in advance
    {{true,  true,  true,  false, false, false, false}},  // unknown: taken as symmetric
    {{false, false, false, false, false, false, false}},  // blocked: no UDP path
}};
// clang-format on

inline constexpr std::size_t nat_matrix_unknown_index = 5;
static_assert(nat_matrix_order[nat_matrix_unknown_index] == NatType::unknown);

/// The row or column of `type` in nat_matrix.
[[nodiscard]] constexpr std::size_t nat_matrix_index(NatType type) noexcept {
    for (std::size_t i = 0; i < nat_matrix_order.size(); ++i)
        if (nat_matrix_order[i] == type) return i;
    return nat_matrix_unknown_index;  // only for a value outside the enum: counts as unknown
}

/// True when an endpoint behind `a` and one behind `b` can punch a UDP path to each other.
[[nodiscard]] constexpr bool can_punch(NatType a, NatType b) noexcept {
    return nat_matrix[nat_matrix_index(a)][nat_matrix_index(b)];
}

/// The same for to_string(NatType) names, as the coordinator holds them; an empty or
/// unrecognised name counts as "unknown" (the conservative reading, as above).
[[nodiscard]] bool can_punch(std::string_view a, std::string_view b) noexcept;

/// The NatType named by to_string(NatType)'s name ("none", "full_cone", "address_restricted",
/// "port_restricted", "symmetric", "unknown", "blocked"); nullopt for anything else.
[[nodiscard]] std::optional<NatType> nat_type_from_string(std::string_view name) noexcept;

namespace detail {
constexpr bool nat_matrix_symmetric() noexcept {
    for (std::size_t i = 0; i < nat_matrix.size(); ++i)
        for (std::size_t j = 0; j < nat_matrix.size(); ++j)
            if (nat_matrix[i][j] != nat_matrix[j][i]) return false;
    return true;
}
}  // namespace detail
// Whether A can punch with B cannot depend on who calls: both sides send at once.
static_assert(detail::nat_matrix_symmetric(), "nat_matrix must be symmetric");

}  // namespace punch
