#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "store/generations.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace projectiond::cli {

int run_rebuild(const GlobalOptions& options, const std::string& name) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    const config::Projection* configured = config.find(name);
    const store::Result live = conn.exec(R"sql(
SELECT g.schema_name, g.version FROM projectiond_projections p
  JOIN projectiond_generations g ON g.projection_name = p.projection_name AND g.generation = p.live_generation
 WHERE p.projection_name = $1)sql",
                                         {name});
    if (configured == nullptr && live.rows() == 0) {
        throw CommandError(exit_usage,
                           fmt::format("no projection named '{}' in {} or in the database", name, config.source));
    }
    const bool has_schema = configured != nullptr ? configured->schema.has_value()
                                                  : live.rows() > 0 && !live.is_null(0, 0);
    if (!has_schema) {
        throw CommandError(exit_usage, fmt::format("projection '{}' has no schema, so it cannot be rebuilt "
                                                   "blue/green (its tables are not kept apart from everything "
                                                   "else). Give it a `schema:` and a new `version:`, or clear its "
                                                   "tables and run `projectiond reset {}`",
                                                   name, name));
    }
    store::request_rebuild(conn, name);
    const std::string schema = configured != nullptr ? *configured->schema : std::string(live.text(0, 0));
    const int version = configured != nullptr ? configured->version : static_cast<int>(live.int64(0, 1));
    fmt::print("Rebuilding {}: version {} is built afresh, from the first event, in schema {}_rebuild_v{}, beside\n"
               "the live one, which keeps serving; it is swapped in when it has caught up.\n"
               "`projectiond status {}` shows its progress. (A daemon that is not running does it when it starts.)\n",
               name, version, schema, version, name);
    return exit_ok;
}

int run_prune(const GlobalOptions& options, const std::string& name) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    const store::Result known = conn.exec("SELECT 1 FROM projectiond_projections WHERE projection_name = $1", {name});
    if (known.rows() == 0 && config.find(name) == nullptr) {
        throw CommandError(exit_usage,
                           fmt::format("no projection named '{}' in {} or in the database", name, config.source));
    }
    const std::vector<std::string> dropped = store::prune_generations(conn, name);
    if (dropped.empty()) {
        fmt::print("Nothing to prune for {}: no version of it has been retired by a swap.\n", name);
    } else {
        fmt::print("Pruned {}: dropped the retired schema{} {} and {} checkpoints.\n", name,
                   dropped.size() == 1 ? "" : "s", fmt::join(dropped, ", "), dropped.size() == 1 ? "its" : "their");
    }
    return exit_ok;
}

} // namespace projectiond::cli
