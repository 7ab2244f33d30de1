#pragma once
// A handler plugin's shared object, loaded and checked (dlopen, the entry
// point, its magic number and ABI version), shared by every runner that uses
// it and unloaded when the last one lets go.

#include <projectiond/handler.h>

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

namespace projectiond::handlers {

// The plugin cannot be used; what() says what is wrong with which file, and
// what to do about it.
class PluginLoadError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class PluginLibrary {
public:
    // The library loaded from `path` (dlopen with RTLD_NOW | RTLD_LOCAL),
    // loading and checking it unless another runner holds it already.
    // Throws PluginLoadError.
    static std::shared_ptr<const PluginLibrary> load(const std::string& path);

    PluginLibrary(const PluginLibrary&) = delete;
    PluginLibrary& operator=(const PluginLibrary&) = delete;
    ~PluginLibrary() = default;

    const projectiond_handler_plugin& table() const noexcept { return *table_; }
    const std::string& path() const noexcept { return path_; }
    // The name the plugin gives itself, else its file name.
    const std::string& name() const noexcept { return name_; }

    // Owns a dlopen() handle.
    struct Unload {
        void operator()(void* handle) const noexcept;
    };
    using Handle = std::unique_ptr<void, Unload>;

private:
    PluginLibrary(std::string path, Handle handle, const projectiond_handler_plugin* table);
    static std::shared_ptr<const PluginLibrary> open(const std::string& path);

    std::string path_;
    Handle handle_;
    const projectiond_handler_plugin* table_;
    std::string name_;
};

// For check-config: nullopt when the plugin at `path` loads and passes the
// checks, else the message of PluginLoadError.
std::optional<std::string> check_plugin(const std::string& path);

} // namespace projectiond::handlers
