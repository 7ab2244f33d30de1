#include "store/horizon_holder.hpp"

#include "store/checkpoints.hpp"

#include <fmt/format.h>

namespace projectiond::store {

std::string HorizonHolder::describe() const {
    if (prepared) {
        return fmt::format("prepared transaction '{}' (transaction {}{}{}): finish it with COMMIT PREPARED or "
                           "ROLLBACK PREPARED",
                           *prepared, transaction_id, user ? fmt::format(", owner {}", *user) : "",
                           database ? fmt::format(", database {}", *database) : "");
    }
    if (!session_visible) {
        return fmt::format("transaction {}, whose session this role cannot see (grant it pg_read_all_stats to "
                           "name the session, its user and its query)",
                           transaction_id);
    }
    std::string who = fmt::format("pid {} (transaction {}", pid.value_or(0), transaction_id);
    const auto add = [&](const char* what, const std::optional<std::string>& value) {
        if (value && !value->empty()) {
            who += fmt::format(", {} {}", what, *value);
        }
    };
    add("user", user);
    add("database", database);
    if (application && !application->empty()) {
        who += fmt::format(", application_name '{}'", *application);
    }
    add("client", client);
    if (state) {
        who += ", " + *state;
    }
    if (open_seconds) {
        who += fmt::format(", open for {:.0f} s", *open_seconds);
    }
    who += ")";
    if (query && !query->empty()) {
        who += ": " + *query;
    }
    return who;
}

std::optional<HorizonHolder> horizon_holder(Connection& conn) {
    // The horizon and the waiting events from one snapshot; pg_stat_activity
    // shows 32-bit xids, so compare on the low half of the xid8. The oldest
    // waiting event is found by a LATERAL probe, so that the horizon is an
    // index condition: joined, the planner walked the whole read-order index
    // and filtered each row (3.4 s for `status` on 5M events).
    const Result result = conn.exec(R"sql(
WITH h AS MATERIALIZED (
    SELECT s.current_epoch AS epoch, pg_snapshot_xmin(pg_current_snapshot()) AS horizon
      FROM projectiond_store s),
oldest AS (
    SELECT o.created_at FROM h, LATERAL (
        SELECT p.created_at FROM events p
         WHERE (p.store_epoch, p.transaction_id) >= (h.epoch, h.horizon)
         ORDER BY p.store_epoch, p.transaction_id, p.global_position
         LIMIT 1) o),
low AS (SELECT h.horizon, (h.horizon::text::numeric % 4294967296)::bigint AS xid32 FROM h)
SELECT l.horizon::text,
       extract(epoch FROM clock_timestamp() - o.created_at)::float8,
       a.pid, a.usename::text, a.datname::text, a.application_name, a.client_addr::text, a.state,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8, left(a.query, 200),
       x.gid, x.owner::text, x.database::text
  FROM low l
  JOIN oldest o ON true
  LEFT JOIN pg_stat_activity a ON a.backend_xid::text::bigint = l.xid32
  LEFT JOIN pg_prepared_xacts x ON x.transaction::text::bigint = l.xid32
 LIMIT 1)sql");
    if (result.rows() == 0) {
        return std::nullopt;
    }
    HorizonHolder holder;
    holder.transaction_id = parse_transaction_id(result.text(0, 0));
    holder.events_waiting_seconds = std::stod(std::string(result.text(0, 1)));
    if (!result.is_null(0, 2)) {
        holder.session_visible = true;
        holder.pid = static_cast<int>(result.int64(0, 2));
        holder.user = result.optional_text(0, 3);
        holder.database = result.optional_text(0, 4);
        holder.application = result.optional_text(0, 5);
        holder.client = result.optional_text(0, 6);
        holder.state = result.optional_text(0, 7);
        if (!result.is_null(0, 8)) {
            holder.open_seconds = std::stod(std::string(result.text(0, 8)));
        }
        holder.query = result.optional_text(0, 9);
    }
    if (!result.is_null(0, 10)) {
        holder.prepared = result.optional_text(0, 10);
        holder.user = result.optional_text(0, 11);
        holder.database = result.optional_text(0, 12);
    }
    return holder;
}

} // namespace projectiond::store
