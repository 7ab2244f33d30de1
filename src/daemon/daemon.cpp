#include "daemon/daemon.hpp"

#include "config/loader.hpp"
#include "daemon/projection_setup.hpp"
#include "daemon/signals.hpp"
#include "daemon/supervisor.hpp"
#include "projection/backoff.hpp"
#include "projection/handler_check.hpp"
#include "store/connect.hpp"
#include "store/database_error.hpp"
#include "store/migrations.hpp"
#include "systemd/notifier.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <climits>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::daemon {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int exit_ok = 0;
constexpr int exit_unavailable = 69;
constexpr int exit_config = 78;

std::string owner_name() {
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) != 0) {
        host[0] = '\0';
    }
    return fmt::format("{} pid {}", host, getpid());
}

std::vector<const config::Projection*> all_of(const config::Config& config) {
    std::vector<const config::Projection*> out;
    for (const auto& projection : config.projections) {
        out.push_back(&projection);
    }
    return out;
}

class Daemon {
public:
    Daemon(config::Config config, const DaemonOptions& options)
        : config_(std::move(config)), options_(options), supervisor_(runner_settings(config_)) {
        interrupt_.fd = signals_.fd();
        interrupt_.give_up = [this] { return take_signals_while_starting(); };
    }

    int run() {
        spdlog::info("projectiond starting: {} projection{}, configuration {}", config_.projections.size(),
                     config_.projections.size() == 1 ? "" : "s", config_.source);
        notifier_.status("starting");
        if (const int code = prepare_database(); code >= 0) {
            return code;
        }
        for (const auto& projection : config_.projections) {
            supervisor_.start(projection);
        }
        return main_loop();
    }

private:
    projection::RunnerSettings runner_settings(const config::Config& config) const {
        return projection::RunnerSettings{store::connect_options(config.database, options_.database_url),
                                          config.database, owner_name()};
    }

    // While starting, a TERM or INT ends the start; a HUP is noted for later.
    bool take_signals_while_starting() {
        while (const auto signal = signals_.take()) {
            if (*signal == SIGHUP) {
                spdlog::info("SIGHUP received while starting; the configuration is reloaded once started");
                reload_pending_ = true;
            } else {
                spdlog::info("stop requested while starting");
                stop_requested_ = true;
            }
        }
        return stop_requested_;
    }

    // Waits for the database, checks the schema and runs the setups.
    // Returns an exit code to leave with, or -1 to go on.
    int prepare_database() {
        projection::Backoff backoff(500ms, 30s);
        for (;;) {
            try {
                store::ConnectOptions options = store::connect_options(config_.database, options_.database_url);
                options.interrupt = &interrupt_;
                options.application_name = "projectiond setup";
                store::Connection conn = store::Connection::open(options);
                const store::SchemaState schema = store::schema_state(conn);
                if (!schema.current()) {
                    spdlog::error("the database schema is at version {} but this projectiond needs version {}: "
                                  "run `projectiond migrate`, then start projectiond again",
                                  schema.applied_version, schema.latest_version);
                    return exit_unavailable;
                }
                run_setup(conn, all_of(config_));
                const auto problems =
                    projection::check_handlers(conn, config_, all_of(config_), projection::SetupHandling::already_run);
                for (const auto& problem : problems) {
                    spdlog::error("{}", problem);
                }
                return problems.empty() ? -1 : exit_config;
            } catch (const store::Interrupted&) {
                return exit_ok;
            } catch (const store::DatabaseError& error) {
                if (!error.transient()) {
                    spdlog::error("{}; not starting (configuration {})", error.what(), config_.source);
                    return exit_config;
                }
                const auto delay = backoff.next();
                notifier_.status("waiting for database");
                spdlog::warn("database unavailable: {}; retrying in {} ms", error.what(), delay.count());
                pollfd fds{signals_.fd(), POLLIN, 0};
                ::poll(&fds, 1, static_cast<int>(delay.count()));
                if (take_signals_while_starting()) {
                    return exit_ok;
                }
            }
        }
    }

    // A statement can legitimately run for statement_timeout without any sign
    // of life; only a runner silent for longer than that is wedged.
    Clock::duration stall_limit() const {
        const auto half = notifier_.watchdog_interval().value_or(std::chrono::microseconds(30s));
        return std::max<Clock::duration>(half, config_.database.statement_timeout + 5s);
    }

    int main_loop() {
        bool ready = false;
        bool draining = false;
        bool aborted = false;
        bool wedge_reported = false;
        Clock::time_point drain_deadline;
        Clock::time_point next_ping = Clock::now();
        Clock::time_point next_extend = Clock::now();
        const auto ping_interval = notifier_.watchdog_interval();
        if (stop_requested_) {
            begin_drain(draining, drain_deadline);
        }

        for (;;) {
            auto tick = ready && !draining ? 1000ms : 100ms;
            if (ping_interval) {
                tick = std::min<std::chrono::milliseconds>(
                    tick, std::chrono::duration_cast<std::chrono::milliseconds>(*ping_interval / 2));
            }
            pollfd fds{signals_.fd(), POLLIN, 0};
            ::poll(&fds, 1, static_cast<int>(tick.count()));

            while (const auto signal = signals_.take()) {
                if (*signal == SIGHUP) {
                    if (!draining) {
                        reload();
                    }
                } else if (!draining) {
                    spdlog::info("{} received: letting in-flight batches commit, then stopping (send it again to "
                                 "abort them)",
                                 *signal == SIGINT ? "SIGINT" : "SIGTERM");
                    begin_drain(draining, drain_deadline);
                } else if (!aborted) {
                    spdlog::warn("second stop signal: rolling back in-flight batches and stopping now");
                    supervisor_.request_all(projection::StopLevel::abort);
                    aborted = true;
                }
            }
            supervisor_.reap();

            const auto now = Clock::now();
            if (!ready && !draining && supervisor_.all_started()) {
                ready = true;
                notifier_.ready();
                spdlog::info("ready: {} runner{} started", supervisor_.runner_count(),
                             supervisor_.runner_count() == 1 ? "" : "s");
                if (reload_pending_) {
                    reload_pending_ = false;
                    reload();
                }
            }
            if (ping_interval && now >= next_ping) {
                next_ping = now + *ping_interval;
                if (supervisor_.all_alive(stall_limit())) {
                    notifier_.watchdog();
                    wedge_reported = false;
                } else if (!wedge_reported) {
                    spdlog::error("a runner has shown no progress for over {} s; withholding the watchdog ping so "
                                  "that systemd restarts the service",
                                  std::chrono::duration_cast<std::chrono::seconds>(stall_limit()).count());
                    wedge_reported = true;
                }
            }
            if (!draining) {
                notifier_.status(supervisor_.summary());
                continue;
            }
            if (supervisor_.all_finished()) {
                break;
            }
            if (!aborted && now >= drain_deadline) {
                spdlog::warn("shutdown_timeout ({}) reached: rolling back the batches still in flight",
                             config::format_duration(config_.daemon.shutdown_timeout));
                supervisor_.request_all(projection::StopLevel::abort);
                aborted = true;
            }
            if (now >= next_extend) {
                notifier_.extend_timeout(std::chrono::microseconds(5s));
                next_extend = now + 1s;
            }
        }
        supervisor_.join_all();
        spdlog::info("stopped{}", aborted ? " (in-flight batches rolled back)" : "; all checkpoints saved");
        return exit_ok;
    }

    void begin_drain(bool& draining, Clock::time_point& deadline) {
        draining = true;
        deadline = Clock::now() + config_.daemon.shutdown_timeout;
        notifier_.stopping();
        notifier_.status("stopping: letting in-flight batches commit");
        notifier_.extend_timeout(std::chrono::microseconds(5s));
        supervisor_.request_all(projection::StopLevel::drain);
    }

    void reload() {
        notifier_.reloading();
        spdlog::info("SIGHUP received: reloading {}", options_.config_path);
        try {
            config::Config next = config::load_config_file(options_.config_path);
            const ReloadPlan plan = plan_reload(config_, next);
            if (!plan.start.empty()) {
                store::ConnectOptions options = store::connect_options(next.database, options_.database_url);
                options.application_name = "projectiond setup";
                store::Connection conn = store::Connection::open(options);
                run_setup(conn, plan.start);
                const auto problems =
                    projection::check_handlers(conn, next, plan.start, projection::SetupHandling::already_run);
                if (!problems.empty()) {
                    throw config::ConfigError(fmt::format("{}", fmt::join(problems, "\n")));
                }
            }
            for (const auto& name : plan.stop) {
                supervisor_.retire(name);
            }
            supervisor_.replace_settings(runner_settings(next));
            for (const config::Projection* projection : plan.start) {
                supervisor_.start(*projection);
            }
            spdlog::info("reloaded: {} added, {} changed (restarted), {} removed, {} unchanged", plan.added,
                         plan.changed, plan.removed, plan.unchanged.size());
            config_ = std::move(next);
        } catch (const config::ConfigError& error) {
            spdlog::error("the new configuration is invalid; keeping the running one:\n{}", error.what());
        } catch (const std::exception& error) {
            spdlog::error("reload failed, keeping the running configuration: {}", error.what());
        }
        notifier_.ready();
    }

    config::Config config_;
    DaemonOptions options_;
    ShutdownSignals signals_; // blocks TERM/INT/HUP before any runner thread starts
    systemd::Notifier notifier_;
    Supervisor supervisor_;
    store::Interrupt interrupt_;
    bool stop_requested_ = false;
    bool reload_pending_ = false;
};

} // namespace

int run(config::Config config, const DaemonOptions& options) {
    Daemon daemon(std::move(config), options);
    return daemon.run();
}

} // namespace projectiond::daemon
