#pragma once
// What a runner shows the rest of the daemon: its state for STATUS= and logs,
// and a heartbeat the watchdog reads. Written by the runner thread, read by the
// main thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace projectiond::projection {

enum class RunnerState {
    starting,
    waiting_for_database,  // connecting, or reconnecting after a failure
    waiting_for_ownership, // another runner owns the partition
    catching_up,
    caught_up,
    failed, // on_error: stop tripped; needs a restart or reset
    stopped,
};

const char* to_string(RunnerState state) noexcept;

struct RunnerSnapshot {
    RunnerState state = RunnerState::starting;
    std::int64_t last_global_position = 0;
    std::int64_t max_global_position = 0; // of the store, at the last read
    std::optional<std::string> error;
    bool started = false; // connected once, and owning or waiting to own its partition

    std::int64_t behind() const noexcept {
        return max_global_position > last_global_position ? max_global_position - last_global_position : 0;
    }
};

class RunnerHealth {
public:
    using Clock = std::chrono::steady_clock;

    RunnerSnapshot snapshot() const;
    template <typename F> void update(F&& change) {
        std::lock_guard lock(mutex_);
        change(snapshot_);
    }

    // Progress or a healthy idle wait happened now.
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
