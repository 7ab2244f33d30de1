#include "daemon/projection_setup.hpp"

#include "config/loader.hpp"
#include "config/source_map.hpp"
#include "logging/log_context.hpp"
#include "projection/handler_check.hpp"
#include "store/database_error.hpp"
#include "store/generations.hpp"
#include "store/migrations.hpp"
#include "store/transaction.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace projectiond::daemon {

void run_setup(store::Connection& conn, const config::Projection& projection,
               const std::optional<std::string>& schema) {
    if (projection.setup.empty()) {
        return;
    }
    try {
        store::Transaction tx(conn);
        conn.exec(fmt::format("SELECT pg_advisory_xact_lock({}, {})", store::advisory_lock_namespace,
                              store::setup_lock_key));
        // Inside prepare_projections' transaction a local setting outlives
        // this step: the search_path goes back to what it was afterwards, so
        // the next projection's setup does not run in this one's schema.
        const std::string search_path(conn.exec("SELECT current_setting('search_path')").text(0, 0));
        if (schema) {
            store::use_schema(conn, *schema, true);
        }
        conn.exec(projection.setup);
        if (PQtransactionStatus(conn.native()) != PQTRANS_INTRANS) {
            throw store::DatabaseError(
                "it ended projectiond's transaction (COMMIT or ROLLBACK in setup); a setup runs in the transaction "
                "that registers its projection: remove the transaction control from it",
                "25000");
        }
        conn.exec("SELECT set_config('search_path', $1, true)", {search_path});
        tx.commit();
        spdlog::debug("ran the setup of projection '{}'{}", projection.name,
                      schema ? fmt::format(" in schema {}", *schema) : "");
    } catch (const store::DatabaseError& error) {
        throw store::DatabaseError(
            fmt::format("the setup of projection '{}' failed: {}", projection.name, error.what()), error.sqlstate(),
            error.connection_lost());
    }
}

std::vector<RunSpec> prepare_projections(store::Connection& conn, const config::Config& config,
                                         const std::vector<const config::Projection*>& projections) {
    std::vector<config::Located> problems;
    std::vector<RunSpec> specs;
    std::vector<RunSpec> checked; // run the configuration: their handlers are compiled here
    // All or nothing: a setup or a handler that fails leaves no trace of the
    // projections it came with (a reload that fails changes nothing). One
    // lock for all, taken first, so two daemons starting with the same
    // projections in another order cannot deadlock on their creation locks.
    store::Transaction all(conn);
    conn.exec(fmt::format("SELECT pg_advisory_xact_lock({}, {})", store::advisory_lock_namespace,
                          store::setup_lock_key));
    for (const config::Projection* projection : projections) {
        const store::Registration registration = store::register_projection(conn, *projection);
        if (registration.refusal) {
            problems.push_back({projection->partitions_mark, *registration.refusal});
            continue;
        }
        for (const auto& note : registration.notes) {
            logging::ScopedProjection scope(projection->name, std::nullopt);
            spdlog::info("{}", note);
        }
        const store::Generation& live = registration.live;
        if (registration.live_runs_configuration) {
            specs.push_back({*projection, live.generation, live.schema, false});
            checked.push_back(specs.back());
        } else if (!live.definition.empty()) {
            // The live version keeps running as it was built until the new
            // one takes over.
            try {
                config::Config built = config::parse_config(live.definition, "(live version's definition)");
                specs.push_back({std::move(built.projections.front()), live.generation, live.schema, false});
            } catch (const config::ConfigError& error) {
                spdlog::warn("the live version {} of '{}' cannot be read back ({}); it stops until version {} "
                             "takes over",
                             live.version, projection->name, error.what(), projection->version);
            }
        } else {
            spdlog::warn("the definition of the live version {} of '{}' is not known (it predates versions); it "
                         "stops until version {} takes over",
                         live.version, projection->name, projection->version);
        }
        if (registration.building) {
            specs.push_back({*projection, registration.building->generation, registration.building->schema, true});
            checked.push_back(specs.back());
        }
    }
    if (problems.empty()) {
        for (const RunSpec& spec : specs) {
            run_setup(conn, spec.projection, spec.schema);
        }
        std::vector<const config::Projection*> compiled;
        std::map<const config::Projection*, std::optional<std::string>> schemas;
        for (const RunSpec& spec : checked) {
            compiled.push_back(&spec.projection);
            schemas[&spec.projection] = spec.schema;
        }
        auto found = projection::find_handler_problems(
            conn, compiled, projection::SetupHandling::already_run,
            [&](const config::Projection& p) { return schemas[&p]; });
        problems.insert(problems.end(), found.begin(), found.end());
        auto code = projection::find_code_handler_problems(compiled);
        problems.insert(problems.end(), code.begin(), code.end());
    }
    if (!problems.empty()) {
        config::sort_by_position(problems);
        std::vector<std::string> messages;
        for (const auto& problem : problems) {
            messages.push_back(config::format_located(config.source, problem));
        }
        throw config::ConfigError(fmt::format("{}", fmt::join(messages, "\n")));
    }
    all.commit();
    return specs;
}

} // namespace projectiond::daemon
