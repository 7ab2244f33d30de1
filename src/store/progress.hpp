#pragma once
// How far each projection partition has come, as stored in the database: what
// `status` prints and monitoring reads.

#include "store/connection.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::store {

struct PartitionProgress {
    std::string projection;
    int partition = 0;
    int partitions = 1;
    bool has_checkpoint = false; // a checkpoint row exists
    std::int64_t last_global_position = 0;
    std::int64_t remaining = 0; // events not yet passed by the cursor
    std::int64_t events_processed = 0;
    std::string state = "active"; // active | failed
    std::optional<std::string> last_error;
    std::optional<std::int64_t> failed_position;
    std::optional<std::string> updated_at;
    bool running = false;             // a runner holds the partition's lock right now
    std::optional<std::string> owner; // host and pid of the runner that last owned it

    bool started() const noexcept { return last_global_position > 0 || events_processed > 0; }
};

struct StoreProgress {
    std::int64_t total_events = 0;
    std::int64_t max_global_position = 0;
    std::vector<PartitionProgress> partitions; // every checkpoint row, by name and partition
};

StoreProgress read_progress(Connection& conn);

} // namespace projectiond::store
