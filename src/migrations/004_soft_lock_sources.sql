-- Schema 3 -> 4: the soft lock counts per scope and source, with an
-- hourly budget per scope and the sources each account is trusted from
-- (issue 8). schema.sql holds the same tables.
--
-- The old per-account counts cannot be split by source, so they are
-- dropped: an upgrade forgets the soft-lock counts in flight (a day's
-- failures at most), which costs less than locking every source with them.
DROP TABLE lockouts;

CREATE TABLE lockouts (
    scope        TEXT NOT NULL,
    source       TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, source)
);

CREATE TABLE lock_failures (
    scope TEXT NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX lock_failures_scope ON lock_failures (scope, at);

CREATE TABLE trusted_sources (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source    TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (user_id, source)
);
