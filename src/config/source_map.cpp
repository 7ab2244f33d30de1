#include "config/source_map.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace projectiond::config {

void SourceMap::add(std::size_t offset, SourceMark mark) {
    if (!anchors_.empty() && anchors_.back().first == offset) {
        anchors_.back().second = mark;
    } else {
        anchors_.emplace_back(offset, mark);
    }
}

SourceMark SourceMap::at(std::size_t offset) const {
    if (anchors_.empty()) {
        return {};
    }
    auto after = std::upper_bound(anchors_.begin(), anchors_.end(), offset,
                                  [](std::size_t value, const auto& anchor) { return value < anchor.first; });
    if (after == anchors_.begin()) {
        return anchors_.front().second;
    }
    const auto& [start, mark] = *std::prev(after);
    if (mark.line == 0) {
        return mark;
    }
    return {mark.line, mark.column + static_cast<int>(offset - start)};
}

std::size_t utf8_byte_offset(std::string_view text, std::size_t characters) {
    std::size_t offset = 0;
    for (; offset < text.size(); ++offset) {
        const bool continuation = (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80;
        if (!continuation) {
            if (characters == 0) {
                return offset;
            }
            --characters;
        }
    }
    return text.size();
}

std::string format_located(std::string_view source, const Located& located) {
    if (located.mark.line > 0) {
        return fmt::format("{}:{}:{}: {}", source, located.mark.line, located.mark.column, located.message);
    }
    return fmt::format("{}: {}", source, located.message);
}

void sort_by_position(std::vector<Located>& messages) {
    std::stable_sort(messages.begin(), messages.end(),
                     [](const Located& a, const Located& b) { return a.mark < b.mark; });
}

} // namespace projectiond::config
