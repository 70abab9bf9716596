-- hallpass: the whole current schema. A new database is created from this
-- file and stamped with the latest user_version; older files are brought up
-- to date by the numbered migrations in src/db.rs. Times are unix seconds.
-- Secrets are never stored in the clear: tokens, codes and keys as SHA-256
-- (hex) of high-entropy values, passwords as PBKDF2 PHC strings, private
-- keys and mail bodies sealed with AES-256-GCM under the master key.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    callback_url TEXT,
    created_at   INTEGER NOT NULL
);

CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    email             TEXT UNIQUE COLLATE NOCASE,
    username          TEXT UNIQUE COLLATE NOCASE,
    phone             TEXT,
    name              TEXT,
    password_hash     TEXT,
    email_verified_at INTEGER,
    role              TEXT NOT NULL DEFAULT 'user',
    permissions       TEXT NOT NULL DEFAULT '[]',
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'disabled', 'locked')),
    default_tenant_id TEXT REFERENCES tenants (id) ON DELETE SET NULL,
    recovery_email    TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_login_at     INTEGER,
    deleted_at        INTEGER
);

-- A user's membership of a tenant: its role there, and (for the lagrello
-- API) the app's own identifier for the user.
CREATE TABLE user_tenants (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        TEXT NOT NULL DEFAULT 'user',
    external_id TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, tenant_id),
    UNIQUE (tenant_id, external_id)
);
CREATE INDEX user_tenants_tenant ON user_tenants (tenant_id);

-- OAuth-style clients. secret_hash is NULL for public clients. num is the
-- client's number, AuthUser's authClientId (SourceLoop's is an integer;
-- client_id stays what apps send): given from sequences 'clients' at
-- insert, never changed and never given again (not the rowid, which VACUUM
-- may renumber). Its DEFAULT exists only because ALTER TABLE needs one.
CREATE TABLE clients (
    client_id           TEXT PRIMARY KEY,
    secret_hash         TEXT,
    name                TEXT NOT NULL,
    redirect_urls       TEXT NOT NULL DEFAULT '[]',
    logout_redirect_url TEXT,
    access_ttl          INTEGER NOT NULL DEFAULT 900,
    refresh_ttl         INTEGER NOT NULL DEFAULT 2592000,
    auth_code_ttl       INTEGER NOT NULL DEFAULT 180,
    created_at          INTEGER NOT NULL,
    num                 INTEGER NOT NULL DEFAULT 0,
    -- The OpenID provider's settings (issue 13): post-logout redirect URIs
    -- (exact match), the scopes it may ask for, consent required (0:
    -- first-party), the id_token algorithm (NULL: the current key's).
    post_logout_redirect_urls TEXT NOT NULL DEFAULT '[]',
    scopes              TEXT NOT NULL
                        DEFAULT '["openid","profile","email","groups","offline_access"]',
    consent             INTEGER NOT NULL DEFAULT 0,
    token_alg           TEXT
);
CREATE UNIQUE INDEX clients_num ON clients (num);

-- Counters that only grow: the last number given, per name ('clients':
-- clients.num). A removed client's number stays used.
CREATE TABLE sequences (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);

-- Tenant API keys (lagrello and admin calls); only the SHA-256 is kept.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    key_hash     TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scopes       TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

-- A sign-in session: every refresh token descends from one family. Revoking
-- the family ends the session, and the access tokens that carry its id as
-- `sid` stop working at once.
CREATE TABLE token_families (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id      TEXT REFERENCES clients (client_id) ON DELETE CASCADE,
    aal            INTEGER NOT NULL DEFAULT 1,
    amr            TEXT NOT NULL DEFAULT '["pwd"]',
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    -- 1 while a second factor is owed (yat's limited tokens): the session's
    -- access tokens are refused everywhere and its refresh token is good
    -- only at /auth/2fa
    mfa_pending    INTEGER NOT NULL DEFAULT 0,
    -- provider sessions (/oauth2/token): the scope granted, the sign-in time
    scope          TEXT,
    auth_time      INTEGER
);
CREATE INDEX token_families_user ON token_families (user_id);

CREATE TABLE refresh_tokens (
    hash        TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    parent_hash TEXT,
    tenant_id   TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    -- set when a rotated token was honoured once more inside the grace window
    grace_used  INTEGER NOT NULL DEFAULT 0
);
-- A family's tokens, the live (unused) ones first: rotation finds them
-- at once however long the family's history grows, and the foreign key's
-- cascade uses the same index (one index to maintain per new token).
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id, used_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE auth_codes (
    hash           TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id      TEXT,
    amr            TEXT NOT NULL,
    mfa_owed       INTEGER NOT NULL DEFAULT 0,
    code_challenge TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    -- the session the code was exchanged for: revoked if the code is replayed
    family_id      TEXT,
    -- an owed code's first step (password, email_otp, a provider's name)
    first_method   TEXT,
    -- codes from /oauth2/authorize: the redirect URI the exchange must
    -- repeat, the nonce, the scope granted, when the person signed in
    redirect_uri   TEXT,
    nonce          TEXT,
    scope          TEXT,
    auth_time      INTEGER
);

CREATE TABLE login_activity (
    id            TEXT PRIMARY KEY,
    actor         TEXT,
    tenant_id     TEXT,
    client_id     TEXT,
    login_time    INTEGER NOT NULL,
    login_type    TEXT NOT NULL,
    device_info   TEXT,
    ip_address    TEXT,
    outcome       TEXT NOT NULL,
    token_payload TEXT
);
CREATE INDEX login_activity_time ON login_activity (login_time);
CREATE INDEX login_activity_actor ON login_activity (actor, login_time);
-- The login-activity API (issue 10): a page filtered by type, tenant or
-- address comes newest-first straight off an index; active users read
-- only sign-ins' (time, actor) pairs.
CREATE INDEX login_activity_type ON login_activity (login_type, login_time);
CREATE INDEX login_activity_tenant ON login_activity (tenant_id, login_time);
CREATE INDEX login_activity_ip ON login_activity (ip_address, login_time);
CREATE INDEX login_activity_signins ON login_activity (login_time, actor)
    WHERE login_type IN ('ACCESS', 'RELOGIN');

-- The rollup of active users (schema 9): per UTC day, actor and tenant
-- ('' for none), the time of the actor's latest sign-in (ACCESS or
-- RELOGIN). The trigger keeps it in the transaction of every insert; the
-- retention sweep (activity.rs) deletes the days whose rows are all gone.
-- /active-users reads whole days here and only the partial days at a
-- bucket's edges from login_activity_signins.
CREATE TABLE active_days (
    day       INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    last_time INTEGER NOT NULL,
    PRIMARY KEY (day, actor, tenant)
) WITHOUT ROWID;
CREATE TRIGGER login_activity_active_days AFTER INSERT ON login_activity
WHEN new.login_type IN ('ACCESS', 'RELOGIN') AND new.actor IS NOT NULL
BEGIN
    INSERT INTO active_days (day, actor, tenant, last_time)
    VALUES (new.login_time / 86400, new.actor, coalesce(new.tenant_id, ''), new.login_time)
    ON CONFLICT (day, actor, tenant) DO UPDATE SET last_time = max(last_time, excluded.last_time);
END;

-- JWT signing keys. The private key (PKCS#8, or the raw HS256 secret) is
-- sealed; retired keys stay published until publish_until.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    sealed_private BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    retired_at     INTEGER,
    publish_until  INTEGER
);

-- The soft lock (limits.rs), per scope (an account's password "u:", a
-- typed unknown name "n:", a name tried with codes "c:", a second factor
-- "f:") and source (the client IP, IPv6 by its /64; "*" for the untrusted
-- sources of a second factor, which share one count).
CREATE TABLE lockouts (
    scope        TEXT NOT NULL,
    source       TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, source)
);

-- One row per failure of a scope in the last hour, from any source: the
-- account budget. Older rows are deleted as new ones come, and swept.
CREATE TABLE lock_failures (
    scope TEXT NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX lock_failures_scope ON lock_failures (scope, at);

-- Sources (client IP, IPv6 by its /64) an account completed a sign-in
-- from; for 30 days they may still try when the account budget is spent.
-- At most 5 per account, the most recent.
CREATE TABLE trusted_sources (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source    TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (user_id, source)
);

-- Per-IP token buckets, saved periodically and at shutdown so a restart
-- does not hand an attacker a fresh budget.
CREATE TABLE rate_buckets (
    key        TEXT PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_at INTEGER NOT NULL
);

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
-- it, then delivered by the mail worker. The body is sealed under the
-- master key (bound to the row id and recipient) and erased (NULL) once
-- delivered (or given up on): its codes and links must not outlive
-- delivery. The subject is in the clear and never carries a secret.
CREATE TABLE mail_outbox (
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
    sent_at         INTEGER,
    -- set while the mail worker runs the command for this row (it is not
    -- taken again meanwhile); cleared with the outcome
    claimed_at      INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

-- Mail sent to an address by the emailed flows, counted so that nobody can
-- use the server to flood a mailbox (emailed.rs): one row per request that
-- asked for a mail, known address or not. `address` is the SHA-256 of the
-- lower-cased address or name as typed (no address is kept in the clear
-- for people who may have no account); rows older than a day are swept.
CREATE TABLE mail_quota (
    address TEXT NOT NULL,
    kind    TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX mail_quota_address ON mail_quota (address, kind, at);

-- Every change made through the admin API or the CLI (admin/audit.rs),
-- written in the transaction that makes the change: who (a CLI user@host,
-- an admin's user id or an API key's id), from where (an IP, or "cli"),
-- what (`user.create`, …), to which object, and a small JSON of what
-- changed. Never a password, key or secret. id orders the rows.
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

-- Social sign-in: a provider's subject (the provider's `sub`, or its user
-- id for Facebook, Instagram and GitHub) linked to a user. `provider` is
-- the configured NAME of [providers.NAME]; a user has at most one identity
-- per provider. `email` is what the provider last said, for operators.
-- `upstream` holds the provider's refresh (or access) token of the last
-- sign-in, sealed under the master key, only for the kinds whose logout
-- routes end the provider's session too (google, cognito, keycloak).
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

-- A social sign-in between its start and its callback: single use, 10
-- minutes. The state sent upstream is stored as SHA-256; the PKCE verifier
-- and nonce sent upstream are derived from it under the master key, so
-- nothing here lets a reader finish a sign-in. binding_hash is the SHA-256
-- of the cookie set in the starting browser (login CSRF, RFC 9700 §4.7).
-- An app's sign-in names our client and its redirect URL; one started at
-- the sign-in page has neither, and return_to instead (a path on this
-- server, where the browser goes signed in).
CREATE TABLE oauth_states (
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
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

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

-- The consents people give apps at the OpenID provider's consent page
-- (src/oidc/consent.rs). One row per person and app: the scopes granted so
-- far (space-separated, the union of every grant), when first and last
-- granted. An authorize request for a consent client skips the page when
-- its scopes are all here. Withdrawing deletes the row and revokes the
-- app's sessions of that person.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);
