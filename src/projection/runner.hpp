#pragma once
// Runs one projection partition in its own thread with its own connection:
// takes ownership of the partition, then reads batches after its checkpoint and
// applies them, until told to stop. Reconnects on its own when the database
// goes away.

#include "config/config.hpp"
#include "projection/read_plan.hpp"
#include "projection/runner_control.hpp"
#include "projection/runner_health.hpp"
#include "store/checkpoints.hpp"
#include "store/connection.hpp"

#include <optional>
#include <string>
#include <thread>

namespace projectiond::projection {

struct RunnerSettings {
    store::ConnectOptions connect;     // its interrupt is the runner's own
    config::DatabaseSettings database; // statement and lock timeouts
    std::string owner;                 // "host pid N", recorded with the checkpoint
};

class Runner {
public:
    Runner(config::Projection projection, int partition, RunnerSettings settings);
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;
    // Aborts the runner if it is still going, and joins its thread.
    ~Runner();

    void start();
    void request(StopLevel level) noexcept { control_.request(level); }
    void join();
    bool finished() const noexcept { return finished_.load(); }

    const config::Projection& projection() const noexcept { return projection_; }
    int partition() const noexcept { return partition_; }
    const RunnerHealth& health() const noexcept { return health_; }

private:
    struct Progress {
        store::Cursor cursor;
        std::int64_t last_global_position = 0;
    };
    enum class BatchEnd { committed, failed_and_stopped, drained };

    void main() noexcept;
    // One connection's life; returns when told to stop or when the projection failed.
    void session();
    bool take_ownership(store::Connection& conn, const store::Checkpoint& checkpoint);
    void configure_session(store::Connection& conn);
    BatchEnd apply_batch(store::Connection& conn, class BatchApplier& applier, const store::Result& batch, int rows,
                         store::Cursor to, Progress& progress);
    void log_events(const store::Result& batch, int rows);
    void fail(store::Connection& conn, const std::string& error, std::optional<std::int64_t> position);
    void set_state(RunnerState state);

    config::Projection projection_;
    int partition_;
    RunnerSettings settings_;
    ReadPlan plan_;
    RunnerControl control_;
    RunnerHealth health_;
    // Waits give up at `threshold_`: drain while idle or reading, abort while a
    // batch is in flight (a drain lets it commit).
    std::atomic<StopLevel> threshold_{StopLevel::drain};
    store::Interrupt interrupt_;
    std::int64_t events_logged_ = 0;
    bool failed_ = false;
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

} // namespace projectiond::projection
