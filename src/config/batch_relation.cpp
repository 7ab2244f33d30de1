#include "config/batch_relation.hpp"

#include <cctype>

#include <fmt/format.h>

namespace projectiond::config {

namespace {

// The offset of the first byte after blanks and comments from `pos`.
std::size_t skip_blanks_and_comments(std::string_view sql, std::size_t pos) {
    while (pos < sql.size()) {
        if (std::isspace(static_cast<unsigned char>(sql[pos]))) {
            ++pos;
        } else if (sql.substr(pos, 2) == "--") {
            const std::size_t end = sql.find('\n', pos);
            pos = end == std::string_view::npos ? sql.size() : end + 1;
        } else if (sql.substr(pos, 2) == "/*") {
            int depth = 0;
            do {
                if (pos >= sql.size()) {
                    return sql.size();
                }
                if (sql.substr(pos, 2) == "/*") {
                    ++depth;
                    pos += 2;
                } else if (sql.substr(pos, 2) == "*/") {
                    --depth;
                    pos += 2;
                } else {
                    ++pos;
                }
            } while (depth > 0);
        } else {
            break;
        }
    }
    return pos;
}

// The end of the keyword `keyword` (upper case) at `pos`, or npos when the
// word there is another one.
std::size_t keyword_end(std::string_view sql, std::size_t pos, std::string_view keyword) {
    std::size_t end = pos;
    while (end < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[end])) || sql[end] == '_')) {
        ++end;
    }
    if (end - pos != keyword.size()) {
        return std::string_view::npos;
    }
    for (std::size_t i = 0; i < keyword.size(); ++i) {
        if (std::toupper(static_cast<unsigned char>(sql[pos + i])) != keyword[i]) {
            return std::string_view::npos;
        }
    }
    return end;
}

} // namespace

std::optional<std::size_t> BatchRelation::statement_offset(std::size_t offset) const {
    if (offset < inserted_at) {
        return offset;
    }
    if (offset < inserted_at + inserted_length) {
        return std::nullopt;
    }
    return offset - inserted_length;
}

BatchRelation splice_batch_relation(std::string_view sql, std::string_view batch_select) {
    const std::size_t start = skip_blanks_and_comments(sql, 0);
    std::size_t after_with = keyword_end(sql, start, "WITH");
    if (after_with != std::string_view::npos) {
        const std::size_t next = skip_blanks_and_comments(sql, after_with);
        const std::size_t after_recursive = keyword_end(sql, next, "RECURSIVE");
        if (after_recursive != std::string_view::npos) {
            after_with = after_recursive;
        }
        // WITH [RECURSIVE] batch AS MATERIALIZED (...), <the statement's own list>
        const std::string definition = fmt::format(" batch AS MATERIALIZED ({}),", batch_select);
        std::string out;
        out.reserve(sql.size() + definition.size());
        out.append(sql.substr(0, after_with)).append(definition).append(sql.substr(after_with));
        return {std::move(out), after_with, definition.size()};
    }
    const std::string definition = fmt::format("WITH batch AS MATERIALIZED ({}) ", batch_select);
    return {definition + std::string(sql), 0, definition.size()};
}

std::string with_batch_relation(std::string_view sql, std::string_view batch_select) {
    return splice_batch_relation(sql, batch_select).sql;
}

} // namespace projectiond::config
