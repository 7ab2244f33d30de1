#pragma once
// The daemon's HTTP side: GET/HEAD /metrics, /health and /status, served by
// one libmicrohttpd thread over epoll, with every resource a client can hold
// (connections, bytes of request, idle time) bounded.

#include "observability/listen_address.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

struct MHD_Daemon;

namespace projectiond::observability {

// What the endpoints answer. Each runs on the server's thread, once per
// request: it must read values already held in memory and never block.
struct HttpEndpoints {
    std::function<std::string()> metrics;                // Prometheus text (Metrics::text)
    std::function<std::pair<int, std::string>()> health; // HTTP status (200 or 503) and JSON body
    std::function<std::string()> status;                 // the JSON of `status --json`
};

// A client can hold at most this much of the daemon. One connection costs a
// descriptor and at most `max_request_bytes` of memory, so the defaults cap
// the whole HTTP side at 512 descriptors and 16 MiB.
struct HttpLimits {
    unsigned max_connections = 512;
    // Above 200 so that one scraping host keeping many connections (or the
    // tests' 200 idle ones) still leaves room for a scrape; below
    // max_connections so that one hostile host cannot take every slot.
    unsigned max_connections_per_ip = 256;
    // A connection that sends nothing for this long is closed; a scrape that
    // keeps its connection alive simply opens a new one.
    std::chrono::seconds idle_timeout{10};
    // Memory of one connection: the request line and headers must fit in it
    // (a little less; cookies count twice, parsed), else the answer is 431
    // (or 414 for the URI) and a close. A scrape's request is well under
    // 1 KiB; 32 KiB leaves room for a browser's localhost cookies.
    std::size_t max_request_bytes = 32 * 1024;
};

class HttpServer {
public:
    // Binds `listen` (HOST:PORT, [IPv6]:PORT, :PORT; port 0 for any free one)
    // and starts serving. Throws std::invalid_argument for a malformed
    // address and std::runtime_error ("cannot listen on 127.0.0.1:9187:
    // Address already in use") when it cannot serve.
    //
    // The server thread starts with TERM, INT, HUP (and the other
    // asynchronous signals) blocked, whatever the caller's mask is, so
    // signals reach the daemon's signalfd and nothing else.
    HttpServer(std::string_view listen, HttpEndpoints endpoints, HttpLimits limits = {});
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;
    // Stops: closes the listening socket and every connection, joins the thread.
    ~HttpServer();

    // The port actually bound (what port 0 turned into).
    std::uint16_t port() const noexcept { return port_; }
    // "HOST:PORT" with the bound port, for the log.
    std::string address() const;

private:
    struct MhdDaemonStop {
        void operator()(MHD_Daemon* daemon) const noexcept;
    };

    ListenAddress listen_;
    std::uint16_t port_ = 0;
    HttpEndpoints endpoints_;
    // Last, so that it stops (and its callbacks end) before anything it uses goes.
    std::unique_ptr<MHD_Daemon, MhdDaemonStop> daemon_;
};

} // namespace projectiond::observability
