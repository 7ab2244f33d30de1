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

} // namespace projectiond::store
