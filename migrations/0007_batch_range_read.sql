-- 0007: a batch handler's run of consecutive positions is read as a range.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent.
--
-- A run's `batch` is read by position (projectiond_run_events): one index
-- descent per event, 1.0–1.6 ms of a 1000-event run's statement. When the
-- run's positions are consecutive and ascending (a catch-up of events
-- appended in order, the usual case), the daemon binds the first and the last
-- instead, and this function reads them with one range scan (about 0.5 ms).
-- The range holds exactly the run: each of its positions was read, and
-- positions are unique. Named with the schema, not the search_path, as 0003
-- does for projectiond_run_events, so that it inlines into the statement.
DO $$
BEGIN
    EXECUTE format($sql$
        CREATE OR REPLACE FUNCTION projectiond_run_range(p_first bigint, p_last bigint) RETURNS SETOF %1$I.events
        LANGUAGE sql STABLE AS $fn$
            SELECT e.* FROM %1$I.events e WHERE e.global_position BETWEEN p_first AND p_last
        $fn$
    $sql$, current_schema());
END
$$;
