#pragma once
// Sends what an exec handler writes on stderr to the daemon's log, a line at
// a time, with the projection's structured fields (PROJECTION=, PARTITION=):
// a thread of its own reads the pipe, so a chatty child never blocks on a
// full pipe, whatever the runner is doing.

#include "logging/log_context.hpp"
#include "system/pipe.hpp"

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace projectiond::handlers {

class StderrForwarder {
public:
    // Reads `pipe` (the read end of the child's stderr) until end of file or
    // finish(); lines are logged as "<label>: <line>" with `context`.
    StderrForwarder(system::UniqueFd pipe, logging::LogContext context, std::string label);
    StderrForwarder(const StderrForwarder&) = delete;
    StderrForwarder& operator=(const StderrForwarder&) = delete;
    // finish(), if not done yet.
    ~StderrForwarder();

    // Logs what the pipe still holds and stops. Call it once the child has
    // been reaped: its output is all in the pipe then, and a grandchild that
    // kept the pipe open cannot keep the thread (and its owner) waiting.
    void finish() noexcept;

    // The last line the child wrote, for messages about why it died.
    std::string last_line() const;

private:
    void run() noexcept;
    void emit(std::string_view line);

    system::UniqueFd pipe_;
    system::Pipe wake_; // written by finish()
    logging::LogContext context_;
    std::string label_;
    mutable std::mutex last_line_mutex_;
    std::string last_line_;
    std::thread thread_;
};

} // namespace projectiond::handlers
