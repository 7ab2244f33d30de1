#pragma once
// Builds the code handler a configured handler names ({exec: [...]} or
// {plugin: PATH}), and checks one for check-config.

#include "config/config.hpp"
#include "handlers/code_handler.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace projectiond::handlers {

// Where a handler runs: one runner.
struct HandlerSite {
    std::string projection;
    int partition = 0;
    std::chrono::milliseconds exec_timeout{30000}; // the projection's `exec_timeout`
};

// One handler instance for one runner: an ExecHandler (its child starts on
// first use) or a PluginHandler (the library is loaded now, once per path for
// the whole daemon; the plugin is opened on first use).
// Throws PluginLoadError when the plugin cannot be loaded (the file may have
// changed since the configuration was checked), std::invalid_argument for a
// handler that is not code (sql, batch).
std::unique_ptr<CodeHandler> make_code_handler(const config::Handler& handler, const HandlerSite& site);

// What check-config reports about a code handler, or nullopt when it can be
// used: the exec program is found and executable, the plugin loads and speaks
// this ABI. SQL and batch handlers are not its business (nullopt).
std::optional<std::string> check_code_handler(const config::Handler& handler);

} // namespace projectiond::handlers
