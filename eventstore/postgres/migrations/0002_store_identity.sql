-- The event store's identity: a UUID created once, when the schema is
-- migrated, so that what a store publishes (the relay stamps it on every
-- message) can be told apart from what another store publishes. One row,
-- never changed.
CREATE TABLE {{schema}}.store_identity (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id   uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO {{schema}}.store_identity (store_id) VALUES (gen_random_uuid());
