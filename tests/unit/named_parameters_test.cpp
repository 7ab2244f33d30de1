#include "config/named_parameters.hpp"

#include <doctest/doctest.h>

using projectiond::config::leading_keyword;
using projectiond::config::rewrite_named_parameters;
using projectiond::config::RewrittenSql;
using projectiond::config::SqlParameterError;

namespace {
RewrittenSql one(std::string_view sql) {
    auto statements = rewrite_named_parameters(sql);
    REQUIRE(statements.size() == 1);
    return statements.front();
}

std::size_t error_offset(std::string_view sql) {
    try {
        rewrite_named_parameters(sql);
    } catch (const SqlParameterError& e) {
        return e.offset();
    }
    FAIL("expected an error for: " << sql);
    return 0;
}

std::string error_message(std::string_view sql) {
    try {
        rewrite_named_parameters(sql);
    } catch (const SqlParameterError& e) {
        return e.what();
    }
    FAIL("expected an error for: " << sql);
    return {};
}
} // namespace

TEST_SUITE("named parameters") {
    TEST_CASE("rewrites each named parameter to a positional one in order of first use") {
        const auto r = one("INSERT INTO users (id, email, name) VALUES (:aggregate_id, :payload.email, :payload.name)");
        CHECK(r.sql == "INSERT INTO users (id, email, name) VALUES ($1, $2, $3)");
        CHECK(r.parameters == std::vector<std::string>{"aggregate_id", "payload.email", "payload.name"});
    }

    TEST_CASE("a parameter used twice is bound once") {
        const auto r = one("UPDATE t SET a = :aggregate_id WHERE b = :event_id OR c = :aggregate_id");
        CHECK(r.sql == "UPDATE t SET a = $1 WHERE b = $2 OR c = $1");
        CHECK(r.parameters.size() == 2);
    }

    TEST_CASE("a :: cast is not a parameter, also right after one") {
        const auto r = one("SELECT :payload.amount::numeric, 'x'::text, now()::date");
        CHECK(r.sql == "SELECT $1::numeric, 'x'::text, now()::date");
        CHECK(r.parameters == std::vector<std::string>{"payload.amount"});
    }

    TEST_CASE("colons inside string literals are left alone, with doubled quotes") {
        const auto r = one("SELECT 'at :aggregate_id', 'it''s :event_id', :event_type");
        CHECK(r.sql == "SELECT 'at :aggregate_id', 'it''s :event_id', $1");
        CHECK(r.parameters == std::vector<std::string>{"event_type"});
    }

    TEST_CASE("escape strings may hide a quote behind a backslash") {
        const auto r = one(R"(SELECT E'it\'s :aggregate_id', :event_id)");
        CHECK(r.sql == R"(SELECT E'it\'s :aggregate_id', $1)");
        CHECK(r.parameters == std::vector<std::string>{"event_id"});
    }

    TEST_CASE("in a standard string a backslash is just a character") {
        const auto r = one(R"(SELECT 'C:\', :event_id)");
        CHECK(r.sql == R"(SELECT 'C:\', $1)");
    }

    TEST_CASE("quoted identifiers are left alone") {
        const auto r = one(R"(SELECT ":aggregate_id", "a""b:event_id" FROM t WHERE x = :event_id)");
        CHECK(r.sql == R"(SELECT ":aggregate_id", "a""b:event_id" FROM t WHERE x = $1)");
    }

    TEST_CASE("comments are left alone, block comments nest") {
        const auto r = one("SELECT 1 -- :aggregate_id\n, /* a /* :event_id */ :x */ :event_type");
        CHECK(r.sql == "SELECT 1 -- :aggregate_id\n, /* a /* :event_id */ :x */ $1");
        CHECK(r.parameters == std::vector<std::string>{"event_type"});
    }

    TEST_CASE("dollar-quoted strings are left alone, tagged or not") {
        const auto r = one("SELECT $$ :aggregate_id $$, $fn$ $$ :event_id $$ $fn$, :payload");
        CHECK(r.sql == "SELECT $$ :aggregate_id $$, $fn$ $$ :event_id $$ $fn$, $1");
        CHECK(r.parameters == std::vector<std::string>{"payload"});
    }

    TEST_CASE("a dollar sign inside an identifier does not open a quote") {
        const auto r = one("SELECT foo$bar, :event_id FROM t");
        CHECK(r.sql == "SELECT foo$bar, $1 FROM t");
    }

    TEST_CASE("array slices with numbers are not parameters") {
        const auto r = one("SELECT (ARRAY[1,2,3])[1:2], :event_id");
        CHECK(r.sql == "SELECT (ARRAY[1,2,3])[1:2], $1");
    }

    TEST_CASE("JSON paths go to any depth on payload and metadata") {
        const auto r = one("SELECT :payload.customer.address.zip_2, :metadata.tenant");
        CHECK(r.parameters == std::vector<std::string>{"payload.customer.address.zip_2", "metadata.tenant"});
    }

    TEST_CASE("a dot after a plain field is SQL, not a path") {
        const auto r = one("SELECT :aggregate_id.x");
        CHECK(r.sql == "SELECT $1.x");
        CHECK(r.parameters == std::vector<std::string>{"aggregate_id"});
    }

    TEST_CASE("every documented event field is accepted") {
        for (const auto name : projectiond::config::event_parameters) {
            CHECK(one("SELECT :" + std::string(name)).parameters.front() == name);
        }
    }

    TEST_CASE("an unknown parameter is an error at its offset, with a suggestion") {
        CHECK(error_offset("SELECT 1, :aggregat_id") == 10);
        CHECK(error_message("SELECT :aggregat_id").find("did you mean 'aggregate_id'") != std::string::npos);
        CHECK(error_message("SELECT :payloda.x").find("unknown parameter ':payloda'") != std::string::npos);
    }

    TEST_CASE("positional parameters are refused") {
        CHECK(error_offset("SELECT $1") == 7);
        CHECK(error_message("SELECT $1").find("positional") != std::string::npos);
    }

    TEST_CASE("unterminated literals, identifiers, comments and dollar quotes are errors") {
        CHECK(error_offset("SELECT 'abc") == 7);
        CHECK(error_offset("SELECT \"abc") == 7);
        CHECK(error_offset("SELECT /* abc") == 7);
        CHECK(error_offset("SELECT $x$ abc") == 7);
    }

    TEST_CASE("splits statements at top-level semicolons only") {
        const auto statements = rewrite_named_parameters(
            "INSERT INTO a VALUES (:event_id, ';');\n-- comment; still comment\nUPDATE b SET x = :aggregate_id; ");
        REQUIRE(statements.size() == 2);
        CHECK(statements[0].sql == "INSERT INTO a VALUES ($1, ';')");
        CHECK(statements[1].sql == "-- comment; still comment\nUPDATE b SET x = $1");
        CHECK(statements[1].parameters == std::vector<std::string>{"aggregate_id"});
    }

    TEST_CASE("a trailing comment or blank after the last semicolon is not a statement") {
        CHECK(rewrite_named_parameters("SELECT 1; -- done\n").size() == 1);
        CHECK(rewrite_named_parameters("  ;  ; ").empty());
    }

    TEST_CASE("the leading keyword skips blanks and comments") {
        CHECK(leading_keyword("  -- hi\n /* x */ commit") == "COMMIT");
        CHECK(leading_keyword("insert into t values (1)") == "INSERT");
        CHECK(leading_keyword("-- only a comment") == "");
    }
}
