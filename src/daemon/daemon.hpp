#pragma once
// `projectiond run`: the daemon's main loop. Starts the runners, tells systemd
// how things are (READY, STATUS, WATCHDOG), reloads on SIGHUP, and drains on
// SIGTERM/SIGINT (a second signal, or shutdown_timeout, aborts).

#include "config/config.hpp"

#include <optional>
#include <string>

namespace projectiond::daemon {

struct DaemonOptions {
    std::string config_path;                 // re-read on SIGHUP
    std::optional<std::string> database_url; // --database-url, kept across reloads
};

// Returns the exit code. Throws config::ConfigError or store::DatabaseError
// for problems found before the runners start.
int run(config::Config config, const DaemonOptions& options);

} // namespace projectiond::daemon
