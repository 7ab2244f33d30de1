#pragma once
// Capped exponential backoff with full jitter, for reconnects and retries.

#include <chrono>
#include <optional>
#include <random>

namespace projectiond::system {

class Backoff {
public:
    Backoff(std::chrono::milliseconds first, std::chrono::milliseconds cap) : first_(first), cap_(cap) {}

    // The next delay: uniformly random in [first/2, ceiling], the ceiling
    // doubling on each call up to the cap.
    std::chrono::milliseconds next();
    void reset() noexcept { ceiling_ = std::chrono::milliseconds(0); }

private:
    std::chrono::milliseconds first_;
    std::chrono::milliseconds cap_;
    std::chrono::milliseconds ceiling_{0};
    // Seeded at the first delay: a runner makes a Backoff for every batch and
    // almost never asks it for one, and std::random_device costs a system call.
    std::optional<std::minstd_rand> random_;
};

} // namespace projectiond::system
