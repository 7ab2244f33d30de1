#include "observability/listen_address.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::observability {

namespace {

struct AddrinfoDeleter {
    void operator()(addrinfo* list) const noexcept { freeaddrinfo(list); }
};
using AddrinfoList = std::unique_ptr<addrinfo, AddrinfoDeleter>;

} // namespace

system::UniqueFd listen_on(const ListenAddress& address, int backlog) {
    const std::string where = config::to_string(address);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    const std::string service = std::to_string(address.port);
    addrinfo* found = nullptr;
    if (const int error =
            getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(), service.c_str(), &hints, &found);
        error != 0) {
        throw std::runtime_error(fmt::format("cannot listen on {}: {}", where,
                                             error == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(error)));
    }
    const AddrinfoList list(found);
    int last_error = EADDRNOTAVAIL;
    for (const addrinfo* candidate = list.get(); candidate != nullptr; candidate = candidate->ai_next) {
        system::UniqueFd fd(::socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                     candidate->ai_protocol));
        if (!fd) {
            last_error = errno;
            continue;
        }
        // A restarted daemon must get its port back while the old
        // connections linger in TIME_WAIT.
        const int on = 1;
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (::bind(fd.get(), candidate->ai_addr, candidate->ai_addrlen) != 0 || ::listen(fd.get(), backlog) != 0) {
            last_error = errno;
            continue;
        }
        return fd;
    }
    throw std::runtime_error(fmt::format("cannot listen on {}: {}", where, std::strerror(last_error)));
}

std::uint16_t bound_port(int socket_fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    if (getsockname(socket_fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
        throw std::runtime_error(fmt::format("getsockname: {}", std::strerror(errno)));
    }
    if (storage.ss_family == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

} // namespace projectiond::observability
