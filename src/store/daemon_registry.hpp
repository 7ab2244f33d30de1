#pragma once
// The daemons sharing a database, each with a lease it renews, and the
// partitions each owns. Ownership is a row in projection_checkpoints
// (owner_daemon, owner_epoch): a daemon claims free partitions up to its fair
// share, gives back what is above it, and takes over the partitions of a
// daemon whose lease ran out. docs/ownership.md explains why a batch of a
// daemon that lost a partition can never commit.

#include "store/checkpoints.hpp"
#include "store/connection.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace projectiond::store {

struct DaemonIdentity {
    std::string host;
    int pid = 0;
    std::string version;
    std::string boot_id; // /proc/sys/kernel/random/boot_id, empty when unknown
    std::string label() const { return host + " pid " + std::to_string(pid); }
};

// Adds this daemon with a fresh lease; returns its id. Daemons registered
// from this same machine (same host and boot) whose process no longer exists
// (a kill -9 before a restart) are forgotten at once instead of after their
// lease runs out, so a restarted daemon takes its partitions back without
// waiting. Forgetting a live one by mistake would be safe (its commits are
// fenced), only wasteful.
std::int64_t register_daemon(Connection& conn, const DaemonIdentity& identity,
                             const std::vector<std::string>& projections, std::chrono::milliseconds lease);

// Gives up every partition and removes the daemon (a clean shutdown), so that
// the others take over at once instead of after the lease runs out.
void deregister_daemon(Connection& conn, std::int64_t daemon);

struct OwnedPartition {
    PartitionKey key;
    Ownership owner;
};

struct Rebalance {
    bool lease_lost = false; // the lease ran out before it was renewed: everything is lost
    int live_daemons = 0;
    int partitions = 0;           // of the projections some live daemon runs
    int fair_share = 0;           // ceil(partitions / live daemons)
    int excess = 0;               // how many this daemon should give back
    std::vector<OwnedPartition> owned;    // after this call, claims included
    std::vector<std::int64_t> expired;    // daemons whose lease ran out, now forgotten
};

// Renews the lease and, one daemon at a time, forgets expired daemons and
// claims free partitions of `projections` up to the fair share (all of those
// that no other live daemon runs). The caller releases `excess` partitions at
// batch boundaries.
Rebalance rebalance(Connection& conn, std::int64_t daemon, const DaemonIdentity& identity,
                    const std::vector<std::string>& projections, std::chrono::milliseconds lease);

// This machine's identity for the registry.
DaemonIdentity this_machine(std::string version);

// Ends the sessions of expired daemons (best effort: it needs the right to
// signal them), so that locks held by a frozen daemon's open transaction are
// released now rather than when its connection times out.
void end_sessions_of(Connection& conn, const std::vector<std::int64_t>& daemons);

// application_name of this daemon's sessions: names the daemon, so that the
// sessions of an expired one can be found.
std::string session_name(std::int64_t daemon, std::string_view role);

struct LiveDaemon {
    std::int64_t id = 0;
    std::string host;
    int pid = 0;
    std::string version;
    std::string started_at;
    double lease_left_seconds = 0;
    int owned = 0;
};
std::vector<LiveDaemon> live_daemons(Connection& conn);

} // namespace projectiond::store
