#include "cli/command_context.hpp"

#include "cli/exit_codes.hpp"
#include "config/loader.hpp"
#include "store/connect.hpp"
#include "store/database_error.hpp"
#include "store/migrations.hpp"

#include <filesystem>

#include <fmt/format.h>

namespace projectiond::cli {

config::Config load_configuration(const GlobalOptions& options, bool required) {
    std::error_code ignored;
    if (!required && !options.config_path_given && !std::filesystem::exists(options.config_path, ignored)) {
        config::Config defaults;
        defaults.source = "(no configuration file)";
        return defaults;
    }
    return config::load_config_file(options.config_path);
}

store::Connection connect(const GlobalOptions& options, const config::Config& config) {
    const store::ConnectOptions connect_options = store::connect_options(config.database, options.database_url);
    try {
        store::Connection conn = store::Connection::open(connect_options);
        store::configure_command_session(conn);
        return conn;
    } catch (const store::DatabaseError& error) {
        // Refused (a login, or a URL that does not parse): PostgreSQL is
        // running, or may be; what to check is what was given to reach it.
        const auto* unavailable = dynamic_cast<const store::DatabaseUnavailable*>(&error);
        const bool rejected = unavailable != nullptr && unavailable->rejected();
        throw CommandError(exit_unavailable,
                           fmt::format("{} (database: {}); {}", error.what(),
                                       store::redact_conninfo(connect_options.conninfo),
                                       rejected ? "check database.url or --database-url and the password"
                                                : "check that PostgreSQL is running and that database.url or "
                                                  "--database-url points at it"));
    }
}

void require_current_schema(store::Connection& conn) {
    const store::SchemaState state = store::schema_state(conn);
    if (!state.current()) {
        throw CommandError(exit_unavailable,
                           fmt::format("the database schema is at version {} but this projectiond needs "
                                       "version {}: run `projectiond migrate` first",
                                       state.applied_version, state.latest_version));
    }
}

} // namespace projectiond::cli
