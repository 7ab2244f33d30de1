#pragma once
// Applies one batch: its events' handler statements, an optional dead letter,
// and the checkpoint move, in one transaction that commits or rolls back as a
// whole. Everything is queued in one libpq pipeline, so a batch costs one
// round trip however many events it holds.

#include "projection/read_plan.hpp"
#include "projection/runner_health.hpp"
#include "store/checkpoints.hpp"
#include "store/connection.hpp"
#include "store/database_error.hpp"

#include <optional>
#include <string>

namespace projectiond::projection {

struct BatchRequest {
    const store::Result* rows = nullptr; // the read result; events are rows [0, handle_count)
    int handle_count = 0;
    std::optional<int> dead_letter_row; // park this row instead of handling it
    std::string dead_letter_error;
    std::string dead_letter_sqlstate;
    store::Cursor from; // the checkpoint the batch starts at
    store::Cursor to;   // where it moves the checkpoint
};

struct BatchOutcome {
    bool committed = false;
    std::int64_t last_global_position = 0; // after commit
    std::optional<int> failed_row;         // the row whose handler failed, if one did
    std::optional<store::DatabaseError> error;
};

class BatchApplier {
public:
    BatchApplier(store::Connection& conn, const ReadPlan& plan, std::string projection, int partition,
                 RunnerHealth& health);

    // Prepares the handler statements on the connection (once per session).
    void prepare();
    // A lost connection and Interrupted are thrown; SQL errors are returned.
    BatchOutcome apply(const BatchRequest& request);

private:
    BatchOutcome run(const BatchRequest& request);

    store::Connection& conn_;
    const ReadPlan& plan_;
    std::string projection_;
    std::string partition_;
    RunnerHealth& health_;
};

} // namespace projectiond::projection
