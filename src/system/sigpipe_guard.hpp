#pragma once
// Writing to a pipe whose reader has gone raises SIGPIPE, which kills the
// process unless it is handled. The daemon keeps SIGPIPE's default action (a
// library should not change a process-wide disposition), so whoever writes to
// a child's pipe holds one of these: SIGPIPE is blocked in the calling thread
// while it lives, a SIGPIPE raised meanwhile is discarded, and the write
// reports EPIPE instead. libpq does the same around its socket writes.

#include <signal.h>

namespace projectiond::system {

class SigpipeGuard {
public:
    SigpipeGuard() noexcept;
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;
    ~SigpipeGuard();

private:
    sigset_t saved_mask_{};
    bool was_pending_ = false;
};

} // namespace projectiond::system
