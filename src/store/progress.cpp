#include "store/progress.hpp"

#include "store/checkpoints.hpp"

#include <fmt/format.h>

namespace projectiond::store {

StoreProgress read_progress(Connection& conn) {
    StoreProgress progress;
    // One statement, so the totals and the checkpoints come from one snapshot.
    const Result result = conn.exec(fmt::format(
        R"sql(
WITH totals AS (
    SELECT count(*) AS total, coalesce(max(global_position), 0) AS max_position FROM events)
SELECT t.total, t.max_position,
       c.projection_name, c.partition_index, c.partition_count, c.last_global_position,
       (SELECT count(*) FROM events e
         WHERE (e.transaction_id, e.global_position) > (c.cursor_transaction_id, c.cursor_global_position))
           AS remaining,
       c.events_processed, c.state, c.last_error, c.failed_global_position,
       to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at,
       {} AS running,
       c.owner
  FROM totals t
  LEFT JOIN projection_checkpoints c ON true
 ORDER BY c.projection_name, c.partition_index)sql",
        partition_owned_sql("c.lock_key")));
    for (int row = 0; row < result.rows(); ++row) {
        progress.total_events = result.int64(row, 0);
        progress.max_global_position = result.int64(row, 1);
        if (result.is_null(row, 2)) {
            continue;
        }
        PartitionProgress p;
        p.projection = std::string(result.text(row, 2));
        p.partition = static_cast<int>(result.int64(row, 3));
        p.partitions = static_cast<int>(result.int64(row, 4));
        p.has_checkpoint = true;
        p.last_global_position = result.int64(row, 5);
        p.remaining = result.int64(row, 6);
        p.events_processed = result.int64(row, 7);
        p.state = std::string(result.text(row, 8));
        p.last_error = result.optional_text(row, 9);
        if (!result.is_null(row, 10)) {
            p.failed_position = result.int64(row, 10);
        }
        p.updated_at = result.optional_text(row, 11);
        p.running = result.boolean(row, 12);
        p.owner = result.optional_text(row, 13);
        progress.partitions.push_back(std::move(p));
    }
    return progress;
}

} // namespace projectiond::store
