// The command line as an operator meets it: outputs, errors and exit codes.
#include "child_process.hpp"
#include "daemon_process.hpp"
#include "projection_state.hpp"
#include "test_database.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "build_config.hpp"

using namespace projectiond::testing;

namespace {
// The lines of `text` that mention `part`, in order.
std::vector<std::string> lines_with(const std::string& text, const std::string& part) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        const std::string line = text.substr(start, end - start);
        if (line.find(part) != std::string::npos) {
            lines.push_back(line);
        }
        start = end + 1;
    }
    return lines;
}

CommandResult cli(std::vector<std::string> args, const std::map<std::string, std::string>& env = {}) {
    args.insert(args.begin(), projectiond_binary());
    return run_command(args, env);
}

CommandResult against(const TestDatabase& db, std::vector<std::string> args) {
    args.insert(args.begin(), {"--database-url", db.conninfo()});
    return cli(std::move(args));
}

const char* const one_projection = "projections:\n  - name: reliable_checkpoint_projection\n    log: true\n";
} // namespace

TEST_SUITE("command line") {
    TEST_CASE("--version prints the version from meson.build and exits 0") {
        const auto result = cli({"--version"});
        CHECK(result.exit_code == 0);
        CHECK(contains(result.out, PROJECTIOND_VERSION));
    }

    TEST_CASE("--help lists every subcommand and the global options") {
        const auto result = cli({"--help"});
        CHECK(result.exit_code == 0);
        for (const char* word : {"run", "migrate", "append", "status", "check-config", "reset", "dead-letters",
                                 "--config", "--database-url", "--log-level", "--log-target", "Exit status"}) {
            CHECK_MESSAGE(contains(result.out, word), word);
        }
    }

    TEST_CASE("a bad flag, a missing subcommand or a bad value exits 64") {
        CHECK(cli({"status", "--bogus"}).exit_code == 64);
        CHECK(contains(cli({"status", "--bogus"}).err, "--bogus"));
        CHECK(cli({}).exit_code == 64);
        CHECK(cli({"frobnicate"}).exit_code == 64);
        CHECK(cli({"--log-level", "loud", "status"}).exit_code == 64);
        CHECK(cli({"append"}).exit_code == 64);
        CHECK(cli({"append", "--events=0", "--database-url", "dbname=nothing"}).exit_code == 64);
    }

    TEST_CASE("migrate applies the schema once, then reports it up to date") {
        TestDatabase db(false);
        const auto first = against(db, {"migrate"});
        CHECK(first.exit_code == 0);
        CHECK(contains(first.out, "Applied migration 0001_event_store"));
        const auto second = against(db, {"migrate"});
        CHECK(second.exit_code == 0);
        CHECK(contains(second.out, "Schema is up to date"));
        CHECK(second.err.empty());
    }

    TEST_CASE("append 20 then status prints the reference's lines before processing") {
        TestDatabase db;
        TempFile config(one_projection);
        const auto append = against(db, {"append", "--events=20"});
        CHECK(append.exit_code == 0);
        CHECK(contains(append.out, "Appended 20 UserCreated events"));
        const auto status = against(db, {"-c", config.path(), "status"});
        CHECK(status.exit_code == 0);
        CHECK(status.out == "Projection: reliable_checkpoint_projection\n"
                            "Current checkpoint position: 0\n"
                            "Total events in store: 20\n"
                            "Status: Not started (will process all 20 events)\n");
    }

    TEST_CASE("status --json is one valid JSON document with the same facts") {
        TestDatabase db;
        TempFile config(one_projection);
        against(db, {"append", "--events=20"});
        const auto status = against(db, {"-c", config.path(), "status", "--json"});
        CHECK(status.exit_code == 0);
        const auto json = nlohmann::json::parse(status.out);
        CHECK(json["total_events"] == 20);
        REQUIRE(json["projections"].size() == 1);
        CHECK(json["projections"][0]["name"] == "reliable_checkpoint_projection");
        CHECK(json["projections"][0]["checkpoint"] == 0);
        CHECK(json["projections"][0]["status"] == "not_started");
        CHECK(json["projections"][0]["behind"] == 20);
    }

    TEST_CASE("PROJECTIOND_CONFIG names the configuration when -c does not") {
        TestDatabase db;
        TempFile config(one_projection);
        const auto status = run_command({projectiond_binary(), "--database-url", db.conninfo(), "status"},
                                        {{"PROJECTIOND_CONFIG", config.path()}});
        CHECK(status.exit_code == 0);
        CHECK(contains(status.out, "Projection: reliable_checkpoint_projection"));
    }

    TEST_CASE("an unknown key exits 78 naming file:line:column and the key") {
        TempFile config("defaults:\n  batch_size: 10\n  pol_interval: 1s\nprojections:\n  - name: a\n    log: true\n");
        const auto result = cli({"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err, config.path() + ":3:3: unknown key 'pol_interval'"));
        CHECK(contains(result.err, "did you mean 'poll_interval'"));
        CHECK(cli({"-c", config.path(), "run"}).exit_code == 78);
    }

    TEST_CASE("each kind of configuration mistake exits 78 with its file:line:column") {
        const std::vector<std::pair<std::string, std::string>> mistakes = {
            {"projections:\n  - name: [a\n", ":3:1: YAML syntax error"},
            {"projections:\n  - name: a\n    log: true\n  - name: a\n    log: true\n",
             ":4:11: duplicate projection name 'a' (first declared at line 2)"},
            {"defaults:\n  poll_interval: soon\nprojections: [{name: a, log: true}]\n",
             ":2:18: `poll_interval` must be a duration such as 500ms, 5s or 2m, not 'soon'"},
            {"projections:\n  - name: a\n    partitions: two\n    log: true\n",
             ":3:17: `partitions` must be a whole number from 1 to 1024, not 'two'"},
            {"projections:\n  - name: a\n    handlers:\n      X: SELECT :payload_name\n",
             ":4:17: in the handler for 'X': unknown parameter ':payload_name'"},
        };
        for (const auto& [yaml, expected] : mistakes) {
            TempFile config(yaml);
            const auto result = cli({"-c", config.path(), "check-config"});
            CHECK_MESSAGE(result.exit_code == 78, yaml);
            CHECK_MESSAGE(contains(result.err, config.path() + expected), result.err);
        }
    }

    TEST_CASE("check-config prepares each handler against a reachable database and places the failures") {
        TestDatabase db;
        TempFile config(R"(projections:
  - name: users
    setup: CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, name text)
    handlers:
      UserCreated: INSERT INTO users (id, name) VALUES (:aggregate_id, :payload.name)
      UserRenamed: UPDATE users SET nam = :payload.name WHERE id = :aggregate_id
      UserDeleted: DELETE FROM userz WHERE id = :aggregate_id
)");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        // Each at the word PostgreSQL objects to.
        CHECK(contains(result.err, config.path() +
                                       ":6:37: the handler for 'UserRenamed' in projection 'users' "
                                       "does not compile: column \"nam\" of relation \"users\" does not exist"));
        CHECK(contains(result.err, config.path() + ":7:32: the handler for 'UserDeleted'"));
        CHECK(contains(result.err, "relation \"userz\" does not exist"));
        CHECK(db.scalar("SELECT to_regclass('users')::text").empty()); // the setup was rolled back
        TempFile good("projections:\n  - name: users\n    setup: CREATE TABLE IF NOT EXISTS users (id text)\n"
                      "    handlers:\n      X: DELETE FROM users WHERE id = :aggregate_id\n");
        const auto fine = against(db, {"-c", good.path(), "check-config"});
        CHECK(fine.exit_code == 0);
        CHECK(contains(fine.out, "every handler compiles against the database"));
    }

    TEST_CASE("a missing configuration named explicitly exits 78 naming the file") {
        const auto result = cli({"-c", "/nonexistent/p.yaml", "status"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err, "/nonexistent/p.yaml: cannot read the configuration"));
    }

    TEST_CASE("check-config accepts a valid file and says what it holds") {
        TempFile config("projections:\n  - name: a\n    log: true\n    partitions: 3\n");
        const auto result = cli({"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 0);
        CHECK(contains(result.out, "configuration is valid: 1 projection, 3 runners"));
    }

    TEST_CASE("an unreachable database exits 69 with a clear message and no password") {
        const auto result =
            cli({"--database-url", "postgresql://app:Sup3rSecret@127.0.0.1:9/app?connect_timeout=2", "status"});
        CHECK(result.exit_code == 69);
        CHECK(contains(result.err, "cannot connect to PostgreSQL"));
        CHECK(contains(result.err, "check that PostgreSQL is running"));
        CHECK_FALSE(contains(result.err + result.out, "Sup3rSecret"));
    }

    TEST_CASE("a database URL that does not parse is said so, with no part of the password, by commands, "
              "check-config and run (exit 78, no retries)") {
        for (const std::string url : {"postgresql://app:Sup3r%zzSecret@127.0.0.1:9/app", "host=x password=Sup3r Secret1",
                                      "host=x password=Sup3r Sec\"ret1", "postgresql://app:Sup3r%zz\"Secret@h/app"}) {
            CAPTURE(url);
            const auto status = cli({"--database-url", url, "status"});
            CHECK(status.exit_code == 69);
            CHECK_MESSAGE(contains(status.err, "the database URL does not parse: "), status.err);
            CHECK(contains(status.err, "check database.url or --database-url and the password"));
            CHECK_FALSE(contains(status.err, "check that PostgreSQL is running"));
            TempFile config("database:\n  url: '" + url + "'\nprojections:\n  - name: a\n    log: true\n");
            const auto checked = cli({"-c", config.path(), "check-config"});
            CHECK(checked.exit_code == 0);
            CHECK(contains(checked.err, "the database URL does not parse: "));
            const auto run = cli({"-c", config.path(), "--log-target", "stderr", "run"});
            CHECK(run.exit_code == 78);
            CHECK(contains(run.err, "the database URL does not parse: "));
            CHECK_FALSE(contains(run.err, "retrying"));
            for (const auto* output : {&status.err, &status.out, &checked.err, &checked.out, &run.err, &run.out}) {
                CHECK_FALSE(contains(*output, "Sup3r"));
                CHECK_FALSE(contains(*output, "Secret"));
            }
        }
    }

    TEST_CASE("a bare database name is a database name, as libpq takes it, not an unparsable URL") {
        const auto result = cli({"--database-url", "no_such_database_here", "status"});
        CHECK(result.exit_code == 69);
        CHECK_FALSE(contains(result.err, "does not parse"));
        CHECK_MESSAGE(contains(result.err, "cannot connect to PostgreSQL"), result.err);
    }

    TEST_CASE("commands refuse an unmigrated database with advice, exit 69") {
        TestDatabase db(false);
        const auto result = against(db, {"status"});
        CHECK(result.exit_code == 69);
        CHECK(contains(result.err, "run `projectiond migrate` first"));
    }

    TEST_CASE("status of an unknown projection name is a usage error") {
        TestDatabase db;
        TempFile config(one_projection);
        CHECK(against(db, {"-c", config.path(), "status", "nope"}).exit_code == 64);
    }

    TEST_CASE("dead-letters with none says so; reset of an unknown projection is a usage error") {
        TestDatabase db;
        const auto dead = against(db, {"dead-letters"});
        CHECK(dead.exit_code == 0);
        CHECK(contains(dead.out, "No dead letters"));
        CHECK(nlohmann::json::parse(against(db, {"dead-letters", "--json"}).out).empty());
        CHECK(against(db, {"reset", "nope"}).exit_code == 64);
    }

    TEST_CASE("check-config places a SQL error on its own line inside a multi-line handler") {
        TestDatabase db;
        TempFile config(R"(projections:
  - name: users
    setup: CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, name text)
    handlers:
      UserCreated: |
        INSERT INTO users (id, name)
        VALUES (:aggregate_id, :payload.name)
        ON CONFLICT (id) DO UPDATE
           SET nam = EXCLUDED.name
)");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err, config.path() + ":9:16: the handler for 'UserCreated' in projection 'users' does "
                                                   "not compile: column \"nam\" of relation \"users\" does not exist"));
    }

    TEST_CASE("check-config reports a failing setup at `setup:`, not at the projection's name") {
        TestDatabase db;
        TempFile config(R"(projections:
  - name: users
    log: true
    setup: |
      CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, name nosuchtype)
)");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err,
                       config.path() +
                           ":4:5: the setup of projection 'users' fails: type \"nosuchtype\" does not exist"));
    }

    TEST_CASE("check-config lists several database errors in file order") {
        TestDatabase db;
        db.scalar("INSERT INTO projection_checkpoints (projection_name, partition_index, partition_count) "
                  "VALUES ('b', 0, 1) RETURNING 1");
        // Found in the order: a's handler, b's setup, b's handler, b's partitions.
        TempFile config(R"(projections:
  - name: a
    handlers:
      X: SELECT * FROM missing_a
  - name: b
    partitions: 2
    setup: CREATE TABLE broken (id nosuchtype)
    handlers:
      Y: SELECT * FROM missing_b
)");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        const auto lines = lines_with(result.err, config.path() + ":");
        REQUIRE(lines.size() == 4);
        CHECK(contains(lines[0], ":4:24:"));
        CHECK(contains(lines[1], ":6:5:"));
        CHECK(contains(lines[2], ":7:5:"));
        CHECK(contains(lines[3], ":9:24:"));
    }

    TEST_CASE("check-config binds the parameters with their types and names the one a type error is about") {
        TestDatabase db;
        TempFile config(R"(projections:
  - name: versions
    setup: CREATE TABLE IF NOT EXISTS versions (id text PRIMARY KEY, version bigint, seen text)
    handlers:
      Fine: |
        UPDATE versions SET version = :aggregate_version
         WHERE id = :aggregate_id AND :aggregate_version = 1
      Clash: |
        UPDATE versions SET seen = now()::text
         WHERE id = :event_id
)");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        // Without declared types, `Fine` fails: "inconsistent types deduced for parameter $2".
        CHECK_FALSE(contains(result.err, "'Fine'"));
        CHECK(contains(result.err, config.path() + ":10:19: the handler for 'Clash' in projection 'versions' does not "
                                                   "compile: operator does not exist: text = uuid"));
        CHECK(contains(result.err, ":event_id is bound as uuid"));
    }

    TEST_CASE("check-config compiles batch handlers over an empty batch and places a broken one") {
        TestDatabase db;
        TempFile config(R"(projections:
  - name: latest
    setup: CREATE TABLE IF NOT EXISTS latest (id text PRIMARY KEY, name text, position bigint)
    handlers:
      Renamed:
        batch: |
          INSERT INTO latest (id, name, position)
          SELECT DISTINCT ON (aggregate_id) aggregate_id, payload ->> 'name', global_position
            FROM batch
           ORDER BY aggregate_id, batch_ordinal DESC
          ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, position = EXCLUDED.position
      Created:
        batch: |
          WITH fresh AS (SELECT aggregate_id FROM batch)
          INSERT INTO latest (id) SELECT aggregate_id FROM fresh ON CONFLICT DO NOTHING
)");
        const auto fine = against(db, {"-c", config.path(), "check-config"});
        CHECK_MESSAGE(fine.exit_code == 0, fine.err);
        CHECK(contains(fine.out, "every handler compiles against the database"));

        TempFile broken(R"(projections:
  - name: latest
    setup: CREATE TABLE IF NOT EXISTS latest (id text PRIMARY KEY, name text)
    handlers:
      Renamed:
        batch: |
          WITH fresh AS (SELECT aggregate_id FROM batch)
          INSERT INTO latest (id, name)
          SELECT aggregate_id, payload ->> 'nme' FROM fresh
)");
        const auto result = against(db, {"-c", broken.path(), "check-config"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err, broken.path() + ":9:32: the batch handler for 'Renamed' in projection 'latest' "
                                                   "does not compile: column \"payload\" does not exist"));
    }

    TEST_CASE("check-config refuses a changed partition count, at `partitions:`, with what to do") {
        TestDatabase db;
        TempFile three("projections:\n  - name: spread\n    log: true\n    partitions: 3\n");
        // The checkpoints as a run with three partitions leaves them.
        db.scalar("INSERT INTO projection_checkpoints (projection_name, partition_index, partition_count) "
                  "SELECT 'spread', i, 3 FROM generate_series(0, 2) i RETURNING 1");
        CHECK(against(db, {"-c", three.path(), "check-config"}).exit_code == 0);

        TempFile two("projections:\n  - name: spread\n    log: true\n    partitions: 2\n");
        const auto result = against(db, {"-c", two.path(), "check-config"});
        CHECK(result.exit_code == 78);
        const auto lines = lines_with(result.err, two.path());
        REQUIRE(lines.size() == 1);
        CHECK(contains(lines[0], two.path() + ":4:5: projection 'spread' now has 2 partitions, but its checkpoints "
                                              "were written for 3"));
        CHECK(contains(lines[0], "`projectiond reset spread`"));
        CHECK(contains(lines[0], "bump `version:`"));

        // Left out, the count is 1: still a change, placed at the projection.
        TempFile one("projections:\n  - name: spread\n    log: true\n");
        CHECK(contains(against(db, {"-c", one.path(), "check-config"}).err,
                       one.path() + ":2:5: projection 'spread' now has 1 partition, but"));
    }

    TEST_CASE("check-config warns about a handler its projection's event_types exclude, and still passes") {
        TempFile config(R"(projections:
  - name: users
    event_types: [UserCreated]
    handlers:
      UserCreated: SELECT :aggregate_id
      UserRenamed: SELECT :payload.name
)");
        const auto result = cli({"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 0);
        CHECK(contains(result.err, config.path() + ":6:20: warning: the handler for 'UserRenamed' in projection "
                                                   "'users' can never run"));
        CHECK_FALSE(contains(result.err, "'UserCreated' in projection"));
    }

    TEST_CASE("a misspelt JSON parameter is the one error check-config reports (issue 9)") {
        TempFile config("projections:\n  - name: a\n    handlers:\n      X: SELECT :paylod.total\n");
        const auto result = cli({"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 78);
        CHECK(contains(result.err, config.path() + ":4:17: in the handler for 'X': unknown parameter ':paylod' (did "
                                                   "you mean 'payload'?)"));
        CHECK_FALSE(contains(result.err, "has no SQL statement"));
        CHECK(lines_with(result.err, config.path()).size() == 1);
    }

    TEST_CASE("check-config compiles a quoted JSON key; it checks exec programs and plugins as code, not SQL") {
        TestDatabase db;
        TempFile config(R"(projections:
  - name: orders
    setup: CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, total numeric)
    handlers:
      OrderPlaced: |
        INSERT INTO orders (id, total)
        VALUES (:payload."order-id", :payload.totals."incl. tax"::numeric)
      OrderShipped: {exec: [/bin/true]}
)");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK_MESSAGE(result.exit_code == 0, result.err);
        config.write(R"(projections:
  - name: orders
    handlers:
      OrderShipped: {exec: [/nonexistent/program]}
      OrderPaid: {plugin: /nonexistent/plugin.so}
)");
        const auto refused = against(db, {"-c", config.path(), "check-config"});
        CHECK(refused.exit_code == 78);
        CHECK(contains(refused.err, config.path() + ":4:"));
        CHECK(contains(refused.err, config.path() + ":5:"));
        CHECK(contains(refused.err, "/nonexistent/plugin.so"));
    }

    TEST_CASE("check-config against a database without the event store says it checked nothing there") {
        TestDatabase db(false);
        TempFile config("projections:\n  - name: a\n    handlers:\n      X: SELECT * FROM nowhere\n");
        const auto result = against(db, {"-c", config.path(), "check-config"});
        CHECK(result.exit_code == 0);
        CHECK(contains(result.err, "run `projectiond migrate`"));
        CHECK_FALSE(contains(result.out, "every handler compiles"));
    }
}
