-- Schema 4 -> 5: the per-address quota of the emailed flows (issue 9).
-- schema.sql holds the same table. one_time_codes already has what the
-- flows store (kind, subject, data).
CREATE TABLE mail_quota (
    address TEXT NOT NULL,
    kind    TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX mail_quota_address ON mail_quota (address, kind, at);
