// How long a scrape of /metrics takes with 200 projection partitions, over
// real TCP through the daemon's HTTP server (target: under 10 ms), and how
// long serializing alone takes. No database needed.

#include "observability/http_server.hpp"
#include "observability/metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using Clock = std::chrono::steady_clock;

namespace {

double milliseconds(Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

// CPU time of this thread: what a scrape costs, whatever else the machine runs.
double thread_cpu_milliseconds() {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
}

// One GET /metrics with Connection: close; the response's size.
std::size_t scrape(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return 0;
    }
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::size_t total = 0;
    char buffer[65536];
    for (ssize_t got; (got = ::read(fd, buffer, sizeof buffer)) > 0;) {
        total += static_cast<std::size_t>(got);
    }
    ::close(fd);
    return total;
}

void report(const char* what, std::vector<double> samples) {
    std::sort(samples.begin(), samples.end());
    fmt::print("{:<28} p50 {:6.2f} ms   p99 {:6.2f} ms   max {:6.2f} ms\n", what, samples[samples.size() / 2],
               samples[samples.size() * 99 / 100], samples.back());
}

} // namespace

int main(int argc, char** argv) {
    const int partitions = argc > 1 ? std::stoi(argv[1]) : 200;
    constexpr int rounds = 200;
    observability::Metrics metrics("bench");
    for (int i = 0; i < partitions; ++i) {
        auto& partition = metrics.partition(fmt::format("projection_{}", i / 4), i % 4);
        partition.set_owned(true);
        partition.set_state(observability::ProjectionState::caught_up);
        for (int batch = 0; batch < 20; ++batch) {
            partition.add_batch(100, std::chrono::milliseconds(batch));
        }
        partition.set_checkpoint(123456789);
        partition.set_lag(0, std::chrono::seconds(0));
    }
    observability::HttpServer server("127.0.0.1:0", {[&metrics] { return metrics.text(); },
                                                     [] { return std::make_pair(200, std::string("{}")); },
                                                     [] { return std::string("{}"); }});

    std::vector<double> serialize;
    std::vector<double> serialize_cpu;
    std::vector<double> over_http;
    std::size_t bytes = 0;
    for (int i = 0; i < rounds; ++i) {
        auto start = Clock::now();
        const double cpu_start = thread_cpu_milliseconds();
        const std::string text = metrics.text();
        serialize_cpu.push_back(thread_cpu_milliseconds() - cpu_start);
        serialize.push_back(milliseconds(Clock::now() - start));
        start = Clock::now();
        bytes = scrape(server.port());
        over_http.push_back(milliseconds(Clock::now() - start));
    }
    fmt::print("{} partitions, {} bytes per scrape, {} rounds\n", partitions, bytes, rounds);
    report("Metrics::text()", serialize);
    report("Metrics::text(), CPU time", serialize_cpu);
    report("GET /metrics over TCP", over_http);
    return 0;
}
