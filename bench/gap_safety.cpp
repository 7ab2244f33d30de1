// How many events a reader loses when transactions commit out of order: the
// reference library's way ("global_position > highest seen") against a
// projectiond runner, both following the same concurrent appenders.
//
//   scripts/with-postgres build/bench/gap_safety [APPENDERS] [TRANSACTIONS_EACH]  (bench/run runs it)
//
// Prints figures; asserts nothing.
#include "config/loader.hpp"
#include "in_process.hpp"
#include "store/migrations.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const int appenders = argc > 1 ? std::stoi(argv[1]) : 8;
    const int transactions = argc > 2 ? std::stoi(argv[2]) : 400;
    spdlog::set_level(spdlog::level::warn);

    const std::string dbname = fmt::format("gaps_{}", ::getpid());
    store::ConnectOptions admin;
    admin.conninfo = "dbname=postgres";
    store::Connection::open(admin).exec("CREATE DATABASE " + dbname);
    store::ConnectOptions options;
    options.conninfo = "dbname=" + dbname;
    {
        store::Connection conn = store::Connection::open(options);
        store::migrate(conn, [](const store::Migration&) {});
    }

    // projectiond, in-process.
    const auto config = config::parse_config(R"(defaults:
  batch_size: 100
  poll_interval: 100ms
projections:
  - name: seen
    setup: CREATE TABLE IF NOT EXISTS seen (position bigint PRIMARY KEY)
    handlers:
      "*": INSERT INTO seen VALUES (:global_position)
)",
                                             "gaps.yaml");
    auto runner = std::make_unique<bench::InProcessDaemon>(options, config);

    // The reference's reader: poll for positions above the highest one seen.
    std::atomic<bool> appending{true};
    std::set<std::int64_t> naive_seen;
    std::thread naive([&] {
        store::Connection conn = store::Connection::open(options);
        std::int64_t highest = 0;
        auto quiet_since = std::chrono::steady_clock::now();
        for (;;) {
            const store::Result rows = conn.exec(
                "SELECT global_position FROM events WHERE global_position > $1::bigint ORDER BY global_position "
                "LIMIT 1000",
                {std::to_string(highest)});
            for (int row = 0; row < rows.rows(); ++row) {
                naive_seen.insert(rows.int64(row, 0));
                highest = std::max(highest, rows.int64(row, 0));
            }
            if (rows.rows() > 0) {
                quiet_since = std::chrono::steady_clock::now();
            } else if (!appending && std::chrono::steady_clock::now() - quiet_since > 1s) {
                return;
            }
            std::this_thread::sleep_for(2ms);
        }
    });

    std::vector<std::thread> threads;
    for (int t = 0; t < appenders; ++t) {
        threads.emplace_back([&, t] {
            store::Connection conn = store::Connection::open(options);
            std::mt19937 random(static_cast<unsigned>(t));
            std::uniform_int_distribution<int> delay(0, 5);
            for (int i = 0; i < transactions; ++i) {
                conn.exec("BEGIN");
                conn.exec(fmt::format("SELECT append_events('C', 'A', 'a-{}-{}', 0, "
                                      "'[{{\"event_type\": \"E\", \"payload\": {{}}}}]')",
                                      t, i));
                std::this_thread::sleep_for(std::chrono::milliseconds(delay(random)));
                conn.exec("COMMIT");
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    appending = false;
    naive.join();

    store::Connection conn = store::Connection::open(options);
    const long long total = conn.exec("SELECT count(*) FROM events").int64(0, 0);
    while (conn.exec("SELECT count(*) FROM seen").int64(0, 0) < total) {
        std::this_thread::sleep_for(10ms);
    }
    runner.reset();
    const long long runner_seen = conn.exec("SELECT count(*) FROM seen").int64(0, 0);

    const auto share = [&](long long seen) { return 100.0 * static_cast<double>(total - seen) / total; };
    fmt::print("gap safety: {} appenders x {} transactions, commit delayed 0-5 ms, {} events\n", appenders,
               transactions, total);
    fmt::print("  reference reader (position > highest seen): saw {:>6}, lost {:>5} ({:.1f}%)\n", naive_seen.size(),
               total - static_cast<long long>(naive_seen.size()), share(static_cast<long long>(naive_seen.size())));
    fmt::print("  projectiond runner:                         saw {:>6}, lost {:>5} ({:.1f}%)\n", runner_seen,
               total - runner_seen, share(runner_seen));

    conn = store::Connection::open(admin);
    conn.exec("DROP DATABASE " + dbname + " WITH (FORCE)");
    return 0;
}
