#include "punch/nat_matrix.h"

namespace punch {

std::optional<NatType> nat_type_from_string(std::string_view name) noexcept {
    for (const NatType type : nat_matrix_order)
        if (to_string(type) == name) return type;
    return std::nullopt;
}

bool can_punch(std::string_view a, std::string_view b) noexcept {
    return can_punch(nat_type_from_string(a).value_or(NatType::unknown),
                     nat_type_from_string(b).value_or(NatType::unknown));
}

}  // namespace punch
