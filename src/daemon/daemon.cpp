#include "daemon/daemon.hpp"

#include "build_config.hpp"
#include "config/loader.hpp"
#include "daemon/engine.hpp"
#include "observability/http_server.hpp"
#include "observability/progress_display.hpp"
#include "observability/status_report.hpp"
#include "daemon/projection_setup.hpp"
#include "daemon/signals.hpp"
#include "daemon/supervisor.hpp"
#include "projection/frontier_board.hpp"
#include "projection/handler_check.hpp"
#include "store/connect.hpp"
#include "store/connection_pool.hpp"
#include "store/database_error.hpp"
#include "store/migrations.hpp"
#include "system/backoff.hpp"
#include "system/unique_fd.hpp"
#include "systemd/notifier.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <future>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace projectiond::daemon {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int exit_ok = 0;
constexpr int exit_unavailable = 69;
constexpr int exit_config = 78;

store::DaemonIdentity identity() {
    return store::this_machine(PROJECTIOND_VERSION);
}

std::vector<const config::Projection*> all_of(const config::Config& config) {
    std::vector<const config::Projection*> out;
    for (const auto& projection : config.projections) {
        out.push_back(&projection);
    }
    return out;
}


// A reload prepared off the main loop: the new configuration, what changes,
// and the setups run and handlers checked, or why it cannot be applied.
struct PreparedReload {
    std::optional<config::Config> next;
    // How the new configuration connects, read here (a password file that
    // cannot be read fails the reload, not the daemon).
    std::optional<store::ConnectOptions> connect;
    std::vector<std::string> restart; // projections whose runners are replaced
    std::vector<RunSpec> specs;       // ... by these
    std::string error;
    bool interrupted = false;
    bool refresh = false; // generations changed (a swap, a rebuild), not the file
};

class Daemon {
public:
    Daemon(config::Config config, const DaemonOptions& options)
        : config_(std::move(config)), options_(options), reload_interrupt_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        interrupt_.fd = signals_.fd();
        interrupt_.give_up = [this] { return take_signals_while_starting(); };
        reload_interrupt_.fd = reload_interrupt_fd_.get();
        reload_interrupt_.give_up = [this] {
            std::uint64_t count = 0;
            [[maybe_unused]] const auto got = ::read(reload_interrupt_fd_.get(), &count, sizeof count);
            return reload_cancelled_.load();
        };
    }

    int run() {
        spdlog::info("projectiond {} starting: {} projection{}, configuration {}", PROJECTIOND_VERSION,
                     config_.projections.size(), config_.projections.size() == 1 ? "" : "s", config_.source);
        notifier_.status("starting");
        std::vector<RunSpec> specs;
        if (const int code = prepare_database(specs); code >= 0) {
            return code;
        }
        engine_ = std::make_unique<Engine>(
            EngineSettings{store::connect_options(config_.database, options_.database_url), config_, identity()});
        for (const RunSpec& spec : specs) {
            engine_->supervisor().start(spec);
        }
        engine_->start_coordinator();
        set_shared_config(config_);
        if (config_.http.listen) {
            try {
                http_ = std::make_unique<observability::HttpServer>(*config_.http.listen, http_endpoints());
                spdlog::info("serving /metrics, /health and /status on http://{}", http_->address());
            } catch (const std::exception& error) {
                spdlog::error("{} (http.listen in {}); not starting", error.what(), config_.source);
                return exit_config;
            }
        }
        const int code = main_loop();
        progress_->clear();
        return code;
    }

private:
    store::ConnectOptions connect(const config::Config& config) const {
        return store::connect_options(config.database, options_.database_url);
    }

    void set_shared_config(const config::Config& config) {
        auto shared = std::make_shared<const config::Config>(config);
        std::lock_guard lock(shared_config_mutex_);
        shared_config_ = std::move(shared);
    }
    std::shared_ptr<const config::Config> shared_config() const {
        std::lock_guard lock(shared_config_mutex_);
        return shared_config_;
    }

    // What the HTTP endpoints answer: read from what the runners and the
    // coordinator already hold, never from the database.
    observability::HttpEndpoints http_endpoints() {
        return observability::HttpEndpoints{
            [this] { return engine_->metrics().text(); },
            [this] { return health(); },
            [this] { return status_document(); },
        };
    }

    std::string status_document() const {
        const auto progress = engine_->coordinator().progress().latest();
        if (!progress) {
            return nlohmann::json{{"projections", nlohmann::json::array()}, {"sampled", false}}.dump();
        }
        const auto config = shared_config();
        nlohmann::json document =
            observability::render_status_json(*progress, observability::status_entries(*progress, *config, {}));
        document["sampled"] = true;
        return document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }

    // 200 when every configured projection runs or stands by healthily; 503
    // naming each problem otherwise.
    std::pair<int, std::string> health() const {
        nlohmann::json problems = nlohmann::json::array();
        if (!engine_->coordinator().database_up()) {
            problems.push_back({{"problem", "database unreachable"}});
        }
        const auto config = shared_config();
        const auto limit = stall_limit();
        const auto now = Clock::now();
        engine_->supervisor().for_each_active([&](projection::Runner& runner) {
            const auto snapshot = runner.health().snapshot();
            const auto& key = runner.key();
            if (snapshot.state == projection::RunnerState::failed) {
                problems.push_back({{"projection", key.projection},
                                    {"partition", key.partition},
                                    {"problem", "failed"},
                                    {"position", snapshot.failed_position ? nlohmann::json(*snapshot.failed_position)
                                                                          : nlohmann::json(nullptr)},
                                    {"error", snapshot.error.value_or("")}});
            } else if (snapshot.state == projection::RunnerState::blocked) {
                problems.push_back({{"projection", key.projection},
                                    {"partition", key.partition},
                                    {"problem", "blocked"},
                                    {"error", snapshot.error.value_or("")}});
            } else if (now - runner.health().last_beat() > limit) {
                problems.push_back({{"projection", key.projection},
                                    {"partition", key.partition},
                                    {"problem", "wedged"},
                                    {"silent_seconds",
                                     std::chrono::duration<double>(now - runner.health().last_beat()).count()}});
            }
        });
        if (config->health.max_lag) {
            if (const auto progress = engine_->coordinator().progress().latest()) {
                const double max_lag = std::chrono::duration<double>(*config->health.max_lag).count();
                for (const auto& p : progress->partitions) {
                    if (config->find(p.projection) != nullptr && p.remaining > 0 && p.lag_seconds > max_lag) {
                        problems.push_back({{"projection", p.projection},
                                            {"partition", p.partition},
                                            {"problem", "lagging"},
                                            {"lag_seconds", p.lag_seconds},
                                            {"max_lag_seconds", max_lag}});
                    }
                }
            }
        }
        const bool healthy = problems.empty();
        nlohmann::json body = {{"status", healthy ? "ok" : "unhealthy"}, {"problems", std::move(problems)}};
        return {healthy ? 200 : 503, body.dump()};
    }

    // The live lines of a terminal: each owned partition still catching up.
    void draw_progress() {
        if (!progress_->active()) {
            return;
        }
        const std::int64_t end = engine_->board().view().max_position;
        std::vector<observability::ProgressLine> lines;
        engine_->supervisor().for_each_active([&](projection::Runner& runner) {
            const auto snapshot = runner.health().snapshot();
            if (snapshot.owned && snapshot.state == projection::RunnerState::catching_up &&
                snapshot.last_global_position < end) {
                const auto& key = runner.key();
                lines.push_back({runner.projection().partitions > 1
                                     ? fmt::format("{}/{}", key.projection, key.partition)
                                     : key.projection,
                                 snapshot.last_global_position, end});
            }
        });
        progress_->update(lines);
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

    // Waits for the database, checks the schema, runs the setups and
    // registers the projections. Returns an exit code to leave with, or -1.
    int prepare_database(std::vector<RunSpec>& specs) {
        system::Backoff backoff(500ms, 30s);
        for (;;) {
            try {
                store::ConnectOptions options = store::connect_options(config_.database, options_.database_url);
                options.interrupt = &interrupt_;
                options.application_name = "projectiond setup";
                store::Connection conn = store::Connection::open(options);
                store::configure_session(conn, config_.database, config_.daemon.lease_timeout);
                const store::SchemaState schema = store::schema_state(conn);
                if (!schema.altered.empty()) {
                    spdlog::error("{}", store::describe_altered(schema));
                    return exit_unavailable;
                }
                if (!schema.current()) {
                    spdlog::error("the database schema is at version {} but this projectiond needs version {}: "
                                  "run `projectiond migrate`, then start projectiond again",
                                  schema.applied_version, schema.latest_version);
                    return exit_unavailable;
                }
                specs = prepare_projections(conn, config_, all_of(config_));
                return -1;
            } catch (const store::Interrupted&) {
                return exit_ok;
            } catch (const config::ConfigError& error) {
                spdlog::error("not starting:\n{}", error.what());
                return exit_config;
            } catch (const store::DatabaseUnavailable& error) {
                if (error.rejected()) {
                    spdlog::error("{}; check database.url and the password (password_file or the "
                                  "database-password credential) in {}; not starting",
                                  error.what(), config_.source);
                    return exit_config;
                }
                if (!wait_before_retry(backoff, error)) {
                    return exit_ok;
                }
            } catch (const store::DatabaseError& error) {
                if (!error.transient()) {
                    spdlog::error("{}; not starting (configuration {})", error.what(), config_.source);
                    return exit_config;
                }
                if (!wait_before_retry(backoff, error)) {
                    return exit_ok;
                }
            }
        }
    }

    // False when a stop signal came while waiting.
    bool wait_before_retry(system::Backoff& backoff, const store::DatabaseError& error) {
        const auto delay = backoff.next();
        notifier_.status("waiting for database");
        spdlog::warn("database unavailable: {}; retrying in {} ms", error.what(), delay.count());
        pollfd fds{signals_.fd(), POLLIN, 0};
        ::poll(&fds, 1, static_cast<int>(delay.count()));
        return !take_signals_while_starting();
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
        Clock::time_point next_progress_log = Clock::now() + config_.daemon.log_interval;
        Clock::time_point next_draw = Clock::now();
        const auto ping_interval = notifier_.watchdog_interval();
        if (stop_requested_) {
            begin_drain(draining, drain_deadline);
        }

        for (;;) {
            auto tick = ready && !draining && !reload_ ? 1000ms : 100ms;
            if (ping_interval) {
                tick = std::min<std::chrono::milliseconds>(
                    tick, std::chrono::duration_cast<std::chrono::milliseconds>(*ping_interval / 2));
            }
            pollfd fds{signals_.fd(), POLLIN, 0};
            ::poll(&fds, 1, static_cast<int>(tick.count()));

            while (const auto signal = signals_.take()) {
                if (*signal == SIGHUP) {
                    if (!draining && ready) {
                        begin_reload();
                    } else if (!draining) {
                        reload_pending_ = true;
                    }
                } else if (!draining) {
                    spdlog::info("{} received: letting in-flight batches commit, then stopping (send it again to "
                                 "abort them)",
                                 *signal == SIGINT ? "SIGINT" : "SIGTERM");
                    cancel_reload();
                    begin_drain(draining, drain_deadline);
                } else if (!aborted) {
                    spdlog::warn("second stop signal: rolling back in-flight batches and stopping now");
                    engine_->supervisor().request_all(projection::StopLevel::abort);
                    aborted = true;
                }
            }
            engine_->supervisor().reap();
            finish_reload_if_done();
            if (ready && !draining && !reload_) {
                begin_refresh(engine_->coordinator().take_refresh_requests());
            }

            const auto now = Clock::now();
            if (!ready && !draining && engine_->coordinator().ready() && engine_->supervisor().all_started()) {
                ready = true;
                notifier_.ready();
                spdlog::info("ready: {} runner{} started", engine_->supervisor().runner_count(),
                             engine_->supervisor().runner_count() == 1 ? "" : "s");
                if (reload_pending_) {
                    reload_pending_ = false;
                    begin_reload();
                }
            }
            if (ping_interval && now >= next_ping) {
                next_ping = now + *ping_interval;
                const bool coordinator_alive = now - engine_->coordinator().last_beat() <= stall_limit();
                if (engine_->supervisor().all_alive(stall_limit()) && coordinator_alive) {
                    notifier_.watchdog();
                    wedge_reported = false;
                } else if (!wedge_reported) {
                    spdlog::error("{} has shown no progress for over {} s; withholding the watchdog ping so that "
                                  "systemd restarts the service",
                                  coordinator_alive ? "a runner" : "the coordinator",
                                  std::chrono::duration_cast<std::chrono::seconds>(stall_limit()).count());
                    wedge_reported = true;
                }
            }
            if (now >= next_draw) {
                next_draw = now + 1s;
                draw_progress();
            }
            if (now >= next_progress_log) {
                next_progress_log = now + config_.daemon.log_interval;
                engine_->supervisor().log_progress(engine_->board().view().max_position);
            }
            if (!draining) {
                notifier_.status(reload_ ? "reloading" : engine_->supervisor().summary(engine_->board().view().max_position, engine_->coordinator().database_up()));
                continue;
            }
            if (engine_->supervisor().all_finished()) {
                break;
            }
            if (!aborted && now >= drain_deadline) {
                spdlog::warn("shutdown_timeout ({}) reached: rolling back the batches still in flight",
                             config::format_duration(config_.daemon.shutdown_timeout));
                engine_->supervisor().request_all(projection::StopLevel::abort);
                aborted = true;
            }
            if (now >= next_extend) {
                notifier_.extend_timeout(std::chrono::microseconds(5s));
                next_extend = now + 1s;
            }
        }
        engine_->supervisor().join_all();
        if (!aborted) {
            engine_->coordinator().finish();
        }
        engine_.reset();
        spdlog::info("stopped{}", aborted ? " (in-flight batches rolled back)" : "; all checkpoints saved");
        return exit_ok;
    }

    void begin_drain(bool& draining, Clock::time_point& deadline) {
        draining = true;
        deadline = Clock::now() + config_.daemon.shutdown_timeout;
        notifier_.stopping();
        notifier_.status("stopping: letting in-flight batches commit");
        notifier_.extend_timeout(std::chrono::microseconds(5s));
        engine_->supervisor().request_all(projection::StopLevel::drain);
        engine_->coordinator().drain();
    }

    // Staged reconfiguration (Kea): the new configuration is read, its setups
    // run and its handlers checked on a pooled connection, off the main loop;
    // only when all of that succeeded is anything swapped. A failure changes
    // nothing.
    // Generations changed in the database (a swap, a rebuild asked for, a
    // build started or abandoned by another daemon): the projections'
    // runners are prepared again, like a reload of just them.
    void begin_refresh(std::vector<std::string> names) {
        if (reload_ || names.empty()) {
            return;
        }
        spdlog::debug("preparing again: {}", fmt::join(names, ", "));
        reload_cancelled_ = false;
        reload_ = std::async(std::launch::async,
                             [this, current = config_, names = std::move(names)] { return prepare_reload(current, names); });
    }

    void begin_reload() {
        if (reload_) {
            reload_pending_ = true; // one at a time; this one comes after
            return;
        }
        notifier_.reloading();
        spdlog::info("SIGHUP received: reloading {}", options_.config_path);
        reload_cancelled_ = false;
        reload_ = std::async(std::launch::async, [this, current = config_] { return prepare_reload(current, {}); });
    }

    // A changed http.listen: the new server replaces the old one only once it
    // listens; a failure keeps the old one (and says so).
    void reopen_http(const config::Config& next) {
        if (!next.http.listen) {
            http_.reset();
            spdlog::info("no longer serving HTTP (http.listen removed)");
            return;
        }
        try {
            auto server = std::make_unique<observability::HttpServer>(*next.http.listen, http_endpoints());
            http_ = std::move(server);
            spdlog::info("serving /metrics, /health and /status on http://{}", http_->address());
        } catch (const std::exception& error) {
            spdlog::error("{}; keeping the HTTP server as it was", error.what());
        }
    }

    // `refresh`: not a new file, only these projections' generations to
    // bring in line with the database (a swap or rebuild elsewhere).
    PreparedReload prepare_reload(const config::Config& current, const std::vector<std::string>& refresh) {
        PreparedReload prepared;
        try {
            config::Config next = refresh.empty() ? config::load_config_file(options_.config_path) : current;
            if (refresh.empty()) {
                prepared.connect = connect(next);
            }
            std::vector<const config::Projection*> start;
            if (refresh.empty()) {
                const ReloadPlan plan = plan_reload(current, next);
                prepared.restart = plan.stop;
                start = plan.start;
            } else {
                prepared.refresh = true;
                for (const auto& name : refresh) {
                    if (const config::Projection* projection = next.find(name)) {
                        prepared.restart.push_back(name);
                        start.push_back(projection);
                    }
                }
            }
            if (!start.empty()) {
                auto lease = engine_->pool().acquire(current.database.statement_timeout + 5s, &reload_interrupt_);
                if (!lease) {
                    throw std::runtime_error("no database connection became free to run the setups");
                }
                try {
                    prepared.specs = prepare_projections(lease->conn(), next, start);
                } catch (...) {
                    lease->discard();
                    throw;
                }
            }
            prepared.next = std::move(next);
        } catch (const store::Interrupted&) {
            prepared.interrupted = true;
        } catch (const config::ConfigError& error) {
            prepared.error = refresh.empty()
                                 ? fmt::format("the new configuration is invalid; keeping the running one:\n{}",
                                               error.what())
                                 : fmt::format("could not prepare {} again: {}", fmt::join(refresh, ", "),
                                               error.what());
        } catch (const std::exception& error) {
            prepared.error = fmt::format("reload failed, keeping the running configuration: {}", error.what());
        }
        return prepared;
    }

    void cancel_reload() {
        if (reload_) {
            reload_cancelled_ = true;
            const std::uint64_t one = 1;
            [[maybe_unused]] const auto written = ::write(reload_interrupt_fd_.get(), &one, sizeof one);
            reload_->wait();
            reload_.reset();
        }
    }

    void finish_reload_if_done() {
        if (!reload_ || reload_->wait_for(0s) != std::future_status::ready) {
            return;
        }
        PreparedReload prepared = reload_->get();
        reload_.reset();
        if (prepared.interrupted) {
            spdlog::info("reload abandoned: the daemon is stopping");
            return;
        }
        if (!prepared.next) {
            spdlog::error("{}", prepared.error);
            if (!prepared.refresh) {
                notifier_.ready();
            }
            return;
        }
        config::Config next = std::move(*prepared.next);
        for (const auto& name : prepared.restart) {
            engine_->supervisor().retire(name);
        }
        if (!(config_.database == next.database) || config_.daemon.max_connections != next.daemon.max_connections ||
            config_.daemon.lease_timeout != next.daemon.lease_timeout) {
            engine_->pool().reconfigure(pool_options(*prepared.connect, next));
        }
        for (const RunSpec& spec : prepared.specs) {
            engine_->supervisor().start(spec);
        }
        if (prepared.refresh) {
            engine_->coordinator().poke();
            return;
        }
        const ReloadPlan plan = plan_reload(config_, next);
        engine_->coordinator().reconfigure(coordinator_settings(*prepared.connect, next, identity()));
        if (next.http.listen != config_.http.listen) {
            reopen_http(next);
        }
        set_shared_config(next);
        spdlog::info("reloaded: {} added, {} changed (restarted), {} removed, {} unchanged", plan.added, plan.changed,
                     plan.removed, plan.unchanged.size());
        config_ = std::move(next);
        notifier_.ready();
        if (reload_pending_) {
            reload_pending_ = false;
            begin_reload();
        }
    }

    config::Config config_;
    DaemonOptions options_;
    ShutdownSignals signals_; // blocks TERM/INT/HUP before any other thread starts
    systemd::Notifier notifier_;
    std::unique_ptr<Engine> engine_;
    mutable std::mutex shared_config_mutex_;
    std::shared_ptr<const config::Config> shared_config_; // what the HTTP thread reads
    std::shared_ptr<observability::ProgressDisplay> progress_ = observability::stderr_progress();
    // Declared last: stopped first, before anything its endpoints read.
    std::unique_ptr<observability::HttpServer> http_;
    store::Interrupt interrupt_;
    system::UniqueFd reload_interrupt_fd_;
    store::Interrupt reload_interrupt_;
    std::optional<std::future<PreparedReload>> reload_;
    bool stop_requested_ = false;
    bool reload_pending_ = false;
    std::atomic<bool> reload_cancelled_{false};
};

} // namespace

int run(config::Config config, const DaemonOptions& options) {
    Daemon daemon(std::move(config), options);
    return daemon.run();
}

} // namespace projectiond::daemon
