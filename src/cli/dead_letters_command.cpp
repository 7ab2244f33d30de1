#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace projectiond::cli {

int run_dead_letters(const GlobalOptions& options, const DeadLetterOptions& dead_letters) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    if (dead_letters.name && config.find(*dead_letters.name) == nullptr) {
        const store::Result known = conn.exec(
            "SELECT 1 FROM projectiond_projections WHERE projection_name = $1 UNION ALL "
            "SELECT 1 FROM projection_dead_letters WHERE projection_name = $1 LIMIT 1",
            {*dead_letters.name});
        if (known.rows() == 0) {
            throw CommandError(exit_usage, fmt::format("no projection named '{}' in {} or in the database",
                                                       *dead_letters.name, config.source));
        }
    }
    const store::Result rows = conn.exec(R"sql(
SELECT projection_name, partition_index, global_position, event_id::text, event_type, error,
       coalesce(sqlstate, ''), to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
  FROM projection_dead_letters
 WHERE $1::text IS NULL OR projection_name = $1
 ORDER BY projection_name, global_position)sql",
                                         {dead_letters.name});
    if (dead_letters.json) {
        nlohmann::json out = nlohmann::json::array();
        for (int row = 0; row < rows.rows(); ++row) {
            out.push_back({{"projection", rows.text(row, 0)},
                           {"partition", rows.int64(row, 1)},
                           {"global_position", rows.int64(row, 2)},
                           {"event_id", rows.text(row, 3)},
                           {"event_type", rows.text(row, 4)},
                           {"error", rows.text(row, 5)},
                           {"sqlstate", rows.text(row, 6)},
                           {"parked_at", rows.text(row, 7)}});
        }
        fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
        return exit_ok;
    }
    if (rows.rows() == 0) {
        fmt::print("No dead letters{}.\n", dead_letters.name ? fmt::format(" for {}", *dead_letters.name) : "");
        return exit_ok;
    }
    for (int row = 0; row < rows.rows(); ++row) {
        fmt::print("{} partition {}: position {}, event {} ({}), parked {}\n  error: {}{}\n", rows.text(row, 0),
                   rows.text(row, 1), rows.text(row, 2), rows.text(row, 3), rows.text(row, 4), rows.text(row, 7),
                   rows.text(row, 5),
                   rows.text(row, 6).empty() ? std::string() : fmt::format(" (SQLSTATE {})", rows.text(row, 6)));
    }
    return exit_ok;
}

} // namespace projectiond::cli
