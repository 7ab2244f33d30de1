-- 0001: the event store and projectiond's bookkeeping.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent so that re-running the file by hand is harmless too.
-- Needs PostgreSQL 14 or newer (xid8 functions, CREATE OR REPLACE TRIGGER).

-- Events, appended by applications in their own transactions.
--
-- transaction_id is the appending transaction's id. projectiond reads events in
-- (transaction_id, global_position) order and only below the oldest transaction
-- still running, so an event committed late by a long transaction is never
-- skipped (docs/gap-safety.md explains why this is sound).
CREATE TABLE IF NOT EXISTS events (
    global_position   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bounded_context   text        NOT NULL,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version bigint      NOT NULL CHECK (aggregate_version > 0),
    event_id          uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    event_type        text        NOT NULL,
    event_version     integer     NOT NULL DEFAULT 1,
    payload           jsonb       NOT NULL,
    trace_id          text,
    correlation_id    text,
    causation_id      text,
    metadata          jsonb       DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    transaction_id    xid8        NOT NULL DEFAULT pg_current_xact_id(),
    UNIQUE (bounded_context, aggregate_type, aggregate_id, aggregate_version)
);

CREATE INDEX IF NOT EXISTS events_transaction_order
    ON events (transaction_id, global_position);

-- The current version of every aggregate; its row lock serialises appends to
-- one aggregate.
CREATE TABLE IF NOT EXISTS aggregate_heads (
    bounded_context   text        NOT NULL,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version bigint      NOT NULL,
    transaction_id    xid8        NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bounded_context, aggregate_type, aggregate_id)
);

-- One row per projection partition.
--
-- last_global_position is the highest global position the partition has passed
-- (handled, or skipped by its filters): the reference's monitoring queries read
-- it. The cursor (cursor_transaction_id, cursor_global_position) is where
-- reading resumes. lock_key names the session advisory lock that the owning
-- runner holds.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection_name        text        NOT NULL,
    partition_index        integer     NOT NULL DEFAULT 0,
    partition_count        integer     NOT NULL DEFAULT 1,
    last_global_position   bigint      NOT NULL DEFAULT 0,
    cursor_transaction_id  xid8        NOT NULL DEFAULT '0',
    cursor_global_position bigint      NOT NULL DEFAULT 0,
    events_processed       bigint      NOT NULL DEFAULT 0,
    state                  text        NOT NULL DEFAULT 'active'
                                       CHECK (state IN ('active', 'failed')),
    last_error             text,
    failed_global_position bigint,
    failed_at              timestamptz,
    owner                  text,
    lock_key               integer     GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, partition_index),
    CHECK (partition_count > 0 AND partition_index >= 0 AND partition_index < partition_count)
);

-- Events parked by `on_error: skip`.
CREATE TABLE IF NOT EXISTS projection_dead_letters (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection_name text        NOT NULL,
    partition_index integer     NOT NULL,
    global_position bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    error           text        NOT NULL,
    sqlstate        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection_name, event_id)
);

-- The partition an aggregate belongs to when a projection runs in `count`
-- partitions. md5 keeps the assignment stable across PostgreSQL versions, so an
-- upgrade never moves an aggregate to another partition mid-stream.
CREATE OR REPLACE FUNCTION projectiond_partition_of(aggregate_id text, count integer)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (('x00000000' || left(md5(aggregate_id), 8))::bit(64)::bigint % count)::integer;

-- Moves a partition's cursor from (old_xid, old_position) to (new_xid,
-- new_position) inside the batch's transaction. Raises SQLSTATE PJ002 when the
-- stored cursor is not the one the runner started from, so a batch built on a
-- stale checkpoint can never commit. Returns the new last_global_position: the
-- highest position among the events the cursor passed.
CREATE OR REPLACE FUNCTION projectiond_advance_checkpoint(
    p_projection   text,
    p_partition    integer,
    p_old_xid      xid8,
    p_old_position bigint,
    p_new_xid      xid8,
    p_new_position bigint,
    p_handled      bigint)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    passed_max bigint;
    result     bigint;
BEGIN
    -- "+ 0" keeps the planner from answering max() by walking the primary key
    -- backwards (through every newer event); the range scan on
    -- events_transaction_order reads just the batch's entries.
    SELECT max(e.global_position + 0) INTO passed_max
      FROM events e
     WHERE (e.transaction_id, e.global_position) > (p_old_xid, p_old_position)
       AND (e.transaction_id, e.global_position) <= (p_new_xid, p_new_position);

    UPDATE projection_checkpoints c
       SET cursor_transaction_id = p_new_xid,
           cursor_global_position = p_new_position,
           last_global_position = greatest(c.last_global_position, coalesce(passed_max, 0)),
           events_processed = c.events_processed + p_handled,
           updated_at = now()
     WHERE c.projection_name = p_projection
       AND c.partition_index = p_partition
       AND c.cursor_transaction_id = p_old_xid
       AND c.cursor_global_position = p_old_position
    RETURNING c.last_global_position INTO result;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ002',
            MESSAGE = format('checkpoint of %s partition %s moved underneath this runner', p_projection, p_partition),
            HINT = 'Another process (a reset, or a second runner) changed it; the runner reloads it.';
    END IF;
    RETURN result;
END
$fn$;

-- Keeps aggregate_heads current and the event order sound, for append_events()
-- and plain INSERTs alike.
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
    current_xid  xid8 := pg_current_xact_id();
    head_version bigint;
    head_xid     xid8;
BEGIN
    NEW.transaction_id := current_xid;
    IF NEW.aggregate_version = 1 THEN
        INSERT INTO aggregate_heads AS h
               (bounded_context, aggregate_type, aggregate_id, aggregate_version, transaction_id)
        VALUES (NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id, 1, current_xid)
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

    SELECT h.aggregate_version, h.transaction_id INTO head_version, head_xid
      FROM aggregate_heads h
     WHERE h.bounded_context = NEW.bounded_context
       AND h.aggregate_type = NEW.aggregate_type
       AND h.aggregate_id = NEW.aggregate_id
       FOR UPDATE;
    IF head_version IS DISTINCT FROM NEW.aggregate_version - 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ001',
            MESSAGE = format('version conflict: %s/%s/%s is at version %s, cannot append version %s',
                             NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id,
                             coalesce(head_version, 0), NEW.aggregate_version),
            HINT = 'Reload the aggregate and retry with its current version.';
    END IF;
    IF head_xid > current_xid THEN
        RAISE EXCEPTION USING
            ERRCODE = '40001',
            MESSAGE = format('could not serialize append to %s/%s/%s: a younger transaction appended version %s first',
                             NEW.bounded_context, NEW.aggregate_type, NEW.aggregate_id, head_version),
            HINT = 'Retry the transaction.';
    END IF;
    UPDATE aggregate_heads h
       SET aggregate_version = NEW.aggregate_version, transaction_id = current_xid, updated_at = now()
     WHERE h.bounded_context = NEW.bounded_context
       AND h.aggregate_type = NEW.aggregate_type
       AND h.aggregate_id = NEW.aggregate_id;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE TRIGGER events_before_insert
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION projectiond_events_before_insert();

-- Wakes idle runners; delivered when the appending transaction commits.
CREATE OR REPLACE FUNCTION projectiond_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('projectiond_events', '');
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE TRIGGER events_after_insert_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION projectiond_events_notify();

-- Appends events to one aggregate, checking the version the caller expects.
--
--   p_expected_version: NULL accepts any current version; 0 means the aggregate
--   must not exist yet; n means it must be at version n. A mismatch raises
--   SQLSTATE PJ001.
--   p_events: a JSON array of objects with "event_type" and "payload" and,
--   optionally, "event_id", "event_version", "metadata", "trace_id",
--   "correlation_id", "causation_id".
--
-- Returns the global position and aggregate version of each appended event.
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
    next_version    bigint;
    item            jsonb;
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
    current_version := coalesce(current_version, 0);
    IF p_expected_version IS NOT NULL AND p_expected_version <> current_version THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PJ001',
            MESSAGE = format('version conflict: %s/%s/%s is at version %s, expected %s',
                             p_bounded_context, p_aggregate_type, p_aggregate_id,
                             current_version, p_expected_version),
            HINT = 'Reload the aggregate and retry with its current version.';
    END IF;

    next_version := current_version;
    FOR item IN SELECT value FROM jsonb_array_elements(p_events) LOOP
        next_version := next_version + 1;
        RETURN QUERY
        INSERT INTO events AS e (bounded_context, aggregate_type, aggregate_id, aggregate_version,
                                 event_id, event_type, event_version, payload, metadata,
                                 trace_id, correlation_id, causation_id)
        VALUES (p_bounded_context, p_aggregate_type, p_aggregate_id, next_version,
                coalesce((item->>'event_id')::uuid, gen_random_uuid()),
                item->>'event_type',
                coalesce((item->>'event_version')::integer, 1),
                item->'payload',
                coalesce(item->'metadata', '{}'::jsonb),
                item->>'trace_id', item->>'correlation_id', item->>'causation_id')
        RETURNING e.global_position, e.aggregate_version;
    END LOOP;
END
$fn$;
