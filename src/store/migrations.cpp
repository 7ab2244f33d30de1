#include "store/migrations.hpp"

#include "store/database_error.hpp"
#include "store/transaction.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

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
    SchemaState state{applied_version(conn), latest_known(), {}};
    if (state.applied_version == 0) {
        return state;
    }
    const Result applied = conn.exec("SELECT version, name, checksum FROM schema_migrations ORDER BY version");
    for (int row = 0; row < applied.rows(); ++row) {
        for (const Migration& migration : embedded_migrations()) {
            if (migration.version == applied.int64(row, 0) && migration.checksum != applied.text(row, 2)) {
                state.altered.push_back(fmt::format("{} (applied with checksum {}, this projectiond carries {})",
                                                    migration.name, applied.text(row, 2).substr(0, 12),
                                                    migration.checksum.substr(0, 12)));
            }
        }
    }
    return state;
}

std::string describe_altered(const SchemaState& state) {
    return fmt::format("migration{} {} changed after {} applied: the database may not have the schema this "
                       "projectiond expects. Restore the original migration files (a mixed-up installation?) "
                       "or recreate the database",
                       state.altered.size() == 1 ? "" : "s", fmt::join(state.altered, ", "),
                       state.altered.size() == 1 ? "it was" : "they were");
}

int migrate(Connection& conn, const std::function<void(const Migration&)>& applied) {
    MigrationLock lock(conn);
    conn.exec(create_bookkeeping);
    const SchemaState state = schema_state(conn);
    if (!state.altered.empty()) {
        throw DatabaseError(describe_altered(state), "PJ008");
    }
    const int from = state.applied_version;
    int count = 0;
    for (const Migration& migration : embedded_migrations()) {
        if (migration.version <= from) {
            continue;
        }
        try {
            Transaction tx(conn);
            conn.exec(migration.sql);
            conn.exec(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                {std::to_string(migration.version), std::string(migration.name), std::string(migration.checksum)});
            tx.commit();
        } catch (const DatabaseError& error) {
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
