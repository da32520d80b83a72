#include "common/duration.hpp"

#include <cstdint>

namespace shoal {

std::optional<Millis> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  // A week is far longer than any timeout here; the cap keeps the arithmetic from overflowing.
  constexpr int64_t kMaxMs = int64_t{7} * 24 * 3600 * 1000;
  int64_t total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t value = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      if (value > kMaxMs) return std::nullopt;
      ++i, ++digits;
    }
    if (digits == 0) return std::nullopt;
    std::string_view rest = text.substr(i);
    int64_t unit_ms;
    if (rest.starts_with("ms")) unit_ms = 1, i += 2;
    else if (rest.starts_with("s")) unit_ms = 1000, i += 1;
    else if (rest.starts_with("m")) unit_ms = 60'000, i += 1;
    else if (rest.starts_with("h")) unit_ms = 3'600'000, i += 1;
    else return std::nullopt;
    total_ms += value * unit_ms;
    if (total_ms > kMaxMs) return std::nullopt;
  }
  return Millis(total_ms);
}

std::string format_duration(Millis d) {
  int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace shoal
