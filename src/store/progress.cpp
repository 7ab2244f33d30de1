#include "store/progress.hpp"

#include "store/checkpoints.hpp"
#include "store/frontier.hpp"
#include "store/transaction.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace projectiond::store {

StoreProgress read_progress(Connection& conn, const std::optional<std::vector<std::string>>& only) {
    StoreProgress progress;
    // One snapshot for every figure.
    Transaction tx(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const Result totals = conn.exec(fmt::format(R"sql(
SELECT m.max_position,
       CASE WHEN m.max_position <= {0} THEN (SELECT count(*) FROM events)
            ELSE greatest((SELECT reltuples::bigint FROM pg_class WHERE oid = 'events'::regclass), 0) END,
       m.max_position > {0}
  FROM (SELECT coalesce(max(global_position), 0) AS max_position FROM events) m)sql",
                                                exact_count_limit));
    progress.max_global_position = totals.int64(0, 0);
    progress.total_events = totals.int64(0, 1);
    progress.total_estimated = totals.boolean(0, 2);
    if (progress.total_estimated && progress.total_events == 0) {
        progress.total_events = progress.max_global_position; // never analyzed: positions are the best guess
    }

    // Events after each cursor: counted by an index-only range scan that stops
    // after a million, or estimated from positions when clearly more.
    const Result rows = conn.exec(fmt::format(R"sql(
SELECT c.projection_name, c.generation, c.partition_index, c.partition_count, c.last_global_position,
       CASE WHEN $1::bigint - c.last_global_position > {0} THEN $1::bigint - c.last_global_position
            ELSE (SELECT count(*) FROM (
                      SELECT 1 FROM events e
                       WHERE (e.store_epoch, e.transaction_id, e.global_position)
                           > (c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position)
                       LIMIT {0} + 1) n) END AS remaining,
       $1::bigint - c.last_global_position > {0} AS estimated,
       coalesce(extract(epoch FROM clock_timestamp() - (
           SELECT o.created_at FROM events o
            WHERE (o.store_epoch, o.transaction_id, o.global_position)
                > (c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position)
            ORDER BY o.store_epoch, o.transaction_id, o.global_position LIMIT 1)), 0)::float8 AS lag_seconds,
       c.events_processed, c.state, c.last_error, c.failed_global_position,
       (SELECT f.event_id::text FROM events f WHERE f.global_position = c.failed_global_position),
       to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       {1} AS running, c.owner, coalesce(p.paused, false),
       c.generation IS NOT DISTINCT FROM p.building_generation AS building,
       coalesce(g.version, 1), g.schema_name,
       coalesce(c.events_processed / nullif(extract(epoch FROM clock_timestamp() - g.created_at), 0), 0)::float8
  FROM projection_checkpoints c
  LEFT JOIN projectiond_projections p ON p.projection_name = c.projection_name
  LEFT JOIN projectiond_generations g ON g.projection_name = c.projection_name AND g.generation = c.generation
 WHERE (c.generation = coalesce(p.live_generation, c.generation) OR c.generation = p.building_generation)
   AND ($2::text IS NULL OR c.projection_name = ANY (string_to_array($2::text, ',')))
 ORDER BY c.projection_name, c.generation IS NOT DISTINCT FROM p.building_generation, c.partition_index)sql",
                                              exact_count_limit, owned_by_live_daemon_sql("c")),
                                  {std::to_string(progress.max_global_position),
                                   // Projection names are letters, digits, '_', '-' and '.': never a comma.
                                   only ? std::optional<std::string>(fmt::format("{}", fmt::join(*only, ",")))
                                        : std::nullopt});
    for (int row = 0; row < rows.rows(); ++row) {
        PartitionProgress p;
        p.projection = std::string(rows.text(row, 0));
        p.generation = static_cast<int>(rows.int64(row, 1));
        p.partition = static_cast<int>(rows.int64(row, 2));
        p.partitions = static_cast<int>(rows.int64(row, 3));
        p.has_checkpoint = true;
        p.last_global_position = rows.int64(row, 4);
        p.remaining = rows.int64(row, 5);
        p.remaining_estimated = rows.boolean(row, 6) || p.remaining > exact_count_limit;
        p.lag_seconds = std::max(0.0, std::stod(std::string(rows.text(row, 7))));
        p.events_processed = rows.int64(row, 8);
        p.state = std::string(rows.text(row, 9));
        p.last_error = rows.optional_text(row, 10);
        if (!rows.is_null(row, 11)) {
            p.failed_position = rows.int64(row, 11);
        }
        p.failed_event_id = rows.optional_text(row, 12);
        p.updated_at = rows.optional_text(row, 13);
        p.running = rows.boolean(row, 14);
        p.owner = rows.optional_text(row, 15);
        p.paused = rows.boolean(row, 16);
        p.building = rows.boolean(row, 17);
        p.version = static_cast<int>(rows.int64(row, 18));
        p.schema = rows.optional_text(row, 19);
        p.events_per_second = std::stod(std::string(rows.text(row, 20)));
        progress.partitions.push_back(std::move(p));
    }
    progress.daemons = live_daemons(conn);
    progress.blocked = why_blocked(conn);
    if (auto holder = horizon_holder(conn); holder && holder->events_waiting_seconds >= 1.0) {
        progress.waiting_for = std::move(holder);
    }
    tx.commit();
    return progress;
}

} // namespace projectiond::store
