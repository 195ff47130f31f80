-- Filtered reads of the global log (ReadAll and Follow with Categories)
-- cost in proportion to what they return, not to the log: one ordered
-- index range per category, in (transaction_id, position) order. A
-- category is the stream ID up to its first '-', as split_part computes it
-- in the read (store.go, readAllCat). On a large existing log this builds
-- the index while holding off appends; see docs/operations.md.
CREATE INDEX IF NOT EXISTS events_category_idx
    ON {{schema}}.events (split_part(stream_id, '-', 1), transaction_id, position);
