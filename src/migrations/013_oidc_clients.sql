-- Schema -> 13 (issue 13): what the OpenID provider needs of a client, of
-- an auth code and of a session. schema.sql holds the same.
--
-- NOTE for the merge: this file is 013 because WEB's 012 (web_sessions)
-- goes before it; in a tree without 012 it is MIGRATIONS' last entry all
-- the same.
--
-- clients: the URIs RP-initiated logout may send the browser back to
-- (exact match), the scopes the client may ask for (JSON list), whether a
-- person must consent (0: first-party, no consent page), the id_token's
-- algorithm (NULL: the server's current key's).
ALTER TABLE clients ADD COLUMN post_logout_redirect_urls TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN scopes TEXT NOT NULL
    DEFAULT '["openid","profile","email","groups","offline_access"]';
ALTER TABLE clients ADD COLUMN consent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN token_alg TEXT;
-- auth_codes from /oauth2/authorize: bound to the redirect URI given
-- there (the token request must repeat it), with the nonce, the granted
-- scope and the time the person signed in. NULL for the native flow.
ALTER TABLE auth_codes ADD COLUMN redirect_uri TEXT;
ALTER TABLE auth_codes ADD COLUMN nonce TEXT;
ALTER TABLE auth_codes ADD COLUMN scope TEXT;
ALTER TABLE auth_codes ADD COLUMN auth_time INTEGER;
-- token_families started by the provider: the scope granted (userinfo,
-- introspection and refreshed id_tokens read it) and the sign-in time.
ALTER TABLE token_families ADD COLUMN scope TEXT;
ALTER TABLE token_families ADD COLUMN auth_time INTEGER;
