#include "handler_fixtures.hpp"
#include "handlers/plugin_handler.hpp"
#include "handlers/plugin_library.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

using projectiond::handlers::check_plugin;
using projectiond::handlers::PluginHandler;
using projectiond::handlers::PluginLibrary;
using projectiond::handlers::PluginLoadError;
using projectiond::testing::build_path;
using projectiond::testing::LogCapture;
using projectiond::testing::SampleEvents;

namespace {

const std::string counter_sql = "INSERT INTO plugin_counts (projection, n) VALUES ($1, 1) ON CONFLICT (projection) "
                                "DO UPDATE SET n = plugin_counts.n + 1";

std::string load_error(const std::string& path) {
    const auto message = check_plugin(path);
    REQUIRE_MESSAGE(message.has_value(), path << " loaded");
    return *message;
}

} // namespace

TEST_SUITE("plugins") {
    TEST_CASE("the counter plugin queues the counter statement with its projection's name for every event") {
        const auto library = PluginLibrary::load(build_path("PROJECTIOND_COUNTER_PLUGIN"));
        CHECK(library->name() == "counter");
        PluginHandler handler(library, "orders", 0);
        SampleEvents events(3);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 3);
        for (const auto& reply : replies) {
            REQUIRE_FALSE(reply.failed());
            REQUIRE(reply.statements.size() == 1);
            CHECK(reply.statements[0].sql == counter_sql);
            CHECK(reply.statements[0].params == std::vector<std::optional<std::string>>{"orders"});
        }
        CHECK(check_plugin(build_path("PROJECTIOND_COUNTER_PLUGIN")) == std::nullopt);
    }

    TEST_CASE("the README's user read model upserts each user from the event's payload") {
        PluginHandler handler(PluginLibrary::load(build_path("PROJECTIOND_USER_READ_MODEL_PLUGIN")), "user_read_model",
                              0);
        SampleEvents events(1, 5);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 1);
        REQUIRE_FALSE(replies[0].failed());
        REQUIRE(replies[0].statements.size() == 1);
        CHECK(replies[0].statements[0].sql.find("INSERT INTO users (id, email, name) SELECT $1, $2::jsonb ->> "
                                                "'email'") == 0);
        CHECK(replies[0].statements[0].params ==
              std::vector<std::optional<std::string>>{"user-5", std::string(events.at(0).payload)});
    }

    TEST_CASE("a library is loaded once per path and shared") {
        const auto one = PluginLibrary::load(build_path("PROJECTIOND_COUNTER_PLUGIN"));
        const auto two = PluginLibrary::load(build_path("PROJECTIOND_COUNTER_PLUGIN"));
        CHECK(one.get() == two.get());
    }

    TEST_CASE("a plugin built for another ABI version is refused, saying to rebuild it") {
        const std::string path = build_path("PROJECTIOND_WRONG_ABI_PLUGIN");
        CHECK(load_error(path) == "plugin " + path +
                                      " was built for ABI 2, this projectiond speaks ABI 1: rebuild it against this "
                                      "projectiond's <projectiond/handler.h>");
    }

    TEST_CASE("a table with the wrong magic number is not taken for a plugin") {
        const std::string path = build_path("PROJECTIOND_WRONG_MAGIC_PLUGIN");
        CHECK(load_error(path) == "plugin " + path +
                                      " is not a projectiond handler plugin: its table's magic number is 0xdeadbeef, "
                                      "not 0x50524a48");
    }

    TEST_CASE("a shared object without the entry point is not a plugin") {
        const std::string path = build_path("PROJECTIOND_NO_ENTRY_PLUGIN");
        const std::string message = load_error(path);
        CHECK(message.find("plugin " + path +
                           " is not a projectiond handler plugin: it does not export "
                           "projectiond_handler_plugin_entry()") == 0);
    }

    TEST_CASE("a missing file is named as such") {
        CHECK(load_error("/nonexistent/handler.so") ==
              "plugin /nonexistent/handler.so cannot be loaded: No such file or directory");
        CHECK(load_error("handler.so").find("give the path of the shared object") != std::string::npos);
    }

    TEST_CASE("a file that is not a shared object gives the loader's reason") {
        const std::string path = "/tmp/projectiond-test-not-a-plugin-" + std::to_string(::getpid()) + ".so";
        std::ofstream(path) << "not an ELF file\n";
        const std::string message = load_error(path);
        std::remove(path.c_str());
        CHECK(message.find("plugin " + path + " cannot be loaded: ") == 0);
        CHECK(message.find(path, 10) != std::string::npos); // dlerror() names the file again
    }

    TEST_CASE("the C ABI: statements with NULL, failures with and without a reason, logging") {
        LogCapture log;
        PluginHandler handler(PluginLibrary::load(build_path("PROJECTIOND_C_RULES_PLUGIN")), "rules", 1);
        SampleEvents events(4);
        events.set_type(3, "Rejected");
        auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 3);
        REQUIRE_FALSE(replies[0].failed());
        REQUIRE(replies[0].statements.size() == 1);
        CHECK(replies[0].statements[0].sql == "SELECT $1, $2::jsonb, $3::bigint");
        CHECK(replies[0].statements[0].params ==
              std::vector<std::optional<std::string>>{std::nullopt, std::nullopt, "1"});
        CHECK(*replies[2].error == "rejected by c_rules");
        CHECK(log.find("plugin c_rules: handled an event"));

        SampleEvents silent(1, 10);
        silent.set_type(10, "Silent");
        replies = handler.handle(silent.all());
        REQUIRE(replies.size() == 1);
        CHECK(*replies[0].error == "plugin c_rules failed (its handle function returned 7) without giving a reason");

        SampleEvents double_event(1, 11);
        double_event.set_type(11, "Double");
        replies = handler.handle(double_event.all());
        REQUIRE(replies.size() == 1);
        CHECK(*replies[0].error == "half done");
        CHECK(replies[0].statements.empty()); // what a failed event queued is dropped
    }

    TEST_CASE("a failed open fails the first event, and is tried again on the next call") {
        PluginHandler handler(PluginLibrary::load(build_path("PROJECTIOND_C_RULES_PLUGIN")), "refuse", 3);
        SampleEvents events(2);
        for (int attempt = 0; attempt < 2; ++attempt) {
            const auto replies = handler.handle(events.all());
            REQUIRE(replies.size() == 1);
            CHECK(*replies[0].error == "plugin c_rules could not open: will not work for refuse/3");
        }
    }

    TEST_CASE("the C++ header: parameters of every kind, exceptions as failures") {
        LogCapture log;
        PluginHandler handler(PluginLibrary::load(build_path("PROJECTIOND_CPP_RULES_PLUGIN")), "rules", 4);
        SampleEvents events(3);
        events.set_type(2, "Rejected");
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 2);
        REQUIRE_FALSE(replies[0].failed());
        const auto& params = replies[0].statements.at(0).params;
        REQUIRE(params.size() == 7);
        CHECK(params[0] == "rules");
        CHECK(params[1] == "1");
        CHECK(params[2] == "2.5");
        CHECK(params[3] == "true");
        CHECK_FALSE(params[4]);
        CHECK_FALSE(params[5]);
        CHECK(params[6] == std::string(events.at(0).payload));
        CHECK(*replies[1].error == "rejected 00000000-0000-4000-8000-000000000002");
        CHECK(log.find("plugin cpp_rules: rules ready for partition 4"));

        PluginHandler refused(PluginLibrary::load(build_path("PROJECTIOND_CPP_RULES_PLUGIN")), "refuse", 0);
        const auto failed = refused.handle(events.all());
        REQUIRE(failed.size() == 1);
        CHECK(*failed[0].error == "plugin cpp_rules could not open: no rules for refuse");
    }
}
