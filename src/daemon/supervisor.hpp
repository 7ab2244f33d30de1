#pragma once
// Owns the runners: one per projection partition. Starts them, stops them
// (drain or abort), swaps them on reload, and sums up their health for
// STATUS= and the watchdog.

#include "config/config.hpp"
#include "projection/runner.hpp"

#include <chrono>
#include <memory>
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

class Supervisor {
public:
    explicit Supervisor(projection::RunnerSettings settings);
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;
    ~Supervisor();

    void start(const config::Projection& projection);
    // Drains the runners of `name`; they are joined by reap().
    void retire(const std::string& name);
    void replace_settings(projection::RunnerSettings settings) { settings_ = std::move(settings); }

    void request_all(projection::StopLevel level);
    // Joins runners that have finished after being retired.
    void reap();
    bool all_finished() const;
    void join_all();

    // Every runner connected once (and owns, or stands by for, its partition).
    bool all_started() const;
    // Every runner made progress or waited healthily within `limit`.
    bool all_alive(std::chrono::steady_clock::duration limit) const;
    // "3 projections: 2 caught up, 1 behind by 1532".
    std::string summary() const;
    std::size_t runner_count() const noexcept { return active_.size(); }

private:
    projection::RunnerSettings settings_;
    std::vector<std::unique_ptr<projection::Runner>> active_;
    std::vector<std::unique_ptr<projection::Runner>> retiring_;
};

} // namespace projectiond::daemon
