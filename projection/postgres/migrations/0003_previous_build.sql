-- The build that was current before the current one, so that a runner
-- going live on the current build can release what the old one held (its
-- JetStream consumer).
ALTER TABLE {{schema}}.projection_registry
    ADD COLUMN IF NOT EXISTS previous_version    int NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS previous_generation int NOT NULL DEFAULT 0;
