#pragma once
// What `status` prints, as text (the reference's lines) or JSON, from the
// stored progress and the configuration: the CLI prints it, the daemon serves
// the JSON at /status. No I/O here, so it is unit-tested.

#include "config/config.hpp"
#include "store/progress.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace projectiond::observability {

struct StatusEntry {
    store::PartitionProgress progress;
    bool configured = false; // named by the configuration (else only found in the database)
};

enum class Phase { not_started, behind, caught_up, paused, failed, rebuilding };

Phase phase_of(const store::PartitionProgress& progress);

// Every configured partition (a placeholder when it has no checkpoint yet)
// and every checkpoint in the database, restricted to `names` when given.
// A name that is neither configured nor stored goes to `unknown`.
std::vector<StatusEntry> status_entries(const store::StoreProgress& progress, const config::Config& config,
                                        const std::vector<std::string>& names,
                                        std::vector<std::string>* unknown = nullptr);

std::string render_status_text(const store::StoreProgress& progress, const std::vector<StatusEntry>& entries);
// True when a selected projection has failed: `status` then exits 1.
bool any_failed(const std::vector<StatusEntry>& entries);
nlohmann::json render_status_json(const store::StoreProgress& progress, const std::vector<StatusEntry>& entries);

} // namespace projectiond::observability
