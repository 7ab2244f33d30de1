#include "system/pipe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace projectiond::system {

Pipe make_pipe(int flags) {
    int fds[2];
    if (::pipe2(fds, flags) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void set_nonblocking(int fd, bool nonblocking) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) {
        throw std::system_error(errno, std::generic_category(), "fcntl(F_GETFL)");
    }
    const int wanted = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) != 0) {
        throw std::system_error(errno, std::generic_category(), "fcntl(F_SETFL)");
    }
}

} // namespace projectiond::system
