//! The audit trail: one row per change made through the admin API or the
//! CLI, written by `record` inside the change's own transaction (it takes
//! a `&Transaction` so that it cannot be called outside one). `details`
//! is a small JSON of what changed, built by the caller from the fields it
//! set; passwords, keys and secrets are never put in it.
//!
//! (Login activity, the sign-in log, is `crate::audit`; this is the
//! operators' log.)

use rusqlite::{params, params_from_iter, Connection, Row, Transaction};
use serde::Serialize;
use serde_json::Value;

use super::{Actor, Listing, Page, Who};
use crate::error::Error;
use crate::filter::{self, Field, Kind, Table};

/// Appends the audit row of a change.
pub fn record(
    tx: &Transaction,
    actor: &Actor,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    details: Value,
    now: i64,
) -> Result<(), Error> {
    let (kind, id) = match &actor.who {
        Who::Cli(name) => ("cli", name.as_str()),
        Who::Admin(user_id) => ("user", user_id.as_str()),
        Who::ApiKey { id, .. } => ("api_key", id.as_str()),
    };
    tx.prepare_cached(
        "INSERT INTO audit (at, actor_kind, actor_id, source, action, object_type, object_id, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        now,
        kind,
        id,
        actor.from,
        action,
        object_type,
        object_id,
        details.to_string()
    ])?;
    Ok(())
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// `cli`, `user` (an admin) or `api_key`.
    pub actor_kind: String,
    /// user@host, a user id or an API key id.
    pub actor_id: String,
    /// The client IP, or `cli`.
    pub source: String,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub details: Value,
}

fn entry_from_row(r: &Row) -> rusqlite::Result<Entry> {
    let details: String = r.get(8)?;
    Ok(Entry {
        id: r.get(0)?,
        at: r.get(1)?,
        actor_kind: r.get(2)?,
        actor_id: r.get(3)?,
        source: r.get(4)?,
        action: r.get(5)?,
        object_type: r.get(6)?,
        object_id: r.get(7)?,
        details: serde_json::from_str(&details).unwrap_or(Value::Null),
    })
}

/// What to read from the trail: every field is an exact match, `since`
/// and `until` bound `at` (inclusive). Newest first.
///
/// The plain query parameters of `GET /admin/audit` (and the CLI); with
/// `?filter=` the shared LoopBack filter language (`search`) applies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub page: Page,
}

/// The rows `q` selects, newest first, and how many there are in all.
/// Every filter is a bound parameter; the SQL is fixed.
pub fn query(conn: &Connection, q: &Query) -> Result<Listing<Entry>, Error> {
    const WHERE: &str = "WHERE (?1 IS NULL OR actor_id = ?1) AND (?2 IS NULL OR action = ?2)
           AND (?3 IS NULL OR object_type = ?3) AND (?4 IS NULL OR object_id = ?4)
           AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at <= ?6)";
    let filters = params![
        q.actor,
        q.action,
        q.object_type,
        q.object_id,
        q.since,
        q.until
    ];
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM audit {WHERE}"))?
        .query_row(filters, |r| r.get(0))?;
    let sql = format!(
        "SELECT id, at, actor_kind, actor_id, source, action, object_type, object_id, details
           FROM audit {WHERE} ORDER BY id DESC LIMIT ?7 OFFSET ?8"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(
        params![
            q.actor,
            q.action,
            q.object_type,
            q.object_id,
            q.since,
            q.until,
            q.page.limit,
            q.page.offset
        ],
        entry_from_row,
    )?;
    Ok(Listing {
        items: rows.collect::<Result<_, _>>()?,
        total,
        page: q.page,
    })
}

/// The audit trail for the filter language (the one login activity
/// speaks, filter.rs): its fields, newest first by default.
pub static FIELDS: [Field; 7] = [
    Field {
        name: "at",
        column: "at",
        kind: Kind::Time,
    },
    Field {
        name: "actorKind",
        column: "actor_kind",
        kind: Kind::Text,
    },
    Field {
        name: "actorId",
        column: "actor_id",
        kind: Kind::Text,
    },
    Field {
        name: "source",
        column: "source",
        kind: Kind::Text,
    },
    Field {
        name: "action",
        column: "action",
        kind: Kind::Text,
    },
    Field {
        name: "objectType",
        column: "object_type",
        kind: Kind::Text,
    },
    Field {
        name: "objectId",
        column: "object_id",
        kind: Kind::Text,
    },
];

/// `audit` for the filter language.
pub static TABLE: Table = Table {
    fields: &FIELDS,
    default_order: "at DESC",
    tiebreak: "id",
    on_request: &[],
};

/// GET /admin/audit?filter=…: the rows a LoopBack filter selects (where,
/// order, limit, skip; `fields` is not offered, entries are whole), and
/// how many match its `where` in all. SQL only from the whitelist above
/// and placeholders.
pub fn search(conn: &Connection, filter_value: &Value) -> Result<Listing<Entry>, Error> {
    let q = filter::filter(&TABLE, filter_value, "filter")?;
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM audit WHERE {}", q.where_sql))?
        .query_row(params_from_iter(q.params.iter()), |r| r.get(0))?;
    let mut values = q.params.clone();
    values.push(filter::Sql::Integer(q.limit));
    values.push(filter::Sql::Integer(q.offset));
    let sql = format!(
        "SELECT id, at, actor_kind, actor_id, source, action, object_type, object_id, details
           FROM audit WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
        q.where_sql, q.order_sql
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(values), entry_from_row)?;
    Ok(Listing {
        items: rows.collect::<Result<_, _>>()?,
        total,
        page: Page {
            limit: q.limit,
            offset: q.offset,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_rolled_back_with_its_change_is_gone_and_filters_select_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("h.db")).unwrap();
        let cli = Actor::cli("ops@box");
        crate::db::immediate(&mut conn, |tx| {
            record(tx, &cli, "user.create", "user", Some("u1"), json!({}), 10)?;
            record(tx, &cli, "user.delete", "user", Some("u1"), json!({}), 20)
        })
        .unwrap();
        let failed: Result<(), Error> = crate::db::immediate(&mut conn, |tx| {
            record(tx, &cli, "user.create", "user", Some("u2"), json!({}), 30)?;
            Err(Error::Conflict("the change failed after its row".into()))
        });
        assert!(failed.is_err());
        let all = query(&conn, &Query::default()).unwrap();
        assert_eq!(all.total, 2);
        assert_eq!(all.items[0].action, "user.delete", "newest first");
        let q = Query {
            action: Some("user.create".into()),
            until: Some(15),
            ..Query::default()
        };
        let some = query(&conn, &q).unwrap();
        assert_eq!(some.total, 1);
        assert_eq!(some.items[0].actor_kind, "cli");
        assert_eq!(some.items[0].source, "cli");
    }
}
