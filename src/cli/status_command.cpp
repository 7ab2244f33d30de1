#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "observability/status_report.hpp"
#include "store/progress.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <map>

#include <fmt/format.h>

namespace projectiond::cli {

using observability::any_failed;
using observability::render_status_json;
using observability::render_status_text;

namespace {

// The entries `status` shows; an unknown name is a usage error.
std::vector<observability::StatusEntry> selected(const store::StoreProgress& progress, const config::Config& config,
                                                 const std::vector<std::string>& names) {
    std::vector<std::string> unknown;
    auto entries = observability::status_entries(progress, config, names, &unknown);
    if (!unknown.empty()) {
        throw CommandError(exit_usage, fmt::format("no projection named '{}' in {} or in the database", unknown.front(),
                                                   config.source));
    }
    return entries;
}

using Clock = std::chrono::steady_clock;

// Waits `seconds`; false when Ctrl+C (or SIGTERM) came first.
bool wait_or_interrupted(double seconds) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    timespec timeout{};
    timeout.tv_sec = static_cast<time_t>(seconds);
    timeout.tv_nsec = static_cast<long>((seconds - std::floor(seconds)) * 1e9);
    return sigtimedwait(&set, nullptr, &timeout) < 0;
}

std::string duration_text(double seconds) {
    const auto s = static_cast<long long>(seconds + 0.5);
    if (s >= 3600) {
        return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
    }
    if (s >= 60) {
        return fmt::format("{}m{:02}s", s / 60, s % 60);
    }
    return fmt::format("{}s", s);
}

// `status --watch`: the status again and again, with each partition's rate
// and an ETA from the progress between two reads.
int watch(const GlobalOptions& options, const StatusOptions& status, const config::Config& config) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    const bool terminal = isatty(STDOUT_FILENO) != 0;
    std::map<std::pair<std::string, int>, std::pair<std::int64_t, Clock::time_point>> previous;
    bool any_failure = false;
    do {
        std::string screen;
        try {
            store::Connection conn = connect(options, config);
            const store::StoreProgress progress = store::read_progress(conn);
            const auto entries = selected(progress, config, status.names);
            any_failure = any_failed(entries);
            const auto now = Clock::now();
            screen = render_status_text(progress, entries);
            screen += "\n";
            for (const auto& entry : entries) {
                const auto& p = entry.progress;
                const auto key = std::pair(p.projection, p.partition);
                const auto done = p.events_processed;
                std::string line = fmt::format("{}{}: ", p.projection,
                                               p.partitions > 1 ? fmt::format("/{}", p.partition) : std::string());
                if (const auto it = previous.find(key); it != previous.end()) {
                    const double seconds = std::chrono::duration<double>(now - it->second.second).count();
                    const double rate = seconds > 0 ? static_cast<double>(done - it->second.first) / seconds : 0;
                    line += fmt::format("{:.0f} events/s", rate);
                    if (rate > 0 && p.remaining > 0) {
                        line += fmt::format(", about {} to go", duration_text(static_cast<double>(p.remaining) / rate));
                    }
                } else {
                    line += "measuring...";
                }
                screen += line + "\n";
                previous[key] = {done, now};
            }
        } catch (const CommandError& error) {
            screen = fmt::format("{}\n(retrying every {} s)\n", error.what(), *status.watch_seconds);
        }
        if (terminal) {
            fmt::print("\033[H\033[2J");
        } else {
            fmt::print("\n");
        }
        char stamp[32] = {};
        const std::time_t wall = std::time(nullptr);
        std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&wall));
        fmt::print("projectiond status, every {} s (Ctrl+C to stop), at {}\n\n{}", *status.watch_seconds, stamp,
                   screen);
        std::fflush(stdout);
    } while (wait_or_interrupted(*status.watch_seconds));
    return any_failure ? 1 : exit_ok;
}

} // namespace

int run_status(const GlobalOptions& options, const StatusOptions& status) {
    const config::Config config = load_configuration(options, false);
    if (status.watch_seconds) {
        return watch(options, status, config);
    }
    store::Connection conn = connect(options, config);
    require_current_schema(conn);
    const store::StoreProgress progress = store::read_progress(conn);
    const auto entries = selected(progress, config, status.names);
    if (status.json) {
        fmt::print("{}\n",
                   render_status_json(progress, entries).dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
        fmt::print("{}", render_status_text(progress, entries));
    }
    // Scripts and monitoring can rely on the exit status.
    return any_failed(entries) ? 1 : exit_ok;
}

} // namespace projectiond::cli
