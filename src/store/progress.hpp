#pragma once
// How far each projection partition has come, as stored in the database: what
// `status` prints and monitoring reads. Counting is bounded: exact up to a
// million events, an estimate (said as such) above, so `status` stays fast on
// any store.

#include "store/connection.hpp"
#include "store/daemon_registry.hpp"
#include "store/horizon_holder.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::store {

// Above this many events, counts are estimates.
inline constexpr std::int64_t exact_count_limit = 1000000;

struct PartitionProgress {
    std::string projection;
    int generation = 1;
    int partition = 0;
    int partitions = 1;
    bool has_checkpoint = false; // a checkpoint row exists
    std::int64_t last_global_position = 0;
    std::int64_t remaining = 0; // events not yet passed by the cursor
    bool remaining_estimated = false;
    double lag_seconds = 0; // age of the oldest event not yet passed; 0 when caught up
    std::int64_t events_processed = 0;
    std::string state = "active"; // active | failed
    std::optional<std::string> last_error;
    std::optional<std::int64_t> failed_position;
    std::optional<std::string> failed_event_id;
    std::optional<std::string> updated_at;
    bool running = false;             // a live daemon owns it right now
    std::optional<std::string> owner; // host and pid of that daemon (or of the last one)
    bool paused = false;
    // A new version built beside the live one (blue/green).
    bool building = false;
    int version = 1;
    std::optional<std::string> schema;
    double events_per_second = 0; // a building generation's average since it began

    bool started() const noexcept { return last_global_position > 0 || events_processed > 0; }
};

struct StoreProgress {
    std::int64_t total_events = 0;
    bool total_estimated = false;
    std::int64_t max_global_position = 0;
    std::vector<PartitionProgress> partitions; // every live-generation checkpoint row, by name and partition
    std::vector<LiveDaemon> daemons;
    // The transaction committed events wait behind, when they have waited a
    // second or more.
    std::optional<HorizonHolder> waiting_for;
    // Why no projection may move on at all, when something keeps them.
    std::optional<std::string> blocked;
};

// `only`: the projections to report (all when nullopt). The daemon samples
// the ones it runs: a checkpoint left behind by a projection taken out of the
// configuration may be far behind, and counting its lag every few seconds
// would cost the server a scan of the store each time.
StoreProgress read_progress(Connection& conn, const std::optional<std::vector<std::string>>& only = std::nullopt);

} // namespace projectiond::store
