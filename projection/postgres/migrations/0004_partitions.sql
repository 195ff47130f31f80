-- Partitioned projections (ADR 0019).
--
-- chronicle_partition is the partition of a stream: FNV-1a (32 bits) of the
-- stream ID's UTF-8 bytes, modulo the number of partitions. projection.PartitionOf
-- computes the same in Go.
CREATE OR REPLACE FUNCTION {{schema}}.chronicle_partition(stream_id text, partitions int) RETURNS int
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    b bytea := convert_to(stream_id, 'UTF8');
    h bigint := 2166136261;
BEGIN
    FOR i IN 0 .. length(b) - 1 LOOP
        h := ((h # get_byte(b, i)) * 16777619) & 4294967295;
    END LOOP;
    RETURN (h % partitions)::int;
END
$$;

-- One checkpoint per partition of a partitioned build: the position up to
-- which the partition has applied every event of its streams, written in
-- the transaction of the read model, fenced by the partition's lease.
CREATE TABLE IF NOT EXISTS {{schema}}.projection_partition_checkpoints (
    name       text        NOT NULL,
    version    int         NOT NULL,
    generation int         NOT NULL,
    partition  int         NOT NULL,
    tx_id      bigint      NOT NULL DEFAULT 0,
    seq        bigint      NOT NULL DEFAULT 0,
    applied    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version, generation, partition)
);

-- The lease of each partition: its owner (empty when released), the fencing
-- epoch (bumped at each acquisition) and the expiry, on the database's clock.
CREATE TABLE IF NOT EXISTS {{schema}}.projection_leases (
    name        text        NOT NULL,
    version     int         NOT NULL,
    generation  int         NOT NULL,
    partition   int         NOT NULL,
    owner       text        NOT NULL DEFAULT '',
    epoch       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL DEFAULT 'epoch',
    acquired_at timestamptz,
    PRIMARY KEY (name, version, generation, partition)
);

-- The runners taking part in a partitioned build, so that each can tell how
-- many are alive and how many partitions are its share.
CREATE TABLE IF NOT EXISTS {{schema}}.projection_members (
    name       text        NOT NULL,
    version    int         NOT NULL,
    generation int         NOT NULL,
    owner      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (name, version, generation, owner)
);
