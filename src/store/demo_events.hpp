#pragma once
// The demo events of the reference walkthrough: "User 1", "User 2", ... each a
// UserCreated event of a fresh aggregate, with a name and an email.

#include "store/connection.hpp"

#include <cstdint>
#include <string>

namespace projectiond::store {

struct AppendedRange {
    std::int64_t count = 0;
    std::int64_t first_position = 0;
    std::int64_t last_position = 0;
};

AppendedRange append_demo_events(Connection& conn, std::int64_t count, const std::string& aggregate_type,
                                 const std::string& bounded_context);

} // namespace projectiond::store
