#include "config/unreachable_handlers.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace projectiond::config {

std::vector<Located> find_unreachable_handlers(const Config& config) {
    std::vector<Located> warnings;
    for (const Projection& projection : config.projections) {
        if (projection.event_types.empty()) {
            continue; // no filter: every event type reaches the handlers
        }
        for (const Handler& handler : projection.handlers) {
            const auto& allowed = projection.event_types;
            if (handler.event_type == "*" ||
                std::find(allowed.begin(), allowed.end(), handler.event_type) != allowed.end()) {
                continue;
            }
            warnings.push_back(
                {handler.mark,
                 fmt::format("warning: the handler for '{}' in projection '{}' can never run: the "
                             "projection's `event_types` ({}) leave '{}' out; add it there or remove "
                             "the handler",
                             handler.event_type, projection.name, fmt::join(allowed, ", "), handler.event_type)});
        }
    }
    return warnings;
}

} // namespace projectiond::config
