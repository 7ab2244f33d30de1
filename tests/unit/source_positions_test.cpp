// Where scalars, statements and messages are in the configuration file.
#include "config/scalar_positions.hpp"
#include "config/source_map.hpp"

#include <doctest/doctest.h>

using projectiond::config::Located;
using projectiond::config::ScalarPositions;
using projectiond::config::SourceMap;
using projectiond::config::SourceMark;

namespace {
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = text.find('\n', start);
        lines.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) {
            return lines;
        }
        start = end + 1;
    }
}
} // namespace

TEST_SUITE("source positions") {
    TEST_CASE("a literal block's bytes are on their own lines, less the indentation") {
        const auto lines = lines_of("x: |\n    SELECT 1\n    FROM t\n");
        const ScalarPositions positions(lines, {1, 4}, "SELECT 1\nFROM t\n");
        CHECK(positions.at(0) == SourceMark{2, 5});
        CHECK(positions.at(7) == SourceMark{2, 12});
        CHECK(positions.at(9) == SourceMark{3, 5});
        CHECK(positions.at(14) == SourceMark{3, 10});
    }

    TEST_CASE("leading blank lines of a literal block count as lines") {
        const auto lines = lines_of("x: |\n\n  SELECT 1\n");
        const ScalarPositions positions(lines, {1, 4}, "\nSELECT 1\n");
        CHECK(positions.at(1) == SourceMark{3, 3});
    }

    TEST_CASE("a one-line scalar advances column by column, after its quote when quoted") {
        const auto plain = lines_of("  X: SELECT :nope");
        CHECK(ScalarPositions(plain, {1, 6}, "SELECT :nope").at(7) == SourceMark{1, 13});
        const auto quoted = lines_of("  X: \"SELECT :nope\"");
        CHECK(ScalarPositions(quoted, {1, 6}, "SELECT :nope").at(7) == SourceMark{1, 14});
    }

    TEST_CASE("a folded block or a multi-line plain scalar is matched to its lines") {
        const auto folded = lines_of("x: >\n  SELECT 1\n  FROM nope\n");
        const ScalarPositions in_folded(folded, {1, 4}, "SELECT 1 FROM nope\n");
        CHECK(in_folded.at(14) == SourceMark{3, 8});
        const auto plain = lines_of("x: SELECT 1\n  FROM nope\n");
        const ScalarPositions in_plain(plain, {1, 4}, "SELECT 1 FROM nope");
        CHECK(in_plain.at(14) == SourceMark{2, 8});
    }

    TEST_CASE("escapes in a double-quoted scalar stand for one byte each") {
        const auto lines = lines_of(R"(x: "a\tb\"c")");
        const ScalarPositions positions(lines, {1, 4}, "a\tb\"c");
        CHECK(positions.at(2) == SourceMark{1, 8});
        CHECK(positions.at(4) == SourceMark{1, 11});
    }

    TEST_CASE("a source map advances the column from the last anchor") {
        SourceMap map;
        map.add(0, {3, 9});
        map.add(10, {4, 9});
        CHECK(map.at(0) == SourceMark{3, 9});
        CHECK(map.at(4) == SourceMark{3, 13});
        CHECK(map.at(12) == SourceMark{4, 11});
        CHECK(SourceMap().at(5) == SourceMark{});
    }

    TEST_CASE("PostgreSQL's character positions become byte offsets in UTF-8") {
        CHECK(projectiond::config::utf8_byte_offset("SELECT 1", 7) == 7);
        CHECK(projectiond::config::utf8_byte_offset("SELECT 'é', x", 12) == 13);
        CHECK(projectiond::config::utf8_byte_offset("ab", 5) == 2);
    }

    TEST_CASE("messages sort by line then column, whole-file ones first, ties in the order found") {
        std::vector<Located> messages = {{{5, 1}, "e"}, {{2, 9}, "b"}, {{}, "a"}, {{2, 9}, "c"}, {{3, 1}, "d"}};
        projectiond::config::sort_by_position(messages);
        std::string order;
        for (const auto& message : messages) {
            order += message.message;
        }
        CHECK(order == "abcde");
        CHECK(projectiond::config::format_located("f.yaml", messages[1]) == "f.yaml:2:9: b");
        CHECK(projectiond::config::format_located("f.yaml", messages[0]) == "f.yaml: a");
    }
}
