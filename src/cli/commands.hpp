#pragma once
// One function per subcommand; each returns the process exit code.

#include "cli/options.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::cli {

int run_daemon(const GlobalOptions& options);
int run_migrate(const GlobalOptions& options);

struct AppendOptions {
    std::int64_t events = 0;
    std::string aggregate_type = "User";
    std::string bounded_context = "Identity";
};
int run_append(const GlobalOptions& options, const AppendOptions& append);

struct StatusOptions {
    bool json = false;
    std::vector<std::string> names;
    std::optional<double> watch_seconds; // --watch: redraw every so many seconds until Ctrl+C
};
int run_status(const GlobalOptions& options, const StatusOptions& status);

int run_check_config(const GlobalOptions& options);

struct ResetOptions {
    std::string name;
    std::optional<std::int64_t> to_position;
};
int run_reset(const GlobalOptions& options, const ResetOptions& reset);

// rebuild NAME / prune NAME (blue/green versions)
int run_rebuild(const GlobalOptions& options, const std::string& name);
int run_prune(const GlobalOptions& options, const std::string& name);

// pause NAME / resume NAME
int run_pause(const GlobalOptions& options, const std::string& name, bool pause);

struct DeadLetterOptions {
    bool json = false;
    std::optional<std::string> name;
};
int run_dead_letters(const GlobalOptions& options, const DeadLetterOptions& dead_letters);

} // namespace projectiond::cli
