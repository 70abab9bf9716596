//! Reading the login-activity log (audit.rs writes it): native GET
//! /login-activity, /login-activity/count, /login-activity/{id},
//! /active-users/{range}, and the `hallpass activity` command, all through
//! the filter language of filter.rs over the whitelist `TABLE`.
//!
//! Who may read: an admin bearer (every row), or an API key with
//! `activity:read` (the rows of its own tenant: sign-ins into it, and
//! refusals and logouts of its members that carry no tenant). Rows older
//! than `[activity] retention_days` are swept by the background thread in
//! small batches.

use rusqlite::types::Value as Sql;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde_json::{json, Map, Value};

use crate::accounts;
use crate::app::Ctx;
use crate::auth;
use crate::clock::iso8601;
use crate::error::Error;
use crate::filter::{self, Field, Kind, Query, Table};

/// The fields of LoginActivity a filter may name (README, "Login activity", plus
/// `clientId` and `outcome`, ours), in the order they are written.
pub static FIELDS: [Field; 10] = [
    Field {
        name: "id",
        column: "id",
        kind: Kind::Text,
    },
    Field {
        name: "actor",
        column: "actor",
        kind: Kind::Text,
    },
    Field {
        name: "tenantId",
        column: "tenant_id",
        kind: Kind::Text,
    },
    Field {
        name: "clientId",
        column: "client_id",
        kind: Kind::Text,
    },
    Field {
        name: "loginTime",
        column: "login_time",
        kind: Kind::Time,
    },
    Field {
        name: "loginType",
        column: "login_type",
        kind: Kind::Text,
    },
    Field {
        name: "outcome",
        column: "outcome",
        kind: Kind::Text,
    },
    Field {
        name: "deviceInfo",
        column: "device_info",
        kind: Kind::Text,
    },
    Field {
        name: "ipAddress",
        column: "ip_address",
        kind: Kind::Text,
    },
    Field {
        name: "tokenPayload",
        column: "token_payload",
        kind: Kind::Text,
    },
];

/// login_activity for the filter language: newest first by default.
pub static TABLE: Table = Table {
    fields: &FIELDS,
    default_order: "login_time DESC",
    tiebreak: "rowid",
    // SourceLoop's LoginActivity (19.2.2) allows no other properties.
    on_request: &["clientId", "outcome"],
};

const COLS: &str = "id, actor, tenant_id, client_id, login_time, login_type, outcome, \
                    device_info, ip_address, token_payload";

/// One row of login_activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub id: String,
    pub actor: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    /// Unix seconds.
    pub login_time: i64,
    pub login_type: String,
    pub outcome: String,
    pub device_info: Option<String>,
    pub ip_address: Option<String>,
    /// `{"method": …, "amr": […]}` as text.
    pub token_payload: Option<String>,
}

fn from_row(r: &Row) -> rusqlite::Result<Activity> {
    Ok(Activity {
        id: r.get(0)?,
        actor: r.get(1)?,
        tenant_id: r.get(2)?,
        client_id: r.get(3)?,
        login_time: r.get(4)?,
        login_type: r.get(5)?,
        outcome: r.get(6)?,
        device_info: r.get(7)?,
        ip_address: r.get(8)?,
        token_payload: r.get(9)?,
    })
}

impl Activity {
    /// LoginActivity as JSON with only `fields` (API names); absent
    /// values are omitted. tokenPayload stays a string, as SourceLoop's
    /// model types it.
    pub fn to_json(&self, fields: &[&str]) -> Value {
        let mut m = Map::new();
        let mut put = |name: &str, v: Option<Value>| {
            if let Some(v) = v.filter(|_| fields.contains(&name)) {
                m.insert(name.to_string(), v);
            }
        };
        let s = |v: &Option<String>| v.clone().map(Value::String);
        put("id", Some(self.id.clone().into()));
        put("actor", s(&self.actor));
        put("tenantId", s(&self.tenant_id));
        put("clientId", s(&self.client_id));
        put("loginTime", Some(iso8601(self.login_time).into()));
        put("loginType", Some(self.login_type.clone().into()));
        put("outcome", Some(self.outcome.clone().into()));
        put("deviceInfo", s(&self.device_info));
        put("ipAddress", s(&self.ip_address));
        put("tokenPayload", s(&self.token_payload));
        Value::Object(m)
    }
}

/// Whose rows a caller may read.
#[derive(Debug, Clone, PartialEq)]
pub enum Reader {
    /// A server admin: every row.
    All,
    /// An API key: the rows of its tenant.
    Tenant(String),
}

/// Who the bearer is, as a reader of login activity: an API key with
/// `activity:read` (or `admin`), or an admin's access token. No bearer
/// or a bad one is 401; a user's token or a key without the scope is 403.
pub fn reader(cx: &mut Ctx, bearer: Option<&str>) -> Result<Reader, Error> {
    let token = bearer.ok_or(Error::Unauthenticated)?;
    match accounts::authenticate_api_key(&cx.conn, token) {
        Ok(k) if k.has_scope("activity:read") || k.has_scope("admin") => {
            let now = cx.now();
            cx.write(|tx| accounts::touch_api_key(tx, &k.id, now))?;
            return Ok(Reader::Tenant(k.tenant_id));
        }
        Ok(_) => {
            return Err(Error::Forbidden(
                "The API key lacks the activity:read scope".into(),
            ))
        }
        Err(Error::Unauthenticated) => {}
        Err(e) => return Err(e),
    }
    let (_, user) = auth::authenticate(cx, token)?;
    if user.is_admin() {
        Ok(Reader::All)
    } else {
        Err(Error::Forbidden(
            "Login activity is for admins and API keys with activity:read".into(),
        ))
    }
}

/// The rows `reader` may see, as SQL over login_activity's own columns
/// (`prefix` qualifies them in a join).
fn scope(reader: &Reader, prefix: &str) -> (String, Vec<Sql>) {
    match reader {
        Reader::All => ("1".into(), Vec::new()),
        Reader::Tenant(t) => (
            format!(
                "({prefix}tenant_id = ? OR ({prefix}tenant_id IS NULL AND {prefix}actor IN \
                 (SELECT user_id FROM user_tenants WHERE tenant_id = ?)))"
            ),
            vec![Sql::Text(t.clone()), Sql::Text(t.clone())],
        ),
    }
}

/// A page of rows for a translated filter (`filter::filter(&TABLE, …)`).
pub fn list(conn: &Connection, reader: &Reader, q: &Query) -> Result<Vec<Activity>, Error> {
    let (scope_sql, mut values) = scope(reader, "");
    values.extend(q.params.iter().cloned());
    values.push(Sql::Integer(q.limit));
    values.push(Sql::Integer(q.offset));
    // Built from filter.rs's whitelisted columns and placeholders only.
    let sql = format!(
        "SELECT {COLS} FROM login_activity WHERE {scope_sql} AND {} ORDER BY {} LIMIT ? OFFSET ?",
        q.where_sql, q.order_sql
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// GET /login-activity: `filter` is the JSON filter (Null for none).
pub fn search(
    conn: &Connection,
    reader: &Reader,
    filter: &Value,
) -> Result<(Vec<Activity>, Vec<&'static str>), Error> {
    let q = filter::filter(&TABLE, filter, "filter")?;
    Ok((list(conn, reader, &q)?, q.fields))
}

/// GET /login-activity/count: the rows matching a `where` (Null for all).
pub fn count(conn: &Connection, reader: &Reader, where_: &Value) -> Result<i64, Error> {
    let (where_sql, params) = match where_ {
        Value::Null => ("1".to_string(), Vec::new()),
        w => filter::where_clause(&TABLE, w, "where")?,
    };
    let (scope_sql, mut values) = scope(reader, "");
    values.extend(params);
    let sql = format!("SELECT count(*) FROM login_activity WHERE {scope_sql} AND {where_sql}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(values), |r| r.get(0))?)
}

/// GET /login-activity/{id}: one row and the fields to show; 404 when
/// unknown or outside the reader's tenant.
pub fn get(
    conn: &Connection,
    reader: &Reader,
    id: &str,
    filter: &Value,
) -> Result<(Activity, Vec<&'static str>), Error> {
    let q = filter::filter(&TABLE, filter, "filter")?;
    let (scope_sql, mut values) = scope(reader, "");
    values.insert(0, Sql::Text(id.to_string()));
    let sql = format!("SELECT {COLS} FROM login_activity WHERE id = ? AND {scope_sql}");
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(values), from_row)
        .optional()?
        .ok_or_else(|| Error::NotFound("No login activity with this id".into()))?;
    Ok((row, q.fields))
}

/// The bucket size of /active-users/{range}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Keys `YYYY-MM-DD` (UTC days).
    Daily,
    /// Keys `MM-YYYY` (UTC calendar months).
    Monthly,
}

impl Range {
    /// `daily` or `monthly`; anything else is a 404 (no such route).
    pub fn parse(s: &str) -> Result<Range, Error> {
        match s {
            "daily" => Ok(Range::Daily),
            "monthly" => Ok(Range::Monthly),
            _ => Err(Error::NotFound("The range is daily or monthly".into())),
        }
    }
}

/// What /active-users/{range} was asked.
#[derive(Debug, Clone)]
pub struct ActiveQuery<'a> {
    pub range: Range,
    /// ISO 8601 date or date-time; default: 30 days (daily) or a year
    /// (monthly) before the end.
    pub start: Option<&'a str>,
    /// ISO 8601; a date alone includes that whole day. Default: now.
    pub end: Option<&'a str>,
    /// `{inclusion, userIdentity: "actorId"|"userName", userIdentifier: []}`
    /// (Null for none).
    pub filter: Value,
}

/// Buckets one query may span.
const MAX_DAYS: usize = 366;
const MAX_MONTHS: usize = 120;

/// GET /active-users/{range}: `{dateKey: {loginType: [LoginActivity]}}`,
/// one entry per actor per bucket: the actor's latest sign-in (ACCESS or
/// RELOGIN) in that bucket, filed under its type. Failures and logouts
/// do not make anyone active.
pub fn active_users(
    conn: &Connection,
    reader: &Reader,
    q: &ActiveQuery,
    now: i64,
) -> Result<Value, Error> {
    active_users_from(conn, reader, q, now, true)
}

/// The rows `reader` may see, as SQL over active_days (whose `tenant` is
/// '' for rows without one).
fn scope_days(reader: &Reader) -> (String, Vec<Sql>) {
    match reader {
        Reader::All => ("1".into(), Vec::new()),
        Reader::Tenant(t) => (
            "(tenant = ? OR (tenant = '' AND actor IN \
             (SELECT user_id FROM user_tenants WHERE tenant_id = ?)))"
                .into(),
            vec![Sql::Text(t.clone()), Sql::Text(t.clone())],
        ),
    }
}

/// active_users, reading the whole UTC days of each bucket from the
/// active_days rollup (`rollup`) or every sign-in from login_activity
/// (the reference the rollup is tested against).
fn active_users_from(
    conn: &Connection,
    reader: &Reader,
    q: &ActiveQuery,
    now: i64,
    rollup: bool,
) -> Result<Value, Error> {
    let end = match q.end {
        Some(s) => bound(s, "endDate", true)?,
        None => now,
    };
    let start = match q.start {
        Some(s) => bound(s, "startDate", false)?,
        None => match q.range {
            Range::Daily => end - 30 * 86_400,
            Range::Monthly => end - 365 * 86_400,
        },
    };
    if start > end {
        return Err(Error::BadRequest(
            "startDate: must not be after endDate".into(),
        ));
    }
    let buckets = buckets(q.range, start, end)?;
    let (incl_sql, incl_values) = inclusion(conn, &q.filter)?;
    let (scope_sql, scope_values) = scope(reader, "");
    let (days_scope_sql, days_scope_values) = scope_days(reader);
    let (a_scope_sql, a_scope_values) = scope(reader, "a.");
    // Each actor's latest sign-in time in the bucket: whole days from
    // active_days (one row per actor, day and tenant), and the partial
    // days at the bucket's edges from the partial index
    // login_activity_signins (login_time, actor), which covers them;
    // named, because the planner otherwise prefers (login_type,
    // login_time) and fetches every row. The join then fetches one row
    // per actor through (actor, login_time).
    let edge = format!(
        "SELECT actor, login_time AS t FROM login_activity INDEXED BY login_activity_signins
            WHERE login_type IN ('ACCESS', 'RELOGIN') AND login_time >= ? AND login_time < ?
              AND actor IS NOT NULL AND {incl_sql} AND {scope_sql}"
    );
    let sql = format!(
        "SELECT {} FROM (SELECT actor, max(t) AS t FROM (
            SELECT actor, last_time AS t FROM active_days
              WHERE day >= ? AND day < ? AND {incl_sql} AND {days_scope_sql}
            UNION ALL {edge}
            UNION ALL {edge}) GROUP BY actor) m
         JOIN login_activity a ON a.actor = m.actor AND a.login_time = m.t
                              AND a.login_type IN ('ACCESS', 'RELOGIN') AND {a_scope_sql}
         ORDER BY a.login_time, a.rowid",
        COLS.split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let all: Vec<&str> = TABLE.default_fields();
    let mut out = Map::new();
    for (key, from, to) in buckets {
        // Whole days [d0, d1) from the rollup; [from, x) and [y, to) from
        // the rows.
        let (d0, d1) = ((from + 86_399).div_euclid(86_400), to.div_euclid(86_400));
        let (d0, d1, x, y) = if rollup && from >= 0 && d0 < d1 {
            (d0, d1, d0 * 86_400, d1 * 86_400)
        } else {
            (0, 0, to, to)
        };
        let mut values = vec![Sql::Integer(d0), Sql::Integer(d1)];
        values.extend(incl_values.iter().cloned());
        values.extend(days_scope_values.iter().cloned());
        for (lo, hi) in [(from, x), (y, to)] {
            values.extend([Sql::Integer(lo), Sql::Integer(hi)]);
            values.extend(incl_values.iter().cloned());
            values.extend(scope_values.iter().cloned());
        }
        values.extend(a_scope_values.iter().cloned());
        let rows = stmt.query_map(params_from_iter(values), from_row)?;
        let mut seen = std::collections::HashSet::new();
        let mut by_type = Map::new();
        for row in rows {
            let row = row?;
            // Two sign-ins in the same second: the first one stands.
            if !seen.insert(row.actor.clone()) {
                continue;
            }
            let list = by_type
                .entry(row.login_type.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = list {
                a.push(row.to_json(&all));
            }
        }
        if !by_type.is_empty() {
            out.insert(key, Value::Object(by_type));
        }
    }
    Ok(Value::Object(out))
}

/// A startDate/endDate in unix seconds; an end given as a date alone
/// includes that day.
fn bound(s: &str, part: &str, end: bool) -> Result<i64, Error> {
    let (t, date_only) = filter::parse_time_parts(s).ok_or_else(|| {
        Error::BadRequest(format!(
            "{part}: {:?} is not an ISO 8601 date or date-time",
            s.chars().take(64).collect::<String>()
        ))
    })?;
    Ok(if end && date_only { t + 86_399 } else { t })
}

/// The buckets between two instants (inclusive): key, first second, and
/// the second after the last.
fn buckets(range: Range, start: i64, end: i64) -> Result<Vec<(String, i64, i64)>, Error> {
    let mut out = Vec::new();
    let mut at = start;
    while at <= end {
        let iso = iso8601(at);
        let (key, next) = match range {
            Range::Daily => (iso[..10].to_string(), (at.div_euclid(86_400) + 1) * 86_400),
            Range::Monthly => {
                let y: i64 = iso[..4].parse().unwrap_or(1970);
                let m: i64 = iso[5..7].parse().unwrap_or(1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    format!("{}-{}", &iso[5..7], &iso[..4]),
                    filter::days_from_civil(ny, nm, 1) * 86_400,
                )
            }
        };
        out.push((key, at, next.min(end + 1)));
        let max = match range {
            Range::Daily => MAX_DAYS,
            Range::Monthly => MAX_MONTHS,
        };
        if out.len() > max {
            return Err(Error::BadRequest(format!(
                "endDate: at most {max} buckets from startDate"
            )));
        }
        at = next;
    }
    Ok(out)
}

/// The inclusion filter of /active-users as SQL over `actor`.
fn inclusion(conn: &Connection, f: &Value) -> Result<(String, Vec<Sql>), Error> {
    let obj = match f {
        Value::Null => return Ok(("1".into(), Vec::new())),
        Value::Object(m) => m,
        _ => return Err(Error::BadRequest("filter: must be a JSON object".into())),
    };
    for k in obj.keys() {
        if !["inclusion", "userIdentity", "userIdentifier"].contains(&k.as_str()) {
            return Err(Error::BadRequest(format!(
                "filter: unknown key {:?}; known: inclusion, userIdentity, userIdentifier",
                k.chars().take(64).collect::<String>()
            )));
        }
    }
    let include = match obj.get("inclusion") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" => true,
        Some(Value::String(s)) if s == "false" => false,
        Some(_) => {
            return Err(Error::BadRequest(
                "filter.inclusion: must be true or false".into(),
            ))
        }
    };
    let by_name = match obj.get("userIdentity") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "actorId" => false,
        Some(Value::String(s)) if s == "userName" => true,
        Some(_) => {
            return Err(Error::BadRequest(
                "filter.userIdentity: actorId or userName".into(),
            ))
        }
    };
    let items: Vec<&Value> = match obj.get("userIdentifier") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        Some(_) => {
            return Err(Error::BadRequest(
                "filter.userIdentifier: must be a list".into(),
            ))
        }
    };
    if items.len() > filter::MAX_LIST {
        return Err(Error::BadRequest(format!(
            "filter.userIdentifier: more than {} values",
            filter::MAX_LIST
        )));
    }
    // An empty or absent list filters nothing.
    if items.is_empty() {
        return Ok(("1".into(), Vec::new()));
    }
    let mut ids = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let s = v
            .as_str()
            .filter(|s| s.chars().count() <= 320)
            .ok_or_else(|| {
                Error::BadRequest(format!("filter.userIdentifier[{i}]: must be a string"))
            })?;
        if by_name {
            // Names resolve as at sign-in (username or email); an unknown
            // name matches no one.
            if let Some(u) = accounts::find_user_by_login(conn, s)? {
                ids.push(Sql::Text(u.id));
            }
        } else {
            ids.push(Sql::Text(s.to_string()));
        }
    }
    if ids.is_empty() {
        return Ok((if include { "0" } else { "1" }.into(), Vec::new()));
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let sql = if include {
        format!("actor IN ({marks})")
    } else {
        format!("actor NOT IN ({marks})")
    };
    Ok((sql, ids))
}

/// Rows swept per transaction: small, so the writer is never held long.
const SWEEP_BATCH: i64 = 1000;

/// Deletes up to `batch` rows older than `before`, and the active_days
/// whose rows are all gone (older than the oldest row left: rows go
/// oldest first, so a day whose latest sign-in is gone has none left);
/// returns how many rows.
pub fn sweep(conn: &Connection, before: i64, batch: i64) -> Result<usize, Error> {
    let n = conn
        .prepare_cached(
            "DELETE FROM login_activity WHERE rowid IN
               (SELECT rowid FROM login_activity WHERE login_time < ?1 ORDER BY login_time LIMIT ?2)",
        )?
        .execute(params![before, batch])?;
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(login_time) FROM login_activity")?
        .query_row([], |r| r.get(0))?;
    let oldest = oldest.unwrap_or(i64::MAX);
    conn.prepare_cached("DELETE FROM active_days WHERE day <= ?1 AND last_time < ?2")?
        .execute(params![oldest.div_euclid(86_400), oldest])?;
    Ok(n)
}

/// The background thread's retention pass (every second): one batch of
/// rows past `[activity] retention_days`, when there are any. The check
/// is a read, so an idle pass takes no write lock; a backlog drains at a
/// batch a second without holding up sign-ins.
pub fn sweep_expired(cx: &mut Ctx, now: i64) -> Result<usize, Error> {
    let days = cx.app.config.activity_retention_days;
    if days == 0 {
        return Ok(0);
    }
    let before = now - days * 86_400;
    let any: bool = cx
        .conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM login_activity WHERE login_time < ?1)")?
        .query_row([before], |r| r.get(0))?;
    if !any {
        return Ok(0);
    }
    cx.write(|tx| sweep(tx, before, SWEEP_BATCH))
}

/// What `hallpass activity` shows.
#[derive(Debug, Clone, Default)]
pub struct Recent<'a> {
    /// How many rows, newest first.
    pub last: i64,
    /// Only this user's (an id).
    pub actor: Option<&'a str>,
    /// `success`, `failed` (any refusal), or an outcome code
    /// (`invalid_credentials`, `user_inactive`, …).
    pub outcome: Option<&'a str>,
}

/// The newest rows, for the CLI; through the same filter translator as
/// the HTTP routes.
pub fn recent(conn: &Connection, r: &Recent) -> Result<Vec<Activity>, Error> {
    if !(1..=filter::MAX_LIMIT).contains(&r.last) {
        return Err(Error::BadRequest(format!(
            "--last must be 1 to {}",
            filter::MAX_LIMIT
        )));
    }
    let mut w = Map::new();
    if let Some(a) = r.actor {
        w.insert("actor".into(), a.into());
    }
    match r.outcome {
        None => {}
        Some("failed") => {
            w.insert("loginType".into(), "FAILED".into());
        }
        Some(o) => {
            w.insert("outcome".into(), o.into());
        }
    }
    let f = json!({"where": w, "limit": r.last});
    let q = filter::filter(&TABLE, &f, "activity")?;
    list(conn, &Reader::All, &q)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::audit::{record, Entry};

    fn db() -> Connection {
        let mut conn = crate::db::open_and_migrate(std::path::Path::new(":memory:")).unwrap();
        let now = 1_800_000_000;
        crate::db::immediate(&mut conn, |tx| {
            tx.execute_batch(
                "INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'one', 0), ('t2', 'two', 0);",
            )?;
            for (i, (actor, tenant, kind)) in [
                (Some("u1"), Some("t1"), "ACCESS"),
                (Some("u1"), Some("t1"), "RELOGIN"),
                (Some("u2"), Some("t2"), "ACCESS"),
                (None, None, "FAILED"),
            ]
            .into_iter()
            .enumerate()
            {
                let e = Entry {
                    actor,
                    tenant_id: tenant,
                    login_type: kind,
                    outcome: if kind == "FAILED" { "invalid_credentials" } else { "success" },
                    method: "password",
                    ip: "10.0.0.1",
                    ..Entry::default()
                };
                record(tx, &e, now + i as i64 * 3600)?;
            }
            Ok(())
        })
        .unwrap();
        conn
    }

    #[test]
    fn a_tenant_reader_sees_only_its_tenant() {
        let conn = db();
        assert_eq!(count(&conn, &Reader::All, &Value::Null).unwrap(), 4);
        let t2 = Reader::Tenant("t2".into());
        let (rows, _) = search(&conn, &t2, &Value::Null).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].actor.as_deref(), Some("u2"));
        let id = rows[0].id.clone();
        assert!(get(&conn, &Reader::Tenant("t1".into()), &id, &Value::Null).is_err());
        assert!(get(&conn, &t2, &id, &Value::Null).is_ok());
    }

    #[test]
    fn the_sweep_deletes_old_rows_in_batches() {
        let conn = db();
        let cut = 1_800_000_000 + 2 * 3600;
        assert_eq!(sweep(&conn, cut, 1).unwrap(), 1);
        assert_eq!(sweep(&conn, cut, 10).unwrap(), 1);
        assert_eq!(sweep(&conn, cut, 10).unwrap(), 0);
        assert_eq!(count(&conn, &Reader::All, &Value::Null).unwrap(), 2);
    }

    #[test]
    fn active_users_keep_one_entry_per_actor_per_bucket() {
        let conn = db();
        let q = ActiveQuery {
            range: Range::Daily,
            start: Some("2027-01-01"),
            end: Some("2027-01-31"),
            filter: Value::Null,
        };
        let v = active_users(&conn, &Reader::All, &q, 0).unwrap();
        // 1_800_000_000 is 2027-01-15T08:00:00Z.
        let day = &v["2027-01-15"];
        assert_eq!(day["RELOGIN"].as_array().unwrap().len(), 1);
        assert_eq!(day["ACCESS"].as_array().unwrap().len(), 1);
        assert_eq!(day["ACCESS"][0]["actor"], "u2");
        let q = ActiveQuery {
            range: Range::Monthly,
            filter: json!({"inclusion": false, "userIdentifier": ["u2"]}),
            ..q
        };
        let v = active_users(&conn, &Reader::All, &q, 0).unwrap();
        assert_eq!(
            v,
            json!({"01-2027": {"RELOGIN": [v["01-2027"]["RELOGIN"][0].clone()]}})
        );
    }

    #[test]
    fn the_active_days_rollup_answers_as_the_rows_do() {
        let mut conn = crate::db::open_and_migrate(std::path::Path::new(":memory:")).unwrap();
        // Rows over about four days from 2027-01-12T08:00:00Z.
        let t0: i64 = 1_800_000_000 - 3 * 86_400;
        crate::db::immediate(&mut conn, |tx| {
            tx.execute_batch(
                "INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'one', 0), ('t2', 'two', 0);",
            )?;
            for u in 0..8 {
                tx.execute(
                    "INSERT INTO users (id, created_at, updated_at) VALUES (?1, 0, 0)",
                    [format!("u{u}")],
                )?;
                tx.execute(
                    "INSERT INTO user_tenants (id, user_id, tenant_id, created_at) VALUES (?1, ?2, ?3, 0)",
                    params![format!("m{u}"), format!("u{u}"), if u % 2 == 0 { "t1" } else { "t2" }],
                )?;
            }
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut t = t0;
            for _ in 0..3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Often several rows in one second: ties.
                t += (x % 700) as i64 / 3;
                let actor = format!("u{}", (x >> 8) % 10);
                let tenant = match (x >> 16) % 3 {
                    0 => Some("t1"),
                    1 => Some("t2"),
                    _ => None,
                };
                let kind = ["ACCESS", "RELOGIN", "FAILED", "LOGOUT"][((x >> 24) % 4) as usize];
                let e = Entry {
                    actor: if (x >> 32).is_multiple_of(20) { None } else { Some(&actor) },
                    tenant_id: tenant,
                    login_type: kind,
                    outcome: "success",
                    method: "password",
                    ip: "10.0.0.1",
                    ..Entry::default()
                };
                record(tx, &e, t)?;
            }
            Ok(())
        })
        .unwrap();
        let days: i64 = conn
            .query_row("SELECT count(*) FROM active_days", [], |r| r.get(0))
            .unwrap();
        assert!(days > 100, "{days}");
        let readers = [
            Reader::All,
            Reader::Tenant("t1".into()),
            Reader::Tenant("t2".into()),
        ];
        let filters = [
            Value::Null,
            json!({"userIdentifier": ["u1", "u2", "u9"]}),
            json!({"inclusion": false, "userIdentifier": ["u3"]}),
        ];
        let spans = [
            ("2027-01-10", "2027-01-31"),
            ("2027-01-12T13:14:15Z", "2027-01-19T01:02:03Z"),
            ("2027-01-13", "2027-01-13"),
            ("2027-01-13T05:00:00Z", "2027-01-13T20:00:00Z"),
            ("2026-12-20", "2027-02-03T10:00:00Z"),
        ];
        let check = |conn: &Connection| {
            let mut entries = 0;
            for range in [Range::Daily, Range::Monthly] {
                for (start, end) in spans {
                    for r in &readers {
                        for f in &filters {
                            let q = ActiveQuery {
                                range,
                                start: Some(start),
                                end: Some(end),
                                filter: f.clone(),
                            };
                            let fast = active_users_from(conn, r, &q, 0, true).unwrap();
                            let slow = active_users_from(conn, r, &q, 0, false).unwrap();
                            assert_eq!(fast, slow, "{range:?} {start} {end} {r:?} {f}");
                            entries += fast.to_string().matches("\"loginTime\"").count();
                        }
                    }
                }
            }
            entries
        };
        assert!(check(&conn) > 500);
        // Half swept, a batch boundary in the middle of a day: still the same.
        let cut = t0 + 2 * 86_400 + 40_000;
        while sweep(&conn, cut, 397).unwrap() > 0 {
            assert!(check(&conn) > 0);
        }
        let stale: i64 = conn
            .query_row(
                "SELECT count(*) FROM active_days WHERE last_time < ?1",
                [cut],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stale, 0);
        assert!(check(&conn) > 200);
    }

    #[test]
    fn month_buckets_follow_the_calendar() {
        let start = filter::parse_time("2024-12-15").unwrap();
        let end = filter::parse_time("2025-02-03").unwrap();
        let b = buckets(Range::Monthly, start, end).unwrap();
        let keys: Vec<&str> = b.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["12-2024", "01-2025", "02-2025"]);
        assert_eq!(b[1].1, filter::parse_time("2025-01-01").unwrap());
        assert_eq!(b[2].2, end + 1);
        assert!(buckets(Range::Daily, 0, 400 * 86_400).is_err());
    }
}
