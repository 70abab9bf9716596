//! The login-activity log: one row per sign-in attempt, success or not,
//! and per logout. A row names the actor (user id; NULL for a name that
//! matches no account: the typed name is not kept, since people type
//! passwords into name fields), the time, the type (ACCESS, RELOGIN,
//! LOGOUT, FAILED), the client IP and user agent, the outcome, and the
//! method and factors used. Never a token or a secret.
//!
//! Reading the log, and its retention, are in activity.rs. A trigger
//! (schema.sql, login_activity_active_days) adds each sign-in to the
//! active_days rollup of /active-users in the same transaction.

use rusqlite::{params, Connection};
use serde_json::json;

use crate::crypto::uuid_v4;
use crate::error::Error;

/// One entry to write.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub actor: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// ACCESS, RELOGIN, LOGOUT or FAILED.
    pub login_type: &'a str,
    /// `success` or the error code of the refusal.
    pub outcome: &'a str,
    /// "password", "refresh", …
    pub method: &'a str,
    pub amr: &'a [String],
    pub ip: &'a str,
    pub user_agent: Option<&'a str>,
}

/// Appends an entry.
pub fn record(conn: &Connection, e: &Entry, now: i64) -> Result<(), Error> {
    let payload = json!({"method": e.method, "amr": e.amr}).to_string();
    let agent = e
        .user_agent
        .map(|a| a.chars().take(512).collect::<String>());
    conn.prepare_cached(
        "INSERT INTO login_activity (id, actor, tenant_id, client_id, login_time, login_type, device_info,
                                     ip_address, outcome, token_payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        uuid_v4()?,
        e.actor,
        e.tenant_id,
        e.client_id,
        now,
        e.login_type,
        agent,
        e.ip,
        e.outcome,
        payload
    ])?;
    Ok(())
}
