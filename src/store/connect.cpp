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

} // namespace projectiond::store
