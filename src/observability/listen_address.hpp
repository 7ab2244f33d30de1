#pragma once
// The listening socket made from `http.listen` (parsed by config/listen_address).

#include "config/listen_address.hpp"
#include "system/unique_fd.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace projectiond::observability {

using config::ListenAddress;
using config::parse_listen_address;

// A socket bound to `address` and listening. A host name is resolved and the
// first of its addresses that can be bound is used. Throws std::runtime_error
// like "cannot listen on 127.0.0.1:9187: Address already in use".
system::UniqueFd listen_on(const ListenAddress& address, int backlog = 128);

// The port a listening socket is bound to (what port 0 turned into).
std::uint16_t bound_port(int socket_fd);

} // namespace projectiond::observability
