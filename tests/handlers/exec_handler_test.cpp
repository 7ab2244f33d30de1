#include "handler_fixtures.hpp"
#include "handlers/exec_handler.hpp"
#include "store/database_error.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

using namespace std::chrono_literals;
using projectiond::handlers::ExecHandler;
using projectiond::handlers::ExecSettings;
using projectiond::handlers::Reply;
using projectiond::testing::build_path;
using projectiond::testing::LogCapture;
using projectiond::testing::process_gone;
using projectiond::testing::SampleEvents;
using projectiond::testing::wait_until;
using Clock = std::chrono::steady_clock;

namespace {

ExecSettings fake(const std::string& mode, std::optional<int> at = std::nullopt) {
    ExecSettings settings;
    settings.command = {build_path("PROJECTIOND_FAKE_HANDLER"), mode};
    if (at) {
        settings.command.push_back(std::to_string(*at));
    }
    settings.projection = "tested";
    settings.partition = 2;
    settings.reply_timeout = 10s;
    settings.restart_first = 10ms;
    settings.restart_cap = 100ms;
    settings.stop_grace = 200ms;
    return settings;
}

// The (global_position, event_type) that echo mode answers with.
void check_echo(const Reply& reply, std::int64_t position) {
    CAPTURE(position);
    REQUIRE_FALSE(reply.failed());
    REQUIRE(reply.statements.size() == 1);
    CHECK(reply.statements[0].sql == "SELECT $1, $2");
    REQUIRE(reply.statements[0].params.size() == 2);
    CHECK(reply.statements[0].params[0] == std::to_string(position));
    CHECK(reply.statements[0].params[1] == "Tested");
}

const std::string counter_sql = "INSERT INTO plugin_counts (projection, n) VALUES ($1, 1) ON CONFLICT (projection) "
                                "DO UPDATE SET n = plugin_counts.n + 1";

} // namespace

TEST_SUITE("exec handler") {
    TEST_CASE("the Python example answers every event with the counter statement for its projection") {
        ExecSettings settings = fake("unused");
        settings.command = {build_path("PROJECTIOND_EXAMPLE_EXEC_HANDLER")};
        ExecHandler handler(settings);
        SampleEvents events(3);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 3);
        for (const auto& reply : replies) {
            REQUIRE_FALSE(reply.failed());
            REQUIRE(reply.statements.size() == 1);
            CHECK(reply.statements[0].sql == counter_sql);
            CHECK(reply.statements[0].params == std::vector<std::optional<std::string>>{"tested"});
        }
    }

    TEST_CASE("one long-lived child answers call after call, started on first use") {
        ExecHandler handler(fake("echo"));
        CHECK_FALSE(handler.child_pid());
        SampleEvents first(2, 1);
        auto replies = handler.handle(first.all());
        REQUIRE(replies.size() == 2);
        check_echo(replies[0], 1);
        check_echo(replies[1], 2);
        const auto pid = handler.child_pid();
        REQUIRE(pid);
        SampleEvents second(3, 3);
        replies = handler.handle(second.all());
        REQUIRE(replies.size() == 3);
        check_echo(replies[2], 5);
        CHECK(handler.child_pid() == pid);
        CHECK(handler.handle({}).empty());
    }

    TEST_CASE("the child reads every column of the event") {
        ExecHandler handler(fake("line"));
        SampleEvents events(1, 7);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 1);
        REQUIRE_FALSE(replies[0].failed());
        const auto event = nlohmann::json::parse(*replies[0].statements[0].params[0]);
        CHECK(event["global_position"] == 7);
        CHECK(event["payload"]["email"] == "user7@example.org");
        CHECK(event["metadata"].is_null());
        CHECK(event["event_id"] == "00000000-0000-4000-8000-000000000007");
    }

    TEST_CASE("a big batch with big replies flows through both pipes without deadlock") {
        ExecHandler handler(fake("payload"));
        SampleEvents events(2000, 1, 4096); // about 8 MiB each way, far beyond a pipe's 64 KiB
        const auto start = Clock::now();
        const auto replies = handler.handle(events.all());
        CHECK(Clock::now() - start < 60s);
        REQUIRE(replies.size() == 2000);
        for (std::size_t i = 0; i < replies.size(); i += 499) {
            REQUIRE_FALSE(replies[i].failed());
            CHECK(nlohmann::json::parse(*replies[i].statements[0].params[0])["name"] ==
                  "User " + std::to_string(i + 1));
        }
    }

    TEST_CASE("an error reply fails that event, the later ones are not handled, and the child stays in step") {
        ExecHandler handler(fake("error-at", 3));
        SampleEvents events(6);
        auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 3);
        check_echo(replies[0], 1);
        check_echo(replies[1], 2);
        REQUIRE(replies[2].failed());
        CHECK(*replies[2].error == "rejected position 3");
        CHECK(replies[2].statements.empty());

        // The same child goes on, and its answers to 4..6 (written before it
        // failed 3) are not taken for answers to the next call.
        const auto pid = handler.child_pid();
        SampleEvents next(2, 10);
        replies = handler.handle(next.all());
        REQUIRE(replies.size() == 2);
        check_echo(replies[0], 10);
        check_echo(replies[1], 11);
        CHECK(handler.child_pid() == pid);
    }

    TEST_CASE("a reply that is not JSON fails that event, and the child is replaced") {
        ExecHandler handler(fake("invalid-at", 2));
        SampleEvents events(4);
        auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 2);
        check_echo(replies[0], 1);
        REQUIRE(replies[1].failed());
        CHECK(replies[1].error->find("exec handler 'fake_handler.py': the reply is not valid JSON") == 0);
        CHECK(replies[1].error->find("this is not json") != std::string::npos);
        CHECK_FALSE(handler.child_pid());

        SampleEvents next(2, 10);
        replies = handler.handle(next.all());
        REQUIRE(replies.size() == 2);
        check_echo(replies[1], 11);
    }

    TEST_CASE("a reply of the wrong shape fails that event with what is wrong") {
        ExecHandler handler(fake("shape-at", 1));
        SampleEvents events(2);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 1);
        REQUIRE(replies[0].failed());
        CHECK(replies[0].error->find("'sql' must be an array of statements, not string") != std::string::npos);
    }

    TEST_CASE("a line nobody asked for replaces the child, and the replies before it stand") {
        ExecHandler handler(fake("extra-at", 2));
        SampleEvents events(2);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 2);
        check_echo(replies[0], 1);
        check_echo(replies[1], 2);
        CHECK_FALSE(handler.child_pid()); // replaced: it is out of step

        SampleEvents next(1, 3);
        const auto later = handler.handle(next.all());
        REQUIRE(later.size() == 1);
        check_echo(later[0], 3);
    }

    TEST_CASE("no reply within exec_timeout fails the event; the child is killed and restarted") {
        ExecSettings settings = fake("hang-at", 2);
        settings.reply_timeout = 1500ms; // more than a fresh Python needs to answer
        ExecHandler handler(settings);
        SampleEvents events(3);
        SampleEvents warm_up(1, 100);
        REQUIRE(handler.handle(warm_up.all()).size() == 1);
        const pid_t hung = *handler.child_pid();

        const auto start = Clock::now();
        auto replies = handler.handle(events.all());
        const auto took = Clock::now() - start;
        CHECK(took >= 1500ms);
        CHECK(took < 6s);
        REQUIRE(replies.size() == 2);
        check_echo(replies[0], 1);
        REQUIRE(replies[1].failed());
        CHECK(*replies[1].error == "exec handler 'fake_handler.py' gave no reply within 1500ms and was killed");
        CHECK(wait_until([&] { return process_gone(hung); }, 5s));

        SampleEvents next(1, 10);
        replies = handler.handle(next.all());
        REQUIRE(replies.size() == 1);
        check_echo(replies[0], 10);
        CHECK(handler.child_pid() != hung);
    }

    TEST_CASE("the child exiting mid-batch fails that event, with its exit status and last words") {
        ExecHandler handler(fake("exit-at", 3));
        SampleEvents events(5);
        auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 3);
        check_echo(replies[0], 1);
        check_echo(replies[1], 2);
        REQUIRE(replies[2].failed());
        const std::string& error = *replies[2].error;
        CHECK(error.find("exec handler 'fake_handler.py' (pid ") == 0);
        CHECK(error.find("exited with status 3 before replying") != std::string::npos);
        CHECK(error.find("its last line on stderr: giving up at 3") != std::string::npos);

        // The next call starts a new child (the events before 3 pass again).
        SampleEvents retry(2, 1);
        replies = handler.handle(retry.all());
        REQUIRE(replies.size() == 2);
        check_echo(replies[1], 2);
    }

    TEST_CASE("a child that died while idle is replaced before the next events are sent") {
        ExecHandler handler(fake("echo"));
        SampleEvents events(1);
        REQUIRE(handler.handle(events.all()).size() == 1);
        const pid_t first = *handler.child_pid();
        REQUIRE(::kill(first, SIGKILL) == 0);
        REQUIRE(wait_until([&] { return process_gone(first); }, 5s));

        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 1);
        check_echo(replies[0], 1);
        CHECK(handler.child_pid() != first);
    }

    TEST_CASE("a program that cannot be run fails the event with the reason") {
        ExecSettings settings = fake("echo");
        SampleEvents events(2);
        SUBCASE("missing file") {
            settings.command = {"/nonexistent/handler.py"};
            ExecHandler handler(settings);
            const auto replies = handler.handle(events.all());
            REQUIRE(replies.size() == 1);
            CHECK(*replies[0].error ==
                  "cannot start the exec handler: cannot run '/nonexistent/handler.py': No such file or directory");
        }
        SUBCASE("not in PATH") {
            settings.command = {"projectiond-no-such-handler"};
            ExecHandler handler(settings);
            const auto replies = handler.handle(events.all());
            REQUIRE(replies.size() == 1);
            CHECK(replies[0].error->find("cannot find 'projectiond-no-such-handler' in PATH") != std::string::npos);
        }
    }

    TEST_CASE("restarts after consecutive failures wait longer and longer, up to the cap") {
        ExecSettings settings = fake("echo");
        settings.command = {"/bin/false"};
        settings.restart_first = 200ms;
        settings.restart_cap = 400ms;
        ExecHandler handler(settings);
        SampleEvents events(1);
        auto timed_call = [&] {
            const auto start = Clock::now();
            const auto replies = handler.handle(events.all());
            REQUIRE(replies.size() == 1);
            CHECK(replies[0].error->find("exited with status 1 before replying") != std::string::npos);
            return Clock::now() - start;
        };
        CHECK(timed_call() < 200ms); // the first start does not wait
        CHECK(timed_call() >= 200ms);
        const auto third = timed_call();
        CHECK(third >= 400ms);
        CHECK(third < 2s);
        CHECK(timed_call() < 2s); // capped
    }

    TEST_CASE("the environment names the projection and partition, without systemd's variables for the daemon") {
        ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
        ExecHandler handler(fake("env"));
        SampleEvents events(1);
        const auto replies = handler.handle(events.all());
        ::unsetenv("NOTIFY_SOCKET");
        REQUIRE(replies.size() == 1);
        REQUIRE_FALSE(replies[0].failed());
        const auto& params = replies[0].statements[0].params;
        REQUIRE(params.size() == 3);
        CHECK(params[0] == "tested");
        CHECK(params[1] == "2");
        CHECK_FALSE(params[2].has_value());
    }

    TEST_CASE("the child's stderr lines reach the log with the projection's fields") {
        LogCapture log;
        ExecHandler handler(fake("stderr"));
        SampleEvents events(2, 41);
        REQUIRE(handler.handle(events.all()).size() == 2);
        REQUIRE(wait_until([&] { return log.find("handling position 42").has_value(); }, 5s));
        const auto line = *log.find("handling position 41");
        CHECK(line.text.find("fake_handler.py[") == 0);
        CHECK(line.projection == "tested");
        CHECK(line.partition == 2);
    }

    TEST_CASE("an interrupt abandons the wait; the child is replaced") {
        ExecSettings settings = fake("hang-at", 1);
        ExecHandler handler(settings);
        const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(wake >= 0);
        std::atomic<bool> stop{false};
        projectiond::store::Interrupt interrupt{wake, [&] {
                                                    std::uint64_t count = 0;
                                                    [[maybe_unused]] auto got = ::read(wake, &count, sizeof count);
                                                    return stop.load();
                                                }};
        handler.set_interrupt(&interrupt);
        std::thread stopper([&] {
            std::this_thread::sleep_for(200ms); // lets the call reach its wait
            const std::uint64_t one = 1;
            [[maybe_unused]] auto written = ::write(wake, &one, sizeof one); // a wake-up that does not give up
            std::this_thread::sleep_for(100ms);
            stop = true;
            written = ::write(wake, &one, sizeof one);
        });
        SampleEvents events(2);
        const auto start = Clock::now();
        CHECK_THROWS_AS(handler.handle(events.all()), projectiond::store::Interrupted);
        CHECK(Clock::now() - start >= 300ms);
        CHECK(Clock::now() - start < 5s);
        stopper.join();
        CHECK_FALSE(handler.child_pid());
        handler.set_interrupt(nullptr);
        ::close(wake);
    }
}
