#include "engine/checksum.h"

#include "stun/bytes.h"

namespace engine {

std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                std::uint16_t new_value) noexcept {
    std::uint32_t sum = static_cast<std::uint16_t>(~checksum);
    sum += static_cast<std::uint16_t>(~old_value);
    sum += new_value;
    return checksum_finish(sum);
}

}  // namespace engine
