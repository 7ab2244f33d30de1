#pragma once
// Where things are written in the configuration file, so that every message,
// including one PostgreSQL gives about a handler long after loading, can say
// "file:line:column" and come out in file order.

#include <compare>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace projectiond::config {

// Where something was written: 1-based line and column, 0 when unknown.
struct SourceMark {
    int line = 0;
    int column = 0;
    auto operator<=>(const SourceMark&) const = default;
};

// Maps byte offsets in a piece of text taken from the file (a handler's
// statement after rewriting) back to where they are written. Anchors mark
// the starts of runs copied unchanged, so within a run the column advances
// with the offset.
class SourceMap {
public:
    // Anchors are added in increasing offset order.
    void add(std::size_t offset, SourceMark mark);
    // Where byte `offset` is written; the map's first anchor for offsets
    // before it, an unknown mark when the map is empty.
    SourceMark at(std::size_t offset) const;
    bool empty() const noexcept { return anchors_.empty(); }

private:
    std::vector<std::pair<std::size_t, SourceMark>> anchors_;
};

// A message about a place in the configuration.
struct Located {
    SourceMark mark;
    std::string message;
};

// The byte offset of the character at 0-based index `characters` of UTF-8
// `text` (PostgreSQL places errors by character); text.size() past its end.
std::size_t utf8_byte_offset(std::string_view text, std::size_t characters);

// "file:line:column: message", or "file: message" when the place is unknown.
std::string format_located(std::string_view source, const Located& located);

// File order; messages without a place (about the whole file) first, and
// messages about one place in the order they were found.
void sort_by_position(std::vector<Located>& messages);

} // namespace projectiond::config
