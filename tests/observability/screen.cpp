#include "screen.hpp"

#include <cctype>

namespace projectiond::testing {

void Screen::feed(std::string_view bytes) {
    for (const char c : bytes) {
        if (!escape_.empty()) {
            escape_ += c;
            if (escape_.size() == 2 && c != '[') {
                unknown_.push_back(escape_);
                escape_.clear();
            } else if (escape_.size() > 2 && std::isalpha(static_cast<unsigned char>(c))) {
                const std::string parameters(escape_.begin() + 2, escape_.end() - 1);
                const int count = parameters.empty() ? 1 : std::stoi(parameters);
                if (c == 'A') {
                    row_ = static_cast<std::size_t>(count) > row_ ? 0 : row_ - static_cast<std::size_t>(count);
                } else if (c == 'J' && (parameters.empty() || parameters == "0")) {
                    erase_row_from(row_, column_);
                    for (std::size_t below = row_ + 1; below < rows_.size(); ++below) {
                        erase_row_from(below, 0);
                    }
                } else if (c == 'K' && (parameters.empty() || parameters == "0")) {
                    erase_row_from(row_, column_);
                } else if (c != 'm') { // colours do not move anything
                    unknown_.push_back(escape_);
                }
                escape_.clear();
            }
            continue;
        }
        put(c);
    }
}

void Screen::put(char c) {
    switch (c) {
    case '\x1b':
        escape_.assign(1, c);
        return;
    case '\r':
        column_ = 0;
        return;
    case '\n':
        ++row_;
        if (row_ >= rows_.size()) {
            rows_.resize(row_ + 1);
        }
        return;
    default:
        break;
    }
    std::string& line = rows_[row_];
    if (line.size() <= column_) {
        line.resize(column_ + 1, ' ');
    }
    line[column_++] = c;
}

void Screen::erase_row_from(std::size_t row, std::size_t column) {
    if (row >= rows_.size() || rows_[row].size() <= column) {
        return;
    }
    erased_.push_back(rows_[row]);
    rows_[row].resize(column);
}

std::vector<std::string> Screen::rows() const {
    std::vector<std::string> rows = rows_;
    while (!rows.empty() && rows.back().empty()) {
        rows.pop_back();
    }
    return rows;
}

} // namespace projectiond::testing
