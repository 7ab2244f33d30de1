#pragma once
// One transaction on one connection: BEGIN on construction, COMMIT by
// commit(), ROLLBACK when it goes out of scope uncommitted (an exception, an
// early return). A failing ROLLBACK never replaces the error that caused it.
// Inside a transaction already open, the guard is a savepoint instead, so that
// a step that is a transaction of its own can also be part of a larger one.

#include "store/connection.hpp"

namespace projectiond::store {

class Transaction {
public:
    // `begin` may name an isolation level: "BEGIN ISOLATION LEVEL REPEATABLE READ".
    explicit Transaction(Connection& conn, std::string_view begin = "BEGIN");
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();

    void commit();

private:
    Connection& conn_;
    bool nested_;
    bool open_ = true;
};

} // namespace projectiond::store
