#include "observability/metric_labels.hpp"

namespace projectiond::observability {

std::string_view to_string(ProjectionState state) noexcept {
    switch (state) {
    case ProjectionState::starting:
        return "starting";
    case ProjectionState::standby:
        return "standby";
    case ProjectionState::catching_up:
        return "catching_up";
    case ProjectionState::caught_up:
        return "caught_up";
    case ProjectionState::paused:
        return "paused";
    case ProjectionState::rebuilding:
        return "rebuilding";
    case ProjectionState::failed:
        return "failed";
    case ProjectionState::waiting_for_database:
        return "waiting_for_database";
    case ProjectionState::stopped:
        return "stopped";
    }
    return "unknown";
}

std::string_view to_string(FailureKind kind) noexcept {
    switch (kind) {
    case FailureKind::handler:
        return "handler";
    case FailureKind::database:
        return "database";
    case FailureKind::fenced:
        return "fenced";
    }
    return "unknown";
}

} // namespace projectiond::observability
