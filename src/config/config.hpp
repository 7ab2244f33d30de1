#pragma once
// The configuration as plain, validated values (see config/projectiond.yaml for
// the documented file format).

#include "config/duration.hpp"
#include "config/named_parameters.hpp"

#include <optional>
#include <string>
#include <vector>

namespace projectiond::config {

using namespace std::chrono_literals;

enum class OnError { stop, skip };

// Where something was written: 1-based line and column, 0 when unknown.
struct SourceMark {
    int line = 0;
    int column = 0;
};

// Settings under `defaults:` that a projection may override.
struct ProcessingSettings {
    int batch_size = 100;
    Duration poll_interval = 1s;
    OnError on_error = OnError::stop;
    int max_retries = 5;
    bool operator==(const ProcessingSettings&) const = default;
};

struct Handler {
    std::string event_type; // or "*" for any
    std::vector<RewrittenSql> statements;
    SourceMark mark; // where its SQL is written; not part of equality
    bool operator==(const Handler& other) const {
        return event_type == other.event_type && statements == other.statements;
    }
};

struct Projection {
    std::string name;
    std::vector<std::string> aggregate_types;  // empty: all
    std::vector<std::string> bounded_contexts; // empty: all
    std::vector<std::string> event_types;      // empty: all
    int partitions = 1;
    std::string setup;
    std::vector<Handler> handlers;
    bool log = false;
    ProcessingSettings settings;
    SourceMark mark;

    // The same work: a reload restarts a projection only when this changes.
    bool same_work(const Projection& other) const;
};

struct DatabaseSettings {
    std::string url; // empty: libpq defaults and the PG* environment
    std::optional<std::string> password_file;
    Duration connect_timeout = 10s;
    Duration statement_timeout = 30s;
    Duration lock_timeout = 10s;
    bool operator==(const DatabaseSettings&) const = default;
};

struct DaemonSettings {
    Duration shutdown_timeout = 60s; // how long a drain may take before in-flight batches are abandoned
    bool operator==(const DaemonSettings&) const = default;
};

struct Config {
    std::string source; // file name, for messages
    DatabaseSettings database;
    DaemonSettings daemon;
    ProcessingSettings defaults;
    std::vector<Projection> projections;

    const Projection* find(std::string_view name) const;
};

} // namespace projectiond::config
