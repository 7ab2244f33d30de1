// Does scraping /metrics slow a catch-up? The catch-up of bench/catch_up.cpp
// (upsert handler, batch_size 1000, one partition), run in this process with
// the daemon's HTTP server over the engine's metrics, alternately without and
// with a scraper that GETs /metrics every 100 ms (target: under 3 % slower).
//
//   scripts/with-postgres build/bench/scrape_during_catch_up [EVENTS] [PAIRS]
//
// (default 200000 events, 5 pairs of runs; bench/run runs it). Prints each
// run, the medians and their ratio, and the CPU time the server's thread
// spent producing the exposition (a figure the machine's other load does
// not blur); it asserts nothing.
#include "config/loader.hpp"
#include "daemon/engine.hpp"
#include "daemon/projection_setup.hpp"
#include "observability/http_server.hpp"
#include "store/connect.hpp"
#include "store/daemon_registry.hpp"
#include "store/demo_events.hpp"
#include "store/migrations.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
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

// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// CPU time of the whole process (runners, HTTP server, scraper), in seconds.
double process_cpu_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// One GET /metrics with Connection: close, as Prometheus does; the bytes read.
std::size_t scrape(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::size_t total = 0;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
        const std::string request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        char buffer[65536];
        for (ssize_t got; (got = ::read(fd, buffer, sizeof buffer)) > 0;) {
            total += static_cast<std::size_t>(got);
        }
    }
    ::close(fd);
    return total;
}

// GET /metrics every `interval` until destroyed, timing each scrape.
class Scraper {
public:
    Scraper(std::uint16_t port, std::chrono::milliseconds interval)
        : thread_([this, port, interval] {
              auto next = Clock::now();
              while (!stop_) {
                  const auto start = Clock::now();
                  bytes_ = scrape(port);
                  latencies_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
                  next += interval;
                  std::this_thread::sleep_until(next);
              }
          }) {}
    Scraper(const Scraper&) = delete;
    Scraper& operator=(const Scraper&) = delete;
    ~Scraper() { stop(); }

    // Stops, and returns the latency of each scrape in milliseconds.
    std::vector<double> stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        return latencies_;
    }
    std::size_t bytes() const { return bytes_; }

private:
    std::atomic<bool> stop_{false};
    std::vector<double> latencies_;
    std::size_t bytes_ = 0;
    std::thread thread_;
};

struct Run {
    double seconds = 0;
    double cpu_seconds = 0;
    std::vector<double> scrapes_ms; // empty without scraping
    std::size_t scrape_bytes = 0;
    double serving_cpu_seconds = 0; // the HTTP server's thread in the /metrics callback
};

// `projectiond run` in this process, with its HTTP server: catches one fresh
// projection up to `target`, scraping or not meanwhile.
Run catch_up(const store::ConnectOptions& connect, int number, long long target, bool scraping) {
    const std::string name = fmt::format("upsert_{}", number);
    const auto config = config::parse_config(fmt::format(R"(defaults:
  batch_size: 1000
projections:
  - name: {0}
    setup: CREATE TABLE IF NOT EXISTS {0}_users (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated: |
        INSERT INTO {0}_users (id, email, name) VALUES (:aggregate_id, :payload.email, :payload.name)
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
)",
                                                         name),
                                             "bench.yaml");
    Run run;
    const double cpu_start = process_cpu_seconds();
    const auto start = Clock::now();
    daemon::Engine engine(daemon::EngineSettings{connect, config, store::this_machine("bench")});
    {
        store::Connection conn = store::Connection::open(connect);
        std::vector<const config::Projection*> projections;
        for (const auto& projection : config.projections) {
            projections.push_back(&projection);
        }
        for (const daemon::RunSpec& spec : daemon::prepare_projections(conn, config, projections)) {
            engine.supervisor().start(spec);
        }
    }
    engine.start_coordinator();
    // The daemon's endpoints, as daemon.cpp wires them: /metrics serializes
    // what the runners and the sampler hold.
    std::atomic<double> serving_cpu{0};
    observability::HttpServer server("127.0.0.1:0", {[&engine, &serving_cpu] {
                                                         const double before = thread_cpu_seconds();
                                                         std::string text = engine.metrics().text();
                                                         serving_cpu = serving_cpu + (thread_cpu_seconds() - before);
                                                         return text;
                                                     },
                                                     [] { return std::make_pair(200, std::string("{}")); },
                                                     [] { return std::string("{}"); }});
    std::optional<Scraper> scraper;
    if (scraping) {
        scraper.emplace(server.port(), 100ms);
    }
    while (engine.lowest_checkpoint(name) < target) {
        std::this_thread::sleep_for(200us);
    }
    run.seconds = seconds_since(start);
    if (scraper) {
        run.scrapes_ms = scraper->stop();
        run.scrape_bytes = scraper->bytes();
    }
    run.serving_cpu_seconds = serving_cpu;
    engine.drain_and_stop();
    run.cpu_seconds = process_cpu_seconds() - cpu_start;
    return run;
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

} // namespace

int main(int argc, char** argv) {
    const long long events = argc > 1 ? std::stoll(argv[1]) : 200000;
    const int pairs = argc > 2 ? std::stoi(argv[2]) : 5;
    spdlog::set_level(spdlog::level::warn);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string dbname = fmt::format("bench_scrape_{}", ::getpid());
    store::ConnectOptions admin;
    admin.conninfo = "dbname=postgres";
    store::Connection::open(admin).exec("CREATE DATABASE " + dbname);
    store::ConnectOptions connect;
    connect.conninfo = "dbname=" + dbname;
    long long max_position = 0;
    {
        store::Connection conn = store::Connection::open(connect);
        store::migrate(conn, [](const store::Migration&) {});
        fmt::print("catch-up with and without scraping /metrics every 100 ms: {} events, PostgreSQL {}, {} cores\n",
                   events, conn.exec("SHOW server_version").text(0, 0), std::thread::hardware_concurrency());
        const auto start = Clock::now();
        store::append_demo_events(conn, events, "User", "Identity");
        conn.exec("VACUUM ANALYZE events");
        max_position = conn.exec("SELECT max(global_position) FROM events").int64(0, 0);
        fmt::print("  appended in {:.2f} s\n", seconds_since(start));
    }

    std::vector<double> without;
    std::vector<double> with;
    std::vector<double> without_cpu;
    std::vector<double> with_cpu;
    std::vector<double> scrapes;
    std::vector<double> pair_ratios;
    std::vector<double> serving_share; // serving CPU / wall time of a run with scraping
    std::size_t bytes = 0;
    int number = 0;
    for (int pair = 0; pair < pairs; ++pair) {
        // Alternated (ABBA), so that a machine that gets busier or quieter
        // over the run weighs on both sides alike.
        double pair_seconds[2] = {0, 0};
        for (const bool scraping : pair % 2 == 0 ? std::array{false, true} : std::array{true, false}) {
            const Run run = catch_up(connect, ++number, max_position, scraping);
            fmt::print("  run {:2} {:<18} {:7.2f} s, process CPU {:5.2f} s{}\n", number,
                       scraping ? "with scraping:" : "without scraping:", run.seconds, run.cpu_seconds,
                       scraping ? fmt::format(", {} scrapes, {:.1f} ms CPU to produce them", run.scrapes_ms.size(),
                                              run.serving_cpu_seconds * 1e3)
                                : std::string());
            pair_seconds[scraping ? 1 : 0] = run.seconds;
            if (scraping) {
                serving_share.push_back(run.serving_cpu_seconds / run.seconds);
            }
            (scraping ? with : without).push_back(run.seconds);
            (scraping ? with_cpu : without_cpu).push_back(run.cpu_seconds);
            scrapes.insert(scrapes.end(), run.scrapes_ms.begin(), run.scrapes_ms.end());
            bytes = std::max(bytes, run.scrape_bytes);
        }
        pair_ratios.push_back(pair_seconds[1] / pair_seconds[0]);
    }
    std::sort(scrapes.begin(), scrapes.end());
    fmt::print("catch-up, median of {} runs each:\n", pairs);
    fmt::print("  without scraping {:7.2f} s ({:.0f} events/s), {:.2f} s CPU\n", median(without),
               static_cast<double>(events) / median(without), median(without_cpu));
    fmt::print("  with scraping    {:7.2f} s ({:.0f} events/s), {:.2f} s CPU\n", median(with),
               static_cast<double>(events) / median(with), median(with_cpu));
    fmt::print("  ratio of the medians with/without: {:.3f} ({:+.1f} %); median of the {} pairs' ratios: {:.3f} "
               "({:+.1f} %)\n",
               median(with) / median(without), (median(with) / median(without) - 1) * 100, pairs, median(pair_ratios),
               (median(pair_ratios) - 1) * 100);
    fmt::print("  producing the exposition for the scrapes (the /metrics callback, on the server's thread) took "
               "CPU time equal to {:.3f} % of a run's wall time (median)\n",
               median(serving_share) * 100);
    if (!scrapes.empty()) {
        fmt::print("  {} scrapes of {} bytes: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n", scrapes.size(), bytes,
                   scrapes[scrapes.size() / 2], scrapes[scrapes.size() * 99 / 100], scrapes.back());
    }

    store::Connection::open(admin).exec("DROP DATABASE " + dbname + " WITH (FORCE)");
    return 0;
}
