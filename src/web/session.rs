//! Browser sessions of the sign-in pages (the `web_sessions` table), their
//! cookie and the CSRF tokens of the forms. Core: no HTTP types; callers
//! pass the cookie value and form fields as text.
//!
//! * The cookie carries a 256-bit random id (base64url). Only its SHA-256
//!   (hex) is stored, so a copy of the database signs no browser in. Every
//!   sign-in draws a new id (no fixation): `start` never reuses one.
//! * A session ends at sign-out (`end`), when its user is disabled,
//!   deleted or their password changes (`end_user`, called wherever token
//!   families are revoked: `sessions::revoke_user_families`), after its
//!   idle lifetime without a request, and at its absolute expiry. `current`
//!   checks all of these itself (and that the user is active), so a row the
//!   background sweep has not reached yet is already dead.
//! * CSRF, signed double submit: a form carries `csrf`, an HMAC-SHA256
//!   (key derived from the master key for this purpose alone) of a value
//!   the browser holds in an HttpOnly cookie: before sign-in, a random
//!   pre-session value in its own short-lived cookie (`csrf_cookie_name`);
//!   once signed in, the session id itself. A cross-site page can make the
//!   browser send the cookie, but cannot read it, nor forge the HMAC
//!   without the key; a value planted in the cookie is useless without its
//!   HMAC, which only this server makes.

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::{b64url, ct_eq, hmac_sha256, random_token, token_hash, MasterKey};
use crate::error::Error;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSession {
    /// SHA-256 hex of the cookie's session id.
    pub id_hash: String,
    pub user_id: String,
    /// ["pwd"], or ["pwd","otp"] / ["pwd","recovery"] after the second
    /// factor (RFC 8176 names).
    pub amr: Vec<String>,
    /// Unix seconds of the sign-in.
    pub auth_time: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// The session cookie's name over https. `__Host-`: the browser takes it
/// only with Secure, Path=/ and no Domain, so no other host (a sibling
/// subdomain) can set or shadow it.
pub const COOKIE: &str = "__Host-hallpass";
/// Over plain http (a browser refuses `__Host-` without Secure).
pub const COOKIE_PLAIN: &str = "hallpass";

/// Over https with `[web] cookie_domain`: `__Secure-` (the browser takes
/// it only with Secure, so a page served over plain http cannot set or
/// overwrite it), and no `__Host-`, which forbids a Domain.
pub const COOKIE_SHARED: &str = "__Secure-hallpass";

/// The session cookie's name for this public URL and `[web]
/// cookie_domain`: `__Host-hallpass` over https (the host's alone),
/// `__Secure-hallpass` over https with a cookie domain, `hallpass` over
/// plain http.
pub fn cookie_name(public_url: &str, cookie_domain: Option<&str>) -> &'static str {
    match (is_https(public_url), cookie_domain) {
        (true, None) => COOKIE,
        (true, Some(_)) => COOKIE_SHARED,
        (false, _) => COOKIE_PLAIN,
    }
}

/// The pre-sign-in CSRF cookie's name for this public URL.
pub fn csrf_cookie_name(public_url: &str) -> &'static str {
    if is_https(public_url) {
        "__Host-hallpass_csrf"
    } else {
        "hallpass_csrf"
    }
}

/// The cookie naming a half-done sign-in (password given, second factor
/// owed) for this public URL.
pub fn pending_cookie_name(public_url: &str) -> &'static str {
    if is_https(public_url) {
        "__Host-hallpass_pending"
    } else {
        "hallpass_pending"
    }
}

fn is_https(public_url: &str) -> bool {
    public_url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The attributes every cookie of ours carries: HttpOnly, SameSite=Lax,
/// Path=/, and Secure over https. `max_age` 0 deletes it.
pub fn set_cookie(public_url: &str, name: &str, value: &str, max_age: i64) -> String {
    let secure = if is_https(public_url) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The session cookie's Set-Cookie value: `set_cookie`'s attributes, and
/// `Domain=` when a cookie domain is set (so every host under it gets the
/// cookie: forward-auth's one sign-in). `max_age` 0 deletes it (with the
/// same Domain, or the browser would keep it).
pub fn set_session_cookie(
    public_url: &str,
    cookie_domain: Option<&str>,
    value: &str,
    max_age: i64,
) -> String {
    let name = cookie_name(public_url, cookie_domain);
    let mut c = set_cookie(public_url, name, value, max_age);
    if let Some(d) = cookie_domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    c
}

/// How long the pre-sign-in CSRF cookie lives (a form left open for this
/// long must be loaded again).
pub const CSRF_COOKIE_SECS: i64 = 7200;

/// True for a value of the shape we mint (43 base64url characters): the
/// only shape looked up or HMACed.
fn well_formed(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh pre-session CSRF cookie value.
pub fn new_csrf_value() -> Result<String, Error> {
    random_token()
}

/// The CSRF value of an existing cookie, when it is one of ours in shape.
pub fn usable_csrf_value(cookie: Option<&str>) -> Option<&str> {
    cookie.filter(|v| well_formed(v))
}

/// The form token bound to `value` (the pre-session cookie or the session
/// id): HMAC-SHA256 under a key derived for this purpose, base64url.
pub fn csrf_token(master: &MasterKey, value: &str) -> String {
    b64url(&hmac_sha256(&master.derive("web csrf"), value.as_bytes()))
}

/// True when `given` is the form token of `value` (constant time). An
/// absent or malformed value never matches.
pub fn csrf_ok(master: &MasterKey, value: Option<&str>, given: &str) -> bool {
    match value.filter(|v| well_formed(v)) {
        Some(v) => ct_eq(csrf_token(master, v).as_bytes(), given.as_bytes()),
        None => false,
    }
}

/// Starts a session for `user_id` after a complete sign-in; returns the
/// new cookie value (a new random id, never a reused one). In the caller's
/// transaction, beside the activity row.
pub fn start(
    tx: &Connection,
    user_id: &str,
    amr: &[String],
    idle_secs: i64,
    max_secs: i64,
    now: i64,
) -> Result<String, Error> {
    insert(tx, user_id, amr, now, now, idle_secs, now + max_secs, now)
}

/// The one INSERT of a session under a new random id (`start`, `renew`);
/// returns the cookie value.
#[allow(clippy::too_many_arguments)]
fn insert(
    tx: &Connection,
    user_id: &str,
    amr: &[String],
    auth_time: i64,
    created_at: i64,
    idle_secs: i64,
    expires_at: i64,
    now: i64,
) -> Result<String, Error> {
    let id = random_token()?;
    tx.prepare_cached(
        "INSERT INTO web_sessions
           (id_hash, user_id, amr, auth_time, created_at, last_seen_at, idle_secs, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        token_hash(&id),
        user_id,
        serde_json::to_string(amr)?,
        auth_time,
        created_at,
        now,
        idle_secs,
        expires_at
    ])?;
    Ok(id)
}

/// How often `last_seen_at` moves at most (one write a minute per busy
/// browser, not one per request).
const TOUCH_EVERY: i64 = 60;

/// The live session named by a cookie value (idle and absolute lifetimes
/// checked, and an active, undeleted user). A read only, which counts as
/// no use of the session (see `current_seen`).
pub fn current(
    conn: &Connection,
    cookie_value: &str,
    now: i64,
) -> Result<Option<BrowserSession>, Error> {
    lookup(conn, None, cookie_value, now)
}

/// `current` for a request that uses the session: the use is kept in
/// `seen`, in memory (at most once a minute per session), for the
/// background thread to write (`Seen::flush`), and the idle check counts
/// such a use at once. Still a read only: the routes that read the session
/// on every request (`/oauth2/authorize`, the pages) never wait on the
/// writer.
pub fn current_seen(
    conn: &Connection,
    seen: &Seen,
    cookie_value: &str,
    now: i64,
) -> Result<Option<BrowserSession>, Error> {
    lookup(conn, Some(seen), cookie_value, now)
}

fn lookup(
    conn: &Connection,
    seen: Option<&Seen>,
    cookie_value: &str,
    now: i64,
) -> Result<Option<BrowserSession>, Error> {
    if !well_formed(cookie_value) {
        return Ok(None);
    }
    let id_hash = token_hash(cookie_value);
    let row = conn
        .prepare_cached(
            "SELECT s.user_id, s.amr, s.auth_time, s.created_at, s.last_seen_at, s.idle_secs
               FROM web_sessions s JOIN users u ON u.id = s.user_id
              WHERE s.id_hash = ?1 AND s.expires_at > ?2
                AND u.status = 'active' AND u.deleted_at IS NULL",
        )?
        .query_row(params![id_hash, now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .optional()?;
    let Some((user_id, amr, auth_time, created_at, stored, idle_secs)) = row else {
        return Ok(None);
    };
    let mut last_seen_at = seen
        .and_then(|s| s.get(&id_hash))
        .unwrap_or(stored)
        .max(stored);
    if last_seen_at + idle_secs <= now {
        return Ok(None);
    }
    if let Some(seen) = seen {
        if now - last_seen_at >= TOUCH_EVERY {
            seen.note(&id_hash, now);
            last_seen_at = now;
        }
    }
    Ok(Some(BrowserSession {
        id_hash,
        user_id,
        amr: serde_json::from_str(&amr)?,
        auth_time,
        created_at,
        last_seen_at,
    }))
}

/// Sessions used since their row was last written: id hash -> when. The
/// workers note a use here (no database write on a request); the
/// background thread writes them every second in one transaction under
/// the writer lock. A crash loses at most a second of uses, which only
/// shortens an idle session's life by that much.
#[derive(Debug, Default)]
pub struct Seen(std::sync::Mutex<std::collections::HashMap<String, i64>>);

/// Uses kept in memory at most; beyond it (a flood of distinct sessions
/// within a second) a use is dropped, never the server's memory.
const SEEN_MAX: usize = 100_000;

impl Seen {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, i64>> {
        // The map holds plain values, replaced whole: a poisoned lock is
        // used as it is.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id_hash: &str) -> Option<i64> {
        self.lock().get(id_hash).copied()
    }

    fn note(&self, id_hash: &str, now: i64) {
        let mut m = self.lock();
        if m.len() < SEEN_MAX || m.contains_key(id_hash) {
            let at = m.entry(id_hash.to_string()).or_insert(now);
            *at = (*at).max(now);
        }
    }

    /// The uses noted so far, taken out of the map.
    pub fn take(&self) -> Vec<(String, i64)> {
        self.lock().drain().collect()
    }

    /// Writes `uses` (from `take`), in the caller's transaction.
    pub fn flush(tx: &Connection, uses: &[(String, i64)]) -> Result<(), Error> {
        let mut st = tx.prepare_cached(
            "UPDATE web_sessions SET last_seen_at = max(last_seen_at, ?2) WHERE id_hash = ?1",
        )?;
        for (id_hash, at) in uses {
            st.execute(params![id_hash, at])?;
        }
        Ok(())
    }
}

/// Ends a session (sign-out). A value naming no session is no error.
pub fn end(conn: &Connection, cookie_value: &str, _now: i64) -> Result<(), Error> {
    if well_formed(cookie_value) {
        conn.prepare_cached("DELETE FROM web_sessions WHERE id_hash = ?1")?
            .execute([token_hash(cookie_value)])?;
    }
    Ok(())
}

/// Ends every session of a user (disabled, password changed or reset,
/// sessions ended by an admin). Returns how many.
pub fn end_user(conn: &Connection, user_id: &str) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM web_sessions WHERE user_id = ?1")?
        .execute([user_id])?)
}

/// True while the row of session `id_hash` exists: not ended since
/// `current` read it (a sign-out, "sign out other sessions", a password
/// reset, an admin). A flow that read the session at the start of a
/// request and writes for it later asks again in its transaction.
pub fn exists(conn: &Connection, id_hash: &str) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM web_sessions WHERE id_hash = ?1")?
        .query_row([id_hash], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The same sign-in under a new id (after a password change): the old row
/// goes, a new one keeps the user, methods, sign-in time and absolute
/// expiry (counted from `created_at`, with `max_secs`). Returns the new
/// cookie value. The caller has checked, in its transaction, that `s`
/// still `exists`: renewing an ended session would bring it back.
pub fn renew(
    tx: &Connection,
    s: &BrowserSession,
    idle_secs: i64,
    max_secs: i64,
    now: i64,
) -> Result<String, Error> {
    tx.prepare_cached("DELETE FROM web_sessions WHERE id_hash = ?1")?
        .execute([&s.id_hash])?;
    insert(
        tx,
        &s.user_id,
        &s.amr,
        s.auth_time,
        s.created_at,
        idle_secs,
        s.created_at + max_secs,
        now,
    )
}

/// Ends every session of a user but the one whose hash is `keep_hash`
/// (the account page's "sign out other sessions"). Returns how many.
pub fn end_others(conn: &Connection, user_id: &str, keep_hash: &str) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM web_sessions WHERE user_id = ?1 AND id_hash <> ?2")?
        .execute([user_id, keep_hash])?)
}

/// How many live sessions a user has besides the one whose hash is
/// `keep_hash` (what the account page shows).
pub fn count_others(
    conn: &Connection,
    user_id: &str,
    keep_hash: &str,
    now: i64,
) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM web_sessions
              WHERE user_id = ?1 AND id_hash <> ?2
                AND expires_at > ?3 AND last_seen_at + idle_secs > ?3",
        )?
        .query_row(params![user_id, keep_hash, now], |r| r.get(0))?)
}

/// Deletes sessions past their idle or absolute lifetime (background).
pub fn sweep(conn: &Connection, now: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM web_sessions WHERE expires_at <= ?1 OR last_seen_at + idle_secs <= ?1",
        )?
        .execute([now])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{self, NewUser};
    use crate::db;

    fn setup() -> (tempfile::TempDir, Connection, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open_and_migrate(&dir.path().join("t.db")).unwrap();
        let user = db::immediate(&mut conn, |tx| {
            let new = NewUser {
                email: Some("ann@example.com".into()),
                role: "user".into(),
                ..NewUser::default()
            };
            accounts::create_user(tx, &new, 1000)
        })
        .unwrap();
        (dir, conn, user.id)
    }

    #[test]
    fn a_session_lives_until_idle_or_absolute_expiry_and_stores_only_a_hash() {
        let (_d, conn, user) = setup();
        let amr = vec!["pwd".to_string()];
        let id = start(&conn, &user, &amr, 100, 1000, 1000).unwrap();
        let stored: String = conn
            .query_row("SELECT id_hash FROM web_sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, id);
        assert_eq!(stored, token_hash(&id));
        let seen = Seen::default();
        let s = current_seen(&conn, &seen, &id, 1050).unwrap().unwrap();
        assert_eq!((s.user_id.as_str(), s.auth_time), (user.as_str(), 1000));
        assert_eq!(s.amr, amr);
        assert_eq!(s.last_seen_at, 1000, "touched at most once a minute");
        assert!(seen.take().is_empty());
        let s = current_seen(&conn, &seen, &id, 1080).unwrap().unwrap();
        assert_eq!(s.last_seen_at, 1080);
        // Noted, not written: the read wrote nothing...
        let stored = |conn: &Connection| -> i64 {
            conn.query_row("SELECT last_seen_at FROM web_sessions", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(stored(&conn), 1000);
        // ... yet the use counts at once, and lands with the flush.
        assert!(current_seen(&conn, &seen, &id, 1150).unwrap().is_some());
        Seen::flush(&conn, &seen.take()).unwrap();
        assert_eq!(stored(&conn), 1150);
        assert!(current(&conn, &id, 1249).unwrap().is_some());
        assert!(current(&conn, &id, 1250).unwrap().is_none(), "idle");
        // Kept alive, it still ends at the absolute expiry.
        let id = start(&conn, &user, &amr, 100, 300, 2000).unwrap();
        for t in [2090, 2180, 2270] {
            assert!(current_seen(&conn, &seen, &id, t).unwrap().is_some(), "{t}");
        }
        assert!(
            current_seen(&conn, &seen, &id, 2300).unwrap().is_none(),
            "absolute"
        );
        assert_eq!(sweep(&conn, 2300).unwrap(), 2);
    }

    #[test]
    fn ending_and_malformed_values_and_disabled_users() {
        let (_d, conn, user) = setup();
        let amr = vec!["pwd".to_string()];
        let a = start(&conn, &user, &amr, 100, 1000, 1000).unwrap();
        let b = start(&conn, &user, &amr, 100, 1000, 1000).unwrap();
        assert_ne!(a, b);
        end(&conn, &a, 1001).unwrap();
        assert!(current(&conn, &a, 1001).unwrap().is_none());
        assert!(current(&conn, &b, 1001).unwrap().is_some());
        assert!(current(&conn, "short", 1001).unwrap().is_none());
        conn.execute("UPDATE users SET status = 'disabled'", [])
            .unwrap();
        assert!(current(&conn, &b, 1001).unwrap().is_none());
        assert_eq!(end_user(&conn, &user).unwrap(), 1);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_value_and_cookie_names_to_the_scheme() {
        let m = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let v = new_csrf_value().unwrap();
        let t = csrf_token(&m, &v);
        assert!(csrf_ok(&m, Some(&v), &t));
        assert!(!csrf_ok(&m, Some(&v), ""));
        assert!(!csrf_ok(&m, None, &t));
        let w = new_csrf_value().unwrap();
        assert!(!csrf_ok(&m, Some(&w), &t));
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(!csrf_ok(&other, Some(&v), &t));
        assert_eq!(cookie_name("https://auth.example", None), "__Host-hallpass");
        assert_eq!(cookie_name("http://127.0.0.1:8080", None), "hallpass");
        assert!(set_cookie("https://a", COOKIE, "x", 5).ends_with("; Secure"));
        assert!(!set_cookie("http://a", COOKIE_PLAIN, "x", 5).contains("Secure"));
    }

    #[test]
    fn with_a_cookie_domain_the_session_cookie_is_shared_under_it() {
        let https = "https://auth.home.example";
        let d = Some("home.example");
        assert_eq!(cookie_name(https, None), "__Host-hallpass");
        assert_eq!(cookie_name(https, d), "__Secure-hallpass");
        assert_eq!(cookie_name("http://auth.home.example", d), "hallpass");
        assert_eq!(
            set_session_cookie(https, d, "v", 60),
            "__Secure-hallpass=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure; \
             Domain=home.example"
        );
        assert_eq!(
            set_session_cookie(https, None, "v", 0),
            "__Host-hallpass=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
        );
        assert_eq!(
            set_session_cookie("http://auth.home.example", d, "", 0),
            "hallpass=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Domain=home.example"
        );
    }
}
