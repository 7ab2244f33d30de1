#pragma once
// Reading and writing projection_checkpoints rows outside a batch: creating
// them, taking ownership, recording failures, rewinding. (A batch advances its
// checkpoint itself, inside its own transaction: see projection/batch_applier.)

#include "store/connection.hpp"

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace projectiond::store {

// Where reading resumes: after this (transaction_id, global_position) in
// reading order. {0, 0} is before every event.
struct Cursor {
    std::uint64_t transaction_id = 0;
    std::int64_t position = 0;
    auto operator<=>(const Cursor&) const = default;
    std::string transaction_text() const { return std::to_string(transaction_id); }
    std::string position_text() const { return std::to_string(position); }
};

std::uint64_t parse_transaction_id(std::string_view text);

struct Checkpoint {
    bool stored = false; // false: not created, because the projection's partition count differs
    Cursor cursor;
    std::int64_t last_global_position = 0;
    std::int64_t events_processed = 0;
    int partition_count = 1;
    int lock_key = 0;
    bool failed = false;
    std::optional<std::string> last_error;
};

// Creates the row when missing and returns it, unless the projection's stored
// rows were written for another partition count: then nothing is created and
// the result has stored == false and that count in partition_count.
Checkpoint ensure_checkpoint(Connection& conn, const std::string& projection, int partition, int partitions);
Checkpoint load_checkpoint(Connection& conn, const std::string& projection, int partition);

// Session-level ownership of one partition; released when the session ends.
bool try_lock_partition(Connection& conn, int lock_key);
// An SQL condition, true while some session holds the lock try_lock_partition
// takes for the lock_key in the SQL expression `lock_key`.
std::string partition_owned_sql(std::string_view lock_key);

// Clears a recorded failure and notes who owns the partition now.
void claim_checkpoint(Connection& conn, const std::string& projection, int partition, const std::string& owner);
void record_failure(Connection& conn, const std::string& projection, int partition, const std::string& error,
                    std::optional<std::int64_t> position);
// Shows monitoring that an idle, caught-up runner is alive (updated_at).
void touch_checkpoint(Connection& conn, const std::string& projection, int partition);

struct ResetResult {
    int partitions = 0;
    std::int64_t position = 0;
};
// Rewinds every partition of `projection` so the events after `position` are
// processed again, creating rows for `partitions` partitions. Fails with
// DatabaseError PJ003 when a running daemon owns one of them.
ResetResult reset_checkpoints(Connection& conn, const std::string& projection, int partitions, std::int64_t position);

} // namespace projectiond::store
