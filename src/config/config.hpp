#pragma once
// The configuration as plain, validated values (see config/projectiond.yaml for
// the documented file format).

#include "config/duration.hpp"
#include "config/named_parameters.hpp"
#include "config/source_map.hpp"

#include <optional>
#include <string>
#include <vector>

namespace projectiond::config {

using namespace std::chrono_literals;

enum class OnError { stop, skip };

// Settings under `defaults:` that a projection may override.
struct ProcessingSettings {
    int batch_size = 100;
    Duration poll_interval = 1s; // how often a runner looks for new events when nothing wakes it
    OnError on_error = OnError::stop;
    int max_retries = 5;
    Duration exec_timeout = 30s; // an `exec` handler's reply to one event
    bool operator==(const ProcessingSettings&) const = default;
};

enum class HandlerKind {
    sql,    // statements run once per event, with named parameters
    batch,  // statements run once per run of consecutive matching events, over the relation `batch`
    exec,   // a long-lived child process speaking JSON lines (SPEC section 11)
    plugin, // a shared object with the C ABI of <projectiond/handler.h>
};

struct Handler {
    std::string event_type; // or "*" for any
    HandlerKind kind = HandlerKind::sql;
    std::vector<RewrittenSql> statements; // sql and batch (batch ones take no parameters)
    std::vector<std::string> command;     // exec: the program and its arguments
    std::string plugin_path;              // plugin: absolute path of the .so
    SourceMark mark;                      // where its body is written; not part of equality
    std::vector<SourceMap> sources;       // sources[i]: where statements[i] is written, by byte of its
                                          // SQL (for the errors PostgreSQL places); not part of equality
    bool operator==(const Handler& other) const {
        return event_type == other.event_type && kind == other.kind && statements == other.statements &&
               command == other.command && plugin_path == other.plugin_path;
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
    // Blue/green versions (SPEC section 9): the schema its setup and handlers
    // run in (search_path), and the version of the read model built there.
    std::optional<std::string> schema;
    int version = 1;
    SourceMark mark;
    SourceMark setup_mark;      // where `setup:` is written, for its SQL errors
    SourceMark partitions_mark; // where `partitions:` is written (the projection's mark when left out)
    // This projection alone as a configuration document, its inherited
    // settings written out: stored with a generation, so that the version
    // that is live keeps running as it was built while a new one is built
    // beside it (parse_config reads it back).
    std::string definition;

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
    Duration shutdown_timeout = 60s;     // how long a drain may take before in-flight batches are abandoned
    int max_connections = 10;            // PostgreSQL connections of this daemon, all uses included
    Duration lease_timeout = 20s;        // a daemon that has not renewed its lease for this long loses its partitions
    Duration log_interval = 10s;         // one progress line per projection at most this often (info level)
    Duration watermark_warn_after = 10s; // warn about a transaction holding committed events back after this
    bool operator==(const DaemonSettings&) const = default;
};

struct HttpSettings {
    std::optional<std::string> listen; // "HOST:PORT"; absent: no HTTP server
    bool operator==(const HttpSettings&) const = default;
};

struct HealthSettings {
    std::optional<Duration> max_lag; // /health is 503 when a projection's lag in seconds exceeds it
    bool operator==(const HealthSettings&) const = default;
};

struct Config {
    std::string source; // file name, for messages
    DatabaseSettings database;
    DaemonSettings daemon;
    HttpSettings http;
    HealthSettings health;
    ProcessingSettings defaults;
    std::vector<Projection> projections;

    const Projection* find(std::string_view name) const;
};

} // namespace projectiond::config
