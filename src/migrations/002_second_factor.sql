-- Schema 1 -> 2: the second factor (TOTP, recovery codes), one-time
-- codes and the mail outbox; one index for a family's refresh tokens.
-- schema.sql holds the same tables.

ALTER TABLE token_families ADD COLUMN mfa_pending INTEGER NOT NULL DEFAULT 0;

-- One index for a family's tokens, live ones first, instead of two.
DROP INDEX IF EXISTS refresh_tokens_family;
DROP INDEX IF EXISTS refresh_tokens_live;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id, used_at);

-- A user's TOTP factor (RFC 6238). Pending (confirmed_at NULL) until the
-- first good code, and only for 10 minutes; a pending factor never
-- protects sign-in. The secret is sealed under the master key. last_step
-- is the last time step accepted: a step is never accepted twice.
CREATE TABLE totp_factors (
    user_id          TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret    BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    confirmed_at     INTEGER,
    last_step        INTEGER,
    -- the recovery codes of a pending enrollment (a JSON list of their
    -- HMACs), moved to recovery_codes when it is confirmed
    pending_recovery TEXT
);

-- Recovery codes: HMAC-SHA256 under a key derived from the master key
-- (the codes are short), single use. reusable_until: a code used at the
-- mfa dialect's /recover stays good for /disable until then.
CREATE TABLE recovery_codes (
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    used_at        INTEGER,
    reusable_until INTEGER,
    PRIMARY KEY (user_id, hash)
);

-- Single-use codes and tokens of every other kind (mfa_login, mfa_reset_main,
-- mfa_reset_recovery, and later magic links, emailed codes, resets,
-- sign-ups). Long tokens as SHA-256, short codes as HMAC; attempts counts
-- wrong guesses against codes that have a limit.
CREATE TABLE one_time_codes (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    used_at    INTEGER,
    data       TEXT
);
CREATE INDEX one_time_codes_subject ON one_time_codes (kind, subject);
CREATE INDEX one_time_codes_expiry ON one_time_codes (expires_at);

-- Outgoing mail. A message is written here in the transaction that makes
-- it, then delivered by the mail worker; the body is erased once
-- delivered (its codes and links must not outlive delivery).
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
