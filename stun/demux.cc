#include "stun/demux.h"

namespace stun {

std::string_view to_string(PacketKind kind) noexcept {
    switch (kind) {
    case PacketKind::empty: return "empty";
    case PacketKind::stun: return "stun";
    case PacketKind::zrtp: return "zrtp";
    case PacketKind::dtls: return "dtls";
    case PacketKind::turn_channel: return "turn_channel";
    case PacketKind::rtp_rtcp: return "rtp_rtcp";
    case PacketKind::unknown: return "unknown";
    }
    return "unknown";
}

}  // namespace stun
