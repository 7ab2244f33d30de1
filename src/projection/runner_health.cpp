#include "projection/runner_health.hpp"

namespace projectiond::projection {

const char* to_string(RunnerState state) noexcept {
    switch (state) {
    case RunnerState::starting:
        return "starting";
    case RunnerState::standby:
        return "standby";
    case RunnerState::waiting_for_database:
        return "waiting for database";
    case RunnerState::catching_up:
        return "catching up";
    case RunnerState::caught_up:
        return "caught up";
    case RunnerState::paused:
        return "paused";
    case RunnerState::failed:
        return "failed";
    case RunnerState::blocked:
        return "blocked";
    case RunnerState::stopped:
        return "stopped";
    }
    return "unknown";
}

RunnerSnapshot RunnerHealth::snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_;
}

} // namespace projectiond::projection
