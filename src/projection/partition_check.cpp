#include "projection/partition_check.hpp"

#include <fmt/format.h>

namespace projectiond::projection {

std::vector<config::Located> find_partition_changes(store::Connection& conn,
                                                    const std::vector<const config::Projection*>& projections) {
    std::vector<config::Located> problems;
    for (const config::Projection* projection : projections) {
        const store::Result counts = conn.exec(
            "SELECT min(partition_count), max(partition_count) FROM projection_checkpoints WHERE projection_name = $1",
            {projection->name});
        if (counts.is_null(0, 0)) {
            continue; // never run: any count will do
        }
        const std::int64_t low = counts.int64(0, 0);
        const std::int64_t high = counts.int64(0, 1);
        if (low == projection->partitions && high == projection->partitions) {
            continue;
        }
        const std::string stored = low == high ? fmt::format("{}", low) : fmt::format("{} to {}", low, high);
        problems.push_back(
            {projection->partitions_mark,
             fmt::format("projection '{}' now has {} partition{}, but its checkpoints were written for {}; "
                         "aggregates would move between partitions mid-stream. A partition change needs a rebuild: "
                         "clear the read model and run `projectiond reset {}`, or give it a `schema:` and bump "
                         "`version:` to rebuild it blue/green",
                         projection->name, projection->partitions, projection->partitions == 1 ? "" : "s", stored,
                         projection->name)});
    }
    return problems;
}

} // namespace projectiond::projection
