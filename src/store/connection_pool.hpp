#pragma once
// The daemon's bounded set of PostgreSQL connections, shared by its runners:
// at most `capacity` open at once, whatever the number of partitions, handed
// out first come first served so that no runner starves another. A runner
// holds one for one batch, then gives it back.
//
// Each connection remembers which statements are prepared on it, so a runner
// prepares its statements once per connection, not once per batch.

#include "config/config.hpp"
#include "store/connection.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace projectiond::store {

struct PoolOptions {
    ConnectOptions connect; // its interrupt is ignored: each borrower brings its own
    config::DatabaseSettings database;
    std::size_t capacity = 9;
    // Bounds a transaction left open by a client that stopped talking (a
    // daemon frozen mid-batch), so the locks it holds do not outlive its lease.
    std::chrono::milliseconds idle_in_transaction_timeout{20000};
};

class ConnectionPool {
    struct Pooled {
        Connection conn;
        std::unordered_set<std::string> prepared;
        std::size_t retired_seen = 0; // how many retired prefixes it has dropped
        std::uint64_t settings_generation = 0;
    };

public:
    explicit ConnectionPool(PoolOptions options);
    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;
    ~ConnectionPool();

    // A borrowed connection; returned to the pool when destroyed.
    class Lease {
    public:
        Lease(Lease&& other) noexcept;
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        ~Lease();

        Connection& conn() noexcept { return pooled_->conn; }
        Connection* operator->() noexcept { return &pooled_->conn; }
        bool is_prepared(const std::string& name) const { return pooled_->prepared.contains(name); }
        void mark_prepared(const std::string& name) { pooled_->prepared.insert(name); }
        // The session is broken or in an unknown state: close it instead of
        // giving it back.
        void discard() noexcept { discard_ = true; }

    private:
        friend class ConnectionPool;
        Lease(ConnectionPool& pool, std::unique_ptr<Pooled> pooled) : pool_(&pool), pooled_(std::move(pooled)) {}
        ConnectionPool* pool_;
        std::unique_ptr<Pooled> pooled_;
        bool discard_ = false;
    };

    // Waits up to `wait` for a connection, opening one when fewer than
    // `capacity` are open (in the calling thread, with `interrupt`). nullopt
    // when none became free in time. Throws DatabaseError / Interrupted when
    // opening one fails.
    std::optional<Lease> acquire(std::chrono::milliseconds wait, const Interrupt* interrupt);
    // A connection only if one is idle, or can be opened, and nobody waits
    // for one: for work that may as well not happen (reading ahead).
    std::optional<Lease> try_acquire(const Interrupt* interrupt);

    // Statements named with this prefix are dropped from every connection
    // when it is next borrowed (a runner that went away).
    void retire_statements(std::string prefix);
    // New connection settings (a reload): connections opened with the old
    // ones are closed instead of reused. The application_name is kept.
    void reconfigure(PoolOptions options);
    // Closes every connection as soon as it is idle (a lost lease: sessions
    // named after the old daemon id must go).
    void close_all();
    // The application_name of connections opened from now on (it names the
    // daemon); the open ones are replaced.
    void set_application_name(std::string name);

    std::size_t capacity() const;
    std::size_t open_count() const;

private:
    struct Waiter {
        std::condition_variable ready;
        std::unique_ptr<Pooled> handed; // set by release()
        bool slot = false;              // or: a free slot to open a connection in
    };

    void release(std::unique_ptr<Pooled> pooled, bool discard) noexcept;
    std::unique_ptr<Pooled> open_connection(const Interrupt* interrupt);
    void drop_retired_statements(Pooled& pooled);

    mutable std::mutex mutex_;
    PoolOptions options_;
    std::uint64_t settings_generation_ = 0;
    std::size_t open_ = 0; // open or being opened
    std::vector<std::unique_ptr<Pooled>> idle_;
    std::deque<Waiter*> waiters_;
    std::vector<std::string> retired_prefixes_;
};

} // namespace projectiond::store
