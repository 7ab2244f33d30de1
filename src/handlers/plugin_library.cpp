#include "handlers/plugin_library.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

namespace projectiond::handlers {

namespace {

// The libraries loaded, by path: weak, so the last runner to let go of one
// unloads it (and a reload after replacing the file loads the new one).
struct LoadedLibraries {
    std::mutex mutex;
    std::map<std::string, std::weak_ptr<const PluginLibrary>> by_path;
};

LoadedLibraries& loaded_libraries() {
    static LoadedLibraries libraries;
    return libraries;
}

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string dl_error() {
    const char* message = ::dlerror();
    return message != nullptr ? message : "unknown error";
}

} // namespace

void PluginLibrary::Unload::operator()(void* handle) const noexcept {
    ::dlclose(handle);
}

PluginLibrary::PluginLibrary(std::string path, Handle handle, const projectiond_handler_plugin* table)
    : path_(std::move(path)), handle_(std::move(handle)), table_(table),
      name_(table->name != nullptr && *table->name != '\0' ? table->name : base_name(path_)) {}

std::shared_ptr<const PluginLibrary> PluginLibrary::load(const std::string& path) {
    LoadedLibraries& libraries = loaded_libraries();
    std::lock_guard lock(libraries.mutex);
    if (auto library = libraries.by_path[path].lock()) {
        return library;
    }
    auto library = open(path);
    libraries.by_path[path] = library;
    return library;
}

std::shared_ptr<const PluginLibrary> PluginLibrary::open(const std::string& path) {
    // dlopen() would search the library path for a bare name, and its
    // message for a missing file is vague: look first.
    if (path.find('/') == std::string::npos) {
        throw PluginLoadError(fmt::format("plugin '{}': give the path of the shared object (e.g. "
                                          "/usr/lib/projectiond/{}), not a bare file name",
                                          path, path));
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        throw PluginLoadError(fmt::format("plugin {} cannot be loaded: {}", path, std::strerror(errno)));
    }
    if (!S_ISREG(info.st_mode)) {
        throw PluginLoadError(fmt::format("plugin {} cannot be loaded: not a regular file", path));
    }

    // RTLD_NOW: an unresolved symbol is reported here, not as a crash in the
    // middle of a batch. RTLD_LOCAL: one plugin's symbols cannot capture
    // another's.
    ::dlerror();
    Handle handle(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
    if (!handle) {
        throw PluginLoadError(fmt::format("plugin {} cannot be loaded: {}", path, dl_error()));
    }

    ::dlerror();
    void* symbol = ::dlsym(handle.get(), PROJECTIOND_HANDLER_ENTRY_SYMBOL);
    if (symbol == nullptr) {
        throw PluginLoadError(fmt::format("plugin {} is not a projectiond handler plugin: it does not export {}() "
                                          "(define it as <projectiond/handler.h> shows, or with "
                                          "PROJECTIOND_HANDLER_PLUGIN from <projectiond/handler.hpp>)",
                                          path, PROJECTIOND_HANDLER_ENTRY_SYMBOL));
    }
    using Entry = const projectiond_handler_plugin* (*)();
    const auto entry = reinterpret_cast<Entry>(symbol);
    const projectiond_handler_plugin* table = entry();
    if (table == nullptr) {
        throw PluginLoadError(fmt::format("plugin {}: {}() returned NULL", path, PROJECTIOND_HANDLER_ENTRY_SYMBOL));
    }
    // The magic first: without it, the version field means nothing.
    if (table->magic != PROJECTIOND_HANDLER_MAGIC) {
        throw PluginLoadError(fmt::format("plugin {} is not a projectiond handler plugin: its table's magic number "
                                          "is {:#010x}, not {:#010x}",
                                          path, table->magic, PROJECTIOND_HANDLER_MAGIC));
    }
    if (table->abi_version != PROJECTIOND_HANDLER_ABI_VERSION) {
        throw PluginLoadError(fmt::format("plugin {} was built for ABI {}, this projectiond speaks ABI {}: rebuild "
                                          "it against this projectiond's <projectiond/handler.h>",
                                          path, table->abi_version, PROJECTIOND_HANDLER_ABI_VERSION));
    }
    if (table->open == nullptr || table->handle == nullptr) {
        throw PluginLoadError(
            fmt::format("plugin {}: its table has no {} function", path, table->open == nullptr ? "open" : "handle"));
    }
    return std::shared_ptr<const PluginLibrary>(new PluginLibrary(path, std::move(handle), table));
}

std::optional<std::string> check_plugin(const std::string& path) {
    try {
        PluginLibrary::load(path);
        return std::nullopt;
    } catch (const PluginLoadError& error) {
        return error.what();
    }
}

} // namespace projectiond::handlers
