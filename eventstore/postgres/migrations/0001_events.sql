-- Chronicle event store: the streams and events tables and the append
-- function. {{schema}} is replaced by the quoted schema name.

CREATE TABLE {{schema}}.streams (
    stream_id  text        NOT NULL PRIMARY KEY,
    category   text        NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    -- the transaction of the stream's last append: a later append must
    -- come from a newer transaction (see append_events).
    last_transaction_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX streams_category_idx ON {{schema}}.streams (category, stream_id);

-- position is taken from a sequence in one order and committed in another;
-- transaction_id (pg_current_xact_id() of the writer) is what makes global
-- reads gap-safe: readers only read rows whose transaction is older than
-- every transaction still running, ordered by (transaction_id, position).
CREATE TABLE {{schema}}.events (
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint      NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL,
    type           text        NOT NULL,
    schema_version int         NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_transaction_position_idx ON {{schema}}.events (transaction_id, position);

-- append_events appends events to one stream in the caller's transaction.
-- p_expected: -1 any, -2 no stream, -3 stream exists, >= 0 exact version.
-- It returns one row:
--   status 'ok':       version = the stream's new version, tx/pos = the
--                      transaction id and position of the last event.
--   status 'conflict': version = the stream's actual version (0 when it does
--                      not exist); nothing was written. known tells whether
--                      the first event ID is already stored (a retry).
--   status 'stale':    the caller's transaction took its id before the
--                      stream's last append committed; appending would put
--                      the stream's events out of order in the global log.
-- A non-empty p_channel is notified (pg_notify) on success.
--
-- Appends to one stream are serialised by a transaction-scoped advisory
-- lock taken before the transaction writes anything, so before it is given
-- a transaction id: the holder of the lock always gets a larger id than
-- every earlier append to the stream, and ordering the global log by
-- (transaction_id, position) keeps every stream's versions in order. A row
-- lock would not: transactions waiting on it already have ids and are
-- woken in any order.
CREATE FUNCTION {{schema}}.append_events(
    p_stream          text,
    p_expected        bigint,
    p_ids             uuid[],
    p_types           text[],
    p_schema_versions int[],
    p_data            text[],
    p_metadata        text[],
    p_channel         text
) RETURNS TABLE (status text, version bigint, tx bigint, pos bigint, known boolean)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_current bigint;
    v_last_tx bigint;
    v_n       int := cardinality(p_ids);
    v_tx      bigint;
    v_pos     bigint;
BEGIN
    -- The key mixes in the schema so stores in other schemas do not wait.
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.' || p_stream, 7157402093));

    SELECT s.version, s.last_transaction_id INTO v_current, v_last_tx
      FROM {{schema}}.streams s
     WHERE s.stream_id = p_stream;
    IF NOT FOUND THEN
        v_current := 0;
    END IF;

    IF (p_expected = -2 AND v_current > 0)
    OR (p_expected = -3 AND v_current = 0)
    OR (p_expected >= 0 AND p_expected <> v_current) THEN
        RETURN QUERY SELECT 'conflict'::text, v_current, NULL::bigint, NULL::bigint,
            EXISTS (SELECT 1 FROM {{schema}}.events e WHERE e.event_id = p_ids[1]);
        RETURN;
    END IF;

    v_tx := pg_current_xact_id()::text::bigint;
    IF v_tx < v_last_tx THEN
        RETURN QUERY SELECT 'stale'::text, v_current, v_tx, v_last_tx, false;
        RETURN;
    END IF;

    WITH ins AS (
        INSERT INTO {{schema}}.events AS e
            (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
        SELECT v_tx, u.id, p_stream, v_current + u.ord, u.typ, u.sv, u.dat::jsonb, u.md::jsonb
          FROM unnest(p_ids, p_types, p_schema_versions, p_data, p_metadata)
               WITH ORDINALITY AS u(id, typ, sv, dat, md, ord)
         ORDER BY u.ord
        RETURNING e.position
    )
    SELECT max(ins.position) INTO v_pos FROM ins;

    IF v_current = 0 THEN
        INSERT INTO {{schema}}.streams (stream_id, category, version, last_transaction_id)
        VALUES (p_stream, split_part(p_stream, '-', 1), v_n, v_tx);
    ELSE
        UPDATE {{schema}}.streams s
           SET version = v_current + v_n, last_transaction_id = v_tx, updated_at = now()
         WHERE s.stream_id = p_stream;
    END IF;

    IF p_channel <> '' THEN
        PERFORM pg_notify(p_channel, '');
    END IF;

    RETURN QUERY SELECT 'ok'::text, v_current + v_n, v_tx, v_pos, false;
END
$fn$;
