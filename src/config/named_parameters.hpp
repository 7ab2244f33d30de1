#pragma once
// Turns handler SQL with named parameters (:aggregate_id, :payload.a.b) into
// SQL with positional parameters ($1, $2, ...) that PostgreSQL binds, so event
// data never becomes SQL text.
//
// The scanner knows enough SQL lexis not to be fooled: '::' casts, string
// literals ('...', E'...'), quoted identifiers, -- and nested /* */ comments,
// and dollar-quoted strings ($$...$$, $tag$...$tag$).

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

struct RewrittenSql {
    std::string sql;                     // with $1..$n
    std::vector<std::string> parameters; // parameters[i] is bound as $(i+1)
    bool operator==(const RewrittenSql&) const = default;
};

// What is wrong and at which byte of the input.
class SqlParameterError : public std::runtime_error {
public:
    SqlParameterError(std::size_t offset, const std::string& message) : std::runtime_error(message), offset_(offset) {}
    std::size_t offset() const noexcept { return offset_; }

private:
    std::size_t offset_;
};

// Splits `sql` at top-level semicolons into statements (empty ones, holding only
// blanks and comments, are dropped) and rewrites each one's named parameters.
// Throws SqlParameterError.
std::vector<RewrittenSql> rewrite_named_parameters(std::string_view sql);

// The first keyword of a statement, upper-cased, skipping blanks and comments.
std::string leading_keyword(std::string_view sql);

// True for a parameter name the runner can bind (see event_parameters).
bool is_event_parameter(std::string_view name);

// "payload.a.b" -> {"payload", "a.b"}; "aggregate_id" -> {"aggregate_id", ""}.
std::pair<std::string_view, std::string_view> split_json_path(std::string_view name);

} // namespace projectiond::config
