#include "logging/journal_sink.hpp"

#include "logging/log_context.hpp"

#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <string>
#include <vector>

#include <fmt/format.h>

namespace projectiond::logging {

namespace {
int syslog_priority(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
        return 7;
    case spdlog::level::info:
        return 6;
    case spdlog::level::warn:
        return 4;
    case spdlog::level::err:
        return 3;
    case spdlog::level::critical:
        return 2;
    default:
        return 6;
    }
}
} // namespace

void JournalSink::sink_it_(const spdlog::details::log_msg& message) {
    const LogContext& context = current_context();
    std::vector<std::string> fields;
    fields.reserve(8);
    fields.push_back(fmt::format("MESSAGE={}", std::string_view(message.payload.data(), message.payload.size())));
    fields.push_back(fmt::format("PRIORITY={}", syslog_priority(message.level)));
    fields.emplace_back("SYSLOG_IDENTIFIER=projectiond");
    if (!context.projection.empty()) {
        fields.push_back("PROJECTION=" + context.projection);
    }
    if (context.partition) {
        fields.push_back(fmt::format("PARTITION={}", *context.partition));
    }
    if (context.global_position) {
        fields.push_back(fmt::format("GLOBAL_POSITION={}", *context.global_position));
    }
    if (message.source.filename != nullptr) {
        fields.push_back(fmt::format("CODE_FILE={}", message.source.filename));
        fields.push_back(fmt::format("CODE_LINE={}", message.source.line));
    }
    std::vector<iovec> vector;
    vector.reserve(fields.size());
    for (std::string& field : fields) {
        vector.push_back({field.data(), field.size()});
    }
    sd_journal_sendv(vector.data(), static_cast<int>(vector.size()));
}

} // namespace projectiond::logging
