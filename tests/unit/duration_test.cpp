#include "config/duration.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using projectiond::config::format_duration;
using projectiond::config::parse_duration;

TEST_SUITE("durations") {
    TEST_CASE("accepts milliseconds, seconds and minutes") {
        CHECK(parse_duration("250ms") == 250ms);
        CHECK(parse_duration("5s") == 5s);
        CHECK(parse_duration("2m") == 2min);
        CHECK(parse_duration("0s") == 0ms);
    }

    TEST_CASE("refuses anything else") {
        CHECK_FALSE(parse_duration("5"));
        CHECK_FALSE(parse_duration("5h"));
        CHECK_FALSE(parse_duration("s"));
        CHECK_FALSE(parse_duration("-1s"));
        CHECK_FALSE(parse_duration("1.5s"));
        CHECK_FALSE(parse_duration(" 1s"));
        CHECK_FALSE(parse_duration("99999999999999999999m"));
    }

    TEST_CASE("formats with the largest exact unit") {
        CHECK(format_duration(60s) == "1m");
        CHECK(format_duration(1500ms) == "1500ms");
        CHECK(format_duration(3s) == "3s");
        CHECK(format_duration(0ms) == "0ms");
    }
}
