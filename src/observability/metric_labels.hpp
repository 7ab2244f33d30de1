#pragma once
// The fixed label values of projectiond's metrics: a runner's state (one-hot
// in projectiond_projection_state) and the kinds of failure it counts.
// Dashboards and alerts match these strings, so they never change meaning.

#include <array>
#include <cstdint>
#include <string_view>

namespace projectiond::observability {

enum class ProjectionState : std::uint8_t {
    starting,
    standby, // another daemon owns the partition; this one is ready to take it over
    catching_up,
    caught_up,
    paused,
    rebuilding,
    failed,
    waiting_for_database,
    stopped,
};

inline constexpr std::array projection_states{
    ProjectionState::starting,    ProjectionState::standby,
    ProjectionState::catching_up, ProjectionState::caught_up,
    ProjectionState::paused,      ProjectionState::rebuilding,
    ProjectionState::failed,      ProjectionState::waiting_for_database,
    ProjectionState::stopped,
};

std::string_view to_string(ProjectionState state) noexcept;

enum class FailureKind : std::uint8_t {
    handler,  // a handler's SQL (or code) failed on an event
    database, // the connection or the server failed, whatever the events
    fenced,   // a commit refused because this daemon no longer owns the partition
};

inline constexpr std::array failure_kinds{FailureKind::handler, FailureKind::database, FailureKind::fenced};

std::string_view to_string(FailureKind kind) noexcept;

} // namespace projectiond::observability
