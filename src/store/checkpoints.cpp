#include "store/checkpoints.hpp"

#include "store/database_error.hpp"
#include "store/migrations.hpp"

#include <charconv>

#include <fmt/format.h>

namespace projectiond::store {

namespace {

const char* const select_checkpoint = R"sql(
SELECT cursor_transaction_id::text, cursor_global_position, last_global_position, events_processed,
       partition_count, lock_key, state, last_error
  FROM projection_checkpoints
 WHERE projection_name = $1 AND partition_index = $2::integer)sql";

Checkpoint checkpoint_from(const Result& result) {
    Checkpoint checkpoint;
    checkpoint.cursor.transaction_id = parse_transaction_id(result.text(0, 0));
    checkpoint.cursor.position = result.int64(0, 1);
    checkpoint.last_global_position = result.int64(0, 2);
    checkpoint.events_processed = result.int64(0, 3);
    checkpoint.partition_count = static_cast<int>(result.int64(0, 4));
    checkpoint.lock_key = static_cast<int>(result.int64(0, 5));
    checkpoint.failed = result.text(0, 6) == "failed";
    checkpoint.last_error = result.optional_text(0, 7);
    checkpoint.stored = true;
    return checkpoint;
}

} // namespace

std::uint64_t parse_transaction_id(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
        throw std::runtime_error(fmt::format("expected a transaction id, got '{}'", text));
    }
    return value;
}

Checkpoint ensure_checkpoint(Connection& conn, const std::string& projection, int partition, int partitions) {
    conn.exec("BEGIN");
    try {
        // One projection's rows are created under one lock, so two daemons
        // with different partition counts cannot both create theirs.
        conn.exec("SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
                  {std::to_string(projection_creation_lock_namespace), projection});
        const Result counts = conn.exec(
            "SELECT min(partition_count), max(partition_count) FROM projection_checkpoints WHERE projection_name = $1",
            {projection});
        if (!counts.is_null(0, 0) && (counts.int64(0, 0) != partitions || counts.int64(0, 1) != partitions)) {
            conn.exec("ROLLBACK");
            Checkpoint mismatch;
            mismatch.partition_count =
                static_cast<int>(counts.int64(0, 0) != partitions ? counts.int64(0, 0) : counts.int64(0, 1));
            return mismatch;
        }
        conn.exec(R"sql(
INSERT INTO projection_checkpoints (projection_name, partition_index, partition_count)
VALUES ($1, $2::integer, $3::integer)
ON CONFLICT (projection_name, partition_index) DO NOTHING)sql",
                  {projection, std::to_string(partition), std::to_string(partitions)});
        conn.exec("COMMIT");
    } catch (...) {
        if (conn.healthy()) {
            conn.exec("ROLLBACK");
        }
        throw;
    }
    return load_checkpoint(conn, projection, partition);
}

Checkpoint load_checkpoint(Connection& conn, const std::string& projection, int partition) {
    const Result result = conn.exec(select_checkpoint, {projection, std::to_string(partition)});
    if (result.rows() != 1) {
        throw DatabaseError(fmt::format("the checkpoint of {} partition {} disappeared (was the projection reset?)",
                                        projection, partition),
                            "PJ002");
    }
    return checkpoint_from(result);
}

bool try_lock_partition(Connection& conn, int lock_key) {
    const Result result = conn.exec("SELECT pg_try_advisory_lock($1::integer, $2::integer)",
                                    {std::to_string(advisory_lock_namespace), std::to_string(lock_key)});
    return result.boolean(0, 0);
}

std::string partition_owned_sql(std::string_view lock_key) {
    return fmt::format("EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
                       "AND l.objsubid = 2 AND l.classid = {}::oid AND l.objid = ({})::oid)",
                       advisory_lock_namespace, lock_key);
}

void claim_checkpoint(Connection& conn, const std::string& projection, int partition, const std::string& owner) {
    conn.exec(R"sql(
UPDATE projection_checkpoints
   SET state = 'active', last_error = NULL, failed_global_position = NULL, failed_at = NULL, owner = $3
 WHERE projection_name = $1 AND partition_index = $2::integer)sql",
              {projection, std::to_string(partition), owner});
}

void record_failure(Connection& conn, const std::string& projection, int partition, const std::string& error,
                    std::optional<std::int64_t> position) {
    conn.exec(R"sql(
UPDATE projection_checkpoints
   SET state = 'failed', last_error = $3, failed_global_position = $4::bigint, failed_at = now(), updated_at = now()
 WHERE projection_name = $1 AND partition_index = $2::integer)sql",
              {projection, std::to_string(partition), error,
               position ? std::optional<std::string>(std::to_string(*position)) : std::nullopt});
}

void touch_checkpoint(Connection& conn, const std::string& projection, int partition) {
    conn.exec("UPDATE projection_checkpoints SET updated_at = now() "
              "WHERE projection_name = $1 AND partition_index = $2::integer",
              {projection, std::to_string(partition)});
}

ResetResult reset_checkpoints(Connection& conn, const std::string& projection, int partitions, std::int64_t position) {
    conn.exec("BEGIN");
    try {
        // Lock the rows, then make sure no runner owns any of them: a runner
        // takes its advisory lock before it reads the row, and re-reads it after.
        const Result rows = conn.exec(fmt::format("SELECT partition_index, lock_key, {} AS owned "
                                                  "FROM projection_checkpoints c WHERE projection_name = $1 "
                                                  "FOR UPDATE",
                                                  partition_owned_sql("c.lock_key")),
                                      {projection});
        for (int row = 0; row < rows.rows(); ++row) {
            if (rows.boolean(row, 2)) {
                throw DatabaseError(
                    fmt::format("projection '{}' partition {} is being processed by a running projectiond; stop "
                                "it (systemctl stop projectiond) and run reset again",
                                projection, rows.text(row, 0)),
                    "PJ003");
            }
        }
        // Reading order is by transaction, so "after position N" starts at the
        // first event in reading order whose position is above N.
        const Result cursor = conn.exec(R"sql(
WITH first_after AS (
    SELECT transaction_id, global_position FROM events
     WHERE global_position > $1::bigint
     ORDER BY transaction_id, global_position
     LIMIT 1),
last_event AS (
    SELECT transaction_id, global_position FROM events
     ORDER BY transaction_id DESC, global_position DESC
     LIMIT 1)
SELECT CASE WHEN $1::bigint = 0 THEN '0'::xid8
            WHEN f.transaction_id IS NOT NULL THEN f.transaction_id
            ELSE coalesce(l.transaction_id, '0'::xid8) END::text,
       CASE WHEN $1::bigint = 0 THEN 0
            WHEN f.transaction_id IS NOT NULL THEN f.global_position - 1
            ELSE coalesce(l.global_position, 0) END
  FROM (SELECT 1) one
  LEFT JOIN first_after f ON true
  LEFT JOIN last_event l ON true)sql",
                                        {std::to_string(position)});
        const std::string xid(cursor.text(0, 0));
        const std::string cursor_position(cursor.text(0, 1));
        conn.exec("DELETE FROM projection_checkpoints WHERE projection_name = $1 AND partition_index >= $2::integer",
                  {projection, std::to_string(partitions)});
        for (int partition = 0; partition < partitions; ++partition) {
            conn.exec(R"sql(
INSERT INTO projection_checkpoints AS c
       (projection_name, partition_index, partition_count, cursor_transaction_id, cursor_global_position,
        last_global_position)
VALUES ($1, $2::integer, $3::integer, $4::xid8, $5::bigint,
        (SELECT coalesce(max(global_position + 0), 0) FROM events
          WHERE (transaction_id, global_position) <= ($4::xid8, $5::bigint)))
ON CONFLICT (projection_name, partition_index) DO UPDATE
   SET partition_count = EXCLUDED.partition_count,
       cursor_transaction_id = EXCLUDED.cursor_transaction_id,
       cursor_global_position = EXCLUDED.cursor_global_position,
       last_global_position = EXCLUDED.last_global_position,
       events_processed = 0, state = 'active', last_error = NULL, failed_global_position = NULL,
       failed_at = NULL, updated_at = now())sql",
                      {projection, std::to_string(partition), std::to_string(partitions), xid, cursor_position});
        }
        conn.exec("COMMIT");
    } catch (...) {
        if (conn.healthy()) {
            conn.exec("ROLLBACK");
        }
        throw;
    }
    return ResetResult{partitions, position};
}

} // namespace projectiond::store
