#include "system/backoff.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace std::chrono_literals;
using projectiond::system::Backoff;

TEST_SUITE("backoff") {
    TEST_CASE("each delay lies between half the first one and a ceiling that doubles up to the cap") {
        Backoff backoff(200ms, 1s);
        const std::chrono::milliseconds ceilings[] = {200ms, 400ms, 800ms, 1s, 1s, 1s};
        for (const auto ceiling : ceilings) {
            const auto delay = backoff.next();
            CHECK(delay >= 100ms);
            CHECK(delay <= ceiling);
        }
        backoff.reset();
        CHECK(backoff.next() <= 200ms);
    }

    TEST_CASE("delays are jittered: two hundred of them are not all the same") {
        Backoff backoff(1000ms, 1000ms);
        std::set<long> seen;
        for (int i = 0; i < 200; ++i) {
            seen.insert(static_cast<long>(backoff.next().count()));
        }
        CHECK(seen.size() > 1);
    }
}
