#include "cli/status_report.hpp"

#include "cli/exit_codes.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

namespace projectiond::cli {

namespace {

double percent_complete(const store::StoreProgress& store, const store::PartitionProgress& p) {
    if (store.total_events == 0) {
        return 100.0;
    }
    return 100.0 * static_cast<double>(store.total_events - p.remaining) / static_cast<double>(store.total_events);
}

std::string header(const StatusEntry& entry) {
    const auto& p = entry.progress;
    std::string line = p.partitions > 1
                           ? fmt::format("Projection: {} (partition {} of {})", p.projection, p.partition, p.partitions)
                           : fmt::format("Projection: {}", p.projection);
    if (!entry.configured) {
        line += " (not in the configuration)";
    }
    return line;
}

const char* phase_name(Phase phase) {
    switch (phase) {
    case Phase::not_started:
        return "not_started";
    case Phase::behind:
        return "behind";
    case Phase::caught_up:
        return "caught_up";
    }
    return "unknown";
}

} // namespace

Phase phase_of(const store::PartitionProgress& progress) {
    if (!progress.has_checkpoint || !progress.started()) {
        return Phase::not_started;
    }
    return progress.remaining == 0 ? Phase::caught_up : Phase::behind;
}

std::vector<StatusEntry> status_entries(const store::StoreProgress& progress, const config::Config& config,
                                        const std::vector<std::string>& names) {
    std::map<std::pair<std::string, int>, StatusEntry> entries;
    for (const auto& projection : config.projections) {
        for (int partition = 0; partition < projection.partitions; ++partition) {
            StatusEntry entry;
            entry.configured = true;
            entry.progress.projection = projection.name;
            entry.progress.partition = partition;
            entry.progress.partitions = projection.partitions;
            entry.progress.remaining = progress.total_events;
            entries.emplace(std::pair(projection.name, partition), std::move(entry));
        }
    }
    for (const auto& stored : progress.partitions) {
        auto& entry = entries[std::pair(stored.projection, stored.partition)];
        entry.configured = config.find(stored.projection) != nullptr;
        entry.progress = stored;
    }
    std::vector<StatusEntry> out;
    std::set<std::string> wanted(names.begin(), names.end());
    std::set<std::string> found;
    for (auto& [key, entry] : entries) {
        if (wanted.empty() || wanted.contains(key.first)) {
            found.insert(key.first);
            out.push_back(std::move(entry));
        }
    }
    for (const auto& name : wanted) {
        if (!found.contains(name)) {
            throw CommandError(exit_usage,
                               fmt::format("no projection named '{}' in {} or in the database", name, config.source));
        }
    }
    return out;
}

std::string render_status_text(const store::StoreProgress& progress, const std::vector<StatusEntry>& entries) {
    std::string out;
    if (entries.empty()) {
        out +=
            fmt::format("No projections are configured or stored.\nTotal events in store: {}\n", progress.total_events);
        return out;
    }
    for (const auto& entry : entries) {
        const auto& p = entry.progress;
        if (!out.empty()) {
            out += '\n';
        }
        out += header(entry) + '\n';
        out += fmt::format("Current checkpoint position: {}\n", p.last_global_position);
        out += fmt::format("Total events in store: {}\n", progress.total_events);
        switch (phase_of(p)) {
        case Phase::not_started:
            out += fmt::format("Status: Not started (will process all {} events)\n", progress.total_events);
            break;
        case Phase::caught_up:
            out += "Status: Caught up (all events processed)\n";
            break;
        case Phase::behind:
            out += fmt::format("Status: Behind by {} events ({:.1f}% complete)\n", p.remaining,
                               percent_complete(progress, p));
            break;
        }
        if (p.state == "failed") {
            out += fmt::format("State: failed at position {}: {}\n",
                               p.failed_position ? std::to_string(*p.failed_position) : std::string("?"),
                               p.last_error.value_or("(no error recorded)"));
        }
    }
    return out;
}

nlohmann::json render_status_json(const store::StoreProgress& progress, const std::vector<StatusEntry>& entries) {
    nlohmann::json projections = nlohmann::json::array();
    for (const auto& entry : entries) {
        const auto& p = entry.progress;
        const Phase phase = phase_of(p);
        nlohmann::json item = {
            {"name", p.projection},
            {"partition", p.partition},
            {"partitions", p.partitions},
            {"configured", entry.configured},
            {"checkpoint", p.last_global_position},
            {"total_events", progress.total_events},
            {"behind", phase == Phase::not_started ? progress.total_events : p.remaining},
            {"percent_complete", phase == Phase::not_started ? 0.0 : percent_complete(progress, p)},
            {"status", phase_name(phase)},
            {"state", p.state},
            {"running", p.running},
            {"events_processed", p.events_processed},
            {"error", p.last_error ? nlohmann::json(*p.last_error) : nlohmann::json(nullptr)},
            {"failed_position", p.failed_position ? nlohmann::json(*p.failed_position) : nlohmann::json(nullptr)},
            {"updated_at", p.updated_at ? nlohmann::json(*p.updated_at) : nlohmann::json(nullptr)},
            {"owner", p.owner ? nlohmann::json(*p.owner) : nlohmann::json(nullptr)},
        };
        projections.push_back(std::move(item));
    }
    return {{"total_events", progress.total_events},
            {"max_global_position", progress.max_global_position},
            {"projections", std::move(projections)}};
}

} // namespace projectiond::cli
