#include "http_client.hpp"
#include "observability/http_server.hpp"

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <dirent.h>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace projectiond;
using namespace std::chrono_literals;
using observability::HttpEndpoints;
using observability::HttpLimits;
using observability::HttpServer;
using testing::request;

namespace {

const std::string metrics_body = "# TYPE projectiond_database_up gauge\nprojectiond_database_up 1\n";
const std::string status_body = R"({"projections":[]})";

HttpEndpoints endpoints(std::atomic<int>* health_status = nullptr) {
    return {
        [] { return metrics_body; },
        [health_status] {
            const int status = health_status != nullptr ? health_status->load() : 200;
            return std::make_pair(status, std::string(status == 200 ? R"({"status":"ok"})"
                                                                    : R"({"status":"unhealthy","problems":["x"]})"));
        },
        [] { return status_body; },
    };
}

std::set<std::string> thread_ids() {
    std::set<std::string> ids;
    DIR* tasks = ::opendir("/proc/self/task");
    REQUIRE(tasks != nullptr);
    while (const dirent* entry = ::readdir(tasks)) {
        if (entry->d_name[0] != '.') {
            ids.insert(entry->d_name);
        }
    }
    ::closedir(tasks);
    return ids;
}

// The SigBlk mask of a thread of this process, as the kernel reports it.
unsigned long long blocked_signals(const std::string& tid) {
    std::ifstream status("/proc/self/task/" + tid + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("SigBlk:")) {
            return std::stoull(line.substr(7), nullptr, 16);
        }
    }
    FAIL("no SigBlk line for thread ", tid);
    return 0;
}

// Containers sometimes run with IPv6 disabled.
bool ipv6_loopback() {
    const system::UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    return fd && ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

} // namespace

TEST_SUITE("http server") {
    TEST_CASE("GET /metrics answers 200 with the exposition text and its content type") {
        const HttpServer server("127.0.0.1:0", endpoints());
        REQUIRE(server.port() != 0);
        const auto response = request(server.port(), "GET", "/metrics");
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->header("content-type").starts_with("text/plain; version=0.0.4"));
        CHECK(response->body == metrics_body);
    }

    TEST_CASE("GET /health answers with the callback's status and JSON body, 503 included") {
        std::atomic<int> health{200};
        const HttpServer server("127.0.0.1:0", endpoints(&health));
        auto response = request(server.port(), "GET", "/health");
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->header("content-type") == "application/json");
        CHECK(response->body == R"({"status":"ok"})");

        health = 503;
        response = request(server.port(), "GET", "/health");
        REQUIRE(response);
        CHECK(response->status == 503);
        CHECK(response->body.find("unhealthy") != std::string::npos);
    }

    TEST_CASE("GET /status answers 200 with the status document") {
        const HttpServer server("127.0.0.1:0", endpoints());
        const auto response = request(server.port(), "GET", "/status");
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->header("content-type") == "application/json");
        CHECK(response->body == status_body);
    }

    TEST_CASE("HEAD gets GET's status and length but no body") {
        const HttpServer server("127.0.0.1:0", endpoints());
        for (const char* path : {"/metrics", "/health", "/status"}) {
            CAPTURE(path);
            const auto get = request(server.port(), "GET", path);
            const auto head = request(server.port(), "HEAD", path);
            REQUIRE(get);
            REQUIRE(head);
            CHECK(head->status == get->status);
            CHECK(head->header("content-length") == std::to_string(get->body.size()));
            CHECK(head->body.empty());
        }
    }

    TEST_CASE("an unknown path is 404, the query string aside") {
        const HttpServer server("127.0.0.1:0", endpoints());
        for (const char* path : {"/", "/metrics/", "/favicon.ico", "/metricsx", "/../etc/passwd"}) {
            CAPTURE(path);
            const auto response = request(server.port(), "GET", path);
            REQUIRE(response);
            CHECK(response->status == 404);
        }
        const auto with_query = request(server.port(), "GET", "/metrics?name=x");
        REQUIRE(with_query);
        CHECK(with_query->status == 200);
    }

    TEST_CASE("a method other than GET or HEAD is 405 with Allow: GET, HEAD") {
        const HttpServer server("127.0.0.1:0", endpoints());
        for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"}) {
            CAPTURE(method);
            const auto response = request(server.port(), method, "/metrics");
            REQUIRE(response);
            CHECK(response->status == 405);
            CHECK(response->header("allow") == "GET, HEAD");
        }
        // With a body that nobody reads: answered all the same, and the server goes on.
        const auto with_body =
            testing::exchange(server.port(), "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                             "Connection: close\r\n\r\nhello");
        REQUIRE(with_body);
        CHECK(with_body->status == 405);
        const auto after = request(server.port(), "GET", "/health");
        REQUIRE(after);
        CHECK(after->status == 200);
    }

    TEST_CASE("an oversized request is refused and the server keeps serving") {
        const HttpServer server("127.0.0.1:0", endpoints());
        const std::string huge_header =
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(40 * 1024, 'a') +
            "\r\nConnection: close\r\n\r\n";
        // The server answers and closes with most of the request unread, so the
        // kernel may reset the connection before the answer is read: no answer
        // is a refusal too, but an answer must be one.
        const auto refused = testing::exchange(server.port(), huge_header);
        if (refused) {
            CHECK(refused->status == 431);
        }
        const auto huge_uri = testing::exchange(server.port(), "GET /metrics?" + std::string(40 * 1024, 'b') +
                                                                   " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if (huge_uri) {
            CHECK(huge_uri->status == 414);
        }
        const auto after = request(server.port(), "GET", "/metrics");
        REQUIRE(after);
        CHECK(after->status == 200);
        CHECK(after->body == metrics_body);
        // A large but sane header (big cookies, long tokens) is still fine.
        const auto large = testing::exchange(
            server.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nCookie: " + std::string(8 * 1024, 'c') +
                               "\r\nConnection: close\r\n\r\n");
        REQUIRE(large);
        CHECK(large->status == 200);
    }

    TEST_CASE("the request size limit is the one configured") {
        HttpLimits limits;
        limits.max_request_bytes = 8 * 1024;
        const HttpServer server("127.0.0.1:0", endpoints(), limits);
        const auto refused = testing::exchange(
            server.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(10 * 1024, 'a') +
                               "\r\nConnection: close\r\n\r\n");
        if (refused) {
            CHECK(refused->status == 431);
        }
        const auto small = request(server.port(), "GET", "/metrics");
        REQUIRE(small);
        CHECK(small->status == 200);
    }

    TEST_CASE("200 idle connections left open do not stop a scrape from answering promptly") {
        const HttpServer server("127.0.0.1:0", endpoints());
        std::vector<system::UniqueFd> idle;
        for (int i = 0; i < 200; ++i) {
            idle.push_back(testing::connect_to(server.port()));
            // Half of them start a request and never finish it (slowloris).
            if (i % 2 == 1) {
                const std::string partial = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
                REQUIRE(::send(idle.back().get(), partial.data(), partial.size(), MSG_NOSIGNAL) ==
                        static_cast<ssize_t>(partial.size()));
            }
        }
        const auto started = std::chrono::steady_clock::now();
        const auto response = request(server.port(), "GET", "/metrics", 5s);
        const auto took = std::chrono::steady_clock::now() - started;
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->body == metrics_body);
        // Milliseconds on an idle machine; the bound leaves room for a busy CI.
        CHECK(took < 2s);
        // None of the idle ones was dropped to make room.
        for (const auto& fd : idle) {
            CHECK_FALSE(testing::closed_by_peer(fd.get(), 0ms));
        }
    }

    TEST_CASE("a connection that stays silent is closed after the idle timeout") {
        HttpLimits limits;
        limits.idle_timeout = 1s;
        const HttpServer server("127.0.0.1:0", endpoints(), limits);
        const auto silent = testing::connect_to(server.port());
        const auto slow = testing::connect_to(server.port());
        const std::string partial = "GET /metrics HTTP/1.1\r\n";
        REQUIRE(::send(slow.get(), partial.data(), partial.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(partial.size()));
        CHECK(testing::closed_by_peer(silent.get(), 5s));
        CHECK(testing::closed_by_peer(slow.get(), 5s));
    }

    TEST_CASE("connections beyond the limit are not served until one frees its slot") {
        HttpLimits limits;
        limits.max_connections = 4;
        limits.max_connections_per_ip = 4;
        const HttpServer server("127.0.0.1:0", endpoints(), limits);
        std::vector<system::UniqueFd> held;
        for (int i = 0; i < 4; ++i) {
            held.push_back(testing::connect_to(server.port()));
        }
        // Give the server the time to accept the four before the fifth comes.
        CHECK_FALSE(testing::closed_by_peer(held.back().get(), 200ms));
        CHECK_FALSE(request(server.port(), "GET", "/metrics", 500ms).has_value());
        held.clear();
        const auto response = request(server.port(), "GET", "/metrics", 2s);
        REQUIRE(response);
        CHECK(response->status == 200);
    }

    TEST_CASE("a failing endpoint answers 500 and the server goes on") {
        HttpEndpoints failing = endpoints();
        failing.status = []() -> std::string { throw std::runtime_error("status not ready"); };
        const HttpServer server("127.0.0.1:0", std::move(failing));
        const auto response = request(server.port(), "GET", "/status");
        REQUIRE(response);
        CHECK(response->status == 500);
        CHECK(response->body.find("status not ready") != std::string::npos);
        const auto metrics = request(server.port(), "GET", "/metrics");
        REQUIRE(metrics);
        CHECK(metrics->status == 200);
    }

    TEST_CASE("a port in use fails with the address and the reason") {
        const HttpServer first("127.0.0.1:0", endpoints());
        const std::string taken = "127.0.0.1:" + std::to_string(first.port());
        CHECK_THROWS_WITH_AS(HttpServer(taken, endpoints()),
                             ("cannot listen on " + taken + ": Address already in use").c_str(), std::runtime_error);
    }

    TEST_CASE("a malformed address is refused before anything is bound") {
        CHECK_THROWS_AS(HttpServer("localhost", endpoints()), std::invalid_argument);
        CHECK_THROWS_AS(HttpServer("127.0.0.1:http", endpoints()), std::invalid_argument);
        CHECK_THROWS_AS(HttpServer("127.0.0.1:65536", endpoints()), std::invalid_argument);
        CHECK_THROWS_AS(HttpServer("::1:9187", endpoints()), std::invalid_argument);
        CHECK_THROWS_AS(HttpServer("[::1:9187", endpoints()), std::invalid_argument);
        CHECK_THROWS_WITH_AS(HttpServer("no.such.host.invalid:9187", endpoints()),
                             doctest::Contains("cannot listen on no.such.host.invalid:9187: "), std::runtime_error);
    }

    TEST_CASE("binds an IPv6 address in brackets and a host name") {
        const HttpServer by_name("localhost:0", endpoints());
        CHECK(by_name.port() != 0);
        CHECK(by_name.address() == "localhost:" + std::to_string(by_name.port()));

        if (!ipv6_loopback()) {
            MESSAGE("this machine has no IPv6 loopback; IPv6 binding not checked");
            return;
        }
        const HttpServer v6("[::1]:0", endpoints());
        CHECK(v6.address() == "[::1]:" + std::to_string(v6.port()));
        const auto response = testing::exchange(
            v6.port(), "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", std::chrono::seconds(5), true);
        REQUIRE(response);
        CHECK(response->status == 200);
    }

    TEST_CASE("stopping closes the port") {
        std::uint16_t port = 0;
        {
            const HttpServer server("127.0.0.1:0", endpoints());
            port = server.port();
            REQUIRE(request(port, "GET", "/health"));
        }
        const HttpServer again("127.0.0.1:" + std::to_string(port), endpoints());
        CHECK(again.port() == port);
    }

    TEST_CASE("the server's thread keeps TERM, INT and HUP blocked even when its creator does not") {
        sigset_t unblocked;
        sigemptyset(&unblocked);
        for (const int signal : {SIGTERM, SIGINT, SIGHUP}) {
            sigaddset(&unblocked, signal);
        }
        sigset_t saved;
        REQUIRE(pthread_sigmask(SIG_UNBLOCK, &unblocked, &saved) == 0);

        const auto before = thread_ids();
        {
            const HttpServer server("127.0.0.1:0", endpoints());
            int new_threads = 0;
            for (const auto& tid : thread_ids()) {
                if (before.contains(tid)) {
                    continue;
                }
                ++new_threads;
                const unsigned long long mask = blocked_signals(tid);
                for (const int signal : {SIGTERM, SIGINT, SIGHUP}) {
                    CAPTURE(signal);
                    CHECK((mask >> (signal - 1) & 1) == 1);
                }
            }
            CHECK(new_threads == 1); // one polling thread, whatever the number of clients
        }
        // The creator's own mask is as it was.
        sigset_t now;
        REQUIRE(pthread_sigmask(SIG_SETMASK, nullptr, &now) == 0);
        CHECK(sigismember(&now, SIGTERM) == 0);
        pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    }
}
