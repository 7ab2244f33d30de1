#pragma once
// Waiting on a condition with a bound, instead of sleeping and hoping.

#include <chrono>
#include <functional>
#include <string>

namespace projectiond::testing {

// Polls `condition` until it holds (true) or `timeout` passes (false).
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(20));

} // namespace projectiond::testing
