-- Sentinel store schema, version 8: the decisions in force are counted from an index alone. The
-- overview counts the applied actions not yet expired (`state = 'applied' AND expires_at > now`) and
-- the distinct subjects under them on every request; with an index on `state` alone SQLite read every
-- applied action's row (bodies and all) to check its expiry, ~10 ms per count at 10,000 actions and
-- growing with the history. `(state, expires_at, subject)` answers both counts from a range of the
-- index. The single-column index on `state` is a prefix of it and is dropped; a listing filtered by
-- state uses the new one.

DROP INDEX IF EXISTS actions_state;
CREATE INDEX actions_state_expires ON actions (state, expires_at, subject);
