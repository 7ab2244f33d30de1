#pragma once
// What a runner shows the rest of the daemon: its state for STATUS=, logs and
// metrics, and a heartbeat the watchdog reads. Written by the runner thread,
// read by the main thread and the watcher.

#include "store/checkpoints.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace projectiond::projection {

enum class RunnerState {
    starting,
    standby,              // another daemon owns the partition (or nobody gave it to this one yet)
    waiting_for_database, // connecting, or reconnecting after a failure
    catching_up,
    caught_up,
    paused,  // `projectiond pause`
    failed,  // on_error: stop tripped; `projectiond resume` retries
    blocked, // the store cannot be read safely yet (see the error)
    stopped,
};

const char* to_string(RunnerState state) noexcept;

struct RunnerSnapshot {
    RunnerState state = RunnerState::starting;
    bool started = false; // the thread runs and knows whether it owns its partition
    bool owned = false;
    std::int64_t last_global_position = 0;
    store::Cursor cursor;
    std::optional<std::string> error;
    std::optional<std::int64_t> failed_position;
    std::int64_t events_applied = 0; // since the runner started
    std::int64_t batches = 0;
    std::int64_t dead_letters = 0;
};

class RunnerHealth {
public:
    using Clock = std::chrono::steady_clock;

    RunnerSnapshot snapshot() const;
    template <typename F> void update(F&& change) {
        std::lock_guard lock(mutex_);
        change(snapshot_);
    }

    // Progress or a healthy wait happened now.
    void beat() noexcept { heartbeat_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed); }
    Clock::time_point last_beat() const noexcept {
        return Clock::time_point(Clock::duration(heartbeat_.load(std::memory_order_relaxed)));
    }

private:
    mutable std::mutex mutex_;
    RunnerSnapshot snapshot_;
    std::atomic<Clock::rep> heartbeat_{Clock::now().time_since_epoch().count()};
};

} // namespace projectiond::projection
