#include "store/database_error.hpp"

#include <string_view>

namespace projectiond::store {

bool DatabaseError::transient() const noexcept {
    if (connection_lost_) {
        return true;
    }
    // Only these are worth retrying as they are; anything else (a syntax
    // error, a missing table, a constraint, a refused login) says what it is.
    const std::string_view state = sqlstate_;
    return state.starts_with("08") // connection exception
           || state == "40001"     // serialization_failure
           || state == "40P01"     // deadlock_detected
           || state == "55P03"     // lock_not_available (lock_timeout)
           || state == "53300"     // too_many_connections
           || state == "57P01"     // admin_shutdown
           || state == "57P02"     // crash_shutdown
           || state == "57P03"     // cannot_connect_now
           || state == "PJ002";    // checkpoint moved: reload and go on
}

} // namespace projectiond::store
