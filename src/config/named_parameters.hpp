#pragma once
// Turns handler SQL with named parameters (:aggregate_id, :payload.a.b) into
// SQL with positional parameters ($1, $2, ...) that PostgreSQL binds, so event
// data never becomes SQL text.
//
// The scanner knows enough SQL lexis not to be fooled: '::' casts, string
// literals ('...', E'...'), quoted identifiers, -- and nested /* */ comments,
// and dollar-quoted strings ($$...$$, $tag$...$tag$).
//
// A JSON path segment that is not just letters, digits and '_' is written in
// double quotes, with "" for a quote inside: :payload."order-id",
// :payload.a."b.c".d. Parameters are kept in one spelling (quotes only where
// needed), so :payload."a" and :payload.a are one parameter.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace projectiond::config {

// The event fields a handler can name; `payload` and `metadata` also take a
// JSON path (:payload.customer.email), bound as text, NULL when absent.
inline constexpr std::string_view event_parameters[] = {
    "global_position", "aggregate_id", "aggregate_type", "aggregate_version", "bounded_context",
    "event_id",        "event_type",   "event_version",  "payload",           "metadata",
    "created_at",      "trace_id",     "correlation_id", "causation_id",
};

// Byte `sql_offset` of a rewritten statement, and what follows it up to the
// next origin, was copied from byte `text_offset` of the handler's text.
struct SqlOrigin {
    std::size_t sql_offset;
    std::size_t text_offset;
};

struct RewrittenSql {
    std::string sql;                     // with $1..$n
    std::vector<std::string> parameters; // parameters[i] is bound as $(i+1)
    std::vector<SqlOrigin> origins;      // by increasing sql_offset, the first at 0

    // Where byte `sql_offset` of `sql` came from in the handler's text (a
    // positional parameter maps into the name it replaced).
    std::size_t text_offset(std::size_t sql_offset) const;

    // Where it was written does not change what it does.
    bool operator==(const RewrittenSql& other) const { return sql == other.sql && parameters == other.parameters; }
};

// What is wrong and at which byte of the input.
class SqlParameterError : public std::runtime_error {
public:
    SqlParameterError(std::size_t offset, const std::string& message) : std::runtime_error(message), offset_(offset) {}
    std::size_t offset() const noexcept { return offset_; }

private:
    std::size_t offset_;
};

enum class NamedParameters {
    allowed, // per-event handlers
    refused, // batch handlers: the events are the relation `batch`, not parameters
};

// Splits `sql` at top-level semicolons into statements (empty ones, holding only
// blanks and comments, are dropped) and rewrites each one's named parameters.
// Throws SqlParameterError.
std::vector<RewrittenSql> rewrite_named_parameters(std::string_view sql,
                                                   NamedParameters named = NamedParameters::allowed);

// The first keyword of a statement, upper-cased, skipping blanks and comments.
std::string leading_keyword(std::string_view sql);

// True for a parameter name the runner can bind (see event_parameters).
bool is_event_parameter(std::string_view name);

// "payload.a.b" -> {"payload", "a.b"}; "aggregate_id" -> {"aggregate_id", ""}.
// The path keeps its quotes: see json_path_segments for the keys.
std::pair<std::string_view, std::string_view> split_json_path(std::string_view name);

// The JSON keys of a parameter's path, unquoted, to bind as a text[]:
// `payload.a."b.c"` -> {"a", "b.c"}; `payload` -> {}.
std::vector<std::string> json_path_segments(std::string_view parameter);

} // namespace projectiond::config
