#pragma once
// `{plugin: PATH.so}` handlers (SPEC section 11): one runner's use of a
// plugin library. Opens the plugin (lazily, and again after a failed open),
// hands it each event with a transaction handle whose execute() collects the
// statements of the event's reply, and closes it on stop().

#include "handlers/code_handler.hpp"
#include "handlers/plugin_library.hpp"

#include <memory>
#include <string>

namespace projectiond::handlers {

class PluginHandler final : public CodeHandler {
public:
    PluginHandler(std::shared_ptr<const PluginLibrary> library, std::string projection, int partition);
    PluginHandler(const PluginHandler&) = delete;
    PluginHandler& operator=(const PluginHandler&) = delete;
    ~PluginHandler() override;

    // Plugin calls cannot be interrupted; a plugin's handle() is expected to
    // return promptly (it only queues statements).
    std::vector<Reply> handle(std::span<const Event> events) override;
    void stop() noexcept override;

private:
    // The reason when the plugin's open() failed.
    std::optional<std::string> open();

    std::shared_ptr<const PluginLibrary> library_;
    std::string projection_;
    int partition_;
    void* state_ = nullptr;
};

} // namespace projectiond::handlers
