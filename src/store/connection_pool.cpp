#include "store/connection_pool.hpp"

#include "store/connect.hpp"
#include "store/database_error.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::store {

ConnectionPool::ConnectionPool(PoolOptions options) : options_(std::move(options)) {}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), pooled_(std::move(other.pooled_)), discard_(other.discard_) {}

ConnectionPool::Lease::~Lease() {
    if (pooled_) {
        pooled_->conn.set_interrupt(nullptr);
        pool_->release(std::move(pooled_), discard_);
    }
}

std::optional<ConnectionPool::Lease> ConnectionPool::acquire(std::chrono::milliseconds wait,
                                                             const Interrupt* interrupt) {
    std::unique_ptr<Pooled> pooled;
    {
        std::unique_lock lock(mutex_);
        // Drop idle connections opened with settings that no longer apply.
        std::erase_if(idle_, [&](const auto& p) {
            if (p->settings_generation == settings_generation_ && p->conn.healthy()) {
                return false;
            }
            --open_;
            return true;
        });
        if (waiters_.empty() && !idle_.empty()) {
            pooled = std::move(idle_.back());
            idle_.pop_back();
        } else if (waiters_.empty() && open_ < options_.capacity) {
            ++open_; // a slot, filled below outside the lock
        } else {
            Waiter waiter;
            waiters_.push_back(&waiter);
            const bool served =
                waiter.ready.wait_for(lock, wait, [&] { return waiter.handed != nullptr || waiter.slot; });
            if (!served) {
                std::erase(waiters_, &waiter);
                return std::nullopt;
            }
            pooled = std::move(waiter.handed); // null with `slot`: open one below
        }
    }
    if (!pooled) {
        try {
            pooled = open_connection(interrupt);
        } catch (...) {
            release(nullptr, true);
            throw;
        }
    }
    pooled->conn.set_interrupt(interrupt);
    Lease lease(*this, std::move(pooled));
    drop_retired_statements(*lease.pooled_);
    return lease;
}

std::unique_ptr<ConnectionPool::Pooled> ConnectionPool::open_connection(const Interrupt* interrupt) {
    PoolOptions options;
    std::uint64_t generation = 0;
    {
        std::lock_guard lock(mutex_);
        options = options_;
        generation = settings_generation_;
    }
    options.connect.interrupt = interrupt;
    auto pooled = std::make_unique<Pooled>(Pooled{Connection::open(options.connect), {}, 0, generation});
    configure_session(pooled->conn, options.database, options.idle_in_transaction_timeout);
    {
        std::lock_guard lock(mutex_);
        pooled->retired_seen = retired_prefixes_.size(); // nothing of the past is prepared on it
    }
    spdlog::debug("opened a database connection for the pool");
    return pooled;
}

std::optional<ConnectionPool::Lease> ConnectionPool::try_acquire(const Interrupt* interrupt) {
    {
        std::lock_guard lock(mutex_);
        if (!waiters_.empty() || (idle_.empty() && open_ >= options_.capacity)) {
            return std::nullopt;
        }
    }
    return acquire(std::chrono::milliseconds(0), interrupt);
}

void ConnectionPool::drop_retired_statements(Pooled& pooled) {
    std::vector<std::string> prefixes;
    {
        std::lock_guard lock(mutex_);
        if (pooled.retired_seen == retired_prefixes_.size()) {
            return;
        }
        prefixes.assign(retired_prefixes_.begin() + static_cast<long>(pooled.retired_seen), retired_prefixes_.end());
        pooled.retired_seen = retired_prefixes_.size();
    }
    std::string sql;
    for (auto it = pooled.prepared.begin(); it != pooled.prepared.end();) {
        const bool retired = std::any_of(prefixes.begin(), prefixes.end(),
                                         [&](const std::string& prefix) { return it->starts_with(prefix); });
        if (retired) {
            sql += fmt::format("DEALLOCATE \"{}\";", *it);
            it = pooled.prepared.erase(it);
        } else {
            ++it;
        }
    }
    if (!sql.empty()) {
        pooled.conn.exec(sql);
    }
}

void ConnectionPool::release(std::unique_ptr<Pooled> pooled, bool discard) noexcept {
    std::lock_guard lock(mutex_);
    const bool reusable = pooled && !discard && pooled->conn.healthy() &&
                          PQtransactionStatus(pooled->conn.native()) == PQTRANS_IDLE &&
                          pooled->settings_generation == settings_generation_;
    if (!reusable) {
        --open_;
        pooled.reset();
        if (!waiters_.empty() && open_ < options_.capacity) {
            // The slot is free again: the first waiter opens a connection in it.
            ++open_;
            Waiter* waiter = waiters_.front();
            waiters_.pop_front();
            waiter->slot = true;
            waiter->ready.notify_one();
        }
        return;
    }
    if (!waiters_.empty()) {
        Waiter* waiter = waiters_.front();
        waiters_.pop_front();
        waiter->handed = std::move(pooled);
        waiter->ready.notify_one();
        return;
    }
    idle_.push_back(std::move(pooled));
}

void ConnectionPool::retire_statements(std::string prefix) {
    std::lock_guard lock(mutex_);
    retired_prefixes_.push_back(std::move(prefix));
}

void ConnectionPool::reconfigure(PoolOptions options) {
    std::lock_guard lock(mutex_);
    options.connect.application_name = options_.connect.application_name; // it names the daemon
    options_ = std::move(options);
    ++settings_generation_;
}

void ConnectionPool::close_all() {
    std::lock_guard lock(mutex_);
    ++settings_generation_;
}

void ConnectionPool::set_application_name(std::string name) {
    std::lock_guard lock(mutex_);
    options_.connect.application_name = std::move(name);
    ++settings_generation_;
}

std::size_t ConnectionPool::capacity() const {
    std::lock_guard lock(mutex_);
    return options_.capacity;
}

std::size_t ConnectionPool::open_count() const {
    std::lock_guard lock(mutex_);
    return open_;
}

} // namespace projectiond::store
