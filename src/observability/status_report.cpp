#include "observability/status_report.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

namespace projectiond::observability {

namespace {

double percent_complete(const store::StoreProgress& store, const store::PartitionProgress& p) {
    if (store.total_events == 0) {
        return 100.0;
    }
    const auto done = std::max<std::int64_t>(0, store.total_events - p.remaining);
    return 100.0 * static_cast<double>(done) / static_cast<double>(store.total_events);
}

std::string header(const StatusEntry& entry) {
    const auto& p = entry.progress;
    std::string line = p.partitions > 1
                           ? fmt::format("Projection: {} (partition {} of {})", p.projection, p.partition, p.partitions)
                           : fmt::format("Projection: {}", p.projection);
    if (p.building) {
        line += fmt::format(" - new version {} being built{}", p.version,
                            p.schema ? fmt::format(" in schema {}", *p.schema) : "");
    }
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
    case Phase::paused:
        return "paused";
    case Phase::failed:
        return "failed";
    case Phase::rebuilding:
        return "rebuilding";
    }
    return "unknown";
}

// "15" or "about 1200000", as the count is exact or not.
std::string count(std::int64_t n, bool estimated) {
    return estimated ? fmt::format("about {}", n) : std::to_string(n);
}

} // namespace

Phase phase_of(const store::PartitionProgress& progress) {
    if (progress.state == "failed") {
        return Phase::failed;
    }
    if (progress.building) {
        return Phase::rebuilding;
    }
    if (progress.paused) {
        return Phase::paused;
    }
    if (!progress.has_checkpoint || !progress.started()) {
        return Phase::not_started;
    }
    return progress.remaining == 0 ? Phase::caught_up : Phase::behind;
}

bool any_failed(const std::vector<StatusEntry>& entries) {
    return std::any_of(entries.begin(), entries.end(),
                       [](const StatusEntry& entry) { return phase_of(entry.progress) == Phase::failed; });
}

std::vector<StatusEntry> status_entries(const store::StoreProgress& progress, const config::Config& config,
                                        const std::vector<std::string>& names, std::vector<std::string>* unknown) {
    // By name, then the live generation before the one being built, then partition.
    std::map<std::tuple<std::string, bool, int>, StatusEntry> entries;
    std::set<std::string> stored_names;
    for (const auto& stored : progress.partitions) {
        stored_names.insert(stored.projection);
    }
    for (const auto& projection : config.projections) {
        if (stored_names.contains(projection.name)) {
            continue; // its rows say how many partitions it has
        }
        for (int partition = 0; partition < projection.partitions; ++partition) {
            StatusEntry entry;
            entry.configured = true;
            entry.progress.projection = projection.name;
            entry.progress.partition = partition;
            entry.progress.partitions = projection.partitions;
            entry.progress.remaining = progress.total_events;
            entry.progress.remaining_estimated = progress.total_estimated;
            entries.emplace(std::tuple(projection.name, false, partition), std::move(entry));
        }
    }
    for (const auto& stored : progress.partitions) {
        auto& entry = entries[std::tuple(stored.projection, stored.building, stored.partition)];
        entry.configured = config.find(stored.projection) != nullptr;
        entry.progress = stored;
    }
    std::vector<StatusEntry> out;
    std::set<std::string> wanted(names.begin(), names.end());
    std::set<std::string> found;
    for (auto& [key, entry] : entries) {
        const std::string& name = std::get<0>(key);
        if (wanted.empty() || wanted.contains(name)) {
            found.insert(name);
            out.push_back(std::move(entry));
        }
    }
    for (const auto& name : wanted) {
        if (!found.contains(name) && unknown != nullptr) {
            unknown->push_back(name);
        }
    }
    return out;
}

std::string render_status_text(const store::StoreProgress& progress, const std::vector<StatusEntry>& entries) {
    std::string out;
    const std::string total = count(progress.total_events, progress.total_estimated);
    // Positions come from a sequence: rolled-back appends leave gaps, so the
    // last position may be above the number of events. Say so, once.
    const std::string total_line =
        progress.max_global_position > progress.total_events && !progress.total_estimated
            ? fmt::format("Total events in store: {} (positions run up to {}: rolled-back appends leave gaps)\n",
                          total, progress.max_global_position)
            : fmt::format("Total events in store: {}\n", total);
    if (entries.empty()) {
        return "No projections are configured or stored.\n" + total_line;
    }
    for (const auto& entry : entries) {
        const auto& p = entry.progress;
        if (!out.empty()) {
            out += '\n';
        }
        out += header(entry) + '\n';
        out += fmt::format("Current checkpoint position: {}\n", p.last_global_position);
        out += total_line;
        switch (phase_of(p)) {
        case Phase::not_started:
            out += progress.total_estimated
                       ? fmt::format("Status: Not started (will process all of about {} events)\n",
                                     progress.total_events)
                       : fmt::format("Status: Not started (will process all {} events)\n", total);
            break;
        case Phase::caught_up:
            out += "Status: Caught up (all events processed)\n";
            break;
        case Phase::behind:
            out += fmt::format("Status: Behind by {} events ({:.1f}% complete)\n",
                               count(p.remaining, p.remaining_estimated), percent_complete(progress, p));
            break;
        case Phase::paused:
            out += fmt::format("Status: Paused (behind by {} events); `projectiond resume {}` continues\n",
                               count(p.remaining, p.remaining_estimated), p.projection);
            break;
        case Phase::rebuilding:
            out += fmt::format("Status: Rebuilding, {:.1f}% complete ({} events to go, {:.0f} events/s{})\n",
                               percent_complete(progress, p), count(p.remaining, p.remaining_estimated),
                               p.events_per_second,
                               p.events_per_second > 0 && p.remaining > 0
                                   ? fmt::format(", about {} s left",
                                                 static_cast<long long>(static_cast<double>(p.remaining) /
                                                                        p.events_per_second))
                                   : "");
            break;
        case Phase::failed:
            out += fmt::format("Status: Failed at position {} (event {}): {}\n",
                               p.failed_position ? std::to_string(*p.failed_position) : std::string("?"),
                               p.failed_event_id.value_or("?"), p.last_error.value_or("(no error recorded)"));
            break;
        }
        if (p.running && p.owner) {
            out += fmt::format("Run by: {}\n", *p.owner);
        }
    }
    if (progress.blocked) {
        out += fmt::format("\nBlocked: {}\n", *progress.blocked);
    }
    if (progress.waiting_for) {
        out += fmt::format("\nWaiting for: {} (committed events have waited {:.0f} s behind it)\n",
                           progress.waiting_for->describe(), progress.waiting_for->events_waiting_seconds);
    }
    if (!progress.daemons.empty()) {
        out += fmt::format("\nDaemons sharing the work: {}\n", progress.daemons.size());
        for (const auto& daemon : progress.daemons) {
            out += fmt::format("  {} pid {} (projectiond {}): {} partition{}\n", daemon.host, daemon.pid,
                               daemon.version, daemon.owned, daemon.owned == 1 ? "" : "s");
        }
    }
    return out;
}

nlohmann::json render_status_json(const store::StoreProgress& progress, const std::vector<StatusEntry>& entries) {
    nlohmann::json projections = nlohmann::json::array();
    for (const auto& entry : entries) {
        const auto& p = entry.progress;
        const Phase phase = phase_of(p);
        const bool started = p.has_checkpoint && p.started();
        nlohmann::json item = {
            {"name", p.projection},
            {"partition", p.partition},
            {"partitions", p.partitions},
            {"generation", p.generation},
            {"configured", entry.configured},
            {"checkpoint", p.last_global_position},
            {"total_events", progress.total_events},
            {"behind", started ? p.remaining : progress.total_events},
            {"behind_estimated", started ? p.remaining_estimated : progress.total_estimated},
            {"lag_seconds", p.lag_seconds},
            {"percent_complete", started ? percent_complete(progress, p) : 0.0},
            {"status", phase_name(phase)},
            {"state", p.state},
            {"paused", p.paused},
            {"running", p.running},
            {"events_processed", p.events_processed},
            {"version", p.version},
            {"schema", p.schema ? nlohmann::json(*p.schema) : nlohmann::json(nullptr)},
            {"rebuilding", p.building},
            {"events_per_second", p.events_per_second},
            {"eta_seconds", p.building && p.events_per_second > 0
                                ? nlohmann::json(static_cast<double>(p.remaining) / p.events_per_second)
                                : nlohmann::json(nullptr)},
            {"error", p.last_error ? nlohmann::json(*p.last_error) : nlohmann::json(nullptr)},
            {"failed_position", p.failed_position ? nlohmann::json(*p.failed_position) : nlohmann::json(nullptr)},
            {"failed_event_id", p.failed_event_id ? nlohmann::json(*p.failed_event_id) : nlohmann::json(nullptr)},
            {"updated_at", p.updated_at ? nlohmann::json(*p.updated_at) : nlohmann::json(nullptr)},
            {"owner", p.running && p.owner ? nlohmann::json(*p.owner) : nlohmann::json(nullptr)},
        };
        projections.push_back(std::move(item));
    }
    nlohmann::json daemons = nlohmann::json::array();
    for (const auto& daemon : progress.daemons) {
        daemons.push_back({{"id", daemon.id},
                           {"host", daemon.host},
                           {"pid", daemon.pid},
                           {"version", daemon.version},
                           {"started_at", daemon.started_at},
                           {"lease_seconds_left", daemon.lease_left_seconds},
                           {"partitions", daemon.owned}});
    }
    nlohmann::json waiting = nullptr;
    if (const auto& holder = progress.waiting_for) {
        const auto optional = [](const auto& value) { return value ? nlohmann::json(*value) : nlohmann::json(nullptr); };
        waiting = {{"transaction_id", holder->transaction_id},
                   {"events_waiting_seconds", holder->events_waiting_seconds},
                   {"session_visible", holder->session_visible},
                   {"pid", optional(holder->pid)},
                   {"user", optional(holder->user)},
                   {"database", optional(holder->database)},
                   {"application_name", optional(holder->application)},
                   {"client_addr", optional(holder->client)},
                   {"state", optional(holder->state)},
                   {"open_seconds", optional(holder->open_seconds)},
                   {"query", optional(holder->query)},
                   {"prepared_transaction", optional(holder->prepared)},
                   {"description", holder->describe()}};
    }
    return {{"total_events", progress.total_events},
            {"waiting_for", std::move(waiting)},
            {"blocked", progress.blocked ? nlohmann::json(*progress.blocked) : nlohmann::json(nullptr)},
            {"total_estimated", progress.total_estimated},
            {"max_global_position", progress.max_global_position},
            {"projections", std::move(projections)},
            {"daemons", std::move(daemons)}};
}

} // namespace projectiond::observability
