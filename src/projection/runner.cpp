#include "projection/runner.hpp"

#include "logging/log_context.hpp"
#include "handlers/code_handler_factory.hpp"
#include "handlers/plugin_library.hpp"
#include "projection/batch_applier.hpp"
#include "store/database_error.hpp"
#include "system/backoff.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::projection {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// An idle runner wakes at least this often to show the watchdog it is alive.
constexpr auto heartbeat_slice = 1s;

store::Cursor cursor_of(const store::Result& batch, int row) {
    return store::Cursor{batch.int64(row, col_store_epoch), store::parse_transaction_id(batch.text(row, col_transaction_id)),
                         batch.int64(row, col_global_position)};
}

std::string describe(const store::DatabaseError& error) {
    return error.sqlstate().empty() ? std::string(error.what())
                                    : fmt::format("{} (SQLSTATE {})", error.what(), error.sqlstate());
}

} // namespace

Runner::Runner(config::Projection projection, store::PartitionKey key, std::optional<std::string> schema,
               bool building, RunnerServices services, std::uint64_t id)
    : projection_(std::move(projection)), key_(std::move(key)), schema_(std::move(schema)), building_(building),
      services_(services), id_(id), plan_(projection_, key_.partition) {
    if (services_.metrics != nullptr) {
        // A new version being built gets series of its own beside the live one's.
        metrics_ = &services_.metrics->partition(building_ ? projection_.name + "@rebuild" : projection_.name,
                                                 key_.partition);
    }
    interrupt_.fd = control_.fd();
    interrupt_.give_up = [this] { return control_.consume(threshold_.load()); };
}

Runner::~Runner() {
    if (thread_.joinable()) {
        control_.request(StopLevel::abort);
        thread_.join();
    }
}

void Runner::start() {
    thread_ = std::thread([this] { main(); });
}

void Runner::join() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Runner::grant(store::Ownership owner) {
    {
        std::lock_guard lock(grant_mutex_);
        if (grant_.owner == owner) {
            return;
        }
        grant_.owner = owner;
        grant_.release = false;
    }
    control_.wake();
}

void Runner::revoke() {
    {
        std::lock_guard lock(grant_mutex_);
        if (!grant_.owner) {
            return;
        }
        grant_.owner.reset();
        grant_.release = false;
    }
    control_.wake();
}

void Runner::request_release() {
    {
        std::lock_guard lock(grant_mutex_);
        if (!grant_.owner || grant_.release) {
            return;
        }
        grant_.release = true;
    }
    control_.wake();
}

void Runner::set_paused(bool paused) {
    {
        std::lock_guard lock(grant_mutex_);
        if (grant_.paused == paused) {
            return;
        }
        grant_.paused = paused;
    }
    control_.wake();
}

void Runner::set_holding(bool holding) {
    {
        std::lock_guard lock(grant_mutex_);
        if (grant_.holding == holding) {
            return;
        }
        grant_.holding = holding;
    }
    control_.wake();
}

void Runner::retry_failure() {
    {
        std::lock_guard lock(grant_mutex_);
        grant_.retry = true;
    }
    control_.wake();
}

std::optional<store::Ownership> Runner::ownership() const {
    std::lock_guard lock(grant_mutex_);
    return grant_.owner;
}

bool Runner::release_requested() const {
    std::lock_guard lock(grant_mutex_);
    return grant_.release;
}

Runner::Grant Runner::grant_snapshot() const {
    std::lock_guard lock(grant_mutex_);
    return grant_;
}

bool Runner::wants(const store::SettledEvent& event) const {
    const auto listed = [](const std::vector<std::string>& values, const std::string& value) {
        return values.empty() || std::find(values.begin(), values.end(), value) != values.end();
    };
    if (projection_.partitions > 1 && event.partition_hash % projection_.partitions != key_.partition) {
        return false;
    }
    return listed(projection_.aggregate_types, event.aggregate_type) &&
           listed(projection_.bounded_contexts, event.bounded_context) &&
           listed(projection_.event_types, event.event_type) &&
           (projection_.log || plan_.handler_for(event.event_type) != nullptr);
}

namespace {
observability::ProjectionState metric_state(RunnerState state) {
    using observability::ProjectionState;
    switch (state) {
    case RunnerState::starting:
        return ProjectionState::starting;
    case RunnerState::standby:
        return ProjectionState::standby;
    case RunnerState::waiting_for_database:
    case RunnerState::blocked:
        return ProjectionState::waiting_for_database;
    case RunnerState::catching_up:
        return ProjectionState::catching_up;
    case RunnerState::caught_up:
        return ProjectionState::caught_up;
    case RunnerState::paused:
        return ProjectionState::paused;
    case RunnerState::failed:
        return ProjectionState::failed;
    case RunnerState::stopped:
        return ProjectionState::stopped;
    }
    return ProjectionState::starting;
}
} // namespace

void Runner::set_state(RunnerState state, std::optional<std::string> error) {
    health_.update([&](RunnerSnapshot& s) {
        s.state = state;
        if (error) {
            s.error = std::move(error);
        }
    });
    if (metrics_ != nullptr) {
        metrics_->set_state(metric_state(state));
    }
}

void Runner::set_owned(bool owned) {
    health_.update([owned](RunnerSnapshot& s) { s.owned = owned; });
    if (metrics_ != nullptr) {
        metrics_->set_owned(owned);
    }
}

void Runner::count_failure(observability::FailureKind kind) {
    if (metrics_ != nullptr) {
        metrics_->add_failure(kind);
    }
}

void Runner::main() noexcept {
    logging::ScopedProjection log_scope(projection_.name, key_.partition);
    system::Backoff reconnect(250ms, 30s);
    BatchApplier applier(plan_, key_, schema_, statement_prefix(), health_);
    health_.update([](RunnerSnapshot& s) { s.started = true; });

    while (!control_.at_least(StopLevel::drain)) {
        health_.beat();
        Grant grant = grant_snapshot();
        if (!grant.owner) {
            loaded_for_.reset();
            set_owned(false);
            set_state(RunnerState::standby);
            control_.take_wake();
            if (!control_.wait_until(Clock::now() + heartbeat_slice, StopLevel::drain)) {
                break;
            }
            continue;
        }
        set_owned(true);
        if (grant.release) {
            give_back(*grant.owner);
            continue;
        }
        if (loaded_for_ != grant.owner) {
            failed_ = false; // a new ownership retries a recorded failure
        }
        if (grant.holding && !building_) {
            control_.take_wake();
            if (!control_.wait_until(Clock::now() + 100ms, StopLevel::drain)) {
                break;
            }
            continue;
        }
        if (grant.paused) {
            set_state(RunnerState::paused);
            control_.take_wake();
            if (!control_.wait_until(Clock::now() + heartbeat_slice, StopLevel::drain)) {
                break;
            }
            continue;
        }
        if (grant.retry) {
            // A resume: reload the checkpoint. It clears a recorded failure,
            // and it picks up a reset made while paused, which an idle runner
            // would otherwise only notice when a new event made its next
            // checkpoint move fail.
            {
                std::lock_guard lock(grant_mutex_);
                grant_.retry = false;
            }
            if (failed_) {
                spdlog::info("resumed: retrying after the failure");
            }
            failed_ = false;
            loaded_for_.reset();
            continue;
        }
        if (failed_) {
            control_.take_wake();
            if (!control_.wait_until(Clock::now() + heartbeat_slice, StopLevel::drain)) {
                break;
            }
            continue;
        }
        if (const StoreView view = services_.frontier->view(); !view.known) {
            // Nothing is read before the watcher has seen the store once:
            // it may be a subscriber, or hold rows copied from elsewhere.
            set_state(RunnerState::starting);
            if (!control_.wait_until(Clock::now() + 50ms, StopLevel::drain)) {
                break;
            }
            continue;
        } else if (view.blocked) {
            set_state(RunnerState::blocked, *view.blocked);
            if (!control_.wait_until(Clock::now() + heartbeat_slice, StopLevel::drain)) {
                break;
            }
            continue;
        }
        try {
            const bool worked = step(*grant.owner, applier);
            reconnect.reset();
            if (!worked) {
                // Nothing to do: sleep until woken, or until it is time to
                // look on its own (a filtered runner behind the settled
                // point passes the events it does not read at most once
                // per poll_interval).
                const auto now = Clock::now();
                auto deadline = now + heartbeat_slice;
                const StoreView view = services_.frontier->view();
                if (view.known && cursor_ < view.settled) {
                    deadline = std::clamp(last_read_ + projection_.settings.poll_interval, now + 1ms, deadline);
                }
                if (!control_.wait_until(deadline, StopLevel::drain)) {
                    break;
                }
            }
        } catch (const store::Interrupted&) {
            break;
        } catch (const store::DatabaseError& error) {
            if (error.sqlstate() == "PJ005") {
                count_failure(observability::FailureKind::fenced);
                spdlog::warn("lost this partition: {}", error.what());
                {
                    std::lock_guard lock(grant_mutex_);
                    if (grant_.owner == grant.owner) {
                        grant_.owner.reset();
                    }
                }
                loaded_for_.reset();
                continue;
            }
            if (error.sqlstate() == "PJ002") {
                spdlog::info("the checkpoint moved underneath this runner (a reset); reloading it");
                loaded_for_.reset();
                continue;
            }
            count_failure(observability::FailureKind::database);
            set_state(RunnerState::waiting_for_database, describe(error));
            const auto delay = reconnect.next();
            if (error.connection_lost()) {
                spdlog::warn("database unavailable: {}; reconnecting in {} ms", error.what(), delay.count());
            } else {
                spdlog::error("{}; retrying in {} ms", describe(error), delay.count());
            }
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                break;
            }
        } catch (const std::exception& error) {
            const auto delay = reconnect.next();
            spdlog::error("internal error: {}; starting over in {} ms", error.what(), delay.count());
            loaded_for_.reset();
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                break;
            }
        }
    }
    stop_code();
    if (health_.snapshot().state != RunnerState::failed) {
        set_state(RunnerState::stopped);
    }
    spdlog::info("runner stopped");
    finished_ = true;
}

void Runner::give_back(const store::Ownership& owner) {
    auto lease = services_.pool->acquire(heartbeat_slice, &interrupt_);
    if (!lease) {
        return; // try again next round
    }
    try {
        store::release_partition(lease->conn(), key_, owner);
    } catch (...) {
        lease->discard();
        throw;
    }
    {
        std::lock_guard lock(grant_mutex_);
        if (grant_.owner == owner) {
            grant_.owner.reset();
            grant_.release = false;
        }
    }
    loaded_for_.reset();
    spdlog::info("handed the partition over to the other daemons");
}

void Runner::load(store::Connection& conn, const store::Ownership& owner) {
    const store::Checkpoint checkpoint = store::load_checkpoint(conn, key_);
    if (checkpoint.owner != owner) {
        throw store::DatabaseError(
            fmt::format("{} partition {} is owned by daemon {} now", key_.projection, key_.partition,
                        checkpoint.owner.daemon),
            "PJ005");
    }
    if (checkpoint.partition_count != projection_.partitions) {
        loaded_for_ = owner;
        fail(conn, owner,
             fmt::format("the checkpoints of '{}' were written for {} partitions but the configuration asks for {}; "
                         "aggregates would change partition mid-stream. Rebuild the read model (see `projectiond "
                         "reset` and `projectiond rebuild`)",
                         projection_.name, checkpoint.partition_count, projection_.partitions),
             std::nullopt);
        return;
    }
    if (checkpoint.failed) {
        spdlog::info("retrying after the recorded failure: {}", checkpoint.last_error.value_or("(none)"));
        store::clear_failure(conn, key_, owner);
    }
    cursor_ = checkpoint.cursor;
    ahead_.reset();
    last_global_position_ = checkpoint.last_global_position;
    skip_ = checkpoint.skip;
    if (skip_ && cursor_ >= skip_->through) {
        skip_.reset();
    }
    loaded_for_ = owner;
    more_ = true;
    if (cursor_ == store::Cursor{}) {
        spdlog::info("Starting fresh (no checkpoint found)");
    } else {
        spdlog::info("Resuming from checkpoint: position {}", last_global_position_);
    }
    health_.update([&](RunnerSnapshot& s) {
        s.error.reset();
        s.failed_position.reset();
        s.last_global_position = last_global_position_;
        s.cursor = cursor_;
    });
    set_state(RunnerState::catching_up);
    if (metrics_ != nullptr) {
        metrics_->set_checkpoint(last_global_position_);
    }
}

bool Runner::step(const store::Ownership& owner, BatchApplier& applier) {
    const auto now = Clock::now();
    const bool woken = control_.take_wake();
    const StoreView view = services_.frontier->view();
    const bool loaded = loaded_for_ == owner;
    const bool behind = !view.known || cursor_ < view.settled;
    const bool poll_due = now - last_read_ >= projection_.settings.poll_interval;
    if (loaded && !more_ && !woken && !(behind && (!plan_.filtered() || poll_due))) {
        if (!view.pending) {
            set_state(RunnerState::caught_up);
        }
        return false;
    }

    threshold_ = StopLevel::drain;
    auto lease = services_.pool->acquire(heartbeat_slice, &interrupt_);
    if (!lease) {
        more_ = true; // no connection free yet: try again
        return true;
    }
    try {
        if (!loaded) {
            load(lease->conn(), owner);
            if (failed_) {
                return true;
            }
        }
        applier.prepare(*lease);
        prepare_reads(*lease);
        // The batch read ahead while the last one was applied, when it starts
        // where that one ended; else a fresh read.
        std::optional<ReadAhead> ahead = std::exchange(ahead_, std::nullopt);
        if (ahead && (ahead->from != cursor_ || Clock::now() - ahead->read_at > read_ahead_shelf_life)) {
            ahead.reset(); // not where the cursor is, or kept across a pause or a hold
        }
        const bool from_ahead = ahead.has_value();
        const bool windowed = from_ahead ? ahead->windowed : read_is_windowed(cursor_);
        const store::Result batch = from_ahead ? std::move(ahead->batch)
                                               : lease->conn().exec_prepared(read_statement(windowed),
                                                                             read_params(cursor_, windowed));
        last_read_ = Clock::now();
        health_.beat();
        const int rows = batch.is_null(0, col_transaction_id) ? 0 : batch.rows();
        const auto cursor_at = [&](int column) {
            return batch.is_null(0, column) ? store::Cursor{}
                                            : store::Cursor{batch.int64(0, column),
                                                            store::parse_transaction_id(batch.text(0, column + 1)),
                                                            batch.int64(0, column + 2)};
        };
        const store::Cursor settled = cursor_at(col_settled_epoch);
        const store::Cursor reach = cursor_at(col_reach_epoch);
        if (control_.at_least(StopLevel::drain)) {
            return true; // a batch read but not begun is not in flight
        }

        const bool full = rows == projection_.settings.batch_size;
        // A short batch has seen every event of its window: the cursor may
        // pass the events the filters (and the skip range) left out, up to
        // the window's end.
        store::Cursor to = rows > 0 ? cursor_of(batch, rows - 1) : cursor_;
        if (!full && reach > to) {
            to = reach;
        }
        more_ = false;
        if (from_ahead && !full) {
            // Read ahead from an older snapshot: an event that settled since
            // (and the wake it brought) would be missed without a fresh read.
            more_ = true;
            if (rows == 0 && to <= cursor_) {
                return true;
            }
        }
        if (rows == 0 && to <= cursor_) {
            if (!view.pending) {
                set_state(RunnerState::caught_up);
            }
            return false;
        }
        set_state(RunnerState::catching_up);
        // An unwindowed read returns every event up to where the cursor moves.
        std::optional<std::int64_t> passed_max;
        if (!windowed) {
            passed_max = last_global_position_;
            for (int row = 0; row < rows; ++row) {
                passed_max = std::max(*passed_max, batch.int64(row, col_global_position));
            }
        }
        // While this batch is applied, the next one is read on a second
        // connection, when there surely is one and a connection is free.
        // Dropped however this step ends, before `lease` goes back.
        struct DropReading {
            std::optional<ReadingAhead>& reading;
            ~DropReading() { reading.reset(); }
        } drop_reading{reading_};
        if (full) {
            start_reading_ahead(to);
        }
        if (apply_batch(*lease, applier, batch, rows, to, owner, passed_max) != BatchEnd::committed) {
            return true;
        }
        if (reading_ && cursor_ == to) {
            ahead_ = reading_->take();
        }
        more_ = more_ || full || cursor_ < settled;
        return true;
    } catch (const store::DatabaseError& error) {
        if (error.connection_lost()) {
            lease->discard();
        }
        throw;
    } catch (const store::Interrupted&) {
        lease->discard();
        throw;
    }
}

bool Runner::read_is_windowed(const store::Cursor& from) const noexcept {
    return plan_.filtered() || (skip_ && from < skip_->through);
}

std::string Runner::read_statement(bool windowed) const {
    return statement_prefix() + (windowed ? "read_windowed" : "read");
}

store::Params Runner::read_params(const store::Cursor& from, bool windowed) const {
    const store::SkipRange skip = windowed && skip_ && from < skip_->through ? *skip_ : store::SkipRange{};
    store::Params params{from.epoch_text(),
                         from.transaction_text(),
                         from.position_text(),
                         std::to_string(projection_.settings.batch_size),
                         std::to_string(ReadPlan::window_size(projection_.settings.batch_size)),
                         skip.through.epoch_text(),
                         skip.through.transaction_text(),
                         skip.through.position_text(),
                         std::to_string(skip.at_or_below)};
    params.insert(params.end(), plan_.filter_arguments().begin(), plan_.filter_arguments().end());
    return params;
}

void Runner::prepare_reads(store::ConnectionPool::Lease& lease) {
    for (const bool windowed : {false, true}) {
        const std::string name = read_statement(windowed);
        if (!lease.is_prepared(name)) {
            lease->prepare(name, plan_.read_sql(windowed));
            lease.mark_prepared(name);
        }
    }
}

Runner::ReadingAhead::~ReadingAhead() {
    if (pending_) {
        lease_.discard(); // its answer was never taken: the session is mid-statement
    }
}

std::optional<Runner::ReadAhead> Runner::ReadingAhead::take() {
    pending_ = false;
    try {
        ReadAhead ahead{from_, windowed_, lease_->take_result(), Clock::now()};
        return ahead;
    } catch (const store::DatabaseError& error) {
        lease_.discard();
        spdlog::debug("reading ahead failed ({}); the next batch is read again", error.what());
    } catch (const store::Interrupted&) {
        lease_.discard();
    }
    return std::nullopt;
}

void Runner::start_reading_ahead(const store::Cursor& from) {
    if (control_.at_least(StopLevel::drain)) {
        return;
    }
    try {
        auto lease = services_.pool->try_acquire(&interrupt_);
        if (!lease) {
            return;
        }
        prepare_reads(*lease);
        const bool windowed = read_is_windowed(from);
        (*lease)->send_prepared(read_statement(windowed), read_params(from, windowed));
        reading_.emplace(std::move(*lease), from, windowed);
    } catch (const store::DatabaseError& error) {
        spdlog::debug("not reading ahead: {}", error.what());
    }
}

Runner::BatchEnd Runner::apply_batch(store::ConnectionPool::Lease& lease, BatchApplier& applier,
                                     const store::Result& batch, int rows, store::Cursor to,
                                     const store::Ownership& owner, std::optional<std::int64_t> passed_max) {
    BatchRequest request;
    request.passed_max = passed_max;
    request.rows = &batch;
    request.handle_count = rows;
    request.from = cursor_;
    request.to = to;
    request.owner = owner;
    int failures = 0;
    system::Backoff retry(200ms, 30s);
    const auto started = Clock::now();
    // on_error: stop commits what comes before the failing event, then stops.
    std::optional<std::pair<std::string, std::optional<std::int64_t>>> stop_after;

    std::vector<std::vector<handlers::Statement>> code_statements;
    for (;;) {
        threshold_ = StopLevel::abort; // a drain lets the batch in flight commit
        std::optional<BatchOutcome> code_failure;
        if (!code_.empty() || plan_.has_code()) {
            code_failure = ask_code(batch, request.handle_count, code_statements);
            request.code = &code_statements;
        }
        BatchOutcome outcome = code_failure ? std::move(*code_failure) : [&] {
            // The batch read ahead arrives meanwhile, rather than waiting in
            // its server for the socket to be read.
            store::Connection::Draining draining(lease.conn(), reading_ ? &reading_->conn() : nullptr);
            return applier.apply(lease, request);
        }();
        threshold_ = StopLevel::drain;
        if (outcome.committed) {
            const int applied = request.handle_count + (request.dead_letter_row ? 1 : 0);
            cursor_ = request.to;
            last_global_position_ = std::max(last_global_position_, outcome.last_global_position);
            if (skip_ && cursor_ >= skip_->through) {
                skip_.reset();
            }
            health_.update([&](RunnerSnapshot& s) {
                s.last_global_position = last_global_position_;
                s.cursor = cursor_;
                s.events_applied += request.handle_count;
                s.dead_letters += request.dead_letter_row ? 1 : 0;
                ++s.batches;
            });
            if (metrics_ != nullptr) {
                metrics_->add_batch(static_cast<std::uint64_t>(request.handle_count), Clock::now() - started);
                metrics_->set_checkpoint(last_global_position_);
                if (applied > 0) {
                    metrics_->set_last_event_processed(std::chrono::system_clock::now());
                }
                if (request.dead_letter_row) {
                    metrics_->add_dead_letter();
                }
            }
            if (applied > 0) {
                const auto seconds = std::chrono::duration<double>(Clock::now() - started).count();
                logging::ScopedPosition at(last_global_position_);
                spdlog::debug("committed {} event{}, checkpoint at {}, {:.0f} events/s", applied,
                              applied == 1 ? "" : "s", last_global_position_, seconds > 0 ? applied / seconds : 0.0);
                log_events(batch, request.handle_count);
            } else {
                spdlog::debug("checkpoint passed filtered events up to position {}", last_global_position_);
            }
            if (stop_after) {
                fail(lease.conn(), owner, stop_after->first, stop_after->second);
                return BatchEnd::failed_and_stopped;
            }
            return BatchEnd::committed;
        }

        // The batch failed: the next one is read again once it commits; the
        // connection reading ahead goes back to the pool now, not after the
        // retries.
        reading_.reset();
        const store::DatabaseError& error = *outcome.error;
        if (error.sqlstate() == "PJ002" || error.sqlstate() == "PJ005") {
            throw error; // the checkpoint moved, or the partition is no longer ours
        }
        count_failure(outcome.failed_row ? observability::FailureKind::handler : observability::FailureKind::database);
        if (outcome.failed_row && outcome.failed_rows > 1) {
            // A batch handler's run failed: run those events one at a time to
            // find the one that fails (not counted as a retry). The range
            // only widens: a run isolated before, whose events pass one at a
            // time, must not be put back whole, or two runs that fail only as
            // a whole would take turns for ever.
            const int run_from = *outcome.failed_row;
            const int run_to = run_from + outcome.failed_rows;
            const bool isolating = request.isolate_from < request.isolate_to;
            request.isolate_from = isolating ? std::min(request.isolate_from, run_from) : run_from;
            request.isolate_to = isolating ? std::max(request.isolate_to, run_to) : run_to;
            spdlog::info("{}; running those events one at a time to find the failing one", describe(error));
            continue;
        }
        if (error.transient()) {
            const auto delay = retry.next();
            spdlog::warn("batch rolled back by a transient error, retrying in {} ms: {}", delay.count(),
                         describe(error));
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                return BatchEnd::drained;
            }
            continue;
        }
        const std::optional<std::int64_t> failed_position =
            outcome.failed_row ? std::optional(batch.int64(*outcome.failed_row, col_global_position)) : std::nullopt;
        logging::ScopedPosition at(failed_position.value_or(last_global_position_));
        if (++failures <= projection_.settings.max_retries) {
            const auto delay = retry.next();
            spdlog::warn("batch rolled back, retry {} of {} in {} ms: {}", failures, projection_.settings.max_retries,
                         delay.count(), describe(error));
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                return BatchEnd::drained;
            }
            continue;
        }
        if (!outcome.failed_row) {
            // Not a handler's fault (the commit itself failed): nothing to
            // isolate; stop where the batch began.
            fail(lease.conn(), owner, describe(error), std::nullopt);
            return BatchEnd::failed_and_stopped;
        }
        const int row = *outcome.failed_row;
        failures = 0;
        retry.reset();
        if (projection_.settings.on_error == config::OnError::skip) {
            // Apply the events before the failing one, park it, move past it.
            spdlog::error("parking the event at position {} in projection_dead_letters after {} failed attempts: {}",
                          *failed_position, projection_.settings.max_retries + 1, describe(error));
            request.handle_count = row;
            request.passed_max.reset(); // the batch is cut short: let the database find it
            request.dead_letter_row = row;
            request.dead_letter_error = error.what();
            request.dead_letter_sqlstate = error.sqlstate();
            request.to = cursor_of(batch, row);
            continue;
        }
        // on_error: stop. Apply and commit the events before the failing one,
        // then stop with the checkpoint just before it.
        stop_after.emplace(describe(error), failed_position);
        if (row == 0) {
            fail(lease.conn(), owner, stop_after->first, stop_after->second);
            return BatchEnd::failed_and_stopped;
        }
        request.handle_count = row;
        request.passed_max.reset();
        request.dead_letter_row.reset();
        request.to = cursor_of(batch, row - 1);
    }
}

void Runner::log_events(const store::Result& batch, int rows) {
    const int name_column = plan_.log_name_column();
    if (!projection_.log && !spdlog::should_log(spdlog::level::trace)) {
        return;
    }
    for (int row = 0; row < rows; ++row) {
        const std::int64_t position = batch.int64(row, col_global_position);
        logging::ScopedPosition at(position);
        const std::string_view aggregate = batch.text(row, col_aggregate_id).substr(0, 8);
        const std::string_view label = name_column >= 0 && !batch.is_null(row, name_column)
                                           ? batch.text(row, name_column)
                                           : batch.text(row, col_event_type);
        if (projection_.log) {
            spdlog::info("✓ Processed event #{} (position: {}, aggregate: {}): {}", ++events_logged_, position,
                         aggregate, label);
        } else {
            spdlog::trace("handled {} (position: {}, aggregate: {})", batch.text(row, col_event_type), position,
                          aggregate);
        }
    }
}

void Runner::fail(store::Connection& conn, const store::Ownership& owner, const std::string& error,
                  std::optional<std::int64_t> position) {
    failed_ = true;
    health_.update([&](RunnerSnapshot& s) { s.failed_position = position; });
    set_state(RunnerState::failed, error);
    spdlog::error("projection stopped (on_error: stop){}: {}; its checkpoint is just before that event. Fix the "
                  "cause, then run `projectiond resume {}`",
                  position ? fmt::format(" at position {}", *position) : std::string(), error, projection_.name);
    store::record_failure(conn, key_, owner, error, position);
}

} // namespace projectiond::projection

namespace projectiond::projection {

handlers::CodeHandler& Runner::code_handler(const PlannedHandler& handler) {
    auto& slot = code_[handler.index];
    if (!slot) {
        slot = handlers::make_code_handler(
            projection_.handlers[static_cast<std::size_t>(handler.index)],
            handlers::HandlerSite{projection_.name, key_.partition, projection_.settings.exec_timeout});
        slot->set_interrupt(&interrupt_);
    }
    return *slot;
}

void Runner::stop_code() noexcept {
    for (auto& [index, handler] : code_) {
        handler->stop();
    }
    code_.clear();
}

std::optional<BatchOutcome> Runner::ask_code(const store::Result& batch, int rows,
                                             std::vector<std::vector<handlers::Statement>>& statements) {
    statements.assign(static_cast<std::size_t>(rows), {});
    const auto text = [&](int row, std::string_view field) -> std::optional<std::string_view> {
        const int column = plan_.column_of(field);
        if (column < 0 || batch.is_null(row, column)) {
            return std::nullopt;
        }
        return batch.text(row, column);
    };
    const auto number = [&](int row, std::string_view field) {
        const int column = plan_.column_of(field);
        return column < 0 || batch.is_null(row, column) ? 0 : batch.int64(row, column);
    };
    // Each code handler gets its own events, in order.
    std::map<const PlannedHandler*, std::vector<int>> rows_of;
    for (int row = 0; row < rows; ++row) {
        const PlannedHandler* handler = plan_.handler_for(batch.text(row, col_event_type));
        if (handler != nullptr &&
            (handler->kind == config::HandlerKind::exec || handler->kind == config::HandlerKind::plugin)) {
            rows_of[handler].push_back(row);
        }
    }
    std::optional<int> failed_row;
    std::string failure;
    for (const auto& [handler, handled] : rows_of) {
        std::vector<handlers::Event> events;
        events.reserve(handled.size());
        for (const int row : handled) {
            handlers::Event event;
            event.global_position = batch.int64(row, col_global_position);
            event.bounded_context = text(row, "bounded_context").value_or("");
            event.aggregate_type = text(row, "aggregate_type").value_or("");
            event.aggregate_id = batch.text(row, col_aggregate_id);
            event.aggregate_version = number(row, "aggregate_version");
            event.event_id = text(row, "event_id").value_or("");
            event.event_type = batch.text(row, col_event_type);
            event.event_version = static_cast<std::int32_t>(number(row, "event_version"));
            event.payload = text(row, "payload").value_or("null");
            event.metadata = text(row, "metadata");
            event.trace_id = text(row, "trace_id");
            event.correlation_id = text(row, "correlation_id");
            event.causation_id = text(row, "causation_id");
            event.created_at = text(row, "created_at").value_or("");
            events.push_back(event);
        }
        std::vector<handlers::Reply> replies;
        try {
            replies = code_handler(*handler).handle(events);
        } catch (const handlers::PluginLoadError& error) {
            replies.assign(1, handlers::Reply{{}, std::string(error.what())});
        }
        for (std::size_t i = 0; i < replies.size(); ++i) {
            const int row = handled[i];
            if (replies[i].failed()) {
                if (!failed_row || row < *failed_row) {
                    failed_row = row;
                    failure = *replies[i].error;
                }
                break;
            }
            statements[static_cast<std::size_t>(row)] = std::move(replies[i].statements);
        }
    }
    if (!failed_row) {
        return std::nullopt;
    }
    BatchOutcome outcome;
    outcome.failed_row = *failed_row;
    outcome.failed_rows = 1;
    outcome.error.emplace(fmt::format("the handler for {} failed at position {}: {}",
                                      batch.text(*failed_row, col_event_type),
                                      batch.text(*failed_row, col_global_position), failure),
                          "");
    return outcome;
}

} // namespace projectiond::projection
