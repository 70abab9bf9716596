-- Schema 14 -> 15 (issue 13): a social sign-in started at the sign-in page
-- has no client of ours. Its oauth_states row has client_id and
-- redirect_url NULL and return_to set (the path on this server the browser
-- goes back to, signed in); an app's row is as before. SQLite cannot drop
-- a NOT NULL, so the table is rebuilt, its rows (sign-ins in flight, ten
-- minutes at most) kept. schema.sql holds the same.
CREATE TABLE oauth_states_new (
    state_hash     TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    client_id      TEXT REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_url   TEXT,
    app_state      TEXT,
    code_challenge TEXT,
    binding_hash   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    return_to      TEXT,
    CHECK ((client_id IS NOT NULL AND redirect_url IS NOT NULL AND return_to IS NULL)
        OR (client_id IS NULL AND redirect_url IS NULL AND return_to IS NOT NULL))
);
INSERT INTO oauth_states_new (state_hash, provider, client_id, redirect_url, app_state,
                              code_challenge, binding_hash, created_at, expires_at)
    SELECT state_hash, provider, client_id, redirect_url, app_state,
           code_challenge, binding_hash, created_at, expires_at
      FROM oauth_states;
DROP TABLE oauth_states;
ALTER TABLE oauth_states_new RENAME TO oauth_states;
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
