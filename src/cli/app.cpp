#include "cli/app.hpp"

#include "build_config.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "config/loader.hpp"
#include "logging/setup.hpp"
#include "store/connection.hpp"
#include "store/database_error.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>

namespace projectiond::cli {

namespace {

constexpr const char* description =
    "projectiond keeps read models up to date from an event store in PostgreSQL.\n"
    "Projections are declared in YAML; each batch of events is applied by SQL handlers in the\n"
    "same transaction as its checkpoint, so the daemon can be stopped at any moment and\n"
    "resumes exactly where it left off.";

constexpr const char* epilog =
    "\nExit status: 0 success, 64 usage error, 65 bad input data, 69 database unavailable or\n"
    "schema not migrated, 70 internal error, 78 configuration error; `status` exits 1 when a\n"
    "selected projection has failed.\n"
    "Environment: PROJECTIOND_CONFIG (configuration file), PGHOST, PGDATABASE, PGUSER, ... (libpq)\n"
    "when neither database.url nor --database-url is given; NOTIFY_SOCKET, WATCHDOG_USEC,\n"
    "JOURNAL_STREAM and CREDENTIALS_DIRECTORY from systemd.\n"
    "See projectiond(8) and projectiond.yaml(5).";

// Prints an exception and its nested causes, one per line.
void print_error(const std::exception& error, int depth = 0) {
    if (depth == 0) {
        fmt::print(stderr, "projectiond: {}\n", error.what());
    } else {
        fmt::print(stderr, "  caused by: {}\n", error.what());
    }
    try {
        std::rethrow_if_nested(error);
    } catch (const std::exception& cause) {
        print_error(cause, depth + 1);
    } catch (...) {
    }
}

// Overwrites a password given with --database-url in the process's own
// argument memory, so that ps and /proc/PID/cmdline do not show it.
void hide_password_in_arguments(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        char* text = argv[i];
        if (arg.starts_with("--database-url=")) {
            text += 15;
        } else if (arg != "--database-url" || i + 1 >= argc) {
            continue;
        } else {
            text = argv[++i];
        }
        if (const auto span = store::password_span(text)) {
            std::fill_n(text + span->first, span->second, '*');
        }
    }
}

int dispatch(int argc, char** argv) {
    CLI::App app{description, "projectiond"};
    app.footer(epilog);
    app.set_version_flag("--version", std::string("projectiond ") + PROJECTIOND_VERSION);
    app.require_subcommand(1);
    app.fallthrough();

    GlobalOptions options;
    const char* env_config = std::getenv("PROJECTIOND_CONFIG");
    options.config_path = env_config != nullptr && *env_config != '\0' ? env_config : PROJECTIOND_DEFAULT_CONFIG;
    options.config_path_given = env_config != nullptr && *env_config != '\0';
    std::string config_flag;
    std::string database_url;
    app.add_option("-c,--config", config_flag,
                   "configuration file (default " PROJECTIOND_DEFAULT_CONFIG ", or $PROJECTIOND_CONFIG)");
    app.add_option("--database-url", database_url,
                   "libpq URI or conninfo; overrides database.url (the password is never logged)");
    app.add_option("--log-level", options.log_level, "trace, debug, info, warn or error (default info)")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    app.add_option("--log-target", options.log_target,
                   "auto (the journal when systemd connected stderr to it), journal or stderr")
        ->check(CLI::IsMember({"auto", "journal", "stderr"}));

    auto* run = app.add_subcommand("run", "run the daemon in the foreground (systemd Type=notify)");
    auto* migrate = app.add_subcommand("migrate", "apply pending schema migrations and print what was applied");

    AppendOptions append;
    auto* append_cmd = app.add_subcommand("append", "append demo events (\"User 1\", \"User 2\", ...), each to "
                                                    "a fresh aggregate");
    append_cmd->add_option("--events", append.events, "how many events to append")->required();
    append_cmd->add_option("--aggregate-type", append.aggregate_type, "aggregate type (default User)");
    append_cmd->add_option("--bounded-context", append.bounded_context, "bounded context (default Identity)");

    StatusOptions status;
    auto* status_cmd = app.add_subcommand("status", "show each projection's checkpoint, lag and state");
    status_cmd->add_flag("--json", status.json, "print one JSON document");
    status_cmd->add_option("NAME", status.names, "only these projections");
    double watch_seconds = 0;
    auto* watch_flag = status_cmd
                           ->add_option("--watch", watch_seconds,
                                        "redraw every SECONDS (default 2) with rates and ETAs, until Ctrl+C")
                           ->expected(0, 1)
                           ->default_str("2");
    watch_flag->check(CLI::Range(0.1, 3600.0).description("SECONDS from 0.1 to 3600"));

    auto* check = app.add_subcommand("check-config", "validate the configuration and exit");

    ResetOptions reset;
    std::string to_position;
    auto* reset_cmd = app.add_subcommand("reset", "rewind a projection so that it processes again exactly the events "
                                                  "after a position");
    reset_cmd->add_option("NAME", reset.name, "projection to rewind")->required();
    reset_cmd->add_option("--to-position", to_position,
                          "process again exactly the events after this position (default 0: all of them)");

    std::string pause_name;
    auto* pause_cmd = app.add_subcommand("pause", "stop processing a projection, in every daemon, until resumed");
    pause_cmd->add_option("NAME", pause_name, "projection to pause")->required();
    std::string resume_name;
    auto* resume_cmd = app.add_subcommand("resume", "process a paused projection again, or retry one that failed "
                                                    "(on_error: stop), without restarting any daemon");
    resume_cmd->add_option("NAME", resume_name, "projection to resume")->required();
    std::string rebuild_name;
    auto* rebuild_cmd = app.add_subcommand("rebuild", "rebuild a projection blue/green beside the live one and swap "
                                                      "it in when caught up (needs a schema)");
    rebuild_cmd->add_option("NAME", rebuild_name, "projection to rebuild")->required();
    std::string prune_name;
    auto* prune_cmd = app.add_subcommand("prune", "drop the schemas and checkpoints a swap retired");
    prune_cmd->add_option("NAME", prune_name, "projection to prune")->required();

    DeadLetterOptions dead;
    std::string dead_name;
    auto* dead_cmd = app.add_subcommand("dead-letters", "list events parked by on_error: skip");
    dead_cmd->add_option("NAME", dead_name, "only this projection");
    dead_cmd->add_flag("--json", dead.json, "print one JSON document");

    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& success) {
        return app.exit(success);
    } catch (const CLI::ParseError& error) {
        app.exit(error);
        return exit_usage;
    }

    if (!config_flag.empty()) {
        options.config_path = config_flag;
        options.config_path_given = true;
    }
    if (!database_url.empty()) {
        options.database_url = database_url;
        hide_password_in_arguments(argc, argv);
    }
    logging::setup_logging(logging::parse_target(options.log_target), options.log_level);

    if (*run) {
        return run_daemon(options);
    }
    if (*migrate) {
        return run_migrate(options);
    }
    if (*append_cmd) {
        return run_append(options, append);
    }
    if (*status_cmd) {
        if (watch_flag->count() > 0) {
            status.watch_seconds = watch_seconds > 0 ? watch_seconds : 2.0;
        }
        return run_status(options, status);
    }
    if (*pause_cmd) {
        return run_pause(options, pause_name, true);
    }
    if (*resume_cmd) {
        return run_pause(options, resume_name, false);
    }
    if (*rebuild_cmd) {
        return run_rebuild(options, rebuild_name);
    }
    if (*prune_cmd) {
        return run_prune(options, prune_name);
    }
    if (*check) {
        return run_check_config(options);
    }
    if (*reset_cmd) {
        if (!to_position.empty()) {
            std::int64_t value = -1;
            const auto [end, error] =
                std::from_chars(to_position.data(), to_position.data() + to_position.size(), value);
            if (error != std::errc() || end != to_position.data() + to_position.size() || value < 0) {
                throw CommandError(exit_usage, fmt::format("--to-position must be a position: a whole number, 0 or "
                                                           "more, not '{}'",
                                                           to_position));
            }
            reset.to_position = value;
        }
        return run_reset(options, reset);
    }
    if (*dead_cmd) {
        if (!dead_name.empty()) {
            dead.name = dead_name;
        }
        return run_dead_letters(options, dead);
    }
    return exit_usage;
}

} // namespace

int run_command_line(int argc, char** argv) noexcept {
    try {
        return dispatch(argc, argv);
    } catch (const CommandError& error) {
        print_error(error);
        return error.code();
    } catch (const config::ConfigError& error) {
        fmt::print(stderr, "{}\n", error.what());
        return exit_config;
    } catch (const store::DatabaseError& error) {
        print_error(error);
        return error.connection_lost() ? exit_unavailable : exit_software;
    } catch (const std::exception& error) {
        print_error(error);
        return exit_software;
    } catch (...) {
        fmt::print(stderr, "projectiond: unknown internal error\n");
        return exit_software;
    }
}

} // namespace projectiond::cli
