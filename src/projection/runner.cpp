#include "projection/runner.hpp"

#include "logging/log_context.hpp"
#include "projection/backoff.hpp"
#include "projection/batch_applier.hpp"
#include "store/database_error.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

namespace projectiond::projection {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// An idle runner wakes at least this often to show the watchdog it is alive.
constexpr auto heartbeat_slice = 1s;
// ...and marks its checkpoint this often, so monitoring can tell idle from dead.
constexpr auto touch_interval = 60s;
// Between two attempts to take over a partition another runner owns.
constexpr auto ownership_retry = 1s;

store::Cursor cursor_of(const store::Result& batch, int row) {
    return store::Cursor{store::parse_transaction_id(batch.text(row, col_transaction_id)),
                         batch.int64(row, col_global_position)};
}

std::string describe(const store::DatabaseError& error) {
    return error.sqlstate().empty() ? std::string(error.what())
                                    : fmt::format("{} (SQLSTATE {})", error.what(), error.sqlstate());
}

} // namespace

Runner::Runner(config::Projection projection, int partition, RunnerSettings settings)
    : projection_(std::move(projection)), partition_(partition), settings_(std::move(settings)),
      plan_(projection_, partition_) {
    interrupt_.fd = control_.fd();
    interrupt_.give_up = [this] { return control_.consume(threshold_.load()); };
    settings_.connect.interrupt = &interrupt_;
    settings_.connect.application_name = fmt::format("projectiond {}/{}", projection_.name, partition_).substr(0, 63);
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

void Runner::set_state(RunnerState state) {
    health_.update([state](RunnerSnapshot& s) { s.state = state; });
}

void Runner::main() noexcept {
    logging::ScopedProjection log_scope(projection_.name, partition_);
    Backoff reconnect(250ms, 30s);
    while (!control_.at_least(StopLevel::drain) && !failed_) {
        try {
            session();
            reconnect.reset();
        } catch (const store::Interrupted&) {
            break;
        } catch (const store::DatabaseError& error) {
            health_.update([&](RunnerSnapshot& s) {
                s.state = RunnerState::waiting_for_database;
                s.error = describe(error);
            });
            const auto delay = reconnect.next();
            if (error.connection_lost()) {
                spdlog::warn("database unavailable: {}; reconnecting in {} ms", error.what(), delay.count());
            } else {
                spdlog::error("{}; starting over in {} ms", describe(error), delay.count());
            }
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                break;
            }
        } catch (const std::exception& error) {
            const auto delay = reconnect.next();
            spdlog::error("internal error: {}; starting over in {} ms", error.what(), delay.count());
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                break;
            }
        }
        health_.beat();
    }
    if (!failed_) {
        set_state(RunnerState::stopped);
        spdlog::info("runner stopped");
    }
    finished_ = true;
}

void Runner::configure_session(store::Connection& conn) {
    const auto& db = settings_.database;
    conn.exec("SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)",
              {std::to_string(db.statement_timeout.count()) + "ms", std::to_string(db.lock_timeout.count()) + "ms"});
    // Over TCP, let the server notice a vanished host within seconds, so that
    // its advisory lock (the partition's ownership) is released for another
    // daemon to take over. Ignored on unix sockets.
    conn.exec("SELECT set_config('tcp_keepalives_idle', '5', false), set_config('tcp_keepalives_interval', "
              "'2', false), set_config('tcp_keepalives_count', '3', false)");
    // And let a long statement notice within a second that this runner is gone
    // (killed, or aborted by a second SIGTERM), so its batch rolls back then.
    conn.exec("SELECT set_config('client_connection_check_interval', '1000', false)");
    conn.exec("LISTEN projectiond_events");
}

bool Runner::take_ownership(store::Connection& conn, const store::Checkpoint& checkpoint) {
    bool announced = false;
    while (!store::try_lock_partition(conn, checkpoint.lock_key)) {
        if (!announced) {
            spdlog::info("another runner owns this partition; standing by to take over");
            announced = true;
            health_.update([](RunnerSnapshot& s) {
                s.state = RunnerState::waiting_for_ownership;
                s.started = true;
            });
        }
        health_.beat();
        if (!control_.sleep_for(ownership_retry, StopLevel::drain)) {
            return false;
        }
    }
    if (announced) {
        spdlog::info("took over the partition");
    }
    return true;
}

void Runner::session() {
    threshold_ = StopLevel::drain;
    set_state(RunnerState::waiting_for_database);
    store::Connection conn = store::Connection::open(settings_.connect);
    configure_session(conn);
    const auto refuse_partition_change = [&](int stored_count) {
        fail(conn,
             fmt::format("the checkpoints of '{}' were written for {} partitions but the configuration now asks "
                         "for {}; aggregates would change partition mid-stream. Rebuild the read model: clear "
                         "its tables and run `projectiond reset {}`",
                         projection_.name, stored_count, projection_.partitions, projection_.name),
             std::nullopt);
    };
    store::Checkpoint checkpoint = store::ensure_checkpoint(conn, projection_.name, partition_, projection_.partitions);
    if (!checkpoint.stored) {
        refuse_partition_change(checkpoint.partition_count);
        return;
    }
    if (!take_ownership(conn, checkpoint)) {
        return;
    }
    // Read again under the lock: the previous owner may have moved it.
    checkpoint = store::load_checkpoint(conn, projection_.name, partition_);
    if (checkpoint.partition_count != projection_.partitions) {
        refuse_partition_change(checkpoint.partition_count);
        return;
    }
    if (checkpoint.failed) {
        spdlog::info("retrying after the recorded failure: {}", checkpoint.last_error.value_or("(none)"));
    }
    store::claim_checkpoint(conn, projection_.name, partition_, settings_.owner);
    BatchApplier applier(conn, plan_, projection_.name, partition_, health_);
    conn.prepare("read", plan_.read_sql());
    applier.prepare();

    Progress progress{checkpoint.cursor, checkpoint.last_global_position};
    if (progress.cursor == store::Cursor{}) {
        spdlog::info("Starting fresh (no checkpoint found)");
    } else {
        spdlog::info("Resuming from checkpoint: position {}", progress.last_global_position);
    }
    health_.update([&](RunnerSnapshot& s) {
        s.state = RunnerState::catching_up;
        s.started = true;
        s.error.reset();
        s.last_global_position = progress.last_global_position;
    });

    const auto batch_size = std::to_string(projection_.settings.batch_size);
    store::Params read_params{std::string(), std::string(), batch_size,
                              std::to_string(ReadPlan::window_size(projection_.settings.batch_size))};
    read_params.insert(read_params.end(), plan_.filter_arguments().begin(), plan_.filter_arguments().end());
    Backoff pending_wait(5ms, 500ms);
    auto last_touch = Clock::now();
    bool idle_logged = false;

    for (;;) {
        if (control_.at_least(StopLevel::drain)) {
            return;
        }
        health_.beat();
        read_params[0] = progress.cursor.transaction_text();
        read_params[1] = progress.cursor.position_text();
        const store::Result batch = conn.exec_prepared("read", read_params);
        const bool pending = batch.boolean(0, col_pending);
        const int rows = batch.is_null(0, col_transaction_id) ? 0 : batch.rows();
        // The last settled event in reading order, and the end of this read's
        // window; {0, 0} (before everything) when there is none.
        const auto cursor_at = [&](int xid_column, int position_column) {
            return batch.is_null(0, xid_column) ? store::Cursor{}
                                                : store::Cursor{store::parse_transaction_id(batch.text(0, xid_column)),
                                                                batch.int64(0, position_column)};
        };
        const store::Cursor settled = cursor_at(col_settled_xid, col_settled_position);
        const store::Cursor reach = cursor_at(col_reach_xid, col_reach_position);
        const std::int64_t max_position = batch.is_null(0, col_max_position) ? 0 : batch.int64(0, col_max_position);
        health_.update([&](RunnerSnapshot& s) { s.max_global_position = max_position; });
        if (control_.at_least(StopLevel::drain)) {
            return; // a batch read but not begun is not in flight
        }

        const bool full = rows == projection_.settings.batch_size;
        // A short batch has seen every event of its window: the cursor may pass
        // the events the filters left out, up to the window's end.
        store::Cursor to = rows > 0 ? cursor_of(batch, rows - 1) : progress.cursor;
        if (!full && reach > to) {
            to = reach;
        }
        if (rows > 0 || to > progress.cursor) {
            idle_logged = false;
            set_state(RunnerState::catching_up);
            switch (apply_batch(conn, applier, batch, rows, to, progress)) {
            case BatchEnd::committed:
                break;
            case BatchEnd::failed_and_stopped:
            case BatchEnd::drained:
                return;
            }
            last_touch = Clock::now();
            if (full || progress.cursor < to || progress.cursor < settled) {
                continue; // more to read now
            }
        }

        if (!pending) {
            pending_wait.reset();
            set_state(RunnerState::caught_up);
            if (!idle_logged) {
                spdlog::info("caught up at position {}", progress.last_global_position);
                idle_logged = true;
            }
        }
        if (Clock::now() - last_touch >= touch_interval) {
            store::touch_checkpoint(conn, projection_.name, partition_);
            last_touch = Clock::now();
        }
        // Committed events above the horizon wait for an older transaction to
        // end; that gives no notification, so look again soon.
        const auto wait = pending ? std::chrono::duration_cast<std::chrono::milliseconds>(pending_wait.next())
                                  : projection_.settings.poll_interval;
        const auto deadline = Clock::now() + wait;
        while (Clock::now() < deadline) {
            const auto slice_end = std::min(deadline, Clock::now() + heartbeat_slice);
            health_.beat();
            if (conn.wait_for_notification(slice_end)) {
                break;
            }
        }
    }
}

Runner::BatchEnd Runner::apply_batch(store::Connection& conn, BatchApplier& applier, const store::Result& batch,
                                     int rows, store::Cursor to, Progress& progress) {
    BatchRequest request;
    request.rows = &batch;
    request.handle_count = rows;
    request.from = progress.cursor;
    request.to = to;
    int failures = 0;
    Backoff retry(200ms, 30s);
    const auto started = Clock::now();

    for (;;) {
        threshold_ = StopLevel::abort; // a drain lets the batch in flight commit
        BatchOutcome outcome = applier.apply(request);
        threshold_ = StopLevel::drain;
        if (outcome.committed) {
            const int applied = request.handle_count + (request.dead_letter_row ? 1 : 0);
            progress.cursor = request.to;
            progress.last_global_position = outcome.last_global_position;
            health_.update([&](RunnerSnapshot& s) { s.last_global_position = outcome.last_global_position; });
            if (applied > 0) {
                const auto seconds = std::chrono::duration<double>(Clock::now() - started).count();
                logging::ScopedPosition at(outcome.last_global_position);
                spdlog::info("committed {} event{}, checkpoint at {}, {:.0f} events/s", applied,
                             applied == 1 ? "" : "s", outcome.last_global_position,
                             seconds > 0 ? applied / seconds : 0.0);
                log_events(batch, request.handle_count);
            } else {
                spdlog::debug("checkpoint passed filtered events up to position {}", outcome.last_global_position);
            }
            return BatchEnd::committed;
        }

        const store::DatabaseError& error = *outcome.error;
        if (error.sqlstate() == "PJ002") {
            throw error; // the checkpoint moved (a reset): start over from it
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
        logging::ScopedPosition at(failed_position.value_or(progress.last_global_position));
        if (++failures <= projection_.settings.max_retries) {
            const auto delay = retry.next();
            spdlog::warn("batch rolled back, retry {} of {} in {} ms: {}", failures, projection_.settings.max_retries,
                         delay.count(), describe(error));
            if (!control_.sleep_for(delay, StopLevel::drain)) {
                return BatchEnd::drained;
            }
            continue;
        }
        if (projection_.settings.on_error == config::OnError::skip && outcome.failed_row) {
            // Apply the events before the failing one, park it, and move past it.
            const int row = *outcome.failed_row;
            spdlog::error("parking the event at position {} in projection_dead_letters after {} failed attempts: {}",
                          *failed_position, failures, describe(error));
            request.handle_count = row;
            request.dead_letter_row = row;
            request.dead_letter_error = error.what();
            request.dead_letter_sqlstate = error.sqlstate();
            request.to = cursor_of(batch, row);
            failures = 0;
            retry.reset();
            continue;
        }
        fail(conn, describe(error), failed_position);
        return BatchEnd::failed_and_stopped;
    }
}

void Runner::log_events(const store::Result& batch, int rows) {
    const int name_column = plan_.log_name_column();
    if (!projection_.log && !spdlog::should_log(spdlog::level::debug)) {
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
            spdlog::debug("handled {} (position: {}, aggregate: {})", batch.text(row, col_event_type), position,
                          aggregate);
        }
    }
}

void Runner::fail(store::Connection& conn, const std::string& error, std::optional<std::int64_t> position) {
    failed_ = true;
    health_.update([&](RunnerSnapshot& s) {
        s.state = RunnerState::failed;
        s.error = error;
    });
    spdlog::error("projection stopped (on_error: stop){}: {}; fix the cause, then restart projectiond or run "
                  "`projectiond reset {}`",
                  position ? fmt::format(" at position {}", *position) : std::string(), error, projection_.name);
    store::record_failure(conn, projection_.name, partition_, error, position);
}

} // namespace projectiond::projection
