#include "projection/read_plan.hpp"

#include <algorithm>
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
        std::vector<std::string> segments;
        std::size_t start = 0;
        for (;;) {
            const std::size_t dot = path.find('.', start);
            segments.emplace_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
            if (dot == std::string_view::npos) {
                break;
            }
            start = dot + 1;
        }
        filter_arguments_.emplace_back(text_array_literal(segments));
        expression = fmt::format("b.{} #>> ${}::text[]", base, filter_arguments_.size() + 4);
    }
    select_list_.push_back(expression);
    fetched_.push_back(parameter);
    return col_first_parameter + static_cast<int>(fetched_.size()) - 1;
}

ReadPlan::ReadPlan(const config::Projection& projection, int partition) {
    std::vector<std::string> conditions;
    const auto add_filter = [&](const std::vector<std::string>& values, std::string_view column) {
        if (!values.empty()) {
            filter_arguments_.emplace_back(text_array_literal(values));
            conditions.push_back(fmt::format("e.{} = ANY (${}::text[])", column, filter_arguments_.size() + 4));
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
        filter_arguments_.emplace_back(std::to_string(projection.partitions));
        filter_arguments_.emplace_back(std::to_string(partition));
        conditions.push_back(fmt::format("projectiond_partition_of(e.aggregate_id, ${}::integer) = ${}::integer",
                                         filter_arguments_.size() + 3, filter_arguments_.size() + 4));
    }

    int statement_number = 0;
    for (const auto& handler : projection.handlers) {
        PlannedHandler planned{handler.event_type, {}};
        for (const auto& statement : handler.statements) {
            PlannedStatement ps{fmt::format("h{}", statement_number++), statement.sql, {}};
            for (const auto& parameter : statement.parameters) {
                ps.columns.push_back(column_for(parameter));
            }
            planned.statements.push_back(std::move(ps));
        }
        handlers_.push_back(std::move(planned));
    }
    if (projection.log) {
        filter_arguments_.emplace_back(text_array_literal({"name"}));
        select_list_.push_back(fmt::format("b.payload #>> ${}::text[]", filter_arguments_.size() + 4));
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
    // The horizon is the oldest transaction still running when the snapshot was
    // taken: every transaction below it has committed or aborted, so no event
    // below it can appear later. Reading in (transaction_id, global_position)
    // order below the horizon therefore never skips one (docs/gap-safety.md).
    //
    // A filtered read looks at a window of at most $4 settled events after the
    // cursor (its end found by an index-only scan); when fewer than a batch
    // match, the cursor moves to the window's end. Unfiltered reads need no
    // window: the batch itself is the first events after the cursor (they
    // still name $4, so that every read takes the same parameters).
    const bool filtered = !conditions.empty();
    const std::string window = filtered ? R"sql(
      LEFT JOIN LATERAL (
           SELECT w.transaction_id, w.global_position FROM events w
            WHERE (w.transaction_id, w.global_position) > ($1::xid8, $2::bigint)
              AND w.transaction_id < h.horizon
            ORDER BY w.transaction_id, w.global_position
           OFFSET $4::bigint - 1
            LIMIT 1) r ON true)sql"
                                        : "";
    const std::string reach = filtered ? "coalesce(r.transaction_id, s.transaction_id) AS reach_xid,\n"
                                         "           coalesce(r.global_position, s.global_position) AS reach_position,"
                                       : "s.transaction_id AS reach_xid, s.global_position AS reach_position,";
    const std::string window_bound =
        filtered ? "\n           AND (e.transaction_id, e.global_position) <= (s.reach_xid, s.reach_position)" : "";
    read_sql_ = fmt::format(R"sql(WITH snapshot AS MATERIALIZED (
    SELECT h.horizon, $4::bigint AS window_size,
           EXISTS (SELECT 1 FROM events p WHERE p.transaction_id >= h.horizon) AS pending,
           s.transaction_id AS settled_xid, s.global_position AS settled_position,
           {}
           (SELECT max(m.global_position) FROM events m) AS max_position
      FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
      LEFT JOIN LATERAL (
           SELECT l.transaction_id, l.global_position FROM events l
            WHERE l.transaction_id < h.horizon
            ORDER BY l.transaction_id DESC, l.global_position DESC
            LIMIT 1) s ON true{})
SELECT s.horizon::text, s.pending, s.settled_xid::text, s.settled_position, s.reach_xid::text, s.reach_position,
       s.max_position, b.transaction_id::text, b.global_position, b.event_type, b.aggregate_id{}
  FROM snapshot s
  LEFT JOIN LATERAL (
        SELECT e.* FROM events e
         WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
           AND e.transaction_id < s.horizon{}{}
         ORDER BY e.transaction_id, e.global_position
         LIMIT $3) b ON true
 ORDER BY b.transaction_id, b.global_position)sql",
                            reach, window, extra, window_bound, filters);
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
