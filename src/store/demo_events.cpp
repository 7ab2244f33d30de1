#include "store/demo_events.hpp"

#include <algorithm>

namespace projectiond::store {

namespace {
// One statement per chunk keeps a large append fast without one huge transaction.
constexpr std::int64_t chunk = 10000;

const char* const insert_chunk = R"sql(
WITH appended AS (
    INSERT INTO events (bounded_context, aggregate_type, aggregate_id, aggregate_version, event_type, payload)
    SELECT $1, $2, gen_random_uuid()::text, 1, 'UserCreated',
           jsonb_build_object('email', format('user%s@example.com', i),
                              'name', format('User %s', i),
                              'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
      FROM generate_series($3::bigint, $4::bigint) AS i
     ORDER BY i
    RETURNING global_position)
SELECT count(*), min(global_position), max(global_position) FROM appended)sql";
} // namespace

AppendedRange append_demo_events(Connection& conn, std::int64_t count, const std::string& aggregate_type,
                                 const std::string& bounded_context) {
    AppendedRange range;
    for (std::int64_t first = 1; first <= count; first += chunk) {
        const std::int64_t last = std::min(count, first + chunk - 1);
        const Result result =
            conn.exec(insert_chunk, {bounded_context, aggregate_type, std::to_string(first), std::to_string(last)});
        if (range.count == 0) {
            range.first_position = result.int64(0, 1);
        }
        range.count += result.int64(0, 0);
        range.last_position = result.int64(0, 2);
    }
    return range;
}

} // namespace projectiond::store
