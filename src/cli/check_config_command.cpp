#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "projection/handler_check.hpp"
#include "store/connect.hpp"
#include "store/database_error.hpp"

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

    // The handlers' SQL can only be judged by the database: ask it when it is there.
    const store::ConnectOptions connect_options = store::connect_options(config.database, options.database_url);
    std::optional<store::Connection> conn;
    try {
        conn = store::Connection::open(connect_options);
    } catch (const store::DatabaseError& error) {
        fmt::print(stderr,
                   "projectiond: note: the database is not reachable ({}), so the handlers' SQL was not "
                   "checked\n",
                   error.what());
    }
    if (conn) {
        const auto problems =
            projection::check_handlers(*conn, config, projections, projection::SetupHandling::run_and_roll_back);
        if (!problems.empty()) {
            for (const auto& problem : problems) {
                fmt::print(stderr, "{}\n", problem);
            }
            return exit_config;
        }
    }
    fmt::print("{}: configuration is valid: {} projection{}, {} runner{}{}\n", config.source, config.projections.size(),
               config.projections.size() == 1 ? "" : "s", partitions, partitions == 1 ? "" : "s",
               conn ? "; every handler compiles against the database" : "");
    return exit_ok;
}

} // namespace projectiond::cli
