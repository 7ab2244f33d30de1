#pragma once
// How the daemon tells one runner to stop: drain (finish the batch in flight,
// take no new one) or abort (abandon the batch in flight; the open transaction
// rolls back). An eventfd wakes the runner out of any wait.

#include <atomic>
#include <chrono>

namespace projectiond::projection {

enum class StopLevel : int { run = 0, drain = 1, abort = 2 };

class RunnerControl {
public:
    RunnerControl();
    RunnerControl(const RunnerControl&) = delete;
    RunnerControl& operator=(const RunnerControl&) = delete;
    ~RunnerControl();

    void request(StopLevel level) noexcept;
    StopLevel level() const noexcept { return static_cast<StopLevel>(level_.load(std::memory_order_acquire)); }
    bool at_least(StopLevel level) const noexcept { return this->level() >= level; }

    int fd() const noexcept { return fd_; }
    // Clears a pending wake-up; true when the level has reached `threshold`.
    bool consume(StopLevel threshold) noexcept;
    // Sleeps up to `duration`; false when woken by a stop at `threshold` or above.
    bool sleep_for(std::chrono::milliseconds duration, StopLevel threshold) noexcept;

private:
    std::atomic<int> level_{0};
    int fd_ = -1;
};

} // namespace projectiond::projection
