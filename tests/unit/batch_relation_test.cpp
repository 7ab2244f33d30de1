#include "config/batch_relation.hpp"

#include <doctest/doctest.h>

using projectiond::config::splice_batch_relation;
using projectiond::config::with_batch_relation;

namespace {
constexpr std::string_view one_row = "SELECT 1";
} // namespace

TEST_SUITE("batch relation") {
    TEST_CASE("a statement without WITH runs inside WITH batch AS (...)") {
        CHECK(with_batch_relation("INSERT INTO t SELECT * FROM batch", one_row) ==
              "WITH batch AS MATERIALIZED (SELECT 1) INSERT INTO t SELECT * FROM batch");
    }

    TEST_CASE("a statement with its own WITH gets batch first in its list, as one WITH is all it may have") {
        CHECK(with_batch_relation("WITH last AS (SELECT * FROM batch) INSERT INTO t SELECT * FROM last", one_row) ==
              "WITH batch AS MATERIALIZED (SELECT 1), last AS (SELECT * FROM batch) INSERT INTO t SELECT * FROM last");
    }

    TEST_CASE("WITH RECURSIVE keeps RECURSIVE where SQL wants it") {
        CHECK(with_batch_relation("with recursive r AS (SELECT 1) SELECT * FROM r, batch", one_row) ==
              "with recursive batch AS MATERIALIZED (SELECT 1), r AS (SELECT 1) SELECT * FROM r, batch");
    }

    TEST_CASE("blanks and comments before WITH do not hide it") {
        CHECK(with_batch_relation("-- latest per aggregate\n/* x */ WITH l AS (SELECT 1) SELECT 1", one_row) ==
              "-- latest per aggregate\n/* x */ WITH batch AS MATERIALIZED (SELECT 1), l AS (SELECT 1) SELECT 1");
    }

    TEST_CASE("a word that only starts with WITH is not WITH") {
        CHECK(with_batch_relation("WITHIN_GROUP", one_row) == "WITH batch AS MATERIALIZED (SELECT 1) WITHIN_GROUP");
    }

    TEST_CASE("offsets after the definition lead back to the handler's statement, offsets inside it nowhere") {
        const std::string_view sql = "WITH l AS (SELECT 1) SELECT nope FROM l";
        const auto relation = splice_batch_relation(sql, one_row);
        const std::size_t nope = relation.sql.find("nope");
        CHECK(relation.statement_offset(nope) == sql.find("nope"));
        CHECK(relation.statement_offset(2) == 2);
        CHECK_FALSE(relation.statement_offset(relation.sql.find("SELECT 1")).has_value());

        const auto prefixed = splice_batch_relation("SELECT nope", one_row);
        CHECK(prefixed.statement_offset(prefixed.sql.find("nope")) == 7);
        CHECK_FALSE(prefixed.statement_offset(0).has_value());
    }
}
