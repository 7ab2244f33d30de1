#pragma once
// Asks the database whether every handler statement compiles (PREPARE), so
// that a typo, a missing table or a type clash is reported with its place in
// the configuration before any runner starts, not as a runner retrying
// forever.
//
// Per-event statements are prepared with their parameters' types
// (config/parameter_types.hpp), batch statements with an empty relation
// `batch` (config/batch_relation.hpp). An error PostgreSQL places in a
// statement is shown at that line and column of the file; a setup error at
// `setup:`.

#include "config/config.hpp"
#include "store/connection.hpp"

#include <string>
#include <vector>

#include <functional>
#include <optional>

namespace projectiond::projection {

enum class SetupHandling {
    already_run,      // the daemon ran the setup before asking
    run_and_roll_back // check-config: run it inside the check's transaction, then undo it
};

// Each problem with where it is written, in the order found.
// A lost connection is thrown (store::DatabaseError).
// `schema_of` names the schema a projection's setup and handlers run in
// (put first in the search_path; created for the check when missing).
using SchemaOf = std::function<std::optional<std::string>(const config::Projection&)>;
std::vector<config::Located> find_handler_problems(store::Connection& conn,
                                                   const std::vector<const config::Projection*>& projections,
                                                   SetupHandling setup, const SchemaOf& schema_of = {});

// exec programs that cannot be run and plugins that do not load or speak
// another ABI: no database needed.
std::vector<config::Located> find_code_handler_problems(const std::vector<const config::Projection*>& projections);

// One message per problem (the database's and the code handlers'):
// "file:line:column: ...", in file order. Empty
// when all is well. A lost connection is thrown (store::DatabaseError).
std::vector<std::string> check_handlers(store::Connection& conn, const config::Config& config,
                                        const std::vector<const config::Projection*>& projections, SetupHandling setup);

} // namespace projectiond::projection
