#include "handlers/stderr_forwarder.hpp"

#include "handlers/exec_protocol.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace projectiond::handlers {

namespace {
// A longer line is logged in pieces of this size rather than held in memory.
constexpr std::size_t max_line = 16 * 1024;
// After finish(), at most this much more is read: a grandchild that keeps
// writing must not keep the owner waiting.
constexpr std::size_t max_after_finish = 1024 * 1024;
} // namespace

StderrForwarder::StderrForwarder(system::UniqueFd pipe, logging::LogContext context, std::string label)
    : pipe_(std::move(pipe)), wake_(system::make_pipe(O_CLOEXEC | O_NONBLOCK)), context_(std::move(context)),
      label_(std::move(label)) {
    system::set_nonblocking(pipe_.get(), true);
    thread_ = std::thread([this] { run(); });
}

StderrForwarder::~StderrForwarder() {
    finish();
}

void StderrForwarder::finish() noexcept {
    if (!thread_.joinable()) {
        return;
    }
    const char byte = 0;
    [[maybe_unused]] const auto written = ::write(wake_.write.get(), &byte, 1);
    thread_.join();
}

std::string StderrForwarder::last_line() const {
    std::lock_guard lock(last_line_mutex_);
    return last_line_;
}

void StderrForwarder::emit(std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    if (line.empty()) {
        return;
    }
    spdlog::info("{}: {}", label_, line);
    std::lock_guard lock(last_line_mutex_);
    last_line_ = excerpt(line, 500);
}

void StderrForwarder::run() noexcept {
    // The log context is thread-local: this thread needs its own copy, or its
    // lines would carry no PROJECTION= and PARTITION=.
    logging::current_context() = context_;
    std::string pending;
    char buffer[4096];
    bool finishing = false;
    std::size_t read_after_finish = 0;
    for (;;) {
        if (!finishing) {
            pollfd fds[2] = {{pipe_.get(), POLLIN, 0}, {wake_.read.get(), POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
                break;
            }
            finishing = (fds[1].revents & POLLIN) != 0;
        }
        const ssize_t got = ::read(pipe_.get(), buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            // End of file, or nothing more right now: when finishing, that is all.
            if (got == 0 || finishing || errno != EAGAIN) {
                break;
            }
            continue;
        }
        pending.append(buffer, static_cast<std::size_t>(got));
        if (finishing && (read_after_finish += static_cast<std::size_t>(got)) > max_after_finish) {
            break;
        }
        std::size_t start = 0;
        for (std::size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
            emit(std::string_view(pending).substr(start, end - start));
        }
        pending.erase(0, start);
        while (pending.size() >= max_line) {
            emit(std::string_view(pending).substr(0, max_line));
            pending.erase(0, max_line);
        }
    }
    emit(pending);
}

} // namespace projectiond::handlers
