#pragma once
// A PostgreSQL cluster of a test's own, beside the one scripts/with-postgres
// started: initdb'd into a temporary directory, listening on a unix socket
// there, stopped and removed with this object. Tests that move a store from
// one cluster to another need two clusters whose transaction ids are
// unrelated.

#include "child_process.hpp"
#include "store/connection.hpp"

#include <map>
#include <string>
#include <vector>

namespace projectiond::testing {

// One database of some cluster, reached by a full connection string, so that
// projectiond, libpq and the client programs (psql, pg_dump, pg_restore) all
// find it whatever PGHOST says.
class DatabaseAt {
public:
    explicit DatabaseAt(std::string conninfo) : conninfo_(std::move(conninfo)) {}

    const std::string& conninfo() const noexcept { return conninfo_; }
    store::Connection connect() const;
    // Runs one statement and returns the first column of the first row as text.
    std::string scalar(const std::string& sql) const;
    long long number(const std::string& sql) const;

private:
    std::string conninfo_;
};

// The database `name` of the cluster that scripts/with-postgres started.
DatabaseAt harness_database(const std::string& name);

class ThrowawayCluster {
public:
    // `settings`: extra postgresql.conf lines, e.g. "wal_level = logical".
    explicit ThrowawayCluster(const std::vector<std::string>& settings = {});
    ThrowawayCluster(const ThrowawayCluster&) = delete;
    ThrowawayCluster& operator=(const ThrowawayCluster&) = delete;
    // Stops the server (immediately: its data is thrown away) and removes
    // the directory.
    ~ThrowawayCluster();

    const std::string& socket_directory() const noexcept { return directory_; }
    int port() const noexcept { return port_; }
    std::string conninfo(const std::string& dbname) const;
    // Creates the database and returns it.
    DatabaseAt create_database(const std::string& name) const;
    // The server's log so far (for failure messages).
    std::string server_log() const;

private:
    std::string directory_;
    std::string data_;
    int port_ = 0;
};

// A program of the PostgreSQL installation the harness runs (initdb,
// pg_dump, pg_restore, psql...): the one next to $PROJECTIOND_TEST_PGCTL, so
// that client and server versions match.
std::string postgres_program(const std::string& name);

// Runs a PostgreSQL client program (psql, pg_dump, pg_restore...) to
// completion; `env` as for run_command.
CommandResult run_postgres_program(const std::string& name, const std::vector<std::string>& args,
                                   const std::map<std::string, std::string>& env = {},
                                   std::chrono::milliseconds timeout = std::chrono::seconds(120));

} // namespace projectiond::testing
