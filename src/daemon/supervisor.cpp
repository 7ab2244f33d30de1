#include "daemon/supervisor.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::daemon {

using projection::RunnerState;

ReloadPlan plan_reload(const config::Config& current, const config::Config& next) {
    ReloadPlan plan;
    const bool everything = !(current.database == next.database);
    for (const auto& old : current.projections) {
        const config::Projection* now = next.find(old.name);
        if (now == nullptr || everything || !now->same_work(old)) {
            plan.stop.push_back(old.name);
            ++(now == nullptr ? plan.removed : plan.changed);
        } else {
            plan.unchanged.push_back(old.name);
        }
    }
    for (const auto& projection : next.projections) {
        if (std::find(plan.unchanged.begin(), plan.unchanged.end(), projection.name) == plan.unchanged.end()) {
            plan.start.push_back(&projection);
            plan.added += current.find(projection.name) == nullptr ? 1 : 0;
        }
    }
    return plan;
}

Supervisor::Supervisor(projection::RunnerSettings settings) : settings_(std::move(settings)) {}

Supervisor::~Supervisor() {
    request_all(projection::StopLevel::abort);
    join_all();
}

void Supervisor::start(const config::Projection& projection) {
    for (int partition = 0; partition < projection.partitions; ++partition) {
        auto runner = std::make_unique<projection::Runner>(projection, partition, settings_);
        runner->start();
        active_.push_back(std::move(runner));
    }
}

void Supervisor::retire(const std::string& name) {
    const auto moved = std::stable_partition(active_.begin(), active_.end(),
                                             [&](const auto& runner) { return runner->projection().name != name; });
    for (auto it = moved; it != active_.end(); ++it) {
        (*it)->request(projection::StopLevel::drain);
        retiring_.push_back(std::move(*it));
    }
    active_.erase(moved, active_.end());
}

void Supervisor::request_all(projection::StopLevel level) {
    for (auto& runner : active_) {
        runner->request(level);
    }
    for (auto& runner : retiring_) {
        runner->request(level);
    }
}

void Supervisor::reap() {
    std::erase_if(retiring_, [](const auto& runner) {
        if (!runner->finished()) {
            return false;
        }
        runner->join();
        return true;
    });
}

bool Supervisor::all_finished() const {
    const auto done = [](const auto& runner) { return runner->finished(); };
    return std::all_of(active_.begin(), active_.end(), done) && std::all_of(retiring_.begin(), retiring_.end(), done);
}

void Supervisor::join_all() {
    for (auto& runner : active_) {
        runner->join();
    }
    for (auto& runner : retiring_) {
        runner->join();
    }
    retiring_.clear();
}

bool Supervisor::all_started() const {
    return std::all_of(active_.begin(), active_.end(), [](const auto& runner) {
        const auto snapshot = runner->health().snapshot();
        return snapshot.started || snapshot.state == RunnerState::failed;
    });
}

bool Supervisor::all_alive(std::chrono::steady_clock::duration limit) const {
    const auto now = std::chrono::steady_clock::now();
    return std::all_of(active_.begin(), active_.end(), [&](const auto& runner) {
        const auto state = runner->health().snapshot().state;
        if (state == RunnerState::failed || state == RunnerState::stopped) {
            return true; // not wedged: a restart would not help a failed projection
        }
        return now - runner->health().last_beat() <= limit;
    });
}

std::string Supervisor::summary() const {
    struct Totals {
        bool failed = false, waiting_db = false, standby = false, starting = false;
        std::int64_t behind = 0;
    };
    std::map<std::string, Totals> projections;
    for (const auto& runner : active_) {
        const auto s = runner->health().snapshot();
        Totals& t = projections[runner->projection().name];
        t.failed |= s.state == RunnerState::failed;
        t.waiting_db |= s.state == RunnerState::waiting_for_database;
        t.standby |= s.state == RunnerState::waiting_for_ownership;
        t.starting |= s.state == RunnerState::starting;
        if (s.state == RunnerState::catching_up) {
            t.behind += std::max<std::int64_t>(1, s.behind());
        }
    }
    if (projections.empty()) {
        return "no projections";
    }
    int caught_up = 0, behind = 0, failed = 0, waiting_db = 0, standby = 0, starting = 0;
    std::int64_t behind_by = 0;
    for (const auto& [name, t] : projections) {
        if (t.failed) {
            ++failed;
        } else if (t.waiting_db) {
            ++waiting_db;
        } else if (t.starting) {
            ++starting;
        } else if (t.standby) {
            ++standby;
        } else if (t.behind > 0) {
            ++behind;
            behind_by += t.behind;
        } else {
            ++caught_up;
        }
    }
    if (waiting_db == static_cast<int>(projections.size())) {
        return "waiting for database";
    }
    std::vector<std::string> parts;
    if (caught_up > 0) {
        parts.push_back(fmt::format("{} caught up", caught_up));
    }
    if (behind > 0) {
        parts.push_back(fmt::format("{} behind by {}", behind, behind_by));
    }
    if (failed > 0) {
        parts.push_back(fmt::format("{} failed", failed));
    }
    if (waiting_db > 0) {
        parts.push_back(fmt::format("{} waiting for database", waiting_db));
    }
    if (standby > 0) {
        parts.push_back(fmt::format("{} standing by (owned by another daemon)", standby));
    }
    if (starting > 0) {
        parts.push_back(fmt::format("{} starting", starting));
    }
    return fmt::format("{} projection{}: {}", projections.size(), projections.size() == 1 ? "" : "s",
                       fmt::join(parts, ", "));
}

} // namespace projectiond::daemon
