// projectiond as a systemd service: sd_notify, watchdog, signals, reload,
// the journal and the unit files.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "notify_socket.hpp"
#include "projection_state.hpp"
#include "store/demo_events.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

// Waits until no session of projectiond's runners is left on the server (a
// killed or aborted runner's backend may finish its statement first).
bool runner_sessions_gone(const TestDatabase& db) {
    return wait_until(
        [&] {
            return db.number("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db.name() +
                             "' AND application_name LIKE 'projectiond d% runner'") == 0;
        },
        15s);
}

std::string slow_config(const std::string& sleep, int batch_size, const std::string& extra = "") {
    return fmt::format(R"(defaults:
  batch_size: {}
{}projections:
  - name: slow
    setup: CREATE TABLE IF NOT EXISTS slow_seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated:
        - INSERT INTO slow_seen VALUES (:global_position)
        - SELECT pg_sleep({})
)",
                       batch_size, extra, sleep);
}

std::string build_root() {
    const char* root = std::getenv("PROJECTIOND_BUILD_ROOT");
    REQUIRE(root != nullptr);
    return root;
}

// Starts systemd-journald when this machine has none running (PID 1 is not
// systemd here); stops it again at the end of the test.
class Journal {
public:
    Journal() {
        if (std::filesystem::exists("/run/systemd/journal/socket")) {
            if (run_command({"/usr/bin/pgrep", "-x", "systemd-journal"}).exit_code == 0) {
                return; // a live journald: use it
            }
            // A socket left behind by a journald that is gone: lines sent to
            // it would vanish and the test would prove nothing.
            std::filesystem::remove("/run/systemd/journal/socket");
        }
        journald_ = std::make_unique<ChildProcess>(std::vector<std::string>{"/lib/systemd/systemd-journald"});
        REQUIRE(wait_until([] { return std::filesystem::exists("/run/systemd/journal/socket"); }, 10s));
    }
    ~Journal() {
        if (journald_) {
            journald_->signal(SIGTERM);
            journald_->wait_for_exit(5s);
            std::filesystem::remove("/run/systemd/journal/socket");
        }
    }
    // Entries with PROJECTION=`projection`, as journalctl -o json prints them.
    static std::vector<nlohmann::json> entries(const std::string& projection) {
        const auto result = run_command({"/bin/journalctl", "--no-pager", "-o", "json", "PROJECTION=" + projection});
        std::vector<nlohmann::json> out;
        std::istringstream lines(result.out);
        std::string line;
        while (std::getline(lines, line)) {
            if (!line.empty()) {
                out.push_back(nlohmann::json::parse(line));
            }
        }
        return out;
    }

private:
    std::unique_ptr<ChildProcess> journald_;
};

} // namespace

TEST_SUITE("daemon") {
    TEST_CASE("READY=1 only after every runner started; STATUS= sums up; WATCHDOG=1 pings flow") {
        TestDatabase db;
        append(db, 10);
        NotifySocket notify;
        DaemonProcess daemon(db, "projections:\n  - name: pair\n    log: true\n    partitions: 2\n",
                             {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "1000000"}});
        REQUIRE(notify.wait_for("READY=1", 30s));
        const std::string log = daemon.log();
        const auto ready_at = log.find("ready:");
        REQUIRE(ready_at != std::string::npos);
        CHECK(log.find("[pair/0] Starting fresh") < ready_at);
        CHECK(log.find("[pair/1] Starting fresh") < ready_at);
        CHECK(notify.wait_for("STATUS=1 projection: 1 caught up", 30s));
        CHECK(notify.wait_for("WATCHDOG=1", 10s, 4));
        CHECK(notify.matching("STATUS=").front().text == "STATUS=starting");
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(notify.wait_for("STOPPING=1", 1s));
    }

    TEST_CASE("watchdog pings stop while a runner is wedged") {
        TestDatabase db;
        NotifySocket notify;
        const std::string yaml = R"(database:
  statement_timeout: 0ms
projections:
  - name: wedge
    handlers:
      UserCreated: SELECT pg_sleep(60)
)";
        DaemonProcess daemon(db, yaml, {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "1000000"}});
        REQUIRE(notify.wait_for("READY=1", 30s));
        REQUIRE(notify.wait_for("WATCHDOG=1", 10s, 3));
        append(db, 1);
        const auto wedged_at = NotifySocket::Clock::now();
        // Without statement_timeout the stall limit is 5 s; give it 7 s, then watch 3 s more.
        REQUIRE(wait_until([&] { return NotifySocket::Clock::now() - wedged_at > 10s; }, 15s, 100ms));
        std::size_t late_pings = 0;
        for (const auto& message : notify.matching("WATCHDOG=1")) {
            late_pings += message.at > wedged_at + 7s ? 1 : 0;
        }
        CHECK(late_pings == 0);
        CHECK(contains(daemon.log(), "withholding the watchdog ping"));
        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.wait_for_log("letting in-flight batches commit")); // two at once would merge into one
        CHECK(daemon.stop(SIGTERM, 10s) == 0);
    }

    TEST_CASE("a drain sends STOPPING=1 and EXTEND_TIMEOUT_USEC while the batch in flight commits") {
        TestDatabase db;
        append(db, 10);
        NotifySocket notify;
        DaemonProcess daemon(db, slow_config("0.25", 10), {{"NOTIFY_SOCKET", notify.path()}});
        REQUIRE(notify.wait_for("READY=1", 30s));
        REQUIRE(wait_until([&] { return contains(daemon.log(), "Starting fresh"); }, 10s));
        // The first batch (10 events, 2.5 s) is now in flight.
        REQUIRE(statement_running(db, "pg_sleep"));
        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.process().wait_for_exit(30s) == 0);
        CHECK(notify.matching("STOPPING=1").size() == 1);
        CHECK(notify.matching("EXTEND_TIMEOUT_USEC=").size() >= 2);
        CHECK(checkpoint(db, "slow") == db.number("SELECT max(global_position) FROM events"));
        CHECK(db.number("SELECT count(*) FROM slow_seen") == 10);
    }

    TEST_CASE("a second SIGTERM rolls the batch in flight back and exits at once") {
        TestDatabase db;
        append(db, 10);
        DaemonProcess daemon(db, slow_config("1", 10));
        REQUIRE(daemon.wait_ready());
        REQUIRE(statement_running(db, "pg_sleep"));
        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.wait_for_log("letting in-flight batches commit"));
        const auto second = std::chrono::steady_clock::now();
        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.process().wait_for_exit(10s) == 0);
        CHECK(std::chrono::steady_clock::now() - second < 3s);
        CHECK(contains(daemon.log(), "in-flight batches rolled back"));
        REQUIRE(runner_sessions_gone(db));
        CHECK(db.number("SELECT count(*) FROM slow_seen") == 0);
        CHECK(checkpoint(db, "slow") == 0);
    }

    TEST_CASE("shutdown_timeout bounds a drain: the batch still in flight is rolled back") {
        TestDatabase db;
        append(db, 10);
        DaemonProcess daemon(db, slow_config("1", 10, "daemon:\n  shutdown_timeout: 1s\n"));
        REQUIRE(daemon.wait_ready());
        REQUIRE(statement_running(db, "pg_sleep"));
        const auto sent = std::chrono::steady_clock::now();
        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.process().wait_for_exit(10s) == 0);
        CHECK(std::chrono::steady_clock::now() - sent < 4s);
        CHECK(contains(daemon.log(), "shutdown_timeout (1s) reached"));
        REQUIRE(runner_sessions_gone(db));
        CHECK(db.number("SELECT count(*) FROM slow_seen") == 0);
    }

    TEST_CASE("SIGHUP adds, changes and removes projections, leaves the rest running, and tells systemd") {
        TestDatabase db;
        append(db, 5);
        NotifySocket notify;
        const std::string before = R"(projections:
  - name: keep
    log: true
  - name: change
    log: true
  - name: drop
    log: true
)";
        DaemonProcess daemon(db, before, {{"NOTIFY_SOCKET", notify.path()}});
        REQUIRE(notify.wait_for("READY=1", 30s));
        REQUIRE(caught_up(db, "drop"));
        daemon.config().write(R"(projections:
  - name: keep
    log: true
  - name: change
    log: true
    batch_size: 2
  - name: add
    setup: CREATE TABLE IF NOT EXISTS added (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO added VALUES (:global_position)
)");
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("reloaded: 1 added, 1 changed (restarted), 1 removed, 1 unchanged"));
        REQUIRE(notify.wait_for("READY=1", 10s, 2));
        const auto reloading = notify.matching("RELOADING=1");
        REQUIRE(reloading.size() == 1);
        const auto usec = reloading.front().text.find("\nMONOTONIC_USEC=");
        REQUIRE(usec != std::string::npos);
        CHECK(std::stoull(reloading.front().text.substr(usec + 16)) > 0);
        CHECK(reloading.front().at < notify.matching("READY=1").back().at);

        REQUIRE(wait_until([&] { return db.number("SELECT count(*) FROM added") == 5; }, 30s));
        CHECK(daemon.wait_for_log("[drop/0] runner stopped"));
        CHECK(daemon.wait_for_log("[change/0] runner stopped"));
        const std::string log = daemon.log();
        CHECK_FALSE(contains(log, "[keep/0] runner stopped"));
        const auto first = log.find("[change/0] Starting fresh");
        CHECK(log.find("[change/0] Resuming from checkpoint", first) != std::string::npos);
        CHECK(log.find("[keep/0] Resuming") == std::string::npos);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("SIGHUP with an invalid configuration logs where it is wrong and keeps the old one running") {
        TestDatabase db;
        NotifySocket notify;
        DaemonProcess daemon(db, slow_config("0", 10), {{"NOTIFY_SOCKET", notify.path()}});
        REQUIRE(notify.wait_for("READY=1", 30s));
        daemon.config().write("projections:\n  - name: slow\n    batchsize: 3\n    log: true\n");
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("the new configuration is invalid; keeping the running one"));
        CHECK(contains(daemon.log(), daemon.config().path() + ":3:5: unknown key 'batchsize'"));
        CHECK(notify.wait_for("READY=1", 10s, 2));
        append(db, 3);
        CHECK(wait_until([&] { return db.number("SELECT count(*) FROM slow_seen") == 3; }, 30s));
        CHECK(daemon.process().running());
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("while the database is down STATUS= says so; the runners carry on when it is back") {
        TestDatabase db;
        append(db, 3);
        NotifySocket notify;
        DaemonProcess daemon(db, slow_config("0", 10), {{"NOTIFY_SOCKET", notify.path()}});
        REQUIRE(notify.wait_for("READY=1", 30s));
        REQUIRE(wait_until([&] { return db.number("SELECT count(*) FROM slow_seen") == 3; }, 30s));
        ClusterBack cluster_back;
        stop_cluster();
        CHECK(notify.wait_for("STATUS=waiting for database", 30s));
        CHECK(daemon.process().running());
        start_cluster();
        append(db, 2);
        CHECK(wait_until([&] { return db.number("SELECT count(*) FROM slow_seen") == 5; }, 60s));
        const bool recovered = notify.wait_for("STATUS=1 projection: 1 caught up", 30s, 2);
        if (!recovered) {
            for (const auto& message : notify.matching("STATUS=")) {
                MESSAGE(message.text);
            }
            MESSAGE(daemon.log());
        }
        CHECK(recovered);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    // Starting systemd-journald needs root: without it the test is reported as skipped.
    TEST_CASE("the journal gets PROJECTION=, PARTITION= and GLOBAL_POSITION= fields" * doctest::skip(::geteuid() != 0)) {
        Journal journal;
        TestDatabase db;
        append(db, 3);
        const std::string name = "journaled_" + db.name();
        const std::string yaml = fmt::format("projections:\n  - name: {}\n    log: true\n", name);
        TempFile config(yaml);
        ChildProcess daemon({projectiond_binary(), "run", "-c", config.path(), "--database-url", db.conninfo(),
                             "--log-target", "journal"});
        REQUIRE(wait_until([&] { return Journal::entries(name).size() >= 5; }, 30s, 200ms));
        daemon.signal(SIGTERM);
        CHECK(daemon.wait_for_exit(30s) == 0);
        bool saw_event_line = false;
        for (const auto& entry : Journal::entries(name)) {
            CHECK(entry["SYSLOG_IDENTIFIER"] == "projectiond");
            // A runner's lines name its partition; the per-projection summaries name none.
            CHECK(entry.value("PARTITION", "0") == "0");
            CHECK(entry.contains("PRIORITY"));
            const std::string message = entry["MESSAGE"];
            if (contains(message, "✓ Processed event #1")) {
                saw_event_line = true;
                CHECK(entry.contains("GLOBAL_POSITION"));
                CHECK(contains(message, "(position: " + entry["GLOBAL_POSITION"].get<std::string>()));
            }
        }
        CHECK(saw_event_line);
        CHECK(daemon.errors().empty());
    }

    TEST_CASE("--log-target auto writes to the journal when JOURNAL_STREAM names stderr" *
              doctest::skip(::geteuid() != 0)) {
        Journal journal;
        TestDatabase db;
        append(db, 1);
        const std::string name = "auto_" + db.name();
        TempFile config(fmt::format("projections:\n  - name: {}\n    log: true\n", name));
        // systemd sets JOURNAL_STREAM to the device and inode of the stream it
        // connected to stderr; do the same for the file ChildProcess uses.
        ChildProcess journaled({"/bin/sh", "-c", "JOURNAL_STREAM=$(stat -L -c '%d:%i' /proc/self/fd/2) exec \"$@\"",
                                "sh", projectiond_binary(), "-c", config.path(), "--database-url", db.conninfo(),
                                "run"});
        REQUIRE(wait_until([&] { return !Journal::entries(name).empty(); }, 30s, 200ms));
        journaled.signal(SIGTERM);
        CHECK(journaled.wait_for_exit(30s) == 0);
        CHECK(journaled.errors().empty());
    }

    TEST_CASE("the units pass systemd-analyze verify and rate 1.5 or better on security") {
        const std::string root = build_root();
        TempFile unit("", ".service");
        std::filesystem::remove(unit.path());
        const std::string dir = std::filesystem::path(unit.path()).parent_path();
        for (const std::string name : {"projectiond.service", "projectiond@.service"}) {
            // The installed unit names /usr/bin/projectiond; verify checks that it exists.
            const std::string local = dir + "/" + name;
            const auto sed = run_command({"/bin/sh", "-c",
                                          fmt::format("sed 's|^ExecStart=[^ ]*|ExecStart={}|' '{}/systemd/{}' > '{}'",
                                                      projectiond_binary(), root, name, local)});
            REQUIRE(sed.exit_code == 0);
            // Only the daemon gets SIGTERM on stop: a drain must be able to
            // let an exec handler's batch commit (see the comment in the unit).
            CHECK_MESSAGE(run_command({"/bin/grep", "-qx", "KillMode=mixed", local}).exit_code == 0, name);
            const std::string target = name == "projectiond@.service" ? dir + "/projectiond@test.service" : local;
            if (target != local) {
                std::filesystem::copy_file(local, target, std::filesystem::copy_options::overwrite_existing);
            }
            const auto verify = run_command({"/usr/bin/systemd-analyze", "verify", target},
                                            {{"MANPATH", root + "/docs"}, {"SYSTEMD_LOG_COLOR", "0"}});
            CHECK_MESSAGE(verify.exit_code == 0, name << ": " << verify.err);
            CHECK_MESSAGE(verify.err.empty(), name << ": " << verify.err);
            const auto security =
                run_command({"/usr/bin/systemd-analyze", "security", "--offline=true", "--no-pager", target});
            const auto overall = security.out.find("Overall exposure level for ");
            REQUIRE(overall != std::string::npos);
            const auto colon = security.out.find(": ", overall);
            REQUIRE(colon != std::string::npos);
            const double score = std::stod(security.out.substr(colon + 2));
            MESSAGE(name << " exposure: " << score);
            CHECK(score <= 1.5);
            std::filesystem::remove(local);
            std::filesystem::remove(target);
        }
    }
}
