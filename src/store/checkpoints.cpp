#include "store/checkpoints.hpp"

#include "store/database_error.hpp"
#include "store/migrations.hpp"
#include "store/transaction.hpp"

#include <charconv>

#include <fmt/format.h>

namespace projectiond::store {

namespace {

Params key_params(const PartitionKey& key) {
    return {key.projection, std::to_string(key.generation), std::to_string(key.partition)};
}

Params owned_key_params(const PartitionKey& key, const Ownership& owner) {
    Params params = key_params(key);
    params.emplace_back(std::to_string(owner.daemon));
    params.emplace_back(std::to_string(owner.epoch));
    return params;
}

constexpr const char* key_condition =
    "projection_name = $1 AND generation = $2::integer AND partition_index = $3::integer";
constexpr const char* owned_key_condition = "projection_name = $1 AND generation = $2::integer AND partition_index = "
                                            "$3::integer AND owner_daemon = $4::bigint AND owner_epoch = $5::bigint";

Cursor cursor_at(const Result& result, int row, int epoch_column) {
    return Cursor{result.int64(row, epoch_column), parse_transaction_id(result.text(row, epoch_column + 1)),
                  result.int64(row, epoch_column + 2)};
}

} // namespace

std::uint64_t parse_transaction_id(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
        throw std::runtime_error(fmt::format("expected a transaction id, got '{}'", text));
    }
    return value;
}

std::string owned_by_live_daemon_sql(std::string_view alias) {
    return fmt::format("EXISTS (SELECT 1 FROM projectiond_daemons d WHERE d.daemon_id = {}.owner_daemon "
                       "AND d.lease_until > clock_timestamp())",
                       alias);
}

Checkpoint load_checkpoint(Connection& conn, const PartitionKey& key) {
    const Result result = conn.exec(fmt::format(R"sql(
SELECT cursor_store_epoch, cursor_transaction_id::text, cursor_global_position, last_global_position,
       events_processed, partition_count, state, last_error,
       skip_store_epoch, skip_transaction_id::text, skip_global_position, skip_at_or_below,
       coalesce(owner_daemon, 0), owner_epoch
  FROM projection_checkpoints
 WHERE {})sql",
                                                key_condition),
                                    key_params(key));
    if (result.rows() != 1) {
        throw DatabaseError(fmt::format("the checkpoint of {} partition {} disappeared (was the projection reset?)",
                                        key.projection, key.partition),
                            "PJ002");
    }
    Checkpoint checkpoint;
    checkpoint.cursor = cursor_at(result, 0, 0);
    checkpoint.last_global_position = result.int64(0, 3);
    checkpoint.events_processed = result.int64(0, 4);
    checkpoint.partition_count = static_cast<int>(result.int64(0, 5));
    checkpoint.failed = result.text(0, 6) == "failed";
    checkpoint.last_error = result.optional_text(0, 7);
    if (!result.is_null(0, 8)) {
        checkpoint.skip = SkipRange{cursor_at(result, 0, 8), result.int64(0, 11)};
    }
    checkpoint.owner = Ownership{result.int64(0, 12), result.int64(0, 13)};
    return checkpoint;
}

void record_failure(Connection& conn, const PartitionKey& key, const Ownership& owner, const std::string& error,
                    std::optional<std::int64_t> position) {
    Params params = owned_key_params(key, owner);
    params.emplace_back(error);
    params.emplace_back(position ? std::optional<std::string>(std::to_string(*position)) : std::nullopt);
    conn.exec(fmt::format("UPDATE projection_checkpoints SET state = 'failed', last_error = $6, "
                          "failed_global_position = $7::bigint, failed_at = now(), updated_at = now() WHERE {}",
                          owned_key_condition),
              params);
}

void clear_failure(Connection& conn, const PartitionKey& key, const Ownership& owner) {
    conn.exec(fmt::format("UPDATE projection_checkpoints SET state = 'active', last_error = NULL, "
                          "failed_global_position = NULL, failed_at = NULL WHERE {} AND state <> 'active'",
                          owned_key_condition),
              owned_key_params(key, owner));
}

void release_partition(Connection& conn, const PartitionKey& key, const Ownership& owner) {
    conn.exec(fmt::format("UPDATE projection_checkpoints SET owner_daemon = NULL WHERE {}", owned_key_condition),
              owned_key_params(key, owner));
}

namespace {

// Where a partition resumes after `reset --to-position N`, and what it passes
// over: see SkipRange.
struct Rewound {
    Cursor cursor;
    std::optional<SkipRange> skip;
    std::int64_t last_global_position = 0;
};

Rewound rewind(Connection& conn, const std::string& projection, int partition, const Checkpoint& old,
               std::int64_t position) {
    if (position == 0) {
        return {};
    }
    // Handled before the reset: everything up to the old cursor, plus, while
    // an earlier reset is still being replayed, the events it is passing over.
    SkipRange skip{old.cursor, position};
    if (old.skip && old.cursor < old.skip->through) {
        if (position > old.skip->at_or_below) {
            throw DatabaseError(
                fmt::format("projection '{}' partition {} is still replaying an earlier reset to position {} (its "
                            "checkpoint is at position {}); resetting it to the higher position {} cannot be exact "
                            "yet. Wait until it has caught up, or reset to position {} or below",
                            projection, partition, old.skip->at_or_below, old.last_global_position, position,
                            old.skip->at_or_below),
                "PJ007");
        }
        skip.through = old.skip->through;
    }
    // Reading resumes just before the first event that is not passed over:
    // the first above `position` in reading order, or the first after
    // `through`, whichever comes first. Everything before it is passed over.
    const Params params{skip.through.epoch_text(), skip.through.transaction_text(), skip.through.position_text(),
                        std::to_string(position)};
    const Result result = conn.exec(R"sql(
WITH first_kept AS (
    SELECT k.store_epoch, k.transaction_id, k.global_position
      FROM (SELECT e.store_epoch, e.transaction_id, e.global_position FROM events e
             WHERE (e.store_epoch, e.transaction_id, e.global_position) > ($1::bigint, $2::xid8, $3::bigint)
             ORDER BY e.store_epoch, e.transaction_id, e.global_position LIMIT 1) k
    UNION ALL
    SELECT a.store_epoch, a.transaction_id, a.global_position
      FROM (SELECT e.store_epoch, e.transaction_id, e.global_position FROM events e
             WHERE e.global_position > $4::bigint
             ORDER BY e.store_epoch, e.transaction_id, e.global_position LIMIT 1) a
    ORDER BY 1, 2, 3 LIMIT 1),
resume AS (
    SELECT p.store_epoch, p.transaction_id, p.global_position
      FROM first_kept f
      CROSS JOIN LATERAL (
           SELECT e.store_epoch, e.transaction_id, e.global_position FROM events e
            WHERE (e.store_epoch, e.transaction_id, e.global_position) < (f.store_epoch, f.transaction_id, f.global_position)
            ORDER BY e.store_epoch DESC, e.transaction_id DESC, e.global_position DESC LIMIT 1) p)
SELECT coalesce(r.store_epoch, CASE WHEN f.global_position IS NULL THEN $1::bigint ELSE 0 END),
       coalesce(r.transaction_id, CASE WHEN f.global_position IS NULL THEN $2::xid8 ELSE '0' END)::text,
       coalesce(r.global_position, CASE WHEN f.global_position IS NULL THEN $3::bigint ELSE 0 END)
  FROM (SELECT 1) one
  LEFT JOIN first_kept f ON true
  LEFT JOIN resume r ON true)sql",
                                    params);
    Rewound rewound;
    rewound.cursor = cursor_at(result, 0, 0);
    rewound.skip = skip;
    const Result last = conn.exec(R"sql(
SELECT coalesce(max(l.global_position), 0) FROM (
    SELECT e.global_position FROM events e
     WHERE e.global_position <= $4::bigint
       AND (e.store_epoch, e.transaction_id, e.global_position) <= ($1::bigint, $2::xid8, $3::bigint)
     ORDER BY e.global_position DESC LIMIT 1) l)sql",
                                  {rewound.cursor.epoch_text(), rewound.cursor.transaction_text(),
                                   rewound.cursor.position_text(), std::to_string(position)});
    rewound.last_global_position = last.int64(0, 0);
    return rewound;
}

} // namespace

ResetResult reset_checkpoints(Connection& conn, const std::string& projection, int partitions, std::int64_t position) {
    Transaction tx(conn);
    conn.exec("SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
              {std::to_string(projection_creation_lock_namespace), projection});
    conn.exec("INSERT INTO projectiond_projections (projection_name) VALUES ($1) "
              "ON CONFLICT (projection_name) DO NOTHING",
              {projection});
    const Result state = conn.exec(
        "SELECT p.live_generation, p.paused, (SELECT coalesce(max(global_position), 0) FROM events), "
        "       p.building_generation, g.schema_name "
        "  FROM projectiond_projections p "
        "  LEFT JOIN projectiond_generations g "
        "    ON g.projection_name = p.projection_name AND g.generation = p.building_generation "
        " WHERE p.projection_name = $1 FOR UPDATE OF p",
        {projection});
    const int generation = static_cast<int>(state.int64(0, 0));
    const bool paused = state.boolean(0, 1);
    const std::int64_t last_position = state.int64(0, 2);
    if (!state.is_null(0, 3)) {
        // The swap waits until the new version has passed every event the
        // live one has: a rewound live version would let the unfinished one
        // swap in at once, and discard the reset with the old version.
        throw DatabaseError(fmt::format("projection '{}' is being rebuilt (generation {}{}): a reset of the live "
                                        "version now would swap the unfinished one in at once. Let the rebuild "
                                        "finish and swap in (`projectiond status {}` shows its progress), then "
                                        "reset the new version if it still needs it",
                                        projection, state.text(0, 3),
                                        state.is_null(0, 4) ? std::string()
                                                            : fmt::format(", in schema {}", state.text(0, 4)),
                                        projection),
                            "PJ003");
    }
    if (position > last_position) {
        throw DatabaseError(fmt::format("position {} is beyond the last event of the store (position {}); reset to "
                                        "a position at or below it",
                                        position, last_position),
                            "PJ007");
    }
    // Lock the rows, then make sure no running daemon owns any of them: a
    // runner only processes a partition it owns, and a paused projection's
    // runners take no batch.
    const Result rows = conn.exec(fmt::format("SELECT partition_index, {} AS owned, partition_count "
                                              "FROM projection_checkpoints c WHERE projection_name = $1 "
                                              "AND generation = $2::integer ORDER BY partition_index FOR UPDATE",
                                              owned_by_live_daemon_sql("c")),
                                  {projection, std::to_string(generation)});
    for (int row = 0; row < rows.rows(); ++row) {
        if (rows.boolean(row, 1) && !paused) {
            throw DatabaseError(
                fmt::format("projection '{}' partition {} is being processed by a running projectiond; pause it "
                            "first (`projectiond pause {}`), or stop the daemons, and run reset again",
                            projection, rows.text(row, 0), projection),
                "PJ003");
        }
        if (position > 0 && rows.int64(row, 2) != partitions) {
            throw DatabaseError(fmt::format("projection '{}' was processed in {} partitions and is now configured "
                                            "for {}: which events each handled cannot be carried over, so only a "
                                            "full reset (without --to-position) can change the partition count",
                                            projection, rows.int64(row, 2), partitions),
                                "PJ007");
        }
    }
    conn.exec("DELETE FROM projection_checkpoints WHERE projection_name = $1 AND generation = $2::integer "
              "AND partition_index >= $3::integer",
              {projection, std::to_string(generation), std::to_string(partitions)});
    for (int partition = 0; partition < partitions; ++partition) {
        const PartitionKey key{projection, generation, partition};
        conn.exec(R"sql(
INSERT INTO projection_checkpoints (projection_name, generation, partition_index, partition_count)
VALUES ($1, $2::integer, $3::integer, $4::integer)
ON CONFLICT (projection_name, generation, partition_index) DO NOTHING)sql",
                  {projection, std::to_string(generation), std::to_string(partition), std::to_string(partitions)});
        const Rewound rewound = rewind(conn, projection, partition, load_checkpoint(conn, key), position);
        Params params = key_params(key);
        const auto optional_text = [&](bool present, std::string text) {
            return present ? std::optional<std::string>(std::move(text)) : std::nullopt;
        };
        const bool skipping = rewound.skip.has_value();
        params.insert(params.end(),
                      {std::to_string(partitions), rewound.cursor.epoch_text(), rewound.cursor.transaction_text(),
                       rewound.cursor.position_text(), std::to_string(rewound.last_global_position),
                       optional_text(skipping, skipping ? rewound.skip->through.epoch_text() : ""),
                       optional_text(skipping, skipping ? rewound.skip->through.transaction_text() : ""),
                       optional_text(skipping, skipping ? rewound.skip->through.position_text() : ""),
                       optional_text(skipping, skipping ? std::to_string(rewound.skip->at_or_below) : "")});
        conn.exec(fmt::format(R"sql(
UPDATE projection_checkpoints
   SET partition_count = $4::integer,
       cursor_store_epoch = $5::bigint, cursor_transaction_id = $6::xid8, cursor_global_position = $7::bigint,
       last_global_position = $8::bigint,
       skip_store_epoch = $9::bigint, skip_transaction_id = $10::xid8, skip_global_position = $11::bigint,
       skip_at_or_below = $12::bigint,
       events_processed = 0, state = 'active', last_error = NULL, failed_global_position = NULL,
       failed_at = NULL, updated_at = now()
 WHERE {})sql",
                              key_condition),
                  params);
    }
    tx.commit();
    return ResetResult{partitions, position};
}

} // namespace projectiond::store
