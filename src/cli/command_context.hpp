#pragma once
// What one-shot commands share: finding the configuration and the database.

#include "cli/options.hpp"
#include "config/config.hpp"
#include "store/connection.hpp"

namespace projectiond::cli {

// Loads the configuration. When `required` is false and the file was only
// defaulted (no -c, no $PROJECTIOND_CONFIG) and does not exist, returns the
// built-in defaults, so `migrate`, `append` and `status` work with just
// --database-url or the PG* environment.
config::Config load_configuration(const GlobalOptions& options, bool required);

// Connects for a one-shot command; exits 69 when the database cannot be reached.
store::Connection connect(const GlobalOptions& options, const config::Config& config);

// Exits 69 with advice when the schema is older than this binary.
void require_current_schema(store::Connection& conn);

} // namespace projectiond::cli
