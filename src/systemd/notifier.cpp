#include "systemd/notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::systemd {

Notifier::Notifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && *socket != '\0';
    std::uint64_t usec = 0;
    if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_interval_ = std::chrono::microseconds(usec / 2);
    }
}

void Notifier::send(const std::string& message) {
    if (!enabled_) {
        return;
    }
    const int result = sd_notify(0, message.c_str());
    if (result < 0) {
        spdlog::warn("sd_notify failed: {}", std::strerror(-result));
    }
}

void Notifier::ready() {
    send("READY=1");
}

void Notifier::reloading() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                      static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
    send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
}

void Notifier::stopping() {
    send("STOPPING=1");
}

void Notifier::status(const std::string& line) {
    if (line != last_status_) {
        last_status_ = line;
        send("STATUS=" + line);
    }
}

void Notifier::watchdog() {
    send("WATCHDOG=1");
}

void Notifier::extend_timeout(std::chrono::microseconds by) {
    send(fmt::format("EXTEND_TIMEOUT_USEC={}", by.count()));
}

} // namespace projectiond::systemd
