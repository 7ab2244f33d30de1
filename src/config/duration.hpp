#pragma once
// Durations as written in the configuration: "250ms", "5s", "2m".

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace projectiond::config {

using Duration = std::chrono::milliseconds;

// nullopt when `text` is not a number followed by ms, s or m.
std::optional<Duration> parse_duration(std::string_view text);

// The shortest exact spelling: 1500 ms -> "1500ms", 60000 ms -> "1m".
std::string format_duration(Duration duration);

} // namespace projectiond::config
