#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "store/checkpoints.hpp"
#include "store/database_error.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_reset(const GlobalOptions& options, const ResetOptions& reset) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    int partitions = 0;
    if (const config::Projection* projection = config.find(reset.name)) {
        partitions = projection->partitions;
    } else {
        const store::Result stored = conn.exec(
            "SELECT max(partition_count) FROM projection_checkpoints c JOIN projectiond_projections p "
            "USING (projection_name) WHERE c.projection_name = $1 AND c.generation = p.live_generation",
            {reset.name});
        if (stored.is_null(0, 0)) {
            throw CommandError(exit_usage, fmt::format("no projection named '{}' in {} or in the database", reset.name,
                                                       config.source));
        }
        partitions = static_cast<int>(stored.int64(0, 0));
    }
    const std::int64_t position = reset.to_position.value_or(0);
    try {
        store::reset_checkpoints(conn, reset.name, partitions, position);
    } catch (const store::DatabaseError& error) {
        if (error.sqlstate() == "PJ003") {
            throw CommandError(exit_unavailable, error.what());
        }
        if (error.sqlstate() == "PJ007") {
            throw CommandError(exit_usage, error.what());
        }
        throw;
    }
    if (position == 0) {
        fmt::print("Reset {} ({} partition{}): every event will be processed again.\n"
                   "Its read-model tables were not touched: clear them first unless its handlers are idempotent.\n",
                   reset.name, partitions, partitions == 1 ? "" : "s");
    } else {
        fmt::print("Reset {} ({} partition{}): exactly the events after position {} will be processed again\n"
                   "(and those it had not reached yet), whatever order their transactions committed in.\n"
                   "Its read-model tables were not touched: remove what the events after position {} wrote first\n"
                   "unless its handlers are idempotent.\n",
                   reset.name, partitions, partitions == 1 ? "" : "s", position, position);
    }
    return exit_ok;
}

} // namespace projectiond::cli
