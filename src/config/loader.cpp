#include "config/loader.hpp"

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

constexpr std::string_view top_level_keys[] = {"database", "daemon", "defaults", "projections"};
constexpr std::string_view database_keys[] = {"url", "password_file", "connect_timeout", "statement_timeout",
                                              "lock_timeout"};
constexpr std::string_view daemon_keys[] = {"shutdown_timeout"};
constexpr std::string_view settings_keys[] = {"batch_size", "poll_interval", "on_error", "max_retries"};
constexpr std::string_view projection_keys[] = {"name",       "aggregate_types", "bounded_contexts", "event_types",
                                                "partitions", "setup",           "handlers",         "log",
                                                "batch_size", "poll_interval",   "on_error",         "max_retries"};

// Statements that would end the batch's transaction early and break the
// all-or-nothing promise of a batch.
constexpr std::string_view transaction_control[] = {"BEGIN", "START",     "COMMIT",  "END",     "ROLLBACK",
                                                    "ABORT", "SAVEPOINT", "RELEASE", "PREPARE", "VACUUM"};

constexpr int max_batch_size = 100000;
constexpr int max_partitions = 1024;

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
            throw ConfigError(
                fmt::format("{}:{}:{}: YAML syntax error: {}", source_, e.mark.line + 1, e.mark.column + 1, e.msg));
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
            throw ConfigError(fmt::format("{}", fmt::join(errors_, "\n")));
        }
        return config;
    }

private:
    SourceMark position(const YAML::Mark& mark) const {
        return mark.is_null() ? SourceMark{} : SourceMark{mark.line + 1, mark.column + 1};
    }

    void error(const SourceMark& at, const std::string& message) {
        if (at.line > 0) {
            errors_.push_back(fmt::format("{}:{}:{}: {}", source_, at.line, at.column, message));
        } else {
            errors_.push_back(fmt::format("{}: {}", source_, message));
        }
    }

    void error(const YAML::Mark& mark, const std::string& message) { error(position(mark), message); }

    // Where byte `offset` of a scalar's value is in the file. Block scalars
    // (| and >) start on the line after their indicator, at its indentation.
    SourceMark position_in_scalar(const YAML::Node& node, std::size_t offset) const {
        const SourceMark start = position(node.Mark());
        if (start.line == 0 || start.line > static_cast<int>(lines_.size())) {
            return start;
        }
        const std::string_view line = lines_[static_cast<std::size_t>(start.line - 1)];
        const char first = static_cast<std::size_t>(start.column - 1) < line.size()
                               ? line[static_cast<std::size_t>(start.column - 1)]
                               : '\0';
        const std::string value = node.Scalar();
        const std::size_t before = std::min(offset, value.size());
        const auto line_in_value = std::count(value.begin(), value.begin() + static_cast<long>(before), '\n');
        const std::size_t line_start = value.rfind('\n', before == 0 ? 0 : before - 1);
        const std::size_t column_in_value =
            line_start == std::string::npos || before == 0 ? before : before - line_start - 1;
        if (first == '|' || first == '>') {
            int content_line = start.line + 1;
            while (content_line <= static_cast<int>(lines_.size()) &&
                   lines_[static_cast<std::size_t>(content_line - 1)].find_first_not_of(" \t") ==
                       std::string_view::npos) {
                ++content_line;
            }
            const std::string_view content = content_line <= static_cast<int>(lines_.size())
                                                 ? lines_[static_cast<std::size_t>(content_line - 1)]
                                                 : std::string_view();
            const std::size_t indent = content.find_first_not_of(' ');
            return {content_line + static_cast<int>(line_in_value),
                    static_cast<int>((indent == std::string_view::npos ? 0 : indent) + column_in_value) + 1};
        }
        const int quote = first == '"' || first == '\'' ? 1 : 0;
        if (line_in_value == 0) {
            return {start.line, start.column + quote + static_cast<int>(column_in_value)};
        }
        return {start.line + static_cast<int>(line_in_value), static_cast<int>(column_in_value) + 1};
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
                error(key.Mark(), fmt::format("unknown key '{}' {}{}", name, where, did_you_mean(name, allowed)));
            }
        }
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

    std::optional<Duration> duration(const YAML::Node& node, std::string_view key, Duration min) {
        const auto text = scalar(node, key, "a duration such as 500ms, 5s or 2m");
        if (!text) {
            return std::nullopt;
        }
        const auto value = parse_duration(*text);
        if (!value) {
            error(node.Mark(), fmt::format("`{}` must be a duration such as 500ms, 5s or 2m, not '{}'", key, *text));
            return std::nullopt;
        }
        if (*value < min) {
            error(node.Mark(), fmt::format("`{}` must be at least {}, not '{}'", key, format_duration(min), *text));
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
            database.connect_timeout = duration(value, "connect_timeout", 1s).value_or(database.connect_timeout);
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
    }

    void read_settings(const YAML::Node& node, ProcessingSettings& settings) {
        if (const YAML::Node value = node["batch_size"]) {
            settings.batch_size = integer(value, "batch_size", 1, max_batch_size).value_or(settings.batch_size);
        }
        if (const YAML::Node value = node["poll_interval"]) {
            settings.poll_interval = duration(value, "poll_interval", 10ms).value_or(settings.poll_interval);
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
    }

    void read_projections(const YAML::Node& node, Config& config) {
        if (!node.IsSequence()) {
            error(node.Mark(), "`projections` must be a list, each item starting with `- name: ...`");
            return;
        }
        std::map<std::string, SourceMark> names;
        for (const auto& item : node) {
            Projection projection;
            projection.settings = config.defaults;
            projection.mark = position(item.Mark());
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
        }
        if (const YAML::Node value = node["setup"]) {
            projection.setup = string(value, "setup").value_or("");
        }
        if (const YAML::Node value = node["log"]) {
            projection.log = boolean(value, "log").value_or(false);
        }
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
            if (body.IsSequence()) {
                for (const auto& statement : body) {
                    read_statements(statement, handler);
                }
            } else {
                read_statements(body, handler);
            }
            if (handler.statements.empty()) {
                error(body.Mark(), fmt::format("the handler for '{}' has no SQL statement", handler.event_type));
            }
            projection.handlers.push_back(std::move(handler));
        }
    }

    void read_statements(const YAML::Node& node, Handler& handler) {
        const auto sql = scalar(node, handler.event_type, "SQL text");
        if (!sql) {
            return;
        }
        try {
            for (auto& statement : rewrite_named_parameters(*sql)) {
                const std::string keyword = leading_keyword(statement.sql);
                if (std::find(std::begin(transaction_control), std::end(transaction_control), keyword) !=
                    std::end(transaction_control)) {
                    error(position_in_scalar(node, sql->find_first_not_of(" \t\r\n")),
                          fmt::format("the handler for '{}' runs {}: handlers run inside the batch's "
                                      "transaction, which projectiond commits itself; remove it",
                                      handler.event_type, keyword));
                    continue;
                }
                handler.statements.push_back(std::move(statement));
            }
        } catch (const SqlParameterError& e) {
            error(position_in_scalar(node, e.offset()),
                  fmt::format("in the handler for '{}': {}", handler.event_type, e.what()));
        }
    }

    std::string_view text_;
    std::string source_;
    std::vector<std::string_view> lines_;
    std::vector<std::string> errors_;
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
