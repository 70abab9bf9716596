-- Schema 11 -> 12: browser sessions of the sign-in pages (issue 13).
-- schema.sql holds the same.
-- A signed-in browser (the sign-in pages, src/web/session.rs). The cookie
-- carries a 256-bit random id; only its SHA-256 (hex) is stored, so a
-- reader of the database cannot act as the browser. A session ends at
-- sign-out, when the user is disabled, deleted or their password changes
-- (with their token families), after idle_secs without a request, and at
-- expires_at whatever happens.
CREATE TABLE web_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr          TEXT NOT NULL DEFAULT '[]',
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    idle_secs    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
