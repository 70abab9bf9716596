-- Schema 9 -> 10: social sign-in. identities links a provider's subject
-- to a user; oauth_states holds a started sign-in until its callback
-- (single use, 10 minutes); auth_codes.first_method keeps how an owed
-- code's first step was made (a provider's name, password, email_otp),
-- for the activity row written when the second factor settles it.
-- schema.sql holds the same.
ALTER TABLE auth_codes ADD COLUMN first_method TEXT;
CREATE TABLE identities (
    provider     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email        TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    upstream     BLOB,
    PRIMARY KEY (provider, subject),
    UNIQUE (user_id, provider)
);
CREATE TABLE oauth_states (
    state_hash     TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_url   TEXT NOT NULL,
    app_state      TEXT,
    code_challenge TEXT,
    binding_hash   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
