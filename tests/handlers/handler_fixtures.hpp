#pragma once
// What the code-handler tests share: events to feed handlers, a log that
// records lines with their structured fields, and the paths the build passes.

#include "handlers/code_handler.hpp"
#include "logging/log_context.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::testing {

// `count` events at positions first, first+1, ... with event types "Tested"
// (or as given per position) and a payload of about `payload_size` bytes.
class SampleEvents {
public:
    explicit SampleEvents(int count, std::int64_t first = 1, std::size_t payload_size = 0);
    // Changes the event type of the event at `position`.
    void set_type(std::int64_t position, std::string type);
    // Replaces the payload text of the event at `position`, as is.
    void set_payload(std::int64_t position, std::string payload);

    std::span<const handlers::Event> all() const noexcept { return events_; }
    const handlers::Event& at(std::size_t index) const { return events_.at(index); }

private:
    std::string_view keep(std::string text);
    std::deque<std::string> storage_; // deque: the views stay valid as it grows
    std::vector<handlers::Event> events_;
};

// Replaces the default logger while it lives; records each line with the
// PROJECTION/PARTITION fields of the thread that logged it.
class LogCapture {
public:
    struct Line {
        std::string text;
        std::string projection;
        std::optional<int> partition;
    };

    LogCapture();
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;
    ~LogCapture();

    std::vector<Line> lines() const;
    // The first line containing `text`, if one was logged.
    std::optional<Line> find(const std::string& text) const;

private:
    class Sink;
    std::shared_ptr<Sink> sink_;
    std::shared_ptr<spdlog::logger> saved_;
};

// A path the build passes in the environment; fails the test when missing.
std::string build_path(const char* variable);

// Whether the process `pid` is gone: no such process, or a zombie (which
// holds no resources and only waits to be reaped by its new parent).
bool process_gone(pid_t pid);

} // namespace projectiond::testing
