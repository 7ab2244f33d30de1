#include "system/backoff.hpp"

#include <algorithm>

namespace projectiond::system {

std::chrono::milliseconds Backoff::next() {
    ceiling_ = ceiling_.count() == 0 ? first_ : std::min(cap_, ceiling_ * 2);
    const auto low = std::max<std::chrono::milliseconds::rep>(1, first_.count() / 2);
    const auto high = std::max(low, ceiling_.count());
    if (!random_) {
        random_.emplace(std::random_device{}());
    }
    std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(low, high);
    return std::chrono::milliseconds(pick(*random_));
}

} // namespace projectiond::system
