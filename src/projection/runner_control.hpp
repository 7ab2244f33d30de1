#pragma once
// How the daemon talks to one runner thread: stop requests (drain: finish the
// batch in flight, take no new one; abort: abandon the batch in flight, whose
// transaction rolls back) and wake-ups (new events may be there, ownership
// changed). One eventfd wakes the runner out of any wait, a database wait
// included.

#include "system/unique_fd.hpp"

#include <atomic>
#include <chrono>

namespace projectiond::projection {

enum class StopLevel : int { run = 0, drain = 1, abort = 2 };

class RunnerControl {
public:
    using Clock = std::chrono::steady_clock;

    RunnerControl();

    void request(StopLevel level) noexcept;
    StopLevel level() const noexcept { return static_cast<StopLevel>(level_.load(std::memory_order_acquire)); }
    bool at_least(StopLevel level) const noexcept { return this->level() >= level; }

    // Something for the runner to look at; it stays noted until taken.
    void wake() noexcept;
    bool take_wake() noexcept { return woken_.exchange(false); }

    int fd() const noexcept { return fd_.get(); }
    // Clears a pending wake-up of the fd; true when the level has reached `threshold`.
    bool consume(StopLevel threshold) noexcept;
    // Sleeps up to `duration`; false when woken by a stop at `threshold` or above.
    bool sleep_for(std::chrono::milliseconds duration, StopLevel threshold) noexcept;
    // Waits until `deadline` or a wake-up; false when a stop at `threshold` or
    // above came instead.
    bool wait_until(Clock::time_point deadline, StopLevel threshold) noexcept;

private:
    void signal() noexcept;

    std::atomic<int> level_{0};
    std::atomic<bool> woken_{false};
    system::UniqueFd fd_;
};

} // namespace projectiond::projection
