-- Schema 5 -> 6: the mail worker delivers the outbox (issue 9). A row it
-- has taken for delivery carries claimed_at, so it is not taken again
-- while its command runs; only one process delivers at a time (a lock
-- file beside the database), and that process clears claims left by one
-- that died, so a mail caught mid-delivery by a crash is retried after
-- the restart. schema.sql holds the same table.
ALTER TABLE mail_outbox ADD COLUMN claimed_at INTEGER;
