#pragma once
// How far the store is settled: the last event that no running transaction
// can precede any more, read by one cheap query that the daemon's watcher
// runs every 100 ms to wake the runners that have work, instead of every
// runner polling on its own.

#include "store/checkpoints.hpp"
#include "store/connection.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::store {

// What a newly settled event needs to be routed to the runners that want it.
struct SettledEvent {
    std::int64_t partition_hash = 0;
    std::string event_type;
    std::string aggregate_type;
    std::string bounded_context;
};

struct Frontier {
    std::int64_t epoch = 0;          // the store's current epoch
    std::uint64_t horizon = 0;       // oldest transaction still running
    Cursor settled;                  // the last event below the horizon, in reading order
    std::int64_t max_position = 0;   // max(global_position) visible
    bool pending = false;            // committed events wait above the horizon
    bool foreign = false;            // rows copied from another cluster wait for a new epoch
    // Events settled after `since` (the previous frontier), at most `limit`;
    // `more` when there were more.
    std::vector<SettledEvent> newly_settled;
    bool more = false;
};

Frontier read_frontier(Connection& conn, const Cursor& since, int limit);

// A logical-replication subscription that writes into `events` here.
// Projections must not run on a subscriber, whose horizon knows nothing of
// the publisher's transactions, nor after the subscription is disabled until
// `projectiond migrate` has recorded the switch-over (the sequences are set
// by then).
struct EventsSubscription {
    std::string name;
    bool enabled = true; // else disabled, and not yet switched over from
};

// The subscription that holds projections back, if any: an enabled one first.
std::optional<EventsSubscription> events_subscription(Connection& conn);

// The disabled subscriptions that write `events` and are not yet recorded as
// switched over from, and whether `record_switch_over` recorded them.
struct SwitchOver {
    std::vector<std::string> subscriptions;
    bool recorded = false;          // false: nothing replicated, or the sequence not past it
    std::int64_t next_value = 1;    // what the events' sequence hands out next
    std::int64_t last_position = 0; // the highest position in events (0: none)
};

// Records every disabled subscription that writes `events` as switched over
// from (what `projectiond migrate` does), once events were replicated and the
// events' sequence has been set past them: a subscription merely disabled for
// a while, or before anything was replicated, is not a switch-over.
SwitchOver record_switch_over(Connection& conn);

// Why no projection may move on, if something keeps them: rows copied from
// another cluster waiting for a new epoch, or a subscription writing the
// events. Said the same way by the daemon's log and by `status`.
std::optional<std::string> block_reason(bool foreign_rows, const std::optional<EventsSubscription>& subscription);

// Checks both, for `status`.
std::optional<std::string> why_blocked(Connection& conn);

// Begins a new store epoch when rows copied from another cluster are found
// (what `projectiond migrate` does after a restore). Returns true if it did.
bool begin_epoch_if_moved(Connection& conn);

} // namespace projectiond::store
