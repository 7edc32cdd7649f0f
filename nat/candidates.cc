#include "punch/candidates.h"

#include <algorithm>
#include <cstring>

namespace punch {

namespace {

bool unspecified(const stun::Address& a) {
    const auto ip = a.ip_bytes();
    return std::all_of(ip.begin(), ip.end(), [](std::byte b) { return b == std::byte{0}; });
}

// Same IPv4 /24 or IPv6 /64: the subnet a host on our LAN is most likely on (the leg knows no
// prefix length; a wider LAN only costs its hosts the first rank).
bool same_subnet(const stun::Address& a, const stun::Address& b) {
    const std::size_t bytes = a.family == stun::AddressFamily::ipv4 ? 3 : 8;
    return a.family == b.family && std::memcmp(a.ip.data(), b.ip.data(), bytes) == 0;
}

}  // namespace

std::vector<stun::Address> order_candidates(const stun::Address& local_host,
                                            const std::vector<CoordCandidate>& remote) {
    std::vector<stun::Address> ranked[3];
    std::vector<stun::Address> seen;
    for (const auto& c : remote) {
        const stun::Address& a = c.address;
        if (a.family != local_host.family || a.port == 0 || unspecified(a)) continue;
        int rank;
        if (c.type == "host") rank = same_subnet(a, local_host) ? 0 : 2;
        else if (c.type == "srflx" || c.type == "prflx") rank = 1;
        else continue;  // relay, or a type this version does not know
        if (std::find(seen.begin(), seen.end(), a) != seen.end()) continue;
        seen.push_back(a);
        ranked[rank].push_back(a);
    }
    std::vector<stun::Address> out;
    for (auto& r : ranked) out.insert(out.end(), r.begin(), r.end());
    return out;
}

}  // namespace punch
