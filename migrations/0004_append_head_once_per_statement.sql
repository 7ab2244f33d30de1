-- 0004: an INSERT of several events to one aggregate writes its head once.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent.
--
-- Up to 0003 the row trigger locked, checked and updated the aggregate's head
-- for every event: in a 10-event append, ten locks and ten new versions of
-- the same heads row, about 17 µs per event (README, "Performance"). Now the
-- trigger remembers, in a session setting keyed by the transaction id, the
-- last head it wrote or passed over: when the next event continues that
-- aggregate at the next version, the head is already locked by this
-- transaction and cannot have moved, so the event is stamped without touching
-- it. The version it reached is written when the statement ends (the
-- statement trigger below) or before the trigger turns to another aggregate.
--
-- The setting projectiond.append_head is '<state><xid>:<version>:<key>': the
-- head this transaction holds and its version. <state> is 'w' when that
-- version is written in aggregate_heads, 'p' while it is pending. <key> is
-- '<length of bounded_context>,<length of aggregate_type>,' followed by the
-- three names, so that no two aggregates share one. The setting is
-- session-level, so that a function's SET clause does not take it back, and
-- is undone with the (sub)transaction that set it, as the head's row is.

-- Writes the head version the row trigger passed over, if any.
CREATE OR REPLACE FUNCTION projectiond_write_append_head() RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    held      text := current_setting('projectiond.append_head', true);
    xid_text  text;
    version   text;
    key       text;
    bc_length integer;
    at_length integer;
BEGIN
    IF held IS NULL OR held NOT LIKE 'p%' THEN
        RETURN;
    END IF;
    held := substr(held, 2);
    PERFORM set_config('projectiond.append_head', 'w' || held, false);
    xid_text := split_part(held, ':', 1);
    IF xid_text <> pg_current_xact_id()::text THEN
        RETURN;
    END IF;
    version := split_part(held, ':', 2);
    key := substr(held, length(xid_text) + length(version) + 3);
    bc_length := split_part(key, ',', 1)::integer;
    at_length := split_part(key, ',', 2)::integer;
    key := substr(key, length(split_part(key, ',', 1)) + length(split_part(key, ',', 2)) + 3);
    UPDATE aggregate_heads h
       SET aggregate_version = version::bigint, updated_at = now()
     WHERE h.bounded_context = substr(key, 1, bc_length)
       AND h.aggregate_type = substr(key, bc_length + 1, at_length)
       AND h.aggregate_id = substr(key, bc_length + at_length + 1);
END
$fn$;

-- The epoch a transaction's events are stamped with, checked at its first
-- append and remembered in projectiond.append_epoch ('<xid>:<epoch>'). The
-- row trigger below reads the remembered value itself and calls this only
-- when the transaction has none yet, so the check for it lives there alone.
CREATE OR REPLACE FUNCTION projectiond_append_epoch() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    current bigint;
BEGIN
    SELECT s.current_epoch INTO current FROM projectiond_store s;
    IF current IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'PJ006',
            MESSAGE = 'projectiond_store is empty, so new events cannot be ordered',
            HINT = 'Run `projectiond migrate`.';
    END IF;
    IF projectiond_foreign_rows(current) THEN
        current := projectiond_begin_epoch(current, 'rows copied from another cluster were found by an append');
    END IF;
    PERFORM set_config('projectiond.append_epoch', pg_current_xact_id()::text || ':' || current, false);
    RETURN current;
END
$fn$;

-- As in 0002 (the rules, SQLSTATEs PJ001 and 40001 and copied rows are
-- unchanged), plus the continuation described above, and the epoch's
-- per-transaction setting read here rather than through a function call.
CREATE OR REPLACE FUNCTION projectiond_events_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    current_xid   xid8;
    mine          text;
    checked       text;
    held          text;
    key           text;
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
    mine := current_xid::text || ':';
    checked := current_setting('projectiond.append_epoch', true);
    IF checked LIKE mine || '%' THEN
        current_epoch := substr(checked, length(mine) + 1)::bigint;
    ELSE
        current_epoch := projectiond_append_epoch();
    END IF;
    NEW.transaction_id := current_xid;
    NEW.store_epoch := current_epoch;

    key := length(NEW.bounded_context)::text || ',' || length(NEW.aggregate_type)::text || ','
           || NEW.bounded_context || NEW.aggregate_type || NEW.aggregate_id;
    held := current_setting('projectiond.append_head', true);
    IF substr(held, 2) = mine || (NEW.aggregate_version - 1)::text || ':' || key THEN
        -- This transaction holds the head, at the version before this event.
        PERFORM set_config('projectiond.append_head', 'p' || mine || NEW.aggregate_version::text || ':' || key, false);
        RETURN NEW;
    END IF;
    IF held LIKE 'p%' THEN
        PERFORM projectiond_write_append_head();
    END IF;

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
        PERFORM set_config('projectiond.append_head', 'w' || mine || '1:' || key, false);
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
    PERFORM set_config('projectiond.append_head', 'w' || mine || NEW.aggregate_version::text || ':' || key, false);
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION projectiond_events_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM projectiond_write_append_head();
    RETURN NULL;
END
$fn$;

-- Fires only when a head is pending, so an INSERT of one event per aggregate
-- pays nothing for it.
CREATE OR REPLACE TRIGGER events_after_insert
    AFTER INSERT ON events
    FOR EACH STATEMENT
    WHEN (current_setting('projectiond.append_head', true) LIKE 'p%')
    EXECUTE FUNCTION projectiond_events_after_insert();

DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND p.proname IN ('projectiond_append_epoch', 'projectiond_write_append_head',
                             'projectiond_events_before_insert', 'projectiond_events_after_insert')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', fn, current_schema());
    END LOOP;
END
$$;
