#include "child_process.hpp"
#include "handler_fixtures.hpp"
#include "handlers/exec_handler.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <cstdlib>

using namespace std::chrono_literals;
using projectiond::handlers::ExecHandler;
using projectiond::handlers::ExecSettings;
using projectiond::testing::build_path;
using projectiond::testing::ChildProcess;
using projectiond::testing::LogCapture;
using projectiond::testing::process_gone;
using projectiond::testing::SampleEvents;
using projectiond::testing::wait_until;
using Clock = std::chrono::steady_clock;

namespace {

ExecSettings settings_for(const std::string& mode) {
    ExecSettings settings;
    settings.command = {build_path("PROJECTIOND_FAKE_HANDLER"), mode};
    settings.projection = "lifecycle";
    settings.stop_grace = 300ms;
    return settings;
}

pid_t started_child(ExecHandler& handler) {
    SampleEvents events(1);
    const auto replies = handler.handle(events.all());
    REQUIRE(replies.size() == 1);
    REQUIRE_FALSE(replies[0].failed());
    REQUIRE(handler.child_pid());
    return *handler.child_pid();
}

} // namespace

TEST_SUITE("exec handler lifecycle") {
    TEST_CASE("stop closes stdin, and a child that ends on end of input is gone at once") {
        LogCapture log;
        ExecHandler handler(settings_for("echo"));
        const pid_t child = started_child(handler);
        const auto start = Clock::now();
        handler.stop();
        CHECK(Clock::now() - start < 300ms); // no SIGTERM needed
        CHECK(process_gone(child));
        CHECK_FALSE(handler.child_pid());
        CHECK(log.find("stopped fake_handler.py[" + std::to_string(child) + "]: it exited with status 0"));
    }

    TEST_CASE("stop ends a child that ignores end of input and SIGTERM with SIGKILL, in bounded time") {
        ExecHandler handler(settings_for("stubborn"));
        const pid_t child = started_child(handler);
        const auto start = Clock::now();
        handler.stop();
        const auto took = Clock::now() - start;
        CHECK(took >= 600ms); // two graces: after closing stdin, after SIGTERM
        CHECK(took < 3s);
        CHECK(process_gone(child)); // and reaped: not even a zombie is left
    }

    TEST_CASE("a stopped handler starts a new child when events come again") {
        ExecHandler handler(settings_for("echo"));
        const pid_t first = started_child(handler);
        handler.stop();
        CHECK(started_child(handler) != first);
    }

    TEST_CASE("destroying the handler leaves no child behind") {
        pid_t child = 0;
        {
            ExecHandler handler(settings_for("stubborn"));
            child = started_child(handler);
        }
        CHECK(process_gone(child));
    }

    TEST_CASE("no child outlives its daemon killed with SIGKILL") {
        // The child ignores SIGTERM and the end of its stdin: only the
        // parent-death signal can end it.
        ChildProcess parent(
            {build_path("PROJECTIOND_HANDLER_PARENT"), build_path("PROJECTIOND_FAKE_HANDLER"), "stubborn"});
        REQUIRE_MESSAGE(wait_until([&] { return parent.output().find('\n') != std::string::npos; }, 10s),
                        parent.errors());
        const std::string line = parent.output();
        REQUIRE(line.rfind("child ", 0) == 0);
        const pid_t child = std::stoi(line.substr(6));
        REQUIRE_FALSE(process_gone(child));

        parent.signal(SIGKILL);
        REQUIRE(parent.wait_for_exit(5s));
        CHECK_MESSAGE(wait_until([&] { return process_gone(child); }, 5s), "child " << child << " outlived its parent");
        if (!process_gone(child)) {
            ::kill(child, SIGKILL);
        }
    }
}
