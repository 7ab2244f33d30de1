#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "store/demo_events.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_append(const GlobalOptions& options, const AppendOptions& append) {
    if (append.events < 1) {
        throw CommandError(exit_usage, "--events must be at least 1");
    }
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    const store::AppendedRange range =
        store::append_demo_events(conn, append.events, append.aggregate_type, append.bounded_context);
    fmt::print("Appended {} UserCreated event{} ({}/{}) at positions {} to {}\n", range.count,
               range.count == 1 ? "" : "s", append.bounded_context, append.aggregate_type, range.first_position,
               range.last_position);
    return exit_ok;
}

} // namespace projectiond::cli
