#include "store/connection.hpp"

#include <doctest/doctest.h>

using projectiond::store::password_span;
using projectiond::store::redact_conninfo;

namespace {
std::string password_in(std::string_view conninfo) {
    const auto span = password_span(conninfo);
    return span ? std::string(conninfo.substr(span->first, span->second)) : std::string("(none)");
}
} // namespace

TEST_SUITE("secrets") {
    TEST_CASE("finds the password of a URI") {
        CHECK(password_in("postgresql://app:s3cret@db.example:5432/app") == "s3cret");
        CHECK(password_in("postgres://app:p%40ss@db/app?sslmode=require") == "p%40ss");
        CHECK(password_in("postgresql://app@db/app") == "(none)");
        CHECK(password_in("postgresql:///app?host=/run/postgresql") == "(none)");
    }

    TEST_CASE("finds the password of key=value pairs, quoted or not") {
        CHECK(password_in("host=db password=s3cret dbname=app") == "s3cret");
        CHECK(password_in("password = 'se cret' host=db") == "'se cret'");
        CHECK(password_in("host=db passwordfile=x") == "(none)");
        CHECK(password_in("dbname=app") == "(none)");
    }

    TEST_CASE("redaction keeps everything but the password") {
        const std::string redacted = redact_conninfo("postgresql://app:s3cret@db.example/app");
        CHECK(redacted.find("s3cret") == std::string::npos);
        CHECK(redacted.find("db.example") != std::string::npos);
        CHECK(redacted.find("password=********") != std::string::npos);
    }
}
