#pragma once
// Owns the runners: one per projection partition. Starts them, stops them
// (drain or abort), swaps them on reload, and sums up their health for
// STATUS=, the log and the watchdog. The main thread changes the set; the
// coordinator thread walks it (under the same lock) to hand out ownership.

#include "config/config.hpp"
#include "projection/runner.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace projectiond::daemon {

struct ReloadPlan {
    std::vector<const config::Projection*> start; // added or changed: setup, then new runners
    std::vector<std::string> stop;                // removed or changed: drain the old runners
    std::vector<std::string> unchanged;
    int added = 0, changed = 0, removed = 0;
};

// What a reload from `current` to `next` has to do. A changed database
// section restarts every projection.
ReloadPlan plan_reload(const config::Config& current, const config::Config& next);

// One generation of a projection to run: the definition it runs and where
// its tables are.
struct RunSpec {
    config::Projection projection;
    int generation = 1;
    std::optional<std::string> schema;
    bool building = false; // a new version built beside the live one
};

class Supervisor {
public:
    explicit Supervisor(projection::RunnerServices services);
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;
    ~Supervisor();

    void start(const RunSpec& spec);
    // A projection without schema or version (tests and benchmarks).
    void start(const config::Projection& projection, int generation) { start(RunSpec{projection, generation, {}, false}); }
    // Drains the runners of `name`; they are joined by reap().
    void retire(const std::string& name);

    void request_all(projection::StopLevel level);
    // Joins runners that have finished after being retired.
    void reap();
    bool all_finished() const;
    void join_all();

    // For the coordinator: every active runner, and whether a retiring one
    // still works on a partition.
    void for_each_active(const std::function<void(projection::Runner&)>& visit) const;
    bool retiring(const store::PartitionKey& key) const;
    std::vector<std::string> projection_names() const;
    // The generations each projection runs here: live, and building if any.
    struct Running {
        std::optional<int> live;
        std::optional<int> building;
    };
    std::map<std::string, Running> running_generations() const;

    // Every runner's thread runs and knows what it owns.
    bool all_started() const;
    // Every runner made progress or waited healthily within `limit`.
    bool all_alive(std::chrono::steady_clock::duration limit) const;
    // "3 projections: 2 caught up, 1 behind by 1532".
    std::string summary(std::int64_t max_position, bool database_up = true) const;
    // One line per projection that made progress since the last call:
    // events applied, rate, checkpoint, how far behind.
    void log_progress(std::int64_t max_position);
    std::size_t runner_count() const;

private:
    projection::RunnerServices services_;
    std::uint64_t next_runner_id_ = 1;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<projection::Runner>> active_;
    std::vector<std::unique_ptr<projection::Runner>> retiring_;
    struct Logged {
        std::int64_t applied = 0;
        std::chrono::steady_clock::time_point at;
    };
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::map<std::string, Logged> logged_;
};

} // namespace projectiond::daemon
