#include "notify_socket.hpp"

#include "wait.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace projectiond::testing {

NotifySocket::NotifySocket() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/projectiond-notify-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    dir_ = pattern;
    path_ = dir_ + "/notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        throw std::runtime_error(std::string("cannot bind the notify socket: ") + std::strerror(errno));
    }
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    reader_ = std::thread([this] { receive(); });
}

NotifySocket::~NotifySocket() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(stop_fd_, &one, sizeof one);
    reader_.join();
    ::close(fd_);
    ::close(stop_fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
}

void NotifySocket::receive() {
    char buffer[4096];
    for (;;) {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            continue;
        }
        if (fds[1].revents != 0) {
            return;
        }
        const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
        if (got > 0) {
            std::lock_guard lock(mutex_);
            messages_.push_back({Clock::now(), std::string(buffer, static_cast<std::size_t>(got))});
        }
    }
}

std::vector<NotifySocket::Message> NotifySocket::messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
}

std::vector<NotifySocket::Message> NotifySocket::matching(const std::string& needle) const {
    std::vector<Message> out;
    for (auto& message : messages()) {
        if (message.text.find(needle) != std::string::npos) {
            out.push_back(std::move(message));
        }
    }
    return out;
}

bool NotifySocket::wait_for(const std::string& needle, std::chrono::milliseconds timeout, std::size_t count) const {
    return wait_until([&] { return matching(needle).size() >= count; }, timeout);
}

} // namespace projectiond::testing
