-- 0008: a checkpoint's move looks up the last event of a transaction with one
-- index descent, not by reading all of that transaction's events it passes.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent.
--
-- A filtered projection's move asks for the highest position among the events
-- it passed (0003, 0006). Within one transaction, positions are in the order of
-- events_read_order (store_epoch, transaction_id, global_position), so the
-- highest one up to the new cursor is the last index entry before it: read
-- backwards, one entry, instead of max() over every entry the batch passed
-- (about 1000 entries, 0.3 ms, of every 1000-event batch of a catch-up through
-- a large appending transaction). Only where the new cursor bounds the lookup:
-- with the epoch and transaction fixed, the planner may take the order from the
-- primary key instead, walking down from the bound, which is then at most the
-- batch's own positions. The rest of the old cursor's transaction has no such
-- bound (a walk from the end of the store), and the transactions wholly in
-- between have no order by position: both keep 0003's max(global_position + 0).
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
        SELECT e.global_position INTO result
          FROM events e
         WHERE e.store_epoch = p_new_epoch AND e.transaction_id = p_new_xid
           AND e.global_position > p_old_position AND e.global_position <= p_new_position
         ORDER BY e.store_epoch DESC, e.transaction_id DESC, e.global_position DESC
         LIMIT 1;
    ELSIF p_old_epoch = p_new_epoch THEN
        SELECT greatest(
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_old_epoch AND e.transaction_id = p_old_xid
                       AND e.global_position > p_old_position),
                   (SELECT max(e.global_position + 0) FROM events e
                     WHERE e.store_epoch = p_old_epoch
                       AND e.transaction_id > p_old_xid AND e.transaction_id < p_new_xid),
                   (SELECT e.global_position FROM events e
                     WHERE e.store_epoch = p_new_epoch AND e.transaction_id = p_new_xid
                       AND e.global_position <= p_new_position
                     ORDER BY e.store_epoch DESC, e.transaction_id DESC, e.global_position DESC
                     LIMIT 1))
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
                   (SELECT e.global_position FROM events e
                     WHERE e.store_epoch = p_new_epoch AND e.transaction_id = p_new_xid
                       AND e.global_position <= p_new_position
                     ORDER BY e.store_epoch DESC, e.transaction_id DESC, e.global_position DESC
                     LIMIT 1))
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
