#pragma once
// Runs one partition of one generation of a projection in its own thread.
// It processes batches only while the daemon's coordinator has granted it
// the partition's ownership (with a fencing token every commit checks),
// borrows a connection from the daemon's pool for each batch, and sleeps
// until the watcher wakes it when there is nothing to do.

#include "config/config.hpp"
#include "handlers/code_handler.hpp"
#include "observability/metrics.hpp"
#include "projection/frontier_board.hpp"
#include "projection/read_plan.hpp"
#include "projection/runner_control.hpp"
#include "projection/runner_health.hpp"
#include "store/checkpoints.hpp"
#include "store/connection_pool.hpp"
#include "store/frontier.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace projectiond::projection {

class BatchApplier;

// What a runner uses of the daemon; it outlives every runner.
struct RunnerServices {
    store::ConnectionPool* pool = nullptr;
    const FrontierBoard* frontier = nullptr;
    observability::Metrics* metrics = nullptr; // optional
};

class Runner {
public:
    // `schema`: where its read model's tables are (its statements run with
    // that search_path first); `building`: a new version built beside the
    // live one.
    Runner(config::Projection projection, store::PartitionKey key, std::optional<std::string> schema, bool building,
           RunnerServices services, std::uint64_t id);
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;
    // Aborts the runner if it is still going, and joins its thread.
    ~Runner();

    void start();
    void request(StopLevel level) noexcept { control_.request(level); }
    void join();
    bool finished() const noexcept { return finished_.load(); }

    // From the coordinator, any thread.
    void grant(store::Ownership owner);
    void revoke();          // another daemon has it now: stop at once
    void request_release(); // give it back at the next batch boundary
    void set_paused(bool paused);
    // A swap of generations is about to happen: a live runner takes no new
    // batch for a moment, so the new generation can catch up with it exactly.
    void set_holding(bool holding);
    void retry_failure(); // `projectiond resume` of a failed partition
    void wake() noexcept { control_.wake(); }
    // The ownership the runner works under, if any.
    std::optional<store::Ownership> ownership() const;
    bool release_requested() const;
    // Whether a newly settled event is one this partition reads.
    bool wants(const store::SettledEvent& event) const;

    const config::Projection& projection() const noexcept { return projection_; }
    const store::PartitionKey& key() const noexcept { return key_; }
    const std::optional<std::string>& schema() const noexcept { return schema_; }
    bool building() const noexcept { return building_; }
    const RunnerHealth& health() const noexcept { return health_; }
    std::uint64_t id() const noexcept { return id_; }
    // The prefix of the names of its statements prepared on pooled connections.
    std::string statement_prefix() const { return "r" + std::to_string(id_) + "_"; }

private:
    struct Grant {
        std::optional<store::Ownership> owner;
        bool release = false;
        bool paused = false;
        bool holding = false;
        bool retry = false;
    };
    enum class BatchEnd { committed, failed_and_stopped, drained };

    // The next batch, read while the last one was applied.
    struct ReadAhead {
        store::Cursor from;
        bool windowed = false;
        store::Result batch;
        std::chrono::steady_clock::time_point read_at;
    };
    // A batch read ahead and kept longer (a pause, a hold) is read again.
    static constexpr std::chrono::seconds read_ahead_shelf_life{1};
    // A read sent on a second connection; its answer is taken once the batch
    // it overlaps has committed. Never taken, the connection is closed.
    class ReadingAhead {
    public:
        ReadingAhead(store::ConnectionPool::Lease lease, store::Cursor from, bool windowed)
            : lease_(std::move(lease)), from_(from), windowed_(windowed) {}
        ReadingAhead(const ReadingAhead&) = delete;
        ReadingAhead& operator=(const ReadingAhead&) = delete;
        ~ReadingAhead();
        std::optional<ReadAhead> take();
        store::Connection& conn() noexcept { return lease_.conn(); }

    private:
        store::ConnectionPool::Lease lease_;
        store::Cursor from_;
        bool windowed_;
        bool pending_ = true;
    };

    void main() noexcept;
    bool read_is_windowed(const store::Cursor& from) const noexcept;
    std::string read_statement(bool windowed) const;
    store::Params read_params(const store::Cursor& from, bool windowed) const;
    void prepare_reads(store::ConnectionPool::Lease& lease);
    void start_reading_ahead(const store::Cursor& from);
    // One step of work under `owner`; false when there was nothing to do.
    bool step(const store::Ownership& owner, BatchApplier& applier);
    void load(store::Connection& conn, const store::Ownership& owner);
    void give_back(const store::Ownership& owner);
    BatchEnd apply_batch(store::ConnectionPool::Lease& lease, BatchApplier& applier, const store::Result& batch,
                         int rows, store::Cursor to, const store::Ownership& owner,
                         std::optional<std::int64_t> passed_max);
    // Asks the code handlers (exec, plugin) for the statements of rows
    // [0, rows); the outcome of the first event they failed, if one did.
    std::optional<struct BatchOutcome> ask_code(const store::Result& batch, int rows,
                                                std::vector<std::vector<handlers::Statement>>& statements);
    handlers::CodeHandler& code_handler(const struct PlannedHandler& handler);
    void stop_code() noexcept;
    void log_events(const store::Result& batch, int rows);
    void fail(store::Connection& conn, const store::Ownership& owner, const std::string& error,
              std::optional<std::int64_t> position);
    void set_state(RunnerState state, std::optional<std::string> error = std::nullopt);
    void set_owned(bool owned);
    void count_failure(observability::FailureKind kind);
    Grant grant_snapshot() const;

    config::Projection projection_;
    store::PartitionKey key_;
    std::optional<std::string> schema_;
    bool building_ = false;
    RunnerServices services_;
    std::uint64_t id_;
    ReadPlan plan_;
    RunnerControl control_;
    RunnerHealth health_;
    observability::PartitionMetrics* metrics_ = nullptr;
    // Waits give up at `threshold_`: drain while idle or reading, abort while a
    // batch is in flight (a drain lets it commit).
    std::atomic<StopLevel> threshold_{StopLevel::drain};
    store::Interrupt interrupt_;

    mutable std::mutex grant_mutex_;
    Grant grant_;

    // The runner thread's own state.
    std::optional<store::Ownership> loaded_for_; // the ownership the cursor below was loaded under
    store::Cursor cursor_;
    std::int64_t last_global_position_ = 0;
    std::optional<store::SkipRange> skip_;
    std::optional<ReadAhead> ahead_;
    std::optional<ReadingAhead> reading_; // during a step's apply only
    bool failed_ = false;
    bool more_ = true; // the last read suggests reading again at once
    std::chrono::steady_clock::time_point last_read_{};
    std::int64_t events_logged_ = 0;
    // Code handlers by their index in the configuration, made in this
    // runner's thread on first use (an exec child dies with the thread that
    // started it) and stopped before it ends.
    std::map<int, std::unique_ptr<handlers::CodeHandler>> code_;
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

} // namespace projectiond::projection
