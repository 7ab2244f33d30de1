// Handlers in code (SPEC section 11) end to end: the example plugin
// (build/examples/counter.so) and the example exec handler
// (examples/exec-handler/counter.py) run by the real daemon against a real
// PostgreSQL, through kill -9, failures, partitions, filters, reload and drain.
//
// Both examples count events with a statement that is wrong if run twice
// (`n = plugin_counts.n + 1`), so an exact count proves that what the code
// returned committed with the checkpoint, once.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "test_database.hpp"
#include "wait.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

using namespace projectiond;
using namespace projectiond::testing;
using namespace std::chrono_literals;

namespace {

std::string root(const char* variable) {
    const char* value = std::getenv(variable);
    REQUIRE_MESSAGE(value != nullptr, variable << " is not set; run the tests with `meson test`");
    return value;
}

std::string counter_plugin() {
    return root("PROJECTIOND_BUILD_ROOT") + "/examples/counter.so";
}
std::string wrong_abi_plugin() {
    return root("PROJECTIOND_BUILD_ROOT") + "/tests/wrong_abi.so";
}
std::string exec_counter() {
    return root("PROJECTIOND_SOURCE_ROOT") + "/examples/exec-handler/counter.py";
}
std::string faulty_counter() {
    return root("PROJECTIOND_SOURCE_ROOT") + "/tests/handlers/programs/faulty_counter.py";
}

std::string plugin_handler() {
    return fmt::format("{{plugin: {}}}", counter_plugin());
}
std::string exec_handler(const std::string& extra_argument = "") {
    return fmt::format("{{exec: [/usr/bin/python3, {}{}]}}", extra_argument.empty() ? "" : extra_argument + ", ",
                       exec_counter());
}

// tests/handlers/programs/fake_handler.py in its mode that ignores SIGTERM
// and the end of its input: only SIGKILL ends it.
std::string stubborn_handler() {
    return fmt::format("{{exec: [/usr/bin/python3, {}/tests/handlers/programs/fake_handler.py, stubborn]}}",
                       root("PROJECTIOND_SOURCE_ROOT"));
}

const char* const counts_table =
    "CREATE TABLE IF NOT EXISTS plugin_counts (projection text PRIMARY KEY, n bigint NOT NULL)";

// One projection counting every event (`"*"`) with `handler`; `extra` holds
// more keys of the projection, each line indented by four spaces.
std::string counting_projection(const std::string& name, const std::string& handler, const std::string& extra = "") {
    return fmt::format("  - name: {}\n{}    setup: {}\n    handlers:\n      \"*\": {}\n", name, extra, counts_table,
                       handler);
}

std::string config_with(int batch_size, const std::string& projections) {
    return fmt::format("defaults:\n  batch_size: {}\n  poll_interval: 1s\nprojections:\n{}", batch_size, projections);
}

long long count_of(const TestDatabase& db, const std::string& projection) {
    return db.number("SELECT coalesce((SELECT n FROM plugin_counts WHERE projection = '" + projection + "'), 0)");
}

// In one snapshot: the count equals the events the checkpoints say were applied.
bool count_matches_checkpoints(const TestDatabase& db, const std::string& projection) {
    return db.scalar("SELECT coalesce((SELECT n FROM plugin_counts WHERE projection = '" + projection +
                     "'), 0) = (SELECT sum(events_processed) FROM projection_checkpoints WHERE projection_name = '" +
                     projection + "')") == "t";
}

CommandResult run_projectiond(const TestDatabase& db, const TempFile& config, std::vector<std::string> arguments) {
    std::vector<std::string> argv{projectiond_binary(), "-c", config.path(), "--database-url", db.conninfo()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return run_command(argv);
}

// Every daemon a test starts gets this variable, which its exec children
// inherit: it tells them apart from those of other tests and suites.
const char* const run_variable = "PROJECTIOND_TEST_RUN";
std::map<std::string, std::string> tagged(const TestDatabase& db) {
    return {{run_variable, db.name()}};
}

std::string read_whole(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

// Gone, or a zombie nobody reaps (an orphan's parent may be a PID 1 that does not).
bool process_gone(pid_t pid) {
    const std::string stat = read_whole(fmt::format("/proc/{}/stat", pid));
    const auto paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
}

struct ExecChild {
    pid_t pid = 0;
    std::string projection; // PROJECTIOND_PROJECTION
    std::string partition;  // PROJECTIOND_PARTITION
    std::string command;    // its command line, arguments separated by blanks
};

// The live exec children of the daemons started with tagged(db): processes
// whose environment has PROJECTIOND_PROJECTION and the test's tag, whoever
// their parent is now (the daemon, or PID 1 once the daemon died).
std::vector<ExecChild> exec_children(const TestDatabase& db) {
    std::vector<ExecChild> found;
    const std::string tag = std::string(run_variable) + "=" + db.name();
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename();
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            continue;
        }
        const pid_t pid = std::stoi(name);
        std::istringstream environment(read_whole(entry.path() / "environ"));
        bool ours = false;
        ExecChild child{pid, {}, {}, {}};
        bool has_projection = false;
        for (std::string item; std::getline(environment, item, '\0');) {
            ours = ours || item == tag;
            if (item.rfind("PROJECTIOND_PROJECTION=", 0) == 0) {
                child.projection = item.substr(23);
                has_projection = true;
            } else if (item.rfind("PROJECTIOND_PARTITION=", 0) == 0) {
                child.partition = item.substr(22);
            }
        }
        if (!ours || !has_projection || process_gone(pid)) {
            continue;
        }
        std::string command = read_whole(entry.path() / "cmdline");
        std::replace(command.begin(), command.end(), '\0', ' ');
        child.command = command;
        found.push_back(child);
    }
    return found;
}

// Waits for exactly `count` live exec children of the test's daemons.
std::vector<ExecChild> wait_for_children(const TestDatabase& db, std::size_t count,
                                         std::chrono::milliseconds timeout = 30s) {
    std::vector<ExecChild> children;
    wait_until(
        [&] {
            children = exec_children(db);
            return children.size() == count;
        },
        timeout, 5ms);
    return children;
}

// Bytes the daemon wrote to the process's stdin that it has not read (-1
// when that cannot be told): with the process stopped (SIGSTOP), more than
// 0 means the daemon is in the middle of a batch with it.
long unread_input(pid_t pid) {
    const int fd = ::open(fmt::format("/proc/{}/fd/0", pid).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int bytes = -1;
    if (::ioctl(fd, FIONREAD, &bytes) < 0) {
        bytes = -1;
    }
    ::close(fd);
    return bytes;
}

// Stops the exec child and waits until the daemon has lines out to it:
// from then on, until SIGCONT or SIGKILL, a batch is in flight with it.
void freeze_mid_batch(pid_t child) {
    REQUIRE(::kill(child, SIGSTOP) == 0);
    REQUIRE_MESSAGE(wait_until([&] { return unread_input(child) > 0; }, 10s, 5ms),
                    "the daemon sent no lines to the stopped child");
}

// kill -9 of the daemon, again and again while it catches up; the count
// stays equal to what the checkpoints say at every kill, and exact at the end.
void count_survives_kill_9(const std::string& handler, long long events, int kills) {
    TestDatabase db;
    append(db, events);
    DaemonProcess daemon(db, config_with(500, counting_projection("counter", handler)), tagged(db));
    INFO("log of daemon:\n" << daemon.log());
    const long long step = events / (kills + 2);
    long long last = 0;
    for (int kill = 1; kill <= kills; ++kill) {
        REQUIRE(wait_until([&] { return checkpoint(db, "counter") >= last + step; }, 120s, 5ms));
        daemon.process().signal(SIGKILL);
        REQUIRE(daemon.process().wait_for_exit(10s) == 128 + SIGKILL);
        last = checkpoint(db, "counter");
        MESSAGE("kill " << kill << " at checkpoint " << last << " of " << events);
        CHECK(last < events); // mid-catch-up
        // One snapshot: the killed client's last batch may still be committing (atomically).
        CHECK(count_matches_checkpoints(db, "counter"));
        daemon.restart();
    }
    REQUIRE(caught_up(db, "counter", 180s));
    CHECK(daemon.stop(SIGTERM) == 0);
    CHECK(count_of(db, "counter") == events);
    CHECK(db.number("SELECT events_processed FROM projection_checkpoints WHERE projection_name = 'counter'") == events);
}

// The events of one failing-on-purpose exec projection: 20 UserCreated,
// "User 7" the one its program refuses (`mode`: error or invalid).
std::string faulty_config(const std::string& mode, const std::string& on_error) {
    return fmt::format(R"(defaults:
  batch_size: 8
  on_error: {}
  max_retries: 1
projections:
  - name: faulty
    setup: |
      {};
      CREATE TABLE IF NOT EXISTS counted (position bigint PRIMARY KEY)
    handlers:
      UserCreated: {{exec: [/usr/bin/python3, {}, {}, "User 7"]}}
)",
                       on_error, counts_table, faulty_counter(), mode);
}

// What the daemon records for each kind of faulty reply.
std::string expected_error(const std::string& mode) {
    return mode == "error" ? "refused User 7" : "the reply is not valid JSON";
}

// The lines of `status` for each projection, with its name replaced by NAME.
std::map<std::string, std::string> status_blocks(const std::string& out) {
    std::map<std::string, std::string> blocks;
    std::size_t at = out.find("Projection: ");
    while (at != std::string::npos) {
        const std::size_t next = out.find("Projection: ", at + 1);
        std::string block = out.substr(at, next == std::string::npos ? std::string::npos : next - at);
        const std::size_t name_end = block.find('\n');
        const std::string name = block.substr(12, name_end - 12);
        block.replace(12, name_end - 12, "NAME");
        block.erase(block.find_last_not_of('\n') + 1); // the blank line between blocks
        blocks[name] = block;
        at = next;
    }
    return blocks;
}

} // namespace

TEST_SUITE("code handlers") {
    TEST_CASE("kill -9 of the daemon again and again during a catch-up: the counter plugin's count is exact") {
        count_survives_kill_9(plugin_handler(), 50000, 3);
    }

    TEST_CASE("kill -9 of the daemon again and again during a catch-up: the exec example's count is exact") {
        count_survives_kill_9(exec_handler(), 40000, 3);
    }

    TEST_CASE("kill -9 of the exec child mid-batch: the batch is retried with a new child, the count is exact") {
        TestDatabase db;
        append(db, 30000);
        DaemonProcess daemon(db, config_with(1000, counting_projection("exec_counter", exec_handler())), tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        const auto first = wait_for_children(db, 1);
        REQUIRE(first.size() == 1);
        freeze_mid_batch(first[0].pid);
        const long long before = checkpoint(db, "exec_counter");
        CHECK(before < 30000);
        REQUIRE(::kill(first[0].pid, SIGKILL) == 0);

        // The daemon reaps the killed child and starts another for the retry.
        std::vector<ExecChild> second;
        REQUIRE(wait_until(
            [&] {
                second = exec_children(db);
                return second.size() == 1 && second[0].pid != first[0].pid;
            },
            30s, 5ms));
        REQUIRE(caught_up(db, "exec_counter", 120s));
        CHECK(wait_until([&] { return process_gone(first[0].pid); }, 5s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(count_of(db, "exec_counter") == 30000);
        CHECK(db.number("SELECT events_processed FROM projection_checkpoints") == 30000);
        const std::string log = daemon.log();
        CHECK(contains(log, fmt::format("exec handler 'python3' (pid {}) was killed by signal 9", first[0].pid)));
        CHECK(contains(log, fmt::format("started exec handler 'python3' as python3[{}]", second[0].pid)));
    }

    TEST_CASE("an exec reply {\"error\": ...} or one that is not JSON, under on_error: skip: the event is a dead "
              "letter, the others are applied exactly once") {
        for (const std::string mode : {"error", "invalid"}) {
            CAPTURE(mode);
            TestDatabase db;
            append(db, 20);
            DaemonProcess daemon(db, faulty_config(mode, "skip"), tagged(db));
            INFO("log of daemon:\n" << daemon.log());
            REQUIRE(caught_up(db, "faulty"));
            CHECK(daemon.stop(SIGTERM) == 0);
            const long long poison = db.number("SELECT global_position FROM events WHERE payload->>'name' = 'User 7'");
            CHECK(count_of(db, "faulty") == 19);
            CHECK(db.number("SELECT count(*) FROM counted") == 19);
            CHECK(db.number("SELECT count(*) FROM counted WHERE position = " + std::to_string(poison)) == 0);
            CHECK(db.number("SELECT count(*) FROM projection_dead_letters") == 1);
            CHECK(db.number("SELECT global_position FROM projection_dead_letters WHERE projection_name = 'faulty'") ==
                  poison);
            CHECK(contains(db.scalar("SELECT error FROM projection_dead_letters"), expected_error(mode)));
            const auto listed = run_projectiond(db, daemon.config(), {"dead-letters"});
            CHECK(listed.exit_code == 0);
            CHECK(contains(listed.out, fmt::format("faulty partition 0: position {}", poison)));
            CHECK(contains(listed.out, expected_error(mode)));
        }
    }

    TEST_CASE("an exec reply {\"error\": ...} or one that is not JSON, under on_error: stop: failed at that "
              "event, the events before it applied, status exits 1 and says why") {
        for (const std::string mode : {"error", "invalid"}) {
            CAPTURE(mode);
            TestDatabase db;
            append(db, 20);
            DaemonProcess daemon(db, faulty_config(mode, "stop"), tagged(db));
            INFO("log of daemon:\n" << daemon.log());
            REQUIRE(wait_until([&] { return db.scalar("SELECT state FROM projection_checkpoints") == "failed"; }, 30s));
            CHECK(daemon.process().running());
            const long long poison = db.number("SELECT global_position FROM events WHERE payload->>'name' = 'User 7'");
            CHECK(db.number("SELECT failed_global_position FROM projection_checkpoints") == poison);
            CHECK(checkpoint(db, "faulty") == poison - 1);
            // The six events before it, in the batch that met it, committed once.
            CHECK(count_of(db, "faulty") == 6);
            CHECK(db.number("SELECT count(*) FROM counted") == 6);
            CHECK(db.number("SELECT max(position) FROM counted") == poison - 1);
            const auto status = run_projectiond(db, daemon.config(), {"status"});
            CHECK(status.exit_code == 1);
            CHECK(contains(status.out, fmt::format("Status: Failed at position {} (event {}): ", poison,
                                                   db.scalar("SELECT event_id FROM events WHERE global_position = " +
                                                             std::to_string(poison)))));
            CHECK(contains(status.out, expected_error(mode)));
            CHECK(db.number("SELECT count(*) FROM projection_dead_letters") == 0);
            CHECK(daemon.stop(SIGTERM) == 0);
        }
    }

    TEST_CASE("check-config and run exit 78 at file:line:column for a plugin of another ABI, a missing plugin "
              "and a missing exec program") {
        TestDatabase db;
        REQUIRE(std::filesystem::exists(wrong_abi_plugin()));
        // Line by line, so that the positions below can be counted.
        const std::string yaml = fmt::format(R"(projections:
  - name: wrong_abi
    handlers:
      "*": {{plugin: {}}}
  - name: missing_plugin
    handlers:
      "*": {{plugin: /nonexistent/counter.so}}
  - name: missing_program
    handlers:
      "*": {{exec: [/nonexistent/handler, --flag]}}
)",
                                             wrong_abi_plugin());
        TempFile config(yaml);
        const auto checked = run_projectiond(db, config, {"check-config"});
        CHECK(checked.exit_code == 78);
        INFO("check-config said:\n" << checked.err);
        CHECK(contains(checked.err, fmt::format("{}:4:12: the handler for '*' in projection 'wrong_abi': plugin {} "
                                                "was built for ABI 2, this projectiond speaks ABI 1",
                                                config.path(), wrong_abi_plugin())));
        CHECK(contains(checked.err, fmt::format("{}:7:12: the handler for '*' in projection 'missing_plugin': "
                                                "plugin /nonexistent/counter.so cannot be loaded: No such file",
                                                config.path())));
        CHECK(contains(checked.err, fmt::format("{}:10:12: the handler for '*' in projection 'missing_program': "
                                                "cannot run '/nonexistent/handler': No such file or directory",
                                                config.path())));
        CHECK(checked.out.empty());

        // The daemon refuses to start with the same messages.
        DaemonProcess daemon(db, yaml, tagged(db));
        CHECK(daemon.process().wait_for_exit(30s) == 78);
        CHECK(contains(daemon.log(), ":4:12: the handler for '*' in projection 'wrong_abi'"));
        CHECK(contains(daemon.log(), ":7:12: the handler for '*' in projection 'missing_plugin'"));
        CHECK(contains(daemon.log(), ":10:12: the handler for '*' in projection 'missing_program'"));
    }

    TEST_CASE("SIGTERM of the daemon leaves no exec child behind: each is stopped and reaped before it exits, "
              "one that ignores the end of its input and SIGTERM too") {
        TestDatabase db;
        append(db, 400);
        DaemonProcess daemon(
            db,
            config_with(50, counting_projection("exec_counter", exec_handler(), "    partitions: 2\n") +
                                counting_projection("stubborn", stubborn_handler())),
            tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "exec_counter", 60s, 2));
        REQUIRE(caught_up(db, "stubborn"));
        const auto children = wait_for_children(db, 3);
        REQUIRE(children.size() == 3);
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(exec_children(db).empty());
        for (const auto& child : children) {
            CAPTURE(child.projection);
            CHECK(process_gone(child.pid));
            CHECK(contains(daemon.log(), fmt::format("stopped python3[{}]: it {}", child.pid,
                                                     child.projection == "stubborn" ? "was killed by signal 9"
                                                                                    : "exited with status 0")));
        }
    }

    TEST_CASE("kill -9 of the daemon mid-catch-up leaves no exec child behind, not even one that ignores the end "
              "of its input and SIGTERM") {
        TestDatabase db;
        append(db, 40000);
        DaemonProcess daemon(
            db,
            config_with(500, counting_projection("exec_counter", exec_handler(), "    partitions: 2\n") +
                                 counting_projection("stubborn", stubborn_handler())),
            tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        const auto children = wait_for_children(db, 3);
        REQUIRE(children.size() == 3);
        CHECK(checkpoint(db, "exec_counter") < 20000);
        daemon.process().signal(SIGKILL);
        REQUIRE(daemon.process().wait_for_exit(10s) == 128 + SIGKILL);
        CHECK(wait_until([&] { return exec_children(db).empty(); }, 5s, 5ms));
        for (const auto& child : children) {
            CAPTURE(child.projection);
            // A child in the middle of exiting has already lost its
            // environment (so exec_children no longer finds it) but is not a
            // zombie yet: wait for that too.
            CHECK(wait_until([&] { return process_gone(child.pid); }, 5s, 5ms));
        }
    }

    TEST_CASE("partitions: 2 with the plugin and the exec example: one child per partition, each count exact") {
        TestDatabase db;
        append(db, 6000);
        const std::string partitioned = "    partitions: 2\n";
        DaemonProcess daemon(db,
                             config_with(200, counting_projection("plugin_split", plugin_handler(), partitioned) +
                                                  counting_projection("exec_split", exec_handler(), partitioned)),
                             tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "plugin_split", 60s, 2));
        REQUIRE(caught_up(db, "exec_split", 60s, 2));
        const auto children = wait_for_children(db, 2);
        REQUIRE(children.size() == 2);
        std::vector<std::string> partitions;
        for (const auto& child : children) {
            CHECK(child.projection == "exec_split");
            partitions.push_back(child.partition);
        }
        std::sort(partitions.begin(), partitions.end());
        CHECK(partitions == std::vector<std::string>{"0", "1"});
        CHECK(daemon.stop(SIGTERM) == 0);
        for (const std::string name : {"plugin_split", "exec_split"}) {
            CAPTURE(name);
            CHECK(count_of(db, name) == 6000);
            CHECK(db.number("SELECT count(*) FROM projection_checkpoints WHERE projection_name = '" + name +
                            "' AND events_processed > 1000") == 2);
            CHECK(db.number("SELECT sum(events_processed) FROM projection_checkpoints WHERE projection_name = '" +
                            name + "'") == 6000);
        }
    }

    TEST_CASE("an event_types filter: code handlers see only the events it lets through, and the checkpoint "
              "passes the rest") {
        TestDatabase db;
        append(db, 30);
        {
            store::Connection conn = db.connect();
            conn.exec("SELECT append_events('Identity', 'User', 'renamed-' || i, 0, "
                      "'[{\"event_type\": \"UserRenamed\", \"payload\": {\"name\": \"R\"}}]') "
                      "FROM generate_series(1, 20) i");
        }
        append(db, 10);
        const std::string filtered = "    event_types: [UserCreated]\n";
        DaemonProcess daemon(db,
                             config_with(7, counting_projection("plugin_created", plugin_handler(), filtered) +
                                                counting_projection("exec_created", exec_handler(), filtered)),
                             tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "plugin_created"));
        REQUIRE(caught_up(db, "exec_created"));
        CHECK(daemon.stop(SIGTERM) == 0);
        for (const std::string name : {"plugin_created", "exec_created"}) {
            CAPTURE(name);
            CHECK(count_of(db, name) == 40);
            CHECK(checkpoint(db, name) == max_position(db));
            CHECK(db.number("SELECT events_processed FROM projection_checkpoints WHERE projection_name = '" + name +
                            "'") == 40);
        }
    }

    TEST_CASE("SIGHUP that changes an exec projection stops its old child and starts the new command") {
        TestDatabase db;
        append(db, 200);
        DaemonProcess daemon(db, config_with(50, counting_projection("exec_counter", exec_handler())), tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        REQUIRE(caught_up(db, "exec_counter"));
        const auto before = wait_for_children(db, 1);
        REQUIRE(before.size() == 1);
        CHECK_FALSE(contains(before[0].command, " -u "));

        daemon.config().write(config_with(50, counting_projection("exec_counter", exec_handler("-u"))));
        daemon.process().signal(SIGHUP);
        REQUIRE(daemon.wait_for_log("reloaded: 0 added, 1 changed (restarted), 0 removed, 0 unchanged"));
        CHECK(wait_until([&] { return process_gone(before[0].pid); }, 10s));
        CHECK(daemon.wait_for_log(fmt::format("stopped python3[{}]: it exited with status 0", before[0].pid)));

        append(db, 100);
        REQUIRE(caught_up(db, "exec_counter"));
        const auto after = wait_for_children(db, 1);
        REQUIRE(after.size() == 1);
        CHECK(after[0].pid != before[0].pid);
        CHECK(contains(after[0].command, "/usr/bin/python3 -u "));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(count_of(db, "exec_counter") == 300);
    }

    TEST_CASE("SIGTERM while an exec batch is in flight: the daemon waits for it, commits it, and stops") {
        TestDatabase db;
        append(db, 20000);
        DaemonProcess daemon(db, config_with(500, counting_projection("exec_counter", exec_handler())), tagged(db));
        INFO("log of daemon:\n" << daemon.log());
        const auto children = wait_for_children(db, 1);
        REQUIRE(children.size() == 1);
        const pid_t child = children[0].pid;
        freeze_mid_batch(child);
        const long long before = checkpoint(db, "exec_counter");
        CHECK(before < 20000 - 500);

        daemon.process().signal(SIGTERM);
        REQUIRE(daemon.wait_for_log("SIGTERM received"));
        CHECK_FALSE(daemon.process().wait_for_exit(300ms)); // it waits for the batch in flight
        CHECK(checkpoint(db, "exec_counter") == before);
        REQUIRE(::kill(child, SIGCONT) == 0);
        CHECK(daemon.process().wait_for_exit(30s) == 0);
        CHECK(contains(daemon.log(), "all checkpoints saved"));
        CHECK(process_gone(child));
        // Exactly the batch in flight committed, with its count, and none after it began.
        CHECK(checkpoint(db, "exec_counter") == before + 500);
        CHECK(count_of(db, "exec_counter") == before + 500);
        CHECK(count_matches_checkpoints(db, "exec_counter"));

        daemon.restart();
        REQUIRE(caught_up(db, "exec_counter", 60s));
        CHECK(daemon.stop(SIGTERM) == 0);
        CHECK(contains(daemon.log(), fmt::format("Resuming from checkpoint: position {}", before + 500)));
        CHECK(count_of(db, "exec_counter") == 20000);
    }

    TEST_CASE("status shows code projections with the same lines as a SQL projection") {
        TestDatabase db;
        append(db, 300);
        const std::string sql_handler =
            "\"INSERT INTO plugin_counts (projection, n) VALUES ('sql_counter', 1) ON CONFLICT (projection) DO UPDATE "
            "SET n = plugin_counts.n + 1\"";
        const std::string yaml = config_with(100, counting_projection("sql_counter", sql_handler) +
                                                      counting_projection("plugin_counter", plugin_handler()) +
                                                      counting_projection("exec_counter", exec_handler()));
        TempFile config(yaml);
        const auto compare = [&](const std::string& when) {
            CAPTURE(when);
            const auto status = run_projectiond(db, config, {"status"});
            CHECK(status.exit_code == 0);
            INFO("status said:\n" << status.out);
            auto blocks = status_blocks(status.out);
            REQUIRE(blocks.size() == 3);
            CHECK(blocks["plugin_counter"] == blocks["sql_counter"]);
            CHECK(blocks["exec_counter"] == blocks["sql_counter"]);

            const auto json = run_projectiond(db, config, {"status", "--json"});
            CHECK(json.exit_code == 0);
            const auto document = nlohmann::json::parse(json.out);
            std::map<std::string, nlohmann::json> shapes;
            for (const auto& entry : document["projections"]) {
                nlohmann::json shape = entry;
                const std::string name = shape["name"];
                // Their names, times and rates differ; everything else is alike.
                for (const char* key : {"name", "updated_at", "last_event_at", "events_per_second", "eta_seconds"}) {
                    shape.erase(key);
                }
                shapes[name] = shape;
            }
            REQUIRE(shapes.size() == 3);
            CHECK(shapes["plugin_counter"] == shapes["sql_counter"]);
            CHECK(shapes["exec_counter"] == shapes["sql_counter"]);
        };
        compare("not started");
        {
            DaemonProcess daemon(db, yaml, tagged(db));
            INFO("log of daemon:\n" << daemon.log());
            for (const std::string name : {"sql_counter", "plugin_counter", "exec_counter"}) {
                REQUIRE(caught_up(db, name));
            }
            CHECK(daemon.stop(SIGTERM) == 0);
        }
        compare("caught up");
        for (const std::string name : {"sql_counter", "plugin_counter", "exec_counter"}) {
            CHECK(count_of(db, name) == 300);
        }
    }
}
