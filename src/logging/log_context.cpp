#include "logging/log_context.hpp"

#include <utility>

namespace projectiond::logging {

LogContext& current_context() noexcept {
    thread_local LogContext context;
    return context;
}

ScopedProjection::ScopedProjection(std::string projection, std::optional<int> partition) : saved_(current_context()) {
    current_context() = LogContext{std::move(projection), partition, std::nullopt};
}

ScopedProjection::~ScopedProjection() {
    current_context() = std::move(saved_);
}

ScopedPosition::ScopedPosition(std::int64_t position) : saved_(current_context().global_position) {
    current_context().global_position = position;
}

ScopedPosition::~ScopedPosition() {
    current_context().global_position = saved_;
}

} // namespace projectiond::logging
