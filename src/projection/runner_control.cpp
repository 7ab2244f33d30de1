#include "projection/runner_control.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace projectiond::projection {

RunnerControl::RunnerControl() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!fd_) {
        throw std::system_error(errno, std::generic_category(), "eventfd");
    }
}

void RunnerControl::signal() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(fd_.get(), &one, sizeof one);
}

void RunnerControl::request(StopLevel level) noexcept {
    int current = level_.load();
    while (current < static_cast<int>(level) && !level_.compare_exchange_weak(current, static_cast<int>(level))) {
    }
    signal();
}

void RunnerControl::wake() noexcept {
    woken_.store(true);
    signal();
}

bool RunnerControl::consume(StopLevel threshold) noexcept {
    std::uint64_t count = 0;
    [[maybe_unused]] const auto read = ::read(fd_.get(), &count, sizeof count);
    return at_least(threshold);
}

bool RunnerControl::wait_until(Clock::time_point deadline, StopLevel threshold) noexcept {
    for (;;) {
        if (consume(threshold)) {
            return false;
        }
        if (woken_.load()) {
            return true;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            return true;
        }
        pollfd fds{fd_.get(), POLLIN, 0};
        if (::poll(&fds, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
            return true;
        }
    }
}

bool RunnerControl::sleep_for(std::chrono::milliseconds duration, StopLevel threshold) noexcept {
    const auto deadline = Clock::now() + duration;
    for (;;) {
        if (consume(threshold)) {
            return false;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            return true;
        }
        pollfd fds{fd_.get(), POLLIN, 0};
        if (::poll(&fds, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
            return true;
        }
    }
}

} // namespace projectiond::projection
