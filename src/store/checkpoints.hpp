#pragma once
// Reading and writing projection_checkpoints rows outside a batch: creating
// them, loading them, recording failures, releasing ownership, rewinding. (A
// batch advances its checkpoint itself, inside its own transaction: see
// projection/batch_applier.)

#include "store/connection.hpp"

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace projectiond::store {

// A point in reading order: (store_epoch, transaction_id, global_position).
// Reading resumes after it; {0, 0, 0} is before every event.
struct Cursor {
    std::int64_t epoch = 0;
    std::uint64_t transaction_id = 0;
    std::int64_t position = 0;
    auto operator<=>(const Cursor&) const = default;
    std::string epoch_text() const { return std::to_string(epoch); }
    std::string transaction_text() const { return std::to_string(transaction_id); }
    std::string position_text() const { return std::to_string(position); }
};

std::uint64_t parse_transaction_id(std::string_view text);

// One partition of one generation of a projection: a checkpoint row.
struct PartitionKey {
    std::string projection;
    int generation = 1;
    int partition = 0;
    bool operator==(const PartitionKey&) const = default;
};

// Who owns a partition: a daemon and the fencing token of its ownership.
struct Ownership {
    std::int64_t daemon = 0;
    std::int64_t epoch = 0;
    bool operator==(const Ownership&) const = default;
};

// After `reset --to-position N`: the events at or below position N at or
// before `through` in reading order had been handled before the reset and
// are passed over.
struct SkipRange {
    Cursor through;
    std::int64_t at_or_below = 0;
};

struct Checkpoint {
    Cursor cursor;
    std::int64_t last_global_position = 0;
    std::int64_t events_processed = 0;
    int partition_count = 1;
    bool failed = false;
    std::optional<std::string> last_error;
    std::optional<SkipRange> skip;
    Ownership owner;
};

// Throws DatabaseError PJ002 when the row is gone.
Checkpoint load_checkpoint(Connection& conn, const PartitionKey& key);

// Fenced: these change nothing unless `owner` still owns the partition.
void record_failure(Connection& conn, const PartitionKey& key, const Ownership& owner, const std::string& error,
                    std::optional<std::int64_t> position);
void clear_failure(Connection& conn, const PartitionKey& key, const Ownership& owner);
// Gives the partition up, for another daemon (or this one) to claim.
void release_partition(Connection& conn, const PartitionKey& key, const Ownership& owner);

// An SQL condition on checkpoint rows aliased `alias`: a live daemon owns it.
std::string owned_by_live_daemon_sql(std::string_view alias);

struct ResetResult {
    int partitions = 0;
    std::int64_t position = 0;
};
// Rewinds every partition of `projection`'s live generation so that exactly
// the events above `position` are processed again (and every event it had not
// reached yet), creating rows for `partitions` partitions. Fails with
// DatabaseError PJ003 when a running daemon owns one of them and the
// projection is not paused, and PJ007 when the request cannot be met exactly
// (see the message).
ResetResult reset_checkpoints(Connection& conn, const std::string& projection, int partitions, std::int64_t position);

} // namespace projectiond::store
