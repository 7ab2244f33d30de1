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

std::invalid_argument bad_address(std::string_view text, std::string_view why) {
    return std::invalid_argument(
        fmt::format("invalid listen address '{}': {} (expected HOST:PORT, [IPv6]:PORT or :PORT)", text, why));
}

struct AddrinfoDeleter {
    void operator()(addrinfo* list) const noexcept { freeaddrinfo(list); }
};
using AddrinfoList = std::unique_ptr<addrinfo, AddrinfoDeleter>;

} // namespace

std::string ListenAddress::to_string() const {
    if (host.find(':') != std::string::npos) {
        return fmt::format("[{}]:{}", host, port);
    }
    return fmt::format("{}:{}", host, port);
}

ListenAddress parse_listen_address(std::string_view text) {
    ListenAddress address;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            throw bad_address(text, "missing ']'");
        }
        address.host = std::string(text.substr(1, close - 1));
        if (address.host.empty()) {
            throw bad_address(text, "empty IPv6 address");
        }
        if (close + 1 >= text.size() || text[close + 1] != ':') {
            throw bad_address(text, "missing ':PORT' after ']'");
        }
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            throw bad_address(text, "missing ':PORT'");
        }
        address.host = std::string(text.substr(0, colon));
        if (address.host.find(':') != std::string::npos) {
            throw bad_address(text, "an IPv6 address needs brackets");
        }
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
        throw bad_address(text, fmt::format("port '{}' is not a number from 0 to 65535", port_text));
    }
    address.port = static_cast<std::uint16_t>(port);
    return address;
}

system::UniqueFd listen_on(const ListenAddress& address, int backlog) {
    const std::string where = address.to_string();
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
