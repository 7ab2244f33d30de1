#include "handlers/exec_protocol.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::handlers {

namespace {

using nlohmann::json;

void append_string(std::string& out, std::string_view value) {
    // Replace rather than throw on invalid UTF-8 (a SQL_ASCII database can
    // hold any bytes): the child gets a line it can parse either way.
    out += json(value).dump(-1, ' ', false, json::error_handler_t::replace);
}

void append_optional_string(std::string& out, const std::optional<std::string_view>& value) {
    if (value) {
        append_string(out, *value);
    } else {
        out += "null";
    }
}

// JSON text as a value of the line: spliced as PostgreSQL printed it when it
// is valid and on one line (jsonb's output always is), re-serialised otherwise.
void append_json(std::string& out, std::string_view text, std::string_view what) {
    if (!json::accept(text)) {
        throw std::invalid_argument(fmt::format("its {} is not valid JSON: {}", what, excerpt(text)));
    }
    if (text.find_first_of("\r\n") == std::string_view::npos) {
        out += text;
    } else {
        out += json::parse(text).dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

void append_key(std::string& out, std::string_view key) {
    out += ",\"";
    out += key;
    out += "\":";
}

// nlohmann's messages start with "[json.exception.parse_error.101] ": noise for an operator.
std::string without_exception_tag(const std::string& message) {
    if (!message.empty() && message.front() == '[') {
        if (const auto end = message.find("] "); end != std::string::npos) {
            return message.substr(end + 2);
        }
    }
    return message;
}

ParsedReply malformed(std::string message) {
    ParsedReply parsed;
    parsed.reply.error = std::move(message);
    parsed.protocol_error = true;
    return parsed;
}

std::optional<std::string> parameter_text(const json& value) {
    switch (value.type()) {
    case json::value_t::null:
        return std::nullopt;
    case json::value_t::string:
        return value.get<std::string>();
    default: // numbers, booleans, objects, arrays: their JSON text
        return value.dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

} // namespace

std::string excerpt(std::string_view text, std::size_t limit) {
    if (text.size() <= limit) {
        return std::string(text);
    }
    std::size_t cut = limit;
    // Back up over UTF-8 continuation bytes, so the cut is between characters.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
        --cut;
    }
    return std::string(text.substr(0, cut)) + "...";
}

void append_event_line(std::string& out, const Event& event) {
    out += "{\"global_position\":";
    out += std::to_string(event.global_position);
    append_key(out, "bounded_context");
    append_string(out, event.bounded_context);
    append_key(out, "aggregate_type");
    append_string(out, event.aggregate_type);
    append_key(out, "aggregate_id");
    append_string(out, event.aggregate_id);
    append_key(out, "aggregate_version");
    out += std::to_string(event.aggregate_version);
    append_key(out, "event_id");
    append_string(out, event.event_id);
    append_key(out, "event_type");
    append_string(out, event.event_type);
    append_key(out, "event_version");
    out += std::to_string(event.event_version);
    append_key(out, "payload");
    append_json(out, event.payload, "payload");
    append_key(out, "metadata");
    if (event.metadata) {
        append_json(out, *event.metadata, "metadata");
    } else {
        out += "null";
    }
    append_key(out, "trace_id");
    append_optional_string(out, event.trace_id);
    append_key(out, "correlation_id");
    append_optional_string(out, event.correlation_id);
    append_key(out, "causation_id");
    append_optional_string(out, event.causation_id);
    append_key(out, "created_at");
    append_string(out, event.created_at);
    out += "}\n";
}

ParsedReply parse_reply(std::string_view line) {
    json document;
    try {
        document = json::parse(line);
    } catch (const json::parse_error& error) {
        return malformed(
            fmt::format("the reply is not valid JSON ({}): {}", without_exception_tag(error.what()), excerpt(line)));
    }
    if (!document.is_object()) {
        return malformed(
            fmt::format("the reply must be a JSON object, not {}: {}", document.type_name(), excerpt(line)));
    }
    for (const auto& item : document.items()) {
        if (item.key() != "sql" && item.key() != "error") {
            return malformed(fmt::format("the reply has an unknown key '{}' (a reply has 'sql' or 'error'): {}",
                                         item.key(), excerpt(line)));
        }
    }

    ParsedReply parsed;
    if (const auto error = document.find("error"); error != document.end() && !error->is_null()) {
        // The program's own words, as it wrote them: they end up in the
        // dead letters and in `status`.
        parsed.reply.error = error->is_string() ? error->get<std::string>()
                                                : error->dump(-1, ' ', false, json::error_handler_t::replace);
        if (parsed.reply.error->empty()) {
            parsed.reply.error = "the exec handler reported an error without a message";
        }
        return parsed;
    }

    const auto sql = document.find("sql");
    if (sql == document.end() || sql->is_null()) {
        return parsed; // {}: nothing to do
    }
    if (!sql->is_array()) {
        return malformed(fmt::format("'sql' must be an array of statements, not {}", sql->type_name()));
    }
    parsed.reply.statements.reserve(sql->size());
    for (std::size_t index = 0; index < sql->size(); ++index) {
        const json& item = (*sql)[index];
        if (!item.is_object()) {
            return malformed(fmt::format("'sql[{}]' must be an object with 'statement' and 'params', not {}", index,
                                         item.type_name()));
        }
        Statement statement;
        for (const auto& field : item.items()) {
            if (field.key() == "statement") {
                if (!field.value().is_string()) {
                    return malformed(
                        fmt::format("'sql[{}].statement' must be a string, not {}", index, field.value().type_name()));
                }
                statement.sql = field.value().get<std::string>();
            } else if (field.key() == "params") {
                if (field.value().is_null()) {
                    continue;
                }
                if (!field.value().is_array()) {
                    return malformed(
                        fmt::format("'sql[{}].params' must be an array, not {}", index, field.value().type_name()));
                }
                statement.params.reserve(field.value().size());
                for (const json& value : field.value()) {
                    statement.params.push_back(parameter_text(value));
                }
            } else {
                return malformed(fmt::format("'sql[{}]' has an unknown key '{}' (a statement has 'statement' and "
                                             "'params')",
                                             index, field.key()));
            }
        }
        if (statement.sql.find_first_not_of(" \t\r\n") == std::string::npos) {
            return malformed(fmt::format("'sql[{}].statement' is missing or empty", index));
        }
        parsed.reply.statements.push_back(std::move(statement));
    }
    return parsed;
}

} // namespace projectiond::handlers
