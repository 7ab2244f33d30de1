#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_check_config(const GlobalOptions& options) {
    const config::Config config = load_configuration(options, true);
    std::size_t partitions = 0;
    for (const auto& projection : config.projections) {
        partitions += static_cast<std::size_t>(projection.partitions);
    }
    fmt::print("{}: configuration is valid: {} projection{}, {} runner{}\n", config.source,
               config.projections.size(), config.projections.size() == 1 ? "" : "s", partitions,
               partitions == 1 ? "" : "s");
    return exit_ok;
}

} // namespace projectiond::cli
