// The event store schema, its SQL functions and the store layer, against a real PostgreSQL.
#include "store/checkpoints.hpp"
#include "store/generations.hpp"
#include "store/daemon_registry.hpp"
#include "store/database_error.hpp"
#include "store/demo_events.hpp"
#include "store/migrations.hpp"
#include "store/progress.hpp"
#include "test_database.hpp"

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <thread>

using namespace projectiond;
using namespace std::chrono_literals;
using testing::TestDatabase;

namespace {
std::string sqlstate_of(store::Connection& conn, const std::string& sql) {
    try {
        conn.exec(sql);
    } catch (const store::DatabaseError& error) {
        return error.sqlstate();
    }
    return "(no error)";
}

const char* const monitoring_lag = R"sql(
SELECT
    projection_name,
    last_global_position,
    (SELECT MAX(global_position) FROM events) - last_global_position as lag,
    updated_at
FROM projection_checkpoints
ORDER BY lag DESC;)sql";

const char* const monitoring_health = R"sql(
SELECT
    projection_name,
    last_global_position,
    updated_at,
    CASE
        WHEN updated_at < NOW() - INTERVAL '5 minutes' THEN 'STALE'
        WHEN last_global_position >= (SELECT MAX(global_position) FROM events) THEN 'CAUGHT_UP'
        ELSE 'PROCESSING'
    END as status
FROM projection_checkpoints;)sql";
} // namespace

TEST_SUITE("store") {
    TEST_CASE("migrate creates the schema and records it; a second run applies nothing") {
        TestDatabase db(false);
        store::Connection conn = db.connect();
        CHECK(store::schema_state(conn).applied_version == 0);
        int applied = 0;
        CHECK(store::migrate(conn, [&](const store::Migration&) { ++applied; }) ==
              static_cast<int>(store::embedded_migrations().size()));
        CHECK(applied == static_cast<int>(store::embedded_migrations().size()));
        CHECK(store::schema_state(conn).current());
        CHECK(store::migrate(conn, [](const store::Migration&) {}) == 0);
        CHECK(db.number("SELECT count(*) FROM schema_migrations") ==
              static_cast<long long>(store::embedded_migrations().size()));
        for (const char* table : {"events", "aggregate_heads", "projection_checkpoints", "projection_dead_letters"}) {
            CHECK(db.scalar(std::string("SELECT to_regclass('") + table + "')::text") == table);
        }
    }

    TEST_CASE("migrations applied by hand re-run cleanly: every statement is idempotent") {
        TestDatabase db(true);
        store::Connection conn = db.connect();
        for (const auto& migration : store::embedded_migrations()) {
            CHECK_NOTHROW(conn.exec(migration.sql));
        }
    }

    TEST_CASE("two hosts migrating at once take turns and apply each migration once") {
        TestDatabase db(false);
        int applied[4] = {};
        std::vector<std::thread> threads;
        for (int& count : applied) {
            threads.emplace_back([&db, &count] {
                store::Connection conn = db.connect();
                count = store::migrate(conn, [](const store::Migration&) {});
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        CHECK(applied[0] + applied[1] + applied[2] + applied[3] ==
              static_cast<int>(store::embedded_migrations().size()));
        CHECK(db.number("SELECT count(*) FROM schema_migrations") ==
              static_cast<long long>(store::embedded_migrations().size()));
    }

    TEST_CASE("the reference's monitoring queries run unchanged and tell the truth") {
        TestDatabase db;
        store::Connection conn = db.connect();
        store::append_demo_events(conn, 20, "User", "Identity");
        store::register_projection(conn, "behind", 1);
        store::register_projection(conn, "done", 1);
        conn.exec("UPDATE projection_checkpoints SET last_global_position = 5 WHERE projection_name = 'behind'");
        conn.exec("UPDATE projection_checkpoints SET last_global_position = 20 WHERE projection_name = 'done'");
        const store::Result lag = conn.exec(monitoring_lag);
        REQUIRE(lag.rows() == 2);
        CHECK(lag.text(0, 0) == "behind");
        CHECK(lag.int64(0, 2) == 15);
        CHECK(lag.int64(1, 2) == 0);
        const store::Result health = conn.exec(monitoring_health + std::string(" "));
        std::map<std::string, std::string> status;
        for (int row = 0; row < health.rows(); ++row) {
            status[std::string(health.text(row, 0))] = std::string(health.text(row, 3));
        }
        CHECK(status["behind"] == "PROCESSING");
        CHECK(status["done"] == "CAUGHT_UP");
    }

    TEST_CASE("demo events are 'User 1'..'User N', each a new aggregate with a name and an email") {
        TestDatabase db;
        store::Connection conn = db.connect();
        const auto range = store::append_demo_events(conn, 3, "User", "Identity");
        CHECK(range.count == 3);
        CHECK(range.last_position - range.first_position == 2);
        const store::Result rows =
            conn.exec("SELECT payload->>'name', payload->>'email', aggregate_version, event_type, bounded_context, "
                      "aggregate_type FROM events ORDER BY global_position");
        REQUIRE(rows.rows() == 3);
        CHECK(rows.text(0, 0) == "User 1");
        CHECK(rows.text(2, 0) == "User 3");
        CHECK(rows.text(1, 1) == "user2@example.com");
        CHECK(rows.text(0, 2) == "1");
        CHECK(rows.text(0, 3) == "UserCreated");
        CHECK(rows.text(0, 4) == "Identity");
        CHECK(db.number("SELECT count(DISTINCT aggregate_id) FROM events") == 3);
    }

    TEST_CASE("append_events checks the expected version and answers a conflict with SQLSTATE PJ001") {
        TestDatabase db;
        store::Connection conn = db.connect();
        const store::Result first = conn.exec("SELECT * FROM append_events('Shop', 'Order', 'o1', 0, "
                                              "'[{\"event_type\": \"OrderPlaced\", \"payload\": {\"total\": 3}},"
                                              "  {\"event_type\": \"OrderPaid\", \"payload\": {}}]')");
        REQUIRE(first.rows() == 2);
        CHECK(first.text(1, 1) == "2");
        CHECK(sqlstate_of(conn, "SELECT * FROM append_events('Shop', 'Order', 'o1', 0, "
                                "'[{\"event_type\": \"X\", \"payload\": {}}]')") == "PJ001");
        CHECK(sqlstate_of(conn, "SELECT * FROM append_events('Shop', 'Order', 'o1', 1, "
                                "'[{\"event_type\": \"X\", \"payload\": {}}]')") == "PJ001");
        CHECK_NOTHROW(conn.exec("SELECT * FROM append_events('Shop', 'Order', 'o1', 2, "
                                "'[{\"event_type\": \"OrderShipped\", \"payload\": {}}]')"));
        CHECK_NOTHROW(conn.exec("SELECT * FROM append_events('Shop', 'Order', 'o1', NULL, "
                                "'[{\"event_type\": \"OrderNoted\", \"payload\": {}}]')"));
        CHECK(db.number("SELECT aggregate_version FROM aggregate_heads WHERE aggregate_id = 'o1'") == 4);
    }

    TEST_CASE("a plain INSERT must continue the aggregate's versions") {
        TestDatabase db;
        store::Connection conn = db.connect();
        const std::string insert = "INSERT INTO events (bounded_context, aggregate_type, aggregate_id, "
                                   "aggregate_version, event_type, payload) VALUES ('C', 'T', 'a', ";
        CHECK_NOTHROW(conn.exec(insert + "1, 'E', '{}')"));
        CHECK(sqlstate_of(conn, insert + "1, 'E', '{}')") == "PJ001");
        CHECK(sqlstate_of(conn, insert + "3, 'E', '{}')") == "PJ001");
        CHECK_NOTHROW(conn.exec(insert + "2, 'E', '{}')"));
    }

    TEST_CASE("an INSERT of several events to one aggregate writes its head twice, not once per event, and "
              "keeps every version check") {
        TestDatabase db;
        store::Connection conn = db.connect();
        const auto rows = [](std::initializer_list<std::pair<const char*, int>> events) {
            std::string sql = "INSERT INTO events (bounded_context, aggregate_type, aggregate_id, aggregate_version, "
                              "event_type, payload) VALUES ";
            for (const auto& [aggregate, version] : events) {
                sql += fmt::format("{}('C', 'T', '{}', {}, 'E', '{{}}')", sql.back() == ')' ? ", " : "", aggregate,
                                   version);
            }
            return sql;
        };
        const auto head = [&](const char* aggregate) {
            return conn.exec("SELECT aggregate_version FROM aggregate_heads WHERE aggregate_id = $1", {aggregate})
                .int64(0, 0);
        };
        const auto head_updates = [&] {
            return conn.exec("SELECT pg_stat_get_xact_tuples_updated('aggregate_heads'::regclass)").int64(0, 0);
        };
        conn.exec(rows({{"a", 1}}));

        conn.exec("BEGIN");
        conn.exec(rows({{"a", 2}, {"a", 3}, {"a", 4}, {"a", 5}, {"a", 6}, {"a", 7}, {"a", 8}, {"a", 9}, {"a", 10}}));
        CHECK(head_updates() == 2); // the first event's check, and the version reached when the statement ended
        CHECK(head("a") == 10);
        conn.exec("COMMIT");
        CHECK(head("a") == 10);

        // Two aggregates interleaved in one statement: each head ends at its own last version.
        conn.exec(rows({{"b", 1}, {"c", 1}, {"b", 2}, {"b", 3}, {"c", 2}, {"b", 4}}));
        CHECK(head("b") == 4);
        CHECK(head("c") == 2);

        // A gap, a repeat, or an older version inside a statement is still a conflict, and nothing of it stays.
        CHECK(sqlstate_of(conn, rows({{"a", 11}, {"a", 13}})) == "PJ001");
        CHECK(sqlstate_of(conn, rows({{"a", 11}, {"a", 11}})) == "PJ001");
        CHECK(sqlstate_of(conn, rows({{"a", 11}, {"a", 12}, {"a", 10}})) == "PJ001");
        CHECK(head("a") == 10);

        // The next statement of the same transaction continues from the version the last one reached.
        conn.exec("BEGIN");
        conn.exec(rows({{"a", 11}, {"a", 12}}));
        CHECK(sqlstate_of(conn, "SELECT * FROM append_events('C', 'T', 'a', 11, "
                                "'[{\"event_type\": \"E\", \"payload\": {}}]')") == "PJ001");
        conn.exec("ROLLBACK");
        conn.exec("BEGIN");
        conn.exec(rows({{"a", 11}, {"a", 12}}));
        CHECK_NOTHROW(conn.exec("SELECT * FROM append_events('C', 'T', 'a', 12, "
                                "'[{\"event_type\": \"E\", \"payload\": {}}, {\"event_type\": \"E\", \"payload\": {}}]')"));
        // A savepoint rolled back takes its versions back with it.
        conn.exec("SAVEPOINT s");
        conn.exec(rows({{"a", 15}, {"a", 16}}));
        conn.exec("ROLLBACK TO SAVEPOINT s");
        CHECK(head("a") == 14);
        conn.exec(rows({{"a", 15}}));
        conn.exec("COMMIT");
        CHECK(head("a") == 15);
        CHECK(db.number("SELECT count(*) FROM events WHERE aggregate_id = 'a'") == 15);
        CHECK(db.number("SELECT count(DISTINCT aggregate_version) FROM events WHERE aggregate_id = 'a'") == 15);
    }

    TEST_CASE("the appending transaction's id is recorded and cannot be forged") {
        TestDatabase db;
        store::Connection conn = db.connect();
        conn.exec("BEGIN");
        const std::string xid(conn.exec("SELECT pg_current_xact_id()::text").text(0, 0));
        conn.exec("INSERT INTO events (bounded_context, aggregate_type, aggregate_id, aggregate_version, event_type, "
                  "payload, transaction_id) VALUES ('C', 'T', 'a', 1, 'E', '{}', '3')");
        conn.exec("COMMIT");
        CHECK(db.scalar("SELECT transaction_id::text FROM events") == xid);
    }

    TEST_CASE("an older transaction appending after a younger one committed the previous version gets 40001") {
        TestDatabase db;
        store::Connection older = db.connect();
        store::Connection younger = db.connect();
        older.exec("BEGIN");
        older.exec("SELECT pg_current_xact_id()"); // takes its transaction id now
        younger.exec("SELECT * FROM append_events('C', 'T', 'x', 0, '[{\"event_type\": \"E\", \"payload\": {}}]')");
        CHECK(sqlstate_of(older, "SELECT * FROM append_events('C', 'T', 'x', 1, "
                                 "'[{\"event_type\": \"E\", \"payload\": {}}]')") == "40001");
        older.exec("ROLLBACK");
        CHECK_NOTHROW(
            older.exec("SELECT * FROM append_events('C', 'T', 'x', 1, '[{\"event_type\": \"E\", \"payload\": {}}]')"));
        CHECK(db.number("SELECT count(*) FROM events e1 JOIN events e2 ON e1.aggregate_version < "
                        "e2.aggregate_version WHERE e1.transaction_id > e2.transaction_id") == 0);
    }

    TEST_CASE("the partition of an aggregate is pinned: the same on every version, stored with each event") {
        TestDatabase db;
        // Known outputs: a change of hash would move aggregates between
        // partitions mid-stream, so it must fail here first.
        CHECK(db.number("SELECT projectiond_partition_of('3f8a2b1c-0000-4000-8000-000000000000', 8)") == 2);
        CHECK(db.number("SELECT projectiond_partition_of('user-42', 4)") == 3);
        CHECK(db.number("SELECT projectiond_partition_of('a', 2)") == 1);
        CHECK(db.number("SELECT projectiond_partition_of('order-7', 16)") == 10);
        store::Connection conn = db.connect();
        conn.exec("SELECT * FROM append_events('C', 'T', 'order-7', 0, '[{\"event_type\": \"E\", \"payload\": {}}]')");
        CHECK(db.number("SELECT partition_hash FROM events") == 3447009626LL);
        CHECK(db.number("SELECT min(c) FROM (SELECT count(*) c FROM generate_series(1, 4000) i "
                        "GROUP BY projectiond_partition_of(i::text, 4)) s") > 800);
    }

    TEST_CASE("advancing a checkpoint is a compare-and-set fenced by ownership") {
        TestDatabase db;
        store::Connection conn = db.connect();
        store::append_demo_events(conn, 5, "User", "Identity");
        store::register_projection(conn, "p", 1);
        const store::DaemonIdentity me{"host", 1, "test", ""};
        const auto daemon = store::register_daemon(conn, me, {"p"}, 20s);
        const auto owned = store::rebalance(conn, daemon, me, {"p"}, 20s);
        REQUIRE(owned.owned.size() == 1);
        const auto epoch = std::to_string(owned.owned[0].owner.epoch);
        const std::string end(conn.exec("SELECT format('%s, %L, %s', store_epoch, transaction_id, global_position) "
                                        "FROM events ORDER BY global_position DESC LIMIT 1")
                                  .text(0, 0));
        const auto advance = [&](const std::string& owner, const std::string& owner_epoch) {
            return fmt::format("SELECT projectiond_advance_checkpoint('p', 1, 0, {}, {}, 0, '0', 0, {}, 5, NULL)", owner,
                               owner_epoch, end);
        };
        CHECK(db.number(advance(std::to_string(daemon), epoch)) == 5);
        CHECK(sqlstate_of(conn, advance(std::to_string(daemon), epoch)) == "PJ002");
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 5);
        conn.exec("UPDATE projection_checkpoints SET cursor_store_epoch = 0, cursor_transaction_id = '0', "
                  "cursor_global_position = 0");
        CHECK(sqlstate_of(conn, advance(std::to_string(daemon), std::to_string(owned.owned[0].owner.epoch - 1))) ==
              "PJ005");
        CHECK(sqlstate_of(conn, advance(std::to_string(daemon + 1), epoch)) == "PJ005");
        conn.exec("UPDATE projectiond_daemons SET lease_until = now() - interval '1 second'");
        CHECK(sqlstate_of(conn, advance(std::to_string(daemon), epoch)) == "PJ005");
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 5);
    }

    TEST_CASE("the highest position a checkpoint passes is found for every range: within a transaction, across "
              "transactions committed out of order, across store epochs") {
        TestDatabase db;
        store::Connection first = db.connect();
        store::Connection second = db.connect();
        const auto append = [](store::Connection& conn, const std::string& id, int events) {
            conn.exec(fmt::format("INSERT INTO events (bounded_context, aggregate_type, aggregate_id, "
                                  "aggregate_version, event_type, payload) SELECT 'Bank', 'Account', '{}', v, "
                                  "'Deposited', '{{}}' FROM generate_series(1, {}) v",
                                  id, events));
        };
        // The older transaction's later events get higher positions than the
        // younger one's: reading order is not position order.
        first.exec("BEGIN");
        append(first, "a", 2);
        append(second, "b", 3);
        append(first, "c", 2);
        first.exec("COMMIT");
        append(second, "d", 1);
        first.exec("SELECT projectiond_begin_epoch(current_epoch, 'test') FROM projectiond_store");
        append(first, "e", 2);
        const store::Result order = first.exec(
            "SELECT format('%s, %L::xid8, %s', store_epoch, transaction_id, global_position) FROM events "
            "ORDER BY store_epoch, transaction_id, global_position");
        REQUIRE(order.rows() == 10);
        std::vector<std::string> cursors{"0, '0'::xid8, 0"};
        for (int row = 0; row < order.rows(); ++row) {
            cursors.emplace_back(order.text(row, 0));
        }
        int compared = 0;
        for (std::size_t from = 0; from < cursors.size(); ++from) {
            for (std::size_t to = from; to < cursors.size(); ++to) {
                const std::string plain = fmt::format(
                    "SELECT coalesce(max(global_position), -1) FROM events e "
                    "WHERE (e.store_epoch, e.transaction_id, e.global_position) > ({}) "
                    "AND (e.store_epoch, e.transaction_id, e.global_position) <= ({})",
                    cursors[from], cursors[to]);
                const std::string bounded =
                    fmt::format("SELECT coalesce(projectiond_passed_max({}, {}), -1)", cursors[from], cursors[to]);
                INFO("from (" << cursors[from] << ") to (" << cursors[to] << ")");
                CHECK(db.number(bounded) == db.number(plain));
                ++compared;
            }
        }
        CHECK(compared == 66);
    }

    TEST_CASE("progress counts the events the cursor has not passed") {
        TestDatabase db;
        store::Connection conn = db.connect();
        store::append_demo_events(conn, 10, "User", "Identity");
        store::register_projection(conn, "p", 1);
        conn.exec("UPDATE projection_checkpoints SET (cursor_store_epoch, cursor_transaction_id, "
                  "cursor_global_position, last_global_position) = (SELECT store_epoch, transaction_id, "
                  "global_position, global_position FROM events "
                  "WHERE global_position = (SELECT min(global_position) + 3 FROM events))");
        const auto progress = store::read_progress(conn);
        CHECK(progress.total_events == 10);
        REQUIRE(progress.partitions.size() == 1);
        CHECK(progress.partitions[0].remaining == 6);
        CHECK_FALSE(progress.partitions[0].remaining_estimated);
        CHECK_FALSE(progress.partitions[0].running);
    }

    TEST_CASE("reset rewinds every partition, and refuses while a live daemon owns one unless it is paused") {
        TestDatabase db;
        store::Connection conn = db.connect();
        store::append_demo_events(conn, 10, "User", "Identity");
        store::register_projection(conn, "p", 1);
        const std::string to_end = "UPDATE projection_checkpoints SET (cursor_store_epoch, cursor_transaction_id, "
                                   "cursor_global_position, last_global_position, events_processed) = "
                                   "(SELECT max(store_epoch), max(transaction_id), max(global_position), "
                                   "max(global_position), 10 FROM events)";
        conn.exec(to_end);
        const auto last = db.number("SELECT max(global_position) FROM events");

        const store::DaemonIdentity me{"host", 1, "test", ""};
        const auto daemon = store::register_daemon(conn, me, {"p"}, 20s);
        REQUIRE(store::rebalance(conn, daemon, me, {"p"}, 20s).owned.size() == 1);
        CHECK(store::read_progress(conn).partitions.at(0).running);
        try {
            store::reset_checkpoints(conn, "p", 1, 0);
            FAIL("reset should refuse while the partition is owned");
        } catch (const store::DatabaseError& error) {
            CHECK(error.sqlstate() == "PJ003");
        }
        CHECK(db.number("SELECT last_global_position FROM projection_checkpoints") == last);
        conn.exec("UPDATE projectiond_projections SET paused = true");
        CHECK_NOTHROW(store::reset_checkpoints(conn, "p", 1, 0));
        conn.exec("UPDATE projectiond_projections SET paused = false");
        store::deregister_daemon(conn, daemon);

        store::reset_checkpoints(conn, "p", 2, 0);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = 'p'") == 2);
        store::reset_checkpoints(conn, "p", 1, 0);
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = 'p'") == 1);
        CHECK(db.number("SELECT last_global_position FROM projection_checkpoints") == 0);
        conn.exec(to_end);
        store::reset_checkpoints(conn, "p", 1, last - 6);
        CHECK(db.number("SELECT last_global_position FROM projection_checkpoints") == last - 6);
        CHECK(store::read_progress(conn).partitions[0].remaining == 6);
        try {
            store::reset_checkpoints(conn, "p", 1, last + 1);
            FAIL("reset beyond the last event should be refused");
        } catch (const store::DatabaseError& error) {
            CHECK(error.sqlstate() == "PJ007");
        }
    }

    TEST_CASE("while a connection waits, what arrives for the one it drains is read: that server does not stop at "
              "a full socket until its result is taken") {
        TestDatabase db(false);
        store::Connection waiting = db.connect();
        store::Connection reading = db.connect();
        // About 4 MB, far more than a socket holds, each row stamped when the
        // server produced it.
        reading.prepare("big", "SELECT extract(epoch FROM clock_timestamp())::text, repeat('x', 1000) "
                               "FROM generate_series(1, 4000)");
        // When the last row was made, and when the other connection's
        // one-second wait ended (seconds since the epoch, server clock).
        const auto read_beside_a_wait = [&](bool drained) {
            reading.send_prepared("big", {});
            std::optional<store::Connection::Draining> draining;
            if (drained) {
                draining.emplace(waiting, &reading);
            }
            const double waited_until = std::stod(std::string(
                waiting.exec("SELECT pg_sleep(1), extract(epoch FROM clock_timestamp())::text").text(0, 1)));
            draining.reset();
            const store::Result rows = reading.take_result();
            REQUIRE(rows.rows() == 4000);
            return std::pair{std::stod(std::string(rows.text(3999, 0))), waited_until};
        };
        const auto [last_row, waited_until] = read_beside_a_wait(true);
        CHECK(last_row < waited_until);
        // Without the drain, the last rows are made only once taken.
        const auto [undrained_last_row, undrained_waited_until] = read_beside_a_wait(false);
        CHECK(undrained_last_row > undrained_waited_until);
    }

    TEST_CASE("a password in the connection string is redacted for messages") {
        CHECK(store::redact_conninfo("postgresql://app:s3cret@db.example/app").find("s3cret") == std::string::npos);
        CHECK(store::redact_conninfo("host=db password=s3cret dbname=app").find("s3cret") == std::string::npos);
        CHECK(store::redact_conninfo("host=db password=s3cret dbname=app").find("dbname=app") != std::string::npos);
    }
}
