#pragma once
// `{exec: [PROGRAM, ARG...]}` handlers (SPEC section 11): a long-lived child
// process, started on first use, that reads one JSON line per event on its
// stdin and answers one JSON line per event on its stdout (exec_protocol.hpp).
//
// A batch's lines are written while the child reads them and its replies are
// read as they come (one poll() over both pipes), so neither side ever waits
// on a full pipe and the child works while the next lines are on their way.
//
// Failures of one event: an {"error": ...} reply (the child is kept, and its
// answers to the events written after that one are read and dropped); a reply
// that is not JSON or not of the protocol's shape, a line nobody asked for, no
// reply within the timeout, or the child ending (the child is killed, and the
// next call starts a new one after a capped exponential backoff).
//
// Call handle() and stop() from the runner's own thread: the child gets
// PR_SET_PDEATHSIG, which the kernel ties to the thread that started it, so
// the child is killed when that thread ends (see system/child_process.hpp).

#include "handlers/code_handler.hpp"
#include "handlers/exec_child.hpp"
#include "handlers/restart_backoff.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace projectiond::handlers {

struct ExecSettings {
    std::vector<std::string> command; // the program and its arguments
    std::string projection;           // for PROJECTIOND_PROJECTION and the log fields
    int partition = 0;                // for PROJECTIOND_PARTITION and the log fields
    // How long the child may take over each reply, counted from the previous
    // reply (or the start of the call): `exec_timeout`.
    std::chrono::milliseconds reply_timeout{30000};
    // Restart delays after consecutive failures: first, doubling, up to cap.
    std::chrono::milliseconds restart_first{250};
    std::chrono::milliseconds restart_cap{30000};
    // stop(): after closing stdin, wait this long before SIGTERM, and as long
    // again before SIGKILL.
    std::chrono::milliseconds stop_grace{2000};
};

class ExecHandler final : public CodeHandler {
public:
    explicit ExecHandler(ExecSettings settings);
    ExecHandler(const ExecHandler&) = delete;
    ExecHandler& operator=(const ExecHandler&) = delete;
    ~ExecHandler() override;

    std::vector<Reply> handle(std::span<const Event> events) override;
    void stop() noexcept override;

    // The running child's process id, if one runs (for tests and diagnostics).
    std::optional<pid_t> child_pid() const noexcept;

private:
    // Makes sure a healthy child runs; the reason when none can be started.
    std::optional<std::string> ensure_child();
    // Kills the child after a failure and counts the failure for the backoff.
    void discard_child(std::string_view why);
    void wait_for_restart();

    ExecSettings settings_;
    std::unique_ptr<ExecChild> child_;
    RestartBackoff backoff_;
};

} // namespace projectiond::handlers
