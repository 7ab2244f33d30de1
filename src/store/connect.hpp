#pragma once
// How to reach the database: the URL from the configuration or the command
// line, the password from a file or a systemd credential. The password travels
// to libpq only, never to a log line or a message.

#include "config/config.hpp"
#include "store/connection.hpp"

#include <optional>
#include <string>

namespace projectiond::store {

// The systemd credential (LoadCredential=database-password:...) read when the
// configuration names no password_file.
inline constexpr const char* password_credential = "database-password";

ConnectOptions connect_options(const config::DatabaseSettings& settings,
                               const std::optional<std::string>& url_override);

// Bounds every statement and lock wait of a daemon session, and lets the
// server notice a vanished client: over TCP by keepalives, and in a long
// statement by checking the socket every second (so a killed or aborted
// daemon's batch rolls back at once). `idle_in_transaction` bounds a
// transaction whose client stopped talking mid-batch (SIGSTOP, a frozen VM).
void configure_session(Connection& conn, const config::DatabaseSettings& settings,
                       std::chrono::milliseconds idle_in_transaction);

// What a one-shot command's session sets: the part of the above that every
// session of projectiond shares (no JIT; READ COMMITTED whatever the
// database's default).
void configure_command_session(Connection& conn);

} // namespace projectiond::store
