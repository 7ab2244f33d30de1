#include "config/listen_address.hpp"

#include <doctest/doctest.h>

using projectiond::config::ListenAddress;
using projectiond::config::parse_listen_address;

namespace {
std::string refusal(std::string_view text) {
    try {
        parse_listen_address(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL("expected '" << text << "' to be refused");
    return {};
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}
} // namespace

TEST_SUITE("listen address") {
    TEST_CASE("IPv4 addresses, bracketed IPv6 addresses and host names are accepted with a port") {
        CHECK(parse_listen_address("127.0.0.1:9543") == ListenAddress{"127.0.0.1", 9543});
        CHECK(parse_listen_address("0.0.0.0:1") == ListenAddress{"0.0.0.0", 1});
        CHECK(parse_listen_address("[::1]:65535") == ListenAddress{"::1", 65535});
        CHECK(parse_listen_address("[::]:80") == ListenAddress{"::", 80});
        CHECK(parse_listen_address("localhost:9543") == ListenAddress{"localhost", 9543});
        CHECK(parse_listen_address("metrics-1.example.org:9543") == ListenAddress{"metrics-1.example.org", 9543});
    }

    TEST_CASE("a port above 65535 or not a number is refused; 0 asks for any free port") {
        CHECK(parse_listen_address("127.0.0.1:0") == ListenAddress{"127.0.0.1", 0});
        CHECK(contains(refusal("127.0.0.1:65536"), "the port must be a number from 1 to 65535 (or 0 for any free one"));
        CHECK(contains(refusal("127.0.0.1:65536"), "not '65536'"));
        CHECK(contains(refusal("127.0.0.1:http"), "not 'http'"));
        CHECK(contains(refusal("127.0.0.1:"), "not ''"));
        CHECK(contains(refusal("[::1]:x"), "not 'x'"));
    }

    TEST_CASE("a missing port or host says how to write one") {
        CHECK(contains(refusal("127.0.0.1"), "has no port; write HOST:PORT"));
        CHECK(contains(refusal("[::1]"), "has no port"));
        CHECK(contains(refusal(":9543"), "has no host"));
        CHECK(contains(refusal(""), "is empty"));
    }

    TEST_CASE("an IPv6 address without brackets is refused with the bracketed spelling") {
        CHECK(contains(refusal("::1:9543"), "\"[::1]:PORT\""));
    }

    TEST_CASE("malformed addresses and host names are refused") {
        CHECK(contains(refusal("300.1.2.3:80"), "'300.1.2.3' is not an IPv4 address"));
        CHECK(contains(refusal("1.2.3:80"), "is not an IPv4 address"));
        CHECK(contains(refusal("[::g]:80"), "'::g' is not an IPv6 address"));
        CHECK(contains(refusal("[::1:80"), "no closing ']'"));
        CHECK(contains(refusal("-bad.example:80"), "is not a host name"));
        CHECK(contains(refusal("under_score:80"), "is not a host name"));
        CHECK(contains(refusal("a..b:80"), "is not a host name"));
    }
}
