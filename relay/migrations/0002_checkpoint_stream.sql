-- The stream each relay publishes to and the identity of the event store
-- it publishes from, recorded with its checkpoint, so that tools show the
-- relay's real stream and a checkpoint is never read for another store.
ALTER TABLE {{schema}}.relay_checkpoints
    ADD COLUMN IF NOT EXISTS stream   text,
    ADD COLUMN IF NOT EXISTS store_id uuid;
