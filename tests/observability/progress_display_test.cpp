#include "observability/progress_display.hpp"
#include "screen.hpp"
#include "system/unique_fd.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace projectiond;
using namespace std::chrono_literals;
using observability::ProgressDisplay;
using observability::ProgressLine;
using system::UniqueFd;

namespace {

struct Pty {
    UniqueFd master;
    UniqueFd slave;
};

Pty open_pty(unsigned short columns) {
    int master = -1;
    int slave = -1;
    winsize size{};
    size.ws_row = 24;
    size.ws_col = columns;
    REQUIRE_MESSAGE(::openpty(&master, &slave, nullptr, nullptr, &size) == 0,
                    "openpty: ", std::string(std::strerror(errno)));
    return {UniqueFd(master), UniqueFd(slave)};
}

// Everything readable from `fd` until it stays quiet for a moment (or ends).
std::string drain(int fd, std::chrono::milliseconds quiet = 200ms) {
    std::string out;
    char buffer[4096];
    for (;;) {
        pollfd watched{fd, POLLIN, 0};
        if (::poll(&watched, 1, static_cast<int>(quiet.count())) <= 0) {
            return out;
        }
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got <= 0) {
            return out; // EIO on a pty master once the last slave is closed
        }
        out.append(buffer, static_cast<std::size_t>(got));
    }
}

bool contains(const std::vector<std::string>& rows, const std::string& text) {
    return std::any_of(rows.begin(), rows.end(),
                       [&](const std::string& row) { return row.find(text) != std::string::npos; });
}

std::string demo_binary() {
    const char* path = std::getenv("PROJECTIOND_PROGRESS_DEMO");
    REQUIRE_MESSAGE(path != nullptr, "PROJECTIOND_PROGRESS_DEMO is not set; run the tests with `meson test`");
    return path;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> result;
    for (auto& s : strings) {
        result.push_back(s.data());
    }
    result.push_back(nullptr);
    return result;
}

// The demo's environment: ours, with TERM set as a terminal user's would be.
std::vector<std::string> demo_environment() {
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        if (!std::string_view(*entry).starts_with("TERM=")) {
            environment.emplace_back(*entry);
        }
    }
    environment.emplace_back("TERM=xterm");
    return environment;
}

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

TEST_SUITE("progress display") {
    TEST_CASE("a line shows position, percent, the rate measured between updates, and the ETA") {
        int pipe_fds[2];
        REQUIRE(::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == 0);
        const UniqueFd read_end(pipe_fds[0]);
        const UniqueFd write_end(pipe_fds[1]);
        ProgressDisplay display(write_end.get());
        const auto start = ProgressDisplay::Clock::now();

        display.update({{"users", 0, 1000}}, start);
        CHECK(display.rows() == std::vector<std::string>{"users: position 0 of 1000 (0.0%), measuring rate"});
        display.update({{"users", 100, 1000}}, start + 1s);
        CHECK(display.rows() == std::vector<std::string>{"users: position 100 of 1000 (10.0%), 100 events/s, ETA 9s"});
        // Smoothed: a sudden 400/s moves the rate part of the way only.
        display.update({{"users", 500, 1000}}, start + 2s);
        CHECK(display.rows() == std::vector<std::string>{"users: position 500 of 1000 (50.0%), 190 events/s, ETA 3s"});
        display.update({{"users", 500, 1000}, {"audit/1", 7, 100000}}, start + 3s);
        REQUIRE(display.rows().size() == 2);
        CHECK(display.rows()[1] == "audit/1: position 7 of 100000 (0.0%), measuring rate");
        display.update({{"big", 0, 1000000}}, start);
        display.update({{"big", 1000, 1000000}}, start + 1s);
        CHECK(display.rows()[0].ends_with("1000 events/s, ETA 16m39s"));
        display.update({{"huge", 0, 100000000}}, start);
        display.update({{"huge", 1000, 100000000}}, start + 1s);
        CHECK(display.rows()[0].ends_with("ETA 27h46m"));
        display.update({{"stuck", 5, 10}}, start);
        display.update({{"stuck", 5, 10}}, start + 1s);
        CHECK(display.rows()[0].ends_with("0 events/s, ETA unknown"));
        display.update({{"stuck", 0, 10}}, start + 2s);
        CHECK(display.rows()[0].ends_with(" 0 events/s, ETA unknown"));
    }

    TEST_CASE("not a terminal: inactive, and not one byte written") {
        int pipe_fds[2];
        REQUIRE(::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == 0);
        const UniqueFd read_end(pipe_fds[0]);
        const UniqueFd write_end(pipe_fds[1]);
        {
            ProgressDisplay display(write_end.get());
            CHECK_FALSE(display.active());
            display.update({{"users", 10, 1000}});
            bool printed = false;
            display.print_around([&] { printed = true; });
            CHECK(printed);
            display.update({});
        }
        char byte = 0;
        CHECK(::read(read_end.get(), &byte, 1) == -1);
        CHECK(errno == EAGAIN);
    }

    TEST_CASE("on a terminal: draws its lines, redraws them in place, and clears them when caught up") {
        Pty pty = open_pty(80);
        testing::Screen screen;
        {
            ProgressDisplay display(pty.slave.get());
            REQUIRE(display.active());
            const auto start = ProgressDisplay::Clock::now();
            display.update({{"users", 0, 1000}, {"audit", 0, 1000}}, start);
            screen.feed(drain(pty.master.get()));
            CHECK(screen.rows() == std::vector<std::string>{"users: position 0 of 1000 (0.0%), measuring rate",
                                                            "audit: position 0 of 1000 (0.0%), measuring rate"});
            display.update({{"users", 100, 1000}}, start + 1s);
            screen.feed(drain(pty.master.get()));
            CHECK(screen.rows() ==
                  std::vector<std::string>{"users: position 100 of 1000 (10.0%), 100 events/s, ETA 9s"});
            display.update({}, start + 2s);
            screen.feed(drain(pty.master.get()));
            CHECK(screen.rows().empty());
        }
        CHECK(screen.unknown().empty());
    }

    TEST_CASE("on a terminal: a line wider than the terminal is cut, so that it never wraps") {
        Pty pty = open_pty(40);
        testing::Screen screen;
        ProgressDisplay display(pty.slave.get());
        display.update({{std::string(100, 'x'), 1, 2}});
        screen.feed(drain(pty.master.get()));
        REQUIRE(screen.rows().size() == 1);
        CHECK(screen.rows()[0] == std::string(39, 'x'));
    }

    TEST_CASE("`run` on a terminal: log lines print above the live lines, intact, and the lines go when caught up") {
        std::vector<std::string> argv = {demo_binary()};
        std::vector<std::string> environment = demo_environment();
        auto args = pointers(argv);
        auto envp = pointers(environment);
        int master = -1;
        winsize size{};
        size.ws_row = 24;
        size.ws_col = 100;
        const pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        const UniqueFd master_fd(master);
        const std::string output = drain(master_fd.get(), 5s);
        REQUIRE(wait_for(pid) == 0);

        testing::Screen screen;
        screen.feed(output);
        INFO(output);
        CHECK(screen.unknown().empty());
        // What stays: the four log lines, whole, in order, and nothing else.
        const auto rows = screen.rows();
        REQUIRE(rows.size() == 4);
        CHECK(rows[0].ends_with("first log line"));
        CHECK(rows[1].ends_with("second log line"));
        CHECK(rows[2].ends_with("third log line"));
        CHECK(rows[3].ends_with("caught up"));
        // What was there meanwhile: the live lines.
        CHECK(contains(screen.erased(), "user_read_model: position 0 of 1000 (0.0%), measuring rate"));
        CHECK(contains(screen.erased(), "user_read_model: position 100 of 1000 (10.0%), 100 events/s, ETA 9s"));
        CHECK(contains(screen.erased(), "audit_log/1: position 5 of 10 (50.0%)"));
    }

    TEST_CASE("`run` with stderr on a pipe: plain log lines, no control character at all") {
        int pipe_fds[2];
        REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
        UniqueFd read_end(pipe_fds[0]);
        UniqueFd write_end(pipe_fds[1]);
        std::vector<std::string> argv = {demo_binary()};
        std::vector<std::string> environment = demo_environment();
        auto args = pointers(argv);
        auto envp = pointers(environment);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::dup2(write_end.get(), STDERR_FILENO);
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        write_end.reset();
        const std::string output = drain(read_end.get(), 5s);
        REQUIRE(wait_for(pid) == 0);
        INFO(output);
        CHECK(std::none_of(output.begin(), output.end(),
                           [](char c) { return (static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == '\x7f'; }));
        CHECK(output.find("first log line\n") != std::string::npos);
        CHECK(output.find("caught up\n") != std::string::npos);
        CHECK(output.find("position") == std::string::npos);
    }
}
