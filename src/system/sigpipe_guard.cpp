#include "system/sigpipe_guard.hpp"

#include <pthread.h>

#include <ctime>

namespace projectiond::system {

namespace {
sigset_t only_sigpipe() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    return set;
}

bool sigpipe_pending() noexcept {
    sigset_t pending;
    sigemptyset(&pending);
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}
} // namespace

SigpipeGuard::SigpipeGuard() noexcept {
    const sigset_t set = only_sigpipe();
    pthread_sigmask(SIG_BLOCK, &set, &saved_mask_);
    // One that was already pending belongs to someone else: leave it alone.
    was_pending_ = sigpipe_pending();
}

SigpipeGuard::~SigpipeGuard() {
    if (!was_pending_ && sigpipe_pending()) {
        const sigset_t set = only_sigpipe();
        const timespec no_wait{0, 0};
        sigtimedwait(&set, nullptr, &no_wait);
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
}

} // namespace projectiond::system
