#include "system/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>

#include <fmt/format.h>

namespace projectiond::system {

namespace {

using Clock = std::chrono::steady_clock;

// A status for a child whose exit someone else collected (waitpid(-1) elsewhere).
constexpr int status_collected_elsewhere = -1;

bool executable_file(const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

[[noreturn]] void report_and_exit(int report_fd, int error) noexcept {
    [[maybe_unused]] const auto written = ::write(report_fd, &error, sizeof error);
    ::_exit(127);
}

// Runs in the forked child. Only async-signal-safe calls: the daemon has other
// threads, and one of them may have held the allocator's lock at fork().
[[noreturn]] void become_program(const SpawnRequest& request, char* const* argv, char* const* envp, int report_fd,
                                 pid_t parent) noexcept {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        report_and_exit(report_fd, errno);
    }
    // The parent may have died before prctl() took effect; then nothing will
    // ever kill this process, so it must not go on.
    if (::getppid() != parent) {
        ::_exit(127);
    }
    ::setpgid(0, 0);

    // Copy the three descriptors above 2 first, so that none is overwritten
    // by another's dup2() when the daemon runs with stdio closed.
    const int in = ::fcntl(request.stdin_fd, F_DUPFD_CLOEXEC, 3);
    const int out = ::fcntl(request.stdout_fd, F_DUPFD_CLOEXEC, 3);
    const int err = ::fcntl(request.stderr_fd, F_DUPFD_CLOEXEC, 3);
    if (in < 0 || out < 0 || err < 0 || ::dup2(in, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
        ::dup2(err, STDERR_FILENO) < 0) {
        report_and_exit(report_fd, errno);
    }
    // Every descriptor of ours is close-on-exec already; this also covers any
    // that a library opened without it. Best effort: kernels before 5.11 lack it.
    ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);

    // The daemon blocks TERM/INT/HUP (read from a signalfd) and may ignore
    // others; a blocked or ignored signal would stay so across execve().
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int number = 1; number < NSIG; ++number) {
        ::sigaction(number, &default_action, nullptr); // fails harmlessly for KILL, STOP and unused numbers
    }

    ::execve(request.program.c_str(), argv, envp);
    report_and_exit(report_fd, errno);
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    pointers.reserve(strings.size() + 1);
    for (const auto& item : strings) {
        pointers.push_back(const_cast<char*>(item.c_str()));
    }
    pointers.push_back(nullptr);
    return pointers;
}

} // namespace

std::string find_program(const std::string& name) {
    if (name.empty()) {
        throw SpawnError("the command's program is empty");
    }
    if (name.find('/') != std::string::npos) {
        struct stat info {};
        if (::stat(name.c_str(), &info) != 0) {
            throw SpawnError(fmt::format("cannot run '{}': {}", name, std::strerror(errno)));
        }
        if (!S_ISREG(info.st_mode)) {
            throw SpawnError(fmt::format("cannot run '{}': not a regular file", name));
        }
        if (::access(name.c_str(), X_OK) != 0) {
            throw SpawnError(fmt::format("cannot run '{}': {}", name, std::strerror(errno)));
        }
        return name;
    }
    const char* path_variable = std::getenv("PATH");
    const std::string_view path = path_variable != nullptr ? path_variable : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = std::min(path.find(':', start), path.size());
        std::string dir(path.substr(start, end - start));
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        if (executable_file(candidate)) {
            return candidate;
        }
        if (end == path.size()) {
            break;
        }
        start = end + 1;
    }
    throw SpawnError(fmt::format("cannot find '{}' in PATH ({}); give its full path", name, path));
}

std::string describe_wait_status(int status) {
    if (status == status_collected_elsewhere) {
        return "ended (its exit status was collected elsewhere)";
    }
    if (WIFEXITED(status)) {
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        const char* name = ::strsignal(WTERMSIG(status));
        return fmt::format("was killed by signal {} ({})", WTERMSIG(status), name != nullptr ? name : "unknown");
    }
    return fmt::format("ended with wait status {}", status);
}

ChildProcess ChildProcess::spawn(const SpawnRequest& request) {
    const std::vector<char*> argv = c_strings(request.arguments);
    const std::vector<char*> envp = c_strings(request.environment);
    // The child writes errno here when execve() fails; a successful execve()
    // closes it (close-on-exec), which the parent reads as end of file.
    Pipe report = make_pipe(O_CLOEXEC);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw SpawnError(fmt::format("cannot start '{}': fork: {}", request.program, std::strerror(errno)));
    }
    if (pid == 0) {
        become_program(request, argv.data(), envp.data(), report.write.get(), parent);
    }
    report.write.reset();
    // No race with pid reuse: the child cannot be reaped before we wait for it.
    ChildProcess child(pid, UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U))));

    int child_errno = 0;
    ssize_t got = 0;
    do {
        got = ::read(report.read.get(), &child_errno, sizeof child_errno);
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof child_errno)) {
        child.kill();
        throw SpawnError(fmt::format("cannot run '{}': {}", request.program, std::strerror(child_errno)));
    }
    return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)), status_(std::move(other.status_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        pidfd_ = std::move(other.pidfd_);
        status_ = std::move(other.status_);
    }
    return *this;
}

ChildProcess::~ChildProcess() {
    kill_and_reap();
}

std::optional<int> ChildProcess::exited() {
    if (status_ || pid_ <= 0) {
        return status_;
    }
    int status = 0;
    pid_t got = 0;
    do {
        got = ::waitpid(pid_, &status, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == pid_) {
        status_ = status;
    } else if (got < 0 && errno == ECHILD) {
        status_ = status_collected_elsewhere;
    }
    if (status_) {
        pidfd_.reset();
    }
    return status_;
}

std::optional<int> ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (auto status = exited()) {
            return status;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        if (pidfd_) {
            pollfd fds{pidfd_.get(), POLLIN, 0};
            ::poll(&fds, 1, static_cast<int>(left.count()));
        } else {
            // Without pidfd there is nothing to wait on; look again shortly.
            std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
        }
    }
}

void ChildProcess::signal(int number) noexcept {
    // Until it is reaped the pid cannot have been reused, so this reaches our child.
    if (pid_ > 0 && !status_) {
        ::kill(pid_, number);
    }
}

int ChildProcess::kill() {
    kill_and_reap();
    return status_.value_or(status_collected_elsewhere);
}

void ChildProcess::kill_and_reap() noexcept {
    if (pid_ <= 0 || status_) {
        return;
    }
    signal(SIGKILL);
    int status = 0;
    pid_t got = 0;
    do {
        got = ::waitpid(pid_, &status, 0);
    } while (got < 0 && errno == EINTR);
    status_ = got == pid_ ? status : status_collected_elsewhere;
    pidfd_.reset();
}

} // namespace projectiond::system
