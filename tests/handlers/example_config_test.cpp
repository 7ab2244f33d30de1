#include "config/loader.hpp"
#include "handler_fixtures.hpp"

#include <doctest/doctest.h>

using projectiond::config::HandlerKind;
using projectiond::config::load_config_file;
using projectiond::testing::build_path;

TEST_SUITE("example configurations") {
    TEST_CASE("each example's projectiond.yaml loads and names its handler") {
        const std::string examples = build_path("PROJECTIOND_SOURCE_ROOT") + "/examples/";
        const struct {
            const char* file;
            HandlerKind kind;
        } cases[] = {
            {"counter-plugin/projectiond.yaml", HandlerKind::plugin},
            {"exec-handler/projectiond.yaml", HandlerKind::exec},
            {"user-read-model/projectiond.yaml", HandlerKind::plugin},
        };
        for (const auto& example : cases) {
            CAPTURE(example.file);
            const auto config = load_config_file(examples + example.file);
            REQUIRE(config.projections.size() == 1);
            REQUIRE(config.projections[0].handlers.size() == 1);
            CHECK(config.projections[0].handlers[0].kind == example.kind);
        }
    }
}
