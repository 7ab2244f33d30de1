#pragma once
// The schema migrations compiled into the binary and the code that applies them.

#include "store/connection.hpp"

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace projectiond::store {

struct Migration {
    int version;
    std::string_view name;     // e.g. "0001_event_store"
    std::string_view checksum; // sha256 of the file
    std::string_view sql;
};

// Generated at build time from migrations/*.sql (migrations/embed.py).
std::span<const Migration> embedded_migrations();

struct SchemaState {
    int applied_version = 0; // highest applied, 0 when none
    int latest_version = 0;  // highest this binary knows
    // Applied migrations whose file differs from the one this binary carries.
    std::vector<std::string> altered;
    bool current() const noexcept { return applied_version >= latest_version; }
};

// Reads which migrations the database has, without changing anything.
SchemaState schema_state(Connection& conn);

// "migration 0001_x was changed after it was applied ..." for each altered one.
std::string describe_altered(const SchemaState& state);

// Applies the pending migrations, each in its own transaction, under an advisory
// lock so that two hosts migrating at once take turns. Calls `applied` after
// each one commits. Returns the number applied.
int migrate(Connection& conn, const std::function<void(const Migration&)>& applied);

// Namespace of projectiond's advisory locks (first key of the two-key form).
inline constexpr int advisory_lock_namespace = 0x706a6400; // "pjd\0"
// Second keys: checkpoint rows use their lock_key (> 0); these are reserved.
inline constexpr int migration_lock_key = 0;
inline constexpr int setup_lock_key = -1;
inline constexpr int rebalance_lock_key = -2; // transaction lock: one daemon rebalances at a time
// First key of the transaction locks that serialise creating one projection's
// checkpoint rows (second key: hashtext of its name).
inline constexpr int projection_creation_lock_namespace = advisory_lock_namespace + 1;

} // namespace projectiond::store
