// The order in which a call leg checks the peer's candidates (design.md §5 step 3).
//
// PunchSession checks candidates in the order given, one every pace slot, so the order decides
// how soon the path that works is tried. RFC 8445 §5.1.2 ranks by type (host 126, peer-reflexive
// 110, server-reflexive 100, relayed 0) because an ICE agent pairs every local candidate with every
// remote one; here a leg has one socket and the peer's host addresses are mostly private
// addresses of another network, which only waste a slot. So:
//   1. host candidates on our own subnet (IPv4 /24, IPv6 /64): the peer is on our LAN, the
//      direct path needs no NAT at all;
//   2. server-reflexive candidates: the peer's NAT, where every other path goes;
//   3. the other host candidates: a peer without NAT sends only its host address (it is its
//      public one), and hosts behind the same NAT on other subnets may still reach each other.
// Within a rank, the coordinator's order. Relayed candidates (the relay rung's business),
// candidates of another address family than ours, port 0, unspecified addresses and duplicates
// are left out.
#pragma once

#include <vector>

#include "punch/coord_client.h"
#include "stun/address.h"

namespace punch {

/// The peer's candidates in checking order (above), from `local_host`, the leg's host address.
[[nodiscard]] std::vector<stun::Address> order_candidates(
    const stun::Address& local_host, const std::vector<CoordCandidate>& remote);

}  // namespace punch
