// A blue/green rebuild (a `version:` bump, docs/versions.md) against a plain
// catch-up of the same events, in the same run, by the same daemon binary:
//
//   - the plain catch-up rate: version 1 of a projection from the first event;
//   - the rebuild rate: version 2 built beside the live version 1, from the
//     first event until it is swapped in, while new events keep coming;
//   - the live version's append-to-applied latency meanwhile (one event every
//     10 ms), against the same figure with no rebuild going on.
//
// Two rounds of both, each with a projection of its own, so that the noise of
// a shared machine shows.
//
//   bench/run [EVENTS]   or, alone: scripts/with-postgres build/bench/rebuild [EVENTS]
//
// EVENTS defaults to 1000000. The daemon under test is $PROJECTIOND_BIN, else
// ../src/projectiond next to this program. Prints figures and ratios; it
// asserts nothing.
#include "daemon_process.hpp"
#include "store/connection.hpp"
#include "store/demo_events.hpp"
#include "store/migrations.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::bench;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// The same upsert in both versions: the rebuild does the catch-up's work.
// Each round of the benchmark has a projection of its own.
std::string users_yaml(const std::string& name, int version) {
    return fmt::format(R"(defaults:
  batch_size: 1000
projections:
  - name: {0}
    schema: {0}
    version: {1}
    setup: CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated: |
        INSERT INTO users (id, email, name) VALUES (:aggregate_id, :payload.email, :payload.name)
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
)",
                       name, version);
}

// Where the live generation and the one being built are.
struct Generations {
    long long live_generation = 0;
    long long live_position = 0;
    long long building_generation = 0; // 0: none
    long long building_position = 0;
    long long building_processed = 0;
    std::string swap_requested_at; // "" when the live generation is not held
};

Generations generations(store::Connection& conn, const std::string& name) {
    const store::Result row = conn.exec(R"sql(
SELECT p.live_generation,
       coalesce((SELECT min(c.last_global_position) FROM projection_checkpoints c
                  WHERE c.projection_name = p.projection_name AND c.generation = p.live_generation), 0),
       coalesce(p.building_generation, 0),
       coalesce((SELECT min(c.last_global_position) FROM projection_checkpoints c
                  WHERE c.projection_name = p.projection_name AND c.generation = p.building_generation), 0),
       coalesce((SELECT sum(c.events_processed) FROM projection_checkpoints c
                  WHERE c.projection_name = p.projection_name AND c.generation = p.building_generation), 0),
       coalesce(p.swap_requested_at::text, '')
  FROM projectiond_projections p WHERE p.projection_name = $1)sql",
                                        {name});
    Generations g;
    if (row.rows() == 1) {
        g.live_generation = row.int64(0, 0);
        g.live_position = row.int64(0, 1);
        g.building_generation = row.int64(0, 2);
        g.building_position = row.int64(0, 3);
        g.building_processed = row.int64(0, 4);
        g.swap_requested_at = std::string(row.text(0, 5));
    }
    return g;
}

// Appends one event every 10 ms and measures how long the live generation
// takes to pass it, until stopped.
class LatencyProbe {
public:
    LatencyProbe(const Database& db, const std::string& name)
        : thread_([this, &db, name] {
              store::Connection appender = db.connect();
              store::Connection watcher = db.connect();
              while (!stop_) {
                  const auto sent = Clock::now();
                  const auto range = store::append_demo_events(appender, 1, "User", "Identity");
                  while (!stop_ && generations(watcher, name).live_position < range.last_position) {
                      std::this_thread::sleep_for(1ms);
                  }
                  if (stop_) {
                      break;
                  }
                  {
                      std::lock_guard lock(mutex_);
                      samples_.push_back({sent, seconds_since(sent) * 1000.0});
                  }
                  std::this_thread::sleep_for(10ms);
              }
          }) {}
    LatencyProbe(const LatencyProbe&) = delete;
    LatencyProbe& operator=(const LatencyProbe&) = delete;
    ~LatencyProbe() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    // The latencies, in ms, of the events appended in [from, to), sorted.
    std::vector<double> between(Clock::time_point from, Clock::time_point to) const {
        std::lock_guard lock(mutex_);
        std::vector<double> out;
        for (const auto& [sent, ms] : samples_) {
            if (sent >= from && sent < to) {
                out.push_back(ms);
            }
        }
        std::sort(out.begin(), out.end());
        return out;
    }

private:
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::vector<std::pair<Clock::time_point, double>> samples_;
    std::thread thread_;
};

std::string percentiles(const std::vector<double>& sorted) {
    if (sorted.empty()) {
        return "no samples";
    }
    const auto at = [&](double q) {
        return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * static_cast<double>(sorted.size())))];
    };
    return fmt::format("p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms ({} appends)", at(0.50), at(0.99), sorted.back(),
                       sorted.size());
}

struct Round {
    double catch_up = 0; // s
    double rebuild = 0;  // s
    long long built = 0; // events the rebuild applied
    bool contains_old = false;
    long long more_rows = 0;
    std::vector<double> quiet, during, after; // latencies, ms, sorted
    std::string status_midway;
    std::optional<double> held_ms; // from the hold to the swap (none seen: shorter than a poll)
};

// One round: projection `name` caught up from the first event (the daemon
// started, or reloaded into it), then version 2 built beside it under the
// probe's appends until it is swapped in.
Round run_round(const Database& db, std::unique_ptr<Daemon>& daemon, const std::string& name, long long max_position) {
    Round round;
    store::Connection conn = db.connect();
    auto start = Clock::now();
    if (!daemon) {
        daemon = std::make_unique<Daemon>(db, users_yaml(name, 1), "rebuild");
    } else {
        daemon->write(users_yaml(name, 1));
        daemon->signal(SIGHUP);
    }
    while (generations(conn, name).live_position < max_position) {
        std::this_thread::sleep_for(20ms);
    }
    round.catch_up = seconds_since(start);

    LatencyProbe probe(db, name);
    const auto quiet_from = Clock::now();
    std::this_thread::sleep_for(5s); // samples of the live version alone
    const auto quiet_to = Clock::now();

    const long long live_before = generations(conn, name).live_generation;
    daemon->write(users_yaml(name, 2));
    start = Clock::now();
    daemon->signal(SIGHUP);
    std::string held_since;
    for (;;) {
        const Generations now = generations(conn, name);
        if (now.live_generation != live_before) {
            break;
        }
        if (!now.swap_requested_at.empty()) {
            held_since = now.swap_requested_at;
        }
        if (round.status_midway.empty() && now.building_generation != 0 && now.building_position >= max_position / 2) {
            round.status_midway = daemon->status(name);
        }
        std::this_thread::sleep_for(5ms);
    }
    const auto swapped = Clock::now();
    if (!held_since.empty()) {
        round.held_ms = std::stod(
            std::string(conn.exec("SELECT extract(epoch FROM g.live_since - $2::timestamptz) * 1000 "
                                  "FROM projectiond_generations g JOIN projectiond_projections p "
                                  "ON p.projection_name = g.projection_name AND g.generation = p.live_generation "
                                  "WHERE g.projection_name = $1",
                                  {name, held_since})
                            .text(0, 0)));
    }
    round.rebuild = seconds_since(start);
    round.built = conn.exec("SELECT sum(c.events_processed) FROM projection_checkpoints c "
                            "JOIN projectiond_projections p ON p.projection_name = c.projection_name "
                            "AND c.generation = p.live_generation WHERE c.projection_name = $1",
                            {name})
                      .int64(0, 0);
    std::this_thread::sleep_for(2s); // samples after the swap
    probe.stop();
    round.quiet = probe.between(quiet_from, quiet_to);
    round.during = probe.between(start, swapped);
    round.after = probe.between(swapped, Clock::now());
    // Version 2 has every row version 1 had when it retired, and the rows of
    // the events appended since.
    round.contains_old = conn.exec(fmt::format("SELECT NOT EXISTS (SELECT * FROM {0}_v1.users EXCEPT "
                                               "SELECT * FROM {0}.users)",
                                               name))
                             .boolean(0, 0);
    round.more_rows = conn.exec(fmt::format("SELECT (SELECT count(*) FROM {0}.users) - "
                                            "(SELECT count(*) FROM {0}_v1.users)",
                                            name))
                          .int64(0, 0);
    return round;
}

std::vector<double> merged(const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> out(a);
    out.insert(out.end(), b.begin(), b.end());
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

int main(int argc, char** argv) {
    const long long events = argc > 1 ? std::stoll(argv[1]) : 1000000;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Database db("bench_rebuild");
    store::Connection conn = db.connect();
    fmt::print("projectiond rebuild benchmark: {} events, PostgreSQL {} on a unix socket, {} cores\n", events,
               conn.exec("SHOW server_version").text(0, 0), std::thread::hardware_concurrency());
    const auto start = Clock::now();
    store::append_demo_events(conn, events, "User", "Identity");
    conn.exec("VACUUM ANALYZE events");
    const long long max_position = conn.exec("SELECT max(global_position) FROM events").int64(0, 0);
    fmt::print("  appended in {:.2f} s\n\n", seconds_since(start));

    // Two rounds, each a catch-up then a rebuild, so that a neighbour's load
    // on a shared machine shows as a difference between them.
    std::unique_ptr<Daemon> daemon;
    std::vector<Round> rounds;
    for (const char* name : {"users_a", "users_b"}) {
        rounds.push_back(run_round(db, daemon, name, max_position));
    }
    daemon->stop();

    fmt::print("throughput (batch_size 1000, one partition, an upsert handler):\n");
    double catch_up = 0;
    double rebuild = 0;
    long long built = 0;
    for (std::size_t i = 0; i < rounds.size(); ++i) {
        const Round& r = rounds[i];
        const double catch_up_rate = static_cast<double>(events) / r.catch_up;
        const double rebuild_rate = static_cast<double>(r.built) / r.rebuild;
        fmt::print("  round {}: {:<48} {:>7.2f} s {:>9.0f} events/s\n", i + 1,
                   "plain catch-up: version 1 from the first event", r.catch_up, catch_up_rate);
        fmt::print("  round {}: {:<48} {:>7.2f} s {:>9.0f} events/s {:>5.0f}% of the catch-up\n", i + 1,
                   "rebuild: version 2 beside it, SIGHUP to swap", r.rebuild, rebuild_rate,
                   100.0 * rebuild_rate / catch_up_rate);
        fmt::print("           the rebuild applied {} events ({} appended while it ran); version 2 {} every row "
                   "of version 1\n           and {} more (appended since the swap, or while the live one held "
                   "still before it)\n",
                   r.built, r.built - events, r.contains_old ? "has" : "LACKS", r.more_rows);
        fmt::print("           the live version held still for {} before the swap\n",
                   r.held_ms ? fmt::format("{:.0f} ms", *r.held_ms) : std::string("less than a 5 ms poll"));
        catch_up += r.catch_up;
        rebuild += r.rebuild;
        built += r.built;
    }
    const double catch_up_rate = static_cast<double>(events) * static_cast<double>(rounds.size()) / catch_up;
    const double rebuild_rate = static_cast<double>(built) / rebuild;
    fmt::print("  both rounds: catch-up {:.0f} events/s, rebuild {:.0f} events/s: {:.0f}% of the catch-up\n",
               catch_up_rate, rebuild_rate, 100.0 * rebuild_rate / catch_up_rate);

    fmt::print("\nappend-to-applied latency of the live version, one event every 10 ms, both rounds:\n");
    fmt::print("  {:<22} {}\n", "no rebuild:", percentiles(merged(rounds[0].quiet, rounds[1].quiet)));
    fmt::print("  {:<22} {}\n", "during the rebuild:", percentiles(merged(rounds[0].during, rounds[1].during)));
    fmt::print("  {:<22} {}\n", "after the swap:", percentiles(merged(rounds[0].after, rounds[1].after)));
    if (!rounds[0].status_midway.empty()) {
        fmt::print("\n`projectiond status users_a` halfway through its rebuild:\n{}", rounds[0].status_midway);
    }
    return 0;
}
