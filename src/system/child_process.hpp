#pragma once
// A child process that cannot outlive the daemon and is always reaped.
//
// The child gets PR_SET_PDEATHSIG(SIGKILL), so it is killed when the daemon
// dies, kill -9 included. Note the kernel's definition of "parent": the
// *thread* that started the child. Start children from a thread that lives at
// least as long as them (a runner's own thread does), or they are killed when
// that thread ends. The child also runs in a process group of its own, so a
// Ctrl+C on the daemon's terminal reaches the daemon (which drains, then stops
// its children in order) and not the children directly.
//
// The object owns the process: destroying it kills (SIGKILL) and reaps a
// child that is still running, so no zombie and no orphan is ever left.

#include "system/pipe.hpp"

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace projectiond::system {

// The program could not be started; what() says why, for a person.
class SpawnError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct SpawnRequest {
    std::string program;                  // a path, as returned by find_program()
    std::vector<std::string> arguments;   // argv, argv[0] included
    std::vector<std::string> environment; // "NAME=value" entries, the whole environment
    int stdin_fd = -1;                    // the descriptors the child gets as 0, 1 and 2
    int stdout_fd = -1;
    int stderr_fd = -1;
};

// Where `name` would be run from: as is when it contains a '/', else the first
// executable regular file of that name along $PATH. Throws SpawnError saying
// what was not found where.
std::string find_program(const std::string& name);

// "exited with status 3", "was killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

class ChildProcess {
public:
    // Forks and executes; throws SpawnError when the program cannot be
    // executed (the reason comes back from the child through a pipe).
    static ChildProcess spawn(const SpawnRequest& request);

    ChildProcess(ChildProcess&& other) noexcept;
    ChildProcess& operator=(ChildProcess&& other) noexcept;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess();

    pid_t pid() const noexcept { return pid_; }
    // Readable once the child has exited (a pidfd); -1 on kernels without
    // pidfd_open, where exited() has to be asked instead.
    int exit_fd() const noexcept { return pidfd_.get(); }

    // The wait status once the child has exited (it is reaped then), without
    // waiting.
    std::optional<int> exited();
    // Waits up to `timeout` for the child to exit.
    std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
    // Sends `signal` unless the child has already been reaped.
    void signal(int signal) noexcept;
    // SIGKILL, then waits for it: the wait status.
    int kill();

private:
    ChildProcess(pid_t pid, UniqueFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}
    void kill_and_reap() noexcept;

    pid_t pid_ = -1;
    UniqueFd pidfd_;
    std::optional<int> status_; // set once reaped
};

} // namespace projectiond::system
