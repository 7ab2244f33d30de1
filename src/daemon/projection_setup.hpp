#pragma once
// Runs the projections' `setup:` SQL before their runners start: in
// configuration order, each projection's in its own transaction, one daemon
// at a time (several starting together would race on CREATE TABLE).

#include "config/config.hpp"
#include "store/connection.hpp"

#include <vector>

namespace projectiond::daemon {

// Throws store::DatabaseError naming the projection whose setup failed.
void run_setup(store::Connection& conn, const std::vector<const config::Projection*>& projections);

} // namespace projectiond::daemon
