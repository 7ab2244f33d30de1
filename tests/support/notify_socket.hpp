#pragma once
// A real unix datagram socket to pass as NOTIFY_SOCKET: records every
// sd_notify message with the time it arrived.

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace projectiond::testing {

class NotifySocket {
public:
    using Clock = std::chrono::steady_clock;
    struct Message {
        Clock::time_point at;
        std::string text; // e.g. "READY=1" or "STATUS=...", possibly several lines
    };

    NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    ~NotifySocket();

    const std::string& path() const noexcept { return path_; }
    std::vector<Message> messages() const;
    // Messages containing `needle`, in arrival order.
    std::vector<Message> matching(const std::string& needle) const;
    bool wait_for(const std::string& needle, std::chrono::milliseconds timeout, std::size_t count = 1) const;

private:
    void receive();

    std::string dir_;
    std::string path_;
    int fd_ = -1;
    int stop_fd_ = -1;
    mutable std::mutex mutex_;
    std::vector<Message> messages_;
    std::thread reader_;
};

} // namespace projectiond::testing
