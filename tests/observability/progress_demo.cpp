// What `projectiond run` does with its terminal during a catch-up, in small:
// logging set up as the daemon sets it up, progress lines drawn, log lines
// printed while they are shown, then the catch-up ending. The progress test
// runs this under a pseudo-terminal and with a pipe for stderr.

#include "logging/setup.hpp"
#include "observability/progress_display.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

int main() {
    using namespace projectiond;
    using namespace std::chrono_literals;
    logging::setup_logging(logging::Target::stderr_lines, "info");
    const auto progress = observability::stderr_progress();
    const auto start = observability::ProgressDisplay::Clock::now();

    spdlog::info("first log line");
    progress->update({{"user_read_model", 0, 1000}}, start);
    spdlog::info("second log line");
    progress->update({{"user_read_model", 100, 1000}, {"audit_log/1", 5, 10}}, start + 1s);
    spdlog::warn("third log line");
    progress->update({{"audit_log/1", 10, 10}}, start + 2s);
    progress->clear();
    spdlog::info("caught up");
    return 0;
}
