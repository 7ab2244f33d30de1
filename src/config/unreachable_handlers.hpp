#pragma once
// Handlers that can never run: the projection's own `event_types` filter
// leaves their event type out, so the database never returns such an event
// to the runner. Legal (the file means what it says) but surely a mistake,
// so check-config warns about them.

#include "config/config.hpp"

#include <vector>

namespace projectiond::config {

// One warning per such handler, at its body, worded "warning: ...".
std::vector<Located> find_unreachable_handlers(const Config& config);

} // namespace projectiond::config
