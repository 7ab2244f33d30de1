// Projection versions (SPEC section 9, docs/versions.md): a new version built
// blue/green beside the live one and swapped in atomically, through kill -9
// and a second version change; prune, pause and resume, rebuild's refusal.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "store/demo_events.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

CommandResult cli(const TestDatabase& db, const TempFile& config, std::vector<std::string> args) {
    args.insert(args.begin(), {projectiond_binary(), "-c", config.path(), "--database-url", db.conninfo()});
    return run_command(args);
}

// The projection `tally` at `version`: one row per event in `seen`, marked
// with `mark`, and a count that is wrong if an event is applied twice.
// `slow`: each event also sleeps that long (a rebuild that takes a while).
std::string tally(int version, const std::string& mark, const std::string& slow = "") {
    return fmt::format(R"(  - name: tally
    schema: tally
    version: {}
    setup: |
      CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, mark text NOT NULL);
      CREATE TABLE IF NOT EXISTS stats (id int PRIMARY KEY, n bigint NOT NULL);
      INSERT INTO stats VALUES (1, 0) ON CONFLICT DO NOTHING
    handlers:
      "*":
        - INSERT INTO seen VALUES (:global_position, '{}')
        - UPDATE stats SET n = n + 1 WHERE id = 1
{})",
                       version, mark, slow.empty() ? "" : fmt::format("        - SELECT pg_sleep({})\n", slow));
}

std::string config_with(const std::string& projections, int batch_size = 50) {
    return fmt::format("defaults:\n  batch_size: {}\n  poll_interval: 1s\nprojections:\n{}", batch_size, projections);
}

// The generation readers see, and the one being built (0 when none).
long long live_generation(const TestDatabase& db, const std::string& name) {
    return db.number("SELECT live_generation FROM projectiond_projections WHERE projection_name = '" + name + "'");
}
long long building_generation(const TestDatabase& db, const std::string& name) {
    return db.number("SELECT coalesce(building_generation, 0) FROM projectiond_projections WHERE projection_name = '" +
                     name + "'");
}

// The lowest checkpoint of one generation's partitions (-1 when it has none).
long long generation_checkpoint(const TestDatabase& db, const std::string& name, long long generation) {
    return db.number(fmt::format("SELECT coalesce(min(last_global_position), -1) FROM projection_checkpoints "
                                 "WHERE projection_name = '{}' AND generation = {}",
                                 name, generation));
}

// Whether the live generation has passed every event of the store.
bool live_caught_up(const TestDatabase& db, const std::string& name, std::chrono::milliseconds timeout = 60s) {
    const std::string sql = fmt::format(R"sql(
SELECT bool_and(c.last_global_position = (SELECT coalesce(max(global_position), 0) FROM events))
  FROM projection_checkpoints c
  JOIN projectiond_projections p ON p.projection_name = c.projection_name AND c.generation = p.live_generation
 WHERE c.projection_name = '{}')sql",
                                        name);
    return wait_until([&] { return db.scalar(sql) == "t"; }, timeout, 50ms);
}

bool swapped(const TestDatabase& db, const std::string& name, long long generation,
             std::chrono::milliseconds timeout = 60s) {
    return wait_until([&] { return live_generation(db, name) == generation; }, timeout, 50ms);
}

// Sessions of any daemon on the test database.
long long sessions(const TestDatabase& db) {
    return db.number("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                     "pid <> pg_backend_pid() AND backend_type = 'client backend'");
}

// The "Status: Paused (behind by N events)" line each partition of
// `name` should show now: N is every event after its cursor.
std::vector<std::string> paused_lines(const TestDatabase& db, const std::string& name) {
    std::vector<std::string> lines;
    store::Connection conn = db.connect();
    const store::Result rows = conn.exec(R"sql(
SELECT (SELECT count(*) FROM events e WHERE (e.store_epoch, e.transaction_id, e.global_position)
                                          > (c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position))
  FROM projection_checkpoints c WHERE c.projection_name = $1 ORDER BY c.partition_index)sql",
                                         {name});
    for (int row = 0; row < rows.rows(); ++row) {
        lines.push_back(fmt::format("Status: Paused (behind by {} events)", rows.int64(row, 0)));
    }
    return lines;
}

bool schema_exists(const TestDatabase& db, const std::string& schema) {
    return db.number("SELECT count(*) FROM pg_namespace WHERE nspname = '" + schema + "'") == 1;
}

// Appends a few events every few milliseconds, from its own connection,
// until it goes out of scope.
class Appender {
public:
    explicit Appender(const TestDatabase& db, int per_append = 3)
        : thread_([this, &db, per_append] {
              store::Connection conn = db.connect();
              while (!stop_) {
                  store::append_demo_events(conn, per_append, "User", "Identity");
                  appended_ += per_append;
                  std::this_thread::sleep_for(5ms); // the pace of the stream, not a wait for a condition
              }
          }) {}
    Appender(const Appender&) = delete;
    Appender& operator=(const Appender&) = delete;
    ~Appender() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    long long appended() const { return appended_; }

private:
    std::atomic<bool> stop_{false};
    std::atomic<long long> appended_{0};
    std::thread thread_;
};

// What a reader of tally.seen and tally.stats saw in one statement.
struct Observation {
    long long rows = 0;
    long long v1 = 0;
    long long v2 = 0;
    long long count = 0; // tally.stats.n
};

// Both versions of `tally` wait at a gate while the swap comes: the swap must
// wait for version 2's batch, which then writes into its own tables.
void check_swap_waits_for_batch(const TestDatabase& db) {
    append(db, 20);
    const long long last = max_position(db);
    // Both versions wait at a gate the test holds: version 1 (no schema:
    // its tables are public.*) at the first event appended below, version
    // 2 (schema tally) at the second, so that version 2 has passed
    // everything version 1 has while its batch sits between setting its
    // search_path and its INSERT: the moment a swap may come.
    const auto version = [&](int v, long long gate) {
        return fmt::format(R"(  - name: tally
    {}
    setup: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, mark text NOT NULL)
    handlers:
      "*":
        - SELECT pg_advisory_xact_lock_shared(4343) WHERE :global_position = {}
        - INSERT INTO seen VALUES (:global_position, 'v{}')
)",
                           v == 1 ? "" : "schema: tally\n    version: 2", gate, v);
    };
    DaemonProcess daemon(db, config_with(version(1, last + 1), 1));
    INFO("log of daemon:\n" << daemon.log());
    REQUIRE(live_caught_up(db, "tally"));
    const long long v1 = live_generation(db, "tally");
    store::Connection gate = db.connect();
    gate.exec("SELECT pg_advisory_lock(4343)");
    append(db, 2);
    const std::string waiting_at_gate = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' "
                                        "AND datname = current_database()";
    REQUIRE(wait_until([&] { return db.number(waiting_at_gate) == 1; }, 30s));

    daemon.config().write(config_with(version(2, last + 2), 1));
    daemon.process().signal(SIGHUP);
    REQUIRE(wait_until([&] { return db.number(waiting_at_gate) == 2; }, 60s));
    // The swap comes now: it either waits for the batch (right) or renames
    // the schemas under it (wrong).
    const std::string swap_waiting = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                     "'%projectiond_swap_generation%' AND wait_event_type = 'Lock' AND "
                                     "pid <> pg_backend_pid()";
    REQUIRE(wait_until([&] { return live_generation(db, "tally") != v1 || db.number(swap_waiting) > 0; }, 60s));
    gate.exec("SELECT pg_advisory_unlock(4343)");
    REQUIRE(wait_until([&] { return live_generation(db, "tally") != v1; }, 60s));
    REQUIRE(caught_up(db, "tally"));
    CHECK(daemon.stop(SIGTERM) == 0);
    CHECK(db.number("SELECT count(*) FROM public.seen WHERE mark = 'v2'") == 0);
    CHECK(db.number("SELECT count(*) FROM tally.seen WHERE mark = 'v2'") == last + 2);
}

} // namespace

TEST_SUITE("versions") {
    TEST_CASE("during a version change under continuous appends a reader sees the whole old model, then the whole "
              "new one, never empty or shrinking; the new one equals a fresh single run") {
        TestDatabase db;
        append(db, 2000);
        // `fresh` runs the new version's handlers once, from the first
        // event, in a schema of its own: what the new model must equal.
        const std::string fresh = R"(  - name: fresh
    schema: fresh
    setup: |
      CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, mark text NOT NULL);
      CREATE TABLE IF NOT EXISTS stats (id int PRIMARY KEY, n bigint NOT NULL);
      INSERT INTO stats VALUES (1, 0) ON CONFLICT DO NOTHING
    handlers:
      "*":
        - INSERT INTO seen VALUES (:global_position, 'v2')
        - UPDATE stats SET n = n + 1 WHERE id = 1
)";
        DaemonProcess daemon(db, config_with(tally(1, "v1") + fresh, 100));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(live_caught_up(db, "tally"));
        const long long old_generation = live_generation(db, "tally");

        std::mutex mutex;
        std::vector<Observation> seen;
        std::vector<std::string> errors;
        std::atomic<bool> stop_reading{false};
        std::thread reader([&] {
            store::Connection conn = db.connect();
            while (!stop_reading) {
                try {
                    const store::Result row =
                        conn.exec("SELECT count(*), count(*) FILTER (WHERE mark = 'v1'), "
                                  "count(*) FILTER (WHERE mark = 'v2'), (SELECT n FROM tally.stats WHERE id = 1) "
                                  "FROM tally.seen");
                    std::lock_guard lock(mutex);
                    seen.push_back({row.int64(0, 0), row.int64(0, 1), row.int64(0, 2), row.int64(0, 3)});
                } catch (const std::exception& error) {
                    std::lock_guard lock(mutex);
                    errors.emplace_back(error.what());
                }
                std::this_thread::sleep_for(2ms); // the reader's pace
            }
        });
        const auto observed = [&](const std::function<bool(const Observation&)>& which) {
            std::lock_guard lock(mutex);
            return std::count_if(seen.begin(), seen.end(), which);
        };
        {
            Appender appender(db);
            REQUIRE(wait_until([&] { return observed([](const auto& o) { return o.v1 > 2000; }) >= 20; }, 30s));

            daemon.config().write(config_with(tally(2, "v2") + fresh, 100));
            daemon.process().signal(SIGHUP);
            REQUIRE(daemon.wait_for_log("swapped in the new version", 90s));
            REQUIRE(wait_until([&] { return observed([](const auto& o) { return o.v2 > 0; }) >= 20; }, 30s));
            appender.stop();
            CHECK(appender.appended() > 0);
        }
        REQUIRE(caught_up(db, "tally"));
        REQUIRE(caught_up(db, "fresh"));
        stop_reading = true;
        reader.join();

        std::lock_guard lock(mutex);
        CHECK(errors.empty());
        for (const auto& error : errors) {
            MESSAGE("reader error: " << error);
        }
        long long previous = 0;
        bool new_seen = false;
        long long old_observations = 0;
        long long new_observations = 0;
        for (const auto& o : seen) {
            INFO("observation: " << o.rows << " rows, " << o.v1 << " v1, " << o.v2 << " v2, count " << o.count);
            CHECK(o.rows > 0);
            CHECK(o.rows >= previous);
            CHECK((o.v1 == o.rows || o.v2 == o.rows)); // entirely old or entirely new
            CHECK(o.count == o.rows);                  // both tables of one model
            if (o.v2 == o.rows) {
                new_seen = true;
                ++new_observations;
            } else {
                CHECK_FALSE(new_seen); // never back to the old one
                ++old_observations;
            }
            previous = o.rows;
        }
        MESSAGE(old_observations << " observations of the old model, " << new_observations << " of the new one");
        CHECK(old_observations >= 20);
        CHECK(new_observations >= 20);

        // The new model is what one run of its handlers from the first event makes.
        const long long events = db.number("SELECT count(*) FROM events");
        CHECK(live_generation(db, "tally") != old_generation);
        CHECK(db.number("SELECT count(*) FROM tally.seen") == events);
        CHECK(db.number("SELECT n FROM tally.stats") == events);
        CHECK(db.number("SELECT n FROM fresh.stats") == events);
        CHECK(db.scalar("SELECT NOT EXISTS (SELECT * FROM tally.seen EXCEPT SELECT * FROM fresh.seen) AND "
                        "NOT EXISTS (SELECT * FROM fresh.seen EXCEPT SELECT * FROM tally.seen)") == "t");
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("kill -9 mid-rebuild: the next start resumes the build from its checkpoint and swaps it in; the live "
              "version stays exact") {
        TestDatabase db;
        append(db, 1500);
        DaemonProcess daemon(db, config_with(tally(1, "v1")));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(live_caught_up(db, "tally"));

        daemon.config().write(config_with(tally(2, "v2", "0.002")));
        daemon.process().signal(SIGHUP);
        REQUIRE(wait_until([&] { return building_generation(db, "tally") != 0; }, 30s));
        const long long building = building_generation(db, "tally");
        REQUIRE(wait_until([&] { return generation_checkpoint(db, "tally", building) >= 300; }, 60s));
        daemon.process().signal(SIGKILL);
        REQUIRE(daemon.process().wait_for_exit(10s) == 128 + SIGKILL);
        // Its sessions end too (a batch in flight commits or not, atomically).
        REQUIRE(wait_until([&] { return sessions(db) == 0; }, 30s));
        const long long killed_at = generation_checkpoint(db, "tally", building);
        CHECK(killed_at < 1500);
        // The live version: its count is what its checkpoint says.
        const std::string live_exact = "SELECT (SELECT n FROM tally.stats) = c.events_processed "
                                       "FROM projection_checkpoints c JOIN projectiond_projections p "
                                       "ON p.projection_name = c.projection_name AND c.generation = p.live_generation "
                                       "WHERE c.projection_name = 'tally'";
        CHECK(db.scalar(live_exact) == "t");

        daemon.restart();
        append(db, 100); // the live version keeps applying new events meanwhile
        bool went_back = false;
        REQUIRE(wait_until(
            [&] {
                // One snapshot: the build's checkpoint while it is still the build.
                const std::string row = db.scalar(
                    fmt::format("SELECT coalesce((SELECT min(last_global_position) FROM projection_checkpoints "
                                "WHERE projection_name = 'tally' AND generation = {0}), -1) || ',' || live_generation "
                                "FROM projectiond_projections WHERE projection_name = 'tally'",
                                building));
                const long long position = std::stoll(row.substr(0, row.find(',')));
                const long long live = std::stoll(row.substr(row.find(',') + 1));
                if (position >= 0 && position < killed_at) {
                    went_back = true;
                }
                return live == building;
            },
            90s, 10ms));
        CHECK_FALSE(went_back);
        const std::string second_log = daemon.log();
        CHECK_FALSE(contains(second_log, "from the first event")); // not started over
        CHECK(contains(second_log, fmt::format("Resuming from checkpoint: position {}", killed_at)));
        CHECK(contains(second_log, "swapped in the new version"));

        REQUIRE(caught_up(db, "tally"));
        const long long events = db.number("SELECT count(*) FROM events");
        CHECK(db.number("SELECT n FROM tally.stats") == events);
        CHECK(db.number("SELECT count(*) FROM tally.seen WHERE mark = 'v2'") == events);
        // The old live version, kept as tally_v1, was exact too when it retired.
        CHECK(db.number("SELECT n FROM tally_v1.stats") == db.number("SELECT count(*) FROM tally_v1.seen"));
        CHECK(db.number("SELECT count(*) FROM tally_v1.seen WHERE mark <> 'v1'") == 0);
        CHECK(db.number("SELECT count(*) FROM tally_v1.seen") >= 1500);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("SIGHUP with another version mid-rebuild abandons the unfinished build and builds and swaps in the "
              "newest") {
        TestDatabase db;
        append(db, 1500);
        DaemonProcess daemon(db, config_with(tally(1, "v1")));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(live_caught_up(db, "tally"));
        const long long v1 = live_generation(db, "tally");

        daemon.config().write(config_with(tally(2, "v2", "0.005")));
        daemon.process().signal(SIGHUP);
        REQUIRE(wait_until([&] { return building_generation(db, "tally") != 0; }, 30s));
        const long long v2 = building_generation(db, "tally");
        REQUIRE(wait_until([&] { return generation_checkpoint(db, "tally", v2) >= 200; }, 60s));
        CHECK(schema_exists(db, "tally_v2"));

        daemon.config().write(config_with(tally(3, "v3")));
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("abandoned the unfinished build of version 2 (schema tally_v2)"));
        REQUIRE(daemon.wait_for_log("swapped in the new version", 60s));
        const long long v3 = live_generation(db, "tally");
        CHECK(v3 != v1);
        CHECK(v3 != v2);
        REQUIRE(caught_up(db, "tally"));

        // Nothing of version 2 is left: no schema, generation, checkpoint or dead letter.
        CHECK_FALSE(schema_exists(db, "tally_v2"));
        CHECK(db.number("SELECT count(*) FROM projectiond_generations WHERE projection_name = 'tally' AND "
                        "(version = 2 OR generation = " +
                        std::to_string(v2) + ")") == 0);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE generation = " + std::to_string(v2)) == 0);
        CHECK(db.number("SELECT count(*) FROM projection_dead_letters WHERE generation = " + std::to_string(v2)) == 0);
        CHECK(db.number("SELECT count(*) FROM pg_class WHERE relname IN ('seen', 'stats') AND "
                        "relnamespace = 'public'::regnamespace") == 0);
        // Version 3 is live and exact; version 1 retired, kept as tally_v1.
        const long long events = db.number("SELECT count(*) FROM events");
        CHECK(db.scalar("SELECT version || ' ' || stage || ' ' || schema_name FROM projectiond_generations "
                        "WHERE projection_name = 'tally' AND generation = " +
                        std::to_string(v3)) == "3 live tally");
        CHECK(db.scalar("SELECT version || ' ' || stage || ' ' || schema_name FROM projectiond_generations "
                        "WHERE projection_name = 'tally' AND generation = " +
                        std::to_string(v1)) == "1 retired tally_v1");
        CHECK(db.number("SELECT n FROM tally.stats") == events);
        CHECK(db.number("SELECT count(*) FROM tally.seen WHERE mark = 'v3'") == events);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("prune drops the retired schema and its checkpoints and says so; with nothing retired it says "
              "there is nothing to prune") {
        TestDatabase db;
        append(db, 50);
        DaemonProcess daemon(db, config_with(tally(1, "v1")));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(live_caught_up(db, "tally"));

        const auto nothing = cli(db, daemon.config(), {"prune", "tally"});
        CHECK(nothing.exit_code == 0);
        CHECK(nothing.out == "Nothing to prune for tally: no version of it has been retired by a swap.\n");
        CHECK(schema_exists(db, "tally"));

        daemon.config().write(config_with(tally(2, "v2")));
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("swapped in the new version", 60s));
        REQUIRE(caught_up(db, "tally"));
        const long long live = live_generation(db, "tally");
        REQUIRE(schema_exists(db, "tally_v1"));
        CHECK(db.number("SELECT count(*) FROM tally_v1.seen") == 50);

        const auto pruned = cli(db, daemon.config(), {"prune", "tally"});
        CHECK(pruned.exit_code == 0);
        CHECK(pruned.out == "Pruned tally: dropped the retired schema tally_v1 and its checkpoints.\n");
        CHECK_FALSE(schema_exists(db, "tally_v1"));
        CHECK(db.number("SELECT count(*) FROM projectiond_generations WHERE projection_name = 'tally'") == 1);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = 'tally' AND "
                        "generation <> " +
                        std::to_string(live)) == 0);
        // The live model is untouched and keeps going.
        CHECK(db.number("SELECT count(*) FROM tally.seen WHERE mark = 'v2'") == 50);
        append(db, 10);
        REQUIRE(caught_up(db, "tally"));
        CHECK(db.number("SELECT n FROM tally.stats") == 60);

        const auto again = cli(db, daemon.config(), {"prune", "tally"});
        CHECK(again.exit_code == 0);
        CHECK(contains(again.out, "Nothing to prune for tally"));
        const auto unknown = cli(db, daemon.config(), {"prune", "nosuch"});
        CHECK(unknown.exit_code == 64);
        CHECK(contains(unknown.err, "no projection named 'nosuch'"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("pause stops a projection on two daemons within a batch and across their restart, status says "
              "Paused (behind by N events); resume catches up") {
        TestDatabase db;
        append(db, 100);
        const std::string two = R"(defaults:
  batch_size: 10
  poll_interval: 1s
projections:
  - name: counter
    partitions: 2
    setup: |
      CREATE TABLE IF NOT EXISTS stats (id int PRIMARY KEY, n bigint NOT NULL);
      INSERT INTO stats VALUES (1, 0) ON CONFLICT DO NOTHING
    handlers:
      "*": UPDATE stats SET n = n + 1 WHERE id = 1
)";
        DaemonProcess first(db, two);
        DaemonProcess second(db, two);
        INFO("log of the first daemon:\n" << first.log());
        INFO("log of the second daemon:\n" << second.log());
        const std::string owners = "SELECT count(DISTINCT owner_daemon) FROM projection_checkpoints "
                                   "WHERE projection_name = 'counter' AND owner_daemon IS NOT NULL";
        REQUIRE(wait_until([&] { return db.number(owners) == 2; }, 60s)); // one partition each
        REQUIRE(caught_up(db, "counter", 60s, 2));

        const auto paused = cli(db, first.config(), {"pause", "counter"});
        CHECK(paused.exit_code == 0);
        CHECK(contains(paused.out, "Paused counter"));
        const std::string processed =
            "SELECT coalesce(sum(events_processed), 0) FROM projection_checkpoints WHERE projection_name = 'counter'";
        const long long at_pause = db.number(processed);
        append(db, 60);
        // Within a batch: at most the batch each partition had in flight.
        CHECK_FALSE(wait_until([&] { return db.number(processed) > at_pause + 2 * 10; }, 3s));
        const long long stopped_at = db.number(processed);
        MESSAGE((stopped_at - at_pause) << " events applied after the pause");
        const auto status = cli(db, first.config(), {"status", "counter"});
        CHECK(status.exit_code == 0);
        for (const auto& line : paused_lines(db, "counter")) {
            CHECK_MESSAGE(contains(status.out, line + "; `projectiond resume counter` continues\n"), status.out);
        }
        const auto json = nlohmann::json::parse(cli(db, first.config(), {"status", "--json", "counter"}).out);
        REQUIRE(json["projections"].size() == 2);
        for (const auto& p : json["projections"]) {
            CHECK(p["status"] == "paused");
            CHECK(p["behind"].get<long long>() >= 60 - 10);
        }

        // Both daemons restart: the pause is in the database, they obey it.
        CHECK(first.stop(SIGTERM) == 0);
        CHECK(second.stop(SIGTERM) == 0);
        first.restart();
        second.restart();
        REQUIRE(first.wait_ready());
        REQUIRE(second.wait_ready());
        REQUIRE(wait_until([&] { return db.number(owners) == 2; }, 60s));
        append(db, 20);
        CHECK_FALSE(wait_until([&] { return db.number(processed) > stopped_at; }, 3s));
        const auto after_restart = cli(db, first.config(), {"status", "counter"});
        for (const auto& line : paused_lines(db, "counter")) {
            CHECK_MESSAGE(contains(after_restart.out, line), after_restart.out);
        }

        const auto resumed = cli(db, second.config(), {"resume", "counter"});
        CHECK(resumed.exit_code == 0);
        CHECK(contains(resumed.out, "Resumed counter"));
        REQUIRE(caught_up(db, "counter", 60s, 2));
        CHECK(db.number("SELECT n FROM stats") == 180);
        CHECK(db.number(owners) == 2); // both daemons took part
        CHECK(contains(cli(db, first.config(), {"status", "counter"}).out, "Status: Caught up"));
        CHECK(first.stop(SIGTERM) == 0);
        CHECK(second.stop(SIGTERM) == 0);
    }

    TEST_CASE("resume retries a projection stopped by on_error: stop once a SIGHUP has fixed its cause, without "
              "restarting the daemon") {
        TestDatabase db;
        append(db, 20);
        // The failure's cause is outside the failed projection (a row it
        // needs), so the reload that fixes it leaves that projection's
        // runner alone: only `resume` can retry it. (A reload that changes
        // the failed projection itself restarts it, which retries too.)
        const std::string fragile = R"(  - name: fragile
    schema: fragile
    on_error: stop
    max_retries: 1
    setup: |
      CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS allowed (name text PRIMARY KEY)
    handlers:
      UserCreated:
        - INSERT INTO seen VALUES (:global_position)
        - SELECT 1 / (CASE WHEN :payload.name <> 'User 7' OR EXISTS (SELECT 1 FROM allowed WHERE name = 'User 7') THEN 1 ELSE 0 END)
)";
        DaemonProcess daemon(db, config_with(fragile, 20));
        INFO("log of daemon:\n" << daemon.log());
        const std::string state = "SELECT state FROM projection_checkpoints WHERE projection_name = 'fragile'";
        REQUIRE(wait_until([&] { return db.scalar(state) == "failed"; }, 30s));
        const auto failed = cli(db, daemon.config(), {"status", "fragile"});
        CHECK(failed.exit_code == 1);
        CHECK(contains(failed.out, "Status: Failed at position 7"));

        daemon.config().write(config_with(fragile + R"(  - name: allow_user_7
    setup: INSERT INTO fragile.allowed VALUES ('User 7') ON CONFLICT DO NOTHING
    log: true
)",
                                          20));
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("reloaded: 1 added, 0 changed (restarted), 0 removed, 1 unchanged"));
        CHECK(db.number("SELECT count(*) FROM fragile.allowed") == 1);
        // The fix alone does not retry it.
        CHECK_FALSE(wait_until([&] { return db.scalar(state) != "failed"; }, 2s));

        const auto resumed = cli(db, daemon.config(), {"resume", "fragile"});
        CHECK(resumed.exit_code == 0);
        CHECK(contains(resumed.out, "Resumed fragile: 1 failed partition will be retried"));
        REQUIRE(caught_up(db, "fragile"));
        CHECK(daemon.process().running()); // the same daemon, never restarted
        CHECK_FALSE(contains(daemon.log(), "SIGTERM"));
        CHECK(db.number("SELECT count(*) FROM fragile.seen") == 20);
        CHECK(cli(db, daemon.config(), {"status", "fragile"}).exit_code == 0);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("rebuild of a projection without a schema explains why it cannot and points to reset, exit 64") {
        TestDatabase db;
        TempFile config(counter_config(10));
        const auto result = cli(db, config, {"rebuild", "counter"});
        CHECK(result.exit_code == 64);
        CHECK(contains(result.err, "projection 'counter' has no schema, so it cannot be rebuilt blue/green"));
        CHECK(contains(result.err, "`projectiond reset counter`"));
        CHECK(result.out.empty());
        CHECK(db.number("SELECT count(*) FROM projectiond_projections WHERE rebuild_requested_at IS NOT NULL") == 0);
    }

    TEST_CASE("rebuild of a projection with a schema builds the same version in <schema>_rebuild_v<version>, status "
              "shows it, and swaps it in") {
        TestDatabase db;
        append(db, 1000);
        DaemonProcess daemon(db, config_with(tally(1, "v1", "0.002")));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(live_caught_up(db, "tally", 90s));
        const long long old_generation = live_generation(db, "tally");

        const auto asked = cli(db, daemon.config(), {"rebuild", "tally"});
        CHECK(asked.exit_code == 0);
        CHECK(contains(asked.out, "in schema tally_rebuild_v1"));
        REQUIRE(wait_until([&] { return building_generation(db, "tally") != 0; }, 30s));
        const long long building = building_generation(db, "tally");
        REQUIRE(wait_until([&] { return generation_checkpoint(db, "tally", building) > 0; }, 30s));
        const auto status = cli(db, daemon.config(), {"status", "tally"});
        MESSAGE("status during the rebuild:\n" << status.out);
        CHECK(contains(status.out, "Projection: tally - new version 1 being built in schema tally_rebuild_v1\n"));
        CHECK(contains(status.out, "Status: Rebuilding, "));
        CHECK(contains(status.out, "Status: Caught up (all events processed)"));
        const auto json = nlohmann::json::parse(cli(db, daemon.config(), {"status", "--json", "tally"}).out);
        REQUIRE(json["projections"].size() == 2);
        CHECK(json["projections"][1]["status"] == "rebuilding");

        REQUIRE(swapped(db, "tally", building, 90s));
        REQUIRE(caught_up(db, "tally"));
        CHECK(db.number("SELECT n FROM tally.stats") == 1000);
        CHECK(db.number("SELECT count(*) FROM tally.seen") == 1000);
        CHECK(db.scalar("SELECT stage || ' ' || schema_name FROM projectiond_generations WHERE projection_name = "
                        "'tally' AND generation = " +
                        std::to_string(old_generation)) == "retired tally_v1");
        CHECK_FALSE(schema_exists(db, "tally_rebuild_v1"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("a batch of the new version in flight while the swap renames the schemas writes into its own "
              "tables, never through the search_path into the old version's") {
        TestDatabase db;
        check_swap_waits_for_batch(db);
    }

    TEST_CASE("batches, setups and commands run READ COMMITTED even when the database's default isolation is "
              "repeatable read") {
        // Each statement of a batch must see what committed before it: the
        // schema name a batch looks up after waiting for its checkpoint row
        // is the one a swap that held that row gave it. The other
        // transactions are reasoned about the same way.
        TestDatabase db;
        db.scalar("ALTER DATABASE " + db.name() + " SET default_transaction_isolation = 'repeatable read'");
        append(db, 5);
        const std::string yaml = config_with(R"(  - name: isolation
    schema: isolation
    setup: |
      CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, level text NOT NULL);
      DO $$ BEGIN IF current_setting('transaction_isolation') <> 'read committed' THEN
          RAISE EXCEPTION 'setup runs %', current_setting('transaction_isolation'); END IF; END $$
    handlers:
      "*": INSERT INTO seen VALUES (:global_position, current_setting('transaction_isolation'))
)");
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        const auto checked = cli(db, daemon.config(), {"check-config"}); // runs each setup and rolls it back
        CHECK_MESSAGE(checked.exit_code == 0, checked.out << checked.err);
        REQUIRE(caught_up(db, "isolation"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.scalar("SELECT string_agg(DISTINCT level, ',') FROM isolation.seen") == "read committed");
        CHECK(db.number("SELECT count(*) FROM isolation.seen") == 5);
    }

    TEST_CASE("reset during a rebuild is refused with exit 69 and changes nothing; the rebuild swaps in complete") {
        TestDatabase db;
        append(db, 600);
        DaemonProcess daemon(db, config_with(tally(1, "v1", "0.002")));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(live_caught_up(db, "tally", 90s));
        REQUIRE(cli(db, daemon.config(), {"rebuild", "tally"}).exit_code == 0);
        REQUIRE(wait_until([&] { return building_generation(db, "tally") != 0; }, 30s));
        const long long building = building_generation(db, "tally");
        REQUIRE(wait_until([&] { return generation_checkpoint(db, "tally", building) > 0; }, 30s));
        const long long live = live_generation(db, "tally");
        const long long live_checkpoint = generation_checkpoint(db, "tally", live);

        // Paused, so that only the rebuild stands in its way.
        REQUIRE(cli(db, daemon.config(), {"pause", "tally"}).exit_code == 0);
        const auto refused = cli(db, daemon.config(), {"reset", "tally"});
        CHECK(refused.exit_code == 69);
        CHECK_MESSAGE(contains(refused.err, fmt::format("projection 'tally' is being rebuilt (generation {}, in schema "
                                                        "tally_rebuild_v1)",
                                                        building)),
                      refused.err);
        CHECK(contains(refused.err, "Let the rebuild finish"));
        CHECK(generation_checkpoint(db, "tally", live) == live_checkpoint);
        CHECK(building_generation(db, "tally") == building);
        REQUIRE(cli(db, daemon.config(), {"resume", "tally"}).exit_code == 0);

        REQUIRE(swapped(db, "tally", building, 90s));
        REQUIRE(caught_up(db, "tally"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM tally.stats") == 600);
        CHECK(db.number("SELECT count(*) FROM tally.seen") == 600);
    }

    // Setups run in one transaction; one projection's schema must not stay on
    // the search_path of the next one's setup.
    TEST_CASE("a setup after a projection with a schema creates its tables where it did without one") {
        TestDatabase db;
        append(db, 5);
        DaemonProcess daemon(db, R"(projections:
  - name: orders
    schema: orders
    setup: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO seen VALUES (:global_position)
  - name: audit
    setup: CREATE TABLE IF NOT EXISTS audit_log (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO audit_log VALUES (:global_position)
)");
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "audit"));
        REQUIRE(caught_up(db, "orders"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM public.audit_log") == 5);
        CHECK(db.number("SELECT count(*) FROM orders.seen") == 5);
        CHECK(db.number("SELECT count(*) FROM pg_tables WHERE schemaname = 'orders' AND tablename = 'audit_log'") == 0);
    }
}
