#include "config/loader.hpp"
#include "daemon/supervisor.hpp"

#include <doctest/doctest.h>

using namespace projectiond;

TEST_SUITE("reload plan") {
    TEST_CASE("adds, removes and restarts only what changed") {
        const auto before = config::parse_config(R"(projections:
  - name: same
    log: true
  - name: changed
    log: true
  - name: removed
    log: true
)",
                                                 "a.yaml");
        const auto after = config::parse_config(R"(projections:
  - name: same
    log: true
  - name: changed
    log: true
    batch_size: 3
  - name: added
    log: true
)",
                                                "b.yaml");
        const auto plan = daemon::plan_reload(before, after);
        CHECK(plan.unchanged == std::vector<std::string>{"same"});
        CHECK(plan.stop == std::vector<std::string>{"changed", "removed"});
        REQUIRE(plan.start.size() == 2);
        CHECK(plan.start[0]->name == "changed");
        CHECK(plan.start[1]->name == "added");
        CHECK(plan.added == 1);
        CHECK(plan.changed == 1);
        CHECK(plan.removed == 1);
    }

    TEST_CASE("a changed database section restarts everything") {
        const auto before =
            config::parse_config("database: {url: dbname=a}\nprojections: [{name: p, log: true}]\n", "a");
        const auto after =
            config::parse_config("database: {url: dbname=b}\nprojections: [{name: p, log: true}]\n", "b");
        const auto plan = daemon::plan_reload(before, after);
        CHECK(plan.stop == std::vector<std::string>{"p"});
        CHECK(plan.start.size() == 1);
    }
}
