// The daemon's promises, end to end: never skip an event, never apply a SQL
// projection's event twice, resume exactly where it stopped.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "store/database_error.hpp"
#include "store/demo_events.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

std::string read_source_file(const std::string& relative) {
    const char* root = std::getenv("PROJECTIOND_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    std::ifstream file(std::string(root) + "/" + relative);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

CommandResult status_of(const TestDatabase& db, const TempFile& config) {
    return run_command({projectiond_binary(), "-c", config.path(), "--database-url", db.conninfo(), "status"});
}

} // namespace

TEST_SUITE("engine") {
    TEST_CASE("the reference walkthrough: process part-way, Ctrl+C, status, resume, caught up") {
        TestDatabase db;
        append(db, 20);
        const std::string yaml = read_source_file("config/walkthrough.yaml");
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(daemon.wait_ready());
        REQUIRE(wait_until([&] { return checkpoint(db, "reliable_checkpoint_projection") >= 5; }, 30s));
        CHECK(daemon.stop(SIGINT) == 0);
        const long long stopped_at = checkpoint(db, "reliable_checkpoint_projection");
        CHECK(stopped_at < 20);
        const std::string first_log = daemon.log();
        CHECK(contains(first_log, "Starting fresh (no checkpoint found)"));
        CHECK(contains(first_log, "✓ Processed event #1 (position: 1, aggregate: "));
        CHECK(contains(first_log, "): User 1\n"));

        const auto middle = status_of(db, daemon.config());
        CHECK(contains(middle.out, fmt::format("Current checkpoint position: {}\n", stopped_at)));
        CHECK(contains(middle.out, "Total events in store: 20\n"));
        CHECK(contains(middle.out, fmt::format("Status: Behind by {} events ({:.1f}% complete)\n", 20 - stopped_at,
                                               100.0 * static_cast<double>(stopped_at) / 20.0)));

        daemon.restart();
        REQUIRE(caught_up(db, "reliable_checkpoint_projection"));
        CHECK(daemon.stop(SIGINT) == 0);
        const std::string second_log = daemon.log();
        CHECK(contains(second_log, fmt::format("Resuming from checkpoint: position {}", stopped_at)));
        CHECK(contains(second_log, fmt::format("✓ Processed event #1 (position: {}, aggregate: ", stopped_at + 1)));
        CHECK(contains(second_log, fmt::format("): User {}\n", stopped_at + 1)));
        CHECK_FALSE(contains(second_log, "(position: 1, aggregate"));

        const auto end = status_of(db, daemon.config());
        CHECK(contains(end.out, "Current checkpoint position: 20\nTotal events in store: 20\n"
                                "Status: Caught up (all events processed)\n"));
        CHECK(db.number("SELECT count(*) FROM walkthrough_users") == 20);
    }

    TEST_CASE("SIGTERM lets the in-flight batch commit and the next start resumes from its checkpoint") {
        TestDatabase db;
        append(db, 400);
        // Every batch waits on a lock the test holds, so the test knows which
        // batch is in flight when SIGTERM arrives.
        const std::string yaml = R"(defaults:
  batch_size: 40
projections:
  - name: slow
    setup: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated:
        - INSERT INTO seen VALUES (:global_position)
        - SELECT pg_advisory_xact_lock_shared(4242)
)";
        store::Connection gate = db.connect();
        gate.exec("SELECT pg_advisory_lock(4242)");
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(statement_running(db, "pg_advisory_xact_lock_shared", 30s));
        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.wait_for_log("SIGTERM received"));
        CHECK(daemon.process().running()); // it waits for the batch in flight
        gate.exec("SELECT pg_advisory_unlock(4242)");
        CHECK(daemon.process().wait_for_exit(30s) == 0);
        CHECK(contains(daemon.log(), "all checkpoints saved"));
        // Exactly the batch in flight committed, and no batch after it began.
        CHECK(checkpoint(db, "slow") == 40);
        CHECK(db.number("SELECT count(*) FROM seen") == 40);
        CHECK(db.scalar("SELECT (SELECT count(*) FROM seen) = events_processed FROM projection_checkpoints") == "t");

        daemon.restart();
        REQUIRE(caught_up(db, "slow"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(contains(daemon.log(), "Resuming from checkpoint: position 40"));
        CHECK(db.number("SELECT count(*) FROM seen") == 400);
    }

    TEST_CASE("kill -9 again and again during a 100k-event catch-up: a non-idempotent counter stays exact") {
        TestDatabase db;
        append(db, 100000);
        DaemonProcess daemon(db, counter_config(1000));
        INFO("log of daemon:\n" << daemon.log());
        long long last = 0;
        for (int kill = 1; kill <= 5; ++kill) {
            REQUIRE(wait_until([&] { return checkpoint(db, "counter") >= last + 10000; }, 60s));
            daemon.process().signal(SIGKILL);
            REQUIRE(daemon.process().wait_for_exit(10s) == 128 + SIGKILL);
            last = checkpoint(db, "counter");
            // One snapshot: the killed client's last pipelined batch may still be
            // committing on the server (with its checkpoint, atomically).
            CHECK(db.scalar("SELECT (SELECT n FROM stats) = events_processed FROM projection_checkpoints") == "t");
            daemon.restart();
        }
        REQUIRE(caught_up(db, "counter", 120s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 100000);
    }

    TEST_CASE("many appenders committing out of order, one transaction open for seconds: nothing skipped") {
        TestDatabase db;
        const std::string yaml = R"(defaults:
  batch_size: 50
  poll_interval: 200ms
projections:
  - name: seen
    setup: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, handled_at timestamptz DEFAULT clock_timestamp())
    handlers:
      "*": INSERT INTO seen (position) VALUES (:global_position)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(daemon.wait_ready());

        std::atomic<bool> failed{false};
        std::thread long_transaction([&] {
            try {
                store::Connection conn = db.connect();
                conn.exec("BEGIN");
                conn.exec("SELECT * FROM append_events('C', 'Slow', 'slow-1', 0, "
                          "'[{\"event_type\": \"Slow\", \"payload\": {}}]')");
                std::this_thread::sleep_for(3s);
                conn.exec("COMMIT");
            } catch (...) {
                failed = true;
            }
        });
        std::vector<std::thread> appenders;
        for (int t = 0; t < 8; ++t) {
            appenders.emplace_back([&, t] {
                try {
                    store::Connection conn = db.connect();
                    std::mt19937 random(static_cast<unsigned>(t));
                    std::uniform_int_distribution<int> delay(0, 8);
                    for (int i = 0; i < 150; ++i) {
                        conn.exec("BEGIN");
                        conn.exec("SELECT pg_current_xact_id()");
                        std::this_thread::sleep_for(std::chrono::milliseconds(delay(random)));
                        conn.exec(fmt::format("SELECT * FROM append_events('C', 'A', 'a-{}-{}', 0, "
                                              "'[{{\"event_type\": \"E\", \"payload\": {{}}}}, "
                                              "{{\"event_type\": \"E\", \"payload\": {{}}}}]')",
                                              t, i));
                        std::this_thread::sleep_for(std::chrono::milliseconds(delay(random)));
                        conn.exec("COMMIT");
                    }
                } catch (...) {
                    failed = true;
                }
            });
        }
        for (auto& thread : appenders) {
            thread.join();
        }
        long_transaction.join();
        REQUIRE_FALSE(failed);
        REQUIRE(db.number("SELECT count(*) FROM events") == 8 * 150 * 2 + 1);
        REQUIRE(caught_up(db, "seen"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.position = "
                        "e.global_position)") == 0);
        CHECK(db.number("SELECT count(*) FROM seen") == 8 * 150 * 2 + 1);
        // The slow event was appended first but committed last: it was handled, late.
        CHECK(db.number("SELECT count(*) FROM seen s JOIN events e ON e.global_position = s.position "
                        "WHERE e.aggregate_id = 'slow-1'") == 1);
        CHECK(db.scalar("SELECT state FROM projection_checkpoints") == "active");
    }

    TEST_CASE("each aggregate's events are handled in version order, even when appenders race") {
        TestDatabase db;
        const std::string yaml = R"(defaults:
  batch_size: 20
  poll_interval: 200ms
projections:
  - name: ordered
    setup: |
      CREATE TABLE IF NOT EXISTS handled (aggregate_id text, version bigint, seq bigint);
      CREATE SEQUENCE IF NOT EXISTS handled_seq
    handlers:
      "*": INSERT INTO handled VALUES (:aggregate_id, :aggregate_version, nextval('handled_seq'))
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(daemon.wait_ready());
        std::atomic<int> serialization_failures{0};
        std::atomic<int> appended{0};
        std::atomic<bool> failed{false};
        std::mutex failure_mutex;
        std::string failure;
        std::vector<std::thread> appenders;
        for (int t = 0; t < 6; ++t) {
            appenders.emplace_back([&, t] {
                try {
                    store::Connection conn = db.connect();
                    std::mt19937 random(static_cast<unsigned>(t + 100));
                    std::uniform_int_distribution<int> aggregate(0, 4);
                    std::uniform_int_distribution<int> delay(0, 4);
                    for (int i = 0; i < 60;) {
                        try {
                            conn.exec("BEGIN");
                            conn.exec("SELECT pg_current_xact_id()"); // an early id invites the trap
                            std::this_thread::sleep_for(std::chrono::milliseconds(delay(random)));
                            conn.exec(fmt::format("SELECT * FROM append_events('C', 'Hot', 'hot-{}', NULL, "
                                                  "'[{{\"event_type\": \"E\", \"payload\": {{}}}}]')",
                                                  aggregate(random)));
                            conn.exec("COMMIT");
                            ++appended;
                            ++i;
                        } catch (const store::DatabaseError& error) {
                            conn.exec("ROLLBACK");
                            // 40001: an older transaction came after a younger one; PJ001: two
                            // appenders created the same aggregate at once. Both say "retry".
                            if (error.sqlstate() != "40001" && error.sqlstate() != "PJ001") {
                                throw;
                            }
                            serialization_failures += error.sqlstate() == "40001" ? 1 : 0;
                        }
                    }
                } catch (const std::exception& error) {
                    std::lock_guard lock(failure_mutex);
                    failure = error.what();
                    failed = true;
                }
            });
        }
        for (auto& thread : appenders) {
            thread.join();
        }
        INFO("appender failure: " << failure);
        REQUIRE_FALSE(failed);
        MESSAGE("appends refused with 40001 and retried: " << serialization_failures.load());
        REQUIRE(caught_up(db, "ordered"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM handled") == appended.load());
        CHECK(db.number("SELECT count(*) FROM (SELECT version, lag(version) OVER (PARTITION BY aggregate_id ORDER "
                        "BY seq) AS previous FROM handled) h WHERE version <> coalesce(previous, 0) + 1") == 0);
    }

    TEST_CASE("filters apply in SQL, and events they exclude still advance the checkpoint") {
        TestDatabase db;
        {
            store::Connection conn = db.connect();
            store::append_demo_events(conn, 10, "User", "Identity");
            store::append_demo_events(conn, 10, "Order", "Identity");
            store::append_demo_events(conn, 10, "User", "Billing");
            conn.exec("SELECT * FROM append_events('Identity', 'User', 'u-renamed', 0, "
                      "'[{\"event_type\": \"UserRenamed\", \"payload\": {\"name\": \"R\"}}]')");
        }
        const std::string yaml = R"(projections:
  - name: identity_users
    aggregate_types: [User]
    bounded_contexts: [Identity]
    event_types: [UserCreated]
    setup: CREATE TABLE IF NOT EXISTS picked (position bigint PRIMARY KEY, name text)
    handlers:
      "*": INSERT INTO picked VALUES (:global_position, :payload.name)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "identity_users"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM picked") == 10);
        CHECK(db.number("SELECT count(*) FROM picked p JOIN events e ON e.global_position = p.position WHERE "
                        "e.aggregate_type <> 'User' OR e.bounded_context <> 'Identity' OR e.event_type <> "
                        "'UserCreated'") == 0);
        CHECK(checkpoint(db, "identity_users") == max_position(db));
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 10);
    }

    TEST_CASE("a selective filter reads the store window by window, not in one long scan") {
        TestDatabase db;
        append(db, 12000);
        {
            store::Connection conn = db.connect();
            conn.exec("SELECT append_events('C', 'T', 'rare-1', 0, '[{\"event_type\": \"Rare\", \"payload\": {}}]')");
        }
        const std::string yaml = R"(projections:
  - name: rare
    setup: CREATE TABLE IF NOT EXISTS rare_seen (position bigint PRIMARY KEY)
    handlers:
      Rare: INSERT INTO rare_seen VALUES (:global_position)
)";
        DaemonProcess daemon(db, yaml, {}, {"--log-level", "debug"});
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "rare"));
        CHECK(daemon.stop(SIGTERM) == 0);
        const long long first = db.number("SELECT min(global_position) FROM events");
        // Windows of 5000 events: the cursor passes them in steps, then finds the one match.
        CHECK(contains(daemon.log(), fmt::format("checkpoint passed filtered events up to position {}", first + 4999)));
        CHECK(contains(daemon.log(), fmt::format("checkpoint passed filtered events up to position {}", first + 9999)));
        CHECK(db.number("SELECT count(*) FROM rare_seen") == 1);
        CHECK(checkpoint(db, "rare") == max_position(db));
    }

    TEST_CASE("partitions split aggregates between threads, each with its own checkpoint, exactly once") {
        TestDatabase db;
        {
            store::Connection conn = db.connect();
            for (int version = 0; version < 10; ++version) {
                conn.exec(fmt::format("SELECT append_events('C', 'P', 'p-' || i, {}, "
                                      "'[{{\"event_type\": \"E\", \"payload\": {{}}}}]') "
                                      "FROM generate_series(1, 200) i",
                                      version));
            }
        }
        const std::string yaml = R"(defaults:
  batch_size: 100
projections:
  - name: split
    partitions: 3
    setup: CREATE TABLE IF NOT EXISTS per_aggregate (id text PRIMARY KEY, n int NOT NULL, last_version bigint)
    handlers:
      "*": |
        INSERT INTO per_aggregate VALUES (:aggregate_id, 1, :aggregate_version)
        ON CONFLICT (id) DO UPDATE SET n = per_aggregate.n + 1, last_version = EXCLUDED.last_version
        WHERE per_aggregate.last_version = EXCLUDED.last_version - 1
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "split", 60s, 3));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = 'split'") == 3);
        CHECK(db.number("SELECT min(events_processed) FROM projection_checkpoints") > 300);
        CHECK(db.number("SELECT sum(events_processed) FROM projection_checkpoints") == 2000);
        CHECK(db.number("SELECT count(*) FROM per_aggregate WHERE n = 10 AND last_version = 10") == 200);
        const auto status = status_of(db, daemon.config());
        CHECK(contains(status.out, "Projection: split (partition 2 of 3)\n"));
    }

    TEST_CASE("a second daemon takes a share of the partitions, takes over the rest after kill -9, never "
              "double-applies") {
        TestDatabase db;
        append(db, 30000);
        const std::string yaml = "daemon:\n  lease_timeout: 3s\n" +
                                 counter_config(200, "    partitions: 2\n",
                                                "UPDATE stats SET n = n + 1 WHERE id = 1; SELECT pg_sleep(0.00002)");
        DaemonProcess first(db, yaml);
        INFO("log of first:\n" << first.log());
        REQUIRE(wait_until([&] { return checkpoint(db, "counter") > 1000; }, 30s));
        DaemonProcess second(db, yaml);
        INFO("log of second:\n" << second.log());
        CHECK(second.wait_ready());
        // Fair shares: one partition each, handed over at a batch boundary.
        REQUIRE(wait_until(
            [&] {
                return db.number("SELECT count(DISTINCT owner_daemon) FROM projection_checkpoints WHERE "
                                 "owner_daemon IS NOT NULL") == 2;
            },
            20s));
        first.process().signal(SIGKILL);
        REQUIRE(first.process().wait_for_exit(10s));
        // The lease (3 s) runs out; the second daemon takes the first one's partition.
        CHECK(second.wait_for_log("stopped renewing its lease", 15s));
        REQUIRE(caught_up(db, "counter", 60s, 2));
        CHECK(second.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 30000);
    }

    TEST_CASE("an idle runner picks a new event up within a second although its poll_interval is a minute") {
        TestDatabase db;
        const std::string yaml = R"(defaults:
  poll_interval: 1m
projections:
  - name: quick
    setup: CREATE TABLE IF NOT EXISTS got (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO got VALUES (:global_position)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(daemon.wait_for_log("Starting fresh"));
        REQUIRE(daemon.wait_ready());
        // Appends send no notification; the daemon's watcher sees them settle and wakes the runner.
        append(db, 1);
        CHECK(wait_until([&] { return db.number("SELECT count(*) FROM got") == 1; }, 1s, 5ms));
        append(db, 1);
        CHECK(wait_until([&] { return db.number("SELECT count(*) FROM got") == 2; }, 1s, 5ms));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("when caught up the monitoring queries report CAUGHT_UP with zero lag") {
        TestDatabase db;
        append(db, 50);
        DaemonProcess daemon(db, counter_config(7));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT (SELECT MAX(global_position) FROM events) - last_global_position AS lag FROM "
                        "projection_checkpoints") == 0);
        CHECK(db.scalar("SELECT CASE WHEN updated_at < NOW() - INTERVAL '5 minutes' THEN 'STALE' WHEN "
                        "last_global_position >= (SELECT MAX(global_position) FROM events) THEN 'CAUGHT_UP' ELSE "
                        "'PROCESSING' END FROM projection_checkpoints") == "CAUGHT_UP");
    }

    TEST_CASE("reset rewinds a stopped projection and refuses while a daemon owns it") {
        TestDatabase db;
        append(db, 30);
        DaemonProcess daemon(db, counter_config(10));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter"));
        const auto refused = run_command(
            {projectiond_binary(), "-c", daemon.config().path(), "--database-url", db.conninfo(), "reset", "counter"});
        CHECK(refused.exit_code == 69);
        CHECK(contains(refused.err, "being processed by a running projectiond"));
        CHECK(contains(refused.err, "projectiond pause counter"));
        CHECK(daemon.stop(SIGTERM) == 0);

        const long long first = db.number("SELECT min(global_position) FROM events");
        const auto reset =
            run_command({projectiond_binary(), "-c", daemon.config().path(), "--database-url", db.conninfo(), "reset",
                         "counter", "--to-position", std::to_string(first + 19)});
        CHECK(reset.exit_code == 0);
        CHECK(contains(status_of(db, daemon.config()).out, "Status: Behind by 10 events"));
        daemon.restart();
        REQUIRE(caught_up(db, "counter"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 30 + 10);
    }

    TEST_CASE("on_error: stop commits the events before the failing one, stops just before it, the rest go on; "
              "resume after a fix continues") {
        TestDatabase db;
        append(db, 20);
        const std::string fragile = R"(  - name: fragile
    max_retries: 1
    setup: CREATE TABLE IF NOT EXISTS fragile_seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated:
        - INSERT INTO fragile_seen VALUES (:global_position)
        - SELECT 1 / (CASE WHEN :payload.name = 'User 7' THEN 0 ELSE 1 END)
)";
        DaemonProcess daemon(db, counter_config(20, fragile));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter"));
        REQUIRE(wait_until(
            [&] {
                return db.scalar("SELECT state FROM projection_checkpoints WHERE projection_name = "
                                 "'fragile'") == "failed";
            },
            30s));
        CHECK(daemon.process().running());
        const long long poison = db.number("SELECT global_position FROM events WHERE payload->>'name' = 'User 7'");
        CHECK(db.number("SELECT failed_global_position FROM projection_checkpoints WHERE projection_name = "
                        "'fragile'") == poison);
        // The six events before the poison one are applied, in the batch that met it.
        CHECK(db.number("SELECT count(*) FROM fragile_seen") == 6);
        CHECK(db.number("SELECT max(position) FROM fragile_seen") == poison - 1);
        CHECK(checkpoint(db, "fragile") == poison - 1);
        const auto status = status_of(db, daemon.config());
        CHECK(status.exit_code == 1);
        CHECK(contains(status.out, fmt::format("Status: Failed at position {} (event {}): ", poison,
                                               db.scalar("SELECT event_id FROM events WHERE global_position = " +
                                                         std::to_string(poison)))));
        CHECK(contains(status.out, "division by zero"));
        CHECK(contains(daemon.log(), "projectiond resume fragile"));
        CHECK_FALSE(contains(daemon.log(), "projectiond reset fragile"));

        // Fix the cause, reload, resume: it continues from just before the poison event.
        daemon.config().write(counter_config(20, R"(  - name: fragile
    max_retries: 1
    setup: CREATE TABLE IF NOT EXISTS fragile_seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated: INSERT INTO fragile_seen VALUES (:global_position)
)"));
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("reloaded:"));
        const auto resumed = run_command(
            {projectiond_binary(), "-c", daemon.config().path(), "--database-url", db.conninfo(), "resume", "fragile"});
        CHECK(resumed.exit_code == 0);
        REQUIRE(caught_up(db, "fragile"));
        CHECK(db.number("SELECT count(*) FROM fragile_seen") == 20);
        CHECK(status_of(db, daemon.config()).exit_code == 0);
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 20);
    }

    TEST_CASE("on_error: skip parks the failing event as a dead letter and applies the rest exactly once") {
        TestDatabase db;
        append(db, 20);
        const std::string yaml = R"(defaults:
  batch_size: 8
  on_error: skip
  max_retries: 1
projections:
  - name: skipper
    setup: CREATE TABLE IF NOT EXISTS kept (position bigint PRIMARY KEY)
    handlers:
      UserCreated:
        - INSERT INTO kept VALUES (:global_position)
        - SELECT 1 / (CASE WHEN :payload.name = 'User 7' THEN 0 ELSE 1 END)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "skipper"));
        CHECK(daemon.stop(SIGTERM) == 0);
        const long long poison = db.number("SELECT global_position FROM events WHERE payload->>'name' = 'User 7'");
        CHECK(db.number("SELECT count(*) FROM kept") == 19);
        CHECK(db.number("SELECT count(*) FROM kept WHERE position = " + std::to_string(poison)) == 0);
        CHECK(db.number("SELECT global_position FROM projection_dead_letters WHERE projection_name = 'skipper'") ==
              poison);
        const auto listed = run_command({projectiond_binary(), "--database-url", db.conninfo(), "dead-letters"});
        CHECK(listed.exit_code == 0);
        CHECK(contains(listed.out, fmt::format("skipper partition 0: position {}", poison)));
        CHECK(contains(listed.out, "division by zero"));
    }

    TEST_CASE("changing the partition count is refused at start with one clear message") {
        TestDatabase db;
        append(db, 10);
        DaemonProcess daemon(db, counter_config(5));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter"));
        CHECK(daemon.stop(SIGTERM) == 0);
        daemon.config().write(counter_config(5, "    partitions: 2\n"));
        daemon.restart();
        CHECK(daemon.process().wait_for_exit(30s) == 78);
        CHECK(contains(daemon.log(), "projection 'counter' is configured for 2 partitions but was processed in 1"));
        CHECK(contains(daemon.log(), "projectiond reset counter"));
        CHECK(db.number("SELECT n FROM stats") == 10);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints") == 1);
    }
}
