#pragma once
// Catches a change of `partitions:` before it reaches a runner: aggregates
// are assigned to partitions by hash modulo the count, so checkpoints kept for
// one count are meaningless for another, and the runner refuses to go on.
// check-config reports it as one configuration error at `partitions:`.

#include "config/config.hpp"
#include "store/connection.hpp"

#include <vector>

namespace projectiond::projection {

// One problem for each projection whose stored checkpoints were written for
// another partition count. Needs the event store's schema.
std::vector<config::Located> find_partition_changes(store::Connection& conn,
                                                    const std::vector<const config::Projection*>& projections);

} // namespace projectiond::projection
