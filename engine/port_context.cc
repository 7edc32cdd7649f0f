#include "engine/port_context.h"

#include <cstring>
#include <utility>
#include <vector>

#include "engine/handler.h"
#include "stun/bytes.h"

namespace engine {

SoftwareText::SoftwareText(std::string_view text) : text_(text) {
    if (text.empty()) return;
    // RFC 8489 §14: type, length, the text, zeros up to a multiple of 4.
    std::vector<std::byte> attribute;
    auto append16 = [&](std::uint16_t value) {
        attribute.push_back(static_cast<std::byte>(value >> 8));
        attribute.push_back(static_cast<std::byte>(value & 0xFF));
    };
    append16(stun::attr::software);
    append16(static_cast<std::uint16_t>(text.size()));
    const auto bytes = stun::as_bytes(text);
    attribute.insert(attribute.end(), bytes.begin(), bytes.end());
    attribute.resize(stun::attribute_header_size + stun::padded4(text.size()), std::byte{0});
    attribute_raw_crc_ = stun::crc32_raw(attribute);
    for (std::size_t i = 0; i < attribute.size(); i += 4)
        attribute_sum_ += stun::load_be32(&attribute[i]);
    attribute_ = std::move(attribute);
}

void PortContext::prepare() {
    own_ipv4_words = {};
    std::size_t i = 0;
    for (const std::optional<stun::Address>& own : {ipv4.primary, ipv4.alternate}) {
        if (own && own->family == stun::AddressFamily::ipv4)
            std::memcpy(&own_ipv4_words[i], own->ip.data(), 4);
        ++i;
    }
    prepare_binding_templates(*this);
    neighbours.prepare();
}

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
    context.prepare();
    return context;
}

}  // namespace engine
