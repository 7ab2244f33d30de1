#pragma once
// Options that every subcommand understands.

#include <optional>
#include <string>

namespace projectiond::cli {

struct GlobalOptions {
    std::string config_path;                 // -c/--config, else $PROJECTIOND_CONFIG, else the default
    bool config_path_given = false;          // named by -c or $PROJECTIOND_CONFIG rather than defaulted
    std::optional<std::string> database_url; // --database-url, overrides database.url
    std::string log_level = "info";
    std::string log_target = "auto";
};

} // namespace projectiond::cli
