// Several daemons sharing one database (SPEC section 10): fair shares, joins
// and leaves, kill -9, a daemon frozen mid-batch, rolling restarts, and one
// daemon running 200 partitions on 10 connections. Every multi-daemon test
// runs under continuous appends, with counters that are wrong if an event is
// applied twice (`n = n + 1`), and ends by checking them against the store.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "store/connection.hpp"
#include "store/demo_events.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int projection_count = 3;
constexpr int partitions_each = 4;
constexpr int all_partitions = projection_count * partitions_each;
// A short lease keeps the suite fast; one test proves the default (20 s).
constexpr const char* short_lease = "3s";
// The handler waits on this advisory lock when the gate table names its session.
constexpr int gate_lock = 4242;

// A measured figure, on stdout (doctest's MESSAGE would repeat with it every
// INFO of the test: the daemons' logs).
void figure(const std::string& text) {
    fmt::print("  figure: {}\n", text);
    std::fflush(stdout);
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string host_name() {
    char host[HOST_NAME_MAX + 1] = {};
    ::gethostname(host, sizeof host - 1);
    return host;
}

// The read model of the three projections p0..p2, created by the test rather
// than by `setup:` so that daemons starting together do not race to create it.
//   stats:   one non-idempotent counter per projection partition;
//   applied: how many times each projection applied each event (must be 1);
//   gate:    sessions (application_name patterns) whose batches wait on
//            gate_lock; `hide` also renames the session for the rest of the
//            batch, so that pg_terminate_backend by application_name misses it.
void create_read_model(const TestDatabase& db) {
    store::Connection conn = db.connect();
    conn.exec("CREATE TABLE stats (projection text, partition int, n bigint NOT NULL DEFAULT 0, "
              "PRIMARY KEY (projection, partition))");
    conn.exec("CREATE TABLE applied (projection text, position bigint, times int NOT NULL, "
              "PRIMARY KEY (projection, position))");
    conn.exec("CREATE TABLE gate (app text NOT NULL, hide boolean NOT NULL DEFAULT false)");
    conn.exec(fmt::format("INSERT INTO stats (projection, partition) SELECT 'p' || p, i "
                          "FROM generate_series(0, {}) p, generate_series(0, {}) i",
                          projection_count - 1, partitions_each - 1));
}

std::string cluster_config(const std::string& lease) {
    // Long enough for a batch to wait at the gate through a takeover on a
    // loaded machine (the defaults, 10 s and 30 s, would end it first).
    std::string yaml = "database:\n  lock_timeout: 120s\n  statement_timeout: 120s\n";
    if (!lease.empty()) {
        yaml += "daemon:\n  lease_timeout: " + lease + "\n";
    }
    yaml += "defaults:\n  batch_size: 20\n  poll_interval: 1s\nprojections:\n";
    for (int p = 0; p < projection_count; ++p) {
        yaml += fmt::format(R"(  - name: p{0}
    partitions: {1}
    handlers:
      "*":
        - SELECT set_config('application_name', 'frozen ' || current_setting('application_name'), true) FROM gate WHERE hide AND current_setting('application_name') LIKE gate.app
        - SELECT pg_advisory_xact_lock_shared({2}) FROM gate WHERE current_setting('application_name') LIKE gate.app OR current_setting('application_name') LIKE 'frozen ' || gate.app
        - UPDATE stats SET n = n + 1 WHERE projection = 'p{0}' AND partition = projectiond_partition_of(:aggregate_id, {1})
        - INSERT INTO applied VALUES ('p{0}', :global_position, 1) ON CONFLICT (projection, position) DO UPDATE SET times = applied.times + 1
)",
                            p, partitions_each, gate_lock);
    }
    return yaml;
}

// The events a projection applied more than once, or "".
std::string doubled(const TestDatabase& db) {
    return db.scalar("SELECT coalesce(string_agg(format('%s applied position %s %s times', projection, position, "
                     "times), '; '), '') FROM applied WHERE times <> 1");
}

// Empty when every counter equals the number of events of its partition and
// each projection applied each event exactly once; otherwise what differs.
std::string discrepancies(const TestDatabase& db) {
    const std::string counters = db.scalar(fmt::format(R"sql(
WITH expected AS (
    SELECT 'p' || p AS projection, projectiond_partition_of(e.aggregate_id, {1}) AS partition, count(*) AS n
      FROM events e, generate_series(0, {0}) p
     GROUP BY 1, 2)
SELECT coalesce(string_agg(format('%s/%s: counter %s but %s events', s.projection, s.partition, s.n,
                                  coalesce(x.n, 0)), '; '), '')
  FROM stats s LEFT JOIN expected x USING (projection, partition)
 WHERE s.n <> coalesce(x.n, 0))sql",
                                                       projection_count - 1, partitions_each));
    const std::string twice = doubled(db);
    const std::string missing = db.scalar(fmt::format(
        "SELECT coalesce(string_agg(format('%s never applied position %s', 'p' || p, e.global_position), '; '), '') "
        "FROM events e, generate_series(0, {}) p WHERE NOT EXISTS (SELECT 1 FROM applied a WHERE a.projection = "
        "'p' || p AND a.position = e.global_position)",
        projection_count - 1));
    std::string out;
    for (const auto* part : {&counters, &twice, &missing}) {
        if (!part->empty()) {
            out += (out.empty() ? "" : "; ") + *part;
        }
    }
    return out;
}

// The live daemon registered by process `pid` (0 when none).
long long daemon_id(const TestDatabase& db, int pid) {
    return db.number(fmt::format("SELECT coalesce(max(daemon_id), 0) FROM projectiond_daemons "
                                 "WHERE pid = {} AND lease_until > clock_timestamp()",
                                 pid));
}

// "pid:count,..." of the partitions each live daemon owns, in pid order; a
// partition with no live owner counts under pid 0.
std::string shares(const TestDatabase& db) {
    return db.scalar(R"sql(
SELECT coalesce(string_agg(pid || ':' || n, ',' ORDER BY pid), '')
  FROM (SELECT coalesce(d.pid, 0) AS pid, count(*) AS n
          FROM projection_checkpoints c
          LEFT JOIN projectiond_daemons d ON d.daemon_id = c.owner_daemon AND d.lease_until > clock_timestamp()
         GROUP BY 1) s)sql");
}

std::string expected_shares(std::vector<int> pids, int each) {
    std::sort(pids.begin(), pids.end());
    std::string out;
    for (const int pid : pids) {
        out += (out.empty() ? "" : ",") + fmt::format("{}:{}", pid, each);
    }
    return out;
}

// Appends demo events from a thread of its own until stopped: the daemons
// always have new work while a test joins, kills, freezes or restarts them.
class Appender {
public:
    Appender(const TestDatabase& db, int per_round = 2, std::chrono::milliseconds every = 20ms) {
        thread_ = std::thread([this, &db, per_round, every] {
            try {
                store::Connection conn = db.connect();
                while (!stop_) {
                    appended_ += store::append_demo_events(conn, per_round, "User", "Identity").count;
                    std::this_thread::sleep_for(every);
                }
            } catch (const std::exception& error) {
                std::lock_guard lock(mutex_);
                failure_ = error.what();
            }
        });
    }
    Appender(const Appender&) = delete;
    Appender& operator=(const Appender&) = delete;
    ~Appender() { stop(); }

    // Stops appending; returns how many events it appended.
    long long stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        return appended_;
    }
    std::string failure() const {
        std::lock_guard lock(mutex_);
        return failure_;
    }

private:
    std::atomic<bool> stop_{false};
    std::atomic<long long> appended_{0};
    mutable std::mutex mutex_;
    std::string failure_;
    std::thread thread_;
};

// Daemons sharing one test database, the three counting projections, and an
// appender running from the start.
class Cluster {
public:
    explicit Cluster(const std::string& lease = short_lease, long long initial_events = 2000)
        : yaml_(cluster_config(lease)) {
        create_read_model(db_);
        append(db_, initial_events);
        appender_ = std::make_unique<Appender>(db_);
    }
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;
    // PROJECTIOND_TEST_SHOW_LOGS=1 prints the daemons' logs of passing tests too.
    ~Cluster() {
        if (std::getenv("PROJECTIOND_TEST_SHOW_LOGS") != nullptr) {
            fmt::print("{}", logs());
        }
    }

    TestDatabase& db() { return db_; }
    const std::string& yaml() const { return yaml_; }
    DaemonProcess& daemon(std::size_t i) { return *daemons_.at(i); }
    std::size_t size() const { return daemons_.size(); }

    DaemonProcess& start() {
        daemons_.push_back(std::make_unique<DaemonProcess>(db_, yaml_));
        return *daemons_.back();
    }
    // Starts daemon i again after it exited, keeping the log of its last run.
    void restart(std::size_t i) {
        history_ += fmt::format("--- daemon {} (pid {}), an earlier run:\n{}\n", i, daemon(i).process().pid(),
                                daemon(i).log());
        daemon(i).restart();
    }
    std::vector<int> pids(const std::set<std::size_t>& except = {}) {
        std::vector<int> out;
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            if (!except.contains(i)) {
                out.push_back(daemons_[i]->process().pid());
            }
        }
        return out;
    }
    // Waits until the given daemons (all by default) own every partition,
    // `each` apiece. Seconds it took, or a negative number on timeout.
    double wait_for_shares(int each, std::chrono::milliseconds timeout, const std::set<std::size_t>& except = {}) {
        const auto start = Clock::now();
        const std::string wanted = expected_shares(pids(except), each);
        if (!wait_until([&] { return shares(db_) == wanted; }, timeout, 50ms)) {
            last_shares_ = shares(db_);
            return -1;
        }
        return seconds_since(start);
    }
    std::string last_shares() const { return last_shares_; }

    std::string logs() const {
        std::string out = history_;
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            out += fmt::format("--- daemon {} (pid {}):\n{}\n", i, daemons_[i]->process().pid(), daemons_[i]->log());
        }
        return out;
    }

    // Stops appending, waits until every partition has caught up, stops the
    // running daemons with SIGTERM and checks every counter against the store.
    void finish() {
        const long long appended = appender_->stop();
        CHECK(appender_->failure() == "");
        CHECK(appended > 0);
        for (int p = 0; p < projection_count; ++p) {
            CHECK(caught_up(db_, fmt::format("p{}", p), 90s, partitions_each));
        }
        for (auto& daemon : daemons_) {
            if (daemon->process().running()) {
                CHECK(daemon->stop(SIGTERM) == 0);
            }
        }
        const long long events = db_.number("SELECT count(*) FROM events");
        figure(fmt::format("{} events ({} appended while the test ran), {} per projection applied", events, appended,
                            db_.number("SELECT sum(n) FROM stats WHERE projection = 'p0'")));
        CHECK(discrepancies(db_) == "");
        for (int p = 0; p < projection_count; ++p) {
            CHECK(db_.number(fmt::format("SELECT sum(n) FROM stats WHERE projection = 'p{}'", p)) == events);
        }
    }

private:
    TestDatabase db_;
    std::string yaml_;
    std::unique_ptr<Appender> appender_;
    std::vector<std::unique_ptr<DaemonProcess>> daemons_;
    std::string history_;
    std::string last_shares_;
};

// Sessions of daemon `id` waiting on the gate lock (renamed or not).
long long sessions_at_gate(const TestDatabase& db, long long id) {
    return db.number(fmt::format(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND wait_event = 'advisory' AND (application_name LIKE 'projectiond d{0} %' OR application_name LIKE "
        "'frozen projectiond d{0} %')",
        id));
}

long long sessions_of(const TestDatabase& db, const std::string& pattern) {
    return db.number("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                     "application_name LIKE '" +
                     pattern + "'");
}

std::string server_log() {
    const char* path = std::getenv("PROJECTIOND_TEST_PGLOG");
    REQUIRE(path != nullptr);
    std::ifstream file(path);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

std::size_t occurrences(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) {
        ++count;
    }
    return count;
}

} // namespace

TEST_SUITE("cluster") {
    TEST_CASE("three daemons converge to a fair share of 12 partitions, 4 each, within 20 s") {
        Cluster cluster;
        INFO(cluster.logs());
        const auto started = Clock::now();
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        const double converged = cluster.wait_for_shares(4, 20s);
        INFO("shares at the timeout: " << cluster.last_shares());
        REQUIRE(converged >= 0);
        figure(fmt::format("4/4/4 reached {:.1f} s after the three daemons were started", seconds_since(started)));
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(cluster.daemon(i).wait_ready(10s));
        }
        // Stable: nobody takes a partition from anybody once the shares are fair.
        const std::string fair = shares(cluster.db());
        const long long epochs = cluster.db().number("SELECT sum(owner_epoch) FROM projection_checkpoints");
        CHECK_FALSE(wait_until([&] { return shares(cluster.db()) != fair; }, 3s, 100ms));
        CHECK(cluster.db().number("SELECT sum(owner_epoch) FROM projection_checkpoints") == epochs);
        cluster.finish();
    }

    TEST_CASE("kill -9 of one of three daemons: the other two take its partitions within 30 s (default lease)") {
        Cluster cluster(""); // lease_timeout left at its default, 20 s
        INFO(cluster.logs());
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
        const long long victim = daemon_id(cluster.db(), cluster.daemon(2).process().pid());
        const auto killed = Clock::now();
        cluster.daemon(2).process().signal(SIGKILL);
        REQUIRE(cluster.daemon(2).process().wait_for_exit(10s) == 128 + SIGKILL);
        const double taken = cluster.wait_for_shares(6, 30s, {2});
        INFO("shares at the timeout: " << cluster.last_shares());
        REQUIRE(taken >= 0);
        const double failover = seconds_since(killed);
        figure(fmt::format("kill -9 to 6/6: {:.1f} s with the default 20 s lease", failover));
        CHECK(failover < 30.0);
        CHECK((cluster.daemon(0).log() + cluster.daemon(1).log())
                  .find(fmt::format("daemon {} stopped renewing its lease", victim)) != std::string::npos);
        // The survivors committed batches on the partitions they took over.
        const long long moved_on = max_position(cluster.db());
        for (int p = 0; p < projection_count; ++p) {
            CHECK(wait_until([&] { return checkpoint(cluster.db(), fmt::format("p{}", p)) >= moved_on; }, 30s));
        }
        cluster.finish();
    }

    TEST_CASE("SIGSTOP mid-batch for longer than the lease: the others take over and end the frozen batch's "
              "session, the daemon learns it lost its lease at SIGCONT and rejoins, nothing doubled") {
        Cluster cluster;
        INFO(cluster.logs());
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
        TestDatabase& db = cluster.db();
        const int pid = cluster.daemon(1).process().pid();
        const long long victim = daemon_id(db, pid);
        store::Connection gate = db.connect();
        gate.exec(fmt::format("SELECT pg_advisory_lock({})", gate_lock));
        gate.exec(fmt::format("INSERT INTO gate (app) VALUES ('projectiond d{} %')", victim));
        REQUIRE(wait_until([&] { return sessions_at_gate(db, victim) > 0; }, 10s));

        const auto frozen = Clock::now();
        cluster.daemon(1).process().signal(SIGSTOP);
        const double taken = cluster.wait_for_shares(6, 20s, {1});
        INFO("shares at the timeout: " << cluster.last_shares());
        REQUIRE(taken >= 0);
        figure(fmt::format("SIGSTOP to 6/6: {:.1f} s with a {} lease", seconds_since(frozen), short_lease));
        // The daemon that took over ended the frozen daemon's sessions: the
        // batch waiting at the gate was rolled back by the server.
        CHECK(wait_until([&] { return sessions_of(db, fmt::format("projectiond d{} %", victim)) == 0; }, 5s));
        CHECK(sessions_at_gate(db, victim) == 0);
        gate.exec("DELETE FROM gate");
        gate.exec(fmt::format("SELECT pg_advisory_unlock({})", gate_lock));
        CHECK(doubled(db) == "");

        cluster.daemon(1).process().signal(SIGCONT);
        CHECK(cluster.daemon(1).wait_for_log("this daemon's lease ran out", 15s));
        CHECK(cluster.daemon(1).process().running());
        // It rejoins under a new id and gets its fair share back.
        const double rejoined = cluster.wait_for_shares(4, 20s);
        INFO("shares at the timeout: " << cluster.last_shares());
        CHECK(rejoined >= 0);
        CHECK(daemon_id(db, pid) != victim);
        cluster.finish();
    }

    TEST_CASE("a batch still running when its daemon's partitions are taken over is refused at its checkpoint "
              "(PJ005): fencing holds even when its session survives") {
        Cluster cluster;
        INFO(cluster.logs());
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
        TestDatabase& db = cluster.db();
        const int pid = cluster.daemon(1).process().pid();
        const long long victim = daemon_id(db, pid);
        store::Connection gate = db.connect();
        gate.exec(fmt::format("SELECT pg_advisory_lock({})", gate_lock));
        // `hide`: the batch renames its session, so the daemon taking over
        // cannot end it (as when it lacks the right to signal it).
        gate.exec(fmt::format("INSERT INTO gate (app, hide) VALUES ('projectiond d{} %', true)", victim));
        REQUIRE(wait_until([&] { return sessions_at_gate(db, victim) > 0; }, 10s));

        cluster.daemon(1).process().signal(SIGSTOP);
        const long long at_stop = max_position(db);
        const double taken = cluster.wait_for_shares(6, 20s, {1});
        INFO("shares at the timeout: " << cluster.last_shares());
        REQUIRE(taken >= 0);
        // The new owners applied the frozen batches' events themselves.
        for (int p = 0; p < projection_count; ++p) {
            REQUIRE(wait_until([&] { return checkpoint(db, fmt::format("p{}", p)) >= at_stop; }, 30s));
        }
        // Still waiting at the gate, still able to try to commit.
        const std::vector<std::string> frozen = [&] {
            std::vector<std::string> pids;
            const store::Result rows = gate.exec(fmt::format(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' "
                "AND application_name LIKE 'frozen projectiond d{} %'",
                victim));
            for (int row = 0; row < rows.rows(); ++row) {
                pids.emplace_back(rows.text(row, 0));
            }
            return pids;
        }();
        REQUIRE_FALSE(frozen.empty());
        figure(fmt::format("{} batch(es) of the frozen daemon still open after the takeover", frozen.size()));

        // Let them run: handlers, checkpoint and COMMIT are already in the
        // server's hands (one pipeline); the daemon itself is still stopped.
        gate.exec(fmt::format("SELECT pg_advisory_unlock({})", gate_lock));
        CHECK(wait_until([&] { return sessions_at_gate(db, victim) == 0; }, 10s));
        // Each was refused by the checkpoint's fencing (SQLSTATE PJ005),
        // logged by the server under the session's pid.
        const auto refused = [&](const std::string& backend) {
            std::istringstream log(server_log());
            for (std::string line; std::getline(log, line);) {
                if (contains(line, "[" + backend + "] ERROR:") && contains(line, "is no longer owned by this daemon")) {
                    return true;
                }
            }
            return false;
        };
        for (const std::string& backend : frozen) {
            CHECK_MESSAGE(wait_until([&] { return refused(backend); }, 10s),
                          "no refusal logged for backend " << backend);
        }
        gate.exec("DELETE FROM gate");
        // Nothing the frozen batches did survived.
        CHECK(doubled(db) == "");

        cluster.daemon(1).process().signal(SIGCONT);
        CHECK(cluster.daemon(1).wait_for_log("lost this partition", 15s));
        CHECK(cluster.daemon(1).wait_for_log("this daemon's lease ran out", 15s));
        const double rejoined = cluster.wait_for_shares(4, 20s);
        INFO("shares at the timeout: " << cluster.last_shares());
        CHECK(rejoined >= 0);
        cluster.finish();
    }

    TEST_CASE("a rolling restart of three daemons hands partitions over in seconds, not a lease, and applies "
              "nothing twice") {
        Cluster cluster(""); // the default 20 s lease: a handover that waited for it would show
        INFO(cluster.logs());
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
        for (std::size_t i = 0; i < 3; ++i) {
            const auto stopping = Clock::now();
            REQUIRE(cluster.daemon(i).stop(SIGTERM) == 0);
            CHECK(contains(cluster.daemon(i).log(), "gave every partition back"));
            const double handed = cluster.wait_for_shares(6, 20s, {i});
            INFO("shares at the timeout: " << cluster.last_shares());
            REQUIRE(handed >= 0);
            const double handover = seconds_since(stopping);
            figure(fmt::format("daemon {}: SIGTERM to 6/6 in {:.1f} s", i, handover));
            CHECK(handover < 8.0);
            const auto restarted = Clock::now();
            cluster.restart(i);
            REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
            figure(fmt::format("daemon {}: restart to 4/4/4 in {:.1f} s", i, seconds_since(restarted)));
        }
        CHECK_FALSE(contains(cluster.logs(), "stopped renewing"));
        cluster.finish();
    }

    TEST_CASE("a fourth daemon joining re-balances to 3 partitions each within 20 s") {
        Cluster cluster;
        INFO(cluster.logs());
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
        const auto joined = Clock::now();
        cluster.start();
        const double balanced = cluster.wait_for_shares(3, 20s);
        INFO("shares at the timeout: " << cluster.last_shares());
        REQUIRE(balanced >= 0);
        figure(fmt::format("fourth daemon started to 3/3/3/3 in {:.1f} s", seconds_since(joined)));
        CHECK(contains(cluster.daemon(3).log(), "this daemon runs 3 of 12 partitions (4 daemons sharing them, fair "
                                                "share 3)"));
        cluster.finish();
    }

    TEST_CASE("status and status --json show each partition's owner and the live daemons with their share") {
        Cluster cluster;
        INFO(cluster.logs());
        for (int i = 0; i < 3; ++i) {
            cluster.start();
        }
        REQUIRE(cluster.wait_for_shares(4, 20s) >= 0);
        const TempFile config(cluster.yaml());
        const std::string host = host_name();
        const auto status = [&](bool json) {
            std::vector<std::string> argv{projectiond_binary(), "-c", config.path(), "--database-url",
                                          cluster.db().conninfo(), "status"};
            if (json) {
                argv.emplace_back("--json");
            }
            return run_command(argv);
        };
        const auto check_shares = [&](const std::vector<int>& pids, int each) {
            const CommandResult json_run = status(true);
            INFO("status --json:\n" << json_run.out << json_run.err);
            REQUIRE(json_run.exit_code == 0);
            const nlohmann::json doc = nlohmann::json::parse(json_run.out);
            std::map<std::string, int> owners;
            for (const auto& item : doc.at("projections")) {
                REQUIRE(item.at("owner").is_string());
                ++owners[item.at("owner").get<std::string>()];
            }
            CHECK(doc.at("projections").size() == static_cast<std::size_t>(all_partitions));
            CHECK(owners.size() == pids.size());
            for (const int pid : pids) {
                CHECK(owners[fmt::format("{} pid {}", host, pid)] == each);
            }
            REQUIRE(doc.at("daemons").size() == pids.size());
            for (const auto& daemon : doc.at("daemons")) {
                CHECK(daemon.at("host") == host);
                CHECK(std::find(pids.begin(), pids.end(), daemon.at("pid").get<int>()) != pids.end());
                CHECK(daemon.at("partitions") == each);
                CHECK(daemon.at("lease_seconds_left").get<double>() > 0);
            }
            const std::string version = doc.at("daemons").at(0).at("version").get<std::string>();

            const CommandResult text = status(false);
            INFO("status:\n" << text.out << text.err);
            CHECK(text.exit_code == 0);
            CHECK(occurrences(text.out, "\nRun by: ") == static_cast<std::size_t>(all_partitions));
            CHECK(contains(text.out, fmt::format("\nDaemons sharing the work: {}\n", pids.size())));
            for (const int pid : pids) {
                CHECK(occurrences(text.out, fmt::format("\nRun by: {} pid {}\n", host, pid)) ==
                      static_cast<std::size_t>(each));
                CHECK(contains(text.out,
                               fmt::format("\n  {} pid {} (projectiond {}): {} partitions\n", host, pid, version, each)));
            }
        };
        check_shares(cluster.pids(), 4);
        // One leaves: the list follows at once.
        REQUIRE(cluster.daemon(0).stop(SIGTERM) == 0);
        REQUIRE(cluster.wait_for_shares(6, 20s, {0}) >= 0);
        check_shares(cluster.pids({0}), 6);
        cluster.finish();
    }

    TEST_CASE("200 partitions on max_connections 10: never more than 10 connections, every partition catches "
              "up, a new event on each is applied within a second") {
        constexpr int projections = 20;
        constexpr int partitions = 10;
        TestDatabase db;
        {
            store::Connection conn = db.connect();
            conn.exec("CREATE TABLE got (projection text, position bigint, at timestamptz NOT NULL, times int NOT "
                      "NULL, PRIMARY KEY (projection, position))");
        }
        append(db, 4000);
        // A minute's poll_interval: a partition its wake-up missed would wait
        // that long, well past the bounded waits below.
        std::string yaml =
            "daemon:\n  max_connections: 10\ndefaults:\n  batch_size: 100\n  poll_interval: 60s\nprojections:\n";
        for (int p = 0; p < projections; ++p) {
            yaml += fmt::format(R"(  - name: q{0:02}
    partitions: {1}
    handlers:
      "*": INSERT INTO got VALUES ('q{0:02}', :global_position, clock_timestamp(), 1) ON CONFLICT (projection, position) DO UPDATE SET times = got.times + 1
)",
                                p, partitions);
        }

        // Sampled from the daemon's start to its stop: every session it has
        // (the setup one, the coordinator, the pool), by application_name.
        std::atomic<bool> sampling{true};
        std::atomic<long long> most{0};
        std::atomic<long long> samples{0};
        std::string sampler_failure;
        std::thread sampler([&] {
            try {
                store::Connection conn = db.connect();
                while (sampling) {
                    const long long open =
                        conn.exec("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                  "application_name LIKE 'projectiond %' AND application_name <> 'projectiond tests'")
                            .int64(0, 0);
                    most = std::max(most.load(), open);
                    ++samples;
                    std::this_thread::sleep_for(5ms);
                }
            } catch (const std::exception& error) {
                sampler_failure = error.what();
            }
        });
        struct StopSampling {
            std::atomic<bool>& flag;
            std::thread& thread;
            ~StopSampling() {
                flag = false;
                if (thread.joinable()) {
                    thread.join();
                }
            }
        } stop_sampling{sampling, sampler};

        DaemonProcess daemon(db, yaml);
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(daemon.wait_ready(60s));
        const auto catching_up = Clock::now();
        for (int p = 0; p < projections; ++p) {
            REQUIRE(caught_up(db, fmt::format("q{:02}", p), 120s, partitions));
        }
        figure(fmt::format("200 partitions caught up with 4000 events in {:.1f} s after ready",
                            seconds_since(catching_up)));
        CHECK(db.number("SELECT count(*) FROM projection_checkpoints") == projections * partitions);
        CHECK(db.number("SELECT count(*) FROM got") == 4000LL * projections);

        // One new event per partition, one at a time: each of the 20
        // projections' partition i applies it. Latency: from the appending
        // transaction's start (created_at) to the handler's clock.
        const auto latencies_of = [&](const std::string& positions) {
            std::vector<double> out;
            const store::Result rows = db.connect().exec(
                "SELECT extract(epoch FROM g.at - e.created_at)::float8 FROM got g JOIN events e ON "
                "e.global_position = g.position WHERE g.position = ANY ('{" +
                positions + "}'::bigint[])");
            for (int row = 0; row < rows.rows(); ++row) {
                out.push_back(std::stod(std::string(rows.text(row, 0))));
            }
            return out;
        };
        std::vector<double> one_by_one;
        for (int partition = 0; partition < partitions; ++partition) {
            const std::string position = db.scalar(fmt::format(
                "SELECT global_position FROM append_events('Identity', 'User', (SELECT 'late-' || g FROM "
                "generate_series(1, 1000) g WHERE projectiond_partition_of('late-' || g, {0}) = {1} LIMIT 1), 0, "
                "'[{{\"event_type\": \"UserCreated\", \"payload\": {{}}}}]')",
                partitions, partition));
            REQUIRE(wait_until(
                [&] { return db.number("SELECT count(*) FROM got WHERE position = " + position) == projections; },
                10s, 5ms));
            const auto latencies = latencies_of(position);
            one_by_one.insert(one_by_one.end(), latencies.begin(), latencies.end());
        }
        // Then one append that wakes all 200 partitions at once.
        const std::string burst = db.scalar(fmt::format(R"sql(
SELECT string_agg(a.global_position::text, ',')
  FROM (SELECT DISTINCT ON (projectiond_partition_of('burst-' || g, {0})) 'burst-' || g AS id
          FROM generate_series(1, 1000) g
         ORDER BY projectiond_partition_of('burst-' || g, {0}), g) ids,
       LATERAL append_events('Identity', 'User', ids.id, 0,
                             '[{{"event_type": "UserCreated", "payload": {{}}}}]') a)sql",
                                                        partitions));
        REQUIRE(wait_until(
            [&] {
                return db.number("SELECT count(*) FROM got WHERE position = ANY ('{" + burst + "}'::bigint[])") ==
                       projections * partitions;
            },
            10s, 5ms));
        const std::vector<double> together = latencies_of(burst);

        CHECK(one_by_one.size() == static_cast<std::size_t>(projections * partitions));
        CHECK(together.size() == static_cast<std::size_t>(projections * partitions));
        const auto summary = [](std::vector<double> values) {
            std::sort(values.begin(), values.end());
            return fmt::format("p50 {:.0f} ms, p99 {:.0f} ms, max {:.0f} ms", 1000 * values[values.size() / 2],
                               1000 * values[values.size() * 99 / 100], 1000 * values.back());
        };
        figure("new event per partition, one at a time: " + summary(one_by_one));
        figure("one append reaching all 200 partitions: " + summary(together));
        // Typically well under a second; the tail is a figure (a loaded
        // machine stretches it), while a missed wake-up would have failed the
        // waits above.
        const auto median = [](std::vector<double> values) {
            std::sort(values.begin(), values.end());
            return values[values.size() / 2];
        };
        CHECK(median(one_by_one) < 1.0);
        CHECK(median(together) < 1.0);

        CHECK(daemon.stop(SIGTERM) == 0);
        sampling = false;
        sampler.join();
        CHECK(sampler_failure == "");
        figure(fmt::format("most connections of the daemon seen at once: {} ({} samples)", most.load(),
                            samples.load()));
        CHECK(samples > 100);
        CHECK(most >= 2);
        CHECK(most <= 10);
        CHECK(db.number("SELECT count(*) FROM got WHERE times <> 1") == 0);
    }

    TEST_CASE("a daemon idle on a store of 300k events costs the server next to nothing and still picks a new "
              "event up within a second") {
        // The daemon watches the store every 100 ms (appends send no
        // notification): each look must be an index probe, not a scan of the
        // events table, or an idle daemon keeps the server busy and its
        // latency grows with the store.
        TestDatabase db;
        {
            // Checkpoints of projections since taken out of the
            // configuration, left 300k events behind: the daemon's lag
            // sample must not count for them every few seconds.
            append(db, 10);
            DaemonProcess retired(db, R"(projections:
  - {name: retired_a, log: true, partitions: 16}
  - {name: retired_b, log: true, partitions: 16}
)");
            INFO("log of the retired projections' daemon:\n" << retired.log());
            REQUIRE(caught_up(db, "retired_a", 30s, 16));
            REQUIRE(caught_up(db, "retired_b", 30s, 16));
            REQUIRE(retired.stop(SIGTERM) == 0);
        }
        {
            store::Connection conn = db.connect();
            store::append_demo_events(conn, 300000, "User", "Identity");
            conn.exec("VACUUM ANALYZE events");
            conn.exec("CREATE TABLE probes (position bigint PRIMARY KEY, at timestamptz NOT NULL)");
        }
        DaemonProcess daemon(db, R"(projections:
  - name: probe
    handlers:
      Probe: INSERT INTO probes VALUES (:global_position, clock_timestamp())
)");
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(daemon.wait_ready(60s));
        REQUIRE(caught_up(db, "probe", 120s));

        // CPU time of the PostgreSQL backends serving the daemon, from /proc
        // (the throwaway cluster runs on this machine).
        const auto backend_ticks = [&] {
            long long ticks = 0;
            const store::Result pids = db.connect().exec(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE "
                "'projectiond d%'");
            for (int row = 0; row < pids.rows(); ++row) {
                std::ifstream stat(fmt::format("/proc/{}/stat", pids.text(row, 0)));
                const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
                std::istringstream fields(text.substr(text.rfind(')') + 2));
                std::vector<std::string> values((std::istream_iterator<std::string>(fields)),
                                                std::istream_iterator<std::string>());
                if (values.size() > 12) {
                    ticks += std::stoll(values[11]) + std::stoll(values[12]); // utime, stime
                }
            }
            return ticks;
        };
        const long long before = backend_ticks();
        const auto idle_from = Clock::now();
        std::this_thread::sleep_for(5s); // measuring idleness: nothing to wait for
        const double server_percent = 100.0 * static_cast<double>(backend_ticks() - before) /
                                      static_cast<double>(::sysconf(_SC_CLK_TCK)) / seconds_since(idle_from);
        figure(fmt::format("store of 300k events, idle daemon: its PostgreSQL sessions use {:.1f}% of a core",
                           server_percent));

        std::vector<double> latencies;
        for (int i = 0; i < 5; ++i) {
            const auto sent = Clock::now();
            const std::string position =
                db.scalar(fmt::format("SELECT global_position FROM append_events('C', 'Probe', 'probe-{}', 0, "
                                      "'[{{\"event_type\": \"Probe\", \"payload\": {{}}}}]')",
                                      i));
            const double append = seconds_since(sent);
            REQUIRE(wait_until(
                [&] { return db.number("SELECT count(*) FROM probes WHERE position = " + position) == 1; }, 10s, 5ms));
            latencies.push_back(std::stod(db.scalar(
                "SELECT extract(epoch FROM p.at - e.created_at)::float8 FROM probes p JOIN events e ON "
                "e.global_position = p.position WHERE p.position = " +
                position)));
            figure(fmt::format("store of 300k events: appending one event took {:.0f} ms, it was applied {:.0f} ms "
                               "after the append began",
                               1000 * append, 1000 * latencies.back()));
        }
        // Well above what a probe-per-watch costs (a few %), well below a
        // scan of the store per watch (over 30 % here).
        CHECK(server_percent < 10.0);
        CHECK(*std::max_element(latencies.begin(), latencies.end()) < 1.0);
        CHECK(daemon.stop(SIGTERM) == 0);
    }
}
