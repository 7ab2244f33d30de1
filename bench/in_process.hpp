#pragma once
// `projectiond run` in the benchmark's own process, for one configuration:
// setups run, projections registered, the engine started; drained and
// stopped when it goes out of scope.

#include "config/config.hpp"
#include "daemon/engine.hpp"
#include "daemon/projection_setup.hpp"
#include "store/checkpoints.hpp"
#include "store/generations.hpp"
#include "store/daemon_registry.hpp"

#include <unistd.h>

#include <string>

namespace projectiond::bench {

class InProcessDaemon {
public:
    InProcessDaemon(const store::ConnectOptions& connect, const config::Config& config)
        : engine_(daemon::EngineSettings{connect, config, store::this_machine("bench")}) {
        store::Connection conn = store::Connection::open(connect);
        std::vector<const config::Projection*> projections;
        for (const auto& projection : config.projections) {
            projections.push_back(&projection);
        }
        for (const daemon::RunSpec& spec : daemon::prepare_projections(conn, config, projections)) {
            engine_.supervisor().start(spec);
        }
        engine_.start_coordinator();
    }
    InProcessDaemon(const InProcessDaemon&) = delete;
    InProcessDaemon& operator=(const InProcessDaemon&) = delete;
    ~InProcessDaemon() { engine_.drain_and_stop(); }

    // The lowest checkpoint of a projection's partitions.
    std::int64_t lowest(const std::string& name) const { return engine_.lowest_checkpoint(name); }

private:
    daemon::Engine engine_;
};

} // namespace projectiond::bench
