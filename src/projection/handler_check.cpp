#include "projection/handler_check.hpp"

#include "config/batch_relation.hpp"
#include "config/parameter_types.hpp"
#include "handlers/code_handler_factory.hpp"
#include "store/database_error.hpp"
#include "store/generations.hpp"
#include "store/transaction.hpp"

#include <fmt/format.h>

namespace projectiond::projection {

namespace {

// The statement as the runner would send it, and how to find a byte of the
// handler's statement in it.
struct Compiled {
    std::string sql;
    std::optional<config::BatchRelation> batch;
};

Compiled compiled(const config::Handler& handler, const config::RewrittenSql& statement) {
    if (handler.kind == config::HandlerKind::batch) {
        config::BatchRelation relation = config::splice_batch_relation(statement.sql, config::empty_batch_select);
        std::string sql = relation.sql;
        return {std::move(sql), std::move(relation)};
    }
    return {statement.sql, std::nullopt};
}

// Where PostgreSQL's error falls in the file: the line and column of the
// character it names, else the handler's first line.
config::SourceMark error_mark(const config::Handler& handler, std::size_t statement_index, const Compiled& sent,
                              const store::DatabaseError& error) {
    if (error.statement_position() <= 0 || statement_index >= handler.sources.size()) {
        return handler.mark;
    }
    std::optional<std::size_t> offset =
        config::utf8_byte_offset(sent.sql, static_cast<std::size_t>(error.statement_position() - 1));
    if (sent.batch) {
        offset = sent.batch->statement_offset(*offset);
    }
    return offset ? handler.sources[statement_index].at(*offset) : handler.mark;
}

// SQLSTATEs of type errors: operator or function not found for the types,
// a mismatch, a cast that does not exist, an ambiguous call.
bool is_type_error(const std::string& sqlstate) {
    return sqlstate == "42883" || sqlstate == "42804" || sqlstate == "42846" || sqlstate == "42725" ||
           sqlstate == "42P08" || sqlstate == "42P18";
}

// PostgreSQL's message, saying `:name` where it says `$N` and, for a type
// error, which parameters have the types it names.
std::string explained(const store::DatabaseError& error, const config::RewrittenSql& statement) {
    std::string message = config::name_parameters_in_message(error.what(), statement.parameters);
    if (is_type_error(error.sqlstate())) {
        message += config::parameters_of_types_in_message(error.what(), statement.parameters);
    }
    return message;
}

std::vector<Oid> type_oids(const config::RewrittenSql& statement) {
    const auto oids = config::parameter_type_oids(statement.parameters);
    return {oids.begin(), oids.end()};
}

} // namespace

std::vector<config::Located> find_handler_problems(store::Connection& conn,
                                                   const std::vector<const config::Projection*>& projections,
                                                   SetupHandling setup, const SchemaOf& schema_of) {
    std::vector<config::Located> problems;
    // Everything happens in one transaction that is rolled back: the check
    // leaves no trace, and each attempt sits in a savepoint so that one
    // failure does not hide the next.
    store::Transaction tx(conn); // never committed: rolled back when it goes
    const std::string search_path(conn.exec("SELECT current_setting('search_path')").text(0, 0));
    {
        for (const config::Projection* projection : projections) {
            // Each projection's names resolve in its own schema first.
            const std::optional<std::string> schema = schema_of ? schema_of(*projection) : std::nullopt;
            if (schema) {
                conn.exec("SELECT set_config('search_path', $1, true)", {search_path});
                conn.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}",
                                      std::string(conn.exec("SELECT quote_ident($1)", {*schema}).text(0, 0))));
                store::use_schema(conn, *schema, true);
            } else {
                conn.exec("SELECT set_config('search_path', $1, true)", {search_path});
            }
            if (setup == SetupHandling::run_and_roll_back && !projection->setup.empty()) {
                conn.exec("SAVEPOINT setup");
                try {
                    conn.exec(projection->setup);
                    conn.exec("RELEASE SAVEPOINT setup");
                } catch (const store::DatabaseError& error) {
                    if (error.connection_lost()) {
                        throw;
                    }
                    conn.exec("ROLLBACK TO SAVEPOINT setup");
                    problems.push_back(
                        {projection->setup_mark.line > 0 ? projection->setup_mark : projection->mark,
                         fmt::format("the setup of projection '{}' fails: {}", projection->name, error.what())});
                }
            }
            for (const auto& handler : projection->handlers) {
                // exec and plugin handlers are code: check_code_handlers() looks at them.
                if (handler.kind != config::HandlerKind::sql && handler.kind != config::HandlerKind::batch) {
                    continue;
                }
                for (std::size_t i = 0; i < handler.statements.size(); ++i) {
                    const config::RewrittenSql& statement = handler.statements[i];
                    const Compiled sent = compiled(handler, statement);
                    conn.exec("SAVEPOINT handler");
                    try {
                        conn.prepare("", sent.sql, type_oids(statement));
                        conn.exec("RELEASE SAVEPOINT handler");
                    } catch (const store::DatabaseError& error) {
                        if (error.connection_lost()) {
                            throw;
                        }
                        conn.exec("ROLLBACK TO SAVEPOINT handler");
                        problems.push_back(
                            {error_mark(handler, i, sent, error),
                             fmt::format("the {}handler for '{}' in projection '{}' does not compile: {}",
                                         handler.kind == config::HandlerKind::batch ? "batch " : "", handler.event_type,
                                         projection->name, explained(error, statement))});
                    }
                }
            }
        }
    }
    return problems;
}

std::vector<config::Located> find_code_handler_problems(const std::vector<const config::Projection*>& projections) {
    std::vector<config::Located> problems;
    for (const config::Projection* projection : projections) {
        for (const auto& handler : projection->handlers) {
            if (const auto problem = handlers::check_code_handler(handler)) {
                problems.push_back({handler.mark, fmt::format("the handler for '{}' in projection '{}': {}",
                                                              handler.event_type, projection->name, *problem)});
            }
        }
    }
    return problems;
}

std::vector<std::string> check_handlers(store::Connection& conn, const config::Config& config,
                                        const std::vector<const config::Projection*>& projections,
                                        SetupHandling setup) {
    std::vector<config::Located> problems = find_handler_problems(conn, projections, setup);
    for (auto& problem : find_code_handler_problems(projections)) {
        problems.push_back(std::move(problem));
    }
    config::sort_by_position(problems);
    std::vector<std::string> messages;
    messages.reserve(problems.size());
    for (const auto& problem : problems) {
        messages.push_back(config::format_located(config.source, problem));
    }
    return messages;
}

} // namespace projectiond::projection
