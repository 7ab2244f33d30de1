#include "daemon/coordinator.hpp"

#include "store/connect.hpp"
#include "store/database_error.hpp"
#include "store/frontier.hpp"
#include "store/horizon_holder.hpp"
#include "logging/log_context.hpp"
#include "system/backoff.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <utility>
#include <cerrno>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::daemon {

namespace {

using namespace std::chrono_literals;

constexpr auto watch_interval = 100ms;
constexpr auto share_interval = 1s;
// How often the progress of every partition (lag in events and seconds) is
// sampled for /status, /health and the metrics.
constexpr auto sample_interval = 5s;
// A transaction holding events back is named in the log at most this often.
constexpr auto holder_warning_interval = 60s;

struct KeyOrder {
    bool operator()(const store::PartitionKey& a, const store::PartitionKey& b) const {
        return std::tie(a.projection, a.generation, a.partition) < std::tie(b.projection, b.generation, b.partition);
    }
};
// How many newly settled events one watch routes to the runners that want
// them; beyond that every owning runner is simply woken.
constexpr int routed_events = 1000;

} // namespace

Coordinator::Coordinator(CoordinatorSettings settings, Supervisor& supervisor, store::ConnectionPool& pool,
                         projection::FrontierBoard& board, observability::Metrics* metrics)
    : settings_(std::move(settings)), supervisor_(supervisor), pool_(pool), board_(board), metrics_(metrics),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!wake_fd_) {
        throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    if (metrics_ != nullptr) {
        metrics_->set_database_up(database_up_);
    }
    interrupt_.fd = wake_fd_.get();
    interrupt_.give_up = [this] {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto got = ::read(wake_fd_.get(), &count, sizeof count);
        return stopping();
    };
}

Coordinator::~Coordinator() {
    stop_ = true;
    poke();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Coordinator::start() {
    thread_ = std::thread([this] { main(); });
}

void Coordinator::finish() {
    finish_ = true;
    stop_ = true;
    poke();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Coordinator::reconfigure(CoordinatorSettings settings) {
    {
        std::lock_guard lock(settings_mutex_);
        settings_ = std::move(settings);
    }
    poke();
}

void Coordinator::poke() noexcept {
    poked_ = true;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd_.get(), &one, sizeof one);
}

void Coordinator::main() noexcept {
    // Short: the lease is renewed only while connected, and a few seconds
    // of retrying cost nothing next to losing every partition.
    system::Backoff backoff(250ms, 2s);
    while (!stopping() || (finish_ && daemon_id_)) {
        beat();
        CoordinatorSettings settings;
        {
            std::lock_guard lock(settings_mutex_);
            settings = settings_;
        }
        try {
            store::ConnectOptions options = settings.connect;
            options.interrupt = stopping() ? nullptr : &interrupt_;
            options.application_name =
                daemon_id_ ? store::session_name(*daemon_id_, "coordinator") : "projectiond coordinator";
            store::Connection conn = store::Connection::open(options);
            conn.set_interrupt(nullptr); // see session(): only its waits are interruptible
            store::configure_session(conn, settings.database, settings.lease_timeout);
            database_up_ = true;
            if (metrics_ != nullptr) {
                metrics_->set_database_up(true);
            }
            backoff.reset();
            session(conn);
            return;
        } catch (const store::Interrupted&) {
            return;
        } catch (const std::exception& error) {
            database_up_ = false;
            if (metrics_ != nullptr) {
                metrics_->set_database_up(false);
            }
            if (stopping()) {
                spdlog::warn("could not give this daemon's partitions back ({}); the other daemons take them over "
                             "when its lease runs out",
                             error.what());
                return;
            }
            const auto delay = backoff.next();
            spdlog::warn("database unavailable: {}; the coordinator reconnects in {} ms", error.what(), delay.count());
            pollfd fds{wake_fd_.get(), POLLIN, 0};
            ::poll(&fds, 1, static_cast<int>(delay.count()));
        }
    }
}

void Coordinator::register_daemon(store::Connection& conn) {
    CoordinatorSettings settings;
    {
        std::lock_guard lock(settings_mutex_);
        settings = settings_;
    }
    daemon_id_ = store::register_daemon(conn, settings.identity, supervisor_.projection_names(),
                                        settings.lease_timeout);
    conn.exec("SELECT set_config('application_name', $1, false)", {store::session_name(*daemon_id_, "coordinator")});
    pool_.set_application_name(store::session_name(*daemon_id_, "runner"));
    spdlog::debug("registered as daemon {}", *daemon_id_);
}

void Coordinator::session(store::Connection& conn) {
    if (!daemon_id_) {
        register_daemon(conn);
    }
    conn.exec("LISTEN projectiond_control");
    for (;;) {
        beat();
        if (stopping()) {
            if (finish_ && daemon_id_) {
                store::deregister_daemon(conn, *daemon_id_);
                spdlog::info("gave every partition back to the other daemons");
                daemon_id_.reset();
            }
            return;
        }
        const auto now = Clock::now();
        if (poked_.exchange(false) || now >= next_share_) {
            // The pause first: a runner granted a partition before it knew
            // would take a batch (the first one after a restart, say).
            obey_controls(conn);
            share(conn);
            next_share_ = now + share_interval;
            ready_ = true;
        } else if (build_held_) {
            advance_builds(conn, store::generation_states(conn, supervisor_.projection_names()));
        }
        // Checked before every watch: a runner must never read while a
        // subscription writes the events.
        if (!subscription_unknowable_) {
            try {
                subscription_ = store::events_subscription(conn);
            } catch (const store::DatabaseError& error) {
                // Only a role that may not read the catalogue makes it
                // unknowable for good; anything else (a statement timeout,
                // say) ends the session, and the next one checks again.
                if (error.sqlstate() != "42501") {
                    throw;
                }
                subscription_unknowable_ = true;
                spdlog::warn("cannot tell whether events come by logical replication ({}); make sure this "
                             "database is not a subscriber of the events",
                             error.what());
            }
        }
        watch(conn);
        if (now >= next_sample_) {
            next_sample_ = now + sample_interval;
            sample(conn);
        }
        // Only this wait is interruptible: the queries above are short and
        // bounded by statement_timeout, and an interrupted query would leave
        // the session unusable for giving the partitions back.
        conn.set_interrupt(&interrupt_);
        try {
            if (conn.wait_for_notification(Clock::now() + watch_interval)) {
                poked_ = true; // pause or resume: look now
            }
        } catch (const store::Interrupted&) {
            // Told to stop: the loop's first check deals with it.
        }
        conn.set_interrupt(nullptr);
    }
}

void Coordinator::watch(store::Connection& conn) {
    const store::Frontier frontier = store::read_frontier(conn, watched_, routed_events);
    projection::StoreView view;
    view.known = true;
    view.settled = frontier.settled;
    view.max_position = frontier.max_position;
    view.pending = frontier.pending;
    view.blocked = store::block_reason(frontier.foreign, subscription_);
    const std::optional<std::string> was = board_.view().blocked;
    if (view.blocked && view.blocked != was) {
        spdlog::error("processing stopped: {}", *view.blocked);
    } else if (!view.blocked && was) {
        spdlog::info("the store can be read again; processing resumes");
    }
    board_.publish(view);
    watch_watermark(conn, frontier.pending);
    spdlog::trace("watch: settled at position {}, {} newly settled{}", frontier.settled.position,
                  frontier.newly_settled.size(), frontier.more ? " and more" : "");
    if (frontier.settled > watched_ || frontier.more) {
        supervisor_.for_each_active([&](projection::Runner& runner) {
            if (!runner.ownership()) {
                return;
            }
            const bool wanted = frontier.more || std::any_of(frontier.newly_settled.begin(),
                                                             frontier.newly_settled.end(),
                                                             [&](const auto& e) { return runner.wants(e); });
            if (wanted) {
                spdlog::trace("waking {}/{}", runner.key().projection, runner.key().partition);
                runner.wake();
            }
        });
        watched_ = std::max(watched_, frontier.settled);
    }
}

void Coordinator::share(store::Connection& conn) {
    CoordinatorSettings settings;
    {
        std::lock_guard lock(settings_mutex_);
        settings = settings_;
    }
    const std::vector<std::string> names =
        draining_ ? std::vector<std::string>{} : supervisor_.projection_names();
    const store::Rebalance result =
        store::rebalance(conn, *daemon_id_, settings.identity, names, settings.lease_timeout);
    if (result.lease_lost) {
        spdlog::error("this daemon's lease ran out (it was frozen, or cut off from the database, for over {} ms): "
                      "other daemons may have taken its partitions over, and anything it was committing was "
                      "refused. Rejoining",
                      settings.lease_timeout.count());
        supervisor_.for_each_active([](projection::Runner& runner) { runner.revoke(); });
        pool_.close_all();
        daemon_id_.reset();
        register_daemon(conn);
        poked_ = true;
        return;
    }
    if (!result.expired.empty()) {
        spdlog::warn("daemon{} {} stopped renewing {} lease: taking over {} partitions",
                     result.expired.size() == 1 ? "" : "s", fmt::join(result.expired, ", "),
                     result.expired.size() == 1 ? "its" : "their", result.expired.size() == 1 ? "its" : "their");
        store::end_sessions_of(conn, result.expired);
    }

    std::set<std::pair<std::string, std::pair<int, int>>> active_keys;
    int granted = 0;
    int releasing = 0;
    std::vector<projection::Runner*> givers; // owned, could be given back
    std::vector<store::PartitionKey> retiring_keys;
    for (const auto& owned : result.owned) {
        if (supervisor_.retiring(owned.key)) {
            retiring_keys.push_back(owned.key);
        }
    }
    supervisor_.for_each_active([&](projection::Runner& runner) {
        const store::PartitionKey& key = runner.key();
        active_keys.insert({key.projection, {key.generation, key.partition}});
        const auto it = std::find_if(result.owned.begin(), result.owned.end(),
                                     [&](const auto& owned) { return owned.key == key; });
        if (it == result.owned.end()) {
            runner.revoke();
            return;
        }
        if (std::find(retiring_keys.begin(), retiring_keys.end(), key) != retiring_keys.end()) {
            return; // the old runner of a changed projection is still finishing its batch
        }
        runner.set_paused(paused_.contains(key.projection));
        runner.grant(it->owner);
        ++granted;
        if (runner.release_requested()) {
            ++releasing;
        } else {
            givers.push_back(&runner);
        }
    });
    // Partitions this daemon owns but no longer runs (a projection removed by
    // a reload): give them back once no runner works on them.
    for (const auto& owned : result.owned) {
        const bool active = active_keys.contains({owned.key.projection, {owned.key.generation, owned.key.partition}});
        const bool retiring = std::find(retiring_keys.begin(), retiring_keys.end(), owned.key) != retiring_keys.end();
        if (!active && !retiring) {
            store::release_partition(conn, owned.key, owned.owner);
        }
    }
    // Above the fair share: the highest partitions go back, at their next
    // batch boundary.
    std::sort(givers.begin(), givers.end(), [](const auto* a, const auto* b) {
        return std::tie(a->key().partition, a->key().projection) > std::tie(b->key().partition, b->key().projection);
    });
    for (int i = 0; i < result.excess - releasing && i < static_cast<int>(givers.size()); ++i) {
        givers[static_cast<std::size_t>(i)]->request_release();
    }
    if (granted != last_granted_) {
        spdlog::info("this daemon runs {} of {} partitions ({} daemon{} sharing them, fair share {})", granted,
                     result.partitions, result.live_daemons, result.live_daemons == 1 ? "" : "s", result.fair_share);
        last_granted_ = granted;
    }
}

void Coordinator::obey_controls(store::Connection& conn) {
    const std::vector<std::string> names = supervisor_.projection_names();
    const auto states = store::generation_states(conn, names);
    const auto running = supervisor_.running_generations();
    std::map<std::string, store::GenerationState> by_name;
    std::set<std::string> resumed;
    std::vector<std::string> refresh;
    const auto now = Clock::now();
    paused_.clear();
    for (const auto& [name, state] : states) {
        by_name[name] = state;
        if (state.paused) {
            paused_.insert(name);
        }
        const auto seen = resumed_seen_.find(name);
        if (seen != resumed_seen_.end() && seen->second != state.resumed_at) {
            resumed.insert(name);
        }
        resumed_seen_[name] = state.resumed_at.value_or("");
        // What runs here must be what the database says: the live generation
        // and the one being built, or a rebuild that was asked for.
        const auto it = running.find(name);
        const bool mismatch = it == running.end() || it->second.live != state.live_generation ||
                              it->second.building != state.building_generation || state.rebuild_requested;
        if (mismatch) {
            auto& asked = refresh_asked_[name];
            if (now - asked >= 2s) {
                asked = now;
                refresh.push_back(name);
            }
        }
    }
    if (!refresh.empty()) {
        std::lock_guard lock(refresh_mutex_);
        for (auto& name : refresh) {
            if (std::find(refresh_requests_.begin(), refresh_requests_.end(), name) == refresh_requests_.end()) {
                refresh_requests_.push_back(std::move(name));
            }
        }
    }
    supervisor_.for_each_active([&](projection::Runner& runner) {
        const auto it = by_name.find(runner.projection().name);
        runner.set_paused(it != by_name.end() && it->second.paused);
        runner.set_holding(it != by_name.end() && it->second.swap_requested);
        if (resumed.contains(runner.projection().name)) {
            runner.retry_failure();
        }
    });
    advance_builds(conn, states);
}

std::vector<std::string> Coordinator::take_refresh_requests() {
    std::lock_guard lock(refresh_mutex_);
    return std::exchange(refresh_requests_, {});
}

// A building generation that has caught up is swapped in. When it is close,
// the live one is asked to hold still for a moment (swap_requested_at), so
// that under a steady stream of appends the new one can catch up exactly;
// while it holds, the swap is tried at every watch (build_held_), since every
// moment of the hold is latency for the live version's readers.
void Coordinator::advance_builds(store::Connection& conn,
                                 const std::vector<std::pair<std::string, store::GenerationState>>& states) {
    const auto running = supervisor_.running_generations();
    build_held_ = false;
    for (const auto& [name, state] : states) {
        if (!state.building_generation) {
            continue;
        }
        const auto it = running.find(name);
        if (it == running.end() || it->second.building != state.building_generation) {
            continue; // not built here (yet): its own daemons swap it
        }
        if (store::swap_generation(conn, name, *state.building_generation)) {
            logging::ScopedProjection scope(name, std::nullopt);
            spdlog::info("swapped in the new version (generation {}): readers now see it; the old one is kept "
                         "until `projectiond prune {}`",
                         *state.building_generation, name);
            continue;
        }
        const store::Result close = conn.exec(R"sql(
SELECT count(*) <= 1000 FROM (
    SELECT 1 FROM events e,
           (SELECT c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position
              FROM projection_checkpoints c
             WHERE c.projection_name = $1 AND c.generation = $2::integer
             ORDER BY c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position LIMIT 1) b
     WHERE (e.store_epoch, e.transaction_id, e.global_position)
         > (b.cursor_store_epoch, b.cursor_transaction_id, b.cursor_global_position)
     LIMIT 1001) n)sql",
                                              {name, std::to_string(*state.building_generation)});
        if (close.boolean(0, 0) && !state.swap_requested) {
            store::request_swap(conn, name, true); // its notification brings us back at once
        }
        // Held for at most 10 s (then state.swap_requested is false again).
        build_held_ = build_held_ || state.swap_requested;
    }
}

} // namespace projectiond::daemon

namespace projectiond::daemon {

void Coordinator::sample(store::Connection& conn) {
    std::set<std::string> names;
    supervisor_.for_each_active([&](projection::Runner& runner) { names.insert(runner.key().projection); });
    store::StoreProgress progress = store::read_progress(conn, std::vector<std::string>(names.begin(), names.end()));
    if (metrics_ != nullptr) {
        // Only the partitions this daemon runs a runner for have series here.
        std::map<store::PartitionKey, const store::PartitionProgress*, KeyOrder> sampled;
        for (const auto& p : progress.partitions) {
            sampled.emplace(store::PartitionKey{p.projection, p.generation, p.partition}, &p);
        }
        supervisor_.for_each_active([&](projection::Runner& runner) {
            const auto it = sampled.find(runner.key());
            if (it != sampled.end()) {
                const auto& p = *it->second;
                metrics_->partition(p.projection, p.partition)
                    .set_lag(p.remaining, std::chrono::duration<double>(p.remaining == 0 ? 0.0 : p.lag_seconds));
            }
        });
    }
    progress_.publish(std::move(progress));
}

void Coordinator::watch_watermark(store::Connection& conn, bool pending) {
    const auto now = Clock::now();
    if (!pending) {
        pending_since_.reset();
        if (metrics_ != nullptr) {
            metrics_->set_watermark_held(std::chrono::duration<double>(0));
        }
        return;
    }
    if (!pending_since_) {
        pending_since_ = now;
    }
    const auto held = now - *pending_since_;
    if (metrics_ != nullptr) {
        metrics_->set_watermark_held(held);
    }
    CoordinatorSettings settings;
    {
        std::lock_guard lock(settings_mutex_);
        settings = settings_;
    }
    if (held < settings.watermark_warn_after) {
        return;
    }
    const auto holder = store::horizon_holder(conn);
    if (!holder) {
        return;
    }
    auto& warned = holders_warned_[holder->transaction_id];
    if (warned != Clock::time_point{} && now - warned < holder_warning_interval) {
        return;
    }
    warned = now;
    std::erase_if(holders_warned_, [&](const auto& entry) { return now - entry.second > 10 * holder_warning_interval; });
    spdlog::warn("committed events have waited {:.0f} s behind an open transaction, which projections cannot pass "
                 "until it ends: {}",
                 std::chrono::duration<double>(held).count(), holder->describe());
}

} // namespace projectiond::daemon
