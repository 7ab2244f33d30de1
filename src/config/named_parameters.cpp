#include "config/named_parameters.hpp"

#include "config/spelling.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace projectiond::config {

namespace {

bool is_identifier_start(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u >= 0x80;
}

bool is_identifier_char(char c) {
    return is_identifier_start(c) || (c >= '0' && c <= '9') || c == '$';
}

bool is_path_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Reads the double-quoted key starting at byte `open` (its opening quote),
// "" standing for a quote inside; returns the byte after the closing quote.
std::size_t read_quoted_key(std::string_view text, std::size_t open, std::string& key) {
    std::size_t pos = open + 1;
    for (;;) {
        if (pos >= text.size()) {
            throw SqlParameterError(open, "unterminated quoted JSON key; close it with \" (and write \"\" for a "
                                          "quote inside it)");
        }
        if (text[pos] == '"') {
            if (pos + 1 < text.size() && text[pos + 1] == '"') {
                key += '"';
                pos += 2;
                continue;
            }
            return pos + 1;
        }
        key += text[pos++];
    }
}

bool is_plain_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), is_path_char);
}

void append_json_key(std::string& name, std::string_view key) {
    name += '.';
    if (is_plain_key(key)) {
        name += key;
        return;
    }
    name += '"';
    for (const char c : key) {
        name += c;
        if (c == '"') {
            name += '"';
        }
    }
    name += '"';
}

class Scanner {
public:
    Scanner(std::string_view sql, NamedParameters named) : sql_(sql), named_(named) {}

    std::vector<RewrittenSql> run() {
        while (pos_ < sql_.size()) {
            const char c = sql_[pos_];
            const char next = pos_ + 1 < sql_.size() ? sql_[pos_ + 1] : '\0';
            const bool blank = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
            const bool comment = (c == '-' && next == '-') || (c == '/' && next == '*');
            if (!blank && !comment && c != ';') {
                significant_ = true;
            }
            if (c == ';') {
                ++pos_;
                finish_statement();
            } else if (c == '\'') {
                quoted('\'', false);
            } else if ((c == 'e' || c == 'E') && next == '\'' && !after_identifier()) {
                copy(1);
                quoted('\'', true);
            } else if (c == '"') {
                quoted('"', false);
            } else if (c == '-' && next == '-') {
                line_comment();
            } else if (c == '/' && next == '*') {
                block_comment();
            } else if (c == '$' && !after_identifier()) {
                dollar();
            } else if (c == ':' && next == ':') {
                copy(2); // a cast; the type name that follows is plain SQL
            } else if (c == ':' && is_identifier_start(next)) {
                parameter();
            } else if (is_identifier_start(c)) {
                identifier();
            } else {
                copy(1);
            }
        }
        finish_statement();
        return std::move(statements_);
    }

private:
    void finish_statement() {
        if (significant_) {
            trim(out_);
            statements_.push_back(std::move(out_));
        }
        out_ = RewrittenSql{};
        significant_ = false;
    }

    // Blanks around a statement are not part of it; its origins move with it.
    static void trim(RewrittenSql& statement) {
        std::string& sql = statement.sql;
        while (!sql.empty() && std::isspace(static_cast<unsigned char>(sql.back()))) {
            sql.pop_back();
        }
        std::erase_if(statement.origins, [&](const SqlOrigin& origin) { return origin.sql_offset >= sql.size(); });
        const std::size_t first = sql.find_first_not_of(" \t\r\n\f");
        if (first == 0 || first == std::string::npos) {
            return;
        }
        const std::size_t text = statement.text_offset(first);
        sql.erase(0, first);
        std::erase_if(statement.origins, [&](const SqlOrigin& origin) { return origin.sql_offset <= first; });
        for (SqlOrigin& origin : statement.origins) {
            origin.sql_offset -= first;
        }
        statement.origins.insert(statement.origins.begin(), SqlOrigin{0, text});
    }

    // Appends `text`, which starts at byte `from` of the input, noting where
    // it came from unless it simply continues the previous run.
    void append(std::string_view text, std::size_t from) {
        const auto& origins = out_.origins;
        if (origins.empty() || origins.back().text_offset + (out_.sql.size() - origins.back().sql_offset) != from) {
            out_.origins.push_back({out_.sql.size(), from});
        }
        out_.sql.append(text);
    }

    bool after_identifier() const { return pos_ > 0 && is_identifier_char(sql_[pos_ - 1]); }

    void copy(std::size_t count) {
        append(sql_.substr(pos_, count), pos_);
        pos_ += count;
    }

    void identifier() {
        const std::size_t start = pos_;
        while (pos_ < sql_.size() && is_identifier_char(sql_[pos_])) {
            ++pos_;
        }
        append(sql_.substr(start, pos_ - start), start);
    }

    // '...' or "..." with the quote doubled inside; E'...' also takes backslash escapes.
    void quoted(char quote, bool backslash_escapes) {
        const std::size_t start = pos_;
        ++pos_;
        for (;;) {
            if (pos_ >= sql_.size()) {
                throw SqlParameterError(start, quote == '"' ? "unterminated quoted identifier"
                                                            : "unterminated string literal");
            }
            const char c = sql_[pos_];
            if (backslash_escapes && c == '\\' && pos_ + 1 < sql_.size()) {
                pos_ += 2;
            } else if (c == quote) {
                if (pos_ + 1 < sql_.size() && sql_[pos_ + 1] == quote) {
                    pos_ += 2;
                } else {
                    ++pos_;
                    break;
                }
            } else {
                ++pos_;
            }
        }
        append(sql_.substr(start, pos_ - start), start);
    }

    void line_comment() {
        const std::size_t end = sql_.find('\n', pos_);
        copy((end == std::string_view::npos ? sql_.size() : end) - pos_);
    }

    void block_comment() {
        const std::size_t start = pos_;
        int depth = 0;
        do {
            if (pos_ + 1 >= sql_.size()) {
                throw SqlParameterError(start, "unterminated /* comment");
            }
            if (sql_[pos_] == '/' && sql_[pos_ + 1] == '*') {
                ++depth;
                pos_ += 2;
            } else if (sql_[pos_] == '*' && sql_[pos_ + 1] == '/') {
                --depth;
                pos_ += 2;
            } else {
                ++pos_;
            }
        } while (depth > 0);
        append(sql_.substr(start, pos_ - start), start);
    }

    // $1 (refused), $tag$...$tag$ or $$...$$ (copied whole).
    void dollar() {
        const std::size_t start = pos_;
        std::size_t end = pos_ + 1;
        if (end < sql_.size() && sql_[end] >= '0' && sql_[end] <= '9') {
            throw SqlParameterError(start, "positional parameters like $1 are not available in handlers; name the "
                                           "event field instead, e.g. :aggregate_id or :payload.email");
        }
        while (end < sql_.size() && sql_[end] != '$' && is_path_char(sql_[end])) {
            ++end;
        }
        if (end >= sql_.size() || sql_[end] != '$') {
            copy(1); // a lone '$' is not a quote; let PostgreSQL judge it
            return;
        }
        const std::string_view tag = sql_.substr(start, end - start + 1);
        const std::size_t close = sql_.find(tag, end + 1);
        if (close == std::string_view::npos) {
            throw SqlParameterError(start, fmt::format("unterminated dollar-quoted string {}", tag));
        }
        copy(close + tag.size() - pos_);
    }

    void parameter() {
        const std::size_t start = pos_;
        std::size_t end = pos_ + 1;
        while (end < sql_.size() && is_path_char(sql_[end])) {
            ++end;
        }
        const std::string_view base = sql_.substr(start + 1, end - start - 1);
        std::string name(base);
        if (base == "payload" || base == "metadata") {
            end = json_path(end, name);
        }
        if (named_ == NamedParameters::refused) {
            throw SqlParameterError(start,
                                    fmt::format("batch handlers take no named parameters (':{}'): they run once for "
                                                "a run of events and read them from the relation `batch`, e.g. "
                                                "batch.aggregate_id or batch.payload ->> 'total'",
                                                name));
        }
        if (!is_event_parameter(name)) {
            throw SqlParameterError(
                start, fmt::format("unknown parameter ':{}'{}; handlers can use :{}", name,
                                   did_you_mean(base, event_parameters),
                                   fmt::join(std::begin(event_parameters), std::end(event_parameters), ", :")) +
                           " and :payload.<path>, :metadata.<path> (a key that is not a plain name in double "
                           "quotes: :payload.\"order-id\")");
        }
        const auto found = std::find(out_.parameters.begin(), out_.parameters.end(), name);
        std::size_t index = static_cast<std::size_t>(found - out_.parameters.begin());
        if (found == out_.parameters.end()) {
            out_.parameters.push_back(name);
        }
        append(fmt::format("${}", index + 1), start);
        pos_ = end;
    }

    // Reads the JSON path after :payload or :metadata from byte `end`,
    // appending its segments to `name` in their one spelling; returns where
    // the path ends.
    std::size_t json_path(std::size_t end, std::string& name) const {
        for (;;) {
            if (end + 1 >= sql_.size() || sql_[end] != '.') {
                return end;
            }
            if (is_path_char(sql_[end + 1])) {
                const std::size_t segment = end + 1;
                end = segment;
                while (end < sql_.size() && is_path_char(sql_[end])) {
                    ++end;
                }
                append_json_key(name, sql_.substr(segment, end - segment));
            } else if (sql_[end + 1] == '"') {
                std::string key;
                end = read_quoted_key(sql_, end + 1, key);
                append_json_key(name, key);
            } else {
                return end;
            }
        }
    }

    std::string_view sql_;
    NamedParameters named_;
    std::size_t pos_ = 0;
    bool significant_ = false;
    RewrittenSql out_;
    std::vector<RewrittenSql> statements_;
};

} // namespace

bool is_event_parameter(std::string_view name) {
    const auto [base, path] = split_json_path(name);
    if (!path.empty() && base != "payload" && base != "metadata") {
        return false;
    }
    return std::find(std::begin(event_parameters), std::end(event_parameters), base) != std::end(event_parameters);
}

std::pair<std::string_view, std::string_view> split_json_path(std::string_view name) {
    const std::size_t dot = name.find('.');
    if (dot == std::string_view::npos) {
        return {name, {}};
    }
    return {name.substr(0, dot), name.substr(dot + 1)};
}

std::vector<std::string> json_path_segments(std::string_view parameter) {
    std::vector<std::string> segments;
    std::size_t pos = parameter.find('.');
    while (pos != std::string_view::npos && pos + 1 <= parameter.size()) {
        std::string key;
        if (pos + 1 < parameter.size() && parameter[pos + 1] == '"') {
            pos = read_quoted_key(parameter, pos + 1, key);
        } else {
            const std::size_t end = std::min(parameter.find('.', pos + 1), parameter.size());
            key = parameter.substr(pos + 1, end - pos - 1);
            pos = end;
        }
        segments.push_back(std::move(key));
        if (pos >= parameter.size() || parameter[pos] != '.') {
            break;
        }
    }
    return segments;
}

std::size_t RewrittenSql::text_offset(std::size_t sql_offset) const {
    auto after = std::upper_bound(origins.begin(), origins.end(), sql_offset,
                                  [](std::size_t value, const SqlOrigin& origin) { return value < origin.sql_offset; });
    if (after == origins.begin()) {
        return sql_offset;
    }
    const SqlOrigin& origin = *std::prev(after);
    return origin.text_offset + (sql_offset - origin.sql_offset);
}

std::vector<RewrittenSql> rewrite_named_parameters(std::string_view sql, NamedParameters named) {
    return Scanner(sql, named).run();
}

std::string leading_keyword(std::string_view sql) {
    std::size_t pos = 0;
    while (pos < sql.size()) {
        if (std::isspace(static_cast<unsigned char>(sql[pos]))) {
            ++pos;
        } else if (sql.substr(pos, 2) == "--") {
            pos = sql.find('\n', pos);
            if (pos == std::string_view::npos) {
                return {};
            }
        } else if (sql.substr(pos, 2) == "/*") {
            int depth = 0;
            do {
                if (sql.substr(pos, 2) == "/*") {
                    ++depth;
                    pos += 2;
                } else if (sql.substr(pos, 2) == "*/") {
                    --depth;
                    pos += 2;
                } else if (pos >= sql.size()) {
                    return {};
                } else {
                    ++pos;
                }
            } while (depth > 0);
        } else {
            break;
        }
    }
    std::string keyword;
    while (pos < sql.size() && std::isalpha(static_cast<unsigned char>(sql[pos]))) {
        keyword += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[pos])));
        ++pos;
    }
    return keyword;
}

} // namespace projectiond::config
