-- 0006: a checkpoint's first move costs its batch too.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent.
--
-- 0003 bounded the lookup of the highest position a move passes within one
-- store epoch, but kept the plain row-comparison range across epochs, which
-- PostgreSQL does not end at its upper bound (0003 says why). Every
-- partition's first move starts in epoch 0 (a new checkpoint's cursor), so
-- the first batch of every new or reset projection scanned the whole store:
-- 316 ms on 5,000,000 events, most of a selective projection's catch-up of
-- the oldest 200,000 (bench/large_store). Across epochs the range is now cut
-- into pieces too, each ended by plain column bounds.
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
        -- The rest of the old epoch, the epochs in between, the new epoch's start.
        SELECT greatest(
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_old_epoch AND e.transaction_id = p_old_xid
                       AND e.global_position > p_old_position),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_old_epoch AND e.transaction_id > p_old_xid),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch > p_old_epoch AND e.store_epoch < p_new_epoch),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_new_epoch AND e.transaction_id < p_new_xid),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_new_epoch AND e.transaction_id = p_new_xid
                       AND e.global_position <= p_new_position))
          INTO result;
    END IF;
    RETURN result;
END
$fn$;

DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = 'projectiond_passed_max'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I', fn, current_schema());
    END LOOP;
END
$$;
