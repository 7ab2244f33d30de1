#pragma once
// What `projectiond run` runs, without the process around it (signals,
// systemd, reloads): the connection pool, the coordinator and the runners,
// built and torn down in order. The daemon owns one; benchmarks run one in
// their own process.

#include "config/config.hpp"
#include "daemon/coordinator.hpp"
#include "daemon/supervisor.hpp"
#include "observability/metrics.hpp"
#include "projection/frontier_board.hpp"
#include "store/connection_pool.hpp"

#include <cstdint>
#include <string>

namespace projectiond::daemon {

struct EngineSettings {
    store::ConnectOptions connect;
    config::Config config; // database and daemon sections
    store::DaemonIdentity identity;
};

store::PoolOptions pool_options(const store::ConnectOptions& connect, const config::Config& config);
CoordinatorSettings coordinator_settings(const store::ConnectOptions& connect, const config::Config& config,
                                         const store::DaemonIdentity& identity);

class Engine {
public:
    explicit Engine(const EngineSettings& settings);
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    // Aborts what still runs.
    ~Engine() = default;

    // Starts the coordinator once the runners of the first projections exist.
    void start_coordinator() { coordinator_.start(); }
    // Drains the runners, then gives every partition back.
    void drain_and_stop();

    store::ConnectionPool& pool() noexcept { return pool_; }
    observability::Metrics& metrics() noexcept { return metrics_; }
    projection::FrontierBoard& board() noexcept { return board_; }
    Supervisor& supervisor() noexcept { return supervisor_; }
    const Supervisor& supervisor() const noexcept { return supervisor_; }
    Coordinator& coordinator() noexcept { return coordinator_; }

    // The lowest checkpoint over the runners of `name` that own a partition;
    // throws when one failed (for benchmarks and tests).
    std::int64_t lowest_checkpoint(const std::string& name) const;

private:
    // Declaration order is construction order; destruction stops the
    // coordinator before the runners, and the runners before the pool.
    observability::Metrics metrics_;
    store::ConnectionPool pool_;
    projection::FrontierBoard board_;
    Supervisor supervisor_;
    Coordinator coordinator_;
};

} // namespace projectiond::daemon
