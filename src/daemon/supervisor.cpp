#include "daemon/supervisor.hpp"

#include "logging/log_context.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
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

Supervisor::Supervisor(projection::RunnerServices services) : services_(services) {}

Supervisor::~Supervisor() {
    request_all(projection::StopLevel::abort);
    join_all();
}

void Supervisor::start(const RunSpec& spec) {
    std::vector<std::unique_ptr<projection::Runner>> started;
    for (int partition = 0; partition < spec.projection.partitions; ++partition) {
        std::uint64_t id = 0;
        {
            std::lock_guard lock(mutex_);
            id = next_runner_id_++;
        }
        auto runner = std::make_unique<projection::Runner>(
            spec.projection, store::PartitionKey{spec.projection.name, spec.generation, partition}, spec.schema,
            spec.building, services_, id);
        runner->start();
        started.push_back(std::move(runner));
    }
    std::lock_guard lock(mutex_);
    for (auto& runner : started) {
        active_.push_back(std::move(runner));
    }
}

void Supervisor::retire(const std::string& name) {
    std::lock_guard lock(mutex_);
    const auto moved = std::stable_partition(active_.begin(), active_.end(),
                                             [&](const auto& runner) { return runner->projection().name != name; });
    for (auto it = moved; it != active_.end(); ++it) {
        (*it)->request(projection::StopLevel::drain);
        retiring_.push_back(std::move(*it));
    }
    active_.erase(moved, active_.end());
    logged_.erase(name);
}

void Supervisor::request_all(projection::StopLevel level) {
    std::lock_guard lock(mutex_);
    for (auto& runner : active_) {
        runner->request(level);
    }
    for (auto& runner : retiring_) {
        runner->request(level);
    }
}

void Supervisor::reap() {
    std::vector<std::unique_ptr<projection::Runner>> done;
    {
        std::lock_guard lock(mutex_);
        for (auto& runner : retiring_) {
            if (runner->finished()) {
                done.push_back(std::move(runner));
            }
        }
        std::erase(retiring_, nullptr);
    }
    for (auto& runner : done) {
        runner->join();
        if (services_.pool != nullptr) {
            services_.pool->retire_statements(runner->statement_prefix());
        }
    }
    // A projection removed by a reload: its series disappear once none of
    // its runners is left (a changed one keeps them, counters included).
    if (services_.metrics != nullptr) {
        for (const auto& runner : done) {
            const std::string& name = runner->projection().name;
            std::lock_guard lock(mutex_);
            const auto same = [&](const auto& r) { return r->projection().name == name; };
            if (std::none_of(active_.begin(), active_.end(), same) &&
                std::none_of(retiring_.begin(), retiring_.end(), same)) {
                services_.metrics->remove_projection(name);
            }
        }
    }
}

bool Supervisor::all_finished() const {
    std::lock_guard lock(mutex_);
    const auto done = [](const auto& runner) { return runner->finished(); };
    return std::all_of(active_.begin(), active_.end(), done) && std::all_of(retiring_.begin(), retiring_.end(), done);
}

void Supervisor::join_all() {
    std::vector<std::unique_ptr<projection::Runner>> all;
    {
        std::lock_guard lock(mutex_);
        for (auto& runner : active_) {
            runner->join();
        }
        for (auto& runner : retiring_) {
            runner->join();
        }
        all = std::move(retiring_);
        retiring_.clear();
    }
}

void Supervisor::for_each_active(const std::function<void(projection::Runner&)>& visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& runner : active_) {
        visit(*runner);
    }
}

bool Supervisor::retiring(const store::PartitionKey& key) const {
    std::lock_guard lock(mutex_);
    return std::any_of(retiring_.begin(), retiring_.end(),
                       [&](const auto& runner) { return runner->key() == key && !runner->finished(); });
}

std::vector<std::string> Supervisor::projection_names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> names;
    for (const auto& runner : active_) {
        if (std::find(names.begin(), names.end(), runner->projection().name) == names.end()) {
            names.push_back(runner->projection().name);
        }
    }
    return names;
}

std::map<std::string, Supervisor::Running> Supervisor::running_generations() const {
    std::lock_guard lock(mutex_);
    std::map<std::string, Running> out;
    for (const auto& runner : active_) {
        Running& running = out[runner->projection().name];
        (runner->building() ? running.building : running.live) = runner->key().generation;
    }
    return out;
}

bool Supervisor::all_started() const {
    std::lock_guard lock(mutex_);
    return std::all_of(active_.begin(), active_.end(), [](const auto& runner) {
        const auto snapshot = runner->health().snapshot();
        return snapshot.started && snapshot.state != RunnerState::starting;
    });
}

bool Supervisor::all_alive(std::chrono::steady_clock::duration limit) const {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    return std::all_of(active_.begin(), active_.end(), [&](const auto& runner) {
        return now - runner->health().last_beat() <= limit;
    });
}

std::size_t Supervisor::runner_count() const {
    std::lock_guard lock(mutex_);
    return active_.size();
}

std::string Supervisor::summary(std::int64_t max_position, bool database_up) const {
    if (!database_up) {
        return "waiting for database";
    }
    struct Totals {
        bool failed = false, waiting_db = false, standby = true, starting = false, paused = false, blocked = false;
        bool behind_any = false;
        std::int64_t behind = 0;
    };
    std::map<std::string, Totals> projections;
    {
        std::lock_guard lock(mutex_);
        for (const auto& runner : active_) {
            const auto s = runner->health().snapshot();
            Totals& t = projections[runner->projection().name];
            t.failed |= s.state == RunnerState::failed;
            t.waiting_db |= s.state == RunnerState::waiting_for_database;
            t.starting |= s.state == RunnerState::starting;
            t.paused |= s.state == RunnerState::paused;
            t.blocked |= s.state == RunnerState::blocked;
            t.standby &= s.state == RunnerState::standby;
            if (s.state == RunnerState::catching_up) {
                t.behind_any = true;
                t.behind += std::max<std::int64_t>(1, max_position - s.last_global_position);
            }
        }
    }
    if (projections.empty()) {
        return "no projections";
    }
    int caught_up = 0, behind = 0, failed = 0, waiting_db = 0, standby = 0, starting = 0, paused = 0, blocked = 0;
    std::int64_t behind_by = 0;
    for (const auto& [name, t] : projections) {
        if (t.failed) {
            ++failed;
        } else if (t.blocked) {
            ++blocked;
        } else if (t.waiting_db) {
            ++waiting_db;
        } else if (t.starting) {
            ++starting;
        } else if (t.paused) {
            ++paused;
        } else if (t.standby) {
            ++standby;
        } else if (t.behind_any) {
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
    if (blocked > 0) {
        parts.push_back(fmt::format("{} blocked (see the log)", blocked));
    }
    if (paused > 0) {
        parts.push_back(fmt::format("{} paused", paused));
    }
    if (waiting_db > 0) {
        parts.push_back(fmt::format("{} waiting for database", waiting_db));
    }
    if (standby > 0) {
        parts.push_back(fmt::format("{} run by other daemons", standby));
    }
    if (starting > 0) {
        parts.push_back(fmt::format("{} starting", starting));
    }
    return fmt::format("{} projection{}: {}", projections.size(), projections.size() == 1 ? "" : "s",
                       fmt::join(parts, ", "));
}

void Supervisor::log_progress(std::int64_t max_position) {
    struct Sum {
        std::int64_t applied = 0;
        std::int64_t checkpoint = -1;
        std::int64_t behind = 0;
        bool owned = false;
    };
    std::map<std::string, Sum> sums;
    {
        std::lock_guard lock(mutex_);
        for (const auto& runner : active_) {
            const auto s = runner->health().snapshot();
            Sum& sum = sums[runner->projection().name];
            sum.applied += s.events_applied;
            if (s.owned) {
                sum.owned = true;
                sum.checkpoint = sum.checkpoint < 0 ? s.last_global_position
                                                    : std::min(sum.checkpoint, s.last_global_position);
                sum.behind = std::max(sum.behind, max_position - s.last_global_position);
            }
        }
    }
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [name, sum] : sums) {
        const auto [it, first] = logged_.try_emplace(name, Logged{0, started_});
        Logged& last = it->second;
        const std::int64_t applied = sum.applied - last.applied;
        if (applied > 0 && sum.owned) {
            const double seconds = std::chrono::duration<double>(now - last.at).count();
            logging::ScopedProjection scope(name, std::nullopt);
            spdlog::info("applied {} event{} in the last {:.0f} s ({:.0f}/s); checkpoint at {}, {}", applied,
                         applied == 1 ? "" : "s", seconds, seconds > 0 ? applied / seconds : 0.0, sum.checkpoint,
                         sum.behind > 0 ? fmt::format("{} behind the last event", sum.behind) : "caught up");
        }
        last.applied = sum.applied;
        last.at = now;
    }
}

} // namespace projectiond::daemon
