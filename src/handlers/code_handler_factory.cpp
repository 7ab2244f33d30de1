#include "handlers/code_handler_factory.hpp"

#include "handlers/exec_handler.hpp"
#include "handlers/plugin_handler.hpp"
#include "system/child_process.hpp"

#include <stdexcept>

namespace projectiond::handlers {

std::unique_ptr<CodeHandler> make_code_handler(const config::Handler& handler, const HandlerSite& site) {
    switch (handler.kind) {
    case config::HandlerKind::exec: {
        ExecSettings settings;
        settings.command = handler.command;
        settings.projection = site.projection;
        settings.partition = site.partition;
        settings.reply_timeout = site.exec_timeout;
        return std::make_unique<ExecHandler>(std::move(settings));
    }
    case config::HandlerKind::plugin:
        return std::make_unique<PluginHandler>(PluginLibrary::load(handler.plugin_path), site.projection,
                                               site.partition);
    case config::HandlerKind::sql:
    case config::HandlerKind::batch:
        break;
    }
    throw std::invalid_argument("make_code_handler: the handler for '" + handler.event_type + "' is SQL, not code");
}

std::optional<std::string> check_code_handler(const config::Handler& handler) {
    switch (handler.kind) {
    case config::HandlerKind::exec:
        if (handler.command.empty()) {
            return "the exec handler's command is empty";
        }
        try {
            system::find_program(handler.command.front());
        } catch (const system::SpawnError& error) {
            return std::string(error.what());
        }
        return std::nullopt;
    case config::HandlerKind::plugin:
        return check_plugin(handler.plugin_path);
    case config::HandlerKind::sql:
    case config::HandlerKind::batch:
        break;
    }
    return std::nullopt;
}

} // namespace projectiond::handlers
