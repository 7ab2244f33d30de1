#include "daemon_process.hpp"

#include "wait.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::testing {

TempFile::TempFile(const std::string& content, const std::string& suffix) {
    const char* dir = std::getenv("TMPDIR");
    std::string pattern = fmt::format("{}/projectiond-test-XXXXXX{}", dir != nullptr ? dir : "/tmp", suffix);
    const int fd = ::mkstemps(pattern.data(), static_cast<int>(suffix.size()));
    if (fd < 0) {
        throw std::runtime_error("mkstemps failed");
    }
    ::close(fd);
    path_ = pattern;
    write(content);
}

TempFile::~TempFile() {
    ::unlink(path_.c_str());
}

void TempFile::write(const std::string& content) const {
    std::ofstream file(path_, std::ios::binary | std::ios::trunc);
    file << content;
}

DaemonProcess::DaemonProcess(const TestDatabase& db, const std::string& config_yaml,
                             std::map<std::string, std::string> env, std::vector<std::string> extra_args)
    : DaemonProcess(db.conninfo(), config_yaml, std::move(env), std::move(extra_args)) {}

DaemonProcess::DaemonProcess(const std::string& conninfo, const std::string& config_yaml,
                             std::map<std::string, std::string> env, std::vector<std::string> extra_args)
    : env_(std::move(env)), config_(config_yaml) {
    argv_ = {projectiond_binary(), "run", "-c", config_.path(), "--database-url", conninfo, "--log-target", "stderr"};
    argv_.insert(argv_.end(), extra_args.begin(), extra_args.end());
    child_ = std::make_unique<ChildProcess>(argv_, env_);
}

bool DaemonProcess::wait_ready(std::chrono::milliseconds timeout) {
    return wait_for_log("ready:", timeout);
}

bool DaemonProcess::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) {
    return wait_until([&] { return log().find(needle) != std::string::npos; }, timeout);
}

std::optional<int> DaemonProcess::stop(int signal, std::chrono::milliseconds timeout) {
    child_->signal(signal);
    return child_->wait_for_exit(timeout);
}

void DaemonProcess::restart() {
    child_.reset();
    child_ = std::make_unique<ChildProcess>(argv_, env_);
}

} // namespace projectiond::testing
