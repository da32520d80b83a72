// Durations in the config are strings with a unit: "250ms", "10s", "2m", "1h", or sums such as "1m30s".
#pragma once

#include <sys/time.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace shoal {

using Millis = std::chrono::milliseconds;

// Returns nullopt for anything that is not one or more <digits><unit> groups (units: ms, s, m, h).
std::optional<Millis> parse_duration(std::string_view text);

// The shortest exact form: 1500ms -> "1500ms", 2000ms -> "2s", 120000ms -> "2m".
std::string format_duration(Millis d);

// For libevent's timers.
inline timeval to_timeval(Millis d) {
  return {static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>(d.count() % 1000 * 1000)};
}

}  // namespace shoal
