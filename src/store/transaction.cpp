#include "store/transaction.hpp"

#include <spdlog/spdlog.h>

namespace projectiond::store {

namespace {
// One name for every level: PostgreSQL rolls back to, and releases, the most
// recent savepoint of a name, which is the innermost guard's.
constexpr const char* savepoint = "projectiond_nested";

bool in_transaction(Connection& conn) {
    const auto status = PQtransactionStatus(conn.native());
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}
} // namespace

Transaction::Transaction(Connection& conn, std::string_view begin) : conn_(conn), nested_(in_transaction(conn)) {
    if (nested_) {
        conn_.exec(std::string("SAVEPOINT ") + savepoint);
    } else {
        conn_.exec(begin);
    }
}

Transaction::~Transaction() {
    if (!open_ || !conn_.healthy() || !in_transaction(conn_)) {
        return;
    }
    try {
        if (nested_) {
            conn_.exec(std::string("ROLLBACK TO SAVEPOINT ") + savepoint + "; RELEASE SAVEPOINT " + savepoint);
        } else {
            conn_.exec("ROLLBACK");
        }
    } catch (const std::exception& error) {
        // The error that brought us here is the one that matters; a session
        // that cannot even roll back is discarded by its owner.
        spdlog::debug("rollback failed: {}", error.what());
    }
}

void Transaction::commit() {
    open_ = false;
    conn_.exec(nested_ ? std::string("RELEASE SAVEPOINT ") + savepoint : std::string("COMMIT"));
}

} // namespace projectiond::store
