-- 0005: after a logical-replication switch-over, projections wait for
-- `projectiond migrate`, not only for the subscription to be disabled.
--
-- Applied by `projectiond migrate` inside one transaction; every statement is
-- idempotent.
--
-- Up to 0004 a daemon on the subscriber resumed as soon as the subscription
-- was disabled: before the operator had set the sequences past the
-- replicated values (the README's next step), so a read model's identity
-- column could hand out values the replicated rows already held. Now a
-- disabled subscription that writes `events` still holds projections back
-- until `projectiond migrate` records it here, which the switch-over's last
-- step runs anyway. (A dropped subscription leaves no trace to wait on: the
-- README says to keep projectiond stopped there until that step.)
ALTER TABLE projectiond_store
    ADD COLUMN IF NOT EXISTS switched_subscriptions oid[] NOT NULL DEFAULT '{}';
