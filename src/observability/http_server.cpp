#include "observability/http_server.hpp"

#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>

#include <cstdarg>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::observability {

namespace {

constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* json_content_type = "application/json";

// Blocks every asynchronous signal in the calling thread while it lives, so
// that threads started meanwhile inherit a mask that keeps them out of signal
// delivery (the daemon reads TERM/INT/HUP from a signalfd; a library thread
// with those unblocked would swallow them).
class AsyncSignalsBlocked {
public:
    AsyncSignalsBlocked() {
        sigset_t all;
        sigfillset(&all);
        // Faults are delivered to the thread that caused them; blocking them
        // would only turn a crash into a hang.
        for (const int synchronous : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) {
            sigdelset(&all, synchronous);
        }
        pthread_sigmask(SIG_BLOCK, &all, &saved_);
    }
    AsyncSignalsBlocked(const AsyncSignalsBlocked&) = delete;
    AsyncSignalsBlocked& operator=(const AsyncSignalsBlocked&) = delete;
    ~AsyncSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

private:
    sigset_t saved_{};
};

// libmicrohttpd's own messages (a refused connection at the limit, a client
// that timed out) describe what clients do, not what the daemon does: debug.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
void log_from_mhd(void*, const char* format, va_list arguments) {
    char line[512];
    std::vsnprintf(line, sizeof line, format, arguments);
    std::string_view text(line);
    while (!text.empty() && text.back() == '\n') {
        text.remove_suffix(1);
    }
    spdlog::debug("http: {}", text);
}
#pragma GCC diagnostic pop

struct Reply {
    unsigned status = MHD_HTTP_OK;
    std::string body;
    const char* content_type = "text/plain; charset=utf-8";
    bool allow_header = false;
};

Reply route(const HttpEndpoints& endpoints, std::string_view url, std::string_view method) {
    if (url != "/metrics" && url != "/health" && url != "/status") {
        return {MHD_HTTP_NOT_FOUND, "not found: this server has /metrics, /health and /status\n"};
    }
    if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD) {
        return {MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET or HEAD\n", "text/plain; charset=utf-8",
                true};
    }
    if (url == "/metrics") {
        return {MHD_HTTP_OK, endpoints.metrics(), metrics_content_type};
    }
    if (url == "/health") {
        auto [status, body] = endpoints.health();
        return {static_cast<unsigned>(status), std::move(body), json_content_type};
    }
    return {MHD_HTTP_OK, endpoints.status(), json_content_type};
}

// Answers on the first call, once the headers are in: none of the endpoints
// reads a body, and a request that has one gets its answer and a close
// (libmicrohttpd cannot keep a connection whose body was not read).
MHD_Result answer(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*, const char*,
                  size_t*, void**) {
    const auto& endpoints = *static_cast<const HttpEndpoints*>(cls);
    Reply reply;
    try {
        reply = route(endpoints, url, method);
    } catch (const std::exception& error) {
        spdlog::error("http: {} {}: {}", method, url, error.what());
        reply = {MHD_HTTP_INTERNAL_SERVER_ERROR, fmt::format("internal error: {}\n", error.what())};
    } catch (...) {
        reply = {MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n"};
    }
    // HEAD gets the same headers (Content-Length included); libmicrohttpd
    // leaves the body out.
    MHD_Response* response =
        MHD_create_response_from_buffer(reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) {
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (reply.allow_header) {
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    const MHD_Result queued = MHD_queue_response(connection, reply.status, response);
    MHD_destroy_response(response);
    return queued;
}

} // namespace

void HttpServer::MhdDaemonStop::operator()(MHD_Daemon* daemon) const noexcept {
    MHD_stop_daemon(daemon);
}

HttpServer::HttpServer(std::string_view listen, HttpEndpoints endpoints, HttpLimits limits)
    : listen_(parse_listen_address(listen)), endpoints_(std::move(endpoints)) {
    if (!endpoints_.metrics || !endpoints_.health || !endpoints_.status) {
        throw std::invalid_argument("HttpServer: every endpoint needs a function");
    }
    system::UniqueFd socket = listen_on(listen_);
    port_ = bound_port(socket.get());

    const AsyncSignalsBlocked blocked;
    // The socket goes to libmicrohttpd, which closes it when it stops. It
    // also closes it on some of its failure paths and not on others, so it is
    // never closed here once handed over: a failed start may leak this one
    // descriptor, but cannot close another thread's.
    const int listen_fd = socket.release();
    daemon_.reset(MHD_start_daemon(
        // One thread polls every connection with epoll: idle clients cost a
        // descriptor each, never a thread.
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &answer, &endpoints_,
        MHD_OPTION_EXTERNAL_LOGGER, &log_from_mhd, nullptr, MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, limits.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        limits.max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        static_cast<unsigned>(limits.idle_timeout.count()), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        limits.max_request_bytes, MHD_OPTION_END));
    if (!daemon_) {
        throw std::runtime_error(fmt::format("cannot serve HTTP on {}: libmicrohttpd did not start", address()));
    }
}

HttpServer::~HttpServer() = default;

std::string HttpServer::address() const {
    ListenAddress bound = listen_;
    bound.port = port_;
    return config::to_string(bound);
}

} // namespace projectiond::observability
