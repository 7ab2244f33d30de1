#pragma once
// `http.listen: HOST:PORT`: an IPv4 address, a bracketed IPv6 address or a
// host name, and a port.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace projectiond::config {

struct ListenAddress {
    std::string host; // without brackets
    std::uint16_t port = 0;
    bool operator==(const ListenAddress&) const = default;
};

// Throws std::invalid_argument saying what is wrong and how to write it.
ListenAddress parse_listen_address(std::string_view text);

} // namespace projectiond::config
