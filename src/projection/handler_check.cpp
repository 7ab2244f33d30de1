#include "projection/handler_check.hpp"

#include "store/database_error.hpp"

#include <fmt/format.h>

namespace projectiond::projection {

namespace {
std::string where(const config::Config& config, const config::SourceMark& mark) {
    return mark.line > 0 ? fmt::format("{}:{}:{}", config.source, mark.line, mark.column) : config.source;
}
} // namespace

std::vector<std::string> check_handlers(store::Connection& conn, const config::Config& config,
                                        const std::vector<const config::Projection*>& projections,
                                        SetupHandling setup) {
    std::vector<std::string> problems;
    // Everything happens in one transaction that is rolled back: the check
    // leaves no trace, and each attempt sits in a savepoint so that one
    // failure does not hide the next.
    conn.exec("BEGIN");
    try {
        for (const config::Projection* projection : projections) {
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
                    problems.push_back(fmt::format("{}: the setup of projection '{}' fails: {}",
                                                   where(config, projection->mark), projection->name, error.what()));
                }
            }
            for (const auto& handler : projection->handlers) {
                for (const auto& statement : handler.statements) {
                    conn.exec("SAVEPOINT handler");
                    try {
                        conn.prepare("", statement.sql);
                        conn.exec("RELEASE SAVEPOINT handler");
                    } catch (const store::DatabaseError& error) {
                        if (error.connection_lost()) {
                            throw;
                        }
                        conn.exec("ROLLBACK TO SAVEPOINT handler");
                        problems.push_back(fmt::format("{}: the handler for '{}' in projection '{}' does not "
                                                       "compile: {}",
                                                       where(config, handler.mark), handler.event_type,
                                                       projection->name, error.what()));
                    }
                }
            }
        }
        conn.exec("ROLLBACK");
    } catch (...) {
        if (conn.healthy()) {
            conn.exec("ROLLBACK");
        }
        throw;
    }
    return problems;
}

} // namespace projectiond::projection
