#pragma once
// The statements one projection partition runs, derived once from its
// configuration: the gap-safe read of the next batch (filters, partition and
// the fields its handlers name are all applied in SQL) and each handler
// statement with the result columns that feed its parameters.

#include "config/config.hpp"
#include "store/checkpoints.hpp"
#include "store/connection.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace projectiond::projection {

// Result columns of the read statement. Every row repeats the snapshot
// columns; when no event qualifies there is one row with the event columns NULL.
enum ReadColumn : int {
    col_settled_epoch = 0, // the last settled event in reading order (below the horizon)
    col_settled_xid = 1,
    col_settled_position = 2,
    col_reach_epoch = 3, // the end of this read's window: a short batch moves the cursor here
    col_reach_xid = 4,
    col_reach_position = 5,
    col_store_epoch = 6, // the event's place in reading order
    col_transaction_id = 7,
    col_global_position = 8,
    col_event_type = 9,
    col_aggregate_id = 10,
    col_first_parameter = 11, // further columns: the fields the handlers name
};

struct PlannedStatement {
    std::string name;         // prepared statement name (without the runner's prefix)
    std::string sql;          // with $1..$n
    std::vector<int> columns; // read-result column feeding $1..$n (sql handlers)
    std::vector<Oid> types;   // the type of $1..$n
    std::vector<std::string> parameters; // the named parameter behind $1..$n, for messages
};

struct PlannedHandler {
    std::string event_type; // or "*"
    config::HandlerKind kind = config::HandlerKind::sql;
    std::vector<PlannedStatement> statements; // sql and batch handlers
    int index = 0;                            // position in the configuration's handler list
};

class ReadPlan {
public:
    ReadPlan(const config::Projection& projection, int partition);

    // Parameters: $1..$3 cursor (epoch, transaction id, position), $4 batch
    // size, $5 window size (events a windowed read may pass over), $6..$9 the
    // skip range (epoch, transaction id, position, at-or-below position; all
    // zero when there is none), then filter_arguments().
    //
    // A windowed read looks at no more than $5 settled events per read: used
    // for filtered projections and while a skip range is being passed, so that
    // a selective read never turns into one long scan of the store.
    const std::string& read_sql(bool windowed) const noexcept { return windowed ? windowed_sql_ : plain_sql_; }
    bool filtered() const noexcept { return filtered_; }
    static int window_size(int batch_size) noexcept { return std::max(5 * batch_size, 5000); }
    const store::Params& filter_arguments() const noexcept { return filter_arguments_; }

    const std::vector<PlannedHandler>& handlers() const noexcept { return handlers_; }
    // The handler for an event type: an exact one wins over "*"; nullptr if none.
    const PlannedHandler* handler_for(std::string_view event_type) const noexcept;
    // Whether some handler is code (exec, plugin).
    bool has_code() const noexcept { return has_code_; }
    // Column with payload->>'name' for `log: true` lines, or -1.
    int log_name_column() const noexcept { return log_name_column_; }
    // Columns holding every event field, for code handlers: -1 when not read.
    int column_of(std::string_view field) const noexcept;

private:
    int column_for(const std::string& parameter);

    std::string plain_sql_;
    std::string windowed_sql_;
    bool filtered_ = false;
    store::Params filter_arguments_;
    std::vector<std::string> select_list_;
    std::vector<std::string> fetched_; // parameter behind each extra column
    std::vector<PlannedHandler> handlers_;
    int log_name_column_ = -1;
    bool has_code_ = false;
};

// A PostgreSQL array literal of text values, to bind as text[].
std::string text_array_literal(const std::vector<std::string>& values);

} // namespace projectiond::projection
