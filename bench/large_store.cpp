// Cost as the store grows: the time of `projectiond status` and the catch-up
// rate of the newest TAIL events, on a store of TAIL events and, in the same
// database grown to EVENTS, on a store of EVENTS.
//
//   bench/large_store [EVENTS [TAIL]]   (default 5000000 and 200000, or
//                                       $PROJECTIOND_BENCH_LARGE_STORE events;
//                                       needs a PostgreSQL reached through PG*)
//
// The store is filled with set-based INSERT ... SELECT generate_series
// statements (the triggers fire per row: a few minutes for 5M events). Each
// catch-up runs a per-event upsert handler and a batch handler over the same
// events, and checks that their read models are equal.
#include "config/loader.hpp"
#include "in_process.hpp"
#include "store/connect.hpp"
#include "store/demo_events.hpp"
#include "store/generations.hpp"
#include "store/migrations.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

const char* const per_event_yaml = R"(  - name: {name}
    setup: CREATE TABLE IF NOT EXISTS {name} (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated: |
        INSERT INTO {name} (id, email, name) VALUES (:aggregate_id, :payload.email, :payload.name)
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
)";

const char* const batch_yaml = R"(  - name: {name}
    setup: CREATE TABLE IF NOT EXISTS {name} (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated:
        batch: |
          INSERT INTO {name} (id, email, name)
          SELECT DISTINCT ON (aggregate_id) aggregate_id, payload->>'email', payload->>'name'
            FROM batch ORDER BY aggregate_id, batch_ordinal DESC
          ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
)";

// Handles an event type the store does not hold: its catch-up is all windowed
// reads that find nothing, each one passing the next window of events.
const char* const selective_yaml = R"(  - name: {name}
    handlers:
      NeverAppended: SELECT 1
)";

std::string projection_yaml(const char* text, const std::string& name) {
    return fmt::format(fmt::runtime(text), fmt::arg("name", name));
}

std::string config_yaml(const std::string& projections) {
    return "defaults:\n  batch_size: 1000\nprojections:\n" + projections;
}

struct Store {
    std::string dbname;
    store::ConnectOptions connect;

    store::Connection open() const { return store::Connection::open(connect); }

    // Catches a projection up from just after `after` to `target`; returns seconds.
    double catch_up(const std::string& projection, std::int64_t after, std::int64_t target) const {
        const auto config = config::parse_config(config_yaml(projection), "bench.yaml");
        const std::string& name = config.projections.front().name;
        {
            store::Connection conn = open();
            store::register_projection(conn, name, 1);
            if (after > 0) {
                // Start where the events to catch up begin (appended in one
                // session, so reading order is position order).
                conn.exec("UPDATE projection_checkpoints c SET (cursor_store_epoch, cursor_transaction_id, "
                          "cursor_global_position, last_global_position) = (SELECT store_epoch, transaction_id, "
                          "global_position, global_position FROM events WHERE global_position = $1::bigint) "
                          "WHERE projection_name = $2",
                          {std::to_string(after), name});
            }
        }
        const auto start = Clock::now();
        bench::InProcessDaemon engine(connect, config);
        while (engine.lowest(name) < target) {
            std::this_thread::sleep_for(200us);
        }
        return seconds_since(start);
    }

    bool equal(const std::string& a, const std::string& b) const {
        return open()
            .exec(fmt::format("SELECT NOT EXISTS (SELECT * FROM {0} EXCEPT SELECT * FROM {1}) AND "
                              "NOT EXISTS (SELECT * FROM {1} EXCEPT SELECT * FROM {0})",
                              a, b))
            .boolean(0, 0);
    }

    long long rows(const std::string& table) const { return open().exec("SELECT count(*) FROM " + table).int64(0, 0); }
};

// `projectiond status` as an operator runs it: the process, its connection,
// its queries. Returns the median of five runs in milliseconds and the
// output of the last.
std::pair<double, std::string> time_status(const Store& store, const std::string& config_path) {
    const std::string command = fmt::format("{} -c {} --database-url dbname={} status 2>&1", PROJECTIOND_BENCH_BINARY,
                                            config_path, store.dbname);
    std::vector<double> times;
    std::string output;
    for (int run = 0; run < 5; ++run) {
        output.clear();
        const auto start = Clock::now();
        FILE* pipe = ::popen(command.c_str(), "r");
        if (pipe == nullptr) {
            throw std::runtime_error("cannot run " + command);
        }
        std::array<char, 4096> buffer{};
        while (const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) {
            output.append(buffer.data(), n);
        }
        const int status = ::pclose(pipe);
        times.push_back(seconds_since(start) * 1000.0);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) > 1) {
            throw std::runtime_error(fmt::format("`{}` failed:\n{}", command, output));
        }
    }
    std::sort(times.begin(), times.end());
    return {times[2], output};
}

// The output's "Status:" lines, indented.
std::string status_lines(const std::string& output) {
    std::string lines;
    std::size_t pos = 0;
    std::string header;
    while (pos < output.size()) {
        std::size_t end = output.find('\n', pos);
        if (end == std::string::npos) {
            end = output.size();
        }
        const std::string line = output.substr(pos, end - pos);
        if (line.rfind("Projection:", 0) == 0) {
            header = line;
        } else if (line.rfind("Status:", 0) == 0) {
            lines += fmt::format("      {}: {}\n", header, line);
        }
        pos = end + 1;
    }
    return lines;
}

struct Figures {
    long long store_events = 0;
    double status_ms = 0;
    double per_event = 0; // events/s
    double batch = 0;
    double selective = 0; // store events passed per second by a read that selects none of them
    bool equal = false;
    long long rows = 0;
    std::string status;
};

Figures measure(const Store& store, const std::string& tag, std::int64_t after, long long tail) {
    store::Connection conn = store.open();
    const std::int64_t last = conn.exec("SELECT max(global_position) FROM events").int64(0, 0);
    Figures figures;
    figures.store_events = conn.exec("SELECT count(*) FROM events").int64(0, 0);
    const std::string per_event = projection_yaml(per_event_yaml, "per_event_" + tag);
    const std::string batch = projection_yaml(batch_yaml, "batch_" + tag);
    figures.per_event = static_cast<double>(tail) / store.catch_up(per_event, after, last);
    figures.batch = static_cast<double>(tail) / store.catch_up(batch, after, last);
    // The oldest `tail` events with the whole store still ahead: each read of
    // a selective projection must cost its window, not the events after it.
    const std::int64_t oldest_tail =
        conn.exec("SELECT global_position FROM events ORDER BY global_position OFFSET $1::bigint - 1 LIMIT 1",
                  {std::to_string(tail)})
            .int64(0, 0);
    figures.selective =
        static_cast<double>(tail) / store.catch_up(projection_yaml(selective_yaml, "selective_" + tag), 0, oldest_tail);
    // Out of the way of status: its checkpoint stays behind on purpose.
    conn.exec("DELETE FROM projection_checkpoints WHERE projection_name = $1", {"selective_" + tag});
    conn.exec("DELETE FROM projectiond_projections WHERE projection_name = $1", {"selective_" + tag});
    figures.equal = store.equal("per_event_" + tag, "batch_" + tag);
    figures.rows = store.rows("batch_" + tag);

    // status with both projections caught up, and one more that has not
    // started (its lag is the whole store).
    const std::string config_path = fmt::format("/tmp/projectiond-bench-{}-{}.yaml", ::getpid(), tag);
    {
        std::ofstream file(config_path);
        file << config_yaml(per_event + batch + projection_yaml(per_event_yaml, "not_started_" + tag));
    }
    const auto [ms, output] = time_status(store, config_path);
    std::remove(config_path.c_str());
    figures.status_ms = ms;
    figures.status = status_lines(output);
    return figures;
}

} // namespace

int main(int argc, char** argv) try {
    const char* from_env = std::getenv("PROJECTIOND_BENCH_LARGE_STORE");
    const long long total = argc > 1 ? std::stoll(argv[1]) : from_env != nullptr ? std::stoll(from_env) : 5000000;
    const long long tail = argc > 2 ? std::stoll(argv[2]) : 200000;
    if (tail < 1 || total < 2 * tail) {
        fmt::print(stderr, "large_store: EVENTS must be at least twice TAIL\n");
        return 64;
    }
    spdlog::set_level(spdlog::level::warn);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Store store;
    store.dbname = fmt::format("bench_large_{}", ::getpid());
    store::ConnectOptions admin;
    admin.conninfo = "dbname=postgres";
    store::Connection::open(admin).exec("CREATE DATABASE " + store.dbname);
    store.connect.conninfo = "dbname=" + store.dbname;
    store::Connection conn = store.open();
    store::migrate(conn, [](const store::Migration&) {});
    fmt::print("large store: status and catch-up of the newest {} events on a store of {} and of {} events, "
               "PostgreSQL {}, {} cores\n",
               tail, tail, total, conn.exec("SHOW server_version").text(0, 0), std::thread::hardware_concurrency());

    store::append_demo_events(conn, tail, "User", "Identity");
    // The whole database, aggregate_heads included: autovacuum of a table
    // just filled would otherwise run beside the first catch-up measured.
    conn.exec("VACUUM ANALYZE");
    const Figures small = measure(store, "small", 0, tail);

    // Grow the same store: the bulk, then the newest `tail` events to catch up.
    auto start = Clock::now();
    store::append_demo_events(conn, total - 2 * tail, "User", "Identity");
    const std::int64_t before_tail = conn.exec("SELECT max(global_position) FROM events").int64(0, 0);
    store::append_demo_events(conn, tail, "User", "Identity");
    const double filled = seconds_since(start);
    fmt::print("  filled {} more events in {:.0f} s ({:.0f} events/s, set-based, triggers per row)\n", total - tail,
               filled, static_cast<double>(total - tail) / filled);
    start = Clock::now();
    conn.exec("VACUUM ANALYZE");
    fmt::print("  VACUUM ANALYZE (events, aggregate_heads, ...): {:.0f} s\n", seconds_since(start));
    const Figures large = measure(store, "large", before_tail, tail);

    const auto print = [&](const Figures& f) {
        fmt::print("  store of {} events:\n", f.store_events);
        fmt::print("    projectiond status (3 projections, median of 5): {:.0f} ms\n", f.status_ms);
        fmt::print("{}", f.status);
        fmt::print("    catch-up of the newest {}: per-event handler {:.0f} events/s, batch handler {:.0f} events/s\n",
                   tail, f.per_event, f.batch);
        fmt::print("    a projection selecting none of the oldest {} events: passes {:.0f} events/s\n", tail,
                   f.selective);
        fmt::print("    read models: {} rows, batch handler's {} the per-event handler's\n", f.rows,
                   f.equal ? "equal to" : "DIFFERENT FROM");
    };
    print(small);
    print(large);
    fmt::print("  large vs small store: status {:.0f} ms (aim < 300 ms); catch-up rate {:.2f}x (per-event), {:.2f}x "
               "(batch), {:.2f}x (selective, the store ahead) of the small store's (aim >= 0.9x)\n",
               large.status_ms, large.per_event / small.per_event, large.batch / small.batch,
               large.selective / small.selective);

    conn = store::Connection::open(admin);
    conn.exec("DROP DATABASE " + store.dbname + " WITH (FORCE)");
    return small.equal && large.equal && small.rows == tail && large.rows == tail ? 0 : 1;
} catch (const std::exception& error) {
    fmt::print(stderr, "large_store: {}\n", error.what());
    return 1;
}
