-- Chronicle event store: the streams and events tables and the append
-- function. {{schema}} is replaced by the quoted schema name.

CREATE TABLE {{schema}}.streams (
    stream_id  text        NOT NULL PRIMARY KEY,
    category   text        NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
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
-- A non-empty p_channel is notified (pg_notify) on success.
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
    v_created boolean := false;
    v_n       int := cardinality(p_ids);
    v_tx      bigint;
    v_pos     bigint;
BEGIN
    LOOP
        SELECT s.version INTO v_current
          FROM {{schema}}.streams s
         WHERE s.stream_id = p_stream
           FOR UPDATE;
        EXIT WHEN FOUND;
        v_current := 0;
        IF p_expected = -3 OR p_expected > 0 THEN
            RETURN QUERY SELECT 'conflict'::text, 0::bigint, NULL::bigint, NULL::bigint,
                EXISTS (SELECT 1 FROM {{schema}}.events e WHERE e.event_id = p_ids[1]);
            RETURN;
        END IF;
        INSERT INTO {{schema}}.streams AS s (stream_id, category, version)
        VALUES (p_stream, split_part(p_stream, '-', 1), v_n)
        ON CONFLICT (stream_id) DO NOTHING;
        IF FOUND THEN
            v_created := true;
            EXIT;
        END IF;
        -- Another append created the stream meanwhile: lock its row.
    END LOOP;

    IF NOT v_created AND (
           (p_expected = -2)
        OR (p_expected >= 0 AND p_expected <> v_current)) THEN
        RETURN QUERY SELECT 'conflict'::text, v_current, NULL::bigint, NULL::bigint,
            EXISTS (SELECT 1 FROM {{schema}}.events e WHERE e.event_id = p_ids[1]);
        RETURN;
    END IF;

    v_tx := pg_current_xact_id()::text::bigint;
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

    IF NOT v_created THEN
        UPDATE {{schema}}.streams s
           SET version = v_current + v_n, updated_at = now()
         WHERE s.stream_id = p_stream;
    END IF;

    IF p_channel <> '' THEN
        PERFORM pg_notify(p_channel, '');
    END IF;

    RETURN QUERY SELECT 'ok'::text, v_current + v_n, v_tx, v_pos, false;
END
$fn$;
