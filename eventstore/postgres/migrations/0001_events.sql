-- Chronicle event store: the events table. {{schema}} is replaced by the
-- quoted schema name. The append statement lives in the Go package
-- (append.go), beside the reasoning that makes it exact.
--
-- There is no separate streams table: the unique index on
-- (stream_id, stream_version) is one. A stream's version is that of its
-- last event (one backward index probe), so an append writes one table, and
-- streams are listed by skipping through that index. Stream IDs compare
-- byte by byte (COLLATE "C"), like Go strings: cheaper comparisons, and a
-- category is a range of the index.

-- position is taken from a sequence in one order and committed in another;
-- transaction_id (pg_current_xact_id() of the writer) is what makes global
-- reads gap-safe: readers only read rows whose transaction is older than
-- every transaction still running, ordered by (transaction_id, position).
CREATE TABLE {{schema}}.events (
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint      NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    stream_id      text COLLATE "C" NOT NULL,
    stream_version bigint      NOT NULL,
    type           text        NOT NULL,
    schema_version int         NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_transaction_position_idx ON {{schema}}.events (transaction_id, position);
