#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/status_report.hpp"
#include "store/progress.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_status(const GlobalOptions& options, const StatusOptions& status) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    const store::StoreProgress progress = store::read_progress(conn);
    const auto entries = status_entries(progress, config, status.names);
    if (status.json) {
        fmt::print("{}\n",
                   render_status_json(progress, entries).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
        fmt::print("{}", render_status_text(progress, entries));
    }
    return exit_ok;
}

} // namespace projectiond::cli
