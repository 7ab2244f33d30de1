#pragma once
// TERM, INT and HUP, blocked in every thread and read from one signalfd by the
// main loop: no work ever happens in an asynchronous signal handler.
//
// Construct it before starting any thread, so the threads inherit the mask.

#include <optional>

namespace projectiond::daemon {

class ShutdownSignals {
public:
    ShutdownSignals();
    ShutdownSignals(const ShutdownSignals&) = delete;
    ShutdownSignals& operator=(const ShutdownSignals&) = delete;
    ~ShutdownSignals();

    int fd() const noexcept { return fd_; }
    // The next pending signal number, if any (non-blocking).
    std::optional<int> take();

private:
    int fd_ = -1;
};

} // namespace projectiond::daemon
