#include "config/named_parameters.hpp"

#include <doctest/doctest.h>

using projectiond::config::json_path_segments;
using projectiond::config::leading_keyword;
using projectiond::config::NamedParameters;
using projectiond::config::rewrite_named_parameters;
using projectiond::config::RewrittenSql;
using projectiond::config::split_json_path;
using projectiond::config::SqlParameterError;
using strings = std::vector<std::string>;

namespace {
RewrittenSql one(std::string_view sql) {
    auto statements = rewrite_named_parameters(sql);
    REQUIRE(statements.size() == 1);
    return statements.front();
}

std::size_t error_offset(std::string_view sql, NamedParameters named = NamedParameters::allowed) {
    try {
        rewrite_named_parameters(sql, named);
    } catch (const SqlParameterError& e) {
        return e.offset();
    }
    FAIL("expected an error for: " << sql);
    return 0;
}

std::string error_message(std::string_view sql, NamedParameters named = NamedParameters::allowed) {
    try {
        rewrite_named_parameters(sql, named);
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

    TEST_CASE("a double-quoted JSON key reaches keys with dashes, spaces and dots") {
        const auto r = one(R"(SELECT :payload."order-id", :payload.a."b.c".d, :metadata."x y")");
        CHECK(r.sql == "SELECT $1, $2, $3");
        CHECK(r.parameters == strings{R"(payload."order-id")", R"(payload.a."b.c".d)", R"(metadata."x y")"});
    }

    TEST_CASE("a doubled quote inside a quoted JSON key is a quote of the key") {
        const auto r = one(R"(SELECT :payload."say ""hi""")");
        CHECK(r.sql == "SELECT $1");
        REQUIRE(r.parameters.size() == 1);
        CHECK(json_path_segments(r.parameters[0]) == strings{R"(say "hi")"});
    }

    TEST_CASE("quoting a plain key changes nothing: both spellings are one parameter") {
        const auto r = one(R"(SELECT :payload."total", :payload.total)");
        CHECK(r.sql == "SELECT $1, $1");
        CHECK(r.parameters == strings{"payload.total"});
    }

    TEST_CASE("a quoted key may be followed by a cast") {
        const auto r = one(R"(SELECT :payload."unit-price"::numeric)");
        CHECK(r.sql == "SELECT $1::numeric");
    }

    TEST_CASE("json_path_segments gives the unquoted keys of a parameter's path") {
        CHECK(json_path_segments(R"(payload.a."b.c")") == strings{"a", "b.c"});
        CHECK(json_path_segments("payload.customer.address.zip") == strings{"customer", "address", "zip"});
        CHECK(json_path_segments(R"(metadata."x y".z)") == strings{"x y", "z"});
        CHECK(json_path_segments(R"(payload."")") == strings{""});
        CHECK(json_path_segments("payload").empty());
        CHECK(json_path_segments("aggregate_id").empty());
    }

    TEST_CASE("split_json_path still separates the field from its path, quotes and all") {
        CHECK(split_json_path("payload.a.b") == std::pair<std::string_view, std::string_view>{"payload", "a.b"});
        CHECK(split_json_path(R"(payload."a.b".c)") ==
              std::pair<std::string_view, std::string_view>{"payload", R"("a.b".c)"});
        CHECK(split_json_path("event_id") == std::pair<std::string_view, std::string_view>{"event_id", ""});
    }

    TEST_CASE("an unterminated quoted JSON key is an error at its opening quote") {
        CHECK(error_offset(R"(SELECT :payload."abc)") == 16);
        CHECK(error_message(R"(SELECT :payload."abc)").find("unterminated quoted JSON key") != std::string::npos);
    }

    TEST_CASE("origins lead each byte of a rewritten statement back to the handler's text") {
        const std::string text = "  SELECT :aggregate_id, x;\n  UPDATE t SET a = :payload.b";
        const auto statements = rewrite_named_parameters(text);
        REQUIRE(statements.size() == 2);
        const auto& select = statements[0];
        REQUIRE(select.sql == "SELECT $1, x");
        CHECK(select.text_offset(0) == text.find("SELECT"));
        CHECK(select.text_offset(7) == text.find(":aggregate_id")); // $1 is where the name was
        CHECK(select.text_offset(9) == text.find(", x"));
        CHECK(select.text_offset(11) == text.find("x;"));
        const auto& update = statements[1];
        REQUIRE(update.sql == "UPDATE t SET a = $1");
        CHECK(update.text_offset(0) == text.find("UPDATE"));
        CHECK(update.text_offset(update.sql.find("$1")) == text.find(":payload.b"));
    }

    TEST_CASE("where it was written is not part of a statement's identity") {
        CHECK(one("SELECT :event_id") == one("\n\n   SELECT :event_id"));
    }

    TEST_CASE("batch handlers refuse named parameters, pointing at the first and naming the relation") {
        const std::string sql = "INSERT INTO t SELECT aggregate_id FROM batch WHERE x = :aggregate_id";
        CHECK(error_offset(sql, NamedParameters::refused) == sql.find(":aggregate_id"));
        const auto message = error_message(sql, NamedParameters::refused);
        CHECK(message.find("':aggregate_id'") != std::string::npos);
        CHECK(message.find("relation `batch`") != std::string::npos);
        CHECK(message.find("batch.aggregate_id") != std::string::npos);
    }

    TEST_CASE("batch handlers refuse a misspelt parameter for the same reason") {
        CHECK(error_message("SELECT :paylod.x FROM batch", NamedParameters::refused).find("relation `batch`") !=
              std::string::npos);
    }

    TEST_CASE("batch handlers keep casts, strings and dollar quotes") {
        const auto statements =
            rewrite_named_parameters("SELECT a::text, ':x', $$:y$$ FROM batch", NamedParameters::refused);
        REQUIRE(statements.size() == 1);
        CHECK(statements[0].parameters.empty());
    }
}
