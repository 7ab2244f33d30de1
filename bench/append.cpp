// The append path every application pays: append_events() and a plain INSERT
// into events (both through the schema's triggers) against a bare table of
// the same columns, constraints and indexes without triggers, by 8 clients in
// transactions of 1 and of 10 events.
//
//   bench/append [EVENTS]   events per measurement (default 24000); needs a
//                           PostgreSQL reached through PG* (scripts/with-postgres)
//
// Each client appends to 100 aggregates of its own, round robin, so an append
// creates an aggregate or continues one at its next version, as applications
// do. Each figure is the best of two rounds. It asserts nothing but checks
// that every event arrived with the right versions.
#include "store/connect.hpp"
#include "store/migrations.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int clients = 8;
constexpr int aggregates_per_client = 100;

// $1 bounded context, $2 aggregate type, $3 aggregate id, $4 the version
// before the first event, $5 how many events. The same statement for the
// bare table, but for its name.
const char* const insert_sql = R"sql(
INSERT INTO {} (bounded_context, aggregate_type, aggregate_id, aggregate_version, event_type, payload)
SELECT $1, $2, $3, $4::bigint + i, 'Changed',
       jsonb_build_object('email', 'user' || $3 || '@example.com', 'name', 'User ' || $3, 'n', i)
  FROM generate_series(1, $5::integer) AS i)sql";

const char* const append_sql = R"sql(
SELECT count(*) FROM append_events($1, $2, $3, $4::bigint, (
    SELECT jsonb_agg(jsonb_build_object('event_type', 'Changed', 'payload',
               jsonb_build_object('email', 'user' || $3 || '@example.com', 'name', 'User ' || $3, 'n', i))
               ORDER BY i)
      FROM generate_series(1, $5::integer) AS i)))sql";

enum class Path { bare, insert, append };

const char* name_of(Path path) {
    switch (path) {
    case Path::bare:
        return "bare table (same columns, constraints, indexes)";
    case Path::insert:
        return "INSERT INTO events (the schema's triggers)";
    case Path::append:
        return "append_events()";
    }
    return "";
}

struct Bench {
    store::ConnectOptions connect;
    long long events = 24000;

    // Appends `events` events in transactions of `size` by `clients` clients;
    // returns seconds. `round` keeps the aggregates of each measurement apart.
    double run(Path path, int size, int round) const {
        const std::string sql =
            path == Path::append ? std::string(append_sql)
                                 : fmt::format(fmt::runtime(insert_sql), path == Path::bare ? "bare_events" : "events");
        const long long transactions = events / size / clients;
        std::latch ready(clients + 1);
        std::atomic<bool> go{false};
        std::mutex failure_mutex;
        std::string failure;
        std::vector<std::thread> threads;
        for (int client = 0; client < clients; ++client) {
            threads.emplace_back([&, client] {
                bool counted = false;
                try {
                    store::Connection conn = store::Connection::open(connect);
                    conn.exec("SELECT 1");
                    std::vector<long long> versions(aggregates_per_client, 0);
                    const std::string size_text = std::to_string(size);
                    const std::string prefix =
                        fmt::format("p{}-r{}-s{}-c{}-a", static_cast<int>(path), round, size, client);
                    ready.count_down();
                    counted = true;
                    while (!go.load()) {
                        std::this_thread::yield();
                    }
                    for (long long t = 0; t < transactions; ++t) {
                        const auto aggregate = static_cast<std::size_t>(t % aggregates_per_client);
                        conn.exec(sql, {"Bench", "Account", prefix + std::to_string(aggregate),
                                        std::to_string(versions[aggregate]), size_text});
                        versions[aggregate] += size;
                    }
                } catch (const std::exception& error) {
                    std::lock_guard lock(failure_mutex);
                    failure = error.what();
                    if (!counted) {
                        ready.count_down();
                    }
                }
            });
        }
        ready.arrive_and_wait();
        const auto start = Clock::now();
        go = true;
        for (auto& thread : threads) {
            thread.join();
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        if (!failure.empty()) {
            throw std::runtime_error(fmt::format("{} with transactions of {}: {}", name_of(path), size, failure));
        }
        return seconds;
    }
};

} // namespace

int main(int argc, char** argv) try {
    Bench bench;
    bench.events = argc > 1 ? std::stoll(argv[1]) : 24000;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string dbname = fmt::format("bench_append_{}", ::getpid());
    store::ConnectOptions admin;
    admin.conninfo = "dbname=postgres";
    store::Connection::open(admin).exec("CREATE DATABASE " + dbname);
    bench.connect.conninfo = "dbname=" + dbname;
    {
        store::Connection conn = store::Connection::open(bench.connect);
        store::migrate(conn, [](const store::Migration&) {});
        // Everything events has but its triggers (and the head table they keep).
        conn.exec("CREATE TABLE bare_events (LIKE events INCLUDING ALL)");
        conn.exec("ALTER TABLE bare_events ALTER COLUMN store_epoch SET DEFAULT 0");
        fmt::print("append path: {} events per figure, {} clients, PostgreSQL {} on a unix socket, {} cores\n",
                   bench.events, clients, conn.exec("SHOW server_version").text(0, 0),
                   std::thread::hardware_concurrency());
    }

    const std::vector<Path> paths{Path::bare, Path::insert, Path::append};
    for (const int size : {1, 10}) {
        std::vector<double> best(paths.size(), 1e300);
        for (int round = 0; round < 2; ++round) {
            for (std::size_t p = 0; p < paths.size(); ++p) {
                best[p] = std::min(best[p], bench.run(paths[p], size, round));
            }
        }
        const long long appended = bench.events / size / clients * size * clients;
        fmt::print("  transactions of {} event{}:\n", size, size == 1 ? "" : "s");
        for (std::size_t p = 0; p < paths.size(); ++p) {
            fmt::print("    {:<50} {:>7.2f} s {:>9.0f} events/s {:>6.2f}x bare table\n", name_of(paths[p]), best[p],
                       static_cast<double>(appended) / best[p], best[p] / best[0]);
        }
    }

    // Every event is there, and every head names its aggregate's last version.
    store::Connection conn = store::Connection::open(bench.connect);
    const long long expected = 2 * 2 * (bench.events / clients * clients + bench.events / 10 / clients * 10 * clients);
    const long long stored = conn.exec("SELECT count(*) FROM events").int64(0, 0);
    const long long wrong_heads =
        conn.exec(
                "SELECT count(*) FROM aggregate_heads h WHERE h.aggregate_version <> (SELECT max(e.aggregate_version) "
                "FROM events e WHERE (e.bounded_context, e.aggregate_type, e.aggregate_id) = "
                "(h.bounded_context, h.aggregate_type, h.aggregate_id))")
            .int64(0, 0);
    fmt::print("  check: {} events in events ({} expected), {} aggregate heads out of step\n", stored, expected,
               wrong_heads);

    conn = store::Connection::open(admin);
    conn.exec("DROP DATABASE " + dbname + " WITH (FORCE)");
    return stored == expected && wrong_heads == 0 ? 0 : 1;
} catch (const std::exception& error) {
    fmt::print(stderr, "append: {}\n", error.what());
    return 1;
}
