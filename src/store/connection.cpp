#include "store/connection.hpp"

#include "store/database_error.hpp"

#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::store {

namespace {

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

// Server notices ("relation already exists, skipping") are debug chatter, not output.
void log_notice(void*, const PGresult* result) {
    const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    spdlog::debug("server notice: {}", message != nullptr ? message : "");
}

struct ConninfoOptionsDeleter {
    void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};
using ConninfoOptions = std::unique_ptr<PQconninfoOption, ConninfoOptionsDeleter>;

DatabaseError error_from(const Result& result, std::string_view doing) {
    std::string message = result.error_message();
    if (message.empty()) {
        message = "unknown error";
    }
    const char* position = PQresultErrorField(result.get(), PG_DIAG_STATEMENT_POSITION);
    return DatabaseError(doing.empty() ? message : fmt::format("{}: {}", doing, message), result.sqlstate(), false,
                         position != nullptr ? std::atoi(position) : 0);
}

// The server refused the login itself: retrying with the same settings cannot
// succeed. libpq gives no SQLSTATE for a failed connection, only its message.
bool login_rejected(std::string_view message) {
    for (const std::string_view sign :
         {"password authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects", "does not exist",
          "permission denied for database", "no password supplied", "authentication failed",
          "must have CONNECT privilege"}) {
        if (message.find(sign) != std::string_view::npos) {
            return true;
        }
    }
    return false;
}

// libpq's message for a connection string that does not parse quotes the
// token it stopped at, which may be (part of) the password, quotes and all:
// the message is cut at the first quoted token longer than one character
// (a one-character one, such as "=", says what is missing).
std::string without_quoted_tokens(std::string_view message) {
    std::string out;
    std::size_t pos = 0;
    for (;;) {
        const std::size_t open = message.find('"', pos);
        const std::size_t close = open == std::string_view::npos ? open : message.find('"', open + 1);
        if (close == std::string_view::npos || close - open - 1 > 1) {
            out.append(message.substr(pos, open == std::string_view::npos ? open : open - pos));
            if (open != std::string_view::npos) {
                out.append("\"…\"");
            }
            return out;
        }
        out.append(message.substr(pos, close + 1 - pos));
        pos = close + 1;
    }
}

// What libpq takes for a connection string rather than a database name
// (expand_dbname): a URI, or key=value pairs.
bool is_connection_string(std::string_view conninfo) {
    return conninfo.starts_with("postgresql://") || conninfo.starts_with("postgres://") ||
           conninfo.find('=') != std::string_view::npos;
}

} // namespace

std::string redact_conninfo(const std::string& conninfo) {
    if (conninfo.empty()) {
        return "(libpq defaults and PG* environment)";
    }
    char* error = nullptr;
    ConninfoOptions options(PQconninfoParse(conninfo.c_str(), &error));
    if (!options) {
        PQfreemem(error);
        return "(unparsable connection string)";
    }
    std::string out;
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        if (option->val == nullptr || *option->val == '\0') {
            continue;
        }
        const std::string_view keyword = option->keyword;
        if (!out.empty()) {
            out += ' ';
        }
        out += keyword;
        out += '=';
        out += keyword == "password" ? std::string("********") : std::string(option->val);
    }
    return out;
}

std::optional<std::pair<std::size_t, std::size_t>> password_span(std::string_view conninfo) {
    for (const std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (conninfo.starts_with(scheme)) {
            const std::size_t start = scheme.size();
            const std::size_t end_of_authority = conninfo.find_first_of("/?", start);
            const std::string_view authority = conninfo.substr(start, end_of_authority - start);
            const std::size_t at = authority.rfind('@');
            if (at == std::string_view::npos) {
                return std::nullopt;
            }
            const std::size_t colon = authority.substr(0, at).find(':');
            if (colon == std::string_view::npos || colon + 1 == at) {
                return std::nullopt;
            }
            return std::pair(start + colon + 1, at - colon - 1);
        }
    }
    // key=value pairs: password=secret or password = 'se cret'
    std::size_t pos = 0;
    while ((pos = conninfo.find("password", pos)) != std::string_view::npos) {
        const bool word_start = pos == 0 || conninfo[pos - 1] == ' ' || conninfo[pos - 1] == '\t';
        std::size_t value = pos + 8;
        while (value < conninfo.size() && conninfo[value] == ' ') {
            ++value;
        }
        if (!word_start || value >= conninfo.size() || conninfo[value] != '=') {
            pos += 8;
            continue;
        }
        ++value;
        while (value < conninfo.size() && conninfo[value] == ' ') {
            ++value;
        }
        std::size_t end = value;
        if (end < conninfo.size() && conninfo[end] == '\'') {
            ++end;
            while (end < conninfo.size() && conninfo[end] != '\'') {
                end += conninfo[end] == '\\' ? 2 : 1;
            }
            end = std::min(end + 1, conninfo.size());
        } else {
            while (end < conninfo.size() && conninfo[end] != ' ') {
                ++end;
            }
        }
        return end > value ? std::optional(std::pair(value, end - value)) : std::nullopt;
    }
    return std::nullopt;
}

Connection Connection::open(const ConnectOptions& options) {
    const std::string timeout = std::to_string(
        std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(options.connect_timeout).count()));
    // expand_dbname lets `dbname` carry a whole URI or conninfo string; later
    // keywords override what it says, so application_name and the password win.
    std::vector<const char*> keywords{"dbname", "application_name", "connect_timeout"};
    std::vector<const char*> values{options.conninfo.empty() ? nullptr : options.conninfo.c_str(),
                                    options.application_name.c_str(), timeout.c_str()};
    if (options.password) {
        keywords.push_back("password");
        values.push_back(options.password->c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);

    if (is_connection_string(options.conninfo)) {
        char* error = nullptr;
        if (ConninfoOptions parsed(PQconninfoParse(options.conninfo.c_str(), &error)); !parsed) {
            const std::string message = error == nullptr ? "out of memory" : trimmed(error);
            PQfreemem(error);
            // Rejected: waiting will not make it parse.
            throw DatabaseUnavailable(
                fmt::format("the database URL does not parse: {}; check its syntax (in a URI, percent-encode the "
                            "password's special characters: % as %25, @ as %40, / as %2F)",
                            without_quoted_tokens(message)),
                true);
        }
    }
    PGconn* raw = PQconnectStartParams(keywords.data(), values.data(), 1);
    if (raw == nullptr) {
        throw std::bad_alloc();
    }
    Connection conn(raw);
    conn.interrupt_ = options.interrupt;
    PQsetNoticeReceiver(raw, log_notice, nullptr);
    if (PQstatus(raw) == CONNECTION_BAD) {
        const std::string message = trimmed(PQerrorMessage(raw));
        throw DatabaseUnavailable(fmt::format("cannot connect to PostgreSQL: {}", message), login_rejected(message));
    }
    const auto deadline = Clock::now() + options.connect_timeout;
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    while (state != PGRES_POLLING_OK) {
        if (state == PGRES_POLLING_FAILED) {
            const std::string message = trimmed(PQerrorMessage(raw));
            throw DatabaseUnavailable(fmt::format("cannot connect to PostgreSQL: {}", message),
                                      login_rejected(message));
        }
        if (!conn.wait_socket(state == PGRES_POLLING_WRITING, deadline)) {
            throw DatabaseUnavailable(
                fmt::format("cannot connect to PostgreSQL: no answer within {} ms", options.connect_timeout.count()));
        }
        state = PQconnectPoll(raw);
    }
    if (PQsetnonblocking(raw, 1) != 0) {
        conn.throw_connection_error("switching to non-blocking mode");
    }
    conn.cancel_ = PQgetCancel(raw);
    return conn;
}

Connection::Connection(Connection&& other) noexcept
    : conn_(std::exchange(other.conn_, nullptr)), cancel_(std::exchange(other.cancel_, nullptr)),
      interrupt_(other.interrupt_) {}

Connection& Connection::operator=(Connection&& other) noexcept {
    if (this != &other) {
        close();
        conn_ = std::exchange(other.conn_, nullptr);
        cancel_ = std::exchange(other.cancel_, nullptr);
        interrupt_ = other.interrupt_;
    }
    return *this;
}

Connection::~Connection() {
    close();
}

void Connection::close() noexcept {
    if (cancel_ != nullptr) {
        PQfreeCancel(std::exchange(cancel_, nullptr));
    }
    if (conn_ != nullptr) {
        PQfinish(std::exchange(conn_, nullptr));
    }
}

bool Connection::healthy() const noexcept {
    return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

void Connection::request_cancel() const noexcept {
    if (cancel_ != nullptr) {
        char buffer[256];
        PQcancel(cancel_, buffer, sizeof buffer);
    }
}

void Connection::throw_connection_error(std::string_view doing) const {
    std::string message = trimmed(PQerrorMessage(conn_));
    if (message.empty()) {
        message = "connection to the server was lost";
    }
    throw DatabaseError(fmt::format("{}: {}", doing, message), "08006", true);
}

short Connection::wait_socket(bool for_write, std::optional<Clock::time_point> deadline) {
    const int socket = PQsocket(conn_);
    if (socket < 0) {
        throw_connection_error("waiting for the server");
    }
    const bool interruptible = interrupt_ != nullptr && interrupt_->fd >= 0;
    if (interruptible && interrupt_->give_up()) {
        throw Interrupted();
    }
    for (;;) {
        const int drained = draining_ != nullptr ? PQsocket(draining_->conn_) : -1;
        pollfd fds[3] = {{socket, static_cast<short>(for_write ? (POLLIN | POLLOUT) : POLLIN), 0},
                         {interruptible ? interrupt_->fd : -1, POLLIN, 0},
                         {drained, POLLIN, 0}};
        int timeout_ms = -1;
        if (deadline) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
            timeout_ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, left.count()));
        }
        const int ready = ::poll(fds, 3, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "poll on the database socket");
        }
        if (ready == 0) {
            return 0;
        }
        if ((fds[1].revents & POLLIN) != 0 && interrupt_->give_up()) {
            throw Interrupted();
        }
        if (fds[2].revents != 0) {
            if (PQconsumeInput(draining_->conn_) == 0) {
                draining_ = nullptr; // lost: its owner learns it when it takes the result
            } else {
                // Parsed into its result as it comes, so that libpq's input
                // buffer holds a few messages, not the whole answer twice.
                PQisBusy(draining_->conn_);
            }
        }
        if (fds[0].revents != 0) {
            return fds[0].revents;
        }
    }
}

void Connection::flush() {
    for (;;) {
        const int result = PQflush(conn_);
        if (result == 0) {
            return;
        }
        if (result < 0) {
            throw_connection_error("sending to the server");
        }
        // Read while we wait to write: a server blocked on sending us results
        // stops reading, and a client blocked on sending it queries would then
        // wait for it forever (libpq's PQflush documentation).
        const short events = wait_socket(true, std::nullopt);
        if ((events & (POLLIN | POLLERR | POLLHUP)) != 0 && PQconsumeInput(conn_) == 0) {
            throw_connection_error("reading from the server");
        }
    }
}

void Connection::consume_until_not_busy() {
    flush();
    while (PQisBusy(conn_) != 0) {
        wait_socket(false, std::nullopt);
        if (PQconsumeInput(conn_) == 0) {
            throw_connection_error("reading from the server");
        }
    }
}

Result Connection::collect_results() {
    Result last;
    Result failure;
    for (;;) {
        consume_until_not_busy();
        Result result(PQgetResult(conn_));
        if (!result) {
            break;
        }
        if (!result.ok() && result.status() != PGRES_EMPTY_QUERY) {
            if (!failure) {
                failure = std::move(result);
            }
        } else {
            last = std::move(result);
        }
    }
    if (failure) {
        if (!healthy()) {
            throw_connection_error("running a statement");
        }
        throw error_from(failure, "");
    }
    return last;
}

Result Connection::exec(std::string_view sql) {
    const std::string text(sql);
    if (PQsendQuery(conn_, text.c_str()) == 0) {
        throw_connection_error("sending a statement");
    }
    return collect_results();
}

namespace {
std::vector<const char*> raw_values(const Params& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& param : params) {
        values.push_back(param ? param->c_str() : nullptr);
    }
    return values;
}
} // namespace

Result Connection::exec(const std::string& sql, const Params& params) {
    send(sql, params);
    return collect_results();
}

void Connection::prepare(const std::string& name, const std::string& sql) {
    prepare(name, sql, {});
}

void Connection::prepare(const std::string& name, const std::string& sql, const std::vector<Oid>& types) {
    if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(types.size()),
                      types.empty() ? nullptr : types.data()) == 0) {
        throw_connection_error("preparing a statement");
    }
    collect_results();
}

Result Connection::exec_prepared(const std::string& name, const Params& params) {
    send_prepared(name, params);
    return collect_results();
}

void Connection::send_prepared(const std::string& name, const Params& params) {
    const auto values = raw_values(params);
    send_prepared(name, static_cast<int>(values.size()), values.data());
    flush();
}

void Connection::enter_pipeline() {
    if (PQenterPipelineMode(conn_) == 0) {
        throw_connection_error("entering pipeline mode");
    }
}

void Connection::exit_pipeline() {
    if (PQexitPipelineMode(conn_) == 0) {
        throw_connection_error("leaving pipeline mode");
    }
}

void Connection::send_prepared(const std::string& name, int count, const char* const* values) {
    if (PQsendQueryPrepared(conn_, name.c_str(), count, values, nullptr, nullptr, 0) == 0) {
        throw_connection_error("sending a prepared statement");
    }
}

void Connection::send(const std::string& sql, const Params& params, const std::vector<Oid>& types) {
    const auto values = raw_values(params);
    if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                          types.size() == values.size() && !types.empty() ? types.data() : nullptr, values.data(),
                          nullptr, nullptr, 0) == 0) {
        throw_connection_error("sending a statement");
    }
}

void Connection::pipeline_sync() {
    if (PQpipelineSync(conn_) == 0) {
        throw_connection_error("syncing the pipeline");
    }
}

Result Connection::next_pipeline_result() {
    consume_until_not_busy();
    Result result(PQgetResult(conn_));
    if (result && result.status() == PGRES_FATAL_ERROR && !healthy()) {
        throw_connection_error("running a batch");
    }
    return result;
}

bool Connection::drain_notifications() {
    if (PQconsumeInput(conn_) == 0) {
        throw_connection_error("reading notifications");
    }
    bool any = false;
    while (PGnotify* notify = PQnotifies(conn_)) {
        PQfreemem(notify);
        any = true;
    }
    return any;
}

bool Connection::wait_for_notification(Clock::time_point deadline) {
    while (!drain_notifications()) {
        if (Clock::now() >= deadline || !wait_socket(false, deadline)) {
            return false;
        }
    }
    return true;
}

} // namespace projectiond::store
