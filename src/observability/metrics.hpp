#pragma once
// Every metric of SPEC §8, in one prometheus-cpp registry: what runners and
// the sampler update from their threads and what a scrape serializes.

#include "observability/metric_labels.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace projectiond::observability {

namespace detail {
// The families a partition has a child in; owned by the registry.
struct PartitionFamilies {
    prometheus::Family<prometheus::Counter>& events_processed;
    prometheus::Family<prometheus::Counter>& batches;
    prometheus::Family<prometheus::Histogram>& batch_duration;
    prometheus::Family<prometheus::Gauge>& checkpoint_position;
    prometheus::Family<prometheus::Gauge>& lag_events;
    prometheus::Family<prometheus::Gauge>& lag_seconds;
    prometheus::Family<prometheus::Gauge>& last_event_processed;
    prometheus::Family<prometheus::Counter>& failures;
    prometheus::Family<prometheus::Counter>& dead_letters;
    prometheus::Family<prometheus::Gauge>& partition_owned;
};
} // namespace detail

// One projection partition's series, resolved once: a runner updates them
// per batch without any lookup or lock (atomics inside prometheus-cpp; the
// histogram takes its own short lock).
class PartitionMetrics {
public:
    PartitionMetrics(const detail::PartitionFamilies& families, std::string projection, int partition);
    PartitionMetrics(const PartitionMetrics&) = delete;
    PartitionMetrics& operator=(const PartitionMetrics&) = delete;

    // A committed batch of `events` events that took `duration` (read to commit).
    void add_batch(std::uint64_t events, std::chrono::duration<double> duration) {
        events_processed_.Increment(static_cast<double>(events));
        batches_.Increment();
        batch_duration_.Observe(duration.count());
    }
    void set_checkpoint(std::int64_t position) { checkpoint_position_.Set(static_cast<double>(position)); }
    // Events not yet passed, and how old the oldest of them is (0 when caught up).
    void set_lag(std::int64_t events, std::chrono::duration<double> oldest_age) {
        lag_events_.Set(static_cast<double>(events));
        lag_seconds_.Set(oldest_age.count());
    }
    // When the partition last committed events (wall clock).
    void set_last_event_processed(std::chrono::system_clock::time_point when) {
        last_event_processed_.Set(std::chrono::duration<double>(when.time_since_epoch()).count());
    }
    void add_failure(FailureKind kind) { failures_[static_cast<std::size_t>(kind)]->Increment(); }
    void add_dead_letter() { dead_letters_.Increment(); }
    void set_owned(bool owned) { partition_owned_.Set(owned ? 1.0 : 0.0); }
    // Read at scrape time, so the exposed state is one-hot at every scrape.
    void set_state(ProjectionState state) noexcept { state_.store(state, std::memory_order_relaxed); }
    ProjectionState state() const noexcept { return state_.load(std::memory_order_relaxed); }

    const std::string& projection() const noexcept { return projection_; }
    int partition() const noexcept { return partition_; }

private:
    friend class Metrics;

    std::string projection_;
    int partition_;
    prometheus::Counter& events_processed_;
    prometheus::Counter& batches_;
    prometheus::Histogram& batch_duration_;
    prometheus::Gauge& checkpoint_position_;
    prometheus::Gauge& lag_events_;
    prometheus::Gauge& lag_seconds_;
    prometheus::Gauge& last_event_processed_;
    std::array<prometheus::Counter*, failure_kinds.size()> failures_{};
    prometheus::Counter& dead_letters_;
    prometheus::Gauge& partition_owned_;
    std::atomic<ProjectionState> state_{ProjectionState::starting};
};

class Metrics {
public:
    // `version` becomes projectiond_build_info{version="…"}.
    explicit Metrics(std::string_view version);
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;
    ~Metrics();

    // The series of one partition, created with zeros on first use. Asking
    // again (after a reload, say) returns the same object and the same
    // children, so counters go on from where they were. The reference stays
    // valid until that partition or projection is removed.
    PartitionMetrics& partition(std::string_view projection, int partition);

    // Makes every series of the projection (or of one partition) disappear
    // from the exposition. Call only once its runners have stopped: their
    // PartitionMetrics references dangle afterwards.
    void remove_projection(std::string_view projection);
    void remove_partition(std::string_view projection, int partition);

    // Daemon-wide.
    void set_database_up(bool up) { database_up_.Set(up ? 1.0 : 0.0); }
    // How long committed events have waited behind an open transaction (0 when
    // none). The event horizon is the cluster's, not a projection's.
    void set_watermark_held(std::chrono::duration<double> held) { watermark_held_.Set(held.count()); }

    // Every family, for a serializer.
    std::vector<prometheus::MetricFamily> collect() const;
    // The Prometheus text exposition format (version 0.0.4).
    std::string text() const;

private:
    prometheus::MetricFamily projection_state_family() const;
    void remove_series(const PartitionMetrics& gone);

    prometheus::Registry registry_;
    detail::PartitionFamilies families_;
    prometheus::Gauge& watermark_held_;
    prometheus::Gauge& database_up_;

    mutable std::mutex partitions_mutex_;
    // (projection, partition) → its series; node-based, so references stay put.
    std::map<std::pair<std::string, int>, std::unique_ptr<PartitionMetrics>> partitions_;
};

} // namespace projectiond::observability
