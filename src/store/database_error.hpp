#pragma once
// Errors raised by the database layer, classified by what the caller should do.

#include <stdexcept>
#include <string>

namespace projectiond::store {

class DatabaseError : public std::runtime_error {
public:
    DatabaseError(std::string message, std::string sqlstate, bool connection_lost = false, int statement_position = 0)
        : std::runtime_error(std::move(message)), sqlstate_(std::move(sqlstate)), connection_lost_(connection_lost),
          statement_position_(statement_position) {}

    const std::string& sqlstate() const noexcept { return sqlstate_; }
    // Where in the statement PostgreSQL found the error: a 1-based character
    // index (PG_DIAG_STATEMENT_POSITION), 0 when it did not say.
    int statement_position() const noexcept { return statement_position_; }
    // The session is gone (server restart, network, shutdown): reconnect.
    bool connection_lost() const noexcept { return connection_lost_; }
    // Worth retrying as is, without counting it against a handler's retries:
    // connection trouble, serialization failures, deadlocks, lock timeouts.
    bool transient() const noexcept;

private:
    std::string sqlstate_;
    bool connection_lost_;
    int statement_position_;
};

// No connection could be made (refused, unknown host, authentication, timeout).
class DatabaseUnavailable : public DatabaseError {
public:
    // `rejected`: the server answered and refused this login (wrong password,
    // unknown role or database, pg_hba.conf): waiting will not help.
    DatabaseUnavailable(std::string message, bool rejected = false)
        : DatabaseError(std::move(message), rejected ? "28000" : "08001", !rejected), rejected_(rejected) {}
    bool rejected() const noexcept { return rejected_; }

private:
    bool rejected_;
};

// A wait on the database was given up because the caller was told to stop.
class Interrupted : public std::runtime_error {
public:
    Interrupted() : std::runtime_error("interrupted") {}
};

} // namespace projectiond::store
