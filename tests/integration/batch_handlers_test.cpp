// Batch handlers (`{batch: SQL}`, SPEC section 4) keep the promises of
// per-event ones, end to end: exactly once across kill -9, reading order
// within a run and across runs, filters, partitions, and on_error. The
// per-event equivalents of these cases are in engine_test.cpp.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "store/demo_events.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <string>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

// The counter of engine_test.cpp, counting a run at a time: wrong if a run
// were applied twice or lost.
const char* const batch_counter =
    R"yaml({batch: "UPDATE stats SET n = n + (SELECT count(*) FROM batch) WHERE id = 1; SELECT pg_sleep(0.01)"})yaml";

std::string position_of_user(const TestDatabase& db, int user) {
    return db.scalar(fmt::format("SELECT global_position FROM events WHERE payload->>'name' = 'User {}'", user));
}

} // namespace

TEST_SUITE("batch_handlers") {
    TEST_CASE("kill -9 again and again during a catch-up: a batch handler's non-idempotent counter stays exact") {
        TestDatabase db;
        append(db, 40000);
        // Runs of 400 events, each transaction held open for 10 ms: a kill
        // usually lands while a batch is in flight.
        DaemonProcess daemon(db, counter_config(400, "", batch_counter));
        INFO("log of daemon:\n" << daemon.log());
        long long last = 0;
        for (int kill = 1; kill <= 4; ++kill) {
            REQUIRE(wait_until([&] { return checkpoint(db, "counter") >= last + 6000; }, 60s, 5ms));
            daemon.process().signal(SIGKILL);
            REQUIRE(daemon.process().wait_for_exit(10s) == 128 + SIGKILL);
            last = checkpoint(db, "counter");
            REQUIRE(last < max_position(db)); // killed during the catch-up, not after it
            // One snapshot: the killed client's last batch may still be
            // committing on the server (with its checkpoint, atomically).
            CHECK(db.scalar("SELECT (SELECT n FROM stats) = events_processed FROM projection_checkpoints") == "t");
            daemon.restart();
        }
        REQUIRE(caught_up(db, "counter", 60s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 40000);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 40000);
    }

    TEST_CASE("a run sees its events in reading order; runs of different handlers and per-event handlers keep "
              "their relative order") {
        TestDatabase db;
        {
            // Reading order is (store_epoch, transaction_id, global_position):
            // the transaction that took its id first is read first, although
            // its events got the higher positions.
            store::Connection early = db.connect();
            store::Connection late = db.connect();
            early.exec("BEGIN");
            early.exec("SELECT pg_current_xact_id()");
            // Handler A (batch) takes about half the events, B (batch) a
            // quarter, C (per-event) a fifth, N (no handler) the rest.
            const char* const mixed = R"sql(
SELECT append_events('C', 'Mix', '{}-' || i, 0, jsonb_build_array(jsonb_build_object(
         'event_type', CASE WHEN h < 8 THEN 'A' WHEN h < 12 THEN 'B' WHEN h < 15 THEN 'C' ELSE 'N' END,
         'payload', '{{}}'::jsonb)))
  FROM (SELECT i, ('x' || left(md5('{}' || i), 1))::bit(4)::int AS h FROM generate_series(1, 150) i) s
 ORDER BY i)sql";
            late.exec(fmt::format(fmt::runtime(mixed), "late", "late"));
            early.exec(fmt::format(fmt::runtime(mixed), "early", "early"));
            early.exec("COMMIT");
        }
        REQUIRE(db.number("SELECT min(global_position) FROM events WHERE aggregate_id LIKE 'early-%'") >
                db.number("SELECT max(global_position) FROM events WHERE aggregate_id LIKE 'late-%'"));
        const std::string yaml = R"(defaults:
  batch_size: 16
projections:
  - name: mixed
    setup: CREATE TABLE IF NOT EXISTS mix_log (seq bigserial PRIMARY KEY, handler text, position bigint, ordinal bigint)
    handlers:
      A:
        batch: |
          INSERT INTO mix_log (handler, position, ordinal)
          SELECT 'A', global_position, batch_ordinal FROM batch ORDER BY batch_ordinal
      B:
        batch: |
          INSERT INTO mix_log (handler, position, ordinal)
          SELECT 'B', global_position, batch_ordinal FROM batch ORDER BY batch_ordinal
      C: INSERT INTO mix_log (handler, position) VALUES ('C', :global_position)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "mixed"));
        CHECK(daemon.stop(SIGTERM) == 0);
        const long long handled = db.number("SELECT count(*) FROM events WHERE event_type <> 'N'");
        CHECK(db.number("SELECT count(*) FROM mix_log") == handled);
        // The log, in the order the handlers wrote it, is the store in reading order.
        CHECK(db.number(R"sql(
SELECT count(*)
  FROM (SELECT position, row_number() OVER (ORDER BY seq) AS k FROM mix_log) l
  FULL JOIN (SELECT global_position, row_number() OVER (ORDER BY store_epoch, transaction_id, global_position) AS k
               FROM events WHERE event_type <> 'N') e
    ON e.k = l.k AND e.global_position = l.position
 WHERE l.k IS NULL OR e.k IS NULL)sql") == 0);
        // batch_ordinal counts 1, 2, ... along a run; a run ends where another
        // handler's event comes, or with the batch (events of type N, which no
        // handler takes, are not even read: a run goes on across them).
        const std::string runs = R"sql(
SELECT count(*)
  FROM (SELECT handler, ordinal, lag(handler) OVER w AS previous_handler, lag(ordinal) OVER w AS previous_ordinal
          FROM mix_log WINDOW w AS (ORDER BY seq)) l
 WHERE handler <> 'C' AND )sql";
        CHECK(db.number(runs + "ordinal <> 1 AND previous_handler IS DISTINCT FROM handler") == 0);
        CHECK(db.number(runs + "ordinal <> 1 AND previous_ordinal IS DISTINCT FROM ordinal - 1") == 0);
        // Runs longer than one event did happen, for both batch handlers.
        CHECK(db.number("SELECT count(*) FROM mix_log WHERE handler = 'A' AND ordinal > 1") > 10);
        CHECK(db.number("SELECT count(*) FROM mix_log WHERE handler = 'B' AND ordinal > 1") > 0);
        CHECK(db.number("SELECT count(*) FROM mix_log WHERE handler = 'C'") > 0);
    }

    TEST_CASE("filters apply to batch handlers in SQL, and events they exclude still advance the checkpoint") {
        TestDatabase db;
        {
            store::Connection conn = db.connect();
            store::append_demo_events(conn, 10, "User", "Identity");
            store::append_demo_events(conn, 10, "Order", "Identity");
            store::append_demo_events(conn, 10, "User", "Billing");
            conn.exec("SELECT * FROM append_events('Identity', 'User', 'u-renamed', 0, "
                      "'[{\"event_type\": \"UserRenamed\", \"payload\": {\"name\": \"R\"}}]')");
            store::append_demo_events(conn, 10, "Order", "Identity");
        }
        const std::string yaml = R"(defaults:
  batch_size: 100
projections:
  - name: identity_users
    aggregate_types: [User]
    bounded_contexts: [Identity]
    event_types: [UserCreated]
    setup: CREATE TABLE IF NOT EXISTS picked (position bigint PRIMARY KEY, name text, ordinal bigint)
    handlers:
      "*":
        batch: INSERT INTO picked SELECT global_position, payload->>'name', batch_ordinal FROM batch
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "identity_users"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM picked") == 10);
        CHECK(db.number("SELECT count(*) FROM picked p JOIN events e ON e.global_position = p.position WHERE "
                        "e.aggregate_type <> 'User' OR e.bounded_context <> 'Identity' OR e.event_type <> "
                        "'UserCreated'") == 0);
        // The excluded events never reach the handler: the ten matching ones are one run.
        CHECK(db.number("SELECT max(ordinal) FROM picked") == 10);
        CHECK(checkpoint(db, "identity_users") == max_position(db));
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 10);
    }

    TEST_CASE("partitions: each runs its batch handler over its own aggregates only, exactly once") {
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
        // The upsert only counts a run that continues the aggregate's
        // versions where the last one stopped: a gap or a repeat leaves n short.
        const std::string yaml = R"(defaults:
  batch_size: 100
projections:
  - name: split
    partitions: 3
    setup: |
      CREATE TABLE IF NOT EXISTS per_aggregate (id text PRIMARY KEY, n int NOT NULL, last_version bigint);
      CREATE TABLE IF NOT EXISTS split_runs (partitions_seen bigint, events bigint)
    handlers:
      "*":
        batch:
          - |
            INSERT INTO per_aggregate
            SELECT aggregate_id, count(*), max(aggregate_version) FROM batch GROUP BY aggregate_id
            ON CONFLICT (id) DO UPDATE SET n = per_aggregate.n + EXCLUDED.n, last_version = EXCLUDED.last_version
            WHERE per_aggregate.last_version = EXCLUDED.last_version - EXCLUDED.n
          - |
            INSERT INTO split_runs
            SELECT count(DISTINCT projectiond_partition_of(aggregate_id, 3)), count(*) FROM batch
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "split", 60s, 3));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = 'split'") == 3);
        CHECK(db.number("SELECT count(*) FROM per_aggregate WHERE n = 10 AND last_version = 10") == 200);
        CHECK(db.number("SELECT count(*) FROM per_aggregate") == 200);
        // Every run held the aggregates of one partition, and each partition
        // counted exactly the events of its own aggregates.
        CHECK(db.number("SELECT max(partitions_seen) FROM split_runs") == 1);
        CHECK(db.number("SELECT sum(events) FROM split_runs") == 2000);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints c WHERE c.events_processed <> (SELECT count(*) "
                        "FROM events e WHERE projectiond_partition_of(e.aggregate_id, 3) = c.partition_index)") == 0);
        CHECK(db.number("SELECT min(events_processed) FROM projection_checkpoints") > 300);
    }

    TEST_CASE("on_error: skip with a batch handler: the failing run is retried one event at a time, only the "
              "poison event is parked, the others are applied exactly once") {
        TestDatabase db;
        append(db, 20);
        // Batches of 8: User 1-8 (the poison, User 7, among them), 9-16, 17-20.
        const std::string yaml = R"(defaults:
  batch_size: 8
  on_error: skip
  max_retries: 1
projections:
  - name: skipper
    setup: |
      CREATE TABLE IF NOT EXISTS kept (position bigint PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS skipper_runs (seq bigserial PRIMARY KEY, first_position bigint, events bigint);
      CREATE TABLE IF NOT EXISTS stats (id int PRIMARY KEY, n bigint NOT NULL);
      INSERT INTO stats VALUES (1, 0) ON CONFLICT DO NOTHING
    handlers:
      UserCreated:
        batch:
          - INSERT INTO kept SELECT global_position FROM batch
          - UPDATE stats SET n = n + (SELECT count(*) FROM batch) WHERE id = 1
          - INSERT INTO skipper_runs (first_position, events) SELECT min(global_position), count(*) FROM batch
          - SELECT 1 / (CASE WHEN EXISTS (SELECT FROM batch WHERE payload->>'name' = 'User 7') THEN 0 ELSE 1 END)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "skipper"));
        CHECK(daemon.stop(SIGTERM) == 0);
        const std::string poison = position_of_user(db, 7);
        CHECK(db.number("SELECT count(*) FROM kept") == 19);
        CHECK(db.number("SELECT n FROM stats") == 19);
        CHECK(db.number("SELECT count(*) FROM kept WHERE position = " + poison) == 0);
        CHECK(db.scalar("SELECT string_agg(global_position::text, ',') FROM projection_dead_letters WHERE "
                        "projection_name = 'skipper'") == poison);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 19);
        CHECK(checkpoint(db, "skipper") == max_position(db));
        // What isolation does: the run of eight failed as a whole, so its
        // events ran one at a time; the six before the poison were committed
        // as runs of one with the dead letter, and the events after it came
        // back in the next batch as ordinary runs.
        CHECK(db.scalar("SELECT string_agg(events::text, ',' ORDER BY seq) FROM skipper_runs") == "1,1,1,1,1,1,8,5");
        CHECK(db.scalar("SELECT min(first_position) FROM skipper_runs WHERE events = 8") == position_of_user(db, 8));
        CHECK(contains(daemon.log(), "running those events one at a time to find the failing one"));
        CHECK(contains(daemon.log(), "the batch handler for UserCreated failed on the run of 8 events from position"));
        const auto listed = run_command({projectiond_binary(), "--database-url", db.conninfo(), "dead-letters"});
        CHECK(listed.exit_code == 0);
        CHECK(contains(listed.out, fmt::format("skipper partition 0: position {}", poison)));
        CHECK(contains(listed.out, "division by zero"));
    }

    TEST_CASE("a run that fails only as a whole is applied one event at a time, and nothing is parked") {
        TestDatabase db;
        {
            store::Connection conn = db.connect();
            conn.exec("SELECT append_events('C', 'K', 'k-' || (i % 3), NULL, "
                      "'[{\"event_type\": \"Set\", \"payload\": {}}]') FROM generate_series(1, 12) i");
        }
        // Two events of one aggregate in a run make ON CONFLICT DO UPDATE touch
        // a row twice (SQLSTATE 21000); one event at a time is fine.
        const std::string yaml = R"(defaults:
  batch_size: 100
  on_error: skip
  max_retries: 0
projections:
  - name: last_version
    setup: CREATE TABLE IF NOT EXISTS heads (id text PRIMARY KEY, version bigint, updates int)
    handlers:
      Set:
        batch: |
          INSERT INTO heads SELECT aggregate_id, aggregate_version, 1 FROM batch
          ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, updates = heads.updates + 1
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "last_version"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(contains(daemon.log(), "running those events one at a time"));
        CHECK(db.number("SELECT count(*) FROM projection_dead_letters") == 0);
        CHECK(db.number("SELECT count(*) FROM heads WHERE version = 4 AND updates = 4") == 3);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 12);
    }

    TEST_CASE("two runs of one batch that fail only as a whole are both applied one event at a time, without "
              "going back and forth between them") {
        TestDatabase db;
        {
            // Run 1: Set x12, then an event of another handler, then run 2: Set x12.
            store::Connection conn = db.connect();
            const std::string sets = "SELECT append_events('C', 'K', 'k-' || (i % 3), NULL, "
                                     "'[{\"event_type\": \"Set\", \"payload\": {}}]') FROM generate_series(1, 12) i";
            conn.exec(sets);
            conn.exec("SELECT append_events('C', 'K', 'other', 0, '[{\"event_type\": \"Other\", \"payload\": {}}]')");
            conn.exec(sets);
        }
        const std::string yaml = R"(defaults:
  batch_size: 100
  on_error: skip
  max_retries: 0
projections:
  - name: last_version
    setup: CREATE TABLE IF NOT EXISTS heads (id text PRIMARY KEY, version bigint, updates int)
    handlers:
      Set:
        batch: |
          INSERT INTO heads SELECT aggregate_id, aggregate_version, 1 FROM batch
          ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, updates = heads.updates + 1
      Other: SELECT 1
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "last_version", 20s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM projection_dead_letters") == 0);
        CHECK(db.number("SELECT count(*) FROM heads WHERE version = 8 AND updates = 8") == 3);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 25);
    }

    TEST_CASE("on_error: stop with a batch handler commits the events before the failing one and stops just "
              "before it") {
        TestDatabase db;
        append(db, 20);
        const std::string fragile = R"(  - name: fragile
    max_retries: 1
    setup: CREATE TABLE IF NOT EXISTS fragile_seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated:
        batch:
          - INSERT INTO fragile_seen SELECT global_position FROM batch
          - SELECT 1 / (CASE WHEN EXISTS (SELECT FROM batch WHERE payload->>'name' = 'User 7') THEN 0 ELSE 1 END)
)";
        DaemonProcess daemon(
            db,
            counter_config(20, fragile,
                           R"yaml({batch: "UPDATE stats SET n = n + (SELECT count(*) FROM batch) WHERE id = 1"})yaml"));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "counter"));
        REQUIRE(wait_until(
            [&] {
                return db.scalar("SELECT state FROM projection_checkpoints WHERE projection_name = "
                                 "'fragile'") == "failed";
            },
            30s));
        CHECK(daemon.process().running());
        const long long poison = std::stoll(position_of_user(db, 7));
        CHECK(db.number("SELECT failed_global_position FROM projection_checkpoints WHERE projection_name = "
                        "'fragile'") == poison);
        // The six events before the poison one are applied, in the batch that met it.
        CHECK(db.number("SELECT count(*) FROM fragile_seen") == 6);
        CHECK(db.number("SELECT max(position) FROM fragile_seen") == poison - 1);
        CHECK(checkpoint(db, "fragile") == poison - 1);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints WHERE projection_name = 'fragile'") == 6);
        const auto status = run_command(
            {projectiond_binary(), "-c", daemon.config().path(), "--database-url", db.conninfo(), "status"});
        CHECK(status.exit_code == 1);
        CHECK(contains(status.out, fmt::format("Status: Failed at position {} (event {}): ", poison,
                                               db.scalar("SELECT event_id FROM events WHERE global_position = " +
                                                         std::to_string(poison)))));
        CHECK(contains(status.out, "division by zero"));
        CHECK(daemon.stop(SIGTERM) == 0);
        // The other projection, batch-counting in the same daemon, went on.
        CHECK(db.number("SELECT n FROM stats") == 20);
    }

    // The projection's schema comes first in its handlers' search_path; a
    // table of its own named `events` must not become the run's events.
    TEST_CASE("a projection whose schema has a table named events still sees the store's events in batch, read "
              "as a range and as a list") {
        TestDatabase db;
        append(db, 30);
        {
            store::Connection conn = db.connect();
            conn.exec("SELECT append_events('C', 'Other', 'o-1', 0, '[{\"event_type\": \"Other\", \"payload\": {}}]')");
        }
        append(db, 10);
        // Batches of 20: positions 1-20 (consecutive: bound as a range), then
        // 21-30 and 32-41 (the Other event is not read: bound as a list).
        const std::string yaml = R"(defaults:
  batch_size: 20
projections:
  - name: calendar
    schema: calendar
    setup: |
      CREATE TABLE IF NOT EXISTS events (id bigint PRIMARY KEY, title text);
      INSERT INTO events VALUES (1, 'not an event of the store') ON CONFLICT DO NOTHING;
      CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY, name text, ordinal bigint)
    handlers:
      UserCreated:
        batch: INSERT INTO seen SELECT global_position, payload->>'name', batch_ordinal FROM batch
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "calendar"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM calendar.seen") == 40);
        CHECK(db.number("SELECT count(*) FROM calendar.seen s JOIN public.events e ON e.global_position = s.position "
                        "AND e.payload->>'name' = s.name") == 40);
        CHECK(db.scalar("SELECT string_agg(ordinal::text, ',' ORDER BY position) FROM calendar.seen WHERE position "
                        "IN (1, 20, 21, 30, 32, 41)") == "1,20,1,10,11,20");
    }

    TEST_CASE("a run of consecutive positions out of ascending order is read in reading order") {
        TestDatabase db;
        {
            // The transaction that took its id first appends last: reading
            // order is position 2, then 1 (then 3, 4, 5, appended after both).
            store::Connection early = db.connect();
            store::Connection late = db.connect();
            early.exec("BEGIN");
            early.exec("SELECT pg_current_xact_id()");
            late.exec("SELECT append_events('C', 'U', 'late', 0, '[{\"event_type\": \"E\", \"payload\": {}}]')");
            early.exec("SELECT append_events('C', 'U', 'early', 0, '[{\"event_type\": \"E\", \"payload\": {}}]')");
            early.exec("COMMIT");
            late.exec("SELECT append_events('C', 'U', 'after', 0, '[{\"event_type\": \"E\", \"payload\": {}}, "
                      "{\"event_type\": \"E\", \"payload\": {}}, {\"event_type\": \"E\", \"payload\": {}}]')");
        }
        REQUIRE(db.scalar("SELECT string_agg(global_position::text, ',' ORDER BY store_epoch, transaction_id, "
                          "global_position) FROM events") == "2,1,3,4,5");
        const std::string yaml = R"(defaults:
  batch_size: 5
projections:
  - name: order
    setup: CREATE TABLE IF NOT EXISTS order_log (position bigint PRIMARY KEY, ordinal bigint)
    handlers:
      E:
        batch: INSERT INTO order_log SELECT global_position, batch_ordinal FROM batch
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "order"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.scalar("SELECT string_agg(position::text || ':' || ordinal, ',' ORDER BY ordinal) FROM order_log") ==
              "2:1,1:2,3:3,4:4,5:5");
    }
}
