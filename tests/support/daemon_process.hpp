#pragma once
// `projectiond run` against a TestDatabase with a configuration written for
// the test, logging to stderr.

#include "child_process.hpp"
#include "test_database.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace projectiond::testing {

// A file that is removed with this object.
class TempFile {
public:
    explicit TempFile(const std::string& content, const std::string& suffix = ".yaml");
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile();
    const std::string& path() const noexcept { return path_; }
    void write(const std::string& content) const;

private:
    std::string path_;
};

class DaemonProcess {
public:
    DaemonProcess(const TestDatabase& db, const std::string& config_yaml, std::map<std::string, std::string> env = {},
                  std::vector<std::string> extra_args = {});
    // Against any database, named by a libpq connection string (another cluster).
    DaemonProcess(const std::string& conninfo, const std::string& config_yaml,
                  std::map<std::string, std::string> env = {}, std::vector<std::string> extra_args = {});

    ChildProcess& process() noexcept { return *child_; }
    const TempFile& config() const noexcept { return config_; }
    // Waits for the "ready:" log line.
    bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Sends `signal` and waits for the exit code (nullopt on timeout).
    std::optional<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Starts the same daemon again after it exited.
    void restart();
    std::string log() const { return child_->errors(); }

private:
    std::vector<std::string> argv_;
    std::map<std::string, std::string> env_;
    TempFile config_;
    std::unique_ptr<ChildProcess> child_;
};

} // namespace projectiond::testing
