#pragma once
// The latest view of the store that the daemon's watcher read: how far it is
// settled, and whether something keeps every runner from moving on (rows
// copied from another cluster waiting for a new epoch, a logical-replication
// subscription writing the events). Written by the watcher, read by runners.

#include "store/checkpoints.hpp"

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace projectiond::projection {

struct StoreView {
    bool known = false;            // read at least once
    store::Cursor settled;         // last settled event in reading order
    std::int64_t max_position = 0; // max(global_position)
    bool pending = false;          // committed events wait above the horizon
    // Why no runner may move on, when something does: said in logs and status.
    std::optional<std::string> blocked;
};

class FrontierBoard {
public:
    StoreView view() const {
        std::lock_guard lock(mutex_);
        return view_;
    }
    void publish(StoreView view) {
        std::lock_guard lock(mutex_);
        view_ = std::move(view);
    }

private:
    mutable std::mutex mutex_;
    StoreView view_;
};

} // namespace projectiond::projection
