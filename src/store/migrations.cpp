#include "store/migrations.hpp"

#include "store/database_error.hpp"

#include <fmt/format.h>

namespace projectiond::store {

namespace {

const char* const create_bookkeeping = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
))sql";

int latest_known() {
    const auto all = embedded_migrations();
    return all.empty() ? 0 : all.back().version;
}

int applied_version(Connection& conn) {
    const Result exists = conn.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (!exists.boolean(0, 0)) {
        return 0;
    }
    const Result max = conn.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
    return static_cast<int>(max.int64(0, 0));
}

// Releases the session advisory lock however migrate() leaves.
class MigrationLock {
public:
    explicit MigrationLock(Connection& conn) : conn_(conn) {
        conn_.exec(fmt::format("SELECT pg_advisory_lock({}, {})", advisory_lock_namespace, migration_lock_key));
    }
    MigrationLock(const MigrationLock&) = delete;
    MigrationLock& operator=(const MigrationLock&) = delete;
    ~MigrationLock() {
        try {
            if (conn_.healthy()) {
                conn_.exec(
                    fmt::format("SELECT pg_advisory_unlock({}, {})", advisory_lock_namespace, migration_lock_key));
            }
        } catch (...) {
            // The session ends soon and takes the lock with it.
        }
    }

private:
    Connection& conn_;
};

} // namespace

SchemaState schema_state(Connection& conn) {
    return SchemaState{applied_version(conn), latest_known()};
}

int migrate(Connection& conn, const std::function<void(const Migration&)>& applied) {
    MigrationLock lock(conn);
    conn.exec(create_bookkeeping);
    const int from = applied_version(conn);
    int count = 0;
    for (const Migration& migration : embedded_migrations()) {
        if (migration.version <= from) {
            continue;
        }
        try {
            conn.exec("BEGIN");
            conn.exec(migration.sql);
            conn.exec(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                {std::to_string(migration.version), std::string(migration.name), std::string(migration.checksum)});
            conn.exec("COMMIT");
        } catch (const DatabaseError& error) {
            if (conn.healthy()) {
                conn.exec("ROLLBACK");
            }
            throw DatabaseError(
                fmt::format("migration {} failed and was rolled back: {}", migration.name, error.what()),
                error.sqlstate(), error.connection_lost());
        }
        ++count;
        applied(migration);
    }
    return count;
}

} // namespace projectiond::store
