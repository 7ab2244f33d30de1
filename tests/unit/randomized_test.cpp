// Seeded random inputs for the two parsers that read what operators write:
// whatever the input, they answer or refuse with their own error; they never
// crash, hang or throw anything else. (Run under -Db_sanitize=address,undefined
// this also checks memory safety.)
#include "config/loader.hpp"
#include "config/named_parameters.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <string>

using namespace projectiond::config;

namespace {

// Mostly the characters that matter to the SQL scanner.
std::string random_sql(std::mt19937& random) {
    static const std::string pieces[] = {"'",
                                         "\"",
                                         "$",
                                         "$$",
                                         "$a$",
                                         ":",
                                         "::",
                                         ":aggregate_id",
                                         ":payload.a.b",
                                         ":payload.\"a-b\"",
                                         ".\"",
                                         ":nope",
                                         "--",
                                         "\n",
                                         "/*",
                                         "*/",
                                         ";",
                                         "E'",
                                         "\\",
                                         " ",
                                         "x",
                                         "1",
                                         "SELECT ",
                                         "(",
                                         ")",
                                         "[1:2]",
                                         "é"};
    std::uniform_int_distribution<std::size_t> pick(0, std::size(pieces) - 1);
    std::uniform_int_distribution<int> length(0, 40);
    std::string out;
    for (int i = length(random); i > 0; --i) {
        out += pieces[pick(random)];
    }
    return out;
}

std::string mutate(std::string text, std::mt19937& random) {
    static const std::string alphabet = "abc:-[]{}\"'|>#&*!%@`\n\t 0123456789.";
    std::uniform_int_distribution<int> edits(1, 6);
    std::uniform_int_distribution<int> kind(0, 2);
    std::uniform_int_distribution<std::size_t> letter(0, alphabet.size() - 1);
    for (int i = edits(random); i > 0; --i) {
        std::uniform_int_distribution<std::size_t> at(0, text.empty() ? 0 : text.size() - 1);
        const std::size_t pos = at(random);
        switch (kind(random)) {
        case 0:
            text.insert(text.begin() + static_cast<long>(pos), alphabet[letter(random)]);
            break;
        case 1:
            if (!text.empty()) {
                text.erase(pos, 1);
            }
            break;
        default:
            if (!text.empty()) {
                text[pos] = alphabet[letter(random)];
            }
        }
    }
    return text;
}

const char* const base_config = R"(database:
  url: postgresql:///app?host=/run/postgresql
  statement_timeout: 30s
defaults:
  batch_size: 100
  poll_interval: 1s
  on_error: skip
projections:
  - name: users
    aggregate_types: [User]
    partitions: 2
    setup: |
      CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, name text)
    handlers:
      UserCreated: |
        INSERT INTO users VALUES (:aggregate_id, :payload.name)
        ON CONFLICT (id) DO NOTHING
      "*": [SELECT :event_id, "SELECT 2"]
      Counted: {batch: "INSERT INTO counts SELECT count(*) FROM batch"}
      Piped: {exec: [/usr/bin/handler, --verbose]}
  - name: audit
    schema: audit
    version: 3
    log: true
daemon:
  max_connections: 4
  lease_timeout: 20s
http:
  listen: 127.0.0.1:9543
health:
  max_lag: 1m
)";

} // namespace

TEST_SUITE("randomized") {
    TEST_CASE("the SQL scanner answers or refuses every input, and its answers hold together") {
        std::mt19937 random(20261126);
        int refused = 0;
        for (int i = 0; i < 200000; ++i) {
            const std::string sql = random_sql(random);
            try {
                for (const auto& statement : rewrite_named_parameters(sql)) {
                    for (const auto& name : statement.parameters) {
                        CHECK(is_event_parameter(name));
                    }
                    // Each parameter it reports was written into the statement as $k.
                    for (std::size_t k = 1; k <= statement.parameters.size(); ++k) {
                        CHECK(statement.sql.find("$" + std::to_string(k)) != std::string::npos);
                    }
                    // Each byte came from where its origin says: the same byte,
                    // or the name that a $k replaced.
                    for (std::size_t offset = 0; offset < statement.sql.size(); ++offset) {
                        const std::size_t from = statement.text_offset(offset);
                        REQUIRE(from < sql.size());
                        if (statement.sql[offset] == sql[from]) {
                            continue;
                        }
                        std::size_t dollar = offset;
                        while (dollar > 0 && std::isdigit(static_cast<unsigned char>(statement.sql[dollar]))) {
                            --dollar;
                        }
                        CHECK(statement.sql[dollar] == '$');
                        CHECK(sql[statement.text_offset(dollar)] == ':');
                    }
                }
            } catch (const SqlParameterError& error) {
                CHECK(error.offset() <= sql.size());
                ++refused;
            }
        }
        MESSAGE("refused " << refused << " of 200000 random statements");
        CHECK(refused > 0);
    }

    TEST_CASE("the configuration loader answers or refuses every mutation of a valid file") {
        std::mt19937 random(42);
        int refused = 0;
        for (int i = 0; i < 20000; ++i) {
            const std::string text = mutate(base_config, random);
            try {
                const Config config = parse_config(text, "fuzz.yaml");
                CHECK_FALSE(config.projections.empty());
                // Every statement knows where it is written, inside the file.
                const auto lines = std::count(text.begin(), text.end(), '\n') + 1;
                for (const auto& projection : config.projections) {
                    for (const auto& handler : projection.handlers) {
                        REQUIRE(handler.sources.size() == handler.statements.size());
                        for (std::size_t s = 0; s < handler.statements.size(); ++s) {
                            const auto& sql = handler.statements[s].sql;
                            for (std::size_t offset = 0; offset <= sql.size(); ++offset) {
                                const SourceMark mark = handler.sources[s].at(offset);
                                CHECK(mark.line >= 1);
                                CHECK(mark.line <= lines);
                            }
                        }
                    }
                }
            } catch (const ConfigError& error) {
                CHECK(std::string(error.what()).rfind("fuzz.yaml", 0) == 0);
                ++refused;
            }
        }
        MESSAGE("refused " << refused << " of 20000 mutated configurations");
        CHECK(refused > 0);
    }
}
