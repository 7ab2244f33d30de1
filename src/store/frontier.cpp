#include "store/frontier.hpp"

#include "store/database_error.hpp"

#include <string_view>

#include <fmt/format.h>

namespace projectiond::store {

Frontier read_frontier(Connection& conn, const Cursor& since, int limit) {
    // One statement, one snapshot: the horizon, the last event below it and
    // the newly settled events agree with each other.
    const Result result = conn.exec(R"sql(
WITH h AS MATERIALIZED (
    SELECT s.current_epoch AS epoch,
           pg_snapshot_xmin(pg_current_snapshot()) AS horizon,
           pg_snapshot_xmax(pg_current_snapshot()) AS next_xid
      FROM projectiond_store s),
-- Computed once, each by one index probe. Not EXISTS: the planner drops the
-- ORDER BY ... LIMIT 1 of an EXISTS and, from its estimates, may scan the
-- whole table; a scalar subquery keeps it on the index.
flags AS MATERIALIZED (
    SELECT (SELECT 1 FROM events p WHERE (p.store_epoch, p.transaction_id) >= (h.epoch, h.horizon)
             ORDER BY p.store_epoch, p.transaction_id LIMIT 1) IS NOT NULL AS pending,
           (SELECT 1 FROM events p WHERE (p.store_epoch, p.transaction_id) >= (h.epoch, h.next_xid)
             ORDER BY p.store_epoch, p.transaction_id LIMIT 1) IS NOT NULL
             OR EXISTS (SELECT 1 FROM projection_checkpoints c
                         WHERE (c.cursor_store_epoch, c.cursor_transaction_id) >= (h.epoch, h.next_xid)) AS foreign,
           (SELECT max(m.global_position) FROM events m) AS max_position
      FROM h),
last AS (
    SELECT e.store_epoch, e.transaction_id, e.global_position
      FROM events e, h
     WHERE (e.store_epoch, e.transaction_id) < (h.epoch, h.horizon)
     ORDER BY e.store_epoch DESC, e.transaction_id DESC, e.global_position DESC
     LIMIT 1),
fresh AS (
    SELECT e.partition_hash, e.event_type, e.aggregate_type, e.bounded_context
      FROM events e, h
     WHERE (e.store_epoch, e.transaction_id, e.global_position) > ($1::bigint, $2::xid8, $3::bigint)
       AND (e.store_epoch, e.transaction_id) < (h.epoch, h.horizon)
     ORDER BY e.store_epoch, e.transaction_id, e.global_position
     LIMIT $4::integer + 1)
SELECT h.epoch, h.horizon::text,
       l.store_epoch, l.transaction_id::text, l.global_position,
       g.max_position, g.pending, g.foreign,
       f.partition_hash, f.event_type, f.aggregate_type, f.bounded_context
  FROM h
 CROSS JOIN flags g
  LEFT JOIN last l ON true
  LEFT JOIN fresh f ON true)sql",
                                    {since.epoch_text(), since.transaction_text(), since.position_text(),
                                     std::to_string(limit)});
    Frontier frontier;
    frontier.epoch = result.int64(0, 0);
    frontier.horizon = parse_transaction_id(result.text(0, 1));
    if (!result.is_null(0, 2)) {
        frontier.settled = Cursor{result.int64(0, 2), parse_transaction_id(result.text(0, 3)), result.int64(0, 4)};
    }
    frontier.max_position = result.is_null(0, 5) ? 0 : result.int64(0, 5);
    frontier.pending = result.boolean(0, 6);
    frontier.foreign = result.boolean(0, 7);
    for (int row = 0; row < result.rows() && !result.is_null(row, 8); ++row) {
        if (static_cast<int>(frontier.newly_settled.size()) == limit) {
            frontier.more = true;
            break;
        }
        frontier.newly_settled.push_back(SettledEvent{result.int64(row, 8), std::string(result.text(row, 9)),
                                                      std::string(result.text(row, 10)),
                                                      std::string(result.text(row, 11))});
    }
    return frontier;
}

namespace {

// The subscriptions that write `events` here, and whether `projectiond
// migrate` has recorded one as switched over from.
constexpr std::string_view events_subscriptions =
    "pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE r.srrelid = 'events'::regclass";
constexpr std::string_view not_switched_over =
    "NOT EXISTS (SELECT 1 FROM projectiond_store st WHERE s.oid = ANY (st.switched_subscriptions))";

} // namespace

std::optional<EventsSubscription> events_subscription(Connection& conn) {
    // Before every watch: formatted once.
    static const std::string sql = fmt::format(R"sql(
SELECT s.subname, s.subenabled FROM {} AND (s.subenabled OR {})
 ORDER BY s.subenabled DESC
 LIMIT 1)sql",
                                               events_subscriptions, not_switched_over);
    const Result result = conn.exec(sql);
    if (result.rows() == 0) {
        return std::nullopt;
    }
    return EventsSubscription{std::string(result.text(0, 0)), result.boolean(0, 1)};
}

SwitchOver record_switch_over(Connection& conn) {
    // The value the events' sequence hands out next, read from the sequence
    // itself: pg_sequence_last_value() says nothing after setval(..., false).
    // (The sequence's name comes from the catalogue, quoted as needed: a
    // relation cannot be a bound parameter.)
    std::int64_t next_value = 1;
    if (const Result sequence = conn.exec("SELECT pg_get_serial_sequence('events', 'global_position')");
        !sequence.is_null(0, 0)) {
        const Result state = conn.exec(fmt::format("SELECT last_value, is_called FROM {}", sequence.text(0, 0)));
        next_value = state.int64(0, 0) + (state.boolean(0, 1) ? 1 : 0);
    }
    // A data-modifying WITH runs to completion whether or not the SELECT reads it.
    const Result result = conn.exec(fmt::format(R"sql(
WITH disabled AS (SELECT s.oid, s.subname FROM {} AND NOT s.subenabled AND {}),
store AS (
    SELECT m.last_position, m.last_position > 0 AND $1::bigint > m.last_position AS switched
      FROM (SELECT coalesce(max(e.global_position), 0) AS last_position FROM events e) m),
recorded AS (
    UPDATE projectiond_store st
       SET switched_subscriptions = st.switched_subscriptions || ARRAY(SELECT d.oid FROM disabled d)
     WHERE EXISTS (SELECT 1 FROM disabled) AND (SELECT q.switched FROM store q))
SELECT d.subname, q.last_position, q.switched FROM disabled d, store q ORDER BY d.subname)sql",
                                                events_subscriptions, not_switched_over),
                                    {std::to_string(next_value)});
    SwitchOver switch_over;
    switch_over.next_value = next_value;
    for (int row = 0; row < result.rows(); ++row) {
        switch_over.subscriptions.emplace_back(result.text(row, 0));
        switch_over.last_position = result.int64(row, 1);
        switch_over.recorded = result.boolean(row, 2);
    }
    return switch_over;
}

std::optional<std::string> block_reason(bool foreign_rows, const std::optional<EventsSubscription>& subscription) {
    if (subscription && subscription->enabled) {
        return fmt::format(
            "this database receives its events by logical replication (subscription '{}'), whose transaction "
            "ids are the publisher's: run projectiond against the publisher. After switching over to this "
            "database, disable the subscription (ALTER SUBSCRIPTION {} DISABLE) and run `projectiond migrate`",
            subscription->name, subscription->name);
    }
    if (subscription) {
        return fmt::format(
            "this database received its events by logical replication (subscription '{}', now disabled): to "
            "switch over, set its sequences past the replicated values and run `projectiond migrate` "
            "(README, \"Moving the event store\"); until then nothing is processed",
            subscription->name);
    }
    if (foreign_rows) {
        return std::string("the store holds rows copied from another cluster (transaction ids this cluster has not "
                           "reached, or a store epoch it has not begun): it was restored or replicated here. Run "
                           "`projectiond migrate` to begin a new store epoch; until then nothing is processed, so "
                           "nothing is skipped");
    }
    return std::nullopt;
}

std::optional<std::string> why_blocked(Connection& conn) {
    const Result foreign =
        conn.exec("SELECT projectiond_foreign_rows(s.current_epoch) FROM projectiond_store s");
    std::optional<EventsSubscription> subscription;
    try {
        subscription = events_subscription(conn);
    } catch (const DatabaseError& error) {
        if (error.connection_lost()) {
            throw;
        }
    }
    return block_reason(foreign.rows() == 1 && foreign.boolean(0, 0), subscription);
}

bool begin_epoch_if_moved(Connection& conn) {
    const Result result = conn.exec(R"sql(
SELECT CASE WHEN projectiond_foreign_rows(s.current_epoch)
            THEN projectiond_begin_epoch(s.current_epoch, 'projectiond migrate found rows copied from another cluster')
       END IS NOT NULL
  FROM projectiond_store s)sql");
    return result.rows() == 1 && result.boolean(0, 0);
}

} // namespace projectiond::store
