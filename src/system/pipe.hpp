#pragma once
// Pipes with owned ends, for talking to child processes.

#include "system/unique_fd.hpp"

namespace projectiond::system {

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

// pipe2() with `flags` (O_CLOEXEC, and O_NONBLOCK as needed). Throws
// std::system_error.
Pipe make_pipe(int flags);

// Sets or clears O_NONBLOCK. Throws std::system_error.
void set_nonblocking(int fd, bool nonblocking);

} // namespace projectiond::system
