#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "daemon/daemon.hpp"

namespace projectiond::cli {

int run_daemon(const GlobalOptions& options) {
    config::Config config = load_configuration(options, true);
    return daemon::run(std::move(config), daemon::DaemonOptions{options.config_path, options.database_url});
}

} // namespace projectiond::cli
