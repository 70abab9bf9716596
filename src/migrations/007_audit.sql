-- Schema 6 -> 7: the audit trail of the admin API and the CLI (issue 10).
-- schema.sql holds the same table.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('cli', 'user', 'api_key')),
    actor_id    TEXT NOT NULL,
    source      TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT,
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor_id, at);
CREATE INDEX audit_object ON audit (object_type, object_id, at);
