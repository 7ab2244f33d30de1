#pragma once
// An spdlog sink in front of the stderr sink when stderr is a terminal with
// live progress lines: each log line is printed with those lines cleared
// first and redrawn after, so neither garbles the other.

#include "observability/progress_display.hpp"

#include <spdlog/sinks/sink.h>

#include <memory>

namespace projectiond::logging {

class ProgressAwareSink final : public spdlog::sinks::sink {
public:
    ProgressAwareSink(std::shared_ptr<spdlog::sinks::sink> inner,
                      std::shared_ptr<observability::ProgressDisplay> display);

    void log(const spdlog::details::log_msg& message) override;
    void flush() override;
    void set_pattern(const std::string& pattern) override;
    void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override;

private:
    std::shared_ptr<spdlog::sinks::sink> inner_;
    std::shared_ptr<observability::ProgressDisplay> display_;
};

} // namespace projectiond::logging
