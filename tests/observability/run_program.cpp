#include "run_program.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

extern char** environ;

namespace projectiond::testing {

namespace {
std::string read_whole(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}
} // namespace

TempFile::TempFile(const std::string& content, const std::string& suffix) {
    const char* dir = std::getenv("TMPDIR");
    std::string pattern = std::string(dir != nullptr ? dir : "/tmp") + "/projectiond-test-XXXXXX" + suffix;
    const int fd = ::mkstemps(pattern.data(), static_cast<int>(suffix.size()));
    REQUIRE_MESSAGE(fd >= 0, "mkstemps: ", std::string(std::strerror(errno)));
    path_ = pattern;
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t wrote = ::write(fd, content.data() + done, content.size() - done);
        REQUIRE(wrote > 0);
        done += static_cast<std::size_t>(wrote);
    }
    ::close(fd);
}

TempFile::~TempFile() {
    ::unlink(path_.c_str());
}

ProgramResult run_program(const std::vector<std::string>& argv, const std::string& input) {
    const TempFile stdin_file(input);
    const TempFile output_file("");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, stdin_file.path().c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output_file.path().c_str(), O_WRONLY | O_TRUNC, 0);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> args;
    std::vector<std::string> copy = argv;
    for (auto& arg : copy) {
        args.push_back(arg.data());
    }
    args.push_back(nullptr);
    pid_t pid = -1;
    const int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
        FAIL("cannot run ", argv[0], ": ", std::string(std::strerror(error)),
             " (is it installed? scripts/install-deps installs every test dependency)");
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ProgramResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.output = read_whole(output_file.path());
    return result;
}

std::string source_path(const std::string& relative_path) {
    const char* root = std::getenv("PROJECTIOND_SOURCE_ROOT");
    REQUIRE_MESSAGE(root != nullptr, "PROJECTIOND_SOURCE_ROOT is not set; run the tests with `meson test`");
    return std::string(root) + "/" + relative_path;
}

std::string source_file(const std::string& relative_path) {
    const std::string path = source_path(relative_path);
    std::ifstream file(path, std::ios::binary);
    REQUIRE_MESSAGE(file.good(), "cannot read ", path);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

} // namespace projectiond::testing
