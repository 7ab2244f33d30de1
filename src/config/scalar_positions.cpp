#include "config/scalar_positions.hpp"

namespace projectiond::config {

namespace {
char char_at(std::span<const std::string_view> lines, SourceMark mark) {
    if (mark.line < 1 || static_cast<std::size_t>(mark.line) > lines.size()) {
        return '\0';
    }
    const std::string_view line = lines[static_cast<std::size_t>(mark.line - 1)];
    const auto column = static_cast<std::size_t>(mark.column - 1);
    return column < line.size() ? line[column] : '\n';
}

bool blank(std::string_view line) {
    return line.find_first_not_of(" \t\r") == std::string_view::npos;
}
} // namespace

ScalarPositions::ScalarPositions(std::span<const std::string_view> lines, SourceMark start, std::string_view value)
    : start_(start) {
    if (start.line < 1 || static_cast<std::size_t>(start.line) > lines.size()) {
        return;
    }
    if (char_at(lines, start) == '|') {
        literal_block(lines, start, value);
    } else {
        match_text(lines, start, value);
    }
}

SourceMark ScalarPositions::at(std::size_t offset) const {
    if (marks_.empty()) {
        return start_;
    }
    return marks_[std::min(offset, marks_.size() - 1)];
}

// The value's line k is the file's line k after the indicator, less the
// block's indentation (that of its first non-blank line).
void ScalarPositions::literal_block(std::span<const std::string_view> lines, SourceMark start, std::string_view value) {
    std::size_t indent = 0;
    for (auto line = static_cast<std::size_t>(start.line); line < lines.size(); ++line) {
        if (!blank(lines[line])) {
            indent = lines[line].find_first_not_of(' ');
            break;
        }
    }
    int line = start.line + 1;
    int column = static_cast<int>(indent) + 1;
    marks_.reserve(value.size() + 1);
    for (const char c : value) {
        marks_.push_back({line, column});
        if (c == '\n') {
            ++line;
            column = static_cast<int>(indent) + 1;
        } else {
            ++column;
        }
    }
    marks_.push_back({line, column});
}

// Walks the value and the file together from the node's start: a byte of the
// value is where the file next has that byte; what the file has besides
// (quotes, indentation, folded line breaks, escapes) is skipped.
void ScalarPositions::match_text(std::span<const std::string_view> lines, SourceMark start, std::string_view value) {
    const bool double_quoted = char_at(lines, start) == '"';
    SourceMark at = start;
    const auto advance = [&] {
        const std::string_view line = lines[static_cast<std::size_t>(at.line - 1)];
        if (static_cast<std::size_t>(at.column) > line.size() && static_cast<std::size_t>(at.line) < lines.size()) {
            at = {at.line + 1, 1};
        } else {
            ++at.column;
        }
    };
    const auto at_end = [&] {
        return static_cast<std::size_t>(at.line) == lines.size() &&
               static_cast<std::size_t>(at.column) > lines.back().size();
    };
    marks_.reserve(value.size() + 1);
    for (const char byte : value) {
        const char wanted = byte == '\n' ? ' ' : byte;
        bool escape = false;
        while (!at_end()) {
            const char found = char_at(lines, at);
            escape = double_quoted && found == '\\';
            if (escape || (found == '\n' ? ' ' : found) == wanted) {
                break; // an escape (\n, \", \\, ...) stands for this byte
            }
            advance();
        }
        marks_.push_back(at);
        if (escape) {
            advance();
        }
        if (!at_end()) {
            advance();
        }
    }
    marks_.push_back(at);
}

} // namespace projectiond::config
