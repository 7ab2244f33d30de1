// The store can move (SPEC section 5): a dump restored into another cluster,
// or a logical-replication switch-over, whose transaction ids are unrelated to
// the old ones; appends inside two-phase commit; events whose identity and
// place in the order cannot be changed; functions that work with an empty
// search_path. docs/gap-safety.md explains the design these tests hold to.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "store/database_error.hpp"
#include "test_database.hpp"
#include "throwaway_cluster.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

// Two projections whose handlers are wrong if run twice: `counter` counts in
// stats row 1 and logs every event it handles (to find one missing, doubled
// or out of its aggregate's order); `halves`, in two partitions, counts in
// stats row 2.
const char* const projections_yaml = R"(defaults:
  batch_size: 7
  poll_interval: 1s
projections:
  - name: counter
    setup: |
      CREATE TABLE IF NOT EXISTS stats (id int PRIMARY KEY, n bigint NOT NULL);
      INSERT INTO stats VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING;
      CREATE TABLE IF NOT EXISTS applied (n bigint GENERATED ALWAYS AS IDENTITY, event_id uuid NOT NULL,
                                          aggregate_id text NOT NULL, aggregate_version bigint NOT NULL)
    handlers:
      "*":
        - UPDATE stats SET n = n + 1 WHERE id = 1
        - INSERT INTO applied (event_id, aggregate_id, aggregate_version)
          VALUES (:event_id, :aggregate_id, :aggregate_version)
  - name: halves
    partitions: 2
    handlers:
      "*": UPDATE stats SET n = n + 1 WHERE id = 2
)";

// The read model's tables as the application deploys them on a new cluster
// before a data-only restore (empty: the rows come with the data).
const char* const read_model_tables = R"sql(
CREATE TABLE stats (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE applied (n bigint GENERATED ALWAYS AS IDENTITY, event_id uuid NOT NULL,
                      aggregate_id text NOT NULL, aggregate_version bigint NOT NULL))sql";

constexpr int checkpoint_rows = 3; // counter, halves/0, halves/1

std::string account(int number) {
    return fmt::format("account-{}", number);
}

// Appends one event to `aggregate` at `version`, checking that the aggregate
// is at version - 1, in a transaction of its own.
void append_at(store::Connection& conn, const std::string& aggregate, long long version) {
    conn.exec(R"sql(
SELECT count(*) FROM append_events('Bank', 'Account', $1, $2::bigint - 1,
    jsonb_build_array(jsonb_build_object('event_type', 'Deposited', 'payload', jsonb_build_object('amount', $2::bigint)))))sql",
              {aggregate, std::to_string(version)});
}

// Burns `count` transaction ids of the cluster `db` is in, committing each
// one, so that its xid counter ends far from another cluster's.
void burn_transaction_ids(const DatabaseAt& db, int count) {
    db.connect().exec(
        fmt::format("DO $$ BEGIN FOR i IN 1..{} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$", count));
}

long long next_xid(const DatabaseAt& db) {
    return db.number("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint");
}

long long stats(const DatabaseAt& db, int row) {
    return db.number(fmt::format("SELECT n FROM stats WHERE id = {}", row));
}

// Every partition of every projection has passed every event, in
// (store_epoch, transaction_id, global_position) order, read in one snapshot.
bool caught_up(const DatabaseAt& db, std::chrono::milliseconds timeout = 60s) {
    const std::string sql = fmt::format(R"sql(
SELECT count(*) = {} AND bool_and(NOT EXISTS (
           SELECT 1 FROM events e
            WHERE (e.store_epoch, e.transaction_id, e.global_position)
                > (c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position)))
  FROM projection_checkpoints c)sql",
                                        checkpoint_rows);
    return wait_until([&] { return db.scalar(sql) == "t"; }, timeout, 50ms);
}

// The read model equals what one uninterrupted run over the store produces:
// both counters equal the number of events, every event was handled exactly
// once, and each aggregate's events in version order.
void check_exactly_once(const DatabaseAt& db, long long expected_events) {
    const long long events = db.number("SELECT count(*) FROM events");
    CHECK(events == expected_events);
    CHECK(stats(db, 1) == events);
    CHECK(stats(db, 2) == events);
    CHECK(db.number(R"sql(
SELECT count(*) FROM events e
  FULL JOIN (SELECT event_id, count(*) AS times FROM applied GROUP BY event_id) a USING (event_id)
 WHERE a.times IS DISTINCT FROM 1 OR e.event_id IS NULL)sql") == 0);
    CHECK(db.number(R"sql(
SELECT count(*) FROM (SELECT aggregate_version,
                             lag(aggregate_version) OVER (PARTITION BY aggregate_id ORDER BY n) AS previous
                        FROM applied) a
 WHERE a.previous IS NOT NULL AND a.previous >= a.aggregate_version)sql") == 0);
}

// On the source: 50 events over 10 accounts processed by a running daemon,
// then 30 more (a sixth version of those 10 accounts, 20 new ones) that no
// daemon has processed yet.
void fill_source(const DatabaseAt& a) {
    {
        DaemonProcess daemon(a.conninfo(), projections_yaml);
        REQUIRE(daemon.wait_ready());
        store::Connection conn = a.connect();
        for (int version = 1; version <= 5; ++version) {
            for (int i = 1; i <= 10; ++i) {
                append_at(conn, account(i), version);
            }
        }
        REQUIRE_MESSAGE(caught_up(a), daemon.log());
        REQUIRE(daemon.stop(SIGTERM) == 0);
    }
    store::Connection conn = a.connect();
    for (int i = 1; i <= 10; ++i) {
        append_at(conn, account(i), 6);
    }
    for (int i = 11; i <= 30; ++i) {
        append_at(conn, account(i), 1);
    }
    REQUIRE(stats(a, 1) == 50);
    REQUIRE(stats(a, 2) == 50);
}
constexpr long long source_events = 80;

// Right after the move: four appenders at once, two continuing the copied
// accounts 1-10 (versions 7-10), one continuing accounts 11-30 (version 2),
// one opening accounts 31-50. Every append must succeed as it is, without a
// retry. Returns the number of events appended (80).
long long append_concurrently(const DatabaseAt& b) {
    std::mutex mutex;
    std::vector<std::string> failures;
    const auto appender = [&](std::vector<std::pair<int, long long>> work) {
        return std::thread([&mutex, &failures, &b, work = std::move(work)] {
            try {
                store::Connection conn = b.connect();
                for (const auto& [number, version] : work) {
                    append_at(conn, account(number), version);
                }
            } catch (const std::exception& error) {
                std::lock_guard lock(mutex);
                failures.emplace_back(error.what());
            }
        });
    };
    std::vector<std::pair<int, long long>> low, high, second, fresh;
    for (long long version = 7; version <= 10; ++version) {
        for (int i = 1; i <= 5; ++i) {
            low.emplace_back(i, version);
            high.emplace_back(i + 5, version);
        }
    }
    for (int i = 11; i <= 30; ++i) {
        second.emplace_back(i, 2);
    }
    for (int i = 31; i <= 50; ++i) {
        fresh.emplace_back(i, 1);
    }
    std::vector<std::thread> threads;
    threads.push_back(appender(low));
    threads.push_back(appender(high));
    threads.push_back(appender(second));
    threads.push_back(appender(fresh));
    for (auto& thread : threads) {
        thread.join();
    }
    for (const auto& failure : failures) {
        FAIL_CHECK("an append right after the move failed: ", failure);
    }
    return static_cast<long long>(low.size() + high.size() + second.size() + fresh.size());
}

// Every event appended after the move is ordered after every copied one, so a
// cursor that passed copied events never passes a new one unread.
void check_new_events_after_copied(const DatabaseAt& b, long long copied) {
    CHECK(b.number(fmt::format(R"sql(
SELECT count(*) FROM events o, events n
 WHERE o.global_position <= {0} AND n.global_position > {0}
   AND (o.store_epoch, o.transaction_id, o.global_position) > (n.store_epoch, n.transaction_id, n.global_position))sql",
                               copied)) == 0);
}

// On the target: projectiond runs while applications append, right after the
// move; at the end every event is applied exactly once.
void run_after_move(const DatabaseAt& b, const std::vector<std::string>& forbidden_log = {}) {
    REQUIRE(b.number("SELECT count(*) FROM events") == source_events);
    DaemonProcess daemon(b.conninfo(), projections_yaml);
    const long long appended = append_concurrently(b);
    REQUIRE_MESSAGE(caught_up(b), daemon.log());
    check_exactly_once(b, source_events + appended);
    check_new_events_after_copied(b, source_events);
    for (const auto& line : forbidden_log) {
        CHECK_MESSAGE(!contains(daemon.log(), line), daemon.log());
    }
    CHECK(daemon.stop(SIGTERM) == 0);
}

enum class Form {
    plain_sql_psql,                        // pg_dump; psql -f
    custom_pg_restore,                     // pg_dump -Fc; pg_restore
    custom_pg_restore_disable_triggers,    // pg_dump -Fc; pg_restore --disable-triggers
    data_only_plain_psql,                  // pg_dump --data-only; psql -f (triggers fire, search_path '')
    data_only_plain_psql_disable_triggers, // pg_dump --data-only --disable-triggers; psql -f
    data_only_custom_disable_triggers,     // pg_dump --data-only -Fc; pg_restore --data-only --disable-triggers
};

bool data_only(Form form) {
    return form == Form::data_only_plain_psql || form == Form::data_only_plain_psql_disable_triggers ||
           form == Form::data_only_custom_disable_triggers;
}

bool custom_format(Form form) {
    return form == Form::custom_pg_restore || form == Form::custom_pg_restore_disable_triggers ||
           form == Form::data_only_custom_disable_triggers;
}

// A schema for the data-only forms: migrated by projectiond, the read
// model's tables created by the application, nothing else.
void prepare_migrated_schema(const DatabaseAt& b) {
    const auto migrated = run_command({projectiond_binary(), "migrate", "--database-url", b.conninfo()});
    REQUIRE_MESSAGE(migrated.exit_code == 0, migrated.out, migrated.err);
    b.connect().exec(read_model_tables);
}

// Dumps `a` and restores it into `b` in the given form; `b` exists, empty for
// a full restore, prepared by prepare_migrated_schema for a data-only one.
// The data-only forms leave out the target's own bookkeeping
// (schema_migrations, projectiond_store), as the README says.
void move_store(Form form, const DatabaseAt& a, const DatabaseAt& b) {
    const TempFile dump("", custom_format(form) ? ".dump" : ".sql");
    std::vector<std::string> dump_args{"--dbname=" + a.conninfo(), "--file=" + dump.path()};
    if (custom_format(form)) {
        dump_args.emplace_back("--format=custom");
    }
    if (data_only(form)) {
        dump_args.insert(dump_args.end(), {"--data-only", "--exclude-table-data=schema_migrations",
                                           "--exclude-table-data=projectiond_store"});
    }
    if (form == Form::data_only_plain_psql_disable_triggers) {
        dump_args.emplace_back("--disable-triggers");
    }
    const auto dumped = run_postgres_program("pg_dump", dump_args);
    REQUIRE_MESSAGE(dumped.exit_code == 0, dumped.err);
    if (!custom_format(form)) {
        // What the triggers of a data-only restore run under.
        std::ifstream file(dump.path());
        const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        REQUIRE(contains(text, "SELECT pg_catalog.set_config('search_path', '', false);"));
    }

    CommandResult restored;
    if (custom_format(form)) {
        std::vector<std::string> args{"--dbname=" + b.conninfo(), "--exit-on-error", "--no-owner"};
        if (data_only(form)) {
            args.emplace_back("--data-only");
        }
        if (form == Form::custom_pg_restore_disable_triggers || form == Form::data_only_custom_disable_triggers) {
            args.emplace_back("--disable-triggers");
        }
        args.push_back(dump.path());
        restored = run_postgres_program("pg_restore", args);
    } else {
        restored = run_postgres_program("psql", {"--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
                                                 "--dbname=" + b.conninfo(), "--file=" + dump.path()});
    }
    REQUIRE_MESSAGE(restored.exit_code == 0, restored.out, restored.err);
}

// The issue's reproduction in one form: the source has burnt 20,000
// transaction ids, the target's counter is far lower.
void move_to_lower_xids(Form form) {
    const TestDatabase source(true);
    const DatabaseAt a = harness_database(source.name());
    burn_transaction_ids(a, 20000);
    fill_source(a);

    const ThrowawayCluster cluster;
    const DatabaseAt b = cluster.create_database("app");
    if (data_only(form)) {
        prepare_migrated_schema(b);
    }
    move_store(form, a, b);
    const long long copied_xid = b.number("SELECT min(transaction_id::text::bigint) FROM events");
    REQUIRE_MESSAGE(next_xid(b) + 10000 < copied_xid, "the target's xid counter must be far below the copied ids");
    run_after_move(b);
}

// Every partition's cursor, for messages.
std::string cursors(const DatabaseAt& db) {
    return db.scalar("SELECT string_agg(format('%s/%s at (%s, %s, %s)', projection_name, partition_index, "
                     "cursor_store_epoch, cursor_transaction_id, cursor_global_position), ', ' "
                     "ORDER BY projection_name, partition_index) FROM projection_checkpoints");
}

// After a logical-replication switch-over: sequences are not replicated, so
// each one is set past the largest value its column holds (the README's step).
const char* const sync_sequences = R"sql(
DO $$
DECLARE
    owned record;
BEGIN
    FOR owned IN
        SELECT c.oid::regclass AS table_name, a.attname AS column_name,
               pg_get_serial_sequence(c.oid::regclass::text, a.attname) AS sequence_name
          FROM pg_class c
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p')
           AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
           AND pg_get_serial_sequence(c.oid::regclass::text, a.attname) IS NOT NULL
    LOOP
        EXECUTE format('SELECT setval(%L, greatest((SELECT max(%I) FROM %s), (SELECT last_value FROM %s)))',
                       owned.sequence_name, owned.column_name, owned.table_name, owned.sequence_name);
    END LOOP;
END
$$)sql";

// Publication on a cluster of its own (wal_level = logical), subscription on
// another; projectiond on the subscriber is refused until the switch-over:
// subscription disabled, sequences set, `projectiond migrate`. Then the
// applications append there, concurrently, and every event is applied
// exactly once. `burn_publisher`: the publisher's xids are far beyond the
// subscriber's (else the subscriber's are far beyond the publisher's, and the
// copied rows look settled there: only the subscription check guards them).
void logical_switch_over(bool burn_publisher) {
    const ThrowawayCluster publisher({"wal_level = logical"});
    const DatabaseAt a = publisher.create_database("app");
    const auto migrated = run_command({projectiond_binary(), "migrate", "--database-url", a.conninfo()});
    REQUIRE_MESSAGE(migrated.exit_code == 0, migrated.err);
    if (burn_publisher) {
        burn_transaction_ids(a, 20000);
    }
    fill_source(a);

    const ThrowawayCluster subscriber;
    const DatabaseAt b = subscriber.create_database("app");
    if (!burn_publisher) {
        burn_transaction_ids(b, 20000);
    }
    {
        const TempFile schema("", ".sql");
        const auto dumped =
            run_postgres_program("pg_dump", {"--schema-only", "--dbname=" + a.conninfo(), "--file=" + schema.path()});
        REQUIRE_MESSAGE(dumped.exit_code == 0, dumped.err);
        const auto restored = run_postgres_program("psql", {"--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
                                                            "--dbname=" + b.conninfo(), "--file=" + schema.path()});
        REQUIRE_MESSAGE(restored.exit_code == 0, restored.err);
    }
    a.connect().exec("CREATE PUBLICATION store FOR ALL TABLES");
    b.connect().exec("CREATE SUBSCRIPTION store CONNECTION '" + a.conninfo() + "' PUBLICATION store");
    const auto replicated = [&] {
        return b.number("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'") == 0 &&
               b.number("SELECT count(*) FROM events") == a.number("SELECT count(*) FROM events") &&
               b.scalar("SELECT string_agg(cursor_global_position::text, ',' ORDER BY projection_name, "
                        "partition_index) FROM projection_checkpoints") ==
                   a.scalar("SELECT string_agg(cursor_global_position::text, ',' ORDER BY projection_name, "
                            "partition_index) FROM projection_checkpoints");
    };
    REQUIRE_MESSAGE(wait_until(replicated, 60s, 50ms), subscriber.server_log());

    DaemonProcess daemon(b.conninfo(), projections_yaml);
    REQUIRE_MESSAGE(daemon.wait_for_log("processing stopped:"), daemon.log());
    if (!burn_publisher) {
        CHECK_MESSAGE(contains(daemon.log(), "logical replication (subscription 'store')"), daemon.log());
    }

    // The publisher goes on: an older transaction commits after younger
    // ones, and its event reaches the subscriber after theirs.
    {
        store::Connection older = a.connect();
        store::Connection younger = a.connect();
        older.exec("BEGIN");
        older.exec("SELECT pg_current_xact_id()");
        for (int i = 51; i <= 60; ++i) {
            append_at(younger, account(i), 1);
        }
        REQUIRE(wait_until([&] { return b.number("SELECT count(*) FROM events") == source_events + 10; }, 30s));
        append_at(older, account(61), 1);
        older.exec("COMMIT");
    }
    REQUIRE(wait_until([&] { return b.number("SELECT count(*) FROM events") == source_events + 11; }, 30s));
    const long long copied = source_events + 11;
    // Nothing is processed on the subscriber meanwhile (a bounded look), and
    // its cursors are still the publisher's.
    CHECK_FALSE(wait_until([&] { return stats(b, 1) != 50 || stats(b, 2) != 50; }, 2s, 100ms));
    CHECK_MESSAGE(cursors(b) == cursors(a), daemon.log());

    if (burn_publisher) {
        // Run too early, with the subscription still enabled, migrate begins
        // an epoch for the rows copied so far, but the daemon still refuses,
        // now because of the subscription, and says so.
        const auto early = run_command(
            {projectiond_binary(), "migrate", "-c", daemon.config().path(), "--database-url", b.conninfo()});
        REQUIRE_MESSAGE(early.exit_code == 0, early.err);
        CHECK_MESSAGE(contains(early.out, "began a new store epoch"), early.out);
        CHECK_MESSAGE(daemon.wait_for_log("subscription 'store'", 10s), daemon.log());
        CHECK(stats(b, 1) == 50);
        CHECK(cursors(b) == cursors(a));
    }

    // The switch-over. A disabled subscription still holds the daemon back
    // until `migrate` (the sequences are set by then): processing right
    // after the DISABLE would hand out the read model's identity values that
    // replicated rows already hold.
    b.connect().exec("ALTER SUBSCRIPTION store DISABLE");
    CHECK_MESSAGE(daemon.wait_for_log("subscription 'store', now disabled", 10s), daemon.log());
    CHECK_FALSE(wait_until([&] { return stats(b, 1) != 50 || stats(b, 2) != 50; }, 1s, 100ms));
    CHECK(cursors(b) == cursors(a));
    // migrate before the sequences are set records nothing: a subscription
    // disabled for a while is not a switch-over.
    const auto too_soon =
        run_command({projectiond_binary(), "migrate", "-c", daemon.config().path(), "--database-url", b.conninfo()});
    REQUIRE_MESSAGE(too_soon.exit_code == 0, too_soon.err);
    CHECK_MESSAGE(contains(too_soon.out, "Not switched over from logical replication yet (subscription 'store', "
                                         "disabled): the events' sequence would hand out "),
                  too_soon.out);
    CHECK_FALSE(contains(too_soon.out, "Switched over"));
    CHECK_FALSE(wait_until([&] { return stats(b, 1) != 50 || stats(b, 2) != 50; }, 1s, 100ms));
    CHECK(cursors(b) == cursors(a));
    b.connect().exec(sync_sequences);
    const auto switched =
        run_command({projectiond_binary(), "migrate", "-c", daemon.config().path(), "--database-url", b.conninfo()});
    REQUIRE_MESSAGE(switched.exit_code == 0, switched.err);
    CHECK_MESSAGE(contains(switched.out, "Switched over from logical replication (subscription 'store'"),
                  switched.out);
    const long long appended = append_concurrently(b);
    REQUIRE_MESSAGE(caught_up(b), daemon.log());
    CHECK(contains(daemon.log(), "processing resumes"));
    check_exactly_once(b, copied + appended);
    check_new_events_after_copied(b, copied);
    CHECK(daemon.stop(SIGTERM) == 0);
}

// Runs `projectiond status` against `db` with the configuration of `daemon`.
CommandResult status_of(const DatabaseAt& db, const DaemonProcess& daemon) {
    return run_command({projectiond_binary(), "-c", daemon.config().path(), "--database-url", db.conninfo(), "status"});
}

// A prepared transaction, rolled back if the test leaves it behind (it would
// hold the cluster's horizon back for every later test).
class PreparedTransaction {
public:
    PreparedTransaction(const TestDatabase& db, std::string gid) : db_(db), gid_(std::move(gid)) {}
    PreparedTransaction(const PreparedTransaction&) = delete;
    PreparedTransaction& operator=(const PreparedTransaction&) = delete;
    ~PreparedTransaction() {
        try {
            if (db_.number("SELECT count(*) FROM pg_prepared_xacts WHERE gid = '" + gid_ + "'") > 0) {
                db_.connect().exec("ROLLBACK PREPARED '" + gid_ + "'");
            }
        } catch (...) {
        }
    }
    // Appends `aggregate` version 1 in a transaction and prepares it.
    void prepare(const std::string& aggregate) const {
        store::Connection conn = db_.connect();
        conn.exec("BEGIN");
        conn.exec("SELECT count(*) FROM append_events('Bank', 'Account', $1, 0, "
                  "'[{\"event_type\": \"Opened\", \"payload\": {}}]')",
                  {aggregate});
        conn.exec("PREPARE TRANSACTION '" + gid_ + "'");
    }
    void commit() const { db_.connect().exec("COMMIT PREPARED '" + gid_ + "'"); }
    void rollback() const { db_.connect().exec("ROLLBACK PREPARED '" + gid_ + "'"); }

private:
    const TestDatabase& db_;
    std::string gid_;
};

std::string sqlstate_of(store::Connection& conn, const std::string& sql) {
    try {
        conn.exec(sql);
    } catch (const store::DatabaseError& error) {
        return error.sqlstate();
    }
    return "(no error)";
}

} // namespace

TEST_SUITE("store_move") {
    TEST_CASE("pg_dump restored with psql into a cluster with lower xids: appends succeed, every event "
              "applied exactly once") {
        move_to_lower_xids(Form::plain_sql_psql);
    }

    TEST_CASE("pg_dump -Fc restored with pg_restore into a cluster with lower xids: every event applied exactly "
              "once") {
        move_to_lower_xids(Form::custom_pg_restore);
    }

    TEST_CASE("pg_restore --disable-triggers into a cluster with lower xids: every event applied exactly once") {
        move_to_lower_xids(Form::custom_pg_restore_disable_triggers);
    }

    TEST_CASE("a data-only dump restored with psql into a migrated schema, triggers firing under pg_dump's empty "
              "search_path: every event applied exactly once") {
        move_to_lower_xids(Form::data_only_plain_psql);
    }

    TEST_CASE("a data-only dump with --disable-triggers restored with psql into a migrated schema: every event "
              "applied exactly once") {
        move_to_lower_xids(Form::data_only_plain_psql_disable_triggers);
    }

    TEST_CASE("pg_restore --data-only --disable-triggers into a migrated schema: every event applied exactly once") {
        move_to_lower_xids(Form::data_only_custom_disable_triggers);
    }

    TEST_CASE("rows copied from beyond this cluster's epoch and xids: run refuses and says why, status shows the "
              "lag, migrate begins an epoch, then everything is applied exactly once") {
        // The target's schema is migrated first, so the source's store epoch
        // (begun later) is beyond the target's, and so are its xids.
        const ThrowawayCluster cluster;
        const DatabaseAt b = cluster.create_database("app");
        prepare_migrated_schema(b);
        const TestDatabase source(true);
        const DatabaseAt a = harness_database(source.name());
        burn_transaction_ids(a, 20000);
        fill_source(a);
        move_store(Form::data_only_custom_disable_triggers, a, b);
        REQUIRE(b.number("SELECT count(*) FROM events e, projectiond_store s WHERE e.store_epoch > s.current_epoch") ==
                source_events);

        DaemonProcess daemon(b.conninfo(), projections_yaml);
        REQUIRE_MESSAGE(daemon.wait_for_log("processing stopped:"), daemon.log());
        CHECK(contains(daemon.log(), "projectiond migrate"));
        const std::string cursors = "SELECT string_agg(format('%s/%s/%s', cursor_store_epoch, cursor_transaction_id, "
                                    "cursor_global_position), ' ' ORDER BY projection_name, partition_index) "
                                    "FROM projection_checkpoints";
        const std::string before = b.scalar(cursors);
        // Nothing is processed while it refuses (a bounded look: 3 s, thirty watches).
        CHECK_FALSE(wait_until([&] { return stats(b, 1) != 50 || stats(b, 2) != 50 || b.scalar(cursors) != before; },
                               3s, 100ms));
        const auto status = status_of(b, daemon);
        CHECK_MESSAGE(contains(status.out, "Behind by 30 events"), status.out, status.err);
        CHECK_FALSE(contains(status.out, "Caught up"));

        const auto migrated = run_command(
            {projectiond_binary(), "migrate", "-c", daemon.config().path(), "--database-url", b.conninfo()});
        REQUIRE_MESSAGE(migrated.exit_code == 0, migrated.err);
        CHECK_MESSAGE(contains(migrated.out, "began a new store epoch"), migrated.out);
        REQUIRE_MESSAGE(caught_up(b), daemon.log());
        CHECK(contains(daemon.log(), "processing resumes"));
        check_exactly_once(b, source_events);

        const long long appended = append_concurrently(b);
        REQUIRE_MESSAGE(caught_up(b), daemon.log());
        check_exactly_once(b, source_events + appended);
        check_new_events_after_copied(b, source_events);
        const auto after = status_of(b, daemon);
        CHECK_MESSAGE(contains(after.out, "Caught up"), after.out);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("a restore into a cluster with higher xids needs no command: nothing waits, every event applied "
              "exactly once") {
        const ThrowawayCluster cluster;
        const DatabaseAt a = cluster.create_database("app");
        const auto migrated = run_command({projectiond_binary(), "migrate", "--database-url", a.conninfo()});
        REQUIRE_MESSAGE(migrated.exit_code == 0, migrated.err);
        fill_source(a);

        const TestDatabase target(false);
        const DatabaseAt b = harness_database(target.name());
        burn_transaction_ids(b, 20000);
        move_store(Form::custom_pg_restore, a, b);
        REQUIRE(next_xid(b) > b.number("SELECT max(transaction_id::text::bigint) FROM events") + 10000);
        run_after_move(b, {"processing stopped"});
    }

    TEST_CASE("a logical-replication switch-over to a cluster with higher xids: refused while subscribed, "
              "exact after DISABLE and migrate") {
        logical_switch_over(false);
    }

    TEST_CASE("a logical-replication switch-over to a cluster with lower xids: refused while subscribed, "
              "exact after DISABLE and migrate") {
        logical_switch_over(true);
    }

    TEST_CASE("two-phase commit: an append can be prepared; the daemon waits for it, applies it after COMMIT "
              "PREPARED within a second or two, and nothing of a ROLLBACK PREPARED") {
        const TestDatabase db(true);
        const DatabaseAt at = harness_database(db.name());
        DaemonProcess daemon(db, projections_yaml);
        REQUIRE(daemon.wait_ready());
        store::Connection conn = db.connect();
        append_at(conn, account(1), 1);
        REQUIRE(caught_up(at));

        const PreparedTransaction committed(db, "store_move_commit");
        committed.prepare(account(2));
        append_at(conn, account(3), 1); // commits after the prepared transaction began
        // The prepared append holds the horizon: account-3, committed, waits behind it.
        CHECK_FALSE(wait_until([&] { return stats(at, 1) != 1; }, 1500ms, 50ms));
        const auto committed_at = std::chrono::steady_clock::now();
        committed.commit();
        REQUIRE_MESSAGE(wait_until([&] { return stats(at, 1) == 3; }, 10s, 10ms), daemon.log());
        const auto picked_up = std::chrono::steady_clock::now() - committed_at;
        MESSAGE("picked up ", std::chrono::duration_cast<std::chrono::milliseconds>(picked_up).count(),
                " ms after COMMIT PREPARED");
        CHECK(picked_up < 2s);

        const PreparedTransaction rolled_back(db, "store_move_rollback");
        rolled_back.prepare(account(4));
        append_at(conn, account(5), 1);
        CHECK_FALSE(wait_until([&] { return stats(at, 1) != 3; }, 1500ms, 50ms));
        rolled_back.rollback();
        REQUIRE_MESSAGE(wait_until([&] { return stats(at, 1) == 4; }, 10s, 10ms), daemon.log());
        REQUIRE(caught_up(at));
        check_exactly_once(at, 4);
        CHECK(db.number("SELECT count(*) FROM events WHERE aggregate_id = 'account-4'") == 0);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("an event's identity and place in the order cannot be updated (PJ004); its payload can be redacted") {
        const TestDatabase db(true);
        store::Connection conn = db.connect();
        append_at(conn, account(1), 1);
        append_at(conn, account(1), 2);
        const std::string row = "SELECT format('%s %s %s %s %s %s %s %s %s %s', global_position, store_epoch, "
                                "transaction_id, bounded_context, aggregate_type, aggregate_id, aggregate_version, "
                                "event_type, event_id, created_at) FROM events WHERE aggregate_version = 1";
        const std::string before = db.scalar(row);
        for (const char* change :
             {"transaction_id = '12345'", "transaction_id = pg_current_xact_id()", "global_position = DEFAULT",
              "store_epoch = store_epoch + 1", "store_epoch = 0", "bounded_context = 'Other'",
              "aggregate_type = 'Other'", "aggregate_id = 'account-9'", "aggregate_version = 3",
              "event_type = 'Withdrawn'", "event_id = gen_random_uuid()", "created_at = now() - interval '1 day'"}) {
            CAPTURE(change);
            CHECK(sqlstate_of(conn, fmt::format("UPDATE events SET {} WHERE aggregate_version = 1", change)) ==
                  "PJ004");
        }
        // An identity column cannot even be given a value.
        CHECK(sqlstate_of(conn, "UPDATE events SET global_position = 1000 WHERE aggregate_version = 1") !=
              "(no error)");
        CHECK(db.scalar(row) == before);

        conn.exec("UPDATE events SET payload = '{\"redacted\": true}', metadata = '{\"erased\": \"GDPR\"}', "
                  "event_version = 2, trace_id = 't', correlation_id = 'c', causation_id = 'k' "
                  "WHERE aggregate_version = 1");
        CHECK(db.scalar("SELECT payload->>'redacted' FROM events WHERE aggregate_version = 1") == "true");
        CHECK(db.scalar(row) == before);
    }

    TEST_CASE("every schema function works with an empty search_path: append_events, plain INSERTs, the "
              "update guard, the epoch functions") {
        const TestDatabase db(true);
        store::Connection conn = db.connect();
        conn.exec("SET search_path = ''");
        CHECK(conn.exec("SELECT count(*) FROM public.append_events('Bank', 'Account', 'a', 0, "
                        "'[{\"event_type\": \"Opened\", \"payload\": {}}, {\"event_type\": \"Deposited\", "
                        "\"payload\": {}}]')")
                  .int64(0, 0) == 2);
        CHECK(conn.exec("SELECT count(*) FROM public.append_events('Bank', 'Account', 'a', 2, "
                        "'[{\"event_type\": \"Deposited\", \"payload\": {}}]')")
                  .int64(0, 0) == 1);
        conn.exec("INSERT INTO public.events (bounded_context, aggregate_type, aggregate_id, aggregate_version, "
                  "event_type, payload) VALUES ('Bank', 'Account', 'a', 4, 'Deposited', '{}'), "
                  "('Bank', 'Account', 'b', 1, 'Opened', '{}')");
        CHECK(sqlstate_of(conn, "INSERT INTO public.events (bounded_context, aggregate_type, aggregate_id, "
                                "aggregate_version, event_type, payload) VALUES ('Bank', 'Account', 'a', 4, "
                                "'Deposited', '{}')") == "PJ001");
        conn.exec("UPDATE public.events SET payload = '{\"redacted\": true}' WHERE aggregate_id = 'b'");
        CHECK(sqlstate_of(conn, "UPDATE public.events SET event_type = 'Closed' WHERE aggregate_id = 'b'") == "PJ004");
        CHECK(conn.exec("SELECT public.projectiond_partition_of('a', 4) BETWEEN 0 AND 3").boolean(0, 0));
        CHECK_FALSE(conn.exec("SELECT public.projectiond_foreign_rows(current_epoch) FROM public.projectiond_store")
                        .boolean(0, 0));
        CHECK(conn.exec("SELECT public.projectiond_begin_epoch(current_epoch, 'test') > current_epoch "
                        "FROM public.projectiond_store")
                  .boolean(0, 0));
        // A batch handler's events: named with their schema rather than a pinned
        // search_path, so that PostgreSQL can inline the function.
        CHECK(conn.exec("SELECT count(*) FROM public.projectiond_run_events(ARRAY[1, 2, 5]::bigint[])").int64(0, 0) ==
              3);
        CHECK(conn.exec("SELECT count(*) FROM public.projectiond_run_range(2, 4)").int64(0, 0) == 3);
        conn.exec("RESET search_path");
        CHECK(db.number("SELECT count(*) FROM events") == 5);
        CHECK(db.number("SELECT aggregate_version FROM aggregate_heads WHERE aggregate_id = 'a'") == 4);
        // And whatever function a later migration adds: each one pins its search_path
        // (but projectiond_run_events and projectiond_run_range, above).
        CHECK(db.scalar(R"sql(
SELECT string_agg(p.proname, ', ') FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname NOT IN ('projectiond_run_events', 'projectiond_run_range')
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%'))sql") == "");
    }

    TEST_CASE("a plain INSERT continues an aggregate whose head is missing (a restore without aggregate_heads)") {
        const TestDatabase db(true);
        store::Connection conn = db.connect();
        append_at(conn, account(1), 1);
        append_at(conn, account(1), 2);
        conn.exec("DELETE FROM aggregate_heads");
        conn.exec("INSERT INTO events (bounded_context, aggregate_type, aggregate_id, aggregate_version, event_type, "
                  "payload) VALUES ('Bank', 'Account', 'account-1', 3, 'Deposited', '{}')");
        CHECK(db.number("SELECT aggregate_version FROM aggregate_heads WHERE aggregate_id = 'account-1'") == 3);
        CHECK(sqlstate_of(conn, "INSERT INTO events (bounded_context, aggregate_type, aggregate_id, "
                                "aggregate_version, event_type, payload) VALUES ('Bank', 'Account', 'account-1', 3, "
                                "'Deposited', '{}')") == "PJ001");
    }

    TEST_CASE("append_events continues an aggregate whose head is missing (a restore without aggregate_heads)") {
        const TestDatabase db(true);
        store::Connection conn = db.connect();
        append_at(conn, account(1), 1);
        append_at(conn, account(1), 2);
        conn.exec("DELETE FROM aggregate_heads");
        CHECK_NOTHROW(append_at(conn, account(1), 3));
        CHECK(db.number("SELECT aggregate_version FROM aggregate_heads WHERE aggregate_id = 'account-1'") == 3);
        CHECK(db.number("SELECT count(*) FROM events") == 3);
    }
}
