#pragma once
// Just enough of an HTTP/1.1 client over a real TCP socket to test the
// daemon's server byte for byte, including requests no real client sends.

#include "system/unique_fd.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace projectiond::testing {

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers; // names in lower case
    std::string body;

    // The value of a header, "" when absent.
    std::string header(const std::string& lower_case_name) const {
        const auto found = headers.find(lower_case_name);
        return found == headers.end() ? std::string() : found->second;
    }
};

// A connected TCP socket to 127.0.0.1 (or ::1) at `port`; fails the test when it cannot connect.
system::UniqueFd connect_to(std::uint16_t port, bool ipv6 = false);

// Sends `request` as is and reads until the server closes, at most `timeout`.
// nullopt when nothing parseable came back (closed without an answer, or timed out).
std::optional<HttpResponse> exchange(std::uint16_t port, const std::string& request,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5), bool ipv6 = false);

// GET (or another method) of `path` with "Connection: close".
std::optional<HttpResponse> request(std::uint16_t port, const std::string& method, const std::string& path,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// True when the peer closes `fd` (read returns 0 or an error) within `timeout`.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout);

} // namespace projectiond::testing
