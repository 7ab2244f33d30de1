#include "store/connect.hpp"

#include "store/database_error.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace projectiond::store {

namespace {
std::string read_password(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        const int error = errno;
        throw DatabaseUnavailable(
            fmt::format("cannot read the database password from {}: {}", path, std::strerror(error)));
    }
    std::ostringstream text;
    text << file.rdbuf();
    std::string password = text.str();
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
    }
    return password;
}
} // namespace

ConnectOptions connect_options(const config::DatabaseSettings& settings,
                               const std::optional<std::string>& url_override) {
    ConnectOptions options;
    options.conninfo = url_override.value_or(settings.url);
    options.connect_timeout = settings.connect_timeout;
    if (settings.password_file) {
        options.password = read_password(*settings.password_file);
    } else if (const char* directory = std::getenv("CREDENTIALS_DIRECTORY")) {
        const std::filesystem::path credential = std::filesystem::path(directory) / password_credential;
        std::error_code ignored;
        if (std::filesystem::exists(credential, ignored)) {
            options.password = read_password(credential.string());
        }
    }
    return options;
}

namespace {
// Short, frequent statements: compiling them with JIT (when the planner's
// estimates cross jit_above_cost) costs far more than it saves, some 300 ms
// per watch of the store. And whatever the database's default, every
// transaction of projectiond is reasoned about as READ COMMITTED: a statement
// that waited for a row lock goes on with the row as committed, rather than
// failing to serialize.
constexpr std::string_view shared_settings =
    "set_config('jit', 'off', false), set_config('default_transaction_isolation', 'read committed', false)";
} // namespace

void configure_command_session(Connection& conn) {
    conn.exec("SELECT " + std::string(shared_settings));
}

void configure_session(Connection& conn, const config::DatabaseSettings& settings,
                       std::chrono::milliseconds idle_in_transaction) {
    conn.exec("SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false), "
              "set_config('idle_in_transaction_session_timeout', $3, false), "
              "set_config('tcp_keepalives_idle', '5', false), set_config('tcp_keepalives_interval', '2', false), "
              "set_config('tcp_keepalives_count', '3', false), "
              "set_config('client_connection_check_interval', '1000', false), " +
                  std::string(shared_settings),
              {std::to_string(settings.statement_timeout.count()) + "ms",
               std::to_string(settings.lock_timeout.count()) + "ms",
               std::to_string(idle_in_transaction.count()) + "ms"});
}

} // namespace projectiond::store
