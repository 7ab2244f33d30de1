#include "projection/batch_applier.hpp"

#include "config/parameter_types.hpp"
#include "store/generations.hpp"

#include <array>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::projection {

namespace {

// The store's own statements, with `store` ("" or a quoted schema and a dot)
// before each of the store's names. A projection with a schema runs its
// batches with that schema first in the search_path, and PostgreSQL parses a
// prepared statement again whenever the search_path differs from the one it
// was prepared under: unqualified, a projection table named `events` would
// stand in for the store's (and the dead letter would record nothing).
std::string advance_sql(std::string_view store) {
    return fmt::format("SELECT {}projectiond_advance_checkpoint($1, $2::integer, $3::integer, $4::bigint, $5::bigint, "
                       "$6::bigint, $7::xid8, $8::bigint, $9::bigint, $10::xid8, $11::bigint, $12::bigint, $13::bigint)",
                       store);
}

std::string dead_letter_sql(std::string_view store) {
    return fmt::format(R"sql(
INSERT INTO {0}projection_dead_letters
       (projection_name, generation, partition_index, global_position, event_id, event_type, error, sqlstate)
SELECT $1, $2::integer, $3::integer, e.global_position, e.event_id, e.event_type, $5, nullif($6, '')
  FROM {0}events e
 WHERE e.global_position = $4::bigint
    ON CONFLICT (projection_name, generation, event_id) DO NOTHING)sql",
                       store);
}

// A projection with a schema takes its checkpoint row first in each batch:
// a swap renames the schemas only once it holds every checkpoint row of both
// generations, so the schema this batch then looks up keeps its name until
// the batch ends. (Looked up without it, a swap committing in between would
// leave the name dangling, and the handlers' unqualified names would fall
// through the search_path to another version's tables.)
std::string lock_checkpoint_sql(std::string_view store) {
    return fmt::format("SELECT 1 FROM {}projection_checkpoints WHERE projection_name = $1 AND generation = $2::integer "
                       "AND partition_index = $3::integer FOR NO KEY UPDATE",
                       store);
}

// What each queued statement was, to tell which events a failure belongs to.
struct Slot {
    enum Kind { begin, handler, dead_letter, advance, commit } kind;
    int first_row = 0;
    int rows = 0;
    const PlannedStatement* statement = nullptr; // a handler's, to name its parameters in messages
};

// Names resolve at PREPARE time: in the projection's schema first, as when
// the statements run (each batch sets the same search_path for its
// transaction). The session's own search_path comes back afterwards.
class SchemaWhilePreparing {
public:
    SchemaWhilePreparing(store::Connection& conn, const std::optional<std::string>& schema,
                         const store::PartitionKey& key)
        : conn_(conn), schema_(schema), key_(key) {}
    SchemaWhilePreparing(const SchemaWhilePreparing&) = delete;
    SchemaWhilePreparing& operator=(const SchemaWhilePreparing&) = delete;
    ~SchemaWhilePreparing() {
        if (set_ && conn_.healthy()) {
            try {
                conn_.exec("RESET search_path");
            } catch (const std::exception&) {
                // The connection is discarded by its borrower.
            }
        }
    }
    void enter() {
        if (schema_ && !set_) {
            conn_.exec(store::generation_search_path_sql(false), {key_.projection, std::to_string(key_.generation)});
            set_ = true;
        }
    }

private:
    store::Connection& conn_;
    const std::optional<std::string>& schema_;
    const store::PartitionKey& key_;
    bool set_ = false;
};

} // namespace

BatchApplier::BatchApplier(const ReadPlan& plan, store::PartitionKey key, std::optional<std::string> schema,
                           std::string statement_prefix, RunnerHealth& health)
    : plan_(plan), key_(std::move(key)), schema_(std::move(schema)), prefix_(std::move(statement_prefix)),
      generation_(std::to_string(key_.generation)), partition_(std::to_string(key_.partition)), health_(health) {}

void BatchApplier::prepare(store::ConnectionPool::Lease& lease) {
    SchemaWhilePreparing schema_scope(lease.conn(), schema_, key_);
    const auto prepare_one = [&](const std::string& name, const std::string& sql, const std::vector<Oid>& types,
                                 bool in_schema) {
        const std::string full = prefix_ + name;
        if (lease.is_prepared(full) || unprepared_.contains(name)) {
            return;
        }
        if (in_schema) {
            schema_scope.enter();
        }
        lease->prepare(full, sql, types);
        lease.mark_prepared(full);
    };
    // The store's own statements first, before the projection's schema is
    // entered, and named with the store's schema: a table of the projection's
    // named like one of the store's (events, ...) must not stand in for it.
    if (schema_ && !store_prefix_) {
        // Where `events` resolves with the session's search_path, as every
        // other statement of the daemon's finds the store (current_schema()
        // may be an empty "$user" schema ahead of it).
        const store::Result found =
            lease->exec("SELECT c.relnamespace::regnamespace::text FROM pg_class c WHERE c.oid = 'events'::regclass");
        store_prefix_ = found.is_null(0, 0) ? std::string() : std::string(found.text(0, 0)) + ".";
    }
    const std::string store = store_prefix_.value_or("");
    prepare_one("advance", advance_sql(store), {}, false);
    prepare_one("dead_letter", dead_letter_sql(store), {}, false);
    if (schema_) {
        prepare_one("lock_checkpoint", lock_checkpoint_sql(store), {}, false);
    }
    for (const auto& handler : plan_.handlers()) {
        for (const auto& statement : handler.statements) {
            try {
                prepare_one(statement.name, statement.sql, statement.types, true);
            } catch (const store::DatabaseError& error) {
                if (error.connection_lost()) {
                    throw;
                }
                spdlog::warn("the handler for '{}' does not prepare ({}); its events will fail with this error "
                             "and go through on_error",
                             handler.event_type, error.what());
                unprepared_.insert(statement.name);
            }
        }
    }
}

void BatchApplier::prepare_code(store::ConnectionPool::Lease& lease, const BatchRequest& request) {
    if (request.code == nullptr) {
        return;
    }
    SchemaWhilePreparing schema_scope(lease.conn(), schema_, key_);
    for (int row = 0; row < request.handle_count && row < static_cast<int>(request.code->size()); ++row) {
        for (const handlers::Statement& statement : (*request.code)[static_cast<std::size_t>(row)]) {
            auto [it, inserted] = code_names_.try_emplace(statement.sql, prefix_ + "c" + std::to_string(code_names_.size()));
            if (it->second.empty() || lease.is_prepared(it->second)) {
                continue;
            }
            try {
                schema_scope.enter();
                lease->prepare(it->second, statement.sql);
                lease.mark_prepared(it->second);
            } catch (const store::DatabaseError& error) {
                if (error.connection_lost()) {
                    throw;
                }
                // Sent with its text instead: the error then belongs to the
                // event that returned it, and on_error applies.
                it->second.clear();
            }
        }
    }
}

const std::string* BatchApplier::code_statement_name(const std::string& sql) const {
    const auto it = code_names_.find(sql);
    return it == code_names_.end() || it->second.empty() ? nullptr : &it->second;
}

BatchOutcome BatchApplier::apply(store::ConnectionPool::Lease& lease, const BatchRequest& request) {
    try {
        prepare_code(lease, request);
        return run(lease.conn(), request);
    } catch (const store::Interrupted&) {
        // Aborted: the server holds the whole pipeline, COMMIT included, and
        // would run it to the end. Cancel the statement running now, so the
        // transaction fails and the rest of the pipeline is skipped; the
        // connection is closed, not reused.
        lease->request_cancel();
        lease.discard();
        throw;
    } catch (...) {
        lease.discard(); // in the middle of a pipeline: unusable
        throw;
    }
}

BatchOutcome BatchApplier::run(store::Connection& conn, const BatchRequest& request) {
    const store::Result& rows = *request.rows;
    std::vector<Slot> slots;
    std::vector<const char*> values;
    std::vector<std::string> names; // keeps the prepared names alive while queued

    const auto send_statement = [&](const PlannedStatement& statement, const std::vector<const char*>& args) {
        if (unprepared_.contains(statement.name)) {
            store::Params params;
            for (const char* arg : args) {
                params.emplace_back(arg == nullptr ? std::nullopt : std::optional<std::string>(arg));
            }
            conn.send(statement.sql, params, statement.types);
        } else {
            conn.send_prepared(prefix_ + statement.name, static_cast<int>(args.size()), args.data());
        }
    };

    conn.enter_pipeline();
    // READ COMMITTED: each statement must see what committed before it (a
    // swap that renamed the schema while this batch waited for its checkpoint
    // row, say). The session's default says so too (configure_session); the
    // batch states it itself because a handler's SET could change that
    // default for the batches after it.
    conn.send("BEGIN ISOLATION LEVEL READ COMMITTED", {});
    slots.push_back({Slot::begin});
    if (schema_) {
        const std::array<const char*, 3> key{key_.projection.c_str(), generation_.c_str(), partition_.c_str()};
        conn.send_prepared(prefix_ + "lock_checkpoint", static_cast<int>(key.size()), key.data());
        slots.push_back({Slot::begin});
        conn.send(store::generation_search_path_sql(true), {key_.projection, generation_});
        slots.push_back({Slot::begin});
    }
    std::string positions; // a batch handler's run, as a bigint[] literal
    for (int row = 0; row < request.handle_count;) {
        const PlannedHandler* handler = plan_.handler_for(rows.text(row, col_event_type));
        if (handler == nullptr) {
            ++row;
            continue;
        }
        if (handler->kind == config::HandlerKind::batch) {
            // A run: the consecutive rows this same handler takes.
            const bool isolated = row >= request.isolate_from && row < request.isolate_to;
            int end = row + 1;
            while (!isolated && end < request.handle_count &&
                   !(end >= request.isolate_from && end < request.isolate_to) &&
                   plan_.handler_for(rows.text(end, col_event_type)) == handler) {
                ++end;
            }
            // Consecutive ascending positions are bound as a range (first,
            // last); any others as the list, in the run's order.
            bool consecutive = true;
            for (int r = row + 1; r < end && consecutive; ++r) {
                consecutive = rows.int64(r, col_global_position) == rows.int64(r - 1, col_global_position) + 1;
            }
            const std::string first(rows.text(row, col_global_position));
            const std::string last(rows.text(end - 1, col_global_position));
            std::vector<const char*> args;
            if (consecutive) {
                args = {nullptr, first.c_str(), last.c_str()};
            } else {
                positions.assign(1, '{');
                for (int r = row; r < end; ++r) {
                    if (r > row) {
                        positions.push_back(',');
                    }
                    const std::string_view position = rows.text(r, col_global_position);
                    positions.append(position.data(), position.size());
                }
                positions.push_back('}');
                args = {positions.c_str(), nullptr, nullptr};
            }
            for (const auto& statement : handler->statements) {
                send_statement(statement, args);
                slots.push_back({Slot::handler, row, end - row, &statement});
            }
            row = end;
            continue;
        }
        if (handler->kind == config::HandlerKind::sql) {
            for (const auto& statement : handler->statements) {
                values.clear();
                for (const int column : statement.columns) {
                    values.push_back(rows.is_null(row, column) ? nullptr : PQgetvalue(rows.get(), row, column));
                }
                send_statement(statement, values);
                slots.push_back({Slot::handler, row, 1, &statement});
            }
        } else if (request.code != nullptr) {
            for (const handlers::Statement& statement : (*request.code)[static_cast<std::size_t>(row)]) {
                if (const std::string* name = code_statement_name(statement.sql)) {
                    values.clear();
                    for (const auto& param : statement.params) {
                        values.push_back(param ? param->c_str() : nullptr);
                    }
                    conn.send_prepared(*name, static_cast<int>(values.size()), values.data());
                } else {
                    conn.send(statement.sql, statement.params);
                }
                slots.push_back({Slot::handler, row, 1});
            }
        }
        ++row;
    }
    int handled = request.handle_count;
    if (request.dead_letter_row) {
        const int row = *request.dead_letter_row;
        const std::array<const char*, 6> args{key_.projection.c_str(),
                                              generation_.c_str(),
                                              partition_.c_str(),
                                              PQgetvalue(rows.get(), row, col_global_position),
                                              request.dead_letter_error.c_str(),
                                              request.dead_letter_sqlstate.c_str()};
        conn.send_prepared(prefix_ + "dead_letter", static_cast<int>(args.size()), args.data());
        slots.push_back({Slot::dead_letter});
    }
    const std::string passed_max = request.passed_max ? std::to_string(*request.passed_max) : std::string();
    const std::array<std::string, 10> texts{std::to_string(request.owner.daemon),
                                            std::to_string(request.owner.epoch),
                                            request.from.epoch_text(),
                                            request.from.transaction_text(),
                                            request.from.position_text(),
                                            request.to.epoch_text(),
                                            request.to.transaction_text(),
                                            request.to.position_text(),
                                            std::to_string(handled),
                                            {}};
    const std::array<const char*, 13> advance_args{key_.projection.c_str(),
                                                   generation_.c_str(),
                                                   partition_.c_str(),
                                                   texts[0].c_str(),
                                                   texts[1].c_str(),
                                                   texts[2].c_str(),
                                                   texts[3].c_str(),
                                                   texts[4].c_str(),
                                                   texts[5].c_str(),
                                                   texts[6].c_str(),
                                                   texts[7].c_str(),
                                                   texts[8].c_str(),
                                                   request.passed_max ? passed_max.c_str() : nullptr};
    conn.send_prepared(prefix_ + "advance", static_cast<int>(advance_args.size()), advance_args.data());
    slots.push_back({Slot::advance});
    conn.send("COMMIT", {});
    slots.push_back({Slot::commit});
    conn.pipeline_sync();

    BatchOutcome outcome;
    for (const Slot& slot : slots) {
        store::Result result = conn.next_pipeline_result();
        health_.beat();
        if (result.status() == PGRES_FATAL_ERROR && !outcome.error) {
            std::string message = result.error_message();
            if (slot.kind == Slot::handler) {
                if (slot.statement != nullptr) {
                    message = config::name_parameters_in_message(message, slot.statement->parameters);
                }
                const std::string_view event_type = rows.text(slot.first_row, col_event_type);
                message = slot.rows == 1
                              ? fmt::format("the handler for {} failed at position {}: {}", event_type,
                                            rows.text(slot.first_row, col_global_position), message)
                              : fmt::format("the batch handler for {} failed on the run of {} events from position "
                                            "{}: {}",
                                            event_type, slot.rows, rows.text(slot.first_row, col_global_position),
                                            message);
                outcome.failed_row = slot.first_row;
                outcome.failed_rows = slot.rows;
            } else if (slot.kind == Slot::commit) {
                message = fmt::format("the batch failed to commit: {}", message);
            }
            outcome.error.emplace(message, result.sqlstate());
        } else if (slot.kind == Slot::advance && result.status() == PGRES_TUPLES_OK) {
            outcome.last_global_position = result.int64(0, 0);
        } else if (slot.kind == Slot::commit && result.status() == PGRES_COMMAND_OK && !outcome.error) {
            outcome.committed = true;
        }
        // Each statement's results end with an empty one.
        while (conn.next_pipeline_result()) {
        }
    }
    store::Result sync = conn.next_pipeline_result();
    if (sync.status() != PGRES_PIPELINE_SYNC) {
        throw std::logic_error("pipeline out of step: expected the end of the batch");
    }
    conn.exit_pipeline();
    if (PQtransactionStatus(conn.native()) != PQTRANS_IDLE) {
        conn.exec("ROLLBACK");
    }
    return outcome;
}

} // namespace projectiond::projection
