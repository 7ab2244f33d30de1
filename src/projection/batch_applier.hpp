#pragma once
// Applies one batch: its events' handler statements, an optional dead letter,
// and the checkpoint move, in one transaction that commits or rolls back as a
// whole. Everything is queued in one libpq pipeline, so a batch costs one
// round trip however many events it holds.

#include "handlers/code_handler.hpp"
#include "projection/read_plan.hpp"
#include "projection/runner_health.hpp"
#include "store/checkpoints.hpp"
#include "store/connection_pool.hpp"
#include "store/database_error.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace projectiond::projection {

struct BatchRequest {
    const store::Result* rows = nullptr; // the read result; events are rows [0, handle_count)
    int handle_count = 0;
    std::optional<int> dead_letter_row; // park this row instead of handling it
    std::string dead_letter_error;
    std::string dead_letter_sqlstate;
    // Rows [isolate_from, isolate_to) run batch handlers one event at a time,
    // to find which event of a failing run is the culprit.
    int isolate_from = 0;
    int isolate_to = 0;
    // For rows handled by code (exec, plugin): the statements it returned,
    // run in the event's place.
    const std::vector<std::vector<handlers::Statement>>* code = nullptr;
    store::Cursor from; // the checkpoint the batch starts at
    store::Cursor to;   // where it moves the checkpoint
    // The highest position among the events passed, when the read saw every
    // one of them (else the database finds it).
    std::optional<std::int64_t> passed_max;
    store::Ownership owner;
};

struct BatchOutcome {
    bool committed = false;
    std::int64_t last_global_position = 0; // after commit
    std::optional<int> failed_row;         // the first row of the statement that failed, if one did
    int failed_rows = 0;                   // how many rows that statement covered (a batch handler's run)
    std::optional<store::DatabaseError> error;
};

class BatchApplier {
public:
    // `schema`: the projection's schema, put first in the batch's search_path.
    BatchApplier(const ReadPlan& plan, store::PartitionKey key, std::optional<std::string> schema,
                 std::string statement_prefix, RunnerHealth& health);

    // Prepares the statements on this connection unless they already are.
    // A handler statement that does not prepare (say, its table was dropped)
    // is sent unprepared instead, so that its error surfaces at the event
    // that runs it and goes through retries and on_error like any other.
    void prepare(store::ConnectionPool::Lease& lease);
    // A lost connection and Interrupted are thrown; SQL errors are returned.
    BatchOutcome apply(store::ConnectionPool::Lease& lease, const BatchRequest& request);

    const std::string& statement_prefix() const noexcept { return prefix_; }

private:
    BatchOutcome run(store::Connection& conn, const BatchRequest& request);
    // Prepares the distinct statements code handlers returned (a code
    // handler usually sends the same few texts for every event).
    void prepare_code(store::ConnectionPool::Lease& lease, const BatchRequest& request);
    const std::string* code_statement_name(const std::string& sql) const;

    const ReadPlan& plan_;
    store::PartitionKey key_;
    std::optional<std::string> schema_;
    std::optional<std::string> store_prefix_; // the store's schema, quoted, and a dot (with schema_)
    std::string prefix_;
    std::string generation_;
    std::string partition_;
    RunnerHealth& health_;
    std::set<std::string> unprepared_; // handler statements sent with their SQL each time
    std::map<std::string, std::string> code_names_; // code statement text -> prepared name ("" if it does not prepare)
};

} // namespace projectiond::projection
