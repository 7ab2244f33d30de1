#pragma once
// The live lines of `projectiond run` on a terminal: one per catching-up
// projection partition (position, events/s, percent, ETA), redrawn in place
// at the bottom, out of the way of log lines. On anything but a terminal
// (the journal, a pipe, a file) it writes nothing at all.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace projectiond::observability {

struct ProgressLine {
    std::string name;          // "user_read_model", or "user_read_model/2" for a partition
    std::int64_t position = 0; // its checkpoint
    std::int64_t end = 0;      // the store's last position, as last sampled
};

class ProgressDisplay {
public:
    using Clock = std::chrono::steady_clock;

    // Draws on `fd` (not owned) when it is a terminal whose TERM is not "dumb".
    explicit ProgressDisplay(int fd);
    ProgressDisplay(const ProgressDisplay&) = delete;
    ProgressDisplay& operator=(const ProgressDisplay&) = delete;
    // Leaves the terminal alone: at exit, whatever was printed after the
    // lines (an error on the way out) must not be erased in their place.
    // Call clear() when the catch-up display ends.
    ~ProgressDisplay() = default;

    bool active() const noexcept { return active_; }

    // Shows exactly these lines, in this order, replacing the previous ones;
    // a projection left out (it caught up) loses its line, and an empty list
    // clears the display. Meant to be called about once a second: the rate
    // (hence the ETA) is measured between calls, smoothed.
    void update(const std::vector<ProgressLine>& lines, Clock::time_point now = Clock::now());
    // Takes the lines off the terminal (update with no lines).
    void clear() { update({}); }

    // Runs `print`, which writes to the same terminal, with the progress
    // lines cleared before and redrawn after, so neither garbles the other.
    // Anything else written to the terminal while lines are shown breaks the
    // in-place redraw: the logger goes through here (ProgressAwareSink).
    void print_around(const std::function<void()>& print);

    // What update() drew last, without control characters (for tests).
    std::vector<std::string> rows() const;

private:
    struct Track {
        Clock::time_point at;
        std::int64_t position = 0;
        std::optional<double> rate; // positions per second, smoothed
    };

    std::string render(const ProgressLine& line, const Track& track) const;
    void clear_locked(std::string& out);
    void draw_locked(std::string& out);
    void write_locked(const std::string& out);

    const int fd_;
    const bool active_;
    mutable std::mutex mutex_;
    std::map<std::string, Track> tracks_;
    std::vector<std::string> rows_;
    std::size_t drawn_ = 0; // rows currently on the terminal
};

// The display on stderr, shared by the logging sink and the daemon.
std::shared_ptr<ProgressDisplay> stderr_progress();

} // namespace projectiond::observability
