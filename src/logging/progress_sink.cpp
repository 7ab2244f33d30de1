#include "logging/progress_sink.hpp"

namespace projectiond::logging {

ProgressAwareSink::ProgressAwareSink(std::shared_ptr<spdlog::sinks::sink> inner,
                                     std::shared_ptr<observability::ProgressDisplay> display)
    : inner_(std::move(inner)), display_(std::move(display)) {}

void ProgressAwareSink::log(const spdlog::details::log_msg& message) {
    // Flushed inside, so the line is on the terminal before the redraw.
    display_->print_around([&] {
        inner_->log(message);
        inner_->flush();
    });
}

void ProgressAwareSink::flush() {
    inner_->flush();
}

void ProgressAwareSink::set_pattern(const std::string& pattern) {
    inner_->set_pattern(pattern);
}

void ProgressAwareSink::set_formatter(std::unique_ptr<spdlog::formatter> formatter) {
    inner_->set_formatter(std::move(formatter));
}

} // namespace projectiond::logging
