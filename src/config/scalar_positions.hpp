#pragma once
// Where each byte of a YAML scalar's value is written in the file, so that a
// mistake inside a handler's SQL (an unknown parameter, or an error
// PostgreSQL reports at a character) is shown at its own line and column.
//
// Exact for literal blocks (|), whose lines are the file's lines less their
// indentation, and for one-line scalars. Folded blocks (>) and multi-line
// plain or quoted scalars have their line breaks rewritten by YAML; their
// value is matched against the file text, which finds the right line as long
// as escapes do not get in the way.

#include "config/source_map.hpp"

#include <span>
#include <string_view>
#include <vector>

namespace projectiond::config {

class ScalarPositions {
public:
    // `lines` are the file's lines, `start` where the scalar node starts
    // (yaml-cpp's mark plus one), `value` its value.
    ScalarPositions(std::span<const std::string_view> lines, SourceMark start, std::string_view value);

    // Where byte `offset` of the value is written; the end of the value for
    // offsets past it.
    SourceMark at(std::size_t offset) const;

private:
    void literal_block(std::span<const std::string_view> lines, SourceMark start, std::string_view value);
    void match_text(std::span<const std::string_view> lines, SourceMark start, std::string_view value);

    SourceMark start_;
    std::vector<SourceMark> marks_; // one per byte of the value, and one past its end
};

} // namespace projectiond::config
