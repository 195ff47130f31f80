-- Runners' heartbeats: one row per projection build and runner (owner),
-- refreshed every few seconds while the runner runs the build, so that
-- other processes can tell whether a projection runs anywhere.
CREATE TABLE IF NOT EXISTS {{schema}}.projection_heartbeats (
    name         text        NOT NULL,
    version      int         NOT NULL,
    generation   int         NOT NULL,
    owner        text        NOT NULL,
    state        text        NOT NULL,
    interval_ms  bigint      NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version, generation, owner)
);
