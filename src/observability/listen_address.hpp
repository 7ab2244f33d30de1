#pragma once
// `http.listen`'s HOST:PORT, and the listening socket made from it.

#include "system/unique_fd.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace projectiond::observability {

struct ListenAddress {
    std::string host; // an IPv4 or IPv6 address (without brackets), a host name, or empty for every interface
    std::uint16_t port = 0;

    // As written in the configuration: "127.0.0.1:9187", "[::1]:9187", ":9187".
    std::string to_string() const;
};

// Accepts HOST:PORT, [IPv6]:PORT and :PORT; port 0 asks the kernel for a free
// one. Throws std::invalid_argument naming what is wrong.
ListenAddress parse_listen_address(std::string_view text);

// A socket bound to `address` and listening. A host name is resolved and the
// first of its addresses that can be bound is used. Throws std::runtime_error
// like "cannot listen on 127.0.0.1:9187: Address already in use".
system::UniqueFd listen_on(const ListenAddress& address, int backlog = 128);

// The port a listening socket is bound to (what port 0 turned into).
std::uint16_t bound_port(int socket_fd);

} // namespace projectiond::observability
