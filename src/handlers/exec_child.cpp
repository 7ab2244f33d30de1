#include "handlers/exec_child.hpp"

#include <fcntl.h>
#include <signal.h>

#include <array>
#include <string_view>

#include <fmt/format.h>

extern char** environ;

namespace projectiond::handlers {

namespace {

// Variables that systemd addresses to the daemon's own process (a child that
// acted on them would notify or log as if it were the daemon), and the two
// this sets for the child itself.
constexpr std::array<std::string_view, 9> withheld_variables = {
    "NOTIFY_SOCKET",  "WATCHDOG_PID",           "WATCHDOG_USEC",         "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
    "JOURNAL_STREAM", "PROJECTIOND_PROJECTION", "PROJECTIOND_PARTITION",
};

std::vector<std::string> child_environment(const std::string& projection, int partition) {
    std::vector<std::string> environment;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string_view item(*entry);
        const std::string_view name = item.substr(0, item.find('='));
        bool withheld = false;
        for (const auto variable : withheld_variables) {
            withheld = withheld || name == variable;
        }
        if (!withheld) {
            environment.emplace_back(item);
        }
    }
    environment.push_back("PROJECTIOND_PROJECTION=" + projection);
    environment.push_back(fmt::format("PROJECTIOND_PARTITION={}", partition));
    return environment;
}

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

std::unique_ptr<ExecChild> ExecChild::start(const std::vector<std::string>& command, const std::string& projection,
                                            int partition) {
    if (command.empty()) {
        throw system::SpawnError("the exec handler's command is empty");
    }
    system::SpawnRequest request;
    request.program = system::find_program(command.front());
    request.arguments = command;
    request.environment = child_environment(projection, partition);

    // Our ends are close-on-exec, so no other child (of this or another
    // runner) holds them and keeps an end-of-file from being seen.
    system::Pipe in = system::make_pipe(O_CLOEXEC);
    system::Pipe out = system::make_pipe(O_CLOEXEC);
    system::Pipe err = system::make_pipe(O_CLOEXEC);
    request.stdin_fd = in.read.get();
    request.stdout_fd = out.write.get();
    request.stderr_fd = err.write.get();
    system::ChildProcess process = system::ChildProcess::spawn(request);

    system::set_nonblocking(in.write.get(), true);
    system::set_nonblocking(out.read.get(), true);
    const std::string name = base_name(command.front());
    std::string label = fmt::format("{}[{}]", name, process.pid());
    auto forwarder = std::make_unique<StderrForwarder>(std::move(err.read),
                                                       logging::LogContext{projection, partition, std::nullopt}, label);
    return std::unique_ptr<ExecChild>(new ExecChild(std::move(process), std::move(in.write), std::move(out.read),
                                                    std::move(forwarder), std::move(label),
                                                    fmt::format("exec handler '{}'", name)));
}

ExecChild::ExecChild(system::ChildProcess process, system::UniqueFd stdin_pipe, system::UniqueFd stdout_pipe,
                     std::unique_ptr<StderrForwarder> forwarder, std::string label, std::string title)
    : process_(std::move(process)), stdin_(std::move(stdin_pipe)), stdout_(std::move(stdout_pipe)),
      stderr_(std::move(forwarder)), label_(std::move(label)), title_(std::move(title)) {}

ExecChild::~ExecChild() {
    end(std::chrono::milliseconds(0));
}

int ExecChild::end(std::chrono::milliseconds patience) {
    std::optional<int> status = process_.wait_for_exit(patience);
    if (!status) {
        status = process_.kill();
    }
    stdin_.reset();
    stderr_->finish();
    return *status;
}

int ExecChild::stop(std::chrono::milliseconds grace) {
    stdin_.reset();
    if (process_.wait_for_exit(grace)) {
        return end(std::chrono::milliseconds(0));
    }
    process_.signal(SIGTERM);
    return end(grace);
}

} // namespace projectiond::handlers
