#include "handlers/plugin_handler.hpp"

#include <spdlog/spdlog.h>

#include <array>

#include <fmt/format.h>

// The transaction handle a plugin's handle() gets: opaque to plugins, it
// collects the statements of one event's reply.
struct projectiond_tx {
    projectiond::handlers::Reply* reply;
    std::optional<std::string> failure;
};

namespace projectiond::handlers {

namespace {

// The plugin being called on this thread, to name it in its log lines.
thread_local const PluginLibrary* calling = nullptr;

class Calling {
public:
    explicit Calling(const PluginLibrary& library) noexcept : saved_(calling) { calling = &library; }
    Calling(const Calling&) = delete;
    Calling& operator=(const Calling&) = delete;
    ~Calling() { calling = saved_; }

private:
    const PluginLibrary* saved_;
};

int host_execute(projectiond_tx* tx, const char* sql, int nparams, const char* const* params) noexcept {
    if (tx == nullptr || tx->reply == nullptr || sql == nullptr || nparams < 0 || (nparams > 0 && params == nullptr)) {
        return -1;
    }
    try {
        Statement statement;
        statement.sql = sql;
        statement.params.reserve(static_cast<std::size_t>(nparams));
        for (int i = 0; i < nparams; ++i) {
            statement.params.push_back(params[i] != nullptr ? std::optional<std::string>(params[i]) : std::nullopt);
        }
        tx->reply->statements.push_back(std::move(statement));
        return 0;
    } catch (...) {
        return -1; // out of memory: the plugin sees a refusal, not an exception
    }
}

int host_fail(projectiond_tx* tx, const char* message) noexcept {
    if (tx != nullptr) {
        try {
            tx->failure = message != nullptr && *message != '\0' ? message : "(no message)";
        } catch (...) {
        }
    }
    return -1;
}

void host_log(projectiond_log_level level, const char* message) noexcept {
    const std::string_view name = calling != nullptr ? std::string_view(calling->name()) : "plugin";
    const std::string_view text = message != nullptr ? message : "";
    switch (level) {
    case PROJECTIOND_LOG_DEBUG:
        spdlog::debug("plugin {}: {}", name, text);
        break;
    case PROJECTIOND_LOG_INFO:
        spdlog::info("plugin {}: {}", name, text);
        break;
    case PROJECTIOND_LOG_WARNING:
        spdlog::warn("plugin {}: {}", name, text);
        break;
    default:
        spdlog::error("plugin {}: {}", name, text);
        break;
    }
}

constexpr projectiond_host host = {&host_execute, &host_fail, &host_log};

// NUL-terminated copies of one event's text: a view need not be followed by
// a NUL, and the C ABI promises one.
class EventText {
public:
    explicit EventText(const Event& event) {
        const std::array<std::string_view, 10> parts = {event.bounded_context,
                                                        event.aggregate_type,
                                                        event.aggregate_id,
                                                        event.event_id,
                                                        event.event_type,
                                                        event.payload,
                                                        event.created_at,
                                                        event.metadata.value_or(""),
                                                        event.trace_id.value_or(""),
                                                        event.correlation_id.value_or("")};
        std::size_t size = event.causation_id.value_or("").size() + 1;
        for (const auto part : parts) {
            size += part.size() + 1;
        }
        buffer_.reserve(size); // no reallocation below: the pointers handed out stay valid

        c_event_.global_position = event.global_position;
        c_event_.bounded_context = add(event.bounded_context);
        c_event_.aggregate_type = add(event.aggregate_type);
        c_event_.aggregate_id = add(event.aggregate_id);
        c_event_.aggregate_version = event.aggregate_version;
        c_event_.event_id = add(event.event_id);
        c_event_.event_type = add(event.event_type);
        c_event_.event_version = event.event_version;
        c_event_.payload = add(event.payload);
        c_event_.metadata = add(event.metadata);
        c_event_.trace_id = add(event.trace_id);
        c_event_.correlation_id = add(event.correlation_id);
        c_event_.causation_id = add(event.causation_id);
        c_event_.created_at = add(event.created_at);
    }

    const projectiond_event& get() const noexcept { return c_event_; }

private:
    const char* add(std::string_view text) {
        const std::size_t start = buffer_.size();
        buffer_.append(text);
        buffer_.push_back('\0');
        return buffer_.data() + start;
    }
    const char* add(const std::optional<std::string_view>& text) { return text ? add(*text) : nullptr; }

    std::string buffer_;
    projectiond_event c_event_{};
};

} // namespace

PluginHandler::PluginHandler(std::shared_ptr<const PluginLibrary> library, std::string projection, int partition)
    : library_(std::move(library)), projection_(std::move(projection)), partition_(partition) {}

PluginHandler::~PluginHandler() {
    stop();
}

std::optional<std::string> PluginHandler::open() {
    std::array<char, 1024> error{};
    Calling calling_plugin(*library_);
    state_ = library_->table().open(&host, projection_.c_str(), partition_, error.data(), error.size());
    if (state_ != nullptr) {
        spdlog::debug("opened plugin {} ({})", library_->name(), library_->path());
        return std::nullopt;
    }
    error.back() = '\0';
    return fmt::format("plugin {} could not open: {}", library_->name(),
                       error.front() != '\0' ? error.data() : "its open function returned NULL without a reason");
}

std::vector<Reply> PluginHandler::handle(std::span<const Event> events) {
    std::vector<Reply> replies;
    if (events.empty()) {
        return replies;
    }
    if (state_ == nullptr) {
        if (auto failure = open()) {
            replies.push_back(Reply{{}, std::move(failure)});
            return replies;
        }
    }
    replies.reserve(events.size());
    Calling calling_plugin(*library_);
    for (const Event& event : events) {
        Reply reply;
        projectiond_tx tx{&reply, std::nullopt};
        const EventText text(event);
        const int result = library_->table().handle(state_, &text.get(), &tx);
        if (result != 0) {
            reply.statements.clear();
            reply.error = tx.failure ? std::move(*tx.failure)
                                     : fmt::format("plugin {} failed (its handle function returned {}) without "
                                                   "giving a reason",
                                                   library_->name(), result);
            replies.push_back(std::move(reply));
            break;
        }
        replies.push_back(std::move(reply));
    }
    return replies;
}

void PluginHandler::stop() noexcept {
    if (state_ == nullptr) {
        return;
    }
    Calling calling_plugin(*library_);
    if (library_->table().close != nullptr) {
        library_->table().close(state_);
    }
    state_ = nullptr;
}

} // namespace projectiond::handlers
