#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "store/transaction.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_pause(const GlobalOptions& options, const std::string& name, bool pause) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    store::Transaction tx(conn);
    if (config.find(name) != nullptr) {
        conn.exec("INSERT INTO projectiond_projections (projection_name) VALUES ($1) "
                  "ON CONFLICT (projection_name) DO NOTHING",
                  {name});
    }
    // The state lives in the database, so every daemon obeys it, and every
    // later start; the notification makes them obey within one batch.
    const store::Result changed =
        pause ? conn.exec("UPDATE projectiond_projections SET paused = true, paused_at = now(), updated_at = now() "
                          "WHERE projection_name = $1 RETURNING 1",
                          {name})
              : conn.exec("UPDATE projectiond_projections SET paused = false, resumed_at = clock_timestamp(), "
                          "updated_at = now() WHERE projection_name = $1 RETURNING 1",
                          {name});
    if (changed.rows() == 0) {
        throw CommandError(exit_usage,
                           fmt::format("no projection named '{}' in {} or in the database", name, config.source));
    }
    int retried = 0;
    if (!pause) {
        const store::Result failed = conn.exec(
            "UPDATE projection_checkpoints SET state = 'active', last_error = NULL, failed_global_position = NULL, "
            "failed_at = NULL WHERE projection_name = $1 AND state = 'failed' RETURNING 1",
            {name});
        retried = failed.rows();
    }
    conn.exec("SELECT pg_notify('projectiond_control', $1)", {name});
    tx.commit();
    if (pause) {
        fmt::print("Paused {}: every daemon stops taking batches for it (the batch in flight commits).\n"
                   "It stays paused across restarts; `projectiond resume {}` continues.\n",
                   name, name);
    } else if (retried > 0) {
        fmt::print("Resumed {}: {} failed partition{} will be retried from {} checkpoint{} now.\n", name, retried,
                   retried == 1 ? "" : "s", retried == 1 ? "its" : "their", retried == 1 ? "" : "s");
    } else {
        fmt::print("Resumed {}: every daemon takes batches for it again.\n", name);
    }
    return exit_ok;
}

} // namespace projectiond::cli
