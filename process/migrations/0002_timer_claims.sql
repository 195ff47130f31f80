-- A timer is claimed for a lease by one autocommit statement (no
-- transaction ID held while it fires, ADR 0008); its TimerFired is then
-- appended with a deterministic ID (a second firing after a crash is
-- absorbed by the store) and the row deleted.
ALTER TABLE {{schema}}.process_timers ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
