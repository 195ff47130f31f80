-- The relay's checkpoints: per relay name, the position of the last record
-- JetStream confirmed.
CREATE TABLE IF NOT EXISTS {{schema}}.relay_checkpoints (
    name       text           PRIMARY KEY,
    tx_id      numeric(20, 0) NOT NULL,
    seq        numeric(20, 0) NOT NULL,
    published  bigint         NOT NULL DEFAULT 0,
    updated_at timestamptz    NOT NULL DEFAULT now()
);
