-- One row per process instance: its type, ID, stream and status, kept in
-- the transaction of each trigger, for status and listing.
CREATE TABLE IF NOT EXISTS {{schema}}.process_instances (
    type        text        NOT NULL,
    process_id  text        NOT NULL,
    stream_id   text        NOT NULL,
    status      text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    version     bigint      NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    PRIMARY KEY (type, process_id)
);
CREATE INDEX IF NOT EXISTS process_instances_status ON {{schema}}.process_instances (type, status);

-- Durable timers: at most one per process and name; the poller claims due
-- ones with FOR UPDATE SKIP LOCKED and turns each into a TimerFired event.
CREATE TABLE IF NOT EXISTS {{schema}}.process_timers (
    type        text        NOT NULL,
    process_id  text        NOT NULL,
    name        text        NOT NULL,
    timer_id    uuid        NOT NULL,
    stream_id   text        NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (type, process_id, name)
);
CREATE INDEX IF NOT EXISTS process_timers_due ON {{schema}}.process_timers (due_at);

-- Commands decided by processes (an outbox): written in the trigger's
-- transaction, delivered at least once by the dispatcher.
CREATE TABLE IF NOT EXISTS {{schema}}.process_commands (
    id            uuid        PRIMARY KEY,
    seq           bigserial,
    type          text        NOT NULL,
    process_id    text        NOT NULL,
    stream_id     text        NOT NULL,
    name          text        NOT NULL,
    data          jsonb       NOT NULL,
    metadata      jsonb,
    compensation  boolean     NOT NULL DEFAULT false,
    status        text        NOT NULL DEFAULT 'pending',
    attempts      int         NOT NULL DEFAULT 0,
    last_error    text        NOT NULL DEFAULT '',
    due_at        timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz
);
CREATE INDEX IF NOT EXISTS process_commands_pending ON {{schema}}.process_commands (due_at) WHERE status = 'pending';
