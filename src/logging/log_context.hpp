#pragma once
// Structured fields attached to the log lines of the current thread:
// PROJECTION= and PARTITION= for a runner's whole life, GLOBAL_POSITION= for
// the lines about one event or batch. The journal sink writes them as journal
// fields, the stderr sink as a "[projection/partition]" prefix.

#include <cstdint>
#include <optional>
#include <string>

namespace projectiond::logging {

struct LogContext {
    std::string projection;
    std::optional<int> partition;
    std::optional<std::int64_t> global_position;
};

// The calling thread's context.
LogContext& current_context() noexcept;

// Sets the projection and partition of this thread until destroyed.
class ScopedProjection {
public:
    ScopedProjection(std::string projection, std::optional<int> partition);
    ScopedProjection(const ScopedProjection&) = delete;
    ScopedProjection& operator=(const ScopedProjection&) = delete;
    ~ScopedProjection();

private:
    LogContext saved_;
};

// Sets GLOBAL_POSITION for the lines logged while it lives.
class ScopedPosition {
public:
    explicit ScopedPosition(std::int64_t position);
    ScopedPosition(const ScopedPosition&) = delete;
    ScopedPosition& operator=(const ScopedPosition&) = delete;
    ~ScopedPosition();

private:
    std::optional<std::int64_t> saved_;
};

} // namespace projectiond::logging
