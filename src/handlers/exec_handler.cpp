#include "handlers/exec_handler.hpp"

#include "config/duration.hpp"
#include "handlers/exec_protocol.hpp"
#include "store/database_error.hpp"
#include "system/child_process.hpp"
#include "system/sigpipe_guard.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace projectiond::handlers {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Lines are made ahead of the child by at most about this much.
constexpr std::size_t write_ahead = 64 * 1024;
// A reply line longer than this is not a reply; the child is confused.
constexpr std::size_t max_reply = 16 * 1024 * 1024;
// After the child closed its stdout, how long it may take to exit before it is killed.
constexpr milliseconds exit_patience{500};

int poll_timeout(Clock::time_point deadline) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<milliseconds::rep>(left, 0, 60'000));
}

// Runs one call's conversation with the child: writes the lines, reads the
// replies, and says whether the child has to go.
class Exchange {
public:
    Exchange(ExecChild& child, std::span<const Event> events, const ExecSettings& settings,
             const store::Interrupt* interrupt)
        : child_(child), events_(events), settings_(settings), interrupt_(interrupt) {}

    std::vector<Reply> run();
    // The child broke the protocol, timed out or ended: it must be replaced.
    const std::optional<std::string>& child_failure() const noexcept { return child_failure_; }
    bool answered_well() const noexcept { return answered_well_; }

private:
    bool done() const noexcept;
    void make_lines();
    void write_lines();
    // Reads what stdout holds; false at end of file.
    bool read_replies();
    // The child has exited: reads the replies it wrote before, which may
    // still be in the pipe.
    void read_after_exit();
    void on_line(std::string_view line);
    // Fails the event being waited for (unless one failed already) and marks
    // the child for replacement.
    void fail_child(const std::string& message);
    void child_ended();

    ExecChild& child_;
    std::span<const Event> events_;
    const ExecSettings& settings_;
    const store::Interrupt* interrupt_;

    std::string out_;            // lines made, not yet written
    std::size_t out_offset_ = 0; // how much of out_ is written
    std::size_t lines_made_ = 0; // events whose line is in out_ or written
    std::size_t lines_written_ = 0;
    std::size_t answered_ = 0; // reply lines read, dropped ones included
    std::optional<std::size_t> unsendable_;
    std::string unsendable_error_;
    bool failed_ = false; // an event failed: make no more lines, drop the remaining answers
    bool answered_well_ = false;
    std::optional<std::string> child_failure_;
    Clock::time_point waiting_since_ = Clock::now();
    std::vector<Reply> replies_;
};

std::vector<Reply> Exchange::run() {
    replies_.reserve(events_.size());
    for (;;) {
        if (!failed_ && unsendable_ && answered_ == *unsendable_) {
            replies_.push_back(Reply{{}, unsendable_error_});
            failed_ = true;
        }
        if (done()) {
            return std::move(replies_);
        }
        make_lines();

        const bool writing = child_.stdin_fd() >= 0 && out_offset_ < out_.size();
        pollfd fds[4] = {{child_.stdout_fd(), POLLIN, 0},
                         {child_.exit_fd(), POLLIN, 0},
                         {writing ? child_.stdin_fd() : -1, POLLOUT, 0},
                         {interrupt_ != nullptr ? interrupt_->fd : -1, POLLIN, 0}};
        const auto deadline = waiting_since_ + settings_.reply_timeout;
        if (::poll(fds, 4, poll_timeout(deadline)) < 0 && errno != EINTR) {
            fail_child(fmt::format("{}: poll: {}", child_.title(), std::strerror(errno)));
            continue;
        }
        if ((fds[3].revents & POLLIN) != 0 && interrupt_->give_up()) {
            // The child is somewhere in the middle of the batch: it cannot
            // be used again, and the daemon is in a hurry.
            child_.end(milliseconds(0));
            throw store::Interrupted();
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !read_replies() && !done()) {
            child_ended();
            continue;
        }
        if ((fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            write_lines();
        }
        if ((fds[1].revents & POLLIN) != 0) {
            read_after_exit();
            if (!done()) {
                child_ended();
            }
            continue;
        }
        // waiting_since_ moves with each reply: a reply read just now resets the clock.
        if (!done() && Clock::now() >= waiting_since_ + settings_.reply_timeout) {
            child_.end(milliseconds(0));
            fail_child(fmt::format("{} gave no reply within {} and was killed", child_.title(),
                                   config::format_duration(settings_.reply_timeout)));
        }
    }
}

bool Exchange::done() const noexcept {
    if (child_failure_) {
        return true;
    }
    if (!failed_) {
        return answered_ == events_.size();
    }
    // Every line written is answered, so the next call starts in step.
    return answered_ == lines_written_ && (out_offset_ == out_.size() || child_.stdin_fd() < 0);
}

void Exchange::make_lines() {
    if (failed_ || unsendable_) {
        return;
    }
    if (out_offset_ == out_.size()) {
        out_.clear();
        out_offset_ = 0;
    }
    while (lines_made_ < events_.size() && out_.size() - out_offset_ < write_ahead) {
        const std::size_t before = out_.size();
        try {
            append_event_line(out_, events_[lines_made_]);
        } catch (const std::invalid_argument& error) {
            out_.resize(before);
            unsendable_ = lines_made_;
            unsendable_error_ = fmt::format("cannot send the event to the {}: {}", child_.title(), error.what());
            return;
        }
        ++lines_made_;
    }
}

void Exchange::write_lines() {
    system::SigpipeGuard no_sigpipe;
    while (out_offset_ < out_.size()) {
        const ssize_t written = ::write(child_.stdin_fd(), out_.data() + out_offset_, out_.size() - out_offset_);
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                // EPIPE: it closed its stdin, so it will read nothing more;
                // its exit (or the timeout) decides what happens next.
                child_.close_stdin();
            }
            return;
        }
        lines_written_ +=
            static_cast<std::size_t>(std::count(out_.data() + out_offset_, out_.data() + out_offset_ + written, '\n'));
        out_offset_ += static_cast<std::size_t>(written);
    }
}

bool Exchange::read_replies() {
    char buffer[64 * 1024];
    for (;;) {
        const ssize_t got = ::read(child_.stdout_fd(), buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN;
        }
        if (got == 0) {
            return false;
        }
        std::string& unread = child_.unread();
        const std::size_t scan_from = unread.size();
        unread.append(buffer, static_cast<std::size_t>(got));
        std::size_t start = 0;
        for (std::size_t end = unread.find('\n', scan_from); end != std::string::npos && !child_failure_;
             end = unread.find('\n', start)) {
            on_line(std::string_view(unread).substr(start, end - start));
            start = end + 1;
        }
        unread.erase(0, start);
        if (child_failure_) {
            return true;
        }
        if (unread.size() > max_reply) {
            fail_child(fmt::format("{} wrote a reply longer than {} MiB", child_.title(), max_reply >> 20));
            return true;
        }
        if (static_cast<std::size_t>(got) < sizeof buffer) {
            return true;
        }
    }
}

void Exchange::read_after_exit() {
    // Bounded: a grandchild may hold the pipe open without writing.
    const auto until = Clock::now() + exit_patience;
    while (!done()) {
        pollfd out{child_.stdout_fd(), POLLIN, 0};
        if (::poll(&out, 1, poll_timeout(until)) <= 0 || !read_replies()) {
            return;
        }
    }
}

void Exchange::on_line(std::string_view line) {
    if (answered_ >= lines_written_) {
        fail_child(fmt::format("{} wrote a line it was not asked for (stdout is for replies only; write logs to "
                               "stderr): {}",
                               child_.title(), excerpt(line)));
        return;
    }
    ++answered_;
    waiting_since_ = Clock::now();
    if (failed_) {
        return; // an answer to an event after the failed one: dropped
    }
    ParsedReply parsed = parse_reply(line);
    if (parsed.protocol_error) {
        fail_child(fmt::format("{}: {}", child_.title(), *parsed.reply.error));
        return;
    }
    answered_well_ = true;
    failed_ = parsed.reply.failed();
    replies_.push_back(std::move(parsed.reply));
}

void Exchange::fail_child(const std::string& message) {
    if (child_failure_) {
        return;
    }
    child_failure_ = message;
    // Not when every event has its answer already (a stray line after the
    // last one): the replies stand, only the child goes.
    if (!failed_ && replies_.size() < events_.size()) {
        replies_.push_back(Reply{{}, message});
        failed_ = true;
    }
}

void Exchange::child_ended() {
    const pid_t pid = child_.pid();
    const int status = child_.end(exit_patience);
    std::string message =
        fmt::format("{} (pid {}) {} before replying", child_.title(), pid, system::describe_wait_status(status));
    if (const std::string last = child_.last_stderr_line(); !last.empty()) {
        message += fmt::format("; its last line on stderr: {}", last);
    }
    fail_child(message);
}

} // namespace

ExecHandler::ExecHandler(ExecSettings settings)
    : settings_(std::move(settings)), backoff_(settings_.restart_first, settings_.restart_cap) {}

ExecHandler::~ExecHandler() {
    stop();
}

std::optional<pid_t> ExecHandler::child_pid() const noexcept {
    return child_ ? std::optional<pid_t>(child_->pid()) : std::nullopt;
}

std::vector<Reply> ExecHandler::handle(std::span<const Event> events) {
    if (events.empty()) {
        return {};
    }
    if (auto cannot_start = ensure_child()) {
        return {Reply{{}, std::move(cannot_start)}};
    }
    Exchange exchange(*child_, events, settings_, interrupt_);
    std::vector<Reply> replies;
    try {
        replies = exchange.run();
    } catch (const store::Interrupted&) {
        child_.reset();
        throw;
    }
    if (exchange.answered_well()) {
        backoff_.succeeded();
    }
    if (const auto& failure = exchange.child_failure()) {
        discard_child(*failure);
    }
    return replies;
}

std::optional<std::string> ExecHandler::ensure_child() {
    if (child_) {
        if (const auto status = child_->exited()) {
            discard_child(fmt::format("{} {} while idle", child_->label(), system::describe_wait_status(*status)));
        } else if (!child_->unread().empty()) {
            discard_child(fmt::format("{} wrote a line it was not asked for (stdout is for replies only; write "
                                      "logs to stderr): {}",
                                      child_->label(), excerpt(child_->unread())));
        } else {
            // Output between calls is out of step with the protocol too.
            char byte = 0;
            const ssize_t got = ::read(child_->stdout_fd(), &byte, 1);
            if (got == 0) {
                discard_child(fmt::format("{} closed its stdout while idle", child_->label()));
            } else if (got > 0) {
                discard_child(fmt::format("{} wrote output it was not asked for while idle (stdout is for replies "
                                          "only; write logs to stderr)",
                                          child_->label()));
            } else {
                return std::nullopt;
            }
        }
    }
    wait_for_restart();
    try {
        child_ = ExecChild::start(settings_.command, settings_.projection, settings_.partition);
    } catch (const system::SpawnError& error) {
        backoff_.failed(Clock::now());
        spdlog::warn("cannot start the exec handler: {} (attempt {})", error.what(), backoff_.failures());
        return fmt::format("cannot start the exec handler: {}", error.what());
    } catch (const std::system_error& error) {
        backoff_.failed(Clock::now());
        spdlog::warn("cannot start the exec handler: {} (attempt {})", error.what(), backoff_.failures());
        return fmt::format("cannot start the exec handler: {}", error.what());
    }
    spdlog::info("started {} as {}: {}", child_->title(), child_->label(), fmt::join(settings_.command, " "));
    return std::nullopt;
}

void ExecHandler::wait_for_restart() {
    const auto earliest = backoff_.earliest_start();
    while (Clock::now() < earliest) {
        pollfd fds{interrupt_ != nullptr ? interrupt_->fd : -1, POLLIN, 0};
        if (::poll(&fds, 1, poll_timeout(earliest)) > 0 && interrupt_->give_up()) {
            throw store::Interrupted();
        }
    }
}

void ExecHandler::discard_child(std::string_view why) {
    child_.reset(); // kills it if it still runs, and reaps it
    backoff_.failed(Clock::now());
    const auto delay =
        std::chrono::ceil<milliseconds>(std::max(backoff_.earliest_start() - Clock::now(), Clock::duration::zero()));
    spdlog::warn("{}; a new one is started when the next event comes, in {} at the earliest", why,
                 config::format_duration(delay));
}

void ExecHandler::stop() noexcept {
    if (!child_) {
        return;
    }
    try {
        const std::string label = child_->label();
        const int status = child_->stop(settings_.stop_grace);
        spdlog::info("stopped {}: it {}", label, system::describe_wait_status(status));
    } catch (...) {
        // Logging failed; the child is gone all the same.
    }
    child_.reset();
}

} // namespace projectiond::handlers
