// Several `projectiond run` processes on this host sharing one database:
//
//   - catch-up of EVENTS events (default 400000) by 12 partitions (3
//     projections x 4), run by one daemon, then by three, in the same run;
//   - failover: with three daemons under continuous appends, the time from a
//     signal to one of them (kill -9, SIGSTOP, SIGTERM) until the others have
//     committed a batch on every partition it owned, with the default lease
//     (20 s) and with a short one (3 s).
//
//   bench/run [EVENTS]       or, alone: scripts/with-postgres build/bench/cluster [EVENTS]
//
// The daemon under test is $PROJECTIOND_BIN, else ../src/projectiond next to
// this program. Prints figures and ratios; it asserts nothing.
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
#include <iterator>
#include <map>
#include <set>
#include <sstream>
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

constexpr int projections = 3;
constexpr int partitions_each = 4;
constexpr int all_partitions = projections * partitions_each;

std::string projections_yaml(const std::string& prefix, const std::string& lease, const std::string& handler) {
    std::string yaml = lease.empty() ? "" : "daemon:\n  lease_timeout: " + lease + "\n";
    yaml += "defaults:\n  batch_size: 1000\nprojections:\n";
    for (int p = 0; p < projections; ++p) {
        yaml += fmt::format("  - name: {0}_p{1}\n    partitions: {2}\n    handlers:\n      \"*\": {3}\n", prefix, p,
                            partitions_each, fmt::format(fmt::runtime(handler), fmt::arg("table", fmt::format("{}_p{}", prefix, p)),
                                                         fmt::arg("projection", fmt::format("{}_p{}", prefix, p)),
                                                         fmt::arg("partitions", partitions_each)));
    }
    return yaml;
}

// ---------------------------------------------------------------- catch-up

struct CatchUp {
    double seconds = 0;
    double daemon_cpu = 0;
};

// `settled`: the projections start paused and are resumed once the daemons
// own their fair shares, so that only the steady state is timed (not the
// handovers while the daemons join one after the other).
CatchUp catch_up(const Database& db, const std::string& prefix, int daemons, long long last_position, bool settled,
                 const std::string& daemon_settings = "") {
    store::Connection conn = db.connect();
    for (int p = 0; p < projections; ++p) {
        conn.exec(fmt::format("CREATE TABLE {}_p{} (id text PRIMARY KEY, email text, name text)", prefix, p));
        if (settled) {
            conn.exec(fmt::format("INSERT INTO projectiond_projections (projection_name, paused) VALUES ('{}_p{}', true)",
                                  prefix, p));
        }
    }
    const std::string yaml =
        daemon_settings +
        projections_yaml(prefix, "",
                         "INSERT INTO {table} (id, email, name) VALUES (:aggregate_id, :payload.email, :payload.name) "
                         "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name");
    const std::string done_sql = fmt::format(
        "SELECT count(*) FILTER (WHERE last_global_position >= {}) FROM projection_checkpoints "
        "WHERE projection_name LIKE '{}\\_p%'",
        last_position, prefix);
    auto start = Clock::now();
    std::vector<std::unique_ptr<Daemon>> running;
    for (int i = 0; i < daemons; ++i) {
        running.push_back(std::make_unique<Daemon>(db, yaml, fmt::format("{}-{}", prefix, i)));
    }
    if (settled) {
        const std::string fair = fmt::format(R"sql(
SELECT count(*) FILTER (WHERE n = {}) = {} FROM (
    SELECT count(*) AS n FROM projection_checkpoints c JOIN projectiond_daemons d ON d.daemon_id = c.owner_daemon
     WHERE c.projection_name LIKE '{}\_p%' GROUP BY d.daemon_id) s)sql",
                                             all_partitions / daemons, daemons, prefix);
        while (conn.exec(fair).text(0, 0) != "t") {
            std::this_thread::sleep_for(50ms);
        }
        conn.exec(fmt::format("UPDATE projectiond_projections SET paused = false, resumed_at = clock_timestamp() "
                              "WHERE projection_name LIKE '{}\\_p%'",
                              prefix));
        conn.exec("SELECT pg_notify('projectiond_control', '')");
        start = Clock::now();
    }
    while (conn.exec(done_sql).int64(0, 0) < all_partitions) {
        std::this_thread::sleep_for(50ms);
    }
    CatchUp out;
    out.seconds = seconds_since(start);
    for (const auto& daemon : running) {
        out.daemon_cpu += daemon->cpu_seconds();
    }
    for (const auto& daemon : running) {
        daemon->stop();
    }
    return out;
}

// ---------------------------------------------------------------- failover

// Appends demo events from a thread of its own until destroyed.
class Appender {
public:
    explicit Appender(const Database& db) {
        thread_ = std::thread([this, &db] {
            store::Connection conn = db.connect();
            while (!stop_) {
                store::append_demo_events(conn, 4, "User", "Identity");
                std::this_thread::sleep_for(20ms);
            }
        });
    }
    Appender(const Appender&) = delete;
    Appender& operator=(const Appender&) = delete;
    ~Appender() {
        stop_ = true;
        thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

struct Failover {
    double first = -1; // the first lost partition committed by another daemon
    double all = -1;   // every lost partition committed by another daemon
    int lost = 0;
};

Failover failover(int signal, const std::string& lease) {
    Database db(fmt::format("bench_failover_{}_{}", signal, lease.empty() ? "default" : lease));
    store::Connection conn = db.connect();
    conn.exec("CREATE TABLE handled (projection text, partition int, position bigint, app text, "
              "at timestamptz NOT NULL)");
    const std::string yaml = projections_yaml(
        "f", lease,
        "INSERT INTO handled VALUES ('{projection}', projectiond_partition_of(:aggregate_id, {partitions}), "
        ":global_position, current_setting('application_name'), clock_timestamp())");
    Appender appender(db);
    std::vector<std::unique_ptr<Daemon>> daemons;
    for (int i = 0; i < 3; ++i) {
        daemons.push_back(std::make_unique<Daemon>(db, yaml, fmt::format("failover-{}-{}", signal, i)));
    }
    // Fair shares, and every partition has committed a batch.
    const auto settle = Clock::now();
    const std::string settled_sql = R"sql(
SELECT (SELECT string_agg(n::text, ',') FROM (SELECT count(*) AS n FROM projection_checkpoints
                                               WHERE owner_daemon IS NOT NULL GROUP BY owner_daemon) s) = '4,4,4'
   AND (SELECT bool_and(events_processed > 0) FROM projection_checkpoints))sql";
    while (conn.exec(settled_sql).text(0, 0) != "t") {
        if (seconds_since(settle) > 60) {
            throw std::runtime_error("the three daemons did not settle on 4 partitions each within 60 s");
        }
        std::this_thread::sleep_for(50ms);
    }
    std::this_thread::sleep_for(1s);

    const Daemon& victim = *daemons[1];
    const std::string id =
        std::string(conn.exec(fmt::format("SELECT daemon_id FROM projectiond_daemons WHERE pid = {}", victim.pid()))
                        .text(0, 0));
    const store::Result owned = conn.exec(
        "SELECT projection_name, partition_index FROM projection_checkpoints WHERE owner_daemon = " + id);
    std::set<std::pair<std::string, int>> lost;
    for (int row = 0; row < owned.rows(); ++row) {
        lost.insert({std::string(owned.text(row, 0)), static_cast<int>(owned.int64(row, 1))});
    }
    const std::string signalled_at = std::string(conn.exec("SELECT clock_timestamp()::text").text(0, 0));
    victim.signal(signal);

    // Per lost partition: when its first batch by another daemon was handled.
    const std::string back_sql = fmt::format(R"sql(
SELECT h.projection, h.partition, extract(epoch FROM min(h.at) - '{0}'::timestamptz)::float8
  FROM handled h
 WHERE h.at > '{0}'::timestamptz AND h.app NOT LIKE 'projectiond d{1} %'
 GROUP BY 1, 2)sql",
                                             signalled_at, id);
    Failover out;
    out.lost = static_cast<int>(lost.size());
    const auto start = Clock::now();
    while (seconds_since(start) < 90) {
        const store::Result back = conn.exec(back_sql);
        std::vector<double> times;
        for (int row = 0; row < back.rows(); ++row) {
            if (lost.contains({std::string(back.text(row, 0)), static_cast<int>(back.int64(row, 1))})) {
                times.push_back(std::stod(std::string(back.text(row, 2))));
            }
        }
        if (times.size() == lost.size()) {
            out.first = *std::min_element(times.begin(), times.end());
            out.all = *std::max_element(times.begin(), times.end());
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    daemons[1]->signal(SIGKILL);
    for (auto& daemon : daemons) {
        daemon->stop();
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    const long long events = argc > 1 ? std::stoll(argv[1]) : 400000;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        fmt::print("projectiond cluster benchmark: daemons on one host ({} cores), PostgreSQL {}, {}\n",
                   std::thread::hardware_concurrency(), open("postgres").exec("SHOW server_version").text(0, 0),
                   daemon_binary());
        {
            Database db("bench_cluster");
            store::Connection conn = db.connect();
            auto start = Clock::now();
            store::append_demo_events(conn, events, "User", "Identity");
            conn.exec("VACUUM ANALYZE events");
            const long long last = conn.exec("SELECT max(global_position) FROM events").int64(0, 0);
            // Read once, so that neither run pays for the first read from disk.
            conn.exec("SELECT count(*), sum(length(payload::text)) FROM events");
            fmt::print("  {} events appended in {:.1f} s\n\n", events, seconds_since(start));

            fmt::print("catch-up of {} events, 3 projections x 4 partitions, upsert handlers, batch_size 1000:\n",
                       events);
            const auto row = [&](const std::string& what, const CatchUp& run) {
                fmt::print("  {:<46} {:>6.1f} s {:>7.0f} events/s per projection, daemons' CPU {:>5.1f} s\n", what,
                           run.seconds, static_cast<double>(events) / run.seconds, run.daemon_cpu);
            };
            // Alternated, so that a drift of the machine (other load, the
            // table's pages) does not favour one side.
            const CatchUp one = catch_up(db, "one", 1, last, false);
            row("one daemon, started with the events waiting", one);
            const CatchUp three = catch_up(db, "three", 3, last, false);
            row("three daemons, started together", three);
            const CatchUp one_settled = catch_up(db, "one_settled", 1, last, true);
            row("one daemon, resumed once started", one_settled);
            const CatchUp three_settled = catch_up(db, "three_settled", 3, last, true);
            row("three daemons, resumed once 4/4/4", three_settled);
            const CatchUp again = catch_up(db, "again", 1, last, false);
            row("one daemon, started with the events waiting", again);
            const double one_mean = (one.seconds + again.seconds) / 2;
            fmt::print("  three daemons started together: {:.2f}x the speed of one (mean of its two runs)\n",
                       one_mean / three.seconds);
            fmt::print("  three daemons in the steady state: {:.2f}x the speed of one\n\n",
                       one_settled.seconds / three_settled.seconds);
        }

        fmt::print("failover, 3 daemons x 4 partitions, ~200 events/s appended: from the signal to the daemon\n"
                   "until the others have committed a batch on the partitions it owned\n");
        for (const std::string lease : {"", "3s"}) {
            for (const int signal : {SIGKILL, SIGSTOP, SIGTERM}) {
                const Failover f = failover(signal, lease);
                fmt::print("  {:<8} lease {:<12} first of {} partitions back after {:>5.2f} s, all after {:>5.2f} s\n",
                           signal == SIGKILL ? "kill -9" : signal == SIGSTOP ? "SIGSTOP" : "SIGTERM",
                           lease.empty() ? "20s (default)" : lease, f.lost, f.first, f.all);
            }
        }
    } catch (const std::exception& error) {
        fmt::print(stderr, "bench/cluster: {} (daemon logs in {})\n", error.what(), work_directory().string());
        return 1;
    }
    std::filesystem::remove_all(work_directory());
    return 0;
}
