#include "config/listen_address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace projectiond::config {

namespace {

constexpr std::string_view how = "write HOST:PORT, e.g. 127.0.0.1:9543, \"[::1]:9543\" or localhost:9543";

std::uint16_t port_of(std::string_view text) {
    unsigned value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > 65535) {
        throw std::invalid_argument(fmt::format("the port must be a number from 1 to 65535 (or 0 for any free "
                                                "one, which the log names), not '{}'",
                                                text));
    }
    return static_cast<std::uint16_t>(value);
}

// RFC 1123: dot-separated labels of letters, digits and '-', not starting or
// ending with '-', at most 63 bytes each and 253 in all.
bool is_host_name(std::string_view name) {
    if (name.empty() || name.size() > 253) {
        return false;
    }
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = std::min(name.find('.', start), name.size());
        const std::string_view label = name.substr(start, dot - start);
        const bool valid = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-' &&
                           std::all_of(label.begin(), label.end(),
                                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; });
        if (!valid) {
            return false;
        }
        if (dot == name.size()) {
            return true;
        }
        start = dot + 1;
    }
}

} // namespace

std::string to_string(const ListenAddress& address) {
    return address.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", address.host, address.port)
                                                         : fmt::format("{}:{}", address.host, address.port);
}

ListenAddress parse_listen_address(std::string_view text) {
    if (text.empty()) {
        throw std::invalid_argument(fmt::format("is empty; {}", how));
    }
    if (text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            throw std::invalid_argument(fmt::format("'{}' has no closing ']'; {}", text, how));
        }
        const std::string host(text.substr(1, close - 1));
        in6_addr address{};
        if (inet_pton(AF_INET6, host.c_str(), &address) != 1) {
            throw std::invalid_argument(fmt::format("'{}' is not an IPv6 address", host));
        }
        if (close + 1 >= text.size() || text[close + 1] != ':') {
            throw std::invalid_argument(fmt::format("'{}' has no port; {}", text, how));
        }
        return {host, port_of(text.substr(close + 2))};
    }
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        throw std::invalid_argument(fmt::format("'{}' has no port; {}", text, how));
    }
    const std::string host(text.substr(0, colon));
    if (host.find(':') != std::string::npos) {
        throw std::invalid_argument(
            fmt::format("an IPv6 address goes in brackets, and the value in quotes: \"[{}]:PORT\"", host));
    }
    if (host.empty()) {
        throw std::invalid_argument(fmt::format("'{}' has no host; write 127.0.0.1:PORT for this machine only, "
                                                "0.0.0.0:PORT for every IPv4 address or \"[::]:PORT\" for every "
                                                "address",
                                                text));
    }
    const std::uint16_t port = port_of(text.substr(colon + 1));
    const bool looks_numeric = std::all_of(
        host.begin(), host.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
    if (looks_numeric) {
        in_addr address{};
        if (inet_pton(AF_INET, host.c_str(), &address) != 1) {
            throw std::invalid_argument(fmt::format("'{}' is not an IPv4 address", host));
        }
    } else if (!is_host_name(host)) {
        throw std::invalid_argument(
            fmt::format("'{}' is not a host name (letters, digits, '-' and dots) nor an address; {}", host, how));
    }
    return {host, port};
}

} // namespace projectiond::config
