//! The browser session as the provider uses it: who is signed in at this
//! browser, how and since when.
//!
//! STAND-IN. The real one is WEB's `web::session` (the `web_sessions`
//! table of migration 012, the cookie, idle and absolute lifetimes); this
//! file has exactly its interface so the provider compiles and is tested
//! before the two trees meet. At the merge it becomes
//! `pub use crate::web::session::{cookie_name, current, end, BrowserSession};`
//! and `api::oidc`'s `browser_session` calls `api::web::browser_session`.
//! Until then it reads a `web_sessions` table if one exists (tests create
//! it) and finds no session otherwise.

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::token_hash;
use crate::error::Error;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSession {
    /// SHA-256 hex of the cookie's session id.
    pub id_hash: String,
    pub user_id: String,
    /// ["pwd"] or ["pwd","otp"].
    pub amr: Vec<String>,
    /// Unix seconds of the sign-in.
    pub auth_time: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// The cookie's name over https (`__Host-` needs Secure).
pub const COOKIE: &str = "__Host-hallpass";

/// The cookie name in use for this public URL.
pub fn cookie_name(public_url: &str) -> &'static str {
    if public_url.starts_with("https://") {
        COOKIE
    } else {
        "hallpass"
    }
}

fn table_exists(conn: &Connection) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'web_sessions')")?
        .query_row([], |r| r.get(0))?)
}

/// The live session named by a cookie value.
pub fn current(
    conn: &Connection,
    cookie_value: &str,
    _now: i64,
) -> Result<Option<BrowserSession>, Error> {
    if cookie_value.is_empty() || !table_exists(conn)? {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached(
            "SELECT id_hash, user_id, amr, auth_time, created_at, last_seen_at
               FROM web_sessions WHERE id_hash = ?1",
        )?
        .query_row([token_hash(cookie_value)], |r| {
            let amr: String = r.get(2)?;
            Ok(BrowserSession {
                id_hash: r.get(0)?,
                user_id: r.get(1)?,
                amr: serde_json::from_str(&amr).unwrap_or_default(),
                auth_time: r.get(3)?,
                created_at: r.get(4)?,
                last_seen_at: r.get(5)?,
            })
        })
        .optional()?)
}

/// Ends a session (sign-out).
pub fn end(conn: &Connection, cookie_value: &str, _now: i64) -> Result<(), Error> {
    if table_exists(conn)? {
        conn.execute(
            "DELETE FROM web_sessions WHERE id_hash = ?1",
            params![token_hash(cookie_value)],
        )?;
    }
    Ok(())
}
