#include "handler_fixtures.hpp"
#include "handlers/exec_protocol.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <stdexcept>

using projectiond::handlers::append_event_line;
using projectiond::handlers::parse_reply;
using projectiond::testing::SampleEvents;

TEST_SUITE("exec protocol") {
    TEST_CASE("an event line has every column, with payload and metadata as JSON values") {
        SampleEvents events(1, 42);
        projectiond::handlers::Event event = events.at(0);
        event.metadata = R"({"user": "admin"})";
        event.causation_id = "cause-1";
        std::string line;
        append_event_line(line, event);
        REQUIRE(line.back() == '\n');
        CHECK(line.find('\n') == line.size() - 1);

        const auto json = nlohmann::json::parse(line);
        CHECK(json["global_position"] == 42);
        CHECK(json["bounded_context"] == "Identity");
        CHECK(json["aggregate_type"] == "User");
        CHECK(json["aggregate_id"] == "user-42");
        CHECK(json["aggregate_version"] == 1);
        CHECK(json["event_id"] == "00000000-0000-4000-8000-000000000042");
        CHECK(json["event_type"] == "Tested");
        CHECK(json["event_version"] == 1);
        CHECK(json["payload"]["name"] == "User 42");
        CHECK(json["metadata"]["user"] == "admin");
        CHECK(json["trace_id"] == "trace-42");
        CHECK(json["correlation_id"].is_null());
        CHECK(json["causation_id"] == "cause-1");
        CHECK(json["created_at"] == "2026-01-27 10:11:12.123456+00");
        CHECK(json.size() == 14);
    }

    TEST_CASE("a payload written over several lines still makes one line") {
        SampleEvents events(1);
        events.set_payload(1, "{\n  \"a\": [1,\n 2]\n}");
        std::string line;
        append_event_line(line, events.at(0));
        CHECK(line.find('\n') == line.size() - 1);
        CHECK(nlohmann::json::parse(line)["payload"]["a"][1] == 2);
    }

    TEST_CASE("an event whose payload is not JSON cannot be sent") {
        SampleEvents events(1);
        events.set_payload(1, "{not json");
        std::string line;
        CHECK_THROWS_WITH_AS(append_event_line(line, events.at(0)), doctest::Contains("payload is not valid JSON"),
                             std::invalid_argument);
    }

    TEST_CASE("statements and parameters: scalars as text, null as NULL, objects and arrays as JSON") {
        const auto parsed = parse_reply(
            R"({"sql": [{"statement": "SELECT $1, $2, $3, $4, $5, $6, $7", "params": ["text", 42, 2.5, true, null, {"a": 1}, [1, "b"]]}, {"statement": "SELECT 1"}]})");
        REQUIRE_FALSE(parsed.protocol_error);
        REQUIRE_FALSE(parsed.reply.failed());
        REQUIRE(parsed.reply.statements.size() == 2);
        const auto& params = parsed.reply.statements[0].params;
        REQUIRE(params.size() == 7);
        CHECK(params[0] == "text");
        CHECK(params[1] == "42");
        CHECK(params[2] == "2.5");
        CHECK(params[3] == "true");
        CHECK_FALSE(params[4].has_value());
        CHECK(params[5] == R"({"a":1})");
        CHECK(params[6] == R"([1,"b"])");
        CHECK(parsed.reply.statements[1].sql == "SELECT 1");
        CHECK(parsed.reply.statements[1].params.empty());
    }

    TEST_CASE("an empty object means nothing to do") {
        for (const char* line : {"{}", R"({"sql": []})", R"({"sql": null})", "  {}\r"}) {
            const auto parsed = parse_reply(line);
            CHECK_FALSE(parsed.protocol_error);
            CHECK_FALSE(parsed.reply.failed());
            CHECK(parsed.reply.statements.empty());
        }
    }

    TEST_CASE("an error reply is a failure in the program's own words, not a protocol error") {
        const auto parsed = parse_reply(R"({"error": "unknown price rule 'x'"})");
        CHECK_FALSE(parsed.protocol_error);
        REQUIRE(parsed.reply.failed());
        CHECK(*parsed.reply.error == "unknown price rule 'x'");
        CHECK(parse_reply(R"({"error": ""})").reply.failed());
        CHECK(parse_reply(R"({"error": {"code": 7}})").reply.error == R"({"code":7})");
    }

    TEST_CASE("replies that are not of the protocol are protocol errors that say what is wrong") {
        const std::pair<const char*, const char*> cases[] = {
            {"this is not json", "the reply is not valid JSON"},
            {"[1, 2]", "the reply must be a JSON object, not array"},
            {R"({"statements": []})", "unknown key 'statements'"},
            {R"({"sql": "SELECT 1"})", "'sql' must be an array of statements, not string"},
            {R"({"sql": ["SELECT 1"]})", "'sql[0]' must be an object with 'statement' and 'params', not string"},
            {R"({"sql": [{"params": []}]})", "'sql[0].statement' is missing or empty"},
            {R"({"sql": [{"statement": 1}]})", "'sql[0].statement' must be a string, not number"},
            {R"({"sql": [{"statement": "SELECT $1", "params": "x"}]})", "'sql[0].params' must be an array"},
            {R"({"sql": [{"statement": "SELECT 1", "param": []}]})", "'sql[0]' has an unknown key 'param'"},
        };
        for (const auto& [line, message] : cases) {
            CAPTURE(line);
            const auto parsed = parse_reply(line);
            CHECK(parsed.protocol_error);
            REQUIRE(parsed.reply.failed());
            CHECK_MESSAGE(parsed.reply.error->find(message) != std::string::npos, *parsed.reply.error);
        }
    }

    TEST_CASE("excerpts are cut between characters") {
        using projectiond::handlers::excerpt;
        CHECK(excerpt("short") == "short");
        CHECK(excerpt("abcdef", 3) == "abc...");
        CHECK(excerpt("ab\xc3\xa9z", 3) == "ab...");
    }
}
