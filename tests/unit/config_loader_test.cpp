#include "config/loader.hpp"
#include "config/unreachable_handlers.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

#include <fmt/format.h>

using namespace std::chrono_literals;
using projectiond::config::ConfigError;
using projectiond::config::HandlerKind;
using projectiond::config::OnError;
using projectiond::config::parse_config;
using projectiond::config::SourceMark;
using strings = std::vector<std::string>;

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

// The one projection of `yaml`'s projections list, after `prefix` settings.
projectiond::config::Config with_projection(const std::string& projection, const std::string& prefix = "") {
    return parse_config(prefix + "projections:\n  - name: p\n" + projection, "t.yaml");
}

std::string projection_error(const std::string& projection, const std::string& prefix = "") {
    return error_of(prefix + "projections:\n  - name: p\n" + projection);
}

std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
        ++count;
    }
    return count;
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

TEST_SUITE("configuration: daemon, http and health") {
    TEST_CASE("the daemon's settings are read, and default to the documented values") {
        const auto defaults = with_projection("    log: true\n");
        CHECK(defaults.daemon.max_connections == 10);
        CHECK(defaults.daemon.lease_timeout == 20s);
        CHECK(defaults.daemon.log_interval == 10s);
        CHECK(defaults.daemon.watermark_warn_after == 10s);
        CHECK(defaults.daemon.shutdown_timeout == 60s);
        CHECK_FALSE(defaults.http.listen.has_value());
        CHECK_FALSE(defaults.health.max_lag.has_value());
        const auto config =
            with_projection("    log: true\n", "daemon:\n  max_connections: 4\n  lease_timeout: 45s\n"
                                               "  log_interval: 1m\n  watermark_warn_after: 2s\n"
                                               "  shutdown_timeout: 90s\nhttp:\n  listen: 127.0.0.1:9543\n"
                                               "health:\n  max_lag: 30s\n");
        CHECK(config.daemon.max_connections == 4);
        CHECK(config.daemon.lease_timeout == 45s);
        CHECK(config.daemon.log_interval == 60s);
        CHECK(config.daemon.watermark_warn_after == 2s);
        CHECK(config.daemon.shutdown_timeout == 90s);
        CHECK(config.http.listen == "127.0.0.1:9543");
        CHECK(config.health.max_lag == 30s);
    }

    TEST_CASE("max_connections is 2 to 1000") {
        CHECK(contains(projection_error("    log: true\n", "daemon:\n  max_connections: 1\n"),
                       "t.yaml:2:20: `max_connections` must be a whole number from 2 to 1000, not '1'"));
        CHECK(contains(projection_error("    log: true\n", "daemon:\n  max_connections: 1001\n"), "not '1001'"));
        CHECK(with_projection("    log: true\n", "daemon:\n  max_connections: 2\n").daemon.max_connections == 2);
    }

    TEST_CASE("lease_timeout is 3s to 10m") {
        CHECK(contains(projection_error("    log: true\n", "daemon:\n  lease_timeout: 2s\n"),
                       "`lease_timeout` must be from 3s to 10m, not '2s'"));
        CHECK(contains(projection_error("    log: true\n", "daemon:\n  lease_timeout: 11m\n"),
                       "`lease_timeout` must be from 3s to 10m, not '11m'"));
        CHECK(with_projection("    log: true\n", "daemon:\n  lease_timeout: 10m\n").daemon.lease_timeout == 10min);
    }

    TEST_CASE("log_interval, watermark_warn_after and shutdown_timeout are at least a second") {
        for (const char* key : {"log_interval", "watermark_warn_after", "shutdown_timeout"}) {
            CHECK_MESSAGE(contains(projection_error("    log: true\n", fmt::format("daemon:\n  {}: 999ms\n", key)),
                                   fmt::format("`{}` must be at least 1s, not '999ms'", key)),
                          key);
        }
    }

    TEST_CASE("every duration is refused above 2147483647 ms, PostgreSQL's limit for a timeout") {
        const auto message = projection_error("    log: true\n", "database:\n  statement_timeout: 30000000m\n");
        CHECK(contains(message, "t.yaml:2:22: `statement_timeout` must be at most 2147483647ms"));
        CHECK(contains(message, "the longest timeout PostgreSQL accepts"));
        CHECK(contains(projection_error("    log: true\n", "database:\n  lock_timeout: 2147483648ms\n"),
                       "`lock_timeout` must be at most 2147483647ms"));
        CHECK(with_projection("    log: true\n", "database:\n  lock_timeout: 2147483647ms\n").database.lock_timeout ==
              2147483647ms);
        for (const char* key : {"shutdown_timeout", "log_interval", "watermark_warn_after"}) {
            CHECK_MESSAGE(contains(projection_error("    log: true\n", fmt::format("daemon:\n  {}: 50000000m\n", key)),
                                   "must be at most 2147483647ms"),
                          key);
        }
        CHECK(contains(projection_error("    log: true\n", "health:\n  max_lag: 50000000m\n"),
                       "`max_lag` must be at most 2147483647ms"));
    }

    TEST_CASE("a duration too long to count in milliseconds is too long, not malformed") {
        CHECK(contains(projection_error("    log: true\n", "database:\n  statement_timeout: 99999999999999999999s\n"),
                       "`statement_timeout` must be at most 2147483647ms"));
    }

    TEST_CASE("connect_timeout, poll_interval and exec_timeout have bounds of their own") {
        CHECK(contains(projection_error("    log: true\n", "database:\n  connect_timeout: 11m\n"),
                       "`connect_timeout` must be from 1s to 10m, not '11m'"));
        CHECK(contains(projection_error("    log: true\n", "defaults:\n  poll_interval: 61m\n"),
                       "`poll_interval` must be from 10ms to 60m"));
        CHECK(contains(projection_error("    log: true\n", "defaults:\n  exec_timeout: 99ms\n"),
                       "`exec_timeout` must be from 100ms to 60m, not '99ms'"));
    }

    TEST_CASE("exec_timeout is a default that a projection may override") {
        const auto config = parse_config("defaults:\n  exec_timeout: 5s\nprojections:\n  - name: a\n    log: true\n"
                                         "  - name: b\n    log: true\n    exec_timeout: 100ms\n",
                                         "t.yaml");
        CHECK(config.defaults.exec_timeout == 5s);
        CHECK(config.projections[0].settings.exec_timeout == 5s);
        CHECK(config.projections[1].settings.exec_timeout == 100ms);
        CHECK(with_projection("    log: true\n").projections[0].settings.exec_timeout == 30s);
    }

    TEST_CASE("http.listen takes IPv4, a quoted bracketed IPv6 address or a host name, with a port") {
        for (const char* listen : {"0.0.0.0:9543", "\"[::1]:9543\"", "localhost:80"}) {
            CHECK_MESSAGE(with_projection("    log: true\n", fmt::format("http:\n  listen: {}\n", listen))
                              .http.listen.has_value(),
                          listen);
        }
        CHECK(with_projection("    log: true\n", "http:\n  listen: \"[::1]:9543\"\n").http.listen == "[::1]:9543");
    }

    TEST_CASE("a bad http.listen is placed and explained") {
        CHECK(contains(projection_error("    log: true\n", "http:\n  listen: 127.0.0.1\n"),
                       "t.yaml:2:11: `listen`: '127.0.0.1' has no port; write HOST:PORT"));
        CHECK(contains(projection_error("    log: true\n", "http:\n  listen: 127.0.0.1:99999\n"),
                       "`listen`: the port must be a number from 1 to 65535 (or 0 for any free one, which the log names), not '99999'"));
        CHECK(contains(projection_error("    log: true\n", "http:\n  listen: \"::1:80\"\n"),
                       "an IPv6 address goes in brackets"));
        CHECK(contains(projection_error("    log: true\n", "http:\n  listen: 999.0.0.1:80\n"),
                       "'999.0.0.1' is not an IPv4 address"));
        CHECK(contains(projection_error("    log: true\n", "http:\n  listen: [\"::1\"]\n"),
                       "YAML reads [...] as a list"));
        CHECK(contains(projection_error("    log: true\n", "http:\n  lisen: 127.0.0.1:80\n"),
                       "unknown key 'lisen' in http (did you mean 'listen'?)"));
    }

    TEST_CASE("an unquoted bracketed IPv6 address gets a hint with the YAML syntax error") {
        CHECK(contains(error_of("http:\n  listen: [::1]:9543\nprojections: [{name: a, log: true}]\n"),
                       "write a bracketed IPv6 address in quotes"));
    }

    TEST_CASE("health.max_lag is a duration of at least a second") {
        CHECK(contains(projection_error("    log: true\n", "health:\n  max_lag: soon\n"),
                       "t.yaml:2:12: `max_lag` must be a duration"));
        CHECK(contains(projection_error("    log: true\n", "health:\n  max_lag: 500ms\n"),
                       "`max_lag` must be at least 1s"));
    }

    TEST_CASE("a known key in the wrong section says where it belongs") {
        CHECK(contains(projection_error("    log: true\n", "daemon:\n  statement_timeout: 5s\n"),
                       "unknown key 'statement_timeout' in daemon (it belongs under `database:`)"));
        CHECK(contains(error_of("max_connections: 5\nprojections: [{name: a, log: true}]\n"),
                       "unknown key 'max_connections' at the top level (it belongs under `daemon:`)"));
    }
}

TEST_SUITE("configuration: schemas and versions") {
    TEST_CASE("schema and version are read; version defaults to 1") {
        const auto config = with_projection("    log: true\n    schema: shop\n    version: 7\n");
        CHECK(config.projections[0].schema == "shop");
        CHECK(config.projections[0].version == 7);
        const auto plain = with_projection("    log: true\n    schema: shop\n");
        CHECK(plain.projections[0].version == 1);
        CHECK_FALSE(with_projection("    log: true\n").projections[0].schema.has_value());
    }

    TEST_CASE("a schema must be a lower-case SQL name") {
        for (const char* schema : {"Shop", "1shop", "shop-2", "\"shop\"", "sh op"}) {
            CHECK_MESSAGE(contains(projection_error(fmt::format("    log: true\n    schema: '{}'\n", schema)),
                                   "`schema` must be a lower-case SQL name"),
                          schema);
        }
        CHECK(with_projection("    log: true\n    schema: _shop_2\n").projections[0].schema == "_shop_2");
    }

    TEST_CASE("public, pg_ schemas and information_schema are refused") {
        CHECK(contains(projection_error("    log: true\n    schema: public\n"),
                       "t.yaml:4:13: `schema: public` is where everything else lives"));
        CHECK(contains(projection_error("    log: true\n    schema: pg_shop\n"), "reserved by PostgreSQL"));
        CHECK(contains(projection_error("    log: true\n    schema: information_schema\n"), "reserved by PostgreSQL"));
    }

    TEST_CASE("a schema leaves room for the rebuild's name in PostgreSQL's 63 bytes") {
        const std::string fits(52, 's'); // 52 + "_rebuild_v1" = 63
        CHECK(with_projection("    log: true\n    schema: " + fits + "\n").projections[0].schema == fits);
        const auto message = projection_error("    log: true\n    schema: " + fits + "s\n");
        CHECK(contains(message, "is too long"));
        CHECK(contains(message, "use at most 52 characters"));
        // A longer version number takes more of the room.
        CHECK(contains(projection_error("    log: true\n    schema: " + fits + "\n    version: 10\n"),
                       "use at most 51 characters"));
    }

    TEST_CASE("version is a whole number from 1 to 1000000") {
        CHECK(contains(projection_error("    log: true\n    schema: s\n    version: 0\n"),
                       "`version` must be a whole number from 1 to 1000000, not '0'"));
        CHECK(contains(projection_error("    log: true\n    schema: s\n    version: 1000001\n"), "not '1000001'"));
        CHECK(with_projection("    log: true\n    schema: s\n    version: 1000000\n").projections[0].version ==
              1000000);
    }

    TEST_CASE("a version without a schema explains that versions need one") {
        const auto message = projection_error("    log: true\n    version: 2\n");
        CHECK(contains(message, "t.yaml:4:5: `version` needs a `schema`"));
        CHECK(contains(message, "add `schema: NAME`"));
    }

    TEST_CASE("two projections may not share a schema") {
        CHECK(contains(error_of("projections:\n  - name: a\n    log: true\n    schema: s\n"
                                "  - name: b\n    log: true\n    schema: s\n"),
                       "t.yaml:7:13: schema 's' is already the schema of projection 'a'"));
    }
}

TEST_SUITE("configuration: handler kinds") {
    TEST_CASE("a string or a list of strings is a per-event SQL handler") {
        const auto config = with_projection("    handlers:\n      A: SELECT 1\n      B: [SELECT 1, SELECT 2]\n");
        CHECK(config.projections[0].handlers[0].kind == HandlerKind::sql);
        CHECK(config.projections[0].handlers[1].kind == HandlerKind::sql);
        CHECK(config.projections[0].handlers[1].statements.size() == 2);
    }

    TEST_CASE("batch: SQL is a batch handler, as a string or a list") {
        const auto config = with_projection("    handlers:\n"
                                            "      A: {batch: INSERT INTO t SELECT aggregate_id FROM batch}\n"
                                            "      B:\n        batch:\n          - DELETE FROM t\n"
                                            "          - INSERT INTO t SELECT aggregate_id FROM batch\n");
        const auto& handlers = config.projections[0].handlers;
        CHECK(handlers[0].kind == HandlerKind::batch);
        CHECK(handlers[0].statements[0].sql == "INSERT INTO t SELECT aggregate_id FROM batch");
        CHECK(handlers[1].kind == HandlerKind::batch);
        CHECK(handlers[1].statements.size() == 2);
    }

    TEST_CASE("a named parameter in a batch handler points at it and names the relation batch") {
        const auto message = projection_error("    handlers:\n      A:\n        batch: |\n"
                                              "          INSERT INTO t\n"
                                              "          SELECT :aggregate_id FROM batch\n");
        CHECK(contains(message, "t.yaml:7:18: in the batch handler for 'A': batch handlers take no named "
                                "parameters (':aggregate_id')"));
        CHECK(contains(message, "batch.aggregate_id"));
        CHECK(count_of(message, "t.yaml:") == 1);
    }

    TEST_CASE("a batch handler may not control the transaction either") {
        CHECK(contains(projection_error("    handlers:\n      A: {batch: \"SELECT 1; COMMIT\"}\n"),
                       "the handler for 'A' runs COMMIT"));
    }

    TEST_CASE("exec: takes a program and its arguments, or just a program") {
        const auto config = with_projection("    handlers:\n      A: {exec: [/usr/bin/python3, handler.py, -v]}\n"
                                            "      B: {exec: /usr/local/bin/handle}\n");
        const auto& handlers = config.projections[0].handlers;
        CHECK(handlers[0].kind == HandlerKind::exec);
        CHECK(handlers[0].command == strings{"/usr/bin/python3", "handler.py", "-v"});
        CHECK(handlers[0].statements.empty());
        CHECK(handlers[1].command == strings{"/usr/local/bin/handle"});
    }

    TEST_CASE("exec: refuses an empty list, an empty word and a mapping") {
        CHECK(contains(projection_error("    handlers:\n      A: {exec: []}\n"), "`exec` is an empty list"));
        CHECK(contains(projection_error("    handlers:\n      A: {exec: [prog, \"\"]}\n"),
                       "`exec` has an empty program or argument"));
        CHECK(contains(projection_error("    handlers:\n      A: {exec: \"\"}\n"),
                       "`exec` has an empty program or argument"));
        CHECK(contains(projection_error("    handlers:\n      A: {exec: {a: b}}\n"),
                       "`exec` must be a program or a list"));
    }

    TEST_CASE("plugin: takes an absolute path") {
        const auto config = with_projection("    handlers:\n      A: {plugin: /usr/lib/projectiond/counter.so}\n");
        CHECK(config.projections[0].handlers[0].kind == HandlerKind::plugin);
        CHECK(config.projections[0].handlers[0].plugin_path == "/usr/lib/projectiond/counter.so");
        CHECK(contains(projection_error("    handlers:\n      A: {plugin: counter.so}\n"),
                       "t.yaml:4:19: `plugin` must be an absolute path to a shared object, not 'counter.so'"));
    }

    TEST_CASE("an unknown kind of handler suggests the likely one") {
        CHECK(contains(projection_error("    handlers:\n      A: {bach: SELECT 1}\n"),
                       "t.yaml:4:11: unknown kind of handler 'bach' for 'A' (did you mean 'batch'?)"));
        CHECK(contains(projection_error("    handlers:\n      A: {sql: SELECT 1}\n"),
                       "SQL run for each event is written without a key"));
    }

    TEST_CASE("a handler is one kind only") {
        CHECK(contains(projection_error("    handlers:\n      A: {batch: SELECT 1, exec: [x]}\n"),
                       "t.yaml:4:28: the handler for 'A' is both `batch` and `exec`"));
        CHECK(contains(projection_error("    handlers:\n      A: {}\n"), "the handler for 'A' is empty"));
    }

    TEST_CASE("a misspelt parameter is the only error of its handler (issue 9)") {
        const auto message = projection_error("    handlers:\n      X: SELECT :paylod.total\n");
        CHECK(contains(message, "unknown parameter ':paylod' (did you mean 'payload'?)"));
        CHECK_FALSE(contains(message, "has no SQL statement"));
        CHECK(count_of(message, "t.yaml:") == 1);
    }

    TEST_CASE("a handler with nothing in it still says so") {
        CHECK(contains(projection_error("    handlers:\n      X: \"-- nothing\"\n"),
                       "the handler for 'X' has no SQL statement"));
        CHECK(contains(projection_error("    handlers:\n      X: []\n"), "the handler for 'X' has no SQL statement"));
    }

    TEST_CASE("each statement maps its bytes to their lines and columns in the file") {
        const auto config = with_projection("    handlers:\n"
                                            "      X: |\n"
                                            "        INSERT INTO t (a)\n"
                                            "        VALUES (:aggregate_id);\n"
                                            "        UPDATE t\n"
                                            "           SET nam = 1\n");
        const auto& handler = config.projections[0].handlers[0];
        REQUIRE(handler.statements.size() == 2);
        REQUIRE(handler.sources.size() == 2);
        const auto& insert = handler.statements[0].sql;
        CHECK(handler.sources[0].at(0) == SourceMark{5, 9});
        CHECK(handler.sources[0].at(insert.find("$1")) == SourceMark{6, 17});
        CHECK(handler.sources[0].at(insert.find(')', insert.find("$1"))) == SourceMark{6, 30});
        const auto& update = handler.statements[1].sql;
        CHECK(handler.sources[1].at(update.find("nam")) == SourceMark{8, 16});
    }

    TEST_CASE("a statement in a list or a quoted string maps into its own item") {
        const auto config = with_projection("    handlers:\n      X:\n        - SELECT 1\n"
                                            "        - \"SELECT nope\"\n");
        const auto& handler = config.projections[0].handlers[0];
        REQUIRE(handler.sources.size() == 2);
        CHECK(handler.sources[1].at(7) == SourceMark{6, 19});
    }
}

TEST_SUITE("configuration: positions") {
    TEST_CASE("setup_mark is where `setup:` is written, partitions_mark where `partitions:` is") {
        const auto config = with_projection("    log: true\n    partitions: 2\n    setup: |\n      SELECT 1\n");
        CHECK(config.projections[0].setup_mark == SourceMark{5, 5});
        CHECK(config.projections[0].partitions_mark == SourceMark{4, 5});
        const auto defaulted = with_projection("    log: true\n");
        CHECK(defaulted.projections[0].partitions_mark == defaulted.projections[0].mark);
    }

    TEST_CASE("errors come out in file order, whatever order they were found in") {
        // The projection is read after `defaults:`, which comes later in the file.
        const auto message = error_of("projections:\n  - name: a\n    log: maybe\n"
                                      "daemon:\n  max_connections: 0\n"
                                      "defaults:\n  batch_size: 0\n");
        const auto log = message.find("test.yaml:3:");
        const auto daemon = message.find("test.yaml:5:");
        const auto defaults = message.find("test.yaml:7:");
        REQUIRE(log != std::string::npos);
        REQUIRE(daemon != std::string::npos);
        REQUIRE(defaults != std::string::npos);
        CHECK(log < daemon);
        CHECK(daemon < defaults);
    }

    TEST_CASE("errors on one line are ordered by column") {
        const auto message = error_of("projections: [{name: a, log: maybe, partitions: x}]\n");
        CHECK(message.find("partitions") > message.find("`log`"));
    }
}

TEST_SUITE("configuration: same work") {
    TEST_CASE("same_work notices every change to what a projection does") {
        const std::string base = "    schema: s\n    handlers:\n      A: SELECT 1\n      B: {exec: [prog, a]}\n"
                                 "      C: {plugin: /p.so}\n";
        const auto original = with_projection(base).projections[0];
        CHECK(original.same_work(with_projection("\n" + base).projections[0]));
        const std::vector<std::string> changes = {
            "    schema: s\n    version: 2\n    handlers:\n      A: SELECT 1\n      B: {exec: [prog, a]}\n"
            "      C: {plugin: /p.so}\n",
            "    schema: t\n    handlers:\n      A: SELECT 1\n      B: {exec: [prog, a]}\n      C: {plugin: /p.so}\n",
            "    schema: s\n    handlers:\n      A: {batch: SELECT 1}\n      B: {exec: [prog, a]}\n"
            "      C: {plugin: /p.so}\n",
            "    schema: s\n    handlers:\n      A: SELECT 1\n      B: {exec: [prog, b]}\n      C: {plugin: /p.so}\n",
            "    schema: s\n    handlers:\n      A: SELECT 1\n      B: {exec: [prog, a]}\n      C: {plugin: /q.so}\n",
            "    schema: s\n    exec_timeout: 5s\n    handlers:\n      A: SELECT 1\n      B: {exec: [prog, a]}\n"
            "      C: {plugin: /p.so}\n",
        };
        for (const auto& change : changes) {
            CHECK_MESSAGE(!original.same_work(with_projection(change).projections[0]), change);
        }
    }
}

TEST_SUITE("configuration: unreachable handlers") {
    TEST_CASE("a handler for an event type the projection's event_types leave out is warned about") {
        const auto config = with_projection("    event_types: [A]\n    handlers:\n      A: SELECT 1\n"
                                            "      B: SELECT 2\n      \"*\": SELECT 3\n");
        const auto warnings = projectiond::config::find_unreachable_handlers(config);
        REQUIRE(warnings.size() == 1);
        CHECK(warnings[0].mark == SourceMark{6, 10});
        CHECK(contains(warnings[0].message, "warning: the handler for 'B' in projection 'p' can never run"));
    }

    TEST_CASE("without an event_types filter every handler can run") {
        const auto config = with_projection("    handlers:\n      A: SELECT 1\n      B: SELECT 2\n");
        CHECK(projectiond::config::find_unreachable_handlers(config).empty());
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
