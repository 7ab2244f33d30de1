#include "config/loader.hpp"

#include "config/listen_address.hpp"
#include "config/scalar_positions.hpp"
#include "config/spelling.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace projectiond::config {

namespace {

constexpr std::string_view top_level_keys[] = {"database", "daemon", "http", "health", "defaults", "projections"};
constexpr std::string_view database_keys[] = {"url", "password_file", "connect_timeout", "statement_timeout",
                                              "lock_timeout"};
constexpr std::string_view daemon_keys[] = {"shutdown_timeout", "max_connections", "lease_timeout", "log_interval",
                                            "watermark_warn_after"};
constexpr std::string_view http_keys[] = {"listen"};
constexpr std::string_view health_keys[] = {"max_lag"};
constexpr std::string_view settings_keys[] = {"batch_size", "poll_interval", "on_error", "max_retries", "exec_timeout"};
constexpr std::string_view projection_keys[] = {
    "name",   "aggregate_types", "bounded_contexts", "event_types",   "partitions", "setup",       "handlers",    "log",
    "schema", "version",         "batch_size",       "poll_interval", "on_error",   "max_retries", "exec_timeout"};
// A handler written as a mapping names its kind; plain SQL needs no key.
constexpr std::string_view handler_kinds[] = {"batch", "exec", "plugin"};

// Statements that would end the batch's transaction early and break the
// all-or-nothing promise of a batch.
constexpr std::string_view transaction_control[] = {"BEGIN", "START",     "COMMIT",  "END",     "ROLLBACK",
                                                    "ABORT", "SAVEPOINT", "RELEASE", "PREPARE", "VACUUM"};

constexpr int max_batch_size = 100000;
constexpr int max_partitions = 1024;
constexpr int max_version = 1000000;
// PostgreSQL refuses statement_timeout and lock_timeout above INT_MAX
// milliseconds (at every connect, so forever), and `now() + d` or a steady
// clock deadline overflows long before a 64-bit count of milliseconds does.
constexpr Duration max_duration{2147483647};
// PostgreSQL's limit for a name (NAMEDATALEN - 1 bytes).
constexpr std::size_t max_identifier_length = 63;

class Loader {
public:
    Loader(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {
        std::size_t start = 0;
        for (;;) {
            const std::size_t end = text_.find('\n', start);
            lines_.push_back(text_.substr(start, end == std::string_view::npos ? end : end - start));
            if (end == std::string_view::npos) {
                break;
            }
            start = end + 1;
        }
    }

    Config load() {
        Config config;
        config.source = source_;
        YAML::Node root;
        try {
            root = YAML::Load(std::string(text_));
        } catch (const YAML::ParserException& e) {
            throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}{}", source_, e.mark.line + 1,
                                          e.mark.column + 1, e.msg, syntax_hint(e.mark)));
        }
        if (root.IsNull()) {
            error(root.Mark(), "the configuration is empty; it needs at least a `projections:` list");
        } else if (!root.IsMap()) {
            error(root.Mark(), "the configuration must be a mapping with `database:`, `defaults:` and "
                               "`projections:`");
        } else {
            check_keys(root, top_level_keys, "at the top level");
            if (const YAML::Node node = root["database"]) {
                read_database(node, config.database);
            }
            if (const YAML::Node node = root["daemon"]) {
                read_daemon(node, config.daemon);
            }
            if (const YAML::Node node = root["http"]) {
                read_http(node, config.http);
            }
            if (const YAML::Node node = root["health"]) {
                read_health(node, config.health);
            }
            if (const YAML::Node node = root["defaults"]) {
                if (expect_map(node, "defaults")) {
                    check_keys(node, settings_keys, "in defaults");
                    read_settings(node, config.defaults);
                }
            }
            if (const YAML::Node node = root["projections"]) {
                read_projections(node, config);
            } else {
                error(root.Mark(), "no `projections:` list; declare at least one projection");
            }
        }
        if (!errors_.empty()) {
            sort_by_position(errors_);
            std::vector<std::string> messages;
            for (const Located& located : errors_) {
                messages.push_back(format_located(source_, located));
            }
            throw ConfigError(fmt::format("{}", fmt::join(messages, "\n")));
        }
        return config;
    }

private:
    SourceMark position(const YAML::Mark& mark) const {
        return mark.is_null() ? SourceMark{} : SourceMark{mark.line + 1, mark.column + 1};
    }

    void error(const SourceMark& at, const std::string& message) { errors_.push_back({at, message}); }

    void error(const YAML::Mark& mark, const std::string& message) { error(position(mark), message); }

    ScalarPositions positions_in(const YAML::Node& scalar) const {
        return ScalarPositions(lines_, position(scalar.Mark()), scalar.Scalar());
    }

    // Where `key` of a mapping is written (rather than its value).
    SourceMark key_position(const YAML::Node& map, std::string_view key) const {
        for (const auto& entry : map) {
            if (entry.first.IsScalar() && entry.first.Scalar() == key) {
                return position(entry.first.Mark());
            }
        }
        return position(map.Mark());
    }

    // A YAML syntax error is often a value YAML reads as something else;
    // say so for the one a configuration invites: a bracketed IPv6 address.
    std::string syntax_hint(const YAML::Mark& mark) const {
        if (mark.line < 0 || static_cast<std::size_t>(mark.line) >= lines_.size()) {
            return {};
        }
        const std::string_view line = lines_[static_cast<std::size_t>(mark.line)];
        const std::size_t listen = line.find("listen:");
        if (listen != std::string_view::npos && line.find('[', listen) != std::string_view::npos) {
            return " (YAML reads [...] as a list: write a bracketed IPv6 address in quotes, e.g. "
                   "listen: \"[::1]:9543\")";
        }
        return {};
    }

    bool expect_map(const YAML::Node& node, std::string_view what) {
        if (!node.IsMap()) {
            error(node.Mark(), fmt::format("`{}` must be a mapping of keys to values", what));
            return false;
        }
        return true;
    }

    void check_keys(const YAML::Node& map, std::span<const std::string_view> allowed, std::string_view where) {
        std::set<std::string> seen;
        for (const auto& entry : map) {
            const YAML::Node& key = entry.first;
            if (!key.IsScalar()) {
                error(key.Mark(), fmt::format("keys {} must be plain names", where));
                continue;
            }
            const std::string& name = key.Scalar();
            if (!seen.insert(name).second) {
                error(key.Mark(), fmt::format("duplicate key '{}' {}", name, where));
            }
            if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
                const std::string suggestion = did_you_mean(name, allowed);
                error(key.Mark(), fmt::format("unknown key '{}' {}{}", name, where,
                                              suggestion.empty() ? belongs_elsewhere(name, allowed) : suggestion));
            }
        }
    }

    // " (it belongs under `database:`)" for a key of another section.
    static std::string belongs_elsewhere(std::string_view name, std::span<const std::string_view> allowed) {
        const std::pair<std::span<const std::string_view>, std::string_view> sections[] = {
            {database_keys, "under `database:`"},
            {daemon_keys, "under `daemon:`"},
            {http_keys, "under `http:`"},
            {health_keys, "under `health:`"},
            {settings_keys, "under `defaults:` or in a projection"},
            {projection_keys, "in a projection"},
            {top_level_keys, "at the top level"},
        };
        for (const auto& [keys, section] : sections) {
            const bool here = keys.data() == allowed.data();
            if (!here && std::find(keys.begin(), keys.end(), name) != keys.end()) {
                return fmt::format(" (it belongs {})", section);
            }
        }
        return {};
    }

    std::optional<std::string> scalar(const YAML::Node& node, std::string_view key, std::string_view kind) {
        if (node.IsNull()) {
            error(node.Mark(), fmt::format("`{}` needs a value ({})", key, kind));
            return std::nullopt;
        }
        if (!node.IsScalar()) {
            error(node.Mark(),
                  fmt::format("`{}` must be {}, not a {}", key, kind, node.IsSequence() ? "list" : "mapping"));
            return std::nullopt;
        }
        return node.Scalar();
    }

    std::optional<std::string> string(const YAML::Node& node, std::string_view key) {
        return scalar(node, key, "a string");
    }

    std::optional<int> integer(const YAML::Node& node, std::string_view key, int min, int max) {
        const auto text = scalar(node, key, fmt::format("a whole number from {} to {}", min, max));
        if (!text) {
            return std::nullopt;
        }
        int value = 0;
        if (!YAML::convert<int>::decode(node, value) || value < min || value > max) {
            error(node.Mark(),
                  fmt::format("`{}` must be a whole number from {} to {}, not '{}'", key, min, max, *text));
            return std::nullopt;
        }
        return value;
    }

    std::optional<bool> boolean(const YAML::Node& node, std::string_view key) {
        const auto text = scalar(node, key, "true or false");
        if (!text) {
            return std::nullopt;
        }
        bool value = false;
        if (!YAML::convert<bool>::decode(node, value)) {
            error(node.Mark(), fmt::format("`{}` must be true or false, not '{}'", key, *text));
            return std::nullopt;
        }
        return value;
    }

    std::optional<Duration> duration(const YAML::Node& node, std::string_view key, Duration min,
                                     Duration max = max_duration) {
        const auto text = scalar(node, key, "a duration such as 500ms, 5s or 2m");
        if (!text) {
            return std::nullopt;
        }
        const auto value = parse_duration(*text);
        // Digits and a unit, too many to count in milliseconds, is too long rather than wrong.
        const std::size_t unit_start = text->find_first_not_of("0123456789");
        const std::string_view unit =
            unit_start == std::string::npos ? std::string_view() : std::string_view(*text).substr(unit_start);
        const bool well_formed = unit_start > 0 && (unit == "ms" || unit == "s" || unit == "m");
        if (!value && !well_formed) {
            error(node.Mark(), fmt::format("`{}` must be a duration such as 500ms, 5s or 2m, not '{}'", key, *text));
            return std::nullopt;
        }
        if (!value || *value > max) {
            error(node.Mark(), max == max_duration ? fmt::format("`{}` must be at most {} (about 24 days{}), not '{}'",
                                                                 key, format_duration(max),
                                                                 key == "statement_timeout" || key == "lock_timeout"
                                                                     ? ", the longest timeout PostgreSQL accepts"
                                                                     : "",
                                                                 *text)
                                                   : fmt::format("`{}` must be from {} to {}, not '{}'", key,
                                                                 format_duration(min), format_duration(max), *text));
            return std::nullopt;
        }
        if (*value < min) {
            error(node.Mark(), max == max_duration
                                   ? fmt::format("`{}` must be at least {}, not '{}'", key, format_duration(min), *text)
                                   : fmt::format("`{}` must be from {} to {}, not '{}'", key, format_duration(min),
                                                 format_duration(max), *text));
            return std::nullopt;
        }
        return value;
    }

    // A string or a list of strings.
    std::vector<std::string> names(const YAML::Node& node, std::string_view key) {
        std::vector<std::string> out;
        if (node.IsScalar()) {
            out.push_back(node.Scalar());
        } else if (node.IsSequence()) {
            for (const auto& item : node) {
                if (auto value = string(item, key)) {
                    out.push_back(std::move(*value));
                }
            }
        } else {
            error(node.Mark(), fmt::format("`{}` must be a name or a list of names", key));
        }
        for (const auto& name : out) {
            if (name.empty()) {
                error(node.Mark(), fmt::format("`{}` contains an empty name", key));
            }
        }
        return out;
    }

    void read_database(const YAML::Node& node, DatabaseSettings& database) {
        if (!expect_map(node, "database")) {
            return;
        }
        check_keys(node, database_keys, "in database");
        if (const YAML::Node url = node["url"]) {
            database.url = string(url, "url").value_or("");
        }
        if (const YAML::Node file = node["password_file"]) {
            database.password_file = string(file, "password_file");
            if (database.password_file && !database.password_file->starts_with('/')) {
                error(file.Mark(), "`password_file` must be an absolute path");
            }
        }
        if (const YAML::Node value = node["connect_timeout"]) {
            database.connect_timeout = duration(value, "connect_timeout", 1s, 10min).value_or(database.connect_timeout);
        }
        if (const YAML::Node value = node["statement_timeout"]) {
            database.statement_timeout = duration(value, "statement_timeout", 0ms).value_or(database.statement_timeout);
        }
        if (const YAML::Node value = node["lock_timeout"]) {
            database.lock_timeout = duration(value, "lock_timeout", 0ms).value_or(database.lock_timeout);
        }
    }

    void read_daemon(const YAML::Node& node, DaemonSettings& daemon) {
        if (!expect_map(node, "daemon")) {
            return;
        }
        check_keys(node, daemon_keys, "in daemon");
        if (const YAML::Node value = node["shutdown_timeout"]) {
            daemon.shutdown_timeout = duration(value, "shutdown_timeout", 1s).value_or(daemon.shutdown_timeout);
        }
        if (const YAML::Node value = node["max_connections"]) {
            // One is never enough: runners share what the daemon's own work leaves them.
            daemon.max_connections = integer(value, "max_connections", 2, 1000).value_or(daemon.max_connections);
        }
        if (const YAML::Node value = node["lease_timeout"]) {
            // Long enough to ride out a slow renewal, short enough that a
            // dead daemon's partitions move on within minutes.
            daemon.lease_timeout = duration(value, "lease_timeout", 3s, 10min).value_or(daemon.lease_timeout);
        }
        if (const YAML::Node value = node["log_interval"]) {
            daemon.log_interval = duration(value, "log_interval", 1s).value_or(daemon.log_interval);
        }
        if (const YAML::Node value = node["watermark_warn_after"]) {
            daemon.watermark_warn_after =
                duration(value, "watermark_warn_after", 1s).value_or(daemon.watermark_warn_after);
        }
    }

    void read_http(const YAML::Node& node, HttpSettings& http) {
        if (!expect_map(node, "http")) {
            return;
        }
        check_keys(node, http_keys, "in http");
        if (const YAML::Node value = node["listen"]) {
            if (value.IsSequence()) {
                error(value.Mark(), "`listen` must be HOST:PORT; YAML reads [...] as a list: write a bracketed "
                                    "IPv6 address in quotes, e.g. listen: \"[::1]:9543\"");
                return;
            }
            if (const auto text = string(value, "listen")) {
                try {
                    parse_listen_address(*text);
                    http.listen = *text;
                } catch (const std::invalid_argument& e) {
                    error(value.Mark(), fmt::format("`listen`: {}", e.what()));
                }
            }
        }
    }

    void read_health(const YAML::Node& node, HealthSettings& health) {
        if (!expect_map(node, "health")) {
            return;
        }
        check_keys(node, health_keys, "in health");
        if (const YAML::Node value = node["max_lag"]) {
            health.max_lag = duration(value, "max_lag", 1s);
        }
    }

    void read_settings(const YAML::Node& node, ProcessingSettings& settings) {
        if (const YAML::Node value = node["batch_size"]) {
            settings.batch_size = integer(value, "batch_size", 1, max_batch_size).value_or(settings.batch_size);
        }
        if (const YAML::Node value = node["poll_interval"]) {
            // Notifications wake a runner at once; this is only the fallback.
            settings.poll_interval = duration(value, "poll_interval", 10ms, 1h).value_or(settings.poll_interval);
        }
        if (const YAML::Node value = node["on_error"]) {
            if (const auto text = string(value, "on_error")) {
                if (*text == "stop") {
                    settings.on_error = OnError::stop;
                } else if (*text == "skip") {
                    settings.on_error = OnError::skip;
                } else {
                    error(value.Mark(), fmt::format("`on_error` must be stop or skip, not '{}'", *text));
                }
            }
        }
        if (const YAML::Node value = node["max_retries"]) {
            settings.max_retries = integer(value, "max_retries", 0, 1000).value_or(settings.max_retries);
        }
        if (const YAML::Node value = node["exec_timeout"]) {
            // A reply to one event; a handler slower than an hour per event is stuck.
            settings.exec_timeout = duration(value, "exec_timeout", 100ms, 1h).value_or(settings.exec_timeout);
        }
    }

    // The projection as a configuration of its own, its inherited settings
    // written out: what a generation was built from (config.hpp).
    static std::string definition_of(const YAML::Node& item, const Projection& projection) {
        YAML::Node own = YAML::Clone(item);
        own["batch_size"] = projection.settings.batch_size;
        own["poll_interval"] = format_duration(projection.settings.poll_interval);
        own["on_error"] = projection.settings.on_error == OnError::skip ? "skip" : "stop";
        own["max_retries"] = projection.settings.max_retries;
        own["exec_timeout"] = format_duration(projection.settings.exec_timeout);
        YAML::Node root;
        root["projections"].push_back(own);
        YAML::Emitter out;
        out << root;
        return out.c_str();
    }

    void read_projections(const YAML::Node& node, Config& config) {
        if (!node.IsSequence()) {
            error(node.Mark(), "`projections` must be a list, each item starting with `- name: ...`");
            return;
        }
        std::map<std::string, SourceMark> names;
        std::map<std::string, std::string> schemas; // schema -> the projection that has it
        for (const auto& item : node) {
            Projection projection;
            projection.settings = config.defaults;
            projection.mark = position(item.Mark());
            projection.partitions_mark = projection.mark;
            if (!expect_map(item, "each projection")) {
                continue;
            }
            check_keys(item, projection_keys, "in a projection");
            read_projection(item, projection);
            if (projection.name.empty()) {
                continue;
            }
            const auto [previous, inserted] = names.emplace(projection.name, projection.mark);
            if (!inserted) {
                error(position(item["name"].Mark()),
                      fmt::format("duplicate projection name '{}' (first declared at line {}); names must "
                                  "be unique because checkpoints are kept by name",
                                  projection.name, previous->second.line));
                continue;
            }
            if (projection.schema) {
                const auto [owner, fresh] = schemas.emplace(*projection.schema, projection.name);
                if (!fresh) {
                    error(position(item["schema"].Mark()),
                          fmt::format("schema '{}' is already the schema of projection '{}'; each projection "
                                      "needs its own, since a rebuild renames it",
                                      *projection.schema, owner->second));
                }
            }
            projection.definition = definition_of(item, projection);
            config.projections.push_back(std::move(projection));
        }
        if (node.size() == 0) {
            error(node.Mark(), "`projections` is empty; declare at least one projection");
        }
    }

    void read_projection(const YAML::Node& node, Projection& projection) {
        if (const YAML::Node name = node["name"]) {
            if (auto value = string(name, "name")) {
                const bool valid =
                    !value->empty() && value->size() <= 63 && std::all_of(value->begin(), value->end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
                    });
                if (valid) {
                    projection.name = std::move(*value);
                } else {
                    error(name.Mark(), fmt::format("projection name '{}' must be 1 to 63 letters, digits, "
                                                   "'_', '-' or '.'",
                                                   *value));
                }
            }
        } else {
            error(node.Mark(), "this projection has no `name`");
        }
        if (const YAML::Node value = node["aggregate_types"]) {
            projection.aggregate_types = names(value, "aggregate_types");
        }
        if (const YAML::Node value = node["bounded_contexts"]) {
            projection.bounded_contexts = names(value, "bounded_contexts");
        }
        if (const YAML::Node value = node["event_types"]) {
            projection.event_types = names(value, "event_types");
        }
        if (const YAML::Node value = node["partitions"]) {
            projection.partitions = integer(value, "partitions", 1, max_partitions).value_or(1);
            projection.partitions_mark = key_position(node, "partitions");
        }
        if (const YAML::Node value = node["setup"]) {
            projection.setup = string(value, "setup").value_or("");
            projection.setup_mark = key_position(node, "setup");
        }
        if (const YAML::Node value = node["log"]) {
            projection.log = boolean(value, "log").value_or(false);
        }
        read_version(node, projection);
        read_settings(node, projection.settings);
        if (const YAML::Node value = node["handlers"]) {
            read_handlers(value, projection);
        }
        if (projection.handlers.empty() && !projection.log && !projection.name.empty()) {
            error(node.Mark(), fmt::format("projection '{}' has no `handlers` and no `log: true`, so it "
                                           "would do nothing; add handlers",
                                           projection.name));
        }
    }

    // `schema:` and `version:` (SPEC section 9): a version is built blue/green
    // in schemas named after the projection's, so the name must be one
    // PostgreSQL takes unquoted and leave room for the suffixes.
    void read_version(const YAML::Node& node, Projection& projection) {
        const YAML::Node version = node["version"];
        if (version) {
            projection.version = integer(version, "version", 1, max_version).value_or(1);
        }
        const YAML::Node schema = node["schema"];
        if (!schema) {
            if (version) {
                error(key_position(node, "version"),
                      "`version` needs a `schema`: each version of a read model is built in a schema of its own "
                      "and swapped in when it has caught up; add `schema: NAME`, or remove `version`");
            }
            return;
        }
        const auto name = string(schema, "schema");
        if (!name) {
            return;
        }
        const bool identifier =
            !name->empty() && (std::islower(static_cast<unsigned char>(name->front())) || name->front() == '_') &&
            std::all_of(name->begin(), name->end(),
                        [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
        const std::string rebuild_name = fmt::format("{}_rebuild_v{}", *name, projection.version);
        if (!identifier) {
            error(schema.Mark(), fmt::format("`schema` must be a lower-case SQL name (a-z or '_', then a-z, 0-9 "
                                             "or '_'), not '{}'",
                                             *name));
        } else if (*name == "public" || *name == "information_schema" || name->starts_with("pg_")) {
            error(schema.Mark(),
                  fmt::format("`schema: {}` is {}; give the projection a schema of its own, which a rebuild can "
                              "replace",
                              *name, *name == "public" ? "where everything else lives" : "reserved by PostgreSQL"));
        } else if (rebuild_name.size() > max_identifier_length) {
            error(schema.Mark(),
                  fmt::format("`schema` '{}' is too long: a rebuild of version {} works in schema '{}', and "
                              "PostgreSQL names are at most {} bytes; use at most {} characters",
                              *name, projection.version, rebuild_name, max_identifier_length,
                              name->size() - (rebuild_name.size() - max_identifier_length)));
        } else {
            projection.schema = *name;
        }
    }

    void read_handlers(const YAML::Node& node, Projection& projection) {
        if (!expect_map(node, "handlers")) {
            return;
        }
        std::set<std::string> seen;
        for (const auto& entry : node) {
            const YAML::Node& key = entry.first;
            if (!key.IsScalar() || key.Scalar().empty()) {
                error(key.Mark(), "handler keys must be event type names, or \"*\" for any event type");
                continue;
            }
            Handler handler;
            handler.event_type = key.Scalar();
            if (!seen.insert(handler.event_type).second) {
                error(key.Mark(), fmt::format("duplicate handler for event type '{}'", handler.event_type));
                continue;
            }
            const YAML::Node& body = entry.second;
            handler.mark = position(body.Mark());
            if (body.IsMap()) {
                read_handler_of_kind(body, handler);
            } else {
                read_sql(body, handler, NamedParameters::allowed);
            }
            projection.handlers.push_back(std::move(handler));
        }
    }

    // `{batch: SQL}`, `{exec: [PROGRAM, ARG...]}` or `{plugin: /path.so}`.
    void read_handler_of_kind(const YAML::Node& body, Handler& handler) {
        std::vector<std::string_view> kinds;
        for (const auto& entry : body) {
            const YAML::Node& key = entry.first;
            const std::string name = key.IsScalar() ? key.Scalar() : std::string();
            const auto* kind = std::find(std::begin(handler_kinds), std::end(handler_kinds), name);
            if (kind != std::end(handler_kinds)) {
                if (!kinds.empty()) {
                    error(key.Mark(), fmt::format("the handler for '{}' is both `{}` and `{}`; a handler is one "
                                                  "of SQL, batch:, exec: or plugin:",
                                                  handler.event_type, kinds.front(), *kind));
                }
                kinds.push_back(*kind);
            } else if (name == "sql") {
                error(key.Mark(), fmt::format("the handler for '{}': SQL run for each event is written without a "
                                              "key (`{}: INSERT ...`); a key names another kind: batch:, exec: or "
                                              "plugin:",
                                              handler.event_type, handler.event_type));
            } else {
                error(key.Mark(), fmt::format("unknown kind of handler '{}' for '{}'{}; a handler is SQL, or a "
                                              "mapping with one of batch:, exec: or plugin:",
                                              name, handler.event_type, did_you_mean(name, handler_kinds)));
            }
        }
        if (body.size() == 0) {
            error(body.Mark(), fmt::format("the handler for '{}' is empty; write its SQL, or one of batch:, exec: "
                                           "or plugin:",
                                           handler.event_type));
        }
        if (kinds.size() != 1 || body.size() != 1) {
            return;
        }
        const YAML::Node value = body[std::string(kinds.front())];
        if (kinds.front() == "batch") {
            handler.kind = HandlerKind::batch;
            read_sql(value, handler, NamedParameters::refused);
        } else if (kinds.front() == "exec") {
            handler.kind = HandlerKind::exec;
            read_exec(value, handler);
        } else {
            handler.kind = HandlerKind::plugin;
            if (const auto path = string(value, "plugin")) {
                if (!path->starts_with('/')) {
                    error(value.Mark(), fmt::format("`plugin` must be an absolute path to a shared object, not "
                                                    "'{}'",
                                                    *path));
                } else {
                    handler.plugin_path = *path;
                }
            }
        }
    }

    void read_exec(const YAML::Node& value, Handler& handler) {
        if (value.IsScalar()) {
            handler.command.push_back(value.Scalar());
        } else if (value.IsSequence()) {
            for (const auto& item : value) {
                if (auto word = string(item, "exec")) {
                    handler.command.push_back(std::move(*word));
                }
            }
            if (value.size() == 0) {
                error(value.Mark(), "`exec` is an empty list; write [PROGRAM, ARG...]");
            }
        } else {
            error(value.Mark(), "`exec` must be a program or a list [PROGRAM, ARG...]");
        }
        if (std::find(handler.command.begin(), handler.command.end(), std::string()) != handler.command.end()) {
            error(value.Mark(), "`exec` has an empty program or argument");
            handler.command.clear();
        }
    }

    // SQL text or a list of them: the statements of a sql or batch handler.
    void read_sql(const YAML::Node& body, Handler& handler, NamedParameters named) {
        const std::size_t errors_before = errors_.size();
        if (body.IsSequence()) {
            for (const auto& statement : body) {
                read_statements(statement, handler, named);
            }
        } else {
            read_statements(body, handler, named);
        }
        // Without statements and without a reason already given (an unknown
        // parameter leaves no statement behind, and is the one thing to fix).
        if (handler.statements.empty() && errors_.size() == errors_before) {
            error(body.Mark(), fmt::format("the handler for '{}' has no SQL statement", handler.event_type));
        }
    }

    void read_statements(const YAML::Node& node, Handler& handler, NamedParameters named) {
        const auto sql = scalar(node, handler.event_type, "SQL text");
        if (!sql) {
            return;
        }
        const ScalarPositions positions = positions_in(node);
        try {
            for (auto& statement : rewrite_named_parameters(*sql, named)) {
                const std::string keyword = leading_keyword(statement.sql);
                if (std::find(std::begin(transaction_control), std::end(transaction_control), keyword) !=
                    std::end(transaction_control)) {
                    error(positions.at(statement.text_offset(statement.sql.find_first_not_of(" \t\r\n"))),
                          fmt::format("the handler for '{}' runs {}: handlers run inside the batch's "
                                      "transaction, which projectiond commits itself; remove it",
                                      handler.event_type, keyword));
                    continue;
                }
                handler.sources.push_back(source_map(statement, positions));
                handler.statements.push_back(std::move(statement));
            }
        } catch (const SqlParameterError& e) {
            error(positions.at(e.offset()),
                  fmt::format("in the {}handler for '{}': {}", named == NamedParameters::refused ? "batch " : "",
                              handler.event_type, e.what()));
        }
    }

    // Where each byte of a rewritten statement is written: an anchor wherever
    // the file position does not simply follow from the previous byte's.
    static SourceMap source_map(const RewrittenSql& statement, const ScalarPositions& positions) {
        SourceMap map;
        for (std::size_t offset = 0; offset <= statement.sql.size(); ++offset) {
            const SourceMark mark = positions.at(statement.text_offset(offset));
            if (map.empty() || map.at(offset) != mark) {
                map.add(offset, mark);
            }
        }
        return map;
    }

    std::string_view text_;
    std::string source_;
    std::vector<std::string_view> lines_;
    std::vector<Located> errors_;
};

} // namespace

bool Projection::same_work(const Projection& other) const {
    return name == other.name && aggregate_types == other.aggregate_types &&
           bounded_contexts == other.bounded_contexts && event_types == other.event_types &&
           partitions == other.partitions && setup == other.setup && handlers == other.handlers && log == other.log &&
           settings == other.settings && schema == other.schema && version == other.version;
}

const Projection* Config::find(std::string_view name) const {
    for (const Projection& projection : projections) {
        if (projection.name == name) {
            return &projection;
        }
    }
    return nullptr;
}

Config parse_config(std::string_view text, const std::string& source) {
    return Loader(text, source).load();
}

Config load_config_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        const int error = errno;
        throw ConfigError(fmt::format("{}: cannot read the configuration: {}; create it, or name another "
                                      "file with -c/--config or $PROJECTIOND_CONFIG",
                                      path, std::strerror(error)));
    }
    std::ostringstream text;
    text << file.rdbuf();
    return parse_config(text.str(), path);
}

} // namespace projectiond::config
