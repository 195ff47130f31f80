CREATE TABLE IF NOT EXISTS {{schema}}.snapshots (
    stream_id  text        PRIMARY KEY,
    version    bigint      NOT NULL CHECK (version > 0),
    revision   int         NOT NULL,
    data       bytea       NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now()
);
