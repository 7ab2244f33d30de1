#pragma once
// Why committed events wait: the oldest transaction still running holds the
// horizon back, and events of younger transactions cannot be passed until it
// ends. Names that transaction (and its session, when this role may see it)
// so that an operator can act on it (Marten's stalled high-water mark, told).

#include "store/connection.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace projectiond::store {

struct HorizonHolder {
    std::uint64_t transaction_id = 0; // the oldest running transaction
    double events_waiting_seconds = 0; // age of the oldest committed event waiting behind it
    bool session_visible = false;      // pg_stat_activity showed its session to this role
    std::optional<int> pid;
    std::optional<std::string> user;
    std::optional<std::string> database;
    std::optional<std::string> application;
    std::optional<std::string> client;
    std::optional<std::string> state;
    std::optional<double> open_seconds; // since its transaction began
    std::optional<std::string> query;   // the start of its last query
    std::optional<std::string> prepared; // the gid of a prepared (two-phase) transaction

    // "pid 4242 (user app, database shop, application_name 'billing', client
    // 10.0.0.7, idle in transaction, open for 73 s): UPDATE orders ..."
    std::string describe() const;
};

// The transaction holding committed events back, when there is one.
std::optional<HorizonHolder> horizon_holder(Connection& conn);

} // namespace projectiond::store
