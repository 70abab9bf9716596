-- Schema 8 -> 9: active_days, the rollup of /active-users: per UTC day,
-- actor and tenant ('' for none), the time of the actor's latest sign-in
-- (ACCESS or RELOGIN). A trigger keeps it in the transaction of every
-- insert into login_activity; the retention sweep deletes the days whose
-- rows are all gone. Backfilled from the rows already there. schema.sql
-- holds the same table and trigger.
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
INSERT INTO active_days (day, actor, tenant, last_time)
SELECT login_time / 86400, actor, coalesce(tenant_id, ''), max(login_time)
FROM login_activity
WHERE login_type IN ('ACCESS', 'RELOGIN') AND actor IS NOT NULL
GROUP BY 1, 2, 3;
