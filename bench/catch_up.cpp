// Catch-up throughput and append-to-applied latency of projection runners,
// against PostgreSQL doing the same work set-based, in the same run.
//
//   bench/run [EVENTS]      (default 200000; starts its own throwaway PostgreSQL)
//
// Prints figures and ratios; it asserts nothing.
#include "config/loader.hpp"
#include "in_process.hpp"
#include "projection/runner.hpp"
#include "store/checkpoints.hpp"
#include "store/connect.hpp"
#include "store/demo_events.hpp"
#include "store/generations.hpp"
#include "store/migrations.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// A "Vm...:" figure of /proc/self/status, in KiB.
long status_kib(const std::string& field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field + ":", 0) == 0) {
            return std::stol(line.substr(field.size() + 1));
        }
    }
    return 0;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// The median of three runs of `run(0)`, `run(1)`, `run(2)` (seconds).
template <typename Run> double median_of_three(Run run) {
    std::vector<double> times;
    for (int i = 0; i < 3; ++i) {
        times.push_back(run(i));
    }
    std::sort(times.begin(), times.end());
    return times[1];
}

struct Bench {
    std::string dbname;
    store::ConnectOptions connect;

    store::Connection open() const { return store::Connection::open(connect); }

    // Runs one projection until every checkpoint reaches the end; returns seconds.
    double catch_up(const std::string& yaml, long long target) const {
        const auto config = config::parse_config(yaml, "bench.yaml");
        const auto start = Clock::now();
        bench::InProcessDaemon engine(connect, config);
        while (engine.lowest(config.projections.front().name) < target) {
            std::this_thread::sleep_for(200us);
        }
        return seconds_since(start);
    }
};

const char* const upsert_yaml = R"(defaults:
  batch_size: 1000
projections:
  - name: {name}
    partitions: {partitions}
    setup: CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated: |
        INSERT INTO {table} (id, email, name) VALUES (:aggregate_id, :payload.email, :payload.name)
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
)";

std::string upsert_config(const std::string& name, const std::string& table, int partitions = 1) {
    return fmt::format(fmt::runtime(upsert_yaml), fmt::arg("name", name), fmt::arg("table", table),
                       fmt::arg("partitions", partitions));
}

} // namespace

int main(int argc, char** argv) {
    const long long events = argc > 1 ? std::stoll(argv[1]) : 200000;
    spdlog::set_level(spdlog::level::warn);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Bench bench;
    bench.dbname = fmt::format("bench_{}", ::getpid());
    {
        store::ConnectOptions admin;
        admin.conninfo = "dbname=postgres";
        store::Connection conn = store::Connection::open(admin);
        conn.exec("CREATE DATABASE " + bench.dbname);
    }
    bench.connect.conninfo = "dbname=" + bench.dbname;
    store::Connection conn = bench.open();
    store::migrate(conn, [](const store::Migration&) {});

    fmt::print("projectiond catch-up benchmark: {} events, PostgreSQL {} on a unix socket, {} cores\n", events,
               conn.exec("SHOW server_version").text(0, 0), std::thread::hardware_concurrency());
    auto start = Clock::now();
    store::append_demo_events(conn, events, "User", "Identity");
    conn.exec("VACUUM ANALYZE events");
    const long long max_position = conn.exec("SELECT max(global_position) FROM events").int64(0, 0);
    fmt::print("  appended in {:.2f} s\n\n", seconds_since(start));

    // Baselines: PostgreSQL doing the same upserts as one set-based statement,
    // and the batch handler's own statement over the whole store at once.
    // The times of this machine vary by tens of percent from one run to the
    // next: each figure compared is the median of three runs, each filling
    // its table from empty.
    const auto set_based = [&](const std::string& table, const std::string& sql) {
        conn.exec(fmt::format("CREATE TABLE {} (id text PRIMARY KEY, email text, name text)", table));
        return median_of_three([&](int) {
            conn.exec("TRUNCATE " + table);
            const auto begun = Clock::now();
            conn.exec(sql);
            return seconds_since(begun);
        });
    };
    const double baseline =
        set_based("users_baseline", "INSERT INTO users_baseline (id, email, name) "
                                    "SELECT aggregate_id, payload->>'email', payload->>'name' FROM events "
                                    "ORDER BY global_position "
                                    "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name");
    const double batch_baseline =
        set_based("users_batch_baseline",
                  "WITH batch AS MATERIALIZED (SELECT e.*, row_number() OVER (ORDER BY e.global_position) AS "
                  "batch_ordinal FROM events e) "
                  "INSERT INTO users_batch_baseline (id, email, name) "
                  "SELECT DISTINCT ON (aggregate_id) aggregate_id, payload->>'email', payload->>'name' "
                  "FROM batch ORDER BY aggregate_id, batch_ordinal DESC "
                  "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name");

    // PostgreSQL's own floor for each handler model, with no client, no
    // checkpoint and no second connection: the per-event statement run once
    // per event, and the batch handler's statement once per run of 1000
    // events, each in a server-side loop in one transaction.
    const double per_event_floor =
        set_based("users_per_event_floor", R"sql(DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT aggregate_id, payload->>'email' AS email, payload->>'name' AS name FROM events
              ORDER BY global_position LOOP
        INSERT INTO users_per_event_floor (id, email, name) VALUES (r.aggregate_id, r.email, r.name)
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name;
    END LOOP;
END
$$)sql");
    const double batch_floor = set_based("users_batch_floor", R"sql(DO $$
DECLARE
    first bigint := 1;
    last_position bigint := (SELECT max(global_position) FROM events);
BEGIN
    WHILE first <= last_position LOOP
        WITH batch AS MATERIALIZED (SELECT e.*, e.global_position - first + 1 AS batch_ordinal
                                      FROM projectiond_run_range(first, first + 999) e)
        INSERT INTO users_batch_floor (id, email, name)
        SELECT DISTINCT ON (aggregate_id) aggregate_id, payload->>'email', payload->>'name'
          FROM batch ORDER BY aggregate_id, batch_ordinal DESC
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name;
        first := first + 1000;
    END LOOP;
END
$$)sql");

    const long rss_before = status_kib("VmRSS");
    const double upsert = median_of_three([&](int run) {
        return bench.catch_up(upsert_config(fmt::format("upsert_{}", run),
                                            run == 0 ? "users_projected" : fmt::format("users_projected_{}", run)),
                              max_position);
    });
    const long long projected = conn.exec("SELECT count(*) FROM users_projected").int64(0, 0);
    const long rss_after_upsert = status_kib("VmHWM");

    const double upsert_split = bench.catch_up(upsert_config("upsert_split", "users_split", 2), max_position);
    const long long projected_split = conn.exec("SELECT count(*) FROM users_split").int64(0, 0);
    const double upsert_four = bench.catch_up(upsert_config("upsert_four", "users_four", 4), max_position);

    const double noop = bench.catch_up(R"(defaults:
  batch_size: 1000
projections:
  - name: noop
    log: true
)",
                                       max_position);
    const double select_one = bench.catch_up(R"(defaults:
  batch_size: 1000
projections:
  - name: select_one
    handlers:
      "*": SELECT 1
)",
                                             max_position);

    const double batch_upsert = median_of_three([&](int run) {
        return bench.catch_up(fmt::format(R"(defaults:
  batch_size: 1000
projections:
  - name: batch_upsert_{0}
    setup: CREATE TABLE IF NOT EXISTS {1} (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated:
        batch: |
          INSERT INTO {1} (id, email, name)
          SELECT DISTINCT ON (aggregate_id) aggregate_id, payload->>'email', payload->>'name'
            FROM batch ORDER BY aggregate_id, batch_ordinal DESC
          ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
)",
                                          run, run == 0 ? "users_batch" : fmt::format("users_batch_{}", run)),
                              max_position);
    });
    const long long projected_batch = conn.exec("SELECT count(*) FROM users_batch").int64(0, 0);
    // Every read model must equal the single per-event run's, row for row.
    const auto equal_to_per_event = [&](const std::string& table) {
        return conn.exec(fmt::format("SELECT NOT EXISTS (SELECT * FROM {0} EXCEPT SELECT * FROM users_projected) AND "
                                     "NOT EXISTS (SELECT * FROM users_projected EXCEPT SELECT * FROM {0})",
                                     table))
                       .boolean(0, 0)
                   ? "equal to"
                   : "DIFFERENT FROM";
    };

    const auto row = [&](const char* what, double seconds) {
        fmt::print("  {:<52} {:>7.2f} s {:>10.0f} events/s {:>6.2f}x baseline\n", what, seconds,
                   static_cast<double>(events) / seconds, seconds / baseline);
    };
    fmt::print("catch-up (batch_size 1000, one partition):\n");
    row("baseline: one INSERT ... SELECT ... ON CONFLICT", baseline);
    row("baseline: the batch handler's statement, whole store", batch_baseline);
    row("floor: the upsert once per event, server-side loop", per_event_floor);
    row("floor: the batch statement per 1000-event run, same", batch_floor);
    row("projectiond: upsert handler", upsert);
    row("projectiond: upsert handler, partitions: 2", upsert_split);
    row("projectiond: upsert handler, partitions: 4", upsert_four);
    row("projectiond: batch upsert handler ({batch: ...})", batch_upsert);
    row("projectiond: no-op (log: true, lines filtered out)", noop);
    row("projectiond: `SELECT 1` handler", select_one);
    const std::string_view per_event_floor_equal = equal_to_per_event("users_per_event_floor");
    fmt::print("  rows projected: {} of {} events by the per-event handler ({} the set-based baseline, {} the "
               "floors)\n",
               projected, events, equal_to_per_event("users_baseline"),
               per_event_floor_equal == equal_to_per_event("users_batch_floor") ? per_event_floor_equal
                                                                               : "NOT ALL EQUAL TO");
    fmt::print("  partitions: 2: {} rows, {} the per-event result; partitions: 4: {} the per-event result\n",
               projected_split, equal_to_per_event("users_split"), equal_to_per_event("users_four"));
    fmt::print("  batch handler: {} rows, {} the per-event result\n", projected_batch,
               equal_to_per_event("users_batch"));
    fmt::print("  (median of 3 runs: the baselines, the floors, the upsert and the batch upsert handler)\n");
    fmt::print("  ratios: batch handler {:.2f}x set-based (aim <= 1.1x), {:.2f}x its own statement set-based; "
               "per-event handler {:.2f}x (aim <= 2x); partitions: 4 {:.2f}x partitions: 1 (aim <= 1x)\n",
               batch_upsert / baseline, batch_upsert / batch_baseline, upsert / baseline, upsert_four / upsert);
    fmt::print("  floors: one statement per event {:.2f}x set-based (the per-event handler {:.2f}x that floor); "
               "runs of 1000 {:.2f}x (the batch handler {:.2f}x that floor)\n",
               per_event_floor / baseline, upsert / per_event_floor, batch_floor / baseline, batch_upsert / batch_floor);
    fmt::print("  process RSS: {} KiB before, peak {} KiB after the upsert run\n\n", rss_before, rss_after_upsert);

    // Append-to-applied latency with a 10 s poll interval: the watcher must
    // wake the runner.
    {
        const auto config = config::parse_config(R"(defaults:
  poll_interval: 10s
projections:
  - name: latency
    setup: CREATE TABLE IF NOT EXISTS latency_seen (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO latency_seen VALUES (:global_position)
)",
                                                 "latency.yaml");
        {
            store::Connection setup = bench.open();
            store::register_projection(setup, "latency", 1);
            // Start this projection at the end of the store.
            setup.exec("UPDATE projection_checkpoints c SET (cursor_store_epoch, cursor_transaction_id, "
                       "cursor_global_position, last_global_position) = (SELECT store_epoch, transaction_id, "
                       "global_position, global_position FROM events ORDER BY store_epoch DESC, transaction_id DESC, "
                       "global_position DESC LIMIT 1) WHERE projection_name = 'latency'");
        }
        bench::InProcessDaemon engine(bench.connect, config);
        while (engine.lowest("latency") < max_position) {
            std::this_thread::sleep_for(1ms);
        }
        std::vector<double> latencies;
        std::mt19937 random(20261128);
        std::uniform_int_distribution<int> pause(5, 150);
        store::Connection appender = bench.open();
        for (int i = 0; i < 200; ++i) {
            const auto sent = Clock::now();
            const auto range = store::append_demo_events(appender, 1, "User", "Identity");
            while (engine.lowest("latency") < range.last_position) {
                std::this_thread::sleep_for(100us);
            }
            latencies.push_back(seconds_since(sent) * 1000.0);
            // A pause of random length, so that appends land anywhere in the
            // watcher's 100 ms cycle rather than in step with it.
            std::this_thread::sleep_for(std::chrono::milliseconds(pause(random)));
        }
        std::sort(latencies.begin(), latencies.end());
        fmt::print("append-to-applied latency, poll_interval 10s, 200 single-event appends 5-150 ms apart:\n");
        fmt::print("  p50 {:.2f} ms, p95 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n", latencies[100], latencies[190],
                   latencies[198], latencies.back());
    }

    conn = store::Connection::open([] {
        store::ConnectOptions admin;
        admin.conninfo = "dbname=postgres";
        return admin;
    }());
    conn.exec("DROP DATABASE " + bench.dbname + " WITH (FORCE)");
    return 0;
}
