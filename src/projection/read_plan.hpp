#pragma once
// The statements one projection partition runs, derived once from its
// configuration: the gap-safe read of the next batch (filters, partition and
// the fields its handlers name are all applied in SQL) and each handler
// statement with the result columns that feed its parameters.

#include "config/config.hpp"
#include "store/connection.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace projectiond::projection {

// Result columns of the read statement. Every row repeats the snapshot
// columns; when no event qualifies there is one row with the event columns NULL.
enum ReadColumn : int {
    col_horizon = 0,     // xmin of the read's snapshot: every older transaction has ended
    col_pending = 1,     // committed events exist at or above the horizon (wait a little, not a poll)
    col_settled_xid = 2, // the last settled event in reading order (below the horizon)
    col_settled_position = 3,
    col_reach_xid = 4, // the end of this read's window: a short batch moves the cursor here
    col_reach_position = 5,
    col_max_position = 6,   // max(global_position) visible, for lag estimates
    col_transaction_id = 7, // the event's appending transaction
    col_global_position = 8,
    col_event_type = 9,
    col_aggregate_id = 10,
    col_first_parameter = 11, // further columns: the fields the handlers name
};

struct PlannedStatement {
    std::string name;         // prepared statement name
    std::string sql;          // with $1..$n
    std::vector<int> columns; // read-result column feeding $1..$n
};

struct PlannedHandler {
    std::string event_type; // or "*"
    std::vector<PlannedStatement> statements;
};

class ReadPlan {
public:
    ReadPlan(const config::Projection& projection, int partition);

    // Parameters: $1 cursor transaction id, $2 cursor position, $3 batch size,
    // $4 window size (events a filtered read may pass over), then the values
    // of filter_arguments().
    const std::string& read_sql() const noexcept { return read_sql_; }
    // How many settled events one read of a filtered projection looks at, at
    // most: a selective filter must not turn one read into a scan of the store.
    static int window_size(int batch_size) noexcept { return std::max(5 * batch_size, 5000); }
    const store::Params& filter_arguments() const noexcept { return filter_arguments_; }

    const std::vector<PlannedHandler>& handlers() const noexcept { return handlers_; }
    // The handler for an event type ("*" when no exact one), or nullptr.
    const PlannedHandler* handler_for(std::string_view event_type) const noexcept;
    // Column with payload->>'name' for `log: true` lines, or -1.
    int log_name_column() const noexcept { return log_name_column_; }

private:
    int column_for(const std::string& parameter);

    std::string read_sql_;
    store::Params filter_arguments_;
    std::vector<std::string> select_list_;
    std::vector<std::string> fetched_; // parameter behind each extra column
    std::vector<PlannedHandler> handlers_;
    int log_name_column_ = -1;
};

// A PostgreSQL array literal of text values, to bind as text[].
std::string text_array_literal(const std::vector<std::string>& values);

} // namespace projectiond::projection
