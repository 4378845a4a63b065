-- Sentinel store schema, version 5: API keys that expire, and when a key was revoked.
-- `expires` and `revoked_at` are milliseconds since the epoch; NULL `expires` = never. `revoked` (0/1) stays
-- the flag older code reads; `revoked_at` says when. Keys are listed by id (ULIDs: creation order).

ALTER TABLE api_keys ADD COLUMN expires INTEGER;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
