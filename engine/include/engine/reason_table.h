// A table of reasons, each a name and its help text, made from one X(name, help) list (style
// rule 6): the enumerators, their count and their names all come from the list, so they cannot
// drift apart. The names are what counters, punchctl and Prometheus show, unchanged.
//
//   #define MY_REASONS(X) X(first, "help") X(second, "help")
//   enum class MyReason : std::uint8_t { MY_REASONS(ENGINE_REASON_ENUMERATOR) };
//   inline constexpr std::size_t my_reason_count = 0 MY_REASONS(ENGINE_REASON_COUNT);
//   inline constexpr std::array<ReasonInfo, my_reason_count> my_reasons = {
//       {MY_REASONS(ENGINE_REASON_INFO)}};
#pragma once

#include <string_view>

namespace engine {

struct ReasonInfo {
    std::string_view name;
    std::string_view help;
};

}  // namespace engine

#define ENGINE_REASON_ENUMERATOR(name, help) name,
#define ENGINE_REASON_COUNT(name, help) +1
#define ENGINE_REASON_INFO(name, help) ::engine::ReasonInfo{#name, help},
