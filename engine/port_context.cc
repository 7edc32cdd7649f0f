#include "engine/port_context.h"

#include <cstring>

namespace engine {

PortContext PortContext::from_config(const EngineConfig& config, const PortConfig& port,
                                     const MacAddress& mac) {
    PortContext context;
    context.mac = mac;
    auto own = [](const std::vector<stun::Address>& list, OwnedAddresses& out) {
        if (!list.empty()) out.primary = list[0];
        if (list.size() > 1) out.alternate = list[1];
    };
    own(port.ipv4, context.ipv4);
    own(port.ipv6, context.ipv6);
    context.rx_checksum = port.rx_checksum;
    context.stun_enabled = config.stun.enabled;
    context.stun_port = config.stun.port;
    context.stun_alternate_port = config.stun.alternate_port;
    context.software = config.stun.software;
    return context;
}

}  // namespace engine
