#include "config/parameter_types.hpp"

#include <doctest/doctest.h>

using projectiond::config::name_parameters_in_message;
using projectiond::config::parameter_type;
using projectiond::config::parameter_type_oids;
using projectiond::config::parameters_of_types_in_message;
using strings = std::vector<std::string>;

namespace {
bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}
} // namespace

TEST_SUITE("parameter types") {
    TEST_CASE("each built-in parameter has the type of its events column") {
        CHECK(parameter_type("global_position").name == "bigint");
        CHECK(parameter_type("aggregate_version").name == "bigint");
        CHECK(parameter_type("event_version").name == "integer");
        CHECK(parameter_type("event_id").name == "uuid");
        CHECK(parameter_type("created_at").name == "timestamptz");
        CHECK(parameter_type("payload").name == "jsonb");
        CHECK(parameter_type("metadata").name == "jsonb");
        for (const char* name : {"aggregate_id", "aggregate_type", "bounded_context", "event_type", "trace_id",
                                 "correlation_id", "causation_id"}) {
            CHECK_MESSAGE(parameter_type(name).name == "text", name);
        }
    }

    TEST_CASE("a JSON path is text, quoted keys included") {
        CHECK(parameter_type("payload.total").name == "text");
        CHECK(parameter_type(R"(metadata."a.b")").name == "text");
    }

    TEST_CASE("the type OIDs are PostgreSQL's") {
        CHECK(parameter_type_oids({"global_position", "event_version", "aggregate_id", "event_id", "created_at",
                                   "payload"}) == std::vector<std::uint32_t>{20, 23, 25, 2950, 1184, 3802});
    }

    TEST_CASE("a $N in PostgreSQL's message names the handler's parameter") {
        CHECK(name_parameters_in_message("inconsistent types deduced for parameter $2",
                                         {"aggregate_id", "aggregate_version"}) ==
              "inconsistent types deduced for parameter :aggregate_version ($2)");
    }

    TEST_CASE("$1 and $12 are told apart, and numbers with no parameter are left alone") {
        strings parameters(12, "event_id");
        parameters[0] = "aggregate_id";
        parameters[11] = "payload.total";
        CHECK(name_parameters_in_message("$1 and $12", parameters) == ":aggregate_id ($1) and :payload.total ($12)");
        CHECK(name_parameters_in_message("cost $13 or $ or $0", parameters) == "cost $13 or $ or $0");
        CHECK(name_parameters_in_message("no parameters here", {}) == "no parameters here");
    }

    TEST_CASE("a type error says which parameters have the types it names, and how to cast") {
        const auto hint =
            parameters_of_types_in_message("operator does not exist: uuid = text", {"event_id", "aggregate_version"});
        CHECK(contains(hint, ":event_id is bound as uuid"));
        CHECK_FALSE(contains(hint, "aggregate_version"));
        CHECK(contains(hint, ":event_id::text"));
    }

    TEST_CASE("created_at is recognised under PostgreSQL's long name for its type") {
        CHECK(contains(
            parameters_of_types_in_message(
                "column \"d\" is of type date but expression is of type timestamp with time zone", {"created_at"}),
            ":created_at is bound as timestamptz"));
    }

    TEST_CASE("a JSON path in arithmetic is pointed out as text, with a numeric cast") {
        const auto hint = parameters_of_types_in_message("operator does not exist: text + integer", {"payload.total"});
        CHECK(contains(hint, ":payload.total is bound as text"));
        CHECK(contains(hint, ":payload.total::numeric"));
    }

    TEST_CASE("a type named only inside a longer word does not count") {
        CHECK(parameters_of_types_in_message("operator does not exist: texts = uuids", {"event_id"}).empty());
    }
}
