#pragma once
// One running exec handler program: the process, the pipes to its stdin and
// from its stdout, and the thread that logs its stderr. ExecHandler drives the
// protocol over it; this owns the resources and ends the process in order.

#include "handlers/stderr_forwarder.hpp"
#include "system/child_process.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace projectiond::handlers {

class ExecChild {
public:
    // Starts `command` (find_program() resolves its program) with the
    // daemon's environment, less what systemd meant for the daemon alone
    // (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*, JOURNAL_STREAM), plus
    // PROJECTIOND_PROJECTION and PROJECTIOND_PARTITION. Its stdin and stdout
    // are non-blocking pipes on our side. Throws system::SpawnError.
    static std::unique_ptr<ExecChild> start(const std::vector<std::string>& command, const std::string& projection,
                                            int partition);

    ExecChild(const ExecChild&) = delete;
    ExecChild& operator=(const ExecChild&) = delete;
    // Kills the process if it still runs.
    ~ExecChild();

    pid_t pid() const noexcept { return process_.pid(); }
    // "counter.py[1234]", for log lines.
    const std::string& label() const noexcept { return label_; }
    // "exec handler 'counter.py'", for messages that outlive this process.
    const std::string& title() const noexcept { return title_; }

    int stdin_fd() const noexcept { return stdin_.get(); }
    int stdout_fd() const noexcept { return stdout_.get(); }
    int exit_fd() const noexcept { return process_.exit_fd(); }
    void close_stdin() noexcept { stdin_.reset(); }
    // What was read from stdout after the last complete line.
    std::string& unread() noexcept { return unread_; }

    // The wait status once the process has exited, without waiting.
    std::optional<int> exited() { return process_.exited(); }

    // Waits up to `patience` for the process to exit, then kills it; reaps
    // it and logs the rest of its stderr. Returns the wait status.
    int end(std::chrono::milliseconds patience);
    // The graceful way (drain, reload): closes stdin, which a well-behaved
    // program takes as the end; after `grace`, SIGTERM; after `grace` again,
    // SIGKILL. Returns the wait status.
    int stop(std::chrono::milliseconds grace);

    // Its last line on stderr; complete once end() or stop() has returned.
    std::string last_stderr_line() const { return stderr_->last_line(); }

private:
    ExecChild(system::ChildProcess process, system::UniqueFd stdin_pipe, system::UniqueFd stdout_pipe,
              std::unique_ptr<StderrForwarder> forwarder, std::string label, std::string title);

    system::ChildProcess process_;
    system::UniqueFd stdin_;
    system::UniqueFd stdout_;
    std::unique_ptr<StderrForwarder> stderr_;
    std::string label_;
    std::string title_;
    std::string unread_;
};

} // namespace projectiond::handlers
