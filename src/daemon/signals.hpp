#pragma once
// TERM, INT and HUP, blocked in every thread and read from one signalfd by the
// main loop: no work ever happens in an asynchronous signal handler.
//
// Construct it before starting any thread, so the threads inherit the mask.
// The signals stay blocked after it is gone: one arriving while the process
// exits must not kill it halfway through with the default action.

#include "system/unique_fd.hpp"

#include <optional>

namespace projectiond::daemon {

class ShutdownSignals {
public:
    ShutdownSignals();

    int fd() const noexcept { return fd_.get(); }
    // The next pending signal number, if any (non-blocking).
    std::optional<int> take();

private:
    system::UniqueFd fd_;
};

} // namespace projectiond::daemon
