#include "store/transaction.hpp"

#include <spdlog/spdlog.h>

namespace projectiond::store {

Transaction::Transaction(Connection& conn, std::string_view begin) : conn_(conn) {
    conn_.exec(begin);
}

Transaction::~Transaction() {
    if (!open_ || !conn_.healthy() || PQtransactionStatus(conn_.native()) == PQTRANS_IDLE) {
        return;
    }
    try {
        conn_.exec("ROLLBACK");
    } catch (const std::exception& error) {
        // The error that brought us here is the one that matters; a session
        // that cannot even roll back is discarded by its owner.
        spdlog::debug("rollback failed: {}", error.what());
    }
}

void Transaction::commit() {
    open_ = false;
    conn_.exec("COMMIT");
}

} // namespace projectiond::store
