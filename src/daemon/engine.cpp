#include "daemon/engine.hpp"

#include "store/connect.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace projectiond::daemon {

store::PoolOptions pool_options(const store::ConnectOptions& connect, const config::Config& config) {
    store::PoolOptions options;
    options.connect = connect;
    options.database = config.database;
    // One connection is the coordinator's; the rest serve the runners.
    options.capacity = static_cast<std::size_t>(std::max(1, config.daemon.max_connections - 1));
    options.idle_in_transaction_timeout = config.daemon.lease_timeout;
    return options;
}

CoordinatorSettings coordinator_settings(const store::ConnectOptions& connect, const config::Config& config,
                                         const store::DaemonIdentity& identity) {
    return CoordinatorSettings{connect, config.database, config.daemon.lease_timeout, identity,
                               config.daemon.watermark_warn_after};
}

Engine::Engine(const EngineSettings& settings)
    : metrics_(settings.identity.version), pool_(pool_options(settings.connect, settings.config)),
      supervisor_(projection::RunnerServices{&pool_, &board_, &metrics_}),
      coordinator_(coordinator_settings(settings.connect, settings.config, settings.identity), supervisor_, pool_,
                   board_, &metrics_) {}

void Engine::drain_and_stop() {
    supervisor_.request_all(projection::StopLevel::drain);
    supervisor_.join_all();
    coordinator_.finish();
}

std::int64_t Engine::lowest_checkpoint(const std::string& name) const {
    std::int64_t lowest = std::numeric_limits<std::int64_t>::max();
    bool any = false;
    supervisor_.for_each_active([&](projection::Runner& runner) {
        if (runner.projection().name != name) {
            return;
        }
        const auto snapshot = runner.health().snapshot();
        if (snapshot.state == projection::RunnerState::failed) {
            throw std::runtime_error("projection " + name + " failed: " + snapshot.error.value_or(""));
        }
        lowest = std::min(lowest, snapshot.last_global_position);
        any = true;
    });
    return any ? lowest : 0;
}

} // namespace projectiond::daemon
