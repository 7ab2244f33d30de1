#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "config/unreachable_handlers.hpp"
#include "projection/handler_check.hpp"
#include "projection/partition_check.hpp"
#include "store/connect.hpp"
#include "store/database_error.hpp"
#include "store/migrations.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_check_config(const GlobalOptions& options) {
    const config::Config config = load_configuration(options, true);
    std::size_t partitions = 0;
    std::vector<const config::Projection*> projections;
    for (const auto& projection : config.projections) {
        partitions += static_cast<std::size_t>(projection.partitions);
        projections.push_back(&projection);
    }
    for (const auto& warning : config::find_unreachable_handlers(config)) {
        fmt::print(stderr, "{}\n", config::format_located(config.source, warning));
    }
    // Code handlers need no database: their programs and plugins are checked here.
    std::vector<config::Located> problems = projection::find_code_handler_problems(projections);

    // The handlers' SQL can only be judged by the database: ask it when it is there.
    const store::ConnectOptions connect_options = store::connect_options(config.database, options.database_url);
    std::optional<store::Connection> conn;
    try {
        store::Connection opened = store::Connection::open(connect_options);
        store::configure_command_session(opened);
        conn = std::move(opened);
    } catch (const store::DatabaseError& error) {
        fmt::print(stderr,
                   "projectiond: note: the database is not reachable ({}), so the handlers' SQL was not "
                   "checked\n",
                   error.what());
    }
    bool checked = false;
    if (conn) {
        // Batch handlers read the events table and partition counts live in
        // the checkpoints: without the event store there is nothing to check against.
        const store::SchemaState schema = store::schema_state(*conn);
        if (!schema.current()) {
            fmt::print(stderr,
                       "projectiond: note: the database schema is at version {} but this projectiond needs "
                       "version {} (run `projectiond migrate`), so the handlers' SQL was not checked\n",
                       schema.applied_version, schema.latest_version);
        } else {
            auto found =
                projection::find_handler_problems(*conn, projections, projection::SetupHandling::run_and_roll_back);
            auto changes = projection::find_partition_changes(*conn, projections);
            problems.insert(problems.end(), found.begin(), found.end());
            problems.insert(problems.end(), changes.begin(), changes.end());
            checked = true;
        }
    }
    config::sort_by_position(problems);
    for (const auto& problem : problems) {
        fmt::print(stderr, "{}\n", config::format_located(config.source, problem));
    }
    if (!problems.empty()) {
        return exit_config;
    }
    fmt::print("{}: configuration is valid: {} projection{}, {} runner{}{}\n", config.source, config.projections.size(),
               config.projections.size() == 1 ? "" : "s", partitions, partitions == 1 ? "" : "s",
               checked ? "; every handler compiles against the database" : "");
    return exit_ok;
}

} // namespace projectiond::cli
