#include "config/loader.hpp"
#include "projection/read_plan.hpp"

#include <doctest/doctest.h>

using projectiond::config::parse_config;
using namespace projectiond::projection;

namespace {
bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

projectiond::config::Projection projection_from(const std::string& yaml) {
    return parse_config(yaml, "t.yaml").projections.front();
}
} // namespace

TEST_SUITE("read plan") {
    TEST_CASE("filters are bound as text arrays, never written into the SQL") {
        const ReadPlan plan(projection_from(R"(projections:
  - name: a
    aggregate_types: [User, "Odd'Type"]
    bounded_contexts: Identity
    log: true
)"),
                            0);
        CHECK_FALSE(contains(plan.read_sql(false), "Odd"));
        CHECK_FALSE(contains(plan.read_sql(true), "Odd"));
        REQUIRE(plan.filter_arguments().size() >= 2);
        CHECK(*plan.filter_arguments()[0] == R"({"User","Odd'Type"})");
        CHECK(*plan.filter_arguments()[1] == R"({"Identity"})");
        CHECK(plan.filtered());
    }

    TEST_CASE("without a catch-all handler only the handled event types are read") {
        const ReadPlan plan(projection_from(R"(projections:
  - name: a
    handlers:
      UserCreated: SELECT :event_id
      UserRenamed: SELECT :event_id
)"),
                            0);
        CHECK(plan.filtered());
        CHECK(*plan.filter_arguments()[0] == R"({"UserCreated","UserRenamed"})");
    }

    TEST_CASE("only filtered plans read window by window; the window grows with the batch") {
        CHECK(ReadPlan(projection_from("projections:\n  - name: a\n    handlers:\n      X: SELECT 1\n"), 0).filtered());
        CHECK_FALSE(ReadPlan(projection_from("projections:\n  - name: a\n    log: true\n"), 0).filtered());
        CHECK(ReadPlan::window_size(100) == 5000);
        CHECK(ReadPlan::window_size(5000) == 25000);
    }

    TEST_CASE("a catch-all handler reads every event type") {
        const ReadPlan plan(
            projection_from("projections:\n  - name: a\n    handlers:\n      \"*\": SELECT :event_id\n"), 0);
        CHECK_FALSE(plan.filtered());
        REQUIRE(plan.handler_for("Anything") != nullptr);
        CHECK(plan.handler_for("Anything")->event_type == "*");
    }

    TEST_CASE("an exact handler replaces the catch-all for its event type") {
        const ReadPlan plan(
            projection_from("projections:\n  - name: a\n    handlers:\n      \"*\": SELECT 1\n      X: SELECT 2\n"), 0);
        CHECK(plan.handler_for("X")->event_type == "X");
        CHECK(plan.handler_for("Y")->event_type == "*");
    }

    TEST_CASE("a partition reads by the stored hash, with its count and index bound") {
        const ReadPlan plan(projection_from("projections:\n  - name: a\n    log: true\n    partitions: 4\n"), 2);
        CHECK(plan.filtered());
        CHECK(*plan.filter_arguments()[0] == "4");
        CHECK(*plan.filter_arguments()[1] == "2");
    }

    TEST_CASE("handler parameters map to read columns with their types; JSON paths are bound") {
        const ReadPlan plan(projection_from(R"(projections:
  - name: a
    handlers:
      X: INSERT INTO t VALUES (:aggregate_id, :payload.customer.email, :global_position, :aggregate_id, :created_at)
)"),
                            0);
        const auto& statement = plan.handlers().front().statements.front();
        CHECK(statement.sql == "INSERT INTO t VALUES ($1, $2, $3, $1, $4)");
        REQUIRE(statement.columns.size() == 4);
        CHECK(statement.columns[0] == col_aggregate_id);
        CHECK(statement.columns[1] == col_first_parameter);
        CHECK(statement.columns[2] == col_global_position);
        CHECK(statement.columns[3] == col_first_parameter + 1);
        CHECK(statement.types == std::vector<Oid>{25, 25, 20, 1184});
        CHECK(*plan.filter_arguments().back() == R"({"customer","email"})");
    }

    TEST_CASE("a batch handler's statement reads its run by positions (one bigint[]) or as a range (two bigint)") {
        const ReadPlan plan(
            projection_from("projections:\n  - name: a\n    handlers:\n      X: {batch: SELECT count(*) FROM batch}\n"), 0);
        const auto& statement = plan.handlers().front().statements.front();
        CHECK(plan.handlers().front().kind == projectiond::config::HandlerKind::batch);
        CHECK(statement.types == std::vector<Oid>{1016, 20, 20});
        CHECK(statement.columns.empty());
        CHECK(contains(statement.sql, "unnest($1::bigint[])"));
        CHECK(contains(statement.sql, "projectiond_run_range($2::bigint, $3::bigint)"));
    }

    TEST_CASE("log projections fetch the payload's name for their lines") {
        const ReadPlan plan(projection_from("projections:\n  - name: a\n    log: true\n"), 0);
        CHECK(plan.log_name_column() == col_first_parameter);
        CHECK(*plan.filter_arguments().back() == "{\"name\"}");
    }

    TEST_CASE("array literals escape quotes and backslashes") {
        CHECK(text_array_literal({R"(a"b)", R"(c\d)", "e,f"}) == R"({"a\"b","c\\d","e,f"})");
        CHECK(text_array_literal({}) == "{}");
    }
}
