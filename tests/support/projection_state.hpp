#pragma once
// What the integration suites ask about a TestDatabase while a daemon works on
// it: appending demo events, where a projection's checkpoint is, whether it
// has caught up, whether a batch is running.

#include "test_database.hpp"

#include <chrono>
#include <string>

namespace projectiond::testing {

bool contains(const std::string& text, const std::string& part);

// Appends `count` demo UserCreated events ("User 1", ...), each a new aggregate.
void append(const TestDatabase& db, long long count);

// The lowest last_global_position over the projection's partitions (0 when none).
long long checkpoint(const TestDatabase& db, const std::string& projection);

// max(global_position) of the store (0 when empty).
long long max_position(const TestDatabase& db);

// Waits until all `partitions` partitions of `projection` have passed every
// event, read in one snapshot.
bool caught_up(const TestDatabase& db, const std::string& projection,
               std::chrono::milliseconds timeout = std::chrono::seconds(60), int partitions = 1);

// Waits until a statement containing `needle` is running on the server (a
// handler mid-batch, e.g. "pg_sleep").
bool statement_running(const TestDatabase& db, const std::string& needle,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A projection named "counter" that counts events with a statement that is
// wrong if run twice (`UPDATE stats SET n = n + 1`). `extra` is appended
// after the projection (more projections); `handler` replaces its SQL.
std::string counter_config(int batch_size, const std::string& extra = "",
                           const std::string& handler = "UPDATE stats SET n = n + 1 WHERE id = 1");

} // namespace projectiond::testing
