// <projectiond/handler.hpp>: a thin C++17 layer over <projectiond/handler.h>
// for writing a handler plugin as a class.
//
//     #include <projectiond/handler.hpp>
//
//     class Counter {
//     public:
//         explicit Counter(const projectiond::Context& context) : projection_(context.projection()) {}
//         void handle(const projectiond::Event& event, projectiond::Transaction& tx) {
//             tx.execute("INSERT INTO counts (projection, n) VALUES ($1, 1) "
//                        "ON CONFLICT (projection) DO UPDATE SET n = counts.n + 1",
//                        projection_);
//         }
//     private:
//         std::string projection_;
//     };
//
//     PROJECTIOND_HANDLER_PLUGIN(Counter, "counter")
//
// One object per projection partition: constructed when its runner opens the
// plugin, destroyed when it stops. handle() fails the event by throwing; the
// exception's what() is the reason shown in the log, `status` and the dead
// letters. A constructor that throws fails the open the same way. No
// exception ever crosses into projectiond. Everything in <projectiond/handler.h>
// about ordering, transactions, threads and at-least-once calls applies.

#ifndef PROJECTIOND_HANDLER_HPP
#define PROJECTIOND_HANDLER_HPP

#include <projectiond/handler.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace projectiond {

namespace detail {
inline std::optional<std::string_view> optional_view(const char* text) noexcept {
    return text != nullptr ? std::optional<std::string_view>(text) : std::nullopt;
}
inline std::string_view view(const char* text) noexcept {
    return text != nullptr ? std::string_view(text) : std::string_view();
}
} // namespace detail

// One event's columns, as views valid during handle().
struct Event {
    explicit Event(const projectiond_event& event) noexcept
        : global_position(event.global_position), bounded_context(detail::view(event.bounded_context)),
          aggregate_type(detail::view(event.aggregate_type)), aggregate_id(detail::view(event.aggregate_id)),
          aggregate_version(event.aggregate_version), event_id(detail::view(event.event_id)),
          event_type(detail::view(event.event_type)), event_version(event.event_version),
          payload(detail::view(event.payload)), metadata(detail::optional_view(event.metadata)),
          trace_id(detail::optional_view(event.trace_id)), correlation_id(detail::optional_view(event.correlation_id)),
          causation_id(detail::optional_view(event.causation_id)), created_at(detail::view(event.created_at)),
          raw(&event) {}

    std::int64_t global_position;
    std::string_view bounded_context;
    std::string_view aggregate_type;
    std::string_view aggregate_id;
    std::int64_t aggregate_version;
    std::string_view event_id;
    std::string_view event_type;
    std::int32_t event_version;
    std::string_view payload;                 // JSON text
    std::optional<std::string_view> metadata; // JSON text
    std::optional<std::string_view> trace_id;
    std::optional<std::string_view> correlation_id;
    std::optional<std::string_view> causation_id;
    std::string_view created_at;
    const projectiond_event* raw; // the C view, NUL-terminated strings
};

// A value bound to a $n placeholder: text (as psql would take it), or SQL NULL.
class Param {
public:
    Param(std::nullopt_t) noexcept {}
    Param(std::nullptr_t) noexcept {}
    Param(const char* text) : null_(text == nullptr), text_(text != nullptr ? text : "") {}
    Param(std::string_view text) : null_(false), text_(text) {}
    Param(const std::string& text) : null_(false), text_(text) {}
    Param(std::string&& text) noexcept : null_(false), text_(std::move(text)) {}
    Param(bool value) : null_(false), text_(value ? "true" : "false") {}
    template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    Param(T value) : null_(false), text_(std::to_string(value)) {}
    template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0> Param(T value) : null_(false) {
        char text[32]; // %.17g: every double reads back exactly
        std::snprintf(text, sizeof text, "%.17g", static_cast<double>(value));
        text_ = text;
    }
    template <typename T> Param(const std::optional<T>& value) : Param(value ? Param(*value) : Param(std::nullopt)) {}

    bool is_null() const noexcept { return null_; }
    const char* c_str() const noexcept { return null_ ? nullptr : text_.c_str(); }

private:
    bool null_ = true;
    std::string text_;
};

// The batch's transaction during one handle() call.
class Transaction {
public:
    Transaction(const projectiond_host& host, projectiond_tx* tx) noexcept : host_(host), tx_(tx) {}

    // Queues `sql` with `params` as $1, $2, ... (see projectiond_host::execute):
    // tx.execute("UPDATE users SET name = $2 WHERE id = $1", id, name).
    // Throws std::invalid_argument when projectiond refuses the call.
    template <typename... Params, std::enable_if_t<(std::is_constructible_v<Param, Params&&> && ...), int> = 0>
    void execute(const std::string& sql, Params&&... params) {
        const Param values[] = {Param(std::forward<Params>(params))..., Param(std::nullopt)};
        queue(sql, values, sizeof...(Params));
    }
    void execute(const std::string& sql, const std::vector<Param>& params) { queue(sql, params.data(), params.size()); }

    projectiond_tx* raw() const noexcept { return tx_; }

private:
    void queue(const std::string& sql, const Param* params, std::size_t count) {
        std::vector<const char*> values(count);
        for (std::size_t i = 0; i < count; ++i) {
            values[i] = params[i].c_str();
        }
        if (host_.execute(tx_, sql.c_str(), static_cast<int>(count), values.data()) != 0) {
            throw std::invalid_argument("projectiond refused to queue the statement: " + sql);
        }
    }

    const projectiond_host& host_;
    projectiond_tx* tx_;
};

// What a handler object learns when it is made. It outlives the object, so
// the object may keep a reference to it.
class Context {
public:
    Context(const projectiond_host& host, const char* projection, int partition)
        : host_(host), projection_(projection != nullptr ? projection : ""), partition_(partition) {}

    const std::string& projection() const noexcept { return projection_; }
    int partition() const noexcept { return partition_; }
    const projectiond_host& host() const noexcept { return host_; }

    // A line in projectiond's log, with the projection's fields.
    void log(projectiond_log_level level, const std::string& message) const { host_.log(level, message.c_str()); }

private:
    const projectiond_host& host_;
    std::string projection_;
    int partition_;
};

namespace detail {

template <typename Handler> struct PluginAdapter {
    struct State {
        State(const projectiond_host& host, const char* projection, int partition)
            : context(host, projection, partition), handler(context) {}
        Context context;
        Handler handler;
    };

    static void* open(const projectiond_host* host, const char* projection, int partition, char* error,
                      std::size_t error_size) noexcept {
        try {
            return std::make_unique<State>(*host, projection, partition).release();
        } catch (const std::exception& exception) {
            std::snprintf(error, error_size, "%s", exception.what());
        } catch (...) {
            std::snprintf(error, error_size, "%s", "the handler's constructor threw an unknown exception");
        }
        return nullptr;
    }

    static int handle(void* state, const projectiond_event* event, projectiond_tx* tx) noexcept {
        State& self = *static_cast<State*>(state);
        try {
            Transaction transaction(self.context.host(), tx);
            self.handler.handle(Event(*event), transaction);
            return 0;
        } catch (const std::exception& exception) {
            return self.context.host().fail(tx, exception.what());
        } catch (...) {
            return self.context.host().fail(tx, "the handler threw an unknown exception");
        }
    }

    static void close(void* state) noexcept { std::unique_ptr<State> owned(static_cast<State*>(state)); }

    static const projectiond_handler_plugin* table(const char* name) noexcept {
        static const projectiond_handler_plugin plugin = {
            PROJECTIOND_HANDLER_ABI_VERSION, PROJECTIOND_HANDLER_MAGIC, name, &open, &handle, &close,
        };
        return &plugin;
    }
};

} // namespace detail
} // namespace projectiond

// Exports `HandlerClass` as the plugin: a class constructible from
// `const projectiond::Context&` with a member
// `void handle(const projectiond::Event&, projectiond::Transaction&)`.
// Use it once, at namespace scope, in one source file of the plugin.
#define PROJECTIOND_HANDLER_PLUGIN(HandlerClass, plugin_name)                                                          \
    extern "C" PROJECTIOND_HANDLER_EXPORT const struct projectiond_handler_plugin* projectiond_handler_plugin_entry(   \
        void) {                                                                                                        \
        return ::projectiond::detail::PluginAdapter<HandlerClass>::table(plugin_name);                                 \
    }

#endif // PROJECTIOND_HANDLER_HPP
