-- 0002: a store that can move between clusters, daemons that share the work,
-- exact resets, and generations of a projection.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent. docs/gap-safety.md and docs/ownership.md explain the design.

-- ------------------------------------------------------------ store epochs
--
-- Transaction ids belong to one cluster. A dump restored into another cluster,
-- or a logical-replication switch-over, brings events whose transaction ids
-- mean nothing there. Every event is stamped with the store epoch current when
-- it was appended, and reading order is (store_epoch, transaction_id,
-- global_position). An event of an earlier epoch is final; within the current
-- epoch the transaction-id horizon applies as before. When an append (or
-- `projectiond migrate`) finds an event or a checkpoint at or beyond
-- (current epoch, next transaction id) — something this cluster's current epoch
-- cannot have produced — it begins a new epoch, so that new events are ordered
-- after everything that was copied in.
CREATE TABLE IF NOT EXISTS projectiond_store (
    singleton     boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    current_epoch bigint      NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    reason        text        NOT NULL
);

-- Epochs are microseconds since 1970 when they begin (or one more than the
-- largest in use, if that is larger), so that stores migrated independently
-- practically never share one.
INSERT INTO projectiond_store (current_epoch, reason)
VALUES ((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 'schema created')
ON CONFLICT (singleton) DO NOTHING;

-- Events appended before this migration are epoch 0: the ALTER waits for every
-- transaction appending to events, so all of them are committed.
ALTER TABLE events ADD COLUMN IF NOT EXISTS store_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN store_epoch DROP DEFAULT;
ALTER TABLE aggregate_heads ADD COLUMN IF NOT EXISTS store_epoch bigint NOT NULL DEFAULT 0;

-- The partition hash, stored once at append instead of computed by every
-- partition for every event it reads. Same value as projectiond_partition_of(),
-- so no aggregate changes partition.
ALTER TABLE events ADD COLUMN IF NOT EXISTS partition_hash bigint
    GENERATED ALWAYS AS (('x00000000' || left(md5(aggregate_id), 8))::bit(64)::bigint) STORED;

CREATE INDEX IF NOT EXISTS events_read_order ON events (store_epoch, transaction_id, global_position);
DROP INDEX IF EXISTS events_transaction_order;

-- ------------------------------------------------------------ projections
--
-- One row per projection: what every daemon must obey (pause) and which
-- generation readers see.
CREATE TABLE IF NOT EXISTS projectiond_projections (
    projection_name text        PRIMARY KEY,
    live_generation integer     NOT NULL DEFAULT 1,
    paused          boolean     NOT NULL DEFAULT false,
    paused_at       timestamptz,
    resumed_at      timestamptz, -- `projectiond resume`: failed partitions are retried
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projectiond_projections (projection_name)
SELECT DISTINCT projection_name FROM projection_checkpoints
ON CONFLICT (projection_name) DO NOTHING;

-- Blue/green versions (docs/versions.md). A projection with a `schema:` keeps
-- its live read model in that schema; a new version (or `projectiond
-- rebuild`) is built as another generation in a schema of its own beside it,
-- from the first event, while the live one keeps serving. When it has caught
-- up, one transaction renames the schemas: readers see the whole old model,
-- then the whole new one. swap_requested_at: a daemon is about to swap, so
-- the live generation takes no new batch for a moment and the new one can
-- catch up with it exactly.
ALTER TABLE projectiond_projections
    ADD COLUMN IF NOT EXISTS building_generation  integer,
    ADD COLUMN IF NOT EXISTS rebuild_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS swap_requested_at    timestamptz;

CREATE TABLE IF NOT EXISTS projectiond_generations (
    projection_name text        NOT NULL,
    generation      integer     NOT NULL,
    version         integer     NOT NULL,
    stage           text        NOT NULL CHECK (stage IN ('live', 'building', 'retired')),
    schema_name     text,        -- where its tables are now; NULL: no schema of its own
    destination     text,        -- building: the schema it becomes when swapped in
    partitions      integer     NOT NULL DEFAULT 1,
    definition      text        NOT NULL DEFAULT '', -- the projection it runs, as a configuration document
    created_at      timestamptz NOT NULL DEFAULT now(),
    live_since      timestamptz,
    retired_at      timestamptz,
    PRIMARY KEY (projection_name, generation)
);
INSERT INTO projectiond_generations (projection_name, generation, version, stage, partitions, live_since)
SELECT p.projection_name, p.live_generation, 1, 'live',
       coalesce((SELECT max(c.partition_count) FROM projection_checkpoints c
                  WHERE c.projection_name = p.projection_name), 1), now()
  FROM projectiond_projections p
ON CONFLICT (projection_name, generation) DO NOTHING;

-- ------------------------------------------------------------ checkpoints
--
-- The cursor gains its epoch. A generation is one build of a projection (a
-- blue/green rebuild runs a second one beside the live one).
--
-- skip_*: after `reset --to-position N`, the events at or below position N
-- that the old cursor had passed, i.e. at or before (skip_store_epoch,
-- skip_transaction_id, skip_global_position) in reading order, are passed
-- over without being handled, so that exactly the events above N are
-- processed again whatever order their transactions committed in.
--
-- owner_daemon / owner_epoch: the daemon that owns the partition and the
-- fencing token of its ownership, bumped at every change of owner. A batch
-- commits only if both still match and the owner's lease is valid.
ALTER TABLE projection_checkpoints
    ADD COLUMN IF NOT EXISTS generation           integer NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS cursor_store_epoch   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS skip_store_epoch     bigint,
    ADD COLUMN IF NOT EXISTS skip_transaction_id  xid8,
    ADD COLUMN IF NOT EXISTS skip_global_position bigint,
    ADD COLUMN IF NOT EXISTS skip_at_or_below     bigint,
    ADD COLUMN IF NOT EXISTS owner_daemon         bigint,
    ADD COLUMN IF NOT EXISTS owner_epoch          bigint  NOT NULL DEFAULT 0,
    DROP COLUMN IF EXISTS lock_key;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'projection_checkpoints'::regclass AND contype = 'p'
                      AND array_length(conkey, 1) = 3) THEN
        ALTER TABLE projection_checkpoints DROP CONSTRAINT IF EXISTS projection_checkpoints_pkey;
        ALTER TABLE projection_checkpoints
            ADD CONSTRAINT projection_checkpoints_pkey PRIMARY KEY (projection_name, generation, partition_index);
    END IF;
END
$$;

ALTER TABLE projection_dead_letters ADD COLUMN IF NOT EXISTS generation integer NOT NULL DEFAULT 1;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
                WHERE conrelid = 'projection_dead_letters'::regclass
                  AND conname = 'projection_dead_letters_projection_name_event_id_key') THEN
        ALTER TABLE projection_dead_letters DROP CONSTRAINT projection_dead_letters_projection_name_event_id_key;
    END IF;
END
$$;
CREATE UNIQUE INDEX IF NOT EXISTS projection_dead_letters_event
    ON projection_dead_letters (projection_name, generation, event_id);

-- ------------------------------------------------------------ daemons
--
-- Every running daemon, with the lease it renews. A daemon whose lease has run
-- out is dead or hung: any other daemon may delete its row and take its
-- partitions (docs/ownership.md).
CREATE TABLE IF NOT EXISTS projectiond_daemons (
    daemon_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host        text        NOT NULL,
    boot_id     text        NOT NULL DEFAULT '', -- the kernel's boot id: tells whether `pid` is comparable here
    pid         integer     NOT NULL,
    version     text        NOT NULL,
    projections text[]      NOT NULL DEFAULT '{}',
    started_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);

-- ------------------------------------------------------------ functions

-- Begins a new store epoch, unless another transaction already moved on from
-- `p_seen`. Returns the current epoch.
CREATE OR REPLACE FUNCTION projectiond_begin_epoch(p_seen bigint, p_reason text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    next_epoch bigint;
BEGIN
    UPDATE projectiond_store s
       SET current_epoch = greatest(s.current_epoch + 1,
                                    (SELECT coalesce(max(e.store_epoch), 0) + 1 FROM events e),
                                    (SELECT coalesce(max(c.cursor_store_epoch), 0) + 1 FROM projection_checkpoints c),
                                    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
           started_at = now(),
           reason = p_reason
     WHERE s.current_epoch = p_seen
    RETURNING s.current_epoch INTO next_epoch;
    IF NOT FOUND THEN
        SELECT s.current_epoch INTO next_epoch FROM projectiond_store s;
    END IF;
    RETURN next_epoch;
END
$fn$;

-- True when the store holds an event, an aggregate head or a checkpoint at or
-- beyond (p_epoch, the next transaction id): copied from another cluster, since
-- this cluster's epoch p_epoch cannot have produced it. Both sides come from
-- one snapshot, so a concurrent append is never mistaken for one.
CREATE OR REPLACE FUNCTION projectiond_foreign_rows(p_epoch bigint) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
    -- A scalar subquery, not EXISTS: the planner would drop the ORDER BY ...
    -- LIMIT 1 of an EXISTS and might scan the whole table at every append.
    SELECT (SELECT 1 FROM events e WHERE (e.store_epoch, e.transaction_id) >= (p_epoch, x.next_xid)
             ORDER BY e.store_epoch, e.transaction_id LIMIT 1) IS NOT NULL
        OR EXISTS (SELECT 1 FROM projection_checkpoints c
                    WHERE (c.cursor_store_epoch, c.cursor_transaction_id) >= (p_epoch, x.next_xid))
      FROM (SELECT pg_snapshot_xmax(pg_current_snapshot()) AS next_xid) x
$fn$;

-- The epoch a new event is stamped with. Checked once per transaction (at its
-- first append, before it has rows of its own that a later check could take
-- for copied ones) and remembered in a setting keyed by the transaction id. The
-- setting is session-level on purpose: a function with a SET clause (all of
-- ours pin search_path) takes transaction-local settings back when it
-- returns, which would make the check run for every row.
CREATE OR REPLACE FUNCTION projectiond_append_epoch() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    checked text := current_setting('projectiond.append_epoch', true);
    mine    text := pg_current_xact_id()::text || ':';
    current bigint;
BEGIN
    IF checked LIKE mine || '%' THEN
        RETURN substr(checked, length(mine) + 1)::bigint;
    END IF;
    SELECT s.current_epoch INTO current FROM projectiond_store s;
    IF current IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PJ006',
            MESSAGE = 'projectiond_store is empty, so new events cannot be ordered',
            HINT = 'Run `projectiond migrate`.';
    END IF;
    IF projectiond_foreign_rows(current) THEN
        current := projectiond_begin_epoch(current, 'rows copied from another cluster were found by an append');
    END IF;
    PERFORM set_config('projectiond.append_epoch', mine || current, false);
    RETURN current;
END
$fn$;

-- Keeps aggregate_heads current and the event order sound, for append_events()
-- and plain INSERTs alike.
--
-- A row that arrives with its store_epoch already set was copied from a store
-- (a data-only restore): it is history and is kept as it is.
--
-- SQLSTATE PJ001: the event's aggregate_version is not the aggregate's next
--                 version (a concurrent writer got there first).
-- SQLSTATE 40001: an older transaction tried to append after a younger one had
--                 committed the aggregate's previous version; retrying the
--                 transaction succeeds. Without this rule the aggregate's events
--                 would be ordered differently by transaction id than by version.
CREATE OR REPLACE FUNCTION projectiond_events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    current_xid   xid8;
    current_epoch bigint;
    head_version  bigint;
    head_epoch    bigint;
    head_xid      xid8;
BEGIN
    IF NEW.store_epoch IS NOT NULL THEN
        IF NEW.transaction_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = '23502',
                MESSAGE = 'an event copied with its store_epoch needs its transaction_id too';
        END IF;
        RETURN NEW;
    END IF;
    current_xid := pg_current_xact_id();
    current_epoch := projectiond_append_epoch();
    NEW.transaction_id := current_xid;
    NEW.store_epoch := current_epoch;
    IF NEW.aggregate_version = 1 THEN
        INSERT INTO aggregate_heads AS h
               (bounded_context, aggregate_type, aggregate_id, aggregate_version, store_epoch, transaction_id)
        VALUES (NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id, 1, current_epoch, current_xid)
        ON CONFLICT (bounded_context, aggregate_type, aggregate_id) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PJ001',
                MESSAGE = format('version conflict: %s/%s/%s already exists, cannot append version 1',
                                 NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id),
                HINT = 'Reload the aggregate and retry with its current version.';
        END IF;
        RETURN NEW;
    END IF;

    SELECT h.aggregate_version, h.store_epoch, h.transaction_id INTO head_version, head_epoch, head_xid
      FROM aggregate_heads h
     WHERE h.bounded_context = NEW.bounded_context
       AND h.aggregate_type = NEW.aggregate_type
       AND h.aggregate_id = NEW.aggregate_id
       FOR UPDATE;
    IF NOT FOUND THEN
        -- A store restored without its heads: rebuild this one from its events.
        SELECT max(e.aggregate_version) INTO head_version
          FROM events e
         WHERE e.bounded_context = NEW.bounded_context
           AND e.aggregate_type = NEW.aggregate_type
           AND e.aggregate_id = NEW.aggregate_id;
        IF head_version IS NOT NULL THEN
            INSERT INTO aggregate_heads AS h
                   (bounded_context, aggregate_type, aggregate_id, aggregate_version, store_epoch, transaction_id)
            VALUES (NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id, head_version, 0, '0')
            ON CONFLICT (bounded_context, aggregate_type, aggregate_id) DO NOTHING;
            SELECT h.aggregate_version, h.store_epoch, h.transaction_id INTO head_version, head_epoch, head_xid
              FROM aggregate_heads h
             WHERE h.bounded_context = NEW.bounded_context
               AND h.aggregate_type = NEW.aggregate_type
               AND h.aggregate_id = NEW.aggregate_id
               FOR UPDATE;
        END IF;
    END IF;
    IF head_version IS DISTINCT FROM NEW.aggregate_version - 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ001',
            MESSAGE = format('version conflict: %s/%s/%s is at version %s, cannot append version %s',
                             NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id,
                             coalesce(head_version, 0), NEW.aggregate_version),
            HINT = 'Reload the aggregate and retry with its current version.';
    END IF;
    IF (head_epoch, head_xid) > (current_epoch, current_xid) THEN
        RAISE EXCEPTION USING
            ERRCODE = '40001',
            MESSAGE = format('could not serialize append to %s/%s/%s: a younger transaction appended version %s first',
                             NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id, head_version),
            HINT = 'Retry the transaction.';
    END IF;
    UPDATE aggregate_heads h
       SET aggregate_version = NEW.aggregate_version, store_epoch = current_epoch, transaction_id = current_xid,
           updated_at = now()
     WHERE h.bounded_context = NEW.bounded_context
       AND h.aggregate_type = NEW.aggregate_type
       AND h.aggregate_id = NEW.aggregate_id;
    RETURN NEW;
END
$fn$;

-- An event's identity and place in the order never change: projections rely
-- on them. The payload, metadata, trace ids and event_version may be updated
-- (redaction of personal data, upcasting); projections that already handled
-- the event are not told.
CREATE OR REPLACE FUNCTION projectiond_events_before_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF (NEW.global_position, NEW.store_epoch, NEW.transaction_id, NEW.bounded_context, NEW.aggregate_type,
        NEW.aggregate_id, NEW.aggregate_version, NEW.event_id, NEW.event_type, NEW.created_at)
       IS DISTINCT FROM
       (OLD.global_position, OLD.store_epoch, OLD.transaction_id, OLD.bounded_context, OLD.aggregate_type,
        OLD.aggregate_id, OLD.aggregate_version, OLD.event_id, OLD.event_type, OLD.created_at) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ004',
            MESSAGE = format('event %s is immutable except for payload, metadata, event_version and trace ids',
                             OLD.global_position),
            HINT = 'Append a new event instead; projections have already been ordered by this one.';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE TRIGGER events_before_update
    BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION projectiond_events_before_update();

-- Appends no longer NOTIFY: a NOTIFY makes PREPARE TRANSACTION fail, and every
-- notifying commit takes a cluster-wide lock. Daemons watch the store instead
-- (one cheap query per daemon every 100 ms).
DROP TRIGGER IF EXISTS events_after_insert_notify ON events;
DROP FUNCTION IF EXISTS projectiond_events_notify();

-- Moves a partition's cursor inside the batch's transaction: a compare-and-set
-- on the cursor, fenced by ownership. Raises SQLSTATE PJ002 when the stored
-- cursor is not the one the batch started from, PJ005 when the caller no
-- longer owns the partition (another daemon took it over, or the caller's
-- lease ran out). Returns the new last_global_position: the highest position
-- among the events the cursor passed.
DROP FUNCTION IF EXISTS projectiond_advance_checkpoint(text, integer, xid8, bigint, xid8, bigint, bigint);
DROP FUNCTION IF EXISTS projectiond_advance_checkpoint(text, integer, integer, bigint, bigint, bigint, xid8, bigint,
                                                       bigint, xid8, bigint, bigint);
CREATE OR REPLACE FUNCTION projectiond_advance_checkpoint(
    p_projection   text,
    p_generation   integer,
    p_partition    integer,
    p_owner        bigint,
    p_owner_epoch  bigint,
    p_old_epoch    bigint,
    p_old_xid      xid8,
    p_old_position bigint,
    p_new_epoch    bigint,
    p_new_xid      xid8,
    p_new_position bigint,
    p_handled      bigint,
    p_passed_max   bigint)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    passed_max bigint := p_passed_max;
    result     bigint;
    stored     projection_checkpoints%ROWTYPE;
BEGIN
    -- The caller knows the highest position it passed when it read every
    -- event it passes (an unfiltered read); otherwise (filters, partitions, a
    -- window) look it up. "+ 0" keeps the planner from answering max() by
    -- walking the primary key backwards (through every newer event); the
    -- range scan on events_read_order reads just the batch's entries.
    IF passed_max IS NULL THEN
        SELECT max(e.global_position + 0) INTO passed_max
          FROM events e
         WHERE (e.store_epoch, e.transaction_id, e.global_position) > (p_old_epoch, p_old_xid, p_old_position)
           AND (e.store_epoch, e.transaction_id, e.global_position) <= (p_new_epoch, p_new_xid, p_new_position);
    END IF;

    UPDATE projection_checkpoints c
       SET cursor_store_epoch = p_new_epoch,
           cursor_transaction_id = p_new_xid,
           cursor_global_position = p_new_position,
           last_global_position = greatest(c.last_global_position, coalesce(passed_max, 0)),
           events_processed = c.events_processed + p_handled,
           skip_store_epoch = CASE WHEN (p_new_epoch, p_new_xid, p_new_position)
                                        >= (c.skip_store_epoch, c.skip_transaction_id, c.skip_global_position)
                                   THEN NULL ELSE c.skip_store_epoch END,
           updated_at = now()
     WHERE c.projection_name = p_projection
       AND c.generation = p_generation
       AND c.partition_index = p_partition
       AND c.cursor_store_epoch = p_old_epoch
       AND c.cursor_transaction_id = p_old_xid
       AND c.cursor_global_position = p_old_position
       AND c.owner_daemon = p_owner
       AND c.owner_epoch = p_owner_epoch
       AND EXISTS (SELECT 1 FROM projectiond_daemons d
                    WHERE d.daemon_id = p_owner AND d.lease_until > clock_timestamp())
    RETURNING c.last_global_position INTO result;
    IF FOUND THEN
        RETURN result;
    END IF;
    SELECT * INTO stored FROM projection_checkpoints c
     WHERE c.projection_name = p_projection AND c.generation = p_generation AND c.partition_index = p_partition;
    IF NOT FOUND OR stored.owner_daemon IS DISTINCT FROM p_owner OR stored.owner_epoch <> p_owner_epoch
       OR NOT EXISTS (SELECT 1 FROM projectiond_daemons d
                       WHERE d.daemon_id = p_owner AND d.lease_until > clock_timestamp()) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ005',
            MESSAGE = format('%s partition %s is no longer owned by this daemon', p_projection, p_partition),
            HINT = 'Another daemon took it over, or this daemon''s lease ran out; the batch is rolled back.';
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'PJ002',
        MESSAGE = format('checkpoint of %s partition %s moved underneath this runner', p_projection, p_partition),
        HINT = 'Another process (a reset) changed it; the runner reloads it.';
END
$fn$;

-- Appends events to one aggregate, checking the version the caller expects.
-- One INSERT for all of them, so the triggers' per-statement work is done once.
CREATE OR REPLACE FUNCTION append_events(
    p_bounded_context  text,
    p_aggregate_type   text,
    p_aggregate_id     text,
    p_expected_version bigint,
    p_events           jsonb)
RETURNS TABLE (global_position bigint, aggregate_version bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    current_version bigint;
BEGIN
    IF jsonb_typeof(p_events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'append_events: p_events must be a JSON array of events';
    END IF;

    SELECT h.aggregate_version INTO current_version
      FROM aggregate_heads h
     WHERE h.bounded_context = p_bounded_context
       AND h.aggregate_type = p_aggregate_type
       AND h.aggregate_id = p_aggregate_id
       FOR UPDATE;
    IF NOT FOUND THEN
        -- No head: a new aggregate, or a store restored without its heads
        -- (the insert trigger rebuilds the head from the events).
        SELECT max(e.aggregate_version) INTO current_version
          FROM events e
         WHERE e.bounded_context = p_bounded_context
           AND e.aggregate_type = p_aggregate_type
           AND e.aggregate_id = p_aggregate_id;
    END IF;
    current_version := coalesce(current_version, 0);
    IF p_expected_version IS NOT NULL AND p_expected_version <> current_version THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ001',
            MESSAGE = format('version conflict: %s/%s/%s is at version %s, expected %s',
                             p_bounded_context, p_aggregate_type, p_aggregate_id,
                             current_version, p_expected_version),
            HINT = 'Reload the aggregate and retry with its current version.';
    END IF;

    RETURN QUERY
    INSERT INTO events AS e (bounded_context, aggregate_type, aggregate_id, aggregate_version,
                             event_id, event_type, event_version, payload, metadata,
                             trace_id, correlation_id, causation_id)
    SELECT p_bounded_context, p_aggregate_type, p_aggregate_id, current_version + item.ordinality,
           coalesce((item.value->>'event_id')::uuid, gen_random_uuid()),
           item.value->>'event_type',
           coalesce((item.value->>'event_version')::integer, 1),
           item.value->'payload',
           coalesce(item.value->'metadata', '{}'::jsonb),
           item.value->>'trace_id', item.value->>'correlation_id', item.value->>'causation_id'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS item(value, ordinality)
     ORDER BY item.ordinality
    RETURNING e.global_position, e.aggregate_version;
END
$fn$;

-- Swaps a projection's building generation in, if it has caught up with the
-- live one: returns true when it did. One transaction: the checkpoints of
-- both generations are locked (a batch in flight commits first), every
-- relation of both schemas is locked (a reader never resolves one table of
-- the old model and another of the new), the schemas are renamed, and the
-- old generation's checkpoints are removed.
CREATE OR REPLACE FUNCTION projectiond_swap_generation(p_projection text, p_building integer) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    p           projectiond_projections%ROWTYPE;
    live        projectiond_generations%ROWTYPE;
    building    projectiond_generations%ROWTYPE;
    behind      boolean;
    retired     text;
    relation    regclass;
BEGIN
    SELECT * INTO p FROM projectiond_projections WHERE projection_name = p_projection FOR UPDATE;
    IF NOT FOUND OR p.building_generation IS DISTINCT FROM p_building THEN
        RETURN false;
    END IF;
    SELECT * INTO live FROM projectiond_generations
     WHERE projection_name = p_projection AND generation = p.live_generation FOR UPDATE;
    SELECT * INTO building FROM projectiond_generations
     WHERE projection_name = p_projection AND generation = p_building FOR UPDATE;
    PERFORM 1 FROM projection_checkpoints c
      WHERE c.projection_name = p_projection AND c.generation IN (live.generation, building.generation)
      ORDER BY c.generation, c.partition_index FOR UPDATE;
    -- Caught up: every event any live partition has passed, every building
    -- partition has passed too (so time never goes backwards for readers).
    SELECT EXISTS (
               SELECT 1 FROM projection_checkpoints b, projection_checkpoints l
                WHERE b.projection_name = p_projection AND b.generation = building.generation
                  AND l.projection_name = p_projection AND l.generation = live.generation
                  AND (b.cursor_store_epoch, b.cursor_transaction_id, b.cursor_global_position)
                    < (l.cursor_store_epoch, l.cursor_transaction_id, l.cursor_global_position))
      INTO behind;
    IF behind OR EXISTS (SELECT 1 FROM projection_checkpoints b
                          WHERE b.projection_name = p_projection AND b.generation = building.generation
                            AND b.state = 'failed') THEN
        RETURN false;
    END IF;
    IF building.schema_name IS NOT NULL THEN
        FOR relation IN
            SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN (live.schema_name, building.schema_name) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             ORDER BY c.oid
        LOOP
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', relation);
        END LOOP;
        IF live.schema_name IS NOT NULL THEN
            retired := format('%s_v%s', live.schema_name, live.version);
            IF retired = building.schema_name OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = retired) THEN
                retired := format('%s_g%s', live.schema_name, live.generation);
            END IF;
            EXECUTE format('ALTER SCHEMA %I RENAME TO %I', live.schema_name, retired);
            UPDATE projectiond_generations SET schema_name = retired
             WHERE projection_name = p_projection AND generation = live.generation;
        END IF;
        EXECUTE format('ALTER SCHEMA %I RENAME TO %I', building.schema_name,
                       coalesce(building.destination, live.schema_name));
        UPDATE projectiond_generations SET schema_name = coalesce(building.destination, live.schema_name),
                                           destination = NULL
         WHERE projection_name = p_projection AND generation = building.generation;
    END IF;
    UPDATE projectiond_generations SET stage = 'retired', retired_at = now()
     WHERE projection_name = p_projection AND generation = live.generation;
    UPDATE projectiond_generations SET stage = 'live', live_since = now()
     WHERE projection_name = p_projection AND generation = building.generation;
    UPDATE projectiond_projections
       SET live_generation = building.generation, building_generation = NULL, swap_requested_at = NULL,
           rebuild_requested_at = NULL, updated_at = now()
     WHERE projection_name = p_projection;
    DELETE FROM projection_checkpoints WHERE projection_name = p_projection AND generation = live.generation;
    PERFORM pg_notify('projectiond_control', p_projection);
    RETURN true;
END
$fn$;

-- The events of a batch handler's run, by position. A batch handler runs with
-- its projection's schema first in search_path, where a table of the
-- projection's own may be called events too; this always reads the store's.
CREATE OR REPLACE FUNCTION projectiond_run_events(p_positions bigint[]) RETURNS SETOF events
LANGUAGE sql STABLE AS $fn$
    SELECT e.* FROM events e WHERE e.global_position = ANY (p_positions)
$fn$;

-- Every function of the schema resolves names in the schema it was installed
-- in, whatever the caller's search_path (pg_dump restores with an empty one).
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND p.proname IN ('projectiond_partition_of', 'projectiond_begin_epoch', 'projectiond_foreign_rows',
                             'projectiond_append_epoch', 'projectiond_events_before_insert',
                             'projectiond_events_before_update', 'projectiond_advance_checkpoint', 'append_events',
                             'projectiond_swap_generation', 'projectiond_run_events')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', fn, current_schema());
    END LOOP;
END
$$;
