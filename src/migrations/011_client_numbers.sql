-- Schema 10 -> 11: every client gets a number, AuthUser's authClientId
-- (issue 15: SourceLoop's is an integer, and typed clients fail to decode
-- the client_id string). Existing clients are numbered 1, 2, ... in the
-- order they were created; sequences remembers the last number given, so
-- a removed client's number is never given again. schema.sql holds the
-- same.
ALTER TABLE clients ADD COLUMN num INTEGER NOT NULL DEFAULT 0;
UPDATE clients SET num = ranked.n
FROM (SELECT client_id,
             row_number() OVER (ORDER BY created_at, client_id) AS n
      FROM clients) AS ranked
WHERE ranked.client_id = clients.client_id;
CREATE UNIQUE INDEX clients_num ON clients (num);
CREATE TABLE sequences (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
INSERT INTO sequences (name, last) SELECT 'clients', coalesce(max(num), 0) FROM clients;
