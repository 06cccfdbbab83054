-- Outbox rows with a dedupe key stay after they are pushed, marked `relayed_at`, until
-- a worker finishes their job (or gives it up) and deletes them. Redis holds the queue
-- and may lose it (a restart without persistence, a failover): the scheduler's sweep
-- pushes rows again when it finds Redis emptied, or when a row's job has not finished
-- long after its push; the dedupe key makes a push of a job still queued a no-op.
ALTER TABLE outbox ADD COLUMN relayed_at TIMESTAMPTZ;
CREATE INDEX outbox_unrelayed ON outbox (id) WHERE relayed_at IS NULL;
CREATE INDEX outbox_relayed_key ON outbox (dedupe_key) WHERE relayed_at IS NOT NULL;
CREATE INDEX outbox_relayed_at ON outbox (relayed_at) WHERE relayed_at IS NOT NULL;
