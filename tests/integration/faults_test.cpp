// A bad day: the database restarts or vanishes, handlers fail, payloads are
// hostile, passwords must stay secret.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "notify_socket.hpp"
#include "projection_state.hpp"
#include "store/demo_events.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

// A role that must log in with a password, over the cluster's unix socket.
const std::string secret_role = "secretive";
const std::string secret_password = "Hunter2-0nly-1n-the-f1le";


} // namespace

TEST_SUITE("faults") {
    TEST_CASE("the database restarts, crashes and disappears during a catch-up: the read model is exact") {
        TestDatabase db;
        append(db, 40000);
        NotifySocket notify;
        DaemonProcess daemon(
            db, counter_config(250, "", "UPDATE stats SET n = n + 1 WHERE id = 1; SELECT pg_sleep(0.00005)"),
            {{"NOTIFY_SOCKET", notify.path()}});
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(wait_until([&] { return checkpoint(db, "counter") > 5000; }, 60s));

        ClusterBack cluster_back;
        stop_cluster(); // a clean restart
        start_cluster();
        REQUIRE(wait_until([&] { return checkpoint(db, "counter") > 15000; }, 60s));

        stop_cluster(true); // a crash, then several seconds away
        CHECK(notify.wait_for("STATUS=waiting for database", 30s));
        // Stay down until the runner has tried, and failed, to reconnect four times (a few seconds).
        const auto attempts = [&] {
            const std::string log = daemon.log();
            std::size_t count = 0;
            for (auto at = log.find("reconnecting in"); at != std::string::npos;
                 at = log.find("reconnecting in", at + 1)) {
                ++count;
            }
            return count;
        };
        const std::size_t before = attempts();
        REQUIRE(wait_until([&] { return attempts() >= before + 4; }, 60s));
        CHECK(daemon.process().running());
        start_cluster();

        REQUIRE(caught_up(db, "counter", 120s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 40000);
        CHECK(contains(daemon.log(), "database unavailable"));
        CHECK(contains(daemon.log(), "reconnecting in"));
    }

    TEST_CASE("serialization failures are retried without counting against max_retries") {
        TestDatabase db;
        append(db, 5);
        const std::string yaml = R"(defaults:
  max_retries: 1
projections:
  - name: flaky
    setup: |
      CREATE SEQUENCE IF NOT EXISTS attempts;
      CREATE TABLE IF NOT EXISTS flaky_seen (position bigint PRIMARY KEY);
      CREATE OR REPLACE FUNCTION flaky() RETURNS void LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('attempts') <= 6 THEN
          RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'simulated serialization failure';
        END IF;
      END $$
    handlers:
      "*":
        - SELECT flaky()
        - INSERT INTO flaky_seen VALUES (:global_position)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "flaky"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM flaky_seen") == 5);
        CHECK(db.scalar("SELECT state FROM projection_checkpoints") == "active");
        CHECK(contains(daemon.log(), "transient error"));
    }

    TEST_CASE("a failed projection shows in STATUS=, and a restart retries it once the cause is fixed") {
        TestDatabase db;
        append(db, 4);
        NotifySocket notify;
        const std::string yaml = R"(defaults:
  max_retries: 0
projections:
  - name: picky
    setup: |
      CREATE TABLE IF NOT EXISTS allowed (x int);
      CREATE TABLE IF NOT EXISTS picky_seen (position bigint PRIMARY KEY)
    handlers:
      "*":
        - SELECT 1 / (SELECT count(*) FROM allowed)::int
        - INSERT INTO picky_seen VALUES (:global_position)
  - name: easy
    log: true
)";
        DaemonProcess daemon(db, yaml, {{"NOTIFY_SOCKET", notify.path()}});
        INFO("log of daemon:\n" << daemon.log());
        CHECK(notify.wait_for("STATUS=2 projections: 1 caught up, 1 failed", 30s));
        CHECK(db.scalar("SELECT last_error FROM projection_checkpoints WHERE projection_name = 'picky'")
                  .find("division by zero") != std::string::npos);
        CHECK(daemon.stop(SIGTERM) == 0);

        db.scalar("INSERT INTO allowed VALUES (1) RETURNING 1");
        daemon.restart();
        REQUIRE(caught_up(db, "picky"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(contains(daemon.log(), "retrying after the recorded failure"));
        CHECK(db.number("SELECT count(*) FROM picky_seen") == 4);
        CHECK(db.scalar("SELECT state FROM projection_checkpoints WHERE projection_name = 'picky'") == "active");
    }

    TEST_CASE("hostile and odd payloads are data: metacharacters, megabytes, non-objects, any Unicode") {
        TestDatabase db;
        const std::vector<std::string> payloads = {
            R"({"text": "'; DROP TABLE events; --"})",
            R"({"text": "Robert'); DROP TABLE stats;--", "a": {"b": {"c": "deep"}}})",
            R"({"text": "$$ :aggregate_id $$ \\ \" ' ` ;"})",
            R"({"text": "Zażółć gęślą jaźń 😀 مرحبا 中文 ‏ \u00e9"})",
            R"([1, 2, {"text": "inside an array"}])",
            R"("just a string")",
            R"(42)",
            R"(null)",
            R"({})",
            fmt::format(R"({{"text": "{}"}})", std::string(1 << 20, 'x')),
        };
        {
            store::Connection conn = db.connect();
            int i = 0;
            for (const auto& payload : payloads) {
                conn.exec("SELECT append_events('C', 'Odd', $1, 0, jsonb_build_array(jsonb_build_object("
                          "'event_type', 'Odd', 'payload', $2::jsonb)))",
                          {fmt::format("odd-{}", i++), payload});
            }
        }
        const std::string yaml = R"(projections:
  - name: copier
    setup: CREATE TABLE IF NOT EXISTS copies (position bigint PRIMARY KEY, payload jsonb, text text, deep text, id text)
    handlers:
      Odd: INSERT INTO copies VALUES (:global_position, :payload, :payload.text, :payload.a.b.c, :aggregate_id)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "copier"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM copies") == static_cast<long long>(payloads.size()));
        CHECK(db.number("SELECT count(*) FROM copies c JOIN events e ON e.global_position = c.position "
                        "WHERE c.payload = e.payload AND c.text IS NOT DISTINCT FROM e.payload->>'text' "
                        "AND c.id = e.aggregate_id") == static_cast<long long>(payloads.size()));
        CHECK(db.scalar("SELECT deep FROM copies WHERE id = 'odd-1'") == "deep");
        CHECK(db.number("SELECT count(*) FROM copies WHERE deep IS NULL") ==
              static_cast<long long>(payloads.size()) - 1);
        CHECK(db.number("SELECT length(text) FROM copies WHERE id = 'odd-9'") == (1 << 20));
        CHECK(db.scalar("SELECT text FROM copies WHERE id = 'odd-3'") ==
              "Zażółć gęślą jaźń 😀 مرحبا 中文 ‏ é");
        CHECK(db.scalar("SELECT to_regclass('events')::text") == "events");
    }

    TEST_CASE("the password works from a file, a credential or the URL, and appears in no output") {
        TestDatabase db;
        append(db, 3);
        db.scalar(fmt::format("CREATE ROLE {} LOGIN SUPERUSER PASSWORD '{}'", secret_role, secret_password));
        require_password_for(secret_role);
        const std::string url = fmt::format("user={} dbname={}", secret_role, db.name());
        TempFile password_file(secret_password + "\n", ".secret");
        const std::string yaml = fmt::format(R"(database:
  url: "{}"
  password_file: {}
projections:
  - name: guarded
    log: true
)",
                                             url, password_file.path());
        std::string everything;

        // From database.password_file, in the daemon and the one-shot commands.
        {
            TempFile config(yaml);
            ChildProcess daemon({projectiond_binary(), "run", "-c", config.path(), "--log-target", "stderr"});
            REQUIRE(wait_until(
                [&] { return checkpoint(db, "guarded") == db.number("SELECT max(global_position) FROM events"); },
                30s));
            daemon.signal(SIGTERM);
            CHECK(daemon.wait_for_exit(30s) == 0);
            everything += daemon.output() + daemon.errors();
            const auto status = run_command({projectiond_binary(), "-c", config.path(), "status", "--json"});
            CHECK(status.exit_code == 0);
            everything += status.out + status.err;
        }
        // From a systemd credential.
        {
            const std::string dir =
                std::filesystem::path(password_file.path()).parent_path() / fmt::format("credentials-{}", ::getpid());
            std::filesystem::create_directories(dir);
            std::ofstream(dir + "/database-password") << secret_password;
            const auto status =
                run_command({projectiond_binary(), "--database-url", url, "status"}, {{"CREDENTIALS_DIRECTORY", dir}});
            CHECK(status.exit_code == 0);
            everything += status.out + status.err;
            std::filesystem::remove_all(dir);
        }
        // In the URL: works, and the process title shows asterisks.
        {
            const std::string with_password = fmt::format("postgresql://{}:{}@/{}?host={}", secret_role,
                                                          secret_password, db.name(), std::getenv("PGHOST"));
            TempFile config("projections:\n  - name: titled\n    log: true\n");
            ChildProcess daemon({projectiond_binary(), "run", "-c", config.path(), "--database-url", with_password,
                                 "--log-target", "stderr"});
            REQUIRE(wait_until([&] { return checkpoint(db, "titled") > 0; }, 30s));
            std::ifstream cmdline(fmt::format("/proc/{}/cmdline", daemon.pid()));
            std::stringstream title;
            title << cmdline.rdbuf();
            CHECK_FALSE(contains(title.str(), secret_password));
            CHECK(contains(title.str(), "********"));
            daemon.signal(SIGTERM);
            CHECK(daemon.wait_for_exit(30s) == 0);
            everything += daemon.output() + daemon.errors();
        }
        // A wrong password: a clear error, exit 69, and still no password.
        {
            const auto wrong = run_command({projectiond_binary(), "--database-url",
                                            fmt::format("postgresql://{}:{}x@/{}?host={}", secret_role, secret_password,
                                                        db.name(), std::getenv("PGHOST")),
                                            "status"});
            CHECK(wrong.exit_code == 69);
            CHECK(contains(wrong.err, "password authentication failed"));
            everything += wrong.out + wrong.err;
            const auto missing = run_command({projectiond_binary(), "--database-url", url, "status"});
            CHECK(missing.exit_code == 69);
            everything += missing.out + missing.err;
        }
        CHECK_FALSE(contains(everything, secret_password));
        CHECK_FALSE(contains(db.scalar("SELECT string_agg(coalesce(owner, '') || coalesce(last_error, ''), ' ') FROM "
                                       "projection_checkpoints"),
                             secret_password));
    }
}
