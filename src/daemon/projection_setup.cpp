#include "daemon/projection_setup.hpp"

#include "store/database_error.hpp"
#include "store/migrations.hpp"
#include "store/transaction.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

namespace projectiond::daemon {

void run_setup(store::Connection& conn, const std::vector<const config::Projection*>& projections) {
    for (const config::Projection* projection : projections) {
        if (projection->setup.empty()) {
            continue;
        }
        try {
            store::Transaction tx(conn);
            conn.exec(fmt::format("SELECT pg_advisory_xact_lock({}, {})", store::advisory_lock_namespace,
                                  store::setup_lock_key));
            conn.exec(projection->setup);
            tx.commit();
            spdlog::debug("ran the setup of projection '{}'", projection->name);
        } catch (const store::DatabaseError& error) {
            throw store::DatabaseError(
                fmt::format("the setup of projection '{}' failed: {}", projection->name, error.what()),
                error.sqlstate(), error.connection_lost());
        }
    }
}

} // namespace projectiond::daemon
