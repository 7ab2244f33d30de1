#pragma once
// `http.listen: HOST:PORT`: an IPv4 address, a bracketed IPv6 address or a
// host name, and a port. The daemon binds what this parses
// (observability/listen_address).

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
// Port 0 asks the system for any free port.
ListenAddress parse_listen_address(std::string_view text);

// As it is written: "127.0.0.1:9543", "[::1]:9543".
std::string to_string(const ListenAddress& address);

} // namespace projectiond::config
