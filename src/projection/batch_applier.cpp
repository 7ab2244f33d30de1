#include "projection/batch_applier.hpp"

#include <array>
#include <vector>

#include <fmt/format.h>

namespace projectiond::projection {

namespace {

const std::string advance_statement = "advance";
const std::string dead_letter_statement = "dead_letter";

const char* const advance_sql =
    "SELECT projectiond_advance_checkpoint($1, $2::integer, $3::xid8, $4::bigint, $5::xid8, $6::bigint, "
    "$7::bigint)";

const char* const dead_letter_sql = R"sql(
INSERT INTO projection_dead_letters
       (projection_name, partition_index, global_position, event_id, event_type, error, sqlstate)
SELECT $1, $2::integer, e.global_position, e.event_id, e.event_type, $4, nullif($5, '')
  FROM events e
 WHERE e.global_position = $3::bigint
    ON CONFLICT (projection_name, event_id) DO NOTHING)sql";

// What each queued statement was, to tell which event a failure belongs to.
enum Slot : int { slot_begin = -1, slot_advance = -2, slot_commit = -3, slot_dead_letter = -4 };

} // namespace

BatchApplier::BatchApplier(store::Connection& conn, const ReadPlan& plan, std::string projection, int partition,
                           RunnerHealth& health)
    : conn_(conn), plan_(plan), projection_(std::move(projection)), partition_(std::to_string(partition)),
      health_(health) {}

void BatchApplier::prepare() {
    for (const auto& handler : plan_.handlers()) {
        for (const auto& statement : handler.statements) {
            try {
                conn_.prepare(statement.name, statement.sql);
            } catch (const store::DatabaseError& error) {
                if (error.connection_lost()) {
                    throw;
                }
                throw store::DatabaseError(
                    fmt::format("the handler for '{}' does not prepare: {}", handler.event_type, error.what()),
                    error.sqlstate());
            }
        }
    }
    conn_.prepare(advance_statement, advance_sql);
    conn_.prepare(dead_letter_statement, dead_letter_sql);
}

BatchOutcome BatchApplier::apply(const BatchRequest& request) {
    try {
        return run(request);
    } catch (const store::Interrupted&) {
        // Aborted: the server holds the whole pipeline, COMMIT included, and
        // would run it to the end. Cancel the statement running now, so the
        // transaction fails and the rest of the pipeline is skipped; the
        // connection is closed next.
        conn_.request_cancel();
        throw;
    }
}

BatchOutcome BatchApplier::run(const BatchRequest& request) {
    const store::Result& rows = *request.rows;
    std::vector<int> slots;
    std::vector<const char*> values;

    conn_.enter_pipeline();
    conn_.send("BEGIN", {});
    slots.push_back(slot_begin);
    for (int row = 0; row < request.handle_count; ++row) {
        const PlannedHandler* handler = plan_.handler_for(rows.text(row, col_event_type));
        if (handler == nullptr) {
            continue;
        }
        for (const auto& statement : handler->statements) {
            values.clear();
            for (const int column : statement.columns) {
                values.push_back(rows.is_null(row, column) ? nullptr : PQgetvalue(rows.get(), row, column));
            }
            conn_.send_prepared(statement.name, static_cast<int>(values.size()), values.data());
            slots.push_back(row);
        }
    }
    int handled = request.handle_count;
    if (request.dead_letter_row) {
        const int row = *request.dead_letter_row;
        const std::array<const char*, 5> args{projection_.c_str(), partition_.c_str(),
                                              PQgetvalue(rows.get(), row, col_global_position),
                                              request.dead_letter_error.c_str(), request.dead_letter_sqlstate.c_str()};
        conn_.send_prepared(dead_letter_statement, static_cast<int>(args.size()), args.data());
        slots.push_back(slot_dead_letter);
    }
    const std::string from_xid = request.from.transaction_text();
    const std::string from_position = request.from.position_text();
    const std::string to_xid = request.to.transaction_text();
    const std::string to_position = request.to.position_text();
    const std::string handled_text = std::to_string(handled);
    const std::array<const char*, 7> advance_args{projection_.c_str(),   partition_.c_str(), from_xid.c_str(),
                                                  from_position.c_str(), to_xid.c_str(),     to_position.c_str(),
                                                  handled_text.c_str()};
    conn_.send_prepared(advance_statement, static_cast<int>(advance_args.size()), advance_args.data());
    slots.push_back(slot_advance);
    conn_.send("COMMIT", {});
    slots.push_back(slot_commit);
    conn_.pipeline_sync();

    BatchOutcome outcome;
    for (const int slot : slots) {
        store::Result result = conn_.next_pipeline_result();
        health_.beat();
        if (result.status() == PGRES_FATAL_ERROR && !outcome.error) {
            std::string message = result.error_message();
            if (slot >= 0) {
                const std::string_view event_type = rows.text(slot, col_event_type);
                message = fmt::format("the handler for {} failed at position {}: {}", event_type,
                                      rows.text(slot, col_global_position), message);
                outcome.failed_row = slot;
            } else if (slot == slot_commit) {
                message = fmt::format("the batch failed to commit: {}", message);
            }
            outcome.error.emplace(message, result.sqlstate());
        } else if (slot == slot_advance && result.status() == PGRES_TUPLES_OK) {
            outcome.last_global_position = result.int64(0, 0);
        } else if (slot == slot_commit && result.status() == PGRES_COMMAND_OK && !outcome.error) {
            outcome.committed = true;
        }
        // Each statement's results end with an empty one.
        while (conn_.next_pipeline_result()) {
        }
    }
    store::Result sync = conn_.next_pipeline_result();
    if (sync.status() != PGRES_PIPELINE_SYNC) {
        throw std::logic_error("pipeline out of step: expected the end of the batch");
    }
    conn_.exit_pipeline();
    if (PQtransactionStatus(conn_.native()) != PQTRANS_IDLE) {
        conn_.exec("ROLLBACK");
    }
    return outcome;
}

} // namespace projectiond::projection
