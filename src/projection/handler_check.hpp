#pragma once
// Asks the database whether every handler statement compiles (PREPARE), so
// that a typo or a missing table is reported with its place in the
// configuration before any runner starts, not as a runner retrying forever.

#include "config/config.hpp"
#include "store/connection.hpp"

#include <string>
#include <vector>

namespace projectiond::projection {

enum class SetupHandling {
    already_run,      // the daemon ran the setup before asking
    run_and_roll_back // check-config: run it inside the check's transaction, then undo it
};

// One message per problem: "file:line:column: ...". Empty when all is well.
// A lost connection is thrown (store::DatabaseError).
std::vector<std::string> check_handlers(store::Connection& conn, const config::Config& config,
                                        const std::vector<const config::Projection*>& projections, SetupHandling setup);

} // namespace projectiond::projection
