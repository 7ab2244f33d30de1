#pragma once
// The daemon's one thread on its own connection that deals with the other
// daemons and the store as a whole:
//   - registers the daemon and renews its lease; shares the partitions with
//     the other live daemons (claims its fair share, gives back the excess,
//     takes over those of daemons whose lease ran out) and tells each runner
//     what it owns;
//   - every 100 ms reads how far the store is settled and wakes the runners
//     whose events arrived (appends send no notification: see
//     docs/gap-safety.md);
//   - obeys `pause`/`resume`, told by a notification or seen within a second;
//   - notices when the store cannot be read safely (rows copied from another
//     cluster, a logical-replication subscriber) and blocks the runners.

#include "config/config.hpp"
#include "daemon/supervisor.hpp"
#include "projection/frontier_board.hpp"
#include "store/connection_pool.hpp"
#include "store/daemon_registry.hpp"
#include "store/frontier.hpp"
#include "store/generations.hpp"
#include "store/progress.hpp"
#include "observability/metrics.hpp"
#include "system/unique_fd.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace projectiond::daemon {

struct CoordinatorSettings {
    store::ConnectOptions connect;
    config::DatabaseSettings database;
    std::chrono::milliseconds lease_timeout{20000};
    store::DaemonIdentity identity;
    std::chrono::milliseconds watermark_warn_after{10000};
};

// The progress of every partition as the coordinator last sampled it (every
// few seconds): what /status, /health and the lag metrics read, so that a
// scrape never queries the database.
class ProgressBoard {
public:
    std::shared_ptr<const store::StoreProgress> latest() const {
        std::lock_guard lock(mutex_);
        return latest_;
    }
    void publish(store::StoreProgress progress) {
        auto shared = std::make_shared<const store::StoreProgress>(std::move(progress));
        std::lock_guard lock(mutex_);
        latest_ = std::move(shared);
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const store::StoreProgress> latest_;
};

class Coordinator {
public:
    using Clock = std::chrono::steady_clock;

    Coordinator(CoordinatorSettings settings, Supervisor& supervisor, store::ConnectionPool& pool,
                projection::FrontierBoard& board, observability::Metrics* metrics = nullptr);
    Coordinator(const Coordinator&) = delete;
    Coordinator& operator=(const Coordinator&) = delete;
    // Stops the thread; deregisters the daemon if finish() was not called.
    ~Coordinator();

    void start();
    // After the runners have stopped: gives every partition back and removes
    // the daemon from the registry, so that the others take over at once.
    void finish();
    // A reload changed the projections or settings: rebalance now.
    void reconfigure(CoordinatorSettings settings);
    void poke() noexcept;
    // The daemon is stopping: claim nothing more (the partitions go back
    // when finish() is called).
    void drain() noexcept {
        draining_ = true;
        poke();
    }

    // The daemon is registered and has handed out ownership once.
    bool ready() const noexcept { return ready_.load(); }
    bool database_up() const noexcept { return database_up_.load(); }
    const ProgressBoard& progress() const noexcept { return progress_; }
    // Projections whose generations changed in the database (a swap, a
    // rebuild asked for, a build started or abandoned elsewhere): the main
    // loop prepares them again.
    std::vector<std::string> take_refresh_requests();
    Clock::time_point last_beat() const noexcept {
        return Clock::time_point(Clock::duration(heartbeat_.load(std::memory_order_relaxed)));
    }

private:
    void main() noexcept;
    void session(store::Connection& conn);
    void watch(store::Connection& conn);
    void share(store::Connection& conn);
    void obey_controls(store::Connection& conn);
    void advance_builds(store::Connection& conn, const std::vector<std::pair<std::string, store::GenerationState>>& states);
    void sample(store::Connection& conn);
    void watch_watermark(store::Connection& conn, bool pending);
    void register_daemon(store::Connection& conn);
    void beat() noexcept { heartbeat_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed); }
    bool stopping() const noexcept { return stop_.load(); }

    mutable std::mutex settings_mutex_;
    CoordinatorSettings settings_;
    Supervisor& supervisor_;
    store::ConnectionPool& pool_;
    projection::FrontierBoard& board_;
    observability::Metrics* metrics_;
    ProgressBoard progress_;

    std::optional<std::int64_t> daemon_id_;
    store::Cursor watched_; // the settled point the last watch saw
    std::optional<store::EventsSubscription> subscription_;
    Clock::time_point next_share_{};
    bool subscription_unknowable_ = false; // this role may not read pg_subscription
    Clock::time_point next_sample_{};
    std::optional<Clock::time_point> pending_since_; // committed events have waited since
    std::map<std::uint64_t, Clock::time_point> holders_warned_; // transaction -> last warning
    std::map<std::string, std::string> resumed_seen_;
    // Paused projections, as the last obey_controls() read them: a runner is
    // told before it is granted a partition, never after.
    std::set<std::string> paused_;
    int last_granted_ = -1;
    std::mutex refresh_mutex_;
    std::vector<std::string> refresh_requests_;
    std::map<std::string, Clock::time_point> refresh_asked_; // projection -> when last asked
    // A build this daemon runs has asked the live generation to hold still:
    // the swap is tried at every watch, not once a second, so that the hold
    // is as short as the build's last batches.
    bool build_held_ = false;

    std::atomic<bool> ready_{false};
    // The coordinator starts once the daemon has prepared the database, so
    // it was reachable a moment ago: up until a connection says otherwise,
    // not "unreachable" (/health, STATUS=) while the first one is made.
    std::atomic<bool> database_up_{true};
    std::atomic<bool> stop_{false};
    std::atomic<bool> finish_{false};
    std::atomic<bool> poked_{false};
    std::atomic<bool> draining_{false};
    std::atomic<Clock::rep> heartbeat_{Clock::now().time_since_epoch().count()};
    system::UniqueFd wake_fd_;
    store::Interrupt interrupt_;
    std::thread thread_;
};

} // namespace projectiond::daemon
