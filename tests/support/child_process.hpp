#pragma once
// A child process (usually the projectiond binary) with its output captured in
// files, so tests can wait for log lines while it runs and read everything
// after it ends.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::testing {

class ChildProcess {
public:
    // `env` entries are added to (or, with an empty value, removed from) the
    // test's own environment.
    ChildProcess(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    // Kills the process (SIGKILL) if it is still running.
    ~ChildProcess();

    int pid() const noexcept { return pid_; }
    void signal(int number) const;
    // The exit code (128 + signal when killed by one), or nullopt on timeout.
    std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
    bool running();

    std::string output() const; // stdout so far
    std::string errors() const; // stderr so far

private:
    int pid_ = -1;
    std::optional<int> exit_code_;
    std::string out_path_;
    std::string err_path_;
};

struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs to completion (fails the test after `timeout`).
CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The projectiond binary under test ($PROJECTIOND_BIN).
std::string projectiond_binary();

} // namespace projectiond::testing
