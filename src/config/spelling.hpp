#pragma once
// "did you mean ...?" for misspelt keys and parameter names.

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace projectiond::config {

// The candidate closest to `word` by edit distance, when it is close enough to
// be a likely typo.
std::optional<std::string_view> closest_spelling(std::string_view word, std::span<const std::string_view> candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);

} // namespace projectiond::config
