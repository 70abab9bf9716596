-- Schema 13 -> 14 (issue 13): the consents people give apps at the
-- OpenID provider's consent page. schema.sql holds the same.
--
-- One row per person and app: the scopes granted so far (space-separated,
-- the union of every grant), when first and last granted. An authorize
-- request for a consent client skips the page when its scopes are all
-- here. Withdrawing deletes the row (and revokes the app's sessions of
-- that person, oidc/consent.rs). A removed client takes its rows along.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);
