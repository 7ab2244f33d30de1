#include "logging/setup.hpp"

#include "logging/journal_sink.hpp"
#include "logging/log_context.hpp"
#include "logging/progress_sink.hpp"
#include "observability/progress_display.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::logging {

namespace {

// %* in the pattern: "[projection/partition] " for runner threads.
class ContextFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
        const LogContext& context = current_context();
        if (context.projection.empty()) {
            return;
        }
        std::string prefix = context.partition ? fmt::format("[{}/{}] ", context.projection, *context.partition)
                                               : fmt::format("[{}] ", context.projection);
        dest.append(prefix.data(), prefix.data() + prefix.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<ContextFlag>(); }
};

} // namespace

Target parse_target(const std::string& name) {
    if (name == "auto") {
        return Target::automatic;
    }
    if (name == "journal") {
        return Target::journal;
    }
    if (name == "stderr") {
        return Target::stderr_lines;
    }
    throw std::invalid_argument(fmt::format("unknown log target '{}'; use auto, journal or stderr", name));
}

void parse_level_or_throw(const std::string& name) {
    if (name != "trace" && name != "debug" && name != "info" && name != "warn" && name != "error") {
        throw std::invalid_argument(fmt::format("unknown log level '{}'; use trace, debug, info, warn or error", name));
    }
}

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) {
        return false;
    }
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) {
        return false;
    }
    struct stat info {};
    if (fstat(STDERR_FILENO, &info) != 0) {
        return false;
    }
    return info.st_dev == device && info.st_ino == inode;
}

void setup_logging(Target target, const std::string& level) {
    parse_level_or_throw(level);
    const bool journal = target == Target::journal || (target == Target::automatic && stderr_is_journal());
    std::shared_ptr<spdlog::logger> logger;
    if (journal) {
        logger = std::make_shared<spdlog::logger>("projectiond", std::make_shared<JournalSink>());
    } else {
        auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<ContextFlag>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %*%v");
        sink->set_formatter(std::move(formatter));
        std::shared_ptr<spdlog::sinks::sink> lines = std::move(sink);
        // On a terminal, `run` may draw live progress lines below the log.
        if (auto progress = observability::stderr_progress(); progress->active()) {
            lines = std::make_shared<ProgressAwareSink>(std::move(lines), std::move(progress));
        }
        logger = std::make_shared<spdlog::logger>("projectiond", std::move(lines));
    }
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

} // namespace projectiond::logging
