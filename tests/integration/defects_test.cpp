// Regression tests for the defects of issue 9, each against a real daemon and
// PostgreSQL: every one of them failed on the engine before the fixes
// (commit 5936f41), by giving a wrong read model, hanging, or saying the
// wrong thing.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "notify_socket.hpp"
#include "projection_state.hpp"
#include "store/database_error.hpp"
#include "store/transaction.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------
// Appending with control over transaction ids and commit order.

// Appends one event to a new aggregate `id` in whatever transaction `conn` has
// open (or in one of its own).
void append_event(store::Connection& conn, const std::string& id) {
    conn.exec("SELECT append_events('C', 'Log', $1, 0, '[{\"event_type\": \"Logged\", \"payload\": {}}]')", {id});
}

long long position_of(const TestDatabase& db, const std::string& id) {
    return db.number("SELECT global_position FROM events WHERE aggregate_id = '" + id + "'");
}

// An open transaction that took its transaction id when it began, so that
// whatever commits while it stays open has a younger id.
class EarlyTransaction {
public:
    explicit EarlyTransaction(const TestDatabase& db) : conn_(db.connect()) {
        conn_.exec("BEGIN");
        conn_.exec("SELECT pg_current_xact_id()");
    }
    void append(const std::string& id) { append_event(conn_, id); }
    void commit() { conn_.exec("COMMIT"); }

private:
    store::Connection conn_;
};

// Five transactions take their ids in order, append in rounds in the reverse
// order (interleaved with committed appends), and commit shuffled: reading
// order (transaction id, position) and position order disagree all over.
// 5 x 3 + 4 events, on aggregates named after `prefix`.
void append_interleaved(const TestDatabase& db, const std::string& prefix = "") {
    std::vector<std::unique_ptr<EarlyTransaction>> open;
    for (int t = 0; t < 5; ++t) {
        open.push_back(std::make_unique<EarlyTransaction>(db));
    }
    store::Connection plain = db.connect();
    for (int round = 0; round < 3; ++round) {
        for (int t = 4; t >= 0; --t) {
            open[static_cast<std::size_t>(t)]->append(fmt::format("{}t{}-{}", prefix, t, round));
        }
        append_event(plain, fmt::format("{}plain-{}", prefix, round));
    }
    for (const int t : {2, 0, 4, 1, 3}) {
        open[static_cast<std::size_t>(t)]->commit();
    }
    append_event(plain, prefix + "plain-last");
}

// ---------------------------------------------------------------------------
// A non-idempotent projection: `log` counts how often each position was
// handled. `fresh` does the same into its own table; it is added for the last
// run only, so it is a single uninterrupted run to compare with.

std::string counting_projection(const std::string& name, int partitions, const std::string& gate) {
    return fmt::format(R"(  - name: {0}
    partitions: {1}
    setup: CREATE TABLE IF NOT EXISTS {0} (position bigint PRIMARY KEY, n int NOT NULL)
    handlers:
      "*":
        - INSERT INTO {0} VALUES (:global_position, 1) ON CONFLICT (position) DO UPDATE SET n = {0}.n + 1
{2})",
                       name, partitions, gate);
}

std::string log_config(int partitions, bool with_fresh, const std::string& gate = "") {
    return "defaults:\n  batch_size: 1\n  poll_interval: 200ms\nprojections:\n" +
           counting_projection("log", partitions, gate) + (with_fresh ? counting_projection("fresh", 1, "") : "");
}

// Each handled event once, as in a single run, and `log` equal to `fresh`.
void check_equals_fresh_run(const TestDatabase& db) {
    const long long events = db.number("SELECT count(*) FROM events");
    CHECK(db.number("SELECT count(*) FROM fresh WHERE n = 1") == events);
    CHECK(db.number("SELECT count(*) FROM log") == events);
    const std::string twice = db.scalar("SELECT coalesce(string_agg(position || ' x' || n, ', ' ORDER BY position), "
                                        "'none') FROM log WHERE n <> 1");
    INFO("positions of log handled other than once: " << twice);
    CHECK(db.number("SELECT count(*) FROM log FULL JOIN fresh USING (position) "
                    "WHERE log.n IS DISTINCT FROM fresh.n") == 0);
}

// What an operator does before `reset --to-position N` of a non-idempotent
// projection: remove what the events after N wrote.
void delete_after(const TestDatabase& db, long long position) {
    db.scalar(fmt::format("DELETE FROM log WHERE position > {}", position));
}

CommandResult cli(const TestDatabase& db, const TempFile& config, std::vector<std::string> args) {
    args.insert(args.begin(), {projectiond_binary(), "-c", config.path(), "--database-url", db.conninfo()});
    return run_command(args);
}

CommandResult reset_to(const TestDatabase& db, const TempFile& config, long long position) {
    return cli(db, config, {"reset", "log", "--to-position", std::to_string(position)});
}

// Runs `config` until `log` (and `fresh`, when there) have caught up, then stops.
void run_until_caught_up(const TestDatabase& db, const std::string& yaml, int partitions) {
    DaemonProcess daemon(db, yaml);
    INFO("log of daemon:\n" << daemon.log());
    REQUIRE(caught_up(db, "log", 60s, partitions));
    if (contains(yaml, "name: fresh")) {
        REQUIRE(caught_up(db, "fresh", 60s));
    }
    CHECK(daemon.stop(SIGTERM) == 0);
}

// Processes everything, then for each position: removes what the events
// after it wrote, resets to it, runs again; finally a fresh run compares.
void check_resets_are_exact(const TestDatabase& db, int partitions, const std::vector<long long>& positions) {
    run_until_caught_up(db, log_config(partitions, false), partitions);
    CHECK(db.number("SELECT count(*) FROM log WHERE n = 1") == db.number("SELECT count(*) FROM events"));
    if (partitions > 1) {
        // Both partitions had events, or the case would prove less than it says.
        CHECK(db.number("SELECT min(events_processed) FROM projection_checkpoints WHERE projection_name = 'log'") > 0);
    }
    TempFile config(log_config(partitions, false));
    for (std::size_t i = 0; i < positions.size(); ++i) {
        const long long position = positions[i];
        CAPTURE(position);
        delete_after(db, position);
        const auto reset = reset_to(db, config, position);
        INFO("reset: " << reset.out << reset.err);
        REQUIRE(reset.exit_code == 0);
        run_until_caught_up(db, log_config(partitions, i + 1 == positions.size()), partitions);
        CHECK(db.number("SELECT count(*) FROM log WHERE n <> 1") == 0);
    }
    check_equals_fresh_run(db);
}

// A gate the test holds: a handler statement that waits for it at one
// position, so the test knows where a run is when it stops it.
constexpr int gate_key = 4242;

std::string gate_at(long long position) {
    return fmt::format("        - SELECT pg_advisory_xact_lock_shared({}) WHERE :global_position = {}\n", gate_key,
                       position);
}

bool waiting_at_gate(const TestDatabase& db) {
    return wait_until(
        [&] {
            return db.number("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db.name() +
                             "' AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock_shared%'") > 0;
        },
        30s);
}

// ---------------------------------------------------------------------------

long long rss_kib(int pid) {
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) {
            return std::stoll(line.substr(6));
        }
    }
    return -1;
}

// A role that must log in with a password, over the cluster's unix socket.
const std::string password_role = "guarded_role";
const std::string right_password = "Right-Pa55word-for-guarded";
const std::string wrong_password = "Wr0ng-Pa55word-for-guarded";

void create_role_with_password(const TestDatabase& db, const std::string& role, const std::string& password) {
    if (db.number("SELECT count(*) FROM pg_roles WHERE rolname = '" + role + "'") == 0) {
        db.scalar(fmt::format("CREATE ROLE {} LOGIN SUPERUSER PASSWORD '{}'", role, password));
    }
    testing::require_password_for(role);
}

// Lines of `text` that start with `prefix`.
std::size_t lines_starting_with(const std::string& text, const std::string& prefix) {
    std::size_t count = 0;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        count += line.starts_with(prefix) ? 1 : 0;
    }
    return count;
}

std::size_t longest_digit_run(const std::string& text) {
    std::size_t longest = 0;
    std::size_t run = 0;
    for (const char c : text) {
        run = std::isdigit(static_cast<unsigned char>(c)) != 0 ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    return longest;
}

std::string backend_pid(store::Connection& conn) {
    return std::string(conn.exec("SELECT pg_backend_pid()").text(0, 0));
}

// Ends the session `pid` from another one and waits until it is gone.
void terminate_session(const TestDatabase& db, const std::string& pid) {
    REQUIRE(db.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
    REQUIRE(
        wait_until([&] { return db.number("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == 0; }, 10s));
}

} // namespace

TEST_SUITE("defects") {
    // --- 1. reset --to-position N re-processes exactly the events above N ---

    TEST_CASE("reset --to-position replays exactly the events above the position when an older transaction "
              "committed a later position") {
        TestDatabase db;
        // T1 takes its id first; `a` commits meanwhile (position 1, younger
        // id); T1 appends `b` (position 2). Reading order: b, then a.
        EarlyTransaction t1(db);
        {
            store::Connection other = db.connect();
            append_event(other, "a");
        }
        t1.append("b");
        t1.commit();
        const long long a = position_of(db, "a");
        const long long b = position_of(db, "b");
        REQUIRE(a < b);
        REQUIRE(db.scalar("SELECT (SELECT transaction_id FROM events WHERE aggregate_id = 'b') < "
                          "(SELECT transaction_id FROM events WHERE aggregate_id = 'a')") == "t");
        check_resets_are_exact(db, 1, {a});
        CHECK(db.number(fmt::format("SELECT n FROM log WHERE position = {}", a)) == 1);
        CHECK(db.number(fmt::format("SELECT n FROM log WHERE position = {}", b)) == 1);
    }

    TEST_CASE("reset --to-position is exact at every depth when many transactions interleave and commit out of "
              "order") {
        TestDatabase db;
        append_interleaved(db);
        const long long first = db.number("SELECT min(global_position) FROM events");
        const long long last = db.number("SELECT max(global_position) FROM events");
        check_resets_are_exact(db, 1, {first + (last - first) / 2, last - 2, first, first + 3});
    }

    TEST_CASE("reset --to-position is exact for every partition of a partitioned projection") {
        TestDatabase db;
        append_interleaved(db, "first-");
        append_interleaved(db, "second-");
        const long long first = db.number("SELECT min(global_position) FROM events");
        const long long last = db.number("SELECT max(global_position) FROM events");
        check_resets_are_exact(db, 2, {first + (last - first) / 2, first + 4, last - 1});
    }

    TEST_CASE("a reset while an earlier reset is replayed: at or below its position it is exact, above it is "
              "refused with exit 64") {
        TestDatabase db;
        append_interleaved(db);
        const long long first = db.number("SELECT min(global_position) FROM events");
        const long long last = db.number("SELECT max(global_position) FROM events");
        run_until_caught_up(db, log_config(1, false), 1);
        TempFile config(log_config(1, false));

        const long long reset_position = first + (last - first) / 2;
        delete_after(db, reset_position);
        REQUIRE(reset_to(db, config, reset_position).exit_code == 0);

        // Replay part of it: the run waits at the second event it replays
        // (in reading order), and stops there; more events follow it.
        const auto replayed = db.connect().exec(fmt::format(
            "SELECT global_position FROM events WHERE global_position > {} ORDER BY transaction_id, global_position",
            reset_position));
        REQUIRE(replayed.rows() >= 3);
        const long long gate = replayed.int64(1, 0);
        REQUIRE(db.number(fmt::format("SELECT count(*) FROM events WHERE (transaction_id, global_position) > "
                                      "(SELECT transaction_id, global_position FROM events WHERE global_position = {})",
                                      gate)) > 0);
        {
            store::Connection holder = db.connect();
            holder.exec(fmt::format("SELECT pg_advisory_lock({})", gate_key));
            DaemonProcess daemon(db, log_config(1, false, gate_at(gate)));
            INFO("log of daemon:\n" << daemon.log());
            REQUIRE(waiting_at_gate(db));
            daemon.process().signal(SIGTERM);
            REQUIRE(daemon.wait_for_log("SIGTERM received"));
            holder.exec(fmt::format("SELECT pg_advisory_unlock({})", gate_key));
            REQUIRE(daemon.process().wait_for_exit(30s) == 0);
        }
        const long long replayed_so_far =
            db.number(fmt::format("SELECT count(*) FROM log WHERE position > {}", reset_position));
        REQUIRE(replayed_so_far >= 1);
        REQUIRE(replayed_so_far < replayed.rows());
        const long long checkpoint_before = checkpoint(db, "log");

        // Above the replayed reset's position: refused, nothing changed.
        const auto refused = reset_to(db, config, reset_position + 2);
        CHECK(refused.exit_code == 64);
        CHECK(contains(refused.err, "still replaying an earlier reset"));
        CHECK(contains(refused.err, fmt::format("reset to position {} or below", reset_position)));
        CHECK(checkpoint(db, "log") == checkpoint_before);

        // At the same position, then below it: both allowed, and exact.
        delete_after(db, reset_position);
        const auto same = reset_to(db, config, reset_position);
        INFO("reset to the same position: " << same.out << same.err);
        CHECK(same.exit_code == 0);
        const long long lower = reset_position - 3;
        delete_after(db, lower);
        const auto below = reset_to(db, config, lower);
        INFO("reset below: " << below.out << below.err);
        CHECK(below.exit_code == 0);
        run_until_caught_up(db, log_config(1, true), 1);
        check_equals_fresh_run(db);
    }

    TEST_CASE("pause, reset --to-position and resume beside a running daemon: on a quiet store the events after "
              "the position are processed again at once, exactly") {
        TestDatabase db;
        append_interleaved(db);
        const long long first = db.number("SELECT min(global_position) FROM events");
        const long long last = db.number("SELECT max(global_position) FROM events");
        DaemonProcess daemon(db, log_config(1, false));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "log"));
        TempFile config(log_config(1, false));
        REQUIRE(cli(db, config, {"pause", "log"}).exit_code == 0);
        const long long reset_position = first + (last - first) / 2;
        delete_after(db, reset_position);
        const auto reset = reset_to(db, config, reset_position);
        INFO("reset: " << reset.out << reset.err);
        REQUIRE(reset.exit_code == 0);
        REQUIRE(cli(db, config, {"resume", "log"}).exit_code == 0);
        // No event is appended: the runner must not wait for one to notice
        // that its checkpoint was rewound.
        const long long events = db.number("SELECT count(*) FROM events");
        CHECK(wait_until([&] { return db.number("SELECT count(*) FROM log") == events; }, 20s));
        REQUIRE(caught_up(db, "log"));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM log WHERE n <> 1") == 0);
        CHECK(db.number("SELECT count(*) FROM log") == events);
    }

    TEST_CASE("on_error: skip in a projection whose schema has a table named events parks the failing event in "
              "the store's dead letters") {
        TestDatabase db;
        append(db, 6);
        // The projection's own `events` has the columns the dead-letter
        // statement reads, and no rows: resolved in the projection's schema,
        // the dead letter would record nothing and the event would be skipped
        // without a trace.
        const std::string yaml = R"(defaults:
  batch_size: 10
  on_error: skip
  max_retries: 1
projections:
  - name: audit
    schema: audit
    setup: |
      CREATE TABLE IF NOT EXISTS events (global_position bigint, event_id uuid, event_type text);
      CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated: INSERT INTO seen SELECT :global_position WHERE 1 / (CASE WHEN :payload.name = 'User 3' THEN 0 ELSE 1 END) = 1
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "audit"));
        CHECK(daemon.stop(SIGTERM) == 0);
        const std::string poison = db.scalar("SELECT global_position FROM public.events WHERE payload->>'name' = 'User 3'");
        CHECK(db.number("SELECT count(*) FROM audit.seen") == 5);
        CHECK(db.scalar("SELECT string_agg(d.global_position::text, ',') FROM projection_dead_letters d "
                        "JOIN public.events e USING (event_id) WHERE d.projection_name = 'audit' "
                        "AND e.global_position = d.global_position AND e.event_type = d.event_type") == poison);
    }

    // --- 2. on_error: stop keeps the events before the failing one ---

    TEST_CASE("on_error: stop with a batch handler: the failing event is found, the ones before it are applied and "
              "committed") {
        TestDatabase db;
        append(db, 20);
        // The read model refuses User 7, as a constraint refuses bad data.
        const std::string yaml = R"(defaults:
  batch_size: 20
  max_retries: 1
projections:
  - name: batched
    setup: |
      CREATE TABLE IF NOT EXISTS batched_seen (position bigint PRIMARY KEY,
                                               name text CHECK (name <> 'User 7'))
    handlers:
      UserCreated:
        batch: INSERT INTO batched_seen SELECT global_position, payload->>'name' FROM batch
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(wait_until(
            [&] {
                return db.scalar("SELECT state FROM projection_checkpoints WHERE projection_name = 'batched'") ==
                       "failed";
            },
            30s));
        const long long poison = db.number("SELECT global_position FROM events WHERE payload->>'name' = 'User 7'");
        CHECK(db.number("SELECT failed_global_position FROM projection_checkpoints") == poison);
        CHECK(db.number("SELECT count(*) FROM batched_seen") == 6);
        CHECK(db.number("SELECT max(position) FROM batched_seen") == poison - 1);
        CHECK(checkpoint(db, "batched") == poison - 1);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 6);
        CHECK(contains(db.scalar("SELECT last_error FROM projection_checkpoints"), "batched_seen_name_check"));
        CHECK(contains(daemon.log(), "running those events one at a time to find the failing one"));
        CHECK(daemon.process().running());
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT count(*) FROM batched_seen") == 6);
    }

    // SPEC 4: a batch handler sees "those events as a relation named batch".
    // The condition below fails for User 7 only; if PostgreSQL evaluates it
    // on events outside the run (`batch` inlined into the statement, and a
    // generic plan that scans events with the condition), every run fails
    // and on_error blames an innocent event.
    TEST_CASE("a batch handler's conditions see only the events of its run, so on_error blames the event that "
              "fails") {
        TestDatabase db;
        append(db, 20);
        const std::string yaml = R"(defaults:
  batch_size: 20
  max_retries: 1
projections:
  - name: batched
    setup: CREATE TABLE IF NOT EXISTS batched_seen (position bigint PRIMARY KEY)
    handlers:
      UserCreated:
        batch: |
          INSERT INTO batched_seen
          SELECT global_position FROM batch
           WHERE 1 / (CASE WHEN payload->>'name' = 'User 7' THEN 0 ELSE 1 END) = 1
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(wait_until(
            [&] {
                return db.scalar("SELECT state FROM projection_checkpoints WHERE projection_name = 'batched'") ==
                       "failed";
            },
            30s));
        const long long poison = db.number("SELECT global_position FROM events WHERE payload->>'name' = 'User 7'");
        CHECK(db.number("SELECT failed_global_position FROM projection_checkpoints") == poison);
        CHECK(db.number("SELECT count(*) FROM batched_seen") == 6);
        CHECK(checkpoint(db, "batched") == poison - 1);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    // --- 3. a pipeline never deadlocks on a large result ---

    TEST_CASE("large payloads and large handler results in one pipelined batch: every event processed") {
        TestDatabase db;
        db.scalar("SELECT count(*) FROM (SELECT append_events('C', 'Big', 'big-' || i, 0, jsonb_build_array("
                  "jsonb_build_object('event_type', 'Big', 'payload', jsonb_build_object('blob', "
                  "repeat('y', 200000))))) FROM generate_series(1, 40) i) appended");
        const std::string yaml = R"(defaults:
  batch_size: 40
projections:
  - name: big
    handlers:
      Big: SELECT :payload, repeat('x', 2000000)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        // Before the fix the client waited to write while the server waited
        // to write its result (backend in ClientWrite): 0 of 40, forever.
        CHECK(caught_up(db, "big", 60s));
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 40);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    // --- 4. appends send no notification; a standby does not pile them up ---

    TEST_CASE("an append sends no notification on projectiond_events") {
        TestDatabase db;
        store::Connection listener = db.connect();
        listener.exec("LISTEN projectiond_events");
        append(db, 3);
        {
            store::Connection conn = db.connect();
            conn.exec("BEGIN");
            append_event(conn, "in-a-transaction");
            conn.exec("COMMIT");
        }
        CHECK_FALSE(listener.wait_for_notification(store::Clock::now() + 2s));
        // The listener does hear a notification when there is one.
        db.scalar("NOTIFY projectiond_events, 'from the test'; SELECT 1");
        CHECK(listener.wait_for_notification(store::Clock::now() + 5s));
    }

    TEST_CASE("a standing-by daemon's memory does not grow with the appends and notifications it does not "
              "process") {
        TestDatabase db;
        const std::string yaml = counter_config(1000);
        DaemonProcess owner(db, yaml);
        INFO("log of owner:\n" << owner.log());
        REQUIRE(owner.wait_ready());
        append(db, 10);
        REQUIRE(caught_up(db, "counter"));
        DaemonProcess standby(db, yaml);
        INFO("log of standby:\n" << standby.log());
        REQUIRE(standby.wait_ready());
        store::Connection conn = db.connect();
        // One transaction per event, as many appenders commit them. Each
        // appending transaction costs a scan of the store today, so these are
        // few; the notifications the old schema sent for each appending
        // transaction (on projectiond_events, which the old standby listened
        // to and never drained) are many, and cheap.
        conn.exec(R"sql(
CREATE PROCEDURE append_one_by_one(prefix text, n integer) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        PERFORM append_events('C', 'Many', prefix || i, 0, '[{"event_type": "Many", "payload": {}}]');
        COMMIT;
    END LOOP;
END $$)sql");
        conn.exec(R"sql(
CREATE PROCEDURE notify_one_by_one(n integer) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        PERFORM pg_notify('projectiond_events', '');
        COMMIT;
    END LOOP;
END $$)sql");
        // Warm-up: whatever the standby allocates once.
        conn.exec("CALL append_one_by_one('warm-up-', 1000)");
        conn.exec("CALL notify_one_by_one(20000)");
        REQUIRE(caught_up(db, "counter", 120s));
        const long long before = rss_kib(standby.process().pid());
        REQUIRE(before > 0);

        conn.exec("CALL append_one_by_one('many-', 4000)");
        conn.exec("CALL notify_one_by_one(200000)");
        REQUIRE(caught_up(db, "counter", 120s));
        // The old standby kept every notification it read, some 60 bytes
        // each: 12 MB here. Allow 5 MB for anything else.
        const long long slack_kib = 5 * 1024;
        CHECK_FALSE(wait_until([&] { return rss_kib(standby.process().pid()) > before + slack_kib; }, 5s, 250ms));
        MESSAGE("standby VmRSS: " << before << " kB before, " << rss_kib(standby.process().pid()) << " kB after");

        // It stood by all along: it never processed anything.
        CHECK_FALSE(contains(standby.log(), "Resuming from checkpoint"));
        CHECK_FALSE(contains(standby.log(), "Starting fresh"));
        CHECK(standby.stop(SIGTERM) == 0);
        CHECK(owner.stop(SIGTERM) == 0);
        CHECK(db.number("SELECT n FROM stats") == 10 + 1000 + 4000);
    }

    // --- 5. ownership is per database ---

    TEST_CASE("a daemon on one database does not make the same projection look owned on another database of the "
              "cluster") {
        TestDatabase a;
        TestDatabase b;
        append(a, 5);
        append(b, 5);
        const std::string yaml = R"(projections:
  - name: q
    setup: CREATE TABLE IF NOT EXISTS q_seen (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO q_seen VALUES (:global_position) ON CONFLICT DO NOTHING
)";
        {
            DaemonProcess on_b(b, yaml);
            INFO("log of the daemon on b:\n" << on_b.log());
            REQUIRE(caught_up(b, "q"));
            CHECK(on_b.stop(SIGTERM) == 0);
        }
        DaemonProcess on_a(a, yaml);
        INFO("log of the daemon on a:\n" << on_a.log());
        REQUIRE(caught_up(a, "q"));

        // On a, the daemon owns q: reset is refused and status says running.
        const auto refused = cli(a, on_a.config(), {"reset", "q"});
        CHECK(refused.exit_code == 69);
        CHECK(contains(refused.err, "being processed by a running projectiond"));
        const auto status_a = cli(a, on_a.config(), {"status", "--json"});
        REQUIRE(status_a.exit_code == 0);
        CHECK(nlohmann::json::parse(status_a.out)["projections"][0]["running"] == true);

        // On b, nothing runs q.
        const auto status_b = cli(b, on_a.config(), {"status", "--json"});
        REQUIRE(status_b.exit_code == 0);
        const auto document = nlohmann::json::parse(status_b.out);
        REQUIRE(document["projections"].size() == 1);
        CHECK(document["projections"][0]["name"] == "q");
        CHECK(document["projections"][0]["running"] == false);
        const auto reset = cli(b, on_a.config(), {"reset", "q"});
        INFO("reset on b: " << reset.out << reset.err);
        CHECK(reset.exit_code == 0);
        CHECK(checkpoint(b, "q") == 0);
        CHECK(checkpoint(a, "q") == max_position(a));
        CHECK(on_a.stop(SIGTERM) == 0);
    }

    // --- 6. reloads do not block the main loop, and are staged ---

    TEST_CASE("while a reload's setup waits on a lock, SIGTERM is handled at once and the watchdog is fed") {
        TestDatabase db;
        db.scalar("CREATE TABLE reload_gate (x int); SELECT 1");
        NotifySocket notify;
        const std::string before = R"(database:
  lock_timeout: 60s
projections:
  - name: steady
    log: true
)";
        DaemonProcess daemon(db, before, {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "1000000"}});
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(notify.wait_for("READY=1", 30s));

        store::Connection holder = db.connect();
        holder.exec("BEGIN");
        holder.exec("LOCK TABLE reload_gate IN ACCESS EXCLUSIVE MODE");
        daemon.config().write(before + R"(  - name: gated
    setup: SELECT count(*) FROM reload_gate
    log: true
)");
        daemon.process().signal(SIGHUP);
        REQUIRE(wait_until(
            [&] {
                return db.number("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE "
                                 "'%FROM reload_gate%'") > 0;
            },
            30s));
        const std::size_t pings = notify.matching("WATCHDOG=1").size();
        CHECK(notify.wait_for("WATCHDOG=1", 5s, pings + 4));

        const auto sent = std::chrono::steady_clock::now();
        daemon.process().signal(SIGTERM);
        CHECK(daemon.process().wait_for_exit(5s) == 0);
        CHECK(std::chrono::steady_clock::now() - sent < 5s);
        holder.exec("ROLLBACK");
        CHECK(daemon.process().wait_for_exit(30s) == 0);
    }

    TEST_CASE("a reload whose setup fails changes nothing: a projection it removes keeps running") {
        TestDatabase db;
        append(db, 3);
        const std::string before = R"(projections:
  - name: keep
    log: true
  - name: drop
    log: true
)";
        DaemonProcess daemon(db, before);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "drop"));
        daemon.config().write(R"(projections:
  - name: keep
    log: true
  - name: broken
    setup: SELECT * FROM no_such_table
    log: true
)");
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("keeping the running"));
        CHECK(daemon.process().running());
        append(db, 3);
        CHECK(caught_up(db, "drop", 30s));
        CHECK(caught_up(db, "keep", 30s));
        CHECK_FALSE(contains(daemon.log(), "[drop/0] runner stopped"));
        CHECK_FALSE(contains(daemon.log(), "[keep/0] runner stopped"));
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = 'broken'") == 0);
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    // The issue's case: the configuration still names the same password
    // file, which can no longer be read, and the reload only removes a
    // projection. The old daemon retired it, then failed to read the file.
    TEST_CASE("a reload that can no longer read the password file changes nothing: a projection it removes keeps "
              "running") {
        TestDatabase db;
        append(db, 3);
        // Trust authentication: the password is sent and ignored.
        auto password_file = std::make_unique<TempFile>("any\n", ".secret");
        const std::string file = password_file->path();
        const std::string database = "database:\n  password_file: " + file + "\n";
        DaemonProcess daemon(db, database + R"(projections:
  - name: keep
    log: true
  - name: drop
    log: true
)");
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "drop"));
        password_file.reset(); // removed
        daemon.config().write(database + R"(projections:
  - name: keep
    log: true
)");
        daemon.process().signal(SIGHUP);
        REQUIRE(wait_until([&] { return contains(daemon.log(), "keeping the running") || !daemon.process().running(); },
                           30s));
        REQUIRE_MESSAGE(daemon.process().running(),
                        "the daemon exited with " << daemon.process().wait_for_exit(0ms).value_or(-1));
        CHECK(contains(daemon.log(), "keeping the running"));
        CHECK(contains(daemon.log(), file));
        append(db, 3);
        CHECK(caught_up(db, "drop", 30s));
        CHECK(caught_up(db, "keep", 30s));
        CHECK_FALSE(contains(daemon.log(), "[drop/0] runner stopped"));
        CHECK_FALSE(contains(daemon.log(), "[keep/0] runner stopped"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("a reload naming a password file that cannot be read changes nothing: a projection it removes keeps "
              "running") {
        TestDatabase db;
        append(db, 3);
        DaemonProcess daemon(db, R"(projections:
  - name: keep
    log: true
  - name: drop
    log: true
)");
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "drop"));
        daemon.config().write(R"(database:
  password_file: /nonexistent/projectiond-test/password
projections:
  - name: keep
    log: true
)");
        daemon.process().signal(SIGHUP);
        REQUIRE(wait_until([&] { return contains(daemon.log(), "keeping the running") || !daemon.process().running(); },
                           30s));
        REQUIRE_MESSAGE(daemon.process().running(),
                        "the daemon exited with " << daemon.process().wait_for_exit(0ms).value_or(-1));
        CHECK(contains(daemon.log(), "keeping the running"));
        CHECK(contains(daemon.log(), "/nonexistent/projectiond-test/password"));
        append(db, 3);
        CHECK(caught_up(db, "drop", 30s));
        CHECK(caught_up(db, "keep", 30s));
        CHECK_FALSE(contains(daemon.log(), "[drop/0] runner stopped"));
        CHECK_FALSE(contains(daemon.log(), "[keep/0] runner stopped"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    // --- 7. errors are classified ---

    TEST_CASE("a handler that no longer prepares (its table was dropped) goes through on_error: dead letters with "
              "skip, failed with stop") {
        TestDatabase db;
        append(db, 5);
        const std::string yaml = R"(defaults:
  max_retries: 0
  batch_size: 10
projections:
  - name: skipping
    on_error: skip
    setup: CREATE TABLE IF NOT EXISTS skip_target (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO skip_target VALUES (:global_position)
  - name: stopping
    on_error: stop
    setup: CREATE TABLE IF NOT EXISTS stop_target (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO stop_target VALUES (:global_position)
)";
        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "skipping"));
        REQUIRE(caught_up(db, "stopping"));
        // A schema change, then the daemon's sessions end (a restart of the
        // server, a network cut): the runners prepare their handlers again,
        // and those no longer prepare.
        db.scalar("DROP TABLE skip_target; DROP TABLE stop_target; SELECT 1");
        REQUIRE(db.number("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" +
                          db.name() + "' AND application_name LIKE 'projectiond%' AND pid <> pg_backend_pid()") > 0);
        const long long first_new = max_position(db) + 1;
        append(db, 3);

        CHECK(caught_up(db, "skipping", 30s));
        CHECK(db.number("SELECT count(*) FROM projection_dead_letters WHERE projection_name = 'skipping'") == 3);
        CHECK(db.number("SELECT min(global_position) FROM projection_dead_letters") == first_new);
        CHECK(contains(db.scalar("SELECT min(error) FROM projection_dead_letters"), "skip_target"));
        CHECK(db.scalar("SELECT min(sqlstate) FROM projection_dead_letters") == "42P01");

        REQUIRE(wait_until(
            [&] {
                return db.scalar("SELECT state FROM projection_checkpoints WHERE projection_name = 'stopping'") ==
                       "failed";
            },
            30s));
        CHECK(db.number("SELECT failed_global_position FROM projection_checkpoints WHERE projection_name = "
                        "'stopping'") == first_new);
        CHECK(checkpoint(db, "stopping") == first_new - 1);
        const std::string error =
            db.scalar("SELECT last_error FROM projection_checkpoints WHERE projection_name = 'stopping'");
        CHECK(contains(error, "stop_target"));
        CHECK(contains(error, "does not exist"));
        const auto status = cli(db, daemon.config(), {"status", "stopping"});
        CHECK(status.exit_code == 1);
        CHECK(contains(status.out, fmt::format("Status: Failed at position {} (event ", first_new)));
        // The path taken: the handlers were prepared again after the drop.
        CHECK(contains(daemon.log(), "does not prepare"));
        CHECK_FALSE(contains(daemon.log(), "waiting for database"));
        CHECK_FALSE(contains(daemon.log(), "does not exist (SQLSTATE 42P01); retrying in"));
        CHECK(daemon.stop(SIGTERM) == 0);
    }

    TEST_CASE("run with a wrong password exits 78 at once, naming the cause and not the password") {
        TestDatabase db;
        create_role_with_password(db, password_role, right_password);
        TempFile password_file(wrong_password + "\n", ".secret");
        const std::string yaml = fmt::format(R"(database:
  url: "user={} dbname={}"
  password_file: {}
projections:
  - name: locked_out
    log: true
)",
                                             password_role, db.name(), password_file.path());
        TempFile config(yaml);
        ChildProcess daemon({projectiond_binary(), "run", "-c", config.path(), "--log-target", "stderr"});
        const auto exit_code = daemon.wait_for_exit(15s);
        INFO("log of daemon:\n" << daemon.errors());
        CHECK(exit_code == 78);
        CHECK(contains(daemon.errors(), "password authentication failed"));
        CHECK(contains(daemon.errors(), config.path()));
        CHECK_FALSE(contains(daemon.output() + daemon.errors(), wrong_password));
        CHECK_FALSE(contains(daemon.output() + daemon.errors(), right_password));
    }

    // --- 8. the smaller ones ---

    TEST_CASE("check-config refuses a statement_timeout above 2147483647 ms, at its file:line:column") {
        TempFile config("database:\n  statement_timeout: 2147483648ms\nprojections:\n  - name: a\n    log: true\n");
        const auto result = run_command({projectiond_binary(), "-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err, config.path() + ":2:22: `statement_timeout` must be at most 2147483647ms"));
    }

    TEST_CASE("the transaction guard: a ROLLBACK that fails because the session died does not replace the error "
              "that ended the transaction") {
        TestDatabase db;
        // A statement's error; the session dies before the guard rolls back.
        {
            store::Connection conn = db.connect();
            const std::string pid = backend_pid(conn);
            std::string caught;
            std::string sqlstate;
            try {
                store::Transaction tx(conn);
                conn.exec("CREATE TEMP TABLE inside (x int)");
                try {
                    conn.exec("SELECT 1 / 0");
                } catch (const store::DatabaseError&) {
                    terminate_session(db, pid);
                    throw;
                }
                FAIL("1 / 0 did not fail");
            } catch (const store::DatabaseError& error) {
                caught = error.what();
                sqlstate = error.sqlstate();
            }
            CHECK(contains(caught, "division by zero"));
            CHECK(sqlstate == "22012");
            CHECK_FALSE(conn.healthy()); // the guard did try the ROLLBACK, which failed
        }
        // Any other error: the same.
        {
            store::Connection conn = db.connect();
            const std::string pid = backend_pid(conn);
            std::string caught;
            try {
                store::Transaction tx(conn);
                conn.exec("CREATE TEMP TABLE inside (x int)");
                terminate_session(db, pid);
                throw std::logic_error("the original error");
            } catch (const std::logic_error& error) {
                caught = error.what();
            } catch (const std::exception& error) {
                caught = std::string("replaced by: ") + error.what();
            }
            CHECK(caught == "the original error");
            CHECK_FALSE(conn.healthy());
        }
    }

    TEST_CASE("a migration changed after it was applied: migrate refuses and run exits 69, both naming it") {
        TestDatabase db;
        const std::string name = db.scalar("SELECT name FROM schema_migrations WHERE version = 1");
        REQUIRE_FALSE(name.empty());
        db.scalar("UPDATE schema_migrations SET checksum = 'edited-by-hand' WHERE version = 1 RETURNING 1");
        TempFile config("projections:\n  - name: a\n    log: true\n");

        const auto migrate = cli(db, config, {"migrate"});
        CHECK(migrate.exit_code != 0);
        CHECK(contains(migrate.err, name));
        CHECK(contains(migrate.err, "changed after it was applied"));
        CHECK(db.scalar("SELECT checksum FROM schema_migrations WHERE version = 1") == "edited-by-hand");

        DaemonProcess daemon(db, "projections:\n  - name: a\n    log: true\n");
        INFO("log of daemon:\n" << daemon.log());
        CHECK(daemon.process().wait_for_exit(30s) == 69);
        CHECK(contains(daemon.log(), name));
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints") == 0);
    }

    TEST_CASE("status above a million events says the count is about so much") {
        TestDatabase db;
        append(db, 2);
        db.scalar("SELECT setval(pg_get_serial_sequence('events', 'global_position'), 2000000)");
        append(db, 3);
        TempFile config("projections:\n  - name: a\n    log: true\n");
        const auto status = cli(db, config, {"status"});
        CHECK(status.exit_code == 0);
        CHECK(contains(status.out, "Total events in store: about "));
        const auto json = cli(db, config, {"status", "--json"});
        CHECK(json.exit_code == 0);
        CHECK(nlohmann::json::parse(json.out)["total_estimated"] == true);
    }

    TEST_CASE("dead-letters of an unknown projection exits 64, as status does") {
        TestDatabase db;
        TempFile config("projections:\n  - name: a\n    log: true\n");
        const auto dead = cli(db, config, {"dead-letters", "nosuch"});
        CHECK(dead.exit_code == 64);
        CHECK(contains(dead.err, "nosuch"));
        CHECK(cli(db, config, {"status", "nosuch"}).exit_code == 64);
    }

    TEST_CASE("reset --to-position -5 exits 64 with a plain message") {
        TestDatabase db;
        TempFile config("projections:\n  - name: a\n    log: true\n");
        const auto result = cli(db, config, {"reset", "a", "--to-position", "-5"});
        CHECK(result.exit_code == 64);
        CHECK(contains(result.err, "--to-position"));
        CHECK(longest_digit_run(result.err) < 20);
        CHECK(result.err.size() < 300);
    }

    // --- 9. check-config reports a misspelt parameter once ---

    TEST_CASE("check-config reports a misspelt JSON parameter of a one-line handler as its only error") {
        TestDatabase db;
        TempFile config("projections:\n  - name: a\n    handlers:\n      X: SELECT :paylod.total\n");
        for (const bool with_database : {false, true}) {
            CAPTURE(with_database);
            std::vector<std::string> args = {projectiond_binary(), "-c", config.path()};
            if (with_database) {
                args.insert(args.end(), {"--database-url", db.conninfo()});
            }
            args.push_back("check-config");
            const auto result = run_command(args);
            CHECK(result.exit_code == 78);
            CHECK(contains(result.err, "unknown parameter ':paylod' (did you mean 'payload'?)"));
            CHECK_FALSE(contains(result.err, "no SQL statement"));
            CHECK(lines_starting_with(result.err, config.path() + ":") == 1);
        }
    }
}
