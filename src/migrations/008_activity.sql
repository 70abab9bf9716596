-- Schema 7 -> 8: the login-activity API (issue 10). Filtered pages by
-- type, tenant or address come newest-first off an index; active users
-- (/active-users/{range}) read only sign-ins' (time, actor) pairs from a
-- partial index. schema.sql holds the same indexes.
CREATE INDEX login_activity_type ON login_activity (login_type, login_time);
CREATE INDEX login_activity_tenant ON login_activity (tenant_id, login_time);
CREATE INDEX login_activity_ip ON login_activity (ip_address, login_time);
CREATE INDEX login_activity_signins ON login_activity (login_time, actor)
    WHERE login_type IN ('ACCESS', 'RELOGIN');
