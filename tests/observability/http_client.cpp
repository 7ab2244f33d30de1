#include "http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <doctest/doctest.h>

namespace projectiond::testing {

namespace {

std::optional<HttpResponse> parse(const std::string& raw) {
    const auto end_of_headers = raw.find("\r\n\r\n");
    if (!raw.starts_with("HTTP/1.") || end_of_headers == std::string::npos) {
        return std::nullopt;
    }
    HttpResponse response;
    response.status = std::stoi(raw.substr(9, 3));
    std::size_t line_start = raw.find("\r\n") + 2;
    while (line_start < end_of_headers) {
        const auto line_end = raw.find("\r\n", line_start);
        const std::string line = raw.substr(line_start, line_end - line_start);
        const auto colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            response.headers[name] = value;
        }
        line_start = line_end + 2;
    }
    response.body = raw.substr(end_of_headers + 4);
    return response;
}

} // namespace

system::UniqueFd connect_to(std::uint16_t port, bool ipv6) {
    system::UniqueFd fd(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    int result = -1;
    if (ipv6) {
        sockaddr_in6 address{};
        address.sin6_family = AF_INET6;
        address.sin6_port = htons(port);
        address.sin6_addr = in6addr_loopback;
        result = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
    } else {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        result = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
    }
    if (result != 0) {
        FAIL("connect to port ", port, ": ", std::string(std::strerror(errno)));
    }
    return fd;
}

bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[4096];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd watched{fd, POLLIN, 0};
        if (::poll(&watched, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got <= 0) {
            return true;
        }
    }
}

std::optional<HttpResponse> exchange(std::uint16_t port, const std::string& request, std::chrono::milliseconds timeout,
                                     bool ipv6) {
    const system::UniqueFd fd = connect_to(port, ipv6);
    std::size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t wrote = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (wrote <= 0) {
            break; // the server may refuse and close before taking everything
        }
        sent += static_cast<std::size_t>(wrote);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string raw;
    char buffer[16384];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        pollfd watched{fd.get(), POLLIN, 0};
        if (::poll(&watched, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        const ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
        if (got <= 0) {
            break;
        }
        raw.append(buffer, static_cast<std::size_t>(got));
    }
    return parse(raw);
}

std::optional<HttpResponse> request(std::uint16_t port, const std::string& method, const std::string& path,
                                    std::chrono::milliseconds timeout) {
    return exchange(port, method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", timeout);
}

} // namespace projectiond::testing
