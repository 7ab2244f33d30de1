#pragma once
// Tells systemd how the service is doing (sd_notify). Without NOTIFY_SOCKET
// every call is a no-op.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace projectiond::systemd {

class Notifier {
public:
    Notifier();

    bool enabled() const noexcept { return enabled_; }
    // Half of WatchdogSec= when systemd asked for pings.
    std::optional<std::chrono::microseconds> watchdog_interval() const noexcept { return watchdog_interval_; }

    void ready();
    void reloading(); // RELOADING=1 with MONOTONIC_USEC
    void stopping();
    // Sent only when it changed since the last call.
    void status(const std::string& line);
    void watchdog();
    void extend_timeout(std::chrono::microseconds by);

private:
    void send(const std::string& message);

    bool enabled_ = false;
    std::optional<std::chrono::microseconds> watchdog_interval_;
    std::string last_status_;
};

} // namespace projectiond::systemd
