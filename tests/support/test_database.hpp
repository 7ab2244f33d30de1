#pragma once
// A fresh database in the throwaway cluster that scripts/with-postgres started
// (reached through PGHOST/PGPORT/PGUSER), migrated, and dropped afterwards.

#include "store/connection.hpp"

#include <string>

namespace projectiond::testing {

class TestDatabase {
public:
    // `migrated`: apply projectiond's migrations to it.
    explicit TestDatabase(bool migrated = true);
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;
    ~TestDatabase();

    const std::string& name() const noexcept { return name_; }
    // A libpq conninfo naming this database; host and user come from PG*.
    std::string conninfo() const { return "dbname=" + name_; }
    store::Connection connect() const;
    // Runs one statement and returns the first column of the first row as text.
    std::string scalar(const std::string& sql) const;
    long long number(const std::string& sql) const;

private:
    std::string name_;
};

// True when the test runs under scripts/with-postgres.
bool cluster_available();

// Stops / starts the throwaway cluster's server (for outage tests). An
// immediate stop is a crash: no checkpoint, recovery at the next start.
void stop_cluster(bool immediate = false);
void start_cluster();
// Starts the server unless it runs.
void ensure_cluster_running();
// Brings the server back when it goes out of scope, so that a test that
// stopped it and then failed does not take the next tests down with it.
struct ClusterBack {
    ClusterBack() = default;
    ClusterBack(const ClusterBack&) = delete;
    ClusterBack& operator=(const ClusterBack&) = delete;
    ~ClusterBack();
};
// Re-reads pg_hba.conf and postgresql.conf.
void reload_cluster();
// The cluster's data directory (for pg_hba.conf).
std::string cluster_data_directory();
// Makes `role` log in with its password over the unix socket (a line of its
// own first in pg_hba.conf, then a reload); once per cluster.
void require_password_for(const std::string& role);

} // namespace projectiond::testing
