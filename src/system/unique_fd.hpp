#pragma once
// An owning file descriptor: closed exactly once, by whoever holds it last
// (MPD's UniqueFileDescriptor). Sockets, signalfds and eventfds live in one.

#include <unistd.h>

#include <utility>

namespace projectiond::system {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives the descriptor up without closing it (to a library that closes it).
    int release() noexcept { return std::exchange(fd_, -1); }

    // close(2)'s result is ignored on purpose: on Linux the descriptor is gone
    // whatever it returns, and retrying could close someone else's.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

} // namespace projectiond::system
