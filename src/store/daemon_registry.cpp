#include "store/daemon_registry.hpp"

#include "store/migrations.hpp"
#include "store/transaction.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace projectiond::store {

namespace {

std::string interval(std::chrono::milliseconds duration) {
    return std::to_string(duration.count()) + " milliseconds";
}

std::string text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        out += i == 0 ? "\"" : ",\"";
        for (const char c : values[i]) {
            if (c == '"' || c == '\\') {
                out += '\\';
            }
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

} // namespace

std::string session_name(std::int64_t daemon, std::string_view role) {
    return fmt::format("projectiond d{} {}", daemon, role).substr(0, 63);
}

DaemonIdentity this_machine(std::string version) {
    DaemonIdentity identity;
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) == 0) {
        identity.host = host;
    }
    identity.pid = static_cast<int>(getpid());
    identity.version = std::move(version);
    std::ifstream boot("/proc/sys/kernel/random/boot_id");
    std::getline(boot, identity.boot_id);
    return identity;
}

std::int64_t register_daemon(Connection& conn, const DaemonIdentity& identity,
                             const std::vector<std::string>& projections, std::chrono::milliseconds lease) {
    Transaction tx(conn);
    conn.exec(fmt::format("SELECT pg_advisory_xact_lock({}, {})", advisory_lock_namespace, rebalance_lock_key));
    if (!identity.boot_id.empty()) {
        const Result here = conn.exec(
            "SELECT daemon_id, pid FROM projectiond_daemons WHERE host = $1 AND boot_id = $2 AND pid <> $3::integer",
            {identity.host, identity.boot_id, std::to_string(identity.pid)});
        for (int row = 0; row < here.rows(); ++row) {
            const auto pid = static_cast<pid_t>(here.int64(row, 1));
            if (::kill(pid, 0) != 0 && errno == ESRCH) {
                conn.exec("UPDATE projection_checkpoints SET owner_daemon = NULL WHERE owner_daemon = $1::bigint",
                          {std::string(here.text(row, 0))});
                conn.exec("DELETE FROM projectiond_daemons WHERE daemon_id = $1::bigint", {std::string(here.text(row, 0))});
                spdlog::info("daemon {} (pid {} on this machine) is gone: taking its partitions back now",
                             here.text(row, 0), pid);
            }
        }
    }
    const Result result = conn.exec(R"sql(
INSERT INTO projectiond_daemons (host, boot_id, pid, version, projections, lease_until)
VALUES ($1, $2, $3::integer, $4, $5::text[], clock_timestamp() + $6::interval)
RETURNING daemon_id)sql",
                                    {identity.host, identity.boot_id, std::to_string(identity.pid), identity.version,
                                     text_array(projections), interval(lease)});
    tx.commit();
    return result.int64(0, 0);
}

void deregister_daemon(Connection& conn, std::int64_t daemon) {
    Transaction tx(conn);
    conn.exec("UPDATE projection_checkpoints SET owner_daemon = NULL WHERE owner_daemon = $1::bigint",
              {std::to_string(daemon)});
    conn.exec("DELETE FROM projectiond_daemons WHERE daemon_id = $1::bigint", {std::to_string(daemon)});
    tx.commit();
}

Rebalance rebalance(Connection& conn, std::int64_t daemon, const DaemonIdentity& identity,
                    const std::vector<std::string>& projections, std::chrono::milliseconds lease) {
    const std::string me = std::to_string(daemon);
    const std::string mine = text_array(projections);
    Rebalance out;
    Transaction tx(conn);
    conn.exec(fmt::format("SELECT pg_advisory_xact_lock({}, {})", advisory_lock_namespace, rebalance_lock_key));
    const Result renewed = conn.exec(R"sql(
UPDATE projectiond_daemons
   SET renewed_at = clock_timestamp(), lease_until = clock_timestamp() + $2::interval, projections = $3::text[]
 WHERE daemon_id = $1::bigint AND lease_until > clock_timestamp()
RETURNING 1)sql",
                                     {me, interval(lease), mine});
    if (renewed.rows() == 0) {
        out.lease_lost = true;
        return out; // rolled back: nothing else changes
    }
    const Result expired = conn.exec(
        "DELETE FROM projectiond_daemons WHERE lease_until <= clock_timestamp() RETURNING daemon_id");
    for (int row = 0; row < expired.rows(); ++row) {
        out.expired.push_back(expired.int64(row, 0));
    }
    const Result counts = conn.exec(R"sql(
SELECT (SELECT count(*) FROM projectiond_daemons WHERE cardinality(projections) > 0),
       count(*),
       count(*) FILTER (WHERE c.owner_daemon = $1::bigint)
  FROM projection_checkpoints c
 WHERE c.projection_name IN (SELECT unnest(d.projections) FROM projectiond_daemons d))sql",
                                    {me});
    out.live_daemons = static_cast<int>(counts.int64(0, 0));
    out.partitions = static_cast<int>(counts.int64(0, 1));
    int owned = static_cast<int>(counts.int64(0, 2));
    out.fair_share = out.live_daemons == 0 ? 0 : (out.partitions + out.live_daemons - 1) / out.live_daemons;

    // Free partitions: no owner, or an owner that is no longer alive. Those
    // no other live daemon runs are taken whatever the share; of the rest,
    // enough to reach it. Lowest partition numbers first spreads each
    // projection's partitions over the daemons.
    const auto claim = [&](bool only_mine, int limit) {
        if (limit <= 0) {
            return 0;
        }
        const Result claimed = conn.exec(fmt::format(R"sql(
UPDATE projection_checkpoints c
   SET owner_daemon = $1::bigint, owner_epoch = c.owner_epoch + 1, owner = $4, updated_at = now()
  FROM (SELECT w.projection_name, w.generation, w.partition_index
          FROM projection_checkpoints w
         WHERE w.projection_name = ANY ($2::text[])
           AND (w.owner_daemon IS NULL
                OR NOT EXISTS (SELECT 1 FROM projectiond_daemons o WHERE o.daemon_id = w.owner_daemon))
           AND {}
         ORDER BY w.partition_index, w.projection_name, w.generation
         LIMIT $3::integer
           FOR UPDATE SKIP LOCKED) pick
 WHERE (c.projection_name, c.generation, c.partition_index)
     = (pick.projection_name, pick.generation, pick.partition_index)
RETURNING 1)sql",
                                                     only_mine ? "NOT EXISTS (SELECT 1 FROM projectiond_daemons o "
                                                                 "WHERE o.daemon_id <> $1::bigint AND "
                                                                 "w.projection_name = ANY (o.projections))"
                                                               : "true"),
                                         {me, mine, std::to_string(limit), identity.label()});
        return claimed.rows();
    };
    owned += claim(true, 1000000);
    owned += claim(false, out.fair_share - owned);

    // What this daemon may give back: above the fair share, and only
    // partitions another live daemon could take.
    const Result listed = conn.exec(R"sql(
SELECT c.projection_name, c.generation, c.partition_index, c.owner_epoch,
       EXISTS (SELECT 1 FROM projectiond_daemons o
                WHERE o.daemon_id <> $1::bigint AND c.projection_name = ANY (o.projections)) AS shareable
  FROM projection_checkpoints c
 WHERE c.owner_daemon = $1::bigint
 ORDER BY c.projection_name, c.generation, c.partition_index)sql",
                                    {me});
    int shareable = 0;
    for (int row = 0; row < listed.rows(); ++row) {
        out.owned.push_back(OwnedPartition{
            PartitionKey{std::string(listed.text(row, 0)), static_cast<int>(listed.int64(row, 1)),
                         static_cast<int>(listed.int64(row, 2))},
            Ownership{daemon, listed.int64(row, 3)}});
        shareable += listed.boolean(row, 4) ? 1 : 0;
    }
    out.excess = std::max(0, std::min(shareable, static_cast<int>(out.owned.size()) - out.fair_share));
    tx.commit();
    return out;
}

void end_sessions_of(Connection& conn, const std::vector<std::int64_t>& daemons) {
    for (const std::int64_t daemon : daemons) {
        try {
            const Result ended = conn.exec(R"sql(
SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid))
  FROM pg_stat_activity a
 WHERE a.datname = current_database() AND a.application_name LIKE $1 || ' %')sql",
                                           {fmt::format("projectiond d{}", daemon)});
            if (ended.int64(0, 0) > 0) {
                spdlog::info("ended {} session(s) of daemon {}, whose lease ran out", ended.int64(0, 0), daemon);
            }
        } catch (const std::exception& error) {
            spdlog::debug("could not end the sessions of daemon {}: {}", daemon, error.what());
        }
    }
}

std::vector<LiveDaemon> live_daemons(Connection& conn) {
    const Result rows = conn.exec(R"sql(
SELECT d.daemon_id, d.host, d.pid, d.version,
       to_char(d.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       extract(epoch FROM d.lease_until - clock_timestamp())::float8,
       (SELECT count(*) FROM projection_checkpoints c WHERE c.owner_daemon = d.daemon_id)
  FROM projectiond_daemons d
 WHERE d.lease_until > clock_timestamp()
 ORDER BY d.daemon_id)sql");
    std::vector<LiveDaemon> out;
    for (int row = 0; row < rows.rows(); ++row) {
        LiveDaemon d;
        d.id = rows.int64(row, 0);
        d.host = std::string(rows.text(row, 1));
        d.pid = static_cast<int>(rows.int64(row, 2));
        d.version = std::string(rows.text(row, 3));
        d.started_at = std::string(rows.text(row, 4));
        d.lease_left_seconds = std::stod(std::string(rows.text(row, 5)));
        d.owned = static_cast<int>(rows.int64(row, 6));
        out.push_back(std::move(d));
    }
    return out;
}

} // namespace projectiond::store
