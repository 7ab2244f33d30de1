#pragma once
// An spdlog sink that writes to the systemd journal with structured fields
// (spdlog's own systemd sink cannot add PROJECTION= and friends).

#include <spdlog/sinks/base_sink.h>

#include <mutex>

namespace projectiond::logging {

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& message) override;
    void flush_() override {}
};

} // namespace projectiond::logging
