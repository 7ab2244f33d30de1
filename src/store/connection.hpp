#pragma once
// One libpq connection, used by one thread, with every wait interruptible.
//
// The socket is non-blocking and all waits go through poll() on it and on an
// optional interrupt descriptor, so a runner told to stop never sits in libpq.

#include "store/result.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace projectiond::store {

using Clock = std::chrono::steady_clock;
using Params = std::vector<std::optional<std::string>>;

// Lets a waiting connection be woken: `fd` becomes readable, then `give_up` is
// asked (it should consume the wake-up) whether the wait is to be abandoned.
struct Interrupt {
    int fd = -1;
    std::function<bool()> give_up;
};

struct ConnectOptions {
    std::string conninfo; // libpq URI or key=value string; may be empty (PG* env)
    std::string application_name = "projectiond";
    std::optional<std::string> password; // from a file or credential, never from a log
    std::chrono::milliseconds connect_timeout{10000};
    const Interrupt* interrupt = nullptr;
};

class Connection {
public:
    static Connection open(const ConnectOptions& options);

    Connection(Connection&& other) noexcept;
    Connection& operator=(Connection&& other) noexcept;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();

    void set_interrupt(const Interrupt* interrupt) noexcept { interrupt_ = interrupt; }

    // While this connection waits, `other` (another connection of the same
    // thread, with a statement in flight) has what arrived for it read too,
    // into libpq's buffer: its server would otherwise stop at a full socket
    // and finish only once its result is taken. Ends with the returned scope.
    class Draining {
    public:
        Draining(Connection& waiting, Connection* other) noexcept : waiting_(waiting) { waiting_.draining_ = other; }
        Draining(const Draining&) = delete;
        Draining& operator=(const Draining&) = delete;
        ~Draining() { waiting_.draining_ = nullptr; }

    private:
        Connection& waiting_;
    };

    // Simple-query protocol: may hold several statements; returns the last result.
    Result exec(std::string_view sql);
    // Extended protocol with text parameters bound as $1, $2, ...
    Result exec(const std::string& sql, const Params& params);
    void prepare(const std::string& name, const std::string& sql);
    // With the parameters' types declared ($1 is types[0], ...); 0 lets PostgreSQL infer one.
    void prepare(const std::string& name, const std::string& sql, const std::vector<Oid>& types);
    Result exec_prepared(const std::string& name, const Params& params);
    // The same in two steps, so that the caller works meanwhile: send now,
    // take the result later (nothing else may be sent in between).
    void send_prepared(const std::string& name, const Params& params);
    Result take_result() { return collect_results(); }

    // Pipeline mode (libpq >= 14): queue statements, sync, then read results in order.
    void enter_pipeline();
    void exit_pipeline();
    void send_prepared(const std::string& name, int count, const char* const* values);
    void send(const std::string& sql, const Params& params, const std::vector<Oid>& types = {});
    void pipeline_sync();
    // The next result of the pipeline; an empty Result marks the end of one
    // statement's results. Errors are returned, not thrown, so the caller can
    // tell which statement failed; a lost connection throws.
    Result next_pipeline_result();

    // Waits until a notification arrives (true) or the deadline passes (false).
    // Notifications already received are consumed and count.
    bool wait_for_notification(Clock::time_point deadline);
    // Consumes any notifications that have arrived; true if there were some.
    bool drain_notifications();

    bool healthy() const noexcept;
    PGconn* native() const noexcept { return conn_; }
    // Asks the server to cancel the running statement; callable from any thread.
    void request_cancel() const noexcept;

private:
    explicit Connection(PGconn* conn) noexcept : conn_(conn) {}
    void close() noexcept;

    [[noreturn]] void throw_connection_error(std::string_view doing) const;
    Result collect_results();
    void flush();
    void consume_until_not_busy();
    // Waits for the socket to become readable (and writable too, when
    // `for_write`); returns poll's revents, 0 when the deadline passed first.
    short wait_socket(bool for_write, std::optional<Clock::time_point> deadline);

    PGconn* conn_ = nullptr;
    PGcancel* cancel_ = nullptr;
    const Interrupt* interrupt_ = nullptr;
    Connection* draining_ = nullptr; // see Draining
};

// The libpq connection string with any password removed, for messages and logs.
std::string redact_conninfo(const std::string& conninfo);

// Where the password is written in a connection string, URI
// (postgresql://user:PASSWORD@host) or key=value (password=PASSWORD), as
// {offset, length} of the raw text; nullopt when there is none.
std::optional<std::pair<std::size_t, std::size_t>> password_span(std::string_view conninfo);

} // namespace projectiond::store
