#include "projection/read_plan.hpp"

#include "config/batch_relation.hpp"
#include "config/named_parameters.hpp"
#include "config/parameter_types.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

namespace projectiond::projection {

namespace {

// The event types worth reading: without a "*" handler or `log: true`, an
// event no handler takes only needs to move the cursor, which the settled
// cursor does without reading it.
std::vector<std::string> effective_event_types(const config::Projection& projection) {
    const bool everything = projection.log || std::any_of(projection.handlers.begin(), projection.handlers.end(),
                                                          [](const config::Handler& h) { return h.event_type == "*"; });
    if (everything) {
        return projection.event_types;
    }
    std::vector<std::string> handled;
    for (const auto& handler : projection.handlers) {
        if (projection.event_types.empty() || std::find(projection.event_types.begin(), projection.event_types.end(),
                                                        handler.event_type) != projection.event_types.end()) {
            handled.push_back(handler.event_type);
        }
    }
    return handled;
}

} // namespace

std::string text_array_literal(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        out += '"';
        for (const char c : values[i]) {
            if (c == '"' || c == '\\') {
                out += '\\';
            }
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

namespace {

// The relation `batch` of a batch handler's run, in one of two ways, as the
// applier binds it: the run's positions as $1 (bigint[]) with their order in
// the run, or, when they are consecutive and ascending, its first and last
// position as $2 and $3 (one range scan instead of an index descent per event:
// migration 0007). The branch not bound is cut at execution start. Read
// through functions, not the name `events`: the projection's schema comes
// first in the handler's search_path and may hold an `events` table of its own.
constexpr std::string_view batch_select =
    "SELECT e.*, o.ordinality AS batch_ordinal FROM unnest($1::bigint[]) WITH ORDINALITY AS o(position, "
    "ordinality) JOIN projectiond_run_events($1::bigint[]) e ON e.global_position = o.position "
    "WHERE $2::bigint IS NULL "
    "UNION ALL "
    "SELECT e.*, e.global_position - $2::bigint + 1 FROM projectiond_run_range($2::bigint, $3::bigint) e "
    "WHERE $2::bigint IS NOT NULL";

constexpr Oid int8_array = 1016;
constexpr Oid int8 = 20;

// $1..$9 are the cursor, batch and window sizes and the skip range.
constexpr std::size_t first_filter_argument = 10;

bool is_code(config::HandlerKind kind) {
    return kind == config::HandlerKind::exec || kind == config::HandlerKind::plugin;
}

} // namespace

int ReadPlan::column_for(const std::string& parameter) {
    if (parameter == "global_position") {
        return col_global_position;
    }
    if (parameter == "event_type") {
        return col_event_type;
    }
    if (parameter == "aggregate_id") {
        return col_aggregate_id;
    }
    const auto found = std::find(fetched_.begin(), fetched_.end(), parameter);
    if (found != fetched_.end()) {
        return col_first_parameter + static_cast<int>(found - fetched_.begin());
    }
    const auto [base, path] = config::split_json_path(parameter);
    std::string expression;
    if (path.empty()) {
        // The loader accepted only event fields, and each is a column of events.
        expression = fmt::format("b.{}", base);
    } else {
        // The path is bound as a text[] parameter, not written into the SQL.
        const std::vector<std::string> segments = config::json_path_segments(parameter);
        filter_arguments_.emplace_back(text_array_literal(segments));
        expression = fmt::format("b.{} #>> ${}::text[]", base, filter_arguments_.size() + first_filter_argument - 1);
    }
    select_list_.push_back(expression);
    fetched_.push_back(parameter);
    return col_first_parameter + static_cast<int>(fetched_.size()) - 1;
}

int ReadPlan::column_of(std::string_view field) const noexcept {
    if (field == "global_position") {
        return col_global_position;
    }
    if (field == "event_type") {
        return col_event_type;
    }
    if (field == "aggregate_id") {
        return col_aggregate_id;
    }
    const auto found = std::find(fetched_.begin(), fetched_.end(), field);
    return found == fetched_.end() ? -1 : col_first_parameter + static_cast<int>(found - fetched_.begin());
}

ReadPlan::ReadPlan(const config::Projection& projection, int partition) {
    std::vector<std::string> conditions;
    const auto next_argument = [&] { return filter_arguments_.size() + first_filter_argument - 1; };
    const auto add_filter = [&](const std::vector<std::string>& values, std::string_view column) {
        if (!values.empty()) {
            filter_arguments_.emplace_back(text_array_literal(values));
            conditions.push_back(fmt::format("e.{} = ANY (${}::text[])", column, next_argument()));
        }
    };
    add_filter(projection.aggregate_types, "aggregate_type");
    add_filter(projection.bounded_contexts, "bounded_context");
    const std::vector<std::string> event_types = effective_event_types(projection);
    if (event_types.empty() && !projection.event_types.empty()) {
        // The configured event types meet no handler: nothing is ever handled.
        conditions.emplace_back("false");
    } else {
        add_filter(event_types, "event_type");
    }
    if (projection.partitions > 1) {
        // The hash is stored with each event at append (same value as
        // projectiond_partition_of), so a partition costs a remainder, not an md5.
        filter_arguments_.emplace_back(std::to_string(projection.partitions));
        filter_arguments_.emplace_back(std::to_string(partition));
        conditions.push_back(fmt::format("e.partition_hash % ${}::bigint = ${}::bigint", next_argument() - 1,
                                         next_argument()));
    }
    filtered_ = !conditions.empty();

    int statement_number = 0;
    for (std::size_t index = 0; index < projection.handlers.size(); ++index) {
        const auto& handler = projection.handlers[index];
        PlannedHandler planned{handler.event_type, handler.kind, {}, static_cast<int>(index)};
        for (const auto& statement : handler.statements) {
            PlannedStatement ps{fmt::format("h{}", statement_number++), statement.sql, {}, {}, {}};
            if (handler.kind == config::HandlerKind::batch) {
                ps.sql = config::with_batch_relation(statement.sql, batch_select);
                ps.types = {int8_array, int8, int8};
            } else {
                for (const auto& parameter : statement.parameters) {
                    ps.columns.push_back(column_for(parameter));
                }
                ps.types = config::parameter_type_oids(statement.parameters);
                ps.parameters = statement.parameters;
            }
            planned.statements.push_back(std::move(ps));
        }
        handlers_.push_back(std::move(planned));
    }
    const bool code = std::any_of(projection.handlers.begin(), projection.handlers.end(),
                                  [](const config::Handler& h) { return is_code(h.kind); });
    has_code_ = code;
    if (code) {
        for (const std::string_view field : config::event_parameters) {
            column_for(std::string(field));
        }
    }
    if (projection.log) {
        filter_arguments_.emplace_back(text_array_literal({"name"}));
        select_list_.push_back(fmt::format("b.payload #>> ${}::text[]", next_argument()));
        fetched_.emplace_back();
        log_name_column_ = col_first_parameter + static_cast<int>(fetched_.size()) - 1;
    }

    std::string extra;
    for (const auto& expression : select_list_) {
        extra += ",\n       " + expression;
    }
    std::string filters;
    for (const auto& condition : conditions) {
        filters += "\n           AND " + condition;
    }
    // The horizon is the oldest transaction still running when the snapshot
    // was taken: every transaction below it has committed or aborted, so no
    // event of the current store epoch below it can appear later, and events
    // of earlier epochs are all final. Reading in (store_epoch,
    // transaction_id, global_position) order below (epoch, horizon) therefore
    // never skips one (docs/gap-safety.md).
    //
    // The events after the cursor and below the horizon: one condition for
    // the window's reach and for the window's events, so that both count the
    // same events.
    const auto unread = [](std::string_view alias, std::string_view snapshot) {
        return fmt::format("({0}.store_epoch, {0}.transaction_id, {0}.global_position) > ($1::bigint, $2::xid8, "
                           "$3::bigint) AND ({0}.store_epoch, {0}.transaction_id) < ({1}.epoch, {1}.horizon)",
                           alias, snapshot);
    };
    const auto build = [&](bool windowed) {
        const std::string window = windowed ? fmt::format(R"sql(
      LEFT JOIN LATERAL (
           SELECT w.store_epoch, w.transaction_id, w.global_position FROM events w
            WHERE {}
            ORDER BY w.store_epoch, w.transaction_id, w.global_position
           OFFSET $5::bigint - 1
            LIMIT 1) r ON true)sql",
                                                          unread("w", "h"))
                                            : "";
        const std::string reach =
            windowed ? "coalesce(r.store_epoch, s.store_epoch) AS reach_epoch,\n"
                       "           coalesce(r.transaction_id, s.transaction_id) AS reach_xid,\n"
                       "           coalesce(r.global_position, s.global_position) AS reach_position"
                     : "s.store_epoch AS reach_epoch, s.transaction_id AS reach_xid, s.global_position AS reach_position";
        // The events a read looks at: with a window, its first $5 events in
        // reading order, found by a LIMIT rather than by a bound at the
        // window's reach: PostgreSQL ends an index scan at a row comparison's
        // upper bound only when the comparison's first column passes it, so
        // a bound at the reach let a selective read scan to the end of the
        // store.
        const std::string source = windowed ? fmt::format(R"sql((
               SELECT w.* FROM events w
                WHERE {}
                ORDER BY w.store_epoch, w.transaction_id, w.global_position
                LIMIT $5) e)sql",
                                                          unread("w", "s"))
                                            : "events e";
        const std::string bounds = windowed ? "" : "\n           AND " + unread("e", "s");
        return fmt::format(R"sql(WITH snapshot AS MATERIALIZED (
    SELECT h.epoch, h.horizon, $5::bigint AS window_size,
           s.store_epoch AS settled_epoch, s.transaction_id AS settled_xid, s.global_position AS settled_position,
           {}
      FROM (SELECT (SELECT st.current_epoch FROM projectiond_store st) AS epoch,
                   pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
      LEFT JOIN LATERAL (
           SELECT l.store_epoch, l.transaction_id, l.global_position FROM events l
            WHERE (l.store_epoch, l.transaction_id) < (h.epoch, h.horizon)
            ORDER BY l.store_epoch DESC, l.transaction_id DESC, l.global_position DESC
            LIMIT 1) s ON true{})
SELECT s.settled_epoch, s.settled_xid::text, s.settled_position, s.reach_epoch, s.reach_xid::text, s.reach_position,
       b.store_epoch, b.transaction_id::text, b.global_position, b.event_type, b.aggregate_id{}
  FROM snapshot s
  LEFT JOIN LATERAL (
        SELECT e.* FROM {}
         WHERE NOT ((e.store_epoch, e.transaction_id, e.global_position) <= ($6::bigint, $7::xid8, $8::bigint)
                    AND e.global_position <= $9::bigint){}{}
         ORDER BY e.store_epoch, e.transaction_id, e.global_position
         LIMIT $4) b ON true
 ORDER BY b.store_epoch, b.transaction_id, b.global_position)sql",
                           reach, window, extra, source, bounds, filters);
    };
    plain_sql_ = build(false);
    windowed_sql_ = build(true);
}

const PlannedHandler* ReadPlan::handler_for(std::string_view event_type) const noexcept {
    const PlannedHandler* wildcard = nullptr;
    for (const auto& handler : handlers_) {
        if (handler.event_type == event_type) {
            return &handler;
        }
        if (handler.event_type == "*") {
            wildcard = &handler;
        }
    }
    return wildcard;
}

} // namespace projectiond::projection
