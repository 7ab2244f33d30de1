#include "projection_state.hpp"

#include "store/demo_events.hpp"
#include "wait.hpp"

#include <fmt/format.h>

namespace projectiond::testing {

using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

void append(const TestDatabase& db, long long count) {
    store::Connection conn = db.connect();
    store::append_demo_events(conn, count, "User", "Identity");
}

long long checkpoint(const TestDatabase& db, const std::string& projection) {
    return db.number("SELECT coalesce(min(last_global_position), 0) FROM projection_checkpoints "
                     "WHERE projection_name = '" +
                     projection + "'");
}

long long max_position(const TestDatabase& db) {
    return db.number("SELECT coalesce(max(global_position), 0) FROM events");
}

bool caught_up(const TestDatabase& db, const std::string& projection, std::chrono::milliseconds timeout,
               int partitions) {
    const std::string sql = "SELECT count(*) = " + std::to_string(partitions) + R"sql( AND bool_and(
           c.last_global_position = (SELECT coalesce(max(global_position), 0) FROM events)
       AND NOT EXISTS (SELECT 1 FROM events e
                        WHERE (e.store_epoch, e.transaction_id, e.global_position)
                            > (c.cursor_store_epoch, c.cursor_transaction_id, c.cursor_global_position)))
  FROM projection_checkpoints c
 WHERE c.projection_name = ')sql" +
                            projection + "'";
    return wait_until([&] { return db.scalar(sql) == "t"; }, timeout, 50ms);
}

bool statement_running(const TestDatabase& db, const std::string& needle, std::chrono::milliseconds timeout) {
    const std::string sql = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = '" + db.name() +
                            "' AND query LIKE '%" + needle + "%' AND pid <> pg_backend_pid()";
    return wait_until([&] { return db.number(sql) > 0; }, timeout, 1ms);
}

std::string counter_config(int batch_size, const std::string& extra, const std::string& handler) {
    return fmt::format(R"(defaults:
  batch_size: {}
  poll_interval: 1s
projections:
  - name: counter
    setup: |
      CREATE TABLE IF NOT EXISTS stats (id int PRIMARY KEY, n bigint NOT NULL);
      INSERT INTO stats VALUES (1, 0) ON CONFLICT DO NOTHING
    handlers:
      "*": {}
{})",
                       batch_size, handler, extra);
}

} // namespace projectiond::testing
