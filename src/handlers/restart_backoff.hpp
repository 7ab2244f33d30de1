#pragma once
// When a crashed exec handler may be started again: capped exponential
// backoff over consecutive failures, counted from the last one, so a program
// that dies at once is not restarted in a tight loop, and time the engine
// already spent waiting (its own batch retries) counts.
//
// No jitter, unlike reconnects to the shared database: a child is local, and
// there is no herd to spread.

#include <algorithm>
#include <chrono>

namespace projectiond::handlers {

class RestartBackoff {
public:
    using Clock = std::chrono::steady_clock;

    RestartBackoff(std::chrono::milliseconds first, std::chrono::milliseconds cap) : first_(first), cap_(cap) {}

    void failed(Clock::time_point when) noexcept {
        ++failures_;
        failed_at_ = when;
    }
    void succeeded() noexcept { failures_ = 0; }

    int failures() const noexcept { return failures_; }
    // first, 2 first, 4 first, ... up to cap after the last failure.
    Clock::time_point earliest_start() const noexcept {
        if (failures_ == 0) {
            return Clock::time_point::min();
        }
        auto delay = first_;
        for (int n = 1; n < failures_ && delay < cap_; ++n) {
            delay *= 2;
        }
        return failed_at_ + std::min(delay, cap_);
    }

private:
    std::chrono::milliseconds first_;
    std::chrono::milliseconds cap_;
    int failures_ = 0;
    Clock::time_point failed_at_{};
};

} // namespace projectiond::handlers
