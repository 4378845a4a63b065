-- Sentinel store schema, version 3: the `audit` table becomes the index of the audit log.
-- `log_seq` is the record's sequence number in the append-only audit log (NULL for a record the log
-- did not hold, such as every record stored before this version); `content_hash` is the SHA-256 (64
-- lowercase hex digits) of what the record is about: the stored JSON body of the alert, investigation,
-- plan or action it notes, or the bytes of the configuration file loaded.

ALTER TABLE audit ADD COLUMN log_seq INTEGER;
ALTER TABLE audit ADD COLUMN content_hash TEXT;
CREATE UNIQUE INDEX audit_log_seq ON audit (log_seq) WHERE log_seq IS NOT NULL;
