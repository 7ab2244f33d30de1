#include "config/duration.hpp"

#include <charconv>
#include <limits>

namespace projectiond::config {

std::optional<Duration> parse_duration(std::string_view text) {
    std::int64_t amount = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), amount);
    if (error != std::errc() || end == text.data() || amount < 0) {
        return std::nullopt;
    }
    const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    std::int64_t scale = 0;
    if (unit == "ms") {
        scale = 1;
    } else if (unit == "s") {
        scale = 1000;
    } else if (unit == "m") {
        scale = 60 * 1000;
    } else {
        return std::nullopt;
    }
    if (amount > std::numeric_limits<std::int64_t>::max() / scale) {
        return std::nullopt;
    }
    return Duration(amount * scale);
}

std::string format_duration(Duration duration) {
    const auto ms = duration.count();
    if (ms != 0 && ms % 60000 == 0) {
        return std::to_string(ms / 60000) + "m";
    }
    if (ms != 0 && ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

} // namespace projectiond::config
