-- Projection builds: which build readers see (current) and which is under
-- way (target; equal to current unless a rebuild is running).
CREATE TABLE IF NOT EXISTS {{schema}}.projection_registry (
    name               text        PRIMARY KEY,
    current_version    int         NOT NULL DEFAULT 0,
    current_generation int         NOT NULL DEFAULT 0,
    target_version     int         NOT NULL DEFAULT 0,
    target_generation  int         NOT NULL DEFAULT 0,
    switched_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- One checkpoint per build: the position of the last applied event,
-- written in the transaction of the read model.
CREATE TABLE IF NOT EXISTS {{schema}}.projection_checkpoints (
    name       text        NOT NULL,
    version    int         NOT NULL,
    generation int         NOT NULL,
    tx_id      bigint      NOT NULL DEFAULT 0,
    seq        bigint      NOT NULL DEFAULT 0,
    applied    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version, generation)
);

-- Events a projection failed to apply after its attempts.
CREATE TABLE IF NOT EXISTS {{schema}}.projection_dead_letters (
    projection     text        NOT NULL,
    event_id       uuid        NOT NULL,
    version        int         NOT NULL,
    generation     int         NOT NULL,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL,
    tx_id          bigint      NOT NULL,
    seq            bigint      NOT NULL,
    type           text        NOT NULL,
    error          text        NOT NULL,
    attempts       int         NOT NULL,
    failed_at      timestamptz NOT NULL,
    PRIMARY KEY (projection, event_id)
);
