#include "config/loader.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

using namespace std::chrono_literals;
using projectiond::config::ConfigError;
using projectiond::config::OnError;
using projectiond::config::parse_config;

namespace {
std::string error_of(const std::string& yaml) {
    try {
        parse_config(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    FAIL("expected a configuration error for:\n" << yaml);
    return {};
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

const char* const spec_example = R"(database:
  url: postgresql:///app?host=/run/postgresql
defaults:
  batch_size: 100
  poll_interval: 1s
  on_error: stop
  max_retries: 5
projections:
  - name: user_read_model
    aggregate_types: [User]
    bounded_contexts: [Identity]
    event_types: [UserCreated, UserRenamed]
    partitions: 1
    setup: |
      CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, email text, name text)
    handlers:
      UserCreated: |
        INSERT INTO users (id, email, name)
        VALUES (:aggregate_id, :payload.email, :payload.name)
        ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
      UserRenamed: UPDATE users SET name = :payload.name WHERE id = :aggregate_id
  - name: audit_log
    log: true
)";
} // namespace

TEST_SUITE("configuration") {
    TEST_CASE("the SPEC's example loads with every value in place") {
        const auto config = parse_config(spec_example, "spec.yaml");
        CHECK(config.database.url == "postgresql:///app?host=/run/postgresql");
        REQUIRE(config.projections.size() == 2);
        const auto& users = config.projections[0];
        CHECK(users.name == "user_read_model");
        CHECK(users.aggregate_types == std::vector<std::string>{"User"});
        CHECK(users.event_types == std::vector<std::string>{"UserCreated", "UserRenamed"});
        REQUIRE(users.handlers.size() == 2);
        CHECK(users.handlers[0].event_type == "UserCreated");
        CHECK(users.handlers[0].statements.front().parameters ==
              std::vector<std::string>{"aggregate_id", "payload.email", "payload.name"});
        CHECK(users.setup.find("CREATE TABLE IF NOT EXISTS users") == 0);
        CHECK(config.projections[1].log);
        CHECK(config.projections[1].settings.batch_size == 100);
    }

    TEST_CASE("a projection's own settings win over the defaults") {
        const auto config = parse_config(R"(defaults:
  batch_size: 50
  on_error: skip
projections:
  - name: a
    log: true
    batch_size: 7
    poll_interval: 250ms
    max_retries: 0
  - name: b
    log: true
)",
                                         "t.yaml");
        CHECK(config.projections[0].settings.batch_size == 7);
        CHECK(config.projections[0].settings.poll_interval == 250ms);
        CHECK(config.projections[0].settings.max_retries == 0);
        CHECK(config.projections[0].settings.on_error == OnError::skip);
        CHECK(config.projections[1].settings.batch_size == 50);
        CHECK(config.projections[1].settings.poll_interval == 1s);
    }

    TEST_CASE("an unknown key names file, line, column and the likely key") {
        const auto message = error_of("defaults:\n  batchsize: 10\nprojections:\n  - name: a\n    log: true\n");
        CHECK(contains(message, "test.yaml:2:3: unknown key 'batchsize' in defaults (did you mean 'batch_size'?)"));
    }

    TEST_CASE("an unknown key in a projection is found too") {
        const auto message = error_of("projections:\n  - name: a\n    log: true\n    handler: {}\n");
        CHECK(contains(message, "test.yaml:4:5: unknown key 'handler' in a projection (did you mean 'handlers'?)"));
    }

    TEST_CASE("wrong types are reported with what was expected") {
        CHECK(contains(error_of("defaults:\n  batch_size: lots\nprojections: [{name: a, log: true}]\n"),
                       "test.yaml:2:15: `batch_size` must be a whole number from 1 to 100000, not 'lots'"));
        CHECK(contains(error_of("projections:\n  - name: a\n    log: maybe\n"),
                       "`log` must be true or false, not 'maybe'"));
        CHECK(contains(error_of("projections:\n  - name: a\n    log: true\n    partitions: [1]\n"),
                       "`partitions` must be a whole number from 1 to 1024, not a list"));
        CHECK(contains(error_of("projections: {a: 1}\n"), "`projections` must be a list"));
    }

    TEST_CASE("bad durations and policies are refused") {
        CHECK(contains(error_of("defaults:\n  poll_interval: 5x\nprojections: [{name: a, log: true}]\n"),
                       "test.yaml:2:18: `poll_interval` must be a duration such as 500ms, 5s or 2m, not '5x'"));
        CHECK(contains(error_of("defaults:\n  on_error: retry\nprojections: [{name: a, log: true}]\n"),
                       "`on_error` must be stop or skip, not 'retry'"));
    }

    TEST_CASE("duplicate projection names are refused, naming the first") {
        const auto message = error_of("projections:\n  - name: a\n    log: true\n  - name: a\n    log: true\n");
        CHECK(contains(message, "test.yaml:4:11: duplicate projection name 'a' (first declared at line 2)"));
    }

    TEST_CASE("duplicate keys are refused") {
        CHECK(contains(error_of("projections:\n  - name: a\n    log: true\n    log: false\n"),
                       "test.yaml:4:5: duplicate key 'log'"));
    }

    TEST_CASE("an unknown parameter in a block handler points into the SQL") {
        const auto message = error_of(R"(projections:
  - name: a
    handlers:
      UserCreated: |
        INSERT INTO t (id)
        VALUES (:aggregate_idd)
)");
        CHECK(
            contains(message, "test.yaml:6:17: in the handler for 'UserCreated': unknown parameter ':aggregate_idd'"));
        CHECK(contains(message, "did you mean 'aggregate_id'"));
    }

    TEST_CASE("an unknown parameter in a one-line handler points into the line") {
        const auto message = error_of("projections:\n  - name: a\n    handlers:\n      X: SELECT :nope\n");
        CHECK(contains(message, "test.yaml:4:17: in the handler for 'X': unknown parameter ':nope'"));
    }

    TEST_CASE("transaction control in a handler is refused") {
        CHECK(contains(error_of("projections:\n  - name: a\n    handlers:\n      X: [\"SELECT 1\", \"COMMIT\"]\n"),
                       "the handler for 'X' runs COMMIT"));
    }

    TEST_CASE("a handler may hold several statements, as a list or separated by semicolons") {
        const auto config = parse_config(
            "projections:\n  - name: a\n    handlers:\n      X: [\"SELECT :event_id\", \"SELECT 2; SELECT 3\"]\n",
            "t.yaml");
        CHECK(config.projections[0].handlers[0].statements.size() == 3);
    }

    TEST_CASE("YAML syntax errors carry their position") {
        CHECK(contains(error_of("projections:\n  - name: [a\n"), "test.yaml:3:1: YAML syntax error"));
    }

    TEST_CASE("every problem is reported at once") {
        const auto message =
            error_of("defaults:\n  batch_size: 0\n  max_retries: x\nprojections: [{name: a, log: true}]\n");
        CHECK(contains(message, "test.yaml:2:15"));
        CHECK(contains(message, "test.yaml:3:16"));
    }

    TEST_CASE("an empty configuration or one without projections is refused") {
        CHECK(contains(error_of(""), "the configuration is empty"));
        CHECK(contains(error_of("defaults:\n  batch_size: 10\n"), "no `projections:` list"));
        CHECK(contains(error_of("projections: []\n"), "`projections` is empty"));
    }

    TEST_CASE("a projection that would do nothing is refused") {
        CHECK(contains(error_of("projections:\n  - name: idle\n"), "has no `handlers` and no `log: true`"));
    }

    TEST_CASE("projection names are restricted to safe characters") {
        CHECK(contains(error_of("projections:\n  - name: \"a b\"\n    log: true\n"), "projection name 'a b'"));
    }

    TEST_CASE("a missing file is named in the error") {
        try {
            projectiond::config::load_config_file("/nonexistent/projectiond.yaml");
            FAIL("expected an error");
        } catch (const ConfigError& e) {
            CHECK(contains(e.what(), "/nonexistent/projectiond.yaml: cannot read the configuration"));
        }
    }

    TEST_CASE("same_work ignores where a projection is written, not what it does") {
        auto a = parse_config(spec_example, "a.yaml");
        auto b = parse_config(std::string("\n\n") + spec_example, "b.yaml");
        CHECK(a.projections[0].same_work(b.projections[0]));
        b.projections[0].settings.batch_size = 5;
        CHECK_FALSE(a.projections[0].same_work(b.projections[0]));
    }
}

TEST_SUITE("shipped configurations") {
    TEST_CASE("the commented example and the walkthrough configuration are valid") {
        const char* root = std::getenv("PROJECTIOND_SOURCE_ROOT");
        REQUIRE(root != nullptr);
        for (const char* name : {"/config/projectiond.yaml", "/config/walkthrough.yaml"}) {
            CHECK_NOTHROW(projectiond::config::load_config_file(std::string(root) + name));
        }
    }
}
