-- 0003: a checkpoint's move costs its batch, not the store behind it; an
-- append costs less.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent.

-- The highest position among the events in (old, new] of reading order.
--
-- A btree scan stops at a row comparison's upper bound only when its first
-- column passes it (PostgreSQL 15 marks only a row comparison's first column
-- as required), so `(store_epoch, transaction_id, global_position) <= (...)`
-- let 0002's lookup scan the index to the end of the store epoch: every batch
-- of a filtered projection read all the events after it, and a catch-up took
-- time quadratic in the store. Within one epoch the range is cut into pieces
-- with plain column bounds, which end the scan exactly where the range ends.
-- "+ 0" keeps the planner from answering max() by walking the primary key
-- backwards (through every newer event).
CREATE OR REPLACE FUNCTION projectiond_passed_max(
    p_old_epoch    bigint,
    p_old_xid      xid8,
    p_old_position bigint,
    p_new_epoch    bigint,
    p_new_xid      xid8,
    p_new_position bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    result bigint;
BEGIN
    IF p_old_epoch = p_new_epoch AND p_old_xid = p_new_xid THEN
        SELECT max(e.global_position + 0) INTO result
          FROM events e
         WHERE e.store_epoch = p_new_epoch AND e.transaction_id = p_new_xid
           AND e.global_position > p_old_position AND e.global_position <= p_new_position;
    ELSIF p_old_epoch = p_new_epoch THEN
        SELECT greatest(
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_old_epoch AND e.transaction_id = p_old_xid
                       AND e.global_position > p_old_position),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_old_epoch
                       AND e.transaction_id > p_old_xid AND e.transaction_id < p_new_xid),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_new_epoch AND e.transaction_id = p_new_xid
                       AND e.global_position <= p_new_position))
          INTO result;
    ELSE
        -- Across epochs (once per store move): the plain range.
        SELECT max(e.global_position + 0) INTO result
          FROM events e
         WHERE (e.store_epoch, e.transaction_id, e.global_position) > (p_old_epoch, p_old_xid, p_old_position)
           AND (e.store_epoch, e.transaction_id, e.global_position) <= (p_new_epoch, p_new_xid, p_new_position);
    END IF;
    RETURN result;
END
$fn$;

-- As in 0002, with the lookup above.
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
    -- window) look it up.
    IF passed_max IS NULL THEN
        passed_max := projectiond_passed_max(p_old_epoch, p_old_xid, p_old_position,
                                             p_new_epoch, p_new_xid, p_new_position);
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

-- Whether rows copied from another cluster are in the store: checked once per
-- appending transaction. 0002 wrote it in SQL, which PostgreSQL plans again at
-- every call of a function it cannot inline (a pinned search_path prevents
-- that): about 80 µs of every one-event transaction. PL/pgSQL keeps the plans
-- for the session.
CREATE OR REPLACE FUNCTION projectiond_foreign_rows(p_epoch bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    next_xid xid8 := pg_snapshot_xmax(pg_current_snapshot());
BEGIN
    -- A scalar subquery, not EXISTS: the planner would drop the ORDER BY ...
    -- LIMIT 1 of an EXISTS and might scan the whole table at every append.
    RETURN (SELECT 1 FROM events e WHERE (e.store_epoch, e.transaction_id) >= (p_epoch, next_xid)
             ORDER BY e.store_epoch, e.transaction_id LIMIT 1) IS NOT NULL
        OR EXISTS (SELECT 1 FROM projection_checkpoints c
                    WHERE (c.cursor_store_epoch, c.cursor_transaction_id) >= (p_epoch, next_xid));
END
$fn$;

-- Names resolve in the schema the functions were installed in, whatever the
-- caller's search_path (CREATE OR REPLACE dropped 0002's setting).
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND p.proname IN ('projectiond_passed_max', 'projectiond_advance_checkpoint', 'projectiond_foreign_rows')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', fn, current_schema());
    END LOOP;
END
$$;

-- A batch handler's events, by position. 0002 pinned this function's
-- search_path, which kept PostgreSQL from inlining it into the handler's
-- statement: every run went through a function call and a tuplestore. The
-- events table is named with its schema instead (the projection's schema
-- comes first in a handler's search_path and may hold an `events` of its own),
-- so the function inlines to an index scan of the run's positions.
DO $$
BEGIN
    EXECUTE format($sql$
        CREATE OR REPLACE FUNCTION projectiond_run_events(p_positions bigint[]) RETURNS SETOF %1$I.events
        LANGUAGE sql STABLE AS $fn$
            SELECT e.* FROM %1$I.events e WHERE e.global_position = ANY (p_positions)
        $fn$
    $sql$, current_schema());
END
$$;
