#include "observability/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <climits>
#include <string>

namespace projectiond::observability {

namespace {

// Batches run from about a millisecond (a few events, a local database) to a
// minute (a large batch handler, a slow network): roughly ×2.5 steps, so that
// histogram_quantile() stays within a factor of two or so everywhere.
const prometheus::Histogram::BucketBoundaries batch_duration_buckets{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

constexpr const char* state_name = "projectiond_projection_state";

prometheus::Labels partition_labels(const std::string& projection, int partition) {
    return {{"projection", projection}, {"partition", std::to_string(partition)}};
}

template <typename T>
prometheus::Family<T>& build(prometheus::detail::Builder<T> builder, prometheus::Registry& registry, const char* name,
                             const char* help) {
    return builder.Name(name).Help(help).Register(registry);
}

} // namespace

PartitionMetrics::PartitionMetrics(const detail::PartitionFamilies& families, std::string projection, int partition)
    : projection_(std::move(projection)), partition_(partition),
      events_processed_(families.events_processed.Add(partition_labels(projection_, partition))),
      batches_(families.batches.Add(partition_labels(projection_, partition))),
      batch_duration_(families.batch_duration.Add(partition_labels(projection_, partition), batch_duration_buckets)),
      checkpoint_position_(families.checkpoint_position.Add(partition_labels(projection_, partition))),
      lag_events_(families.lag_events.Add(partition_labels(projection_, partition))),
      lag_seconds_(families.lag_seconds.Add(partition_labels(projection_, partition))),
      last_event_processed_(families.last_event_processed.Add(partition_labels(projection_, partition))),
      dead_letters_(families.dead_letters.Add(partition_labels(projection_, partition))),
      partition_owned_(families.partition_owned.Add(partition_labels(projection_, partition))) {
    // Every kind exists from the start, at 0, so that rate() and increase()
    // see the first failure instead of a series appearing out of nowhere.
    for (const FailureKind kind : failure_kinds) {
        auto labels = partition_labels(projection_, partition);
        labels.emplace("kind", std::string(to_string(kind)));
        failures_[static_cast<std::size_t>(kind)] = &families.failures.Add(labels);
    }
}

Metrics::Metrics(std::string_view version)
    : families_{
          build(prometheus::BuildCounter(), registry_, "projectiond_events_processed_total",
                "Events handled and committed by a projection partition."),
          build(prometheus::BuildCounter(), registry_, "projectiond_batches_total", "Batches committed."),
          build(prometheus::BuildHistogram(), registry_, "projectiond_batch_duration_seconds",
                "Time from reading a batch to committing it."),
          build(prometheus::BuildGauge(), registry_, "projectiond_checkpoint_position",
                "Global position of the last committed checkpoint."),
          build(prometheus::BuildGauge(), registry_, "projectiond_lag_events",
                "Events not yet passed by the projection partition (exact below 1,000,000)."),
          build(prometheus::BuildGauge(), registry_, "projectiond_lag_seconds",
                "Age of the oldest event not yet passed; 0 when caught up."),
          build(prometheus::BuildGauge(), registry_, "projectiond_last_event_processed_timestamp_seconds",
                "Unix time at which the partition last committed events."),
          build(prometheus::BuildCounter(), registry_, "projectiond_failures_total",
                "Failed batches, by kind: handler, database, fenced."),
          build(prometheus::BuildCounter(), registry_, "projectiond_dead_letters_total",
                "Events parked in the dead-letter table by on_error: skip."),
          build(prometheus::BuildGauge(), registry_, "projectiond_partition_owned",
                "1 when this daemon owns the projection partition, else 0."),
      },
      watermark_held_(build(prometheus::BuildGauge(), registry_, "projectiond_watermark_held_seconds",
                            "How long committed events have waited behind an open transaction; 0 when none.")
                          .Add({})),
      database_up_(
          build(prometheus::BuildGauge(), registry_, "projectiond_database_up", "1 when the database is reachable.")
              .Add({})) {
    build(prometheus::BuildGauge(), registry_, "projectiond_build_info", "Always 1; the version in a label.")
        .Add({{"version", std::string(version)}})
        .Set(1);
}

Metrics::~Metrics() = default;

PartitionMetrics& Metrics::partition(std::string_view projection, int partition) {
    const std::lock_guard lock(partitions_mutex_);
    auto key = std::make_pair(std::string(projection), partition);
    auto found = partitions_.find(key);
    if (found == partitions_.end()) {
        auto metrics = std::make_unique<PartitionMetrics>(families_, key.first, partition);
        found = partitions_.emplace(std::move(key), std::move(metrics)).first;
    }
    return *found->second;
}

void Metrics::remove_series(const PartitionMetrics& gone) {
    families_.events_processed.Remove(&gone.events_processed_);
    families_.batches.Remove(&gone.batches_);
    families_.batch_duration.Remove(&gone.batch_duration_);
    families_.checkpoint_position.Remove(&gone.checkpoint_position_);
    families_.lag_events.Remove(&gone.lag_events_);
    families_.lag_seconds.Remove(&gone.lag_seconds_);
    families_.last_event_processed.Remove(&gone.last_event_processed_);
    for (prometheus::Counter* failures : gone.failures_) {
        families_.failures.Remove(failures);
    }
    families_.dead_letters.Remove(&gone.dead_letters_);
    families_.partition_owned.Remove(&gone.partition_owned_);
}

void Metrics::remove_projection(std::string_view projection) {
    const std::lock_guard lock(partitions_mutex_);
    const std::string name(projection);
    auto it = partitions_.lower_bound({name, INT_MIN});
    while (it != partitions_.end() && it->first.first == name) {
        remove_series(*it->second);
        it = partitions_.erase(it);
    }
}

void Metrics::remove_partition(std::string_view projection, int partition) {
    const std::lock_guard lock(partitions_mutex_);
    if (const auto it = partitions_.find({std::string(projection), partition}); it != partitions_.end()) {
        remove_series(*it->second);
        partitions_.erase(it);
    }
}

// Built from each partition's atomic state at scrape time rather than kept in
// gauges: flipping two gauges cannot be atomic, and a scrape in between would
// see no state or two.
prometheus::MetricFamily Metrics::projection_state_family() const {
    prometheus::MetricFamily family;
    family.name = state_name;
    family.help = "1 for the projection partition's current state, 0 for the others.";
    family.type = prometheus::MetricType::Gauge;
    const std::lock_guard lock(partitions_mutex_);
    family.metric.reserve(partitions_.size() * projection_states.size());
    for (const auto& [key, metrics] : partitions_) {
        const ProjectionState current = metrics->state();
        for (const ProjectionState state : projection_states) {
            prometheus::ClientMetric series;
            series.label = {{"partition", std::to_string(key.second)},
                            {"projection", key.first},
                            {"state", std::string(to_string(state))}};
            series.gauge.value = state == current ? 1.0 : 0.0;
            family.metric.push_back(std::move(series));
        }
    }
    return family;
}

std::vector<prometheus::MetricFamily> Metrics::collect() const {
    // Series come in prometheus-cpp's hash order. Sorting them by labels
    // would read better but costs a quarter of a 200-partition scrape.
    std::vector<prometheus::MetricFamily> families = registry_.Collect();
    families.push_back(projection_state_family());
    return families;
}

std::string Metrics::text() const {
    return prometheus::TextSerializer().Serialize(collect());
}

} // namespace projectiond::observability
