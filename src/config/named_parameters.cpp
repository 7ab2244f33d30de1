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

class Scanner {
public:
    explicit Scanner(std::string_view sql) : sql_(sql) {}

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
            while (!out_.sql.empty() && std::isspace(static_cast<unsigned char>(out_.sql.back()))) {
                out_.sql.pop_back();
            }
            const auto first = out_.sql.find_first_not_of(" \t\r\n\f");
            out_.sql.erase(0, first);
            statements_.push_back(std::move(out_));
        }
        out_ = RewrittenSql{};
        significant_ = false;
    }

    bool after_identifier() const { return pos_ > 0 && is_identifier_char(sql_[pos_ - 1]); }

    void copy(std::size_t count) {
        out_.sql.append(sql_.substr(pos_, count));
        pos_ += count;
    }

    void identifier() {
        const std::size_t start = pos_;
        while (pos_ < sql_.size() && is_identifier_char(sql_[pos_])) {
            ++pos_;
        }
        out_.sql.append(sql_.substr(start, pos_ - start));
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
        out_.sql.append(sql_.substr(start, pos_ - start));
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
        out_.sql.append(sql_.substr(start, pos_ - start));
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
        if (base == "payload" || base == "metadata") {
            while (end + 1 < sql_.size() && sql_[end] == '.' && is_path_char(sql_[end + 1])) {
                ++end;
                while (end < sql_.size() && is_path_char(sql_[end])) {
                    ++end;
                }
            }
        }
        const std::string_view name = sql_.substr(start + 1, end - start - 1);
        if (!is_event_parameter(name)) {
            throw SqlParameterError(
                start, fmt::format("unknown parameter ':{}'{}; handlers can use :{}", name,
                                   did_you_mean(base, event_parameters),
                                   fmt::join(std::begin(event_parameters), std::end(event_parameters), ", :")) +
                           " and :payload.<path>, :metadata.<path>");
        }
        const auto found = std::find(out_.parameters.begin(), out_.parameters.end(), name);
        std::size_t index = static_cast<std::size_t>(found - out_.parameters.begin());
        if (found == out_.parameters.end()) {
            out_.parameters.emplace_back(name);
        }
        out_.sql += fmt::format("${}", index + 1);
        pos_ = end;
    }

    std::string_view sql_;
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

std::vector<RewrittenSql> rewrite_named_parameters(std::string_view sql) {
    return Scanner(sql).run();
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
