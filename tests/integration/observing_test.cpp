// What an operator sees of the running daemon (SPEC section 8): /metrics as
// Prometheus reads it, /health going 503 and back, the transaction that
// holds events back named by its pid, the HTTP side under misuse, the
// progress line on a terminal, and `status --watch`.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "observability/exposition.hpp"
#include "observability/http_client.hpp"
#include "observability/screen.hpp"
#include "projection_state.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

// Every daemon here listens on 127.0.0.1:0 and logs the port the kernel
// chose: no two tests (or suites) can ever want the same port.
const std::string http_listen = "http:\n  listen: 127.0.0.1:0\n";

std::uint16_t http_port(DaemonProcess& daemon) {
    const std::string marker = "serving /metrics, /health and /status on http://127.0.0.1:";
    REQUIRE(daemon.wait_for_log(marker));
    const std::string log = daemon.log();
    return static_cast<std::uint16_t>(std::stoi(log.substr(log.find(marker) + marker.size())));
}

std::string scrape_text(std::uint16_t port) {
    const auto response = request(port, "GET", "/metrics");
    REQUIRE(response);
    REQUIRE(response->status == 200);
    return response->body;
}

Exposition scrape(std::uint16_t port) {
    return parse_exposition(scrape_text(port));
}

// The value of the one series of `name` with these labels, if there is one.
std::optional<double> sample(const Exposition& exposition, const std::string& name,
                             const std::set<std::string>& labels = {}) {
    if (exposition.count(name, labels) != 1) {
        return std::nullopt;
    }
    return exposition.value(name, labels);
}

std::string label(const std::string& name, const std::string& value) {
    return fmt::format("{}=\"{}\"", name, value);
}

struct Health {
    int status = 0;
    nlohmann::json body;
};

Health health(std::uint16_t port) {
    const auto response = request(port, "GET", "/health");
    REQUIRE(response);
    return {response->status, nlohmann::json::parse(response->body)};
}

// Waits for /health to answer `status`; the last answer, whatever it was.
Health wait_for_health(std::uint16_t port, int status, std::chrono::milliseconds timeout = 30s) {
    Health last;
    wait_until(
        [&] {
            last = health(port);
            return last.status == status;
        },
        timeout, 100ms);
    return last;
}

// The problem of /health's body about `projection`, or null.
nlohmann::json problem_of(const Health& answer, const std::string& projection) {
    for (const auto& problem : answer.body.at("problems")) {
        if (problem.value("projection", "") == projection) {
            return problem;
        }
    }
    return nullptr;
}

CommandResult cli(const TestDatabase& db, const TempFile& config, const std::vector<std::string>& arguments) {
    std::vector<std::string> argv = {projectiond_binary(), "-c", config.path(), "--database-url", db.conninfo()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return run_command(argv);
}

// promtool check metrics, fed the exposition on its stdin.
CommandResult promtool_check_metrics(const std::string& exposition) {
    const char* promtool = std::getenv("PROJECTIOND_PROMTOOL");
    REQUIRE_MESSAGE((promtool != nullptr && *promtool != '\0'),
                    "promtool was not found when the build was configured (Debian package prometheus)");
    const TempFile file(exposition, ".prom");
    return run_command({"/bin/sh", "-c", fmt::format("exec '{}' check metrics < '{}'", promtool, file.path())});
}

std::size_t occurrences(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
        ++count;
    }
    return count;
}

// The first child of process `pid`, or 0.
int child_of(int pid) {
    std::ifstream children(fmt::format("/proc/{0}/task/{0}/children", pid));
    int child = 0;
    children >> child;
    return child;
}

std::string shell_quoted(const std::vector<std::string>& argv) {
    std::string line;
    for (const auto& arg : argv) {
        line += (line.empty() ? "'" : " '") + arg + "'";
    }
    return line;
}

// A projection whose every batch waits for an advisory lock the test may
// hold: while it does, the catch-up cannot move.
std::string gated_counter_config(int batch_size, const std::string& before = "", const std::string& extra = "") {
    return before + counter_config(batch_size, extra,
                                   "\n        - UPDATE stats SET n = n + 1 WHERE id = 1"
                                   "\n        - SELECT pg_advisory_xact_lock_shared(4242)");
}

} // namespace

TEST_SUITE("observing") {
    TEST_CASE("/metrics passes promtool, lag falls to 0 as the catch-up ends, counters equal the events handled") {
        TestDatabase db;
        append(db, 1000);
        store::Connection gate = db.connect();
        gate.exec("SELECT pg_advisory_lock(4242)");
        DaemonProcess daemon(db, gated_counter_config(100, http_listen, R"(  - name: split
    partitions: 2
    handlers:
      "*": SELECT 1
)"));
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        const std::set<std::string> counter = {label("projection", "counter"), label("partition", "0")};

        // Held at the gate: the sampler sees all 1000 events waiting, and how old the oldest is.
        std::string text;
        Exposition metrics;
        REQUIRE(wait_until(
            [&] {
                text = scrape_text(port);
                metrics = parse_exposition(text);
                return sample(metrics, "projectiond_lag_events", counter) == 1000.0 &&
                       sample(metrics, "projectiond_lag_seconds", counter).value_or(0) > 0 &&
                       sample(metrics, "projectiond_projection_state",
                              {label("projection", "counter"), label("state", "catching_up")}) == 1.0;
            },
            30s, 100ms));
        INFO("scrape while behind:\n" << text);
        CHECK(sample(metrics, "projectiond_events_processed_total", counter) == 0.0);
        CHECK(sample(metrics, "projectiond_checkpoint_position", counter) == 0.0);
        const CommandResult behind_check = promtool_check_metrics(text);
        CHECK_MESSAGE(behind_check.exit_code == 0, behind_check.out, behind_check.err);

        gate.exec("SELECT pg_advisory_unlock(4242)");
        REQUIRE(caught_up(db, "counter"));
        REQUIRE(caught_up(db, "split", 30s, 2));
        // The next sample (every 5 s) brings both lags to 0.
        REQUIRE(wait_until(
            [&] {
                text = scrape_text(port);
                metrics = parse_exposition(text);
                return sample(metrics, "projectiond_lag_events", counter) == 0.0 &&
                       sample(metrics, "projectiond_lag_seconds", counter) == 0.0;
            },
            30s, 100ms));
        INFO("scrape when caught up:\n" << text);
        const CommandResult caught_up_check = promtool_check_metrics(text);
        CHECK_MESSAGE(caught_up_check.exit_code == 0, caught_up_check.out, caught_up_check.err);

        CHECK(sample(metrics, "projectiond_events_processed_total", counter) == 1000.0);
        CHECK(sample(metrics, "projectiond_batches_total", counter) == 10.0);
        CHECK(sample(metrics, "projectiond_batch_duration_seconds_count", counter) == 10.0);
        CHECK(sample(metrics, "projectiond_checkpoint_position", counter) == 1000.0);
        CHECK(sample(metrics, "projectiond_last_event_processed_timestamp_seconds", counter).value_or(0) > 1.7e9);
        CHECK(sample(metrics, "projectiond_partition_owned", counter) == 1.0);
        CHECK(sample(metrics, "projectiond_projection_state",
                     {label("projection", "counter"), label("state", "caught_up")}) == 1.0);
        CHECK(sample(metrics, "projectiond_projection_state",
                     {label("projection", "counter"), label("state", "catching_up")}) == 0.0);
        CHECK(sample(metrics, "projectiond_failures_total",
                     {label("projection", "counter"), label("kind", "handler")}) == 0.0);
        CHECK(sample(metrics, "projectiond_dead_letters_total", counter) == 0.0);
        CHECK(sample(metrics, "projectiond_database_up") == 1.0);
        CHECK(sample(metrics, "projectiond_watermark_held_seconds") == 0.0);
        CHECK(metrics.count("projectiond_build_info") == 1);
        CHECK(db.number("SELECT n FROM stats") == 1000);
        // The two partitions of `split` share the events between them.
        const auto first = sample(metrics, "projectiond_events_processed_total",
                                  {label("projection", "split"), label("partition", "0")});
        const auto second = sample(metrics, "projectiond_events_processed_total",
                                   {label("projection", "split"), label("partition", "1")});
        REQUIRE(first);
        REQUIRE(second);
        CHECK(*first + *second == 1000.0);
        CHECK(*first > 0);
        CHECK(*second > 0);
        CHECK(sample(metrics, "projectiond_lag_events", {label("projection", "split"), label("partition", "1")}) ==
              0.0);

        // More events: the counters go on from where they were.
        append(db, 250);
        REQUIRE(caught_up(db, "counter"));
        REQUIRE(wait_until(
            [&] { return sample(scrape(port), "projectiond_events_processed_total", counter) == 1250.0; }, 10s));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("a reload keeps the counters of an unchanged projection and takes a removed one's series away") {
        TestDatabase db;
        append(db, 100);
        const std::string gone = "  - name: gone\n    log: true\n";
        DaemonProcess daemon(db, counter_config(100, gone).insert(0, http_listen));
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        const std::set<std::string> counter = {label("projection", "counter"), label("partition", "0")};
        REQUIRE(caught_up(db, "counter"));
        REQUIRE(caught_up(db, "gone"));
        REQUIRE(wait_until(
            [&] {
                const Exposition metrics = scrape(port);
                return sample(metrics, "projectiond_events_processed_total", counter) == 100.0 &&
                       sample(metrics, "projectiond_events_processed_total",
                              {label("projection", "gone"), label("partition", "0")}) == 100.0;
            },
            10s));

        daemon.config().write(counter_config(100).insert(0, http_listen));
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("reloaded: 0 added, 0 changed (restarted), 1 removed, 1 unchanged"));
        append(db, 20);
        REQUIRE(caught_up(db, "counter"));
        Exposition metrics;
        REQUIRE(wait_until(
            [&] {
                metrics = scrape(port);
                return sample(metrics, "projectiond_events_processed_total", counter) == 120.0;
            },
            10s));
        CHECK(sample(metrics, "projectiond_batches_total", counter).value_or(0) >= 2.0);
        // Once its runner has been joined, not a series of `gone` is left.
        CHECK(wait_until([&] { return !contains(scrape_text(port), label("projection", "gone")); }, 10s, 50ms));
        CHECK(http_port(daemon) == port); // the same server goes on
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("/health is 503 naming a failed projection, then 200 once it is fixed and resumed") {
        TestDatabase db;
        append(db, 4);
        DaemonProcess daemon(db, http_listen + R"(defaults:
  max_retries: 0
  on_error: stop
projections:
  - name: picky
    setup: CREATE TABLE IF NOT EXISTS allowed (x int)
    handlers:
      "*": SELECT 1 / (SELECT count(*) FROM allowed)::int
  - name: easy
    log: true
)");
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        // From its first answer on (the server starts as the coordinator
        // makes its first connection), /health never calls the database
        // that the daemon has just prepared unreachable.
        Health failed;
        bool database_blamed = false;
        REQUIRE(wait_until(
            [&] {
                failed = health(port);
                database_blamed = database_blamed || contains(failed.body.dump(), "database unreachable");
                return problem_of(failed, "picky").is_object();
            },
            30s, 10ms));
        INFO("/health: " << failed.body.dump());
        CHECK_FALSE(database_blamed);
        REQUIRE(failed.status == 503);
        CHECK(failed.body.at("status") == "unhealthy");
        const nlohmann::json problem = problem_of(failed, "picky");
        REQUIRE(problem.is_object());
        CHECK(problem.at("problem") == "failed");
        CHECK(problem.at("partition") == 0);
        CHECK(problem.at("position") == 1);
        CHECK(contains(problem.at("error").get<std::string>(), "division by zero"));
        CHECK(problem_of(failed, "easy").is_null());
        CHECK(failed.body.at("problems").size() == 1u);
        const Exposition metrics = scrape(port);
        CHECK(sample(metrics, "projectiond_projection_state",
                     {label("projection", "picky"), label("state", "failed")}) == 1.0);
        CHECK(sample(metrics, "projectiond_failures_total", {label("projection", "picky"), label("kind", "handler")})
                  .value_or(0) >= 1.0);

        db.scalar("INSERT INTO allowed VALUES (1) RETURNING 1");
        const CommandResult resumed = cli(db, daemon.config(), {"resume", "picky"});
        CHECK_MESSAGE(resumed.exit_code == 0, resumed.out, resumed.err);
        const Health healthy = wait_for_health(port, 200);
        INFO("/health: " << healthy.body.dump());
        CHECK(healthy.status == 200);
        CHECK(healthy.body == nlohmann::json::parse(R"({"status": "ok", "problems": []})"));
        CHECK(caught_up(db, "picky"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("/health is 503 naming the database while it is stopped, and 200 when it is back") {
        TestDatabase db;
        append(db, 10);
        DaemonProcess daemon(db, counter_config(100).insert(0, http_listen));
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        REQUIRE(caught_up(db, "counter"));
        CHECK(wait_for_health(port, 200).status == 200);

        ClusterBack cluster_back;
        stop_cluster();
        const Health down = wait_for_health(port, 503);
        INFO("/health: " << down.body.dump());
        REQUIRE(down.status == 503);
        CHECK(down.body.at("problems").at(0).at("problem") == "database unreachable");
        CHECK(sample(scrape(port), "projectiond_database_up") == 0.0);
        start_cluster();
        const Health back = wait_for_health(port, 200);
        INFO("/health: " << back.body.dump());
        CHECK(back.status == 200);
        CHECK(sample(scrape(port), "projectiond_database_up") == 1.0);
        append(db, 10);
        CHECK(caught_up(db, "counter"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("/health is 503 while a projection lags more than health.max_lag, and 200 when it has caught up") {
        TestDatabase db;
        DaemonProcess daemon(db, counter_config(100).insert(0, http_listen + "health:\n  max_lag: 1s\n"));
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        REQUIRE(daemon.wait_ready());
        CHECK(wait_for_health(port, 200).status == 200);

        // Paused, the projection lets events wait: their age passes 1 s.
        const CommandResult paused = cli(db, daemon.config(), {"pause", "counter"});
        REQUIRE_MESSAGE(paused.exit_code == 0, paused.out, paused.err);
        REQUIRE(wait_until(
            [&] {
                return sample(scrape(port), "projectiond_projection_state",
                              {label("projection", "counter"), label("state", "paused")}) == 1.0;
            },
            10s, 50ms));
        append(db, 20);
        const Health lagging = wait_for_health(port, 503);
        INFO("/health: " << lagging.body.dump());
        REQUIRE(lagging.status == 503);
        const nlohmann::json problem = problem_of(lagging, "counter");
        REQUIRE(problem.is_object());
        CHECK(problem.at("problem") == "lagging");
        CHECK(problem.at("lag_seconds").get<double>() > 1.0);
        CHECK(problem.at("max_lag_seconds") == 1.0);
        CHECK(lagging.body.at("problems").size() == 1u);
        CHECK(sample(scrape(port), "projectiond_lag_seconds", {label("projection", "counter"), label("partition", "0")})
                  .value_or(0) > 1.0);

        const CommandResult resumed = cli(db, daemon.config(), {"resume", "counter"});
        REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.out, resumed.err);
        REQUIRE(caught_up(db, "counter"));
        const Health back = wait_for_health(port, 200);
        INFO("/health: " << back.body.dump());
        CHECK(back.status == 200);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("a transaction holding events back is named by its pid in the log, in status and in its JSON") {
        TestDatabase db;
        append(db, 5);
        DaemonProcess daemon(db, counter_config(100).insert(0, http_listen + "daemon:\n  watermark_warn_after: 1s\n"));
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        REQUIRE(caught_up(db, "counter"));

        // The test's session takes a transaction id and keeps its transaction
        // open; the events appended after it commit but must wait for it.
        store::Connection holder = db.connect();
        const long long pid = holder.exec("SELECT pg_backend_pid()").int64(0, 0);
        holder.exec("SET application_name = 'observing-test-holder'");
        holder.exec("BEGIN");
        holder.exec("SELECT pg_current_xact_id()");
        append(db, 10);

        const std::string named = fmt::format("pid {} (transaction ", pid);
        REQUIRE(
            daemon.wait_for_log("behind an open transaction, which projections cannot pass until it ends: " + named));
        CHECK(contains(daemon.log(), "application_name 'observing-test-holder'"));
        CHECK(checkpoint(db, "counter") == 5);

        const CommandResult text = cli(db, daemon.config(), {"status"});
        INFO("status:\n" << text.out << text.err);
        CHECK(text.exit_code == 0);
        CHECK(contains(text.out, "Waiting for: " + named));
        const CommandResult json = cli(db, daemon.config(), {"status", "--json"});
        INFO("status --json:\n" << json.out << json.err);
        REQUIRE(json.exit_code == 0);
        const nlohmann::json waiting = nlohmann::json::parse(json.out).at("waiting_for");
        REQUIRE(waiting.is_object());
        CHECK(waiting.at("pid") == pid);
        CHECK(waiting.at("session_visible") == true);
        CHECK(waiting.at("application_name") == "observing-test-holder");
        CHECK(waiting.at("state") == "idle in transaction");
        // The daemon's own /status and the gauge say the same, from the sampler.
        CHECK(wait_until(
            [&] {
                const auto answer = request(port, "GET", "/status");
                if (!answer || answer->status != 200) {
                    return false;
                }
                const nlohmann::json held = nlohmann::json::parse(answer->body).value("waiting_for", nlohmann::json());
                return held.is_object() && held.value("pid", 0LL) == pid;
            },
            15s, 100ms));
        CHECK(sample(scrape(port), "projectiond_watermark_held_seconds").value_or(0) > 1.0);

        holder.exec("ROLLBACK");
        REQUIRE(caught_up(db, "counter"));
        CHECK(db.number("SELECT n FROM stats") == 15);
        const CommandResult after = cli(db, daemon.config(), {"status", "--json"});
        CHECK(nlohmann::json::parse(after.out).at("waiting_for").is_null());
        CHECK_FALSE(contains(cli(db, daemon.config(), {"status"}).out, "Waiting for:"));
        CHECK(wait_until([&] { return sample(scrape(port), "projectiond_watermark_held_seconds") == 0.0; }, 10s));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("404, 405, an oversized request and 200 idle connections leave /metrics prompt and runners working") {
        TestDatabase db;
        DaemonProcess daemon(db, counter_config(100).insert(0, http_listen));
        INFO("log of daemon:\n" << daemon.log());
        const std::uint16_t port = http_port(daemon);
        REQUIRE(daemon.wait_ready());

        const auto missing = request(port, "GET", "/nothing-here");
        REQUIRE(missing);
        CHECK(missing->status == 404);
        const auto post = request(port, "POST", "/metrics");
        REQUIRE(post);
        CHECK(post->status == 405);
        CHECK(contains(post->header("allow"), "GET"));
        const auto del = request(port, "DELETE", "/health");
        REQUIRE(del);
        CHECK(del->status == 405);
        const auto head = request(port, "HEAD", "/metrics");
        REQUIRE(head);
        CHECK(head->status == 200);
        CHECK(head->body.empty());
        // Refused (or cut off: the server may close before reading it all).
        const auto oversized =
            testing::exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(64 * 1024, 'a') +
                                        "\r\nConnection: close\r\n\r\n");
        if (oversized) {
            CHECK(oversized->status == 431);
        }

        std::vector<system::UniqueFd> idle;
        for (int i = 0; i < 200; ++i) {
            idle.push_back(connect_to(port));
            if (i % 2 == 1) { // half of them begin a request and never finish it
                const std::string partial = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
                REQUIRE(::send(idle.back().get(), partial.data(), partial.size(), MSG_NOSIGNAL) ==
                        static_cast<ssize_t>(partial.size()));
            }
        }
        for (int round = 1; round <= 4; ++round) {
            append(db, 50);
            const auto started = std::chrono::steady_clock::now();
            const auto response = request(port, "GET", "/metrics", 5s);
            const auto took = std::chrono::steady_clock::now() - started;
            REQUIRE(response);
            CHECK(response->status == 200);
            // Milliseconds on an idle machine; the bound leaves room for a loaded one.
            CHECK(took < 2s);
            REQUIRE(caught_up(db, "counter", 20s));
        }
        CHECK(db.number("SELECT n FROM stats") == 200);
        CHECK(wait_until(
            [&] {
                return sample(scrape(port), "projectiond_events_processed_total",
                              {label("projection", "counter"), label("partition", "0")}) == 200.0;
            },
            10s));
        CHECK(health(port).status == 200);
        idle.clear();
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE(
        "on a terminal a live progress line shows the catch-up and is taken away; elsewhere no control characters") {
        TestDatabase db;
        append(db, 1500);
        const std::string yaml =
            counter_config(50, "", "UPDATE stats SET n = n + 1 WHERE id = 1; SELECT pg_sleep(0.002)")
                .insert(0, "daemon:\n  log_interval: 1s\n");
        const TempFile config(yaml);
        const std::vector<std::string> run = {projectiond_binary(), "run",         "-c",           config.path(),
                                              "--database-url",     db.conninfo(), "--log-target", "stderr"};
        {
            // script(1) gives the daemon a pseudo-terminal and copies what it draws to its stdout.
            // It runs the command with $SHELL -c, or /bin/sh -c when SHELL is unset (as under CI);
            // dash forks rather than execs a lone command, so exec it: the daemon must be
            // script's child, or the SIGTERM below would hang up the terminal instead.
            ChildProcess terminal({"/usr/bin/script", "-qfec", "exec " + shell_quoted(run), "/dev/null"},
                                  {{"TERM", "xterm"}, {"COLUMNS", "120"}, {"LINES", "40"}});
            INFO("terminal:\n" << terminal.output() << terminal.errors());
            REQUIRE(wait_until([&] { return contains(terminal.output(), "counter: position "); }, 30s));
            REQUIRE(caught_up(db, "counter", 60s));
            // Caught up, the line goes (at the next redraw, within a second).
            const auto on_screen = [&] {
                Screen screen;
                screen.feed(terminal.output());
                for (const auto& row : screen.rows()) {
                    if (contains(row, "counter: position ")) {
                        return true;
                    }
                }
                return false;
            };
            CHECK(wait_until([&] { return !on_screen(); }, 10s, 100ms));
            Screen screen;
            screen.feed(terminal.output());
            CHECK(screen.unknown().empty());
            // "counter: position 450 of 1500 (30.0%), 450 events/s, ETA 2s"
            bool drawn = false;
            for (const auto& row : screen.erased()) {
                drawn = drawn || (contains(row, "counter: position ") && contains(row, " of 1500 (") &&
                                  contains(row, "%), ") && contains(row, " events/s, ETA "));
            }
            CHECK(drawn);
            // script(1) would kill the daemon 2 s after its own SIGTERM: stop the daemon itself.
            const int daemon_pid = child_of(terminal.pid());
            REQUIRE(daemon_pid > 0);
            REQUIRE(::kill(daemon_pid, SIGTERM) == 0);
            CHECK(terminal.wait_for_exit(30s) == 0);
            CHECK_FALSE(contains(terminal.output(), "killing shell"));
        }
        CHECK(db.number("SELECT n FROM stats") == 1500);

        // The same catch-up with stderr in a file: plain lines only.
        db.scalar("UPDATE stats SET n = 0 RETURNING 1");
        CHECK(cli(db, config, {"reset", "counter"}).exit_code == 0);
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter", 60s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 1500);
        const std::string log = daemon.log();
        CHECK(log.find('\r') == std::string::npos);
        CHECK(log.find('\x1b') == std::string::npos);
        CHECK_FALSE(contains(log, "counter: position "));
    }

    TEST_CASE("status --watch 1 prints again every second and ends cleanly on SIGINT and on SIGTERM") {
        TestDatabase db;
        append(db, 30);
        DaemonProcess daemon(db, counter_config(100));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter"));
        for (const int stop_signal : {SIGINT, SIGTERM}) {
            CAPTURE(stop_signal);
            ChildProcess watch({projectiond_binary(), "-c", daemon.config().path(), "--database-url", db.conninfo(),
                                "status", "--watch", "1"});
            INFO("status --watch:\n" << watch.output() << watch.errors());
            REQUIRE(wait_until(
                [&] { return occurrences(watch.output(), "projectiond status, every 1 s (Ctrl+C to stop)") >= 3; }, 20s,
                50ms));
            const std::string output = watch.output();
            CHECK(contains(output, "Status: Caught up (all events processed)"));
            CHECK(contains(output, "counter: measuring..."));
            CHECK(contains(output, "counter: 0 events/s"));
            CHECK(output.find('\x1b') == std::string::npos); // not a terminal: no screen clearing
            watch.signal(stop_signal);
            CHECK(watch.wait_for_exit(5s) == 0);
            CHECK(watch.errors().empty());
        }
        CHECK(daemon.stop(SIGTERM) == 0);
    }
}
