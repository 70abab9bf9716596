-- Schema 2 -> 3: mail bodies are sealed (issue 8: MFA reset codes were
-- readable by anyone holding the database or a backup). schema.sql holds
-- the same table.
--
-- SQL cannot seal (the master key is not here), so plain bodies are erased
-- in this same transaction, never left behind under the new version: no
-- hallpass before this one delivered mail, so no queued message was going
-- to reach anyone. Those rows keep their metadata, marked failed with the
-- reason. The MFA reset codes they carried are deleted with them: nobody
-- can have received them, and copies of the old bodies that linger in free
-- pages, the WAL or a backup are then worthless. The user can ask again at
-- once (the quarter-hour interval counts from the last code issued).

CREATE TABLE mail_outbox_v3 (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    sealed_body     BLOB,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);

INSERT INTO mail_outbox_v3 (id, kind, to_addr, subject, sealed_body, status, attempts,
                            next_attempt_at, last_error, created_at, sent_at)
SELECT id, kind, to_addr, subject, NULL,
       CASE WHEN status = 'queued' THEN 'failed' ELSE status END,
       attempts, next_attempt_at,
       CASE WHEN status = 'queued'
            THEN 'not sent: its plain body was erased when mail bodies became sealed'
            ELSE last_error END,
       created_at, sent_at
FROM mail_outbox;

DROP TABLE mail_outbox;
ALTER TABLE mail_outbox_v3 RENAME TO mail_outbox;
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

DELETE FROM one_time_codes
WHERE kind IN ('mfa_reset_main', 'mfa_reset_recovery') AND used_at IS NULL;
