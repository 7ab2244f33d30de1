#pragma once
// Makes projections ready to run before their runners start: registers each
// one's generations (store/generations), runs its `setup:` SQL in its schema
// (configuration order, each in its own transaction, one daemon at a time:
// several starting together would race on CREATE TABLE) and has every
// handler compiled by the database. What comes out is what to run.

#include "config/config.hpp"
#include "daemon/supervisor.hpp"
#include "store/connection.hpp"

#include <optional>
#include <string>
#include <vector>

namespace projectiond::daemon {

// Throws store::DatabaseError naming the projection whose setup failed.
void run_setup(store::Connection& conn, const config::Projection& projection,
               const std::optional<std::string>& schema = std::nullopt);

// The generations to run for `projections` of `config`. Throws
// config::ConfigError with every problem, each with its place in the file
// (a handler that does not compile, a partition count that changed...).
std::vector<RunSpec> prepare_projections(store::Connection& conn, const config::Config& config,
                                         const std::vector<const config::Projection*>& projections);

} // namespace projectiond::daemon
