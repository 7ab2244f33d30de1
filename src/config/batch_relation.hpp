#pragma once
// Gives a batch handler's statement its relation `batch`: the statement is
// run inside `WITH batch AS MATERIALIZED (<select>) <statement>`, or, when it
// has a WITH list of its own, with `batch` put first in that list (a statement
// takes only one WITH). MATERIALIZED: inlined, `batch` would let the planner
// test the statement's conditions on events outside the run (a generic plan
// scanning the events table), so a condition that fails for one event would
// fail every run and blame an innocent event. check-config compiles it with a select of no rows; the
// runner uses the select of the batch's events.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace projectiond::config {

// The select check-config gives `batch`: the events table's columns plus
// batch_ordinal, and no rows.
inline constexpr std::string_view empty_batch_select =
    "SELECT e.*, 0::bigint AS batch_ordinal FROM projectiond_run_events(ARRAY[]::bigint[]) e WHERE false";

struct BatchRelation {
    std::string sql;             // the statement with `batch` defined
    std::size_t inserted_at;     // where the definition went in, in bytes
    std::size_t inserted_length; // and its length

    // The byte of the handler's statement that byte `offset` of `sql` comes
    // from; nullopt inside the inserted definition.
    std::optional<std::size_t> statement_offset(std::size_t offset) const;
};

// `sql` is one statement, as the configuration loader keeps it.
BatchRelation splice_batch_relation(std::string_view sql, std::string_view batch_select);

// splice_batch_relation(sql, batch_select).sql
std::string with_batch_relation(std::string_view sql, std::string_view batch_select);

} // namespace projectiond::config
