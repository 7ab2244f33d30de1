#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace projectiond::testing {

namespace {
std::string read_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

std::string temp_path(const char* kind) {
    static int counter = 0;
    const char* dir = std::getenv("TMPDIR");
    return fmt::format("{}/projectiond-test-{}-{}-{}.log", dir != nullptr ? dir : "/tmp", ::getpid(), counter++, kind);
}
} // namespace

std::string projectiond_binary() {
    const char* path = std::getenv("PROJECTIOND_BIN");
    if (path == nullptr) {
        throw std::runtime_error("PROJECTIOND_BIN is not set; run the tests with `meson test`");
    }
    return path;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::map<std::string, std::string> env)
    : out_path_(temp_path("out")), err_path_(temp_path("err")) {
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string item = *entry;
        const std::string key = item.substr(0, item.find('='));
        if (!env.contains(key)) {
            environment.push_back(item);
        }
    }
    for (const auto& [key, value] : env) {
        if (!value.empty()) {
            environment.push_back(key + "=" + value);
        }
    }
    std::vector<char*> args;
    for (auto& arg : argv) {
        args.push_back(arg.data());
    }
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& item : environment) {
        envp.push_back(item.data());
    }
    envp.push_back(nullptr);

    const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
        ::dup2(out, STDOUT_FILENO);
        ::dup2(err, STDERR_FILENO);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execve(args[0], args.data(), envp.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(out);
    ::close(err);
}

ChildProcess::~ChildProcess() {
    if (!exit_code_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    ::unlink(out_path_.c_str());
    ::unlink(err_path_.c_str());
}

void ChildProcess::signal(int number) const {
    ::kill(pid_, number);
}

bool ChildProcess::running() {
    return !wait_for_exit(std::chrono::milliseconds(0)).has_value();
}

std::optional<int> ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exit_code_) {
        int status = 0;
        const int got = ::waitpid(pid_, &status, WNOHANG);
        if (got == pid_) {
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return exit_code_;
}

std::string ChildProcess::output() const {
    return read_file(out_path_);
}
std::string ChildProcess::errors() const {
    return read_file(err_path_);
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds timeout) {
    ChildProcess child(argv, env);
    const auto code = child.wait_for_exit(timeout);
    if (!code) {
        throw std::runtime_error(fmt::format("{} did not finish within {} ms", argv.front(), timeout.count()));
    }
    return CommandResult{*code, child.output(), child.errors()};
}

} // namespace projectiond::testing
