#include "handler_fixtures.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

namespace projectiond::testing {

SampleEvents::SampleEvents(int count, std::int64_t first, std::size_t payload_size) {
    events_.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        const std::int64_t position = first + i;
        handlers::Event event;
        event.global_position = position;
        event.bounded_context = keep("Identity");
        event.aggregate_type = keep("User");
        event.aggregate_id = keep(fmt::format("user-{}", position));
        event.aggregate_version = 1;
        event.event_id = keep(fmt::format("00000000-0000-4000-8000-{:012d}", position));
        event.event_type = keep("Tested");
        event.event_version = 1;
        event.payload = keep(fmt::format(R"({{"name": "User {}", "email": "user{}@example.org", "pad": "{}"}})",
                                         position, position, std::string(payload_size, 'x')));
        event.metadata = std::nullopt;
        event.trace_id = keep(fmt::format("trace-{}", position));
        event.correlation_id = std::nullopt;
        event.causation_id = std::nullopt;
        event.created_at = keep("2026-01-27 10:11:12.123456+00");
        events_.push_back(event);
    }
}

std::string_view SampleEvents::keep(std::string text) {
    storage_.push_back(std::move(text));
    return storage_.back();
}

void SampleEvents::set_type(std::int64_t position, std::string type) {
    events_.at(static_cast<std::size_t>(position - events_.front().global_position)).event_type = keep(std::move(type));
}

void SampleEvents::set_payload(std::int64_t position, std::string payload) {
    events_.at(static_cast<std::size_t>(position - events_.front().global_position)).payload = keep(std::move(payload));
}

class LogCapture::Sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    std::vector<Line> snapshot() {
        std::lock_guard lock(mutex_);
        return lines_;
    }

protected:
    void sink_it_(const spdlog::details::log_msg& message) override {
        const logging::LogContext& context = logging::current_context();
        lines_.push_back(
            Line{std::string(message.payload.data(), message.payload.size()), context.projection, context.partition});
    }
    void flush_() override {}

private:
    std::vector<Line> lines_;
};

LogCapture::LogCapture() : sink_(std::make_shared<Sink>()), saved_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

LogCapture::~LogCapture() {
    spdlog::set_default_logger(saved_);
}

std::vector<LogCapture::Line> LogCapture::lines() const {
    return sink_->snapshot();
}

std::optional<LogCapture::Line> LogCapture::find(const std::string& text) const {
    for (auto& line : lines()) {
        if (line.text.find(text) != std::string::npos) {
            return line;
        }
    }
    return std::nullopt;
}

std::string build_path(const char* variable) {
    const char* value = std::getenv(variable);
    REQUIRE_MESSAGE(value != nullptr, variable << " is not set; run the tests with `meson test`");
    return value;
}

bool process_gone(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    if (!stat) {
        return true;
    }
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // "pid (comm) S ...": the state follows the last ')'.
    const auto paren = text.rfind(')');
    return paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] == 'Z' || text[paren + 2] == 'X';
}

} // namespace projectiond::testing
