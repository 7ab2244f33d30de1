#include "observability/progress_display.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace projectiond::observability {

namespace {

// Weight of the newest sample: a rate that settles within a few seconds but
// does not jump with every batch.
constexpr double smoothing = 0.3;

bool is_capable_terminal(int fd) {
    if (::isatty(fd) != 1) {
        return false;
    }
    const char* term = std::getenv("TERM");
    return term == nullptr || std::strcmp(term, "dumb") != 0;
}

std::string format_duration(double seconds) {
    const auto total = static_cast<long long>(std::llround(seconds));
    if (total < 60) {
        return fmt::format("{}s", total);
    }
    if (total < 3600) {
        return fmt::format("{}m{:02}s", total / 60, total % 60);
    }
    return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
}

// Cut to the terminal's width so that no line wraps: a wrapped line would
// take two rows, and clearing would leave one behind. Never cuts inside a
// UTF-8 sequence.
void fit(std::string& row, std::size_t width) {
    if (width == 0 || row.size() < width) {
        return;
    }
    std::size_t cut = width - 1;
    while (cut > 0 && (static_cast<unsigned char>(row[cut]) & 0xC0) == 0x80) {
        --cut;
    }
    row.resize(cut);
}

} // namespace

ProgressDisplay::ProgressDisplay(int fd) : fd_(fd), active_(is_capable_terminal(fd)) {}

std::string ProgressDisplay::render(const ProgressLine& line, const Track& track) const {
    const double percent =
        line.end > 0
            ? std::clamp(100.0 * static_cast<double>(line.position) / static_cast<double>(line.end), 0.0, 100.0)
            : 100.0;
    std::string text = fmt::format("{}: position {} of {} ({:.1f}%)", line.name, line.position, line.end, percent);
    if (!track.rate) {
        return text + ", measuring rate";
    }
    const double rate = *track.rate;
    text += fmt::format(", {:.0f} events/s", rate);
    const auto remaining = std::max<std::int64_t>(0, line.end - line.position);
    if (rate >= 0.5) {
        text += ", ETA " + format_duration(static_cast<double>(remaining) / rate);
    } else {
        text += ", ETA unknown";
    }
    return text;
}

void ProgressDisplay::update(const std::vector<ProgressLine>& lines, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    std::map<std::string, Track> tracks;
    std::vector<std::string> rows;
    for (const ProgressLine& line : lines) {
        Track track{now, line.position, std::nullopt};
        if (const auto previous = tracks_.find(line.name); previous != tracks_.end()) {
            const Track& before = previous->second;
            const double elapsed = std::chrono::duration<double>(now - before.at).count();
            if (elapsed > 0) {
                const double sample = static_cast<double>(line.position - before.position) / elapsed;
                // A checkpoint moved back (a reset) is no negative speed.
                track.rate = std::max(0.0, before.rate ? smoothing * sample + (1 - smoothing) * *before.rate : sample);
            } else {
                track = before;
            }
        }
        rows.push_back(render(line, track));
        tracks.emplace(line.name, track);
    }
    tracks_ = std::move(tracks);
    rows_ = std::move(rows);
    if (!active_) {
        return;
    }
    std::string out;
    clear_locked(out);
    draw_locked(out);
    write_locked(out);
}

void ProgressDisplay::print_around(const std::function<void()>& print) {
    const std::lock_guard lock(mutex_);
    if (!active_ || drawn_ == 0) {
        print();
        return;
    }
    std::string out;
    clear_locked(out);
    write_locked(out);
    print();
    out.clear();
    draw_locked(out);
    write_locked(out);
}

std::vector<std::string> ProgressDisplay::rows() const {
    const std::lock_guard lock(mutex_);
    return rows_;
}

// The cursor rests at the start of the line below the drawn rows: go up to
// the first of them and erase from there to the end of the screen.
void ProgressDisplay::clear_locked(std::string& out) {
    if (drawn_ > 0) {
        out += fmt::format("\r\x1b[{}A\x1b[J", drawn_);
        drawn_ = 0;
    }
}

void ProgressDisplay::draw_locked(std::string& out) {
    winsize size{};
    const std::size_t width = ::ioctl(fd_, TIOCGWINSZ, &size) == 0 ? size.ws_col : 0;
    for (std::string row : rows_) {
        fit(row, width);
        out += row;
        out += '\n';
    }
    drawn_ = rows_.size();
}

// One write per redraw, so the terminal never shows a half-cleared state; a
// terminal that went away is not worth an error.
void ProgressDisplay::write_locked(const std::string& out) {
    if (!active_) {
        return;
    }
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t written = ::write(fd_, out.data() + done, out.size() - done);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;
        }
        done += static_cast<std::size_t>(written);
    }
}

std::shared_ptr<ProgressDisplay> stderr_progress() {
    static const auto display = std::make_shared<ProgressDisplay>(STDERR_FILENO);
    return display;
}

} // namespace projectiond::observability
