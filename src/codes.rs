//! One-time codes and tokens (the `one_time_codes` table): single use,
//! short-lived, with an attempt limit where a code is short enough to guess.
//!
//! Two shapes share the table:
//! * *tokens* (`issue_token`): high-entropy values handed to a client and
//!   looked up by their SHA-256 (the mfa dialect's X-MFA-Token);
//! * *short codes* (`issue_code`): a few characters a person types from a
//!   mail, stored as an HMAC under a key derived from the master key and
//!   found through the user they were sent to.
//!
//! Issuing a code replaces the unused ones of the same kind and user.
//! A row may carry `data` (the client a code was asked for, the address a
//! sign-up link was sent to); a sign-up link has no user yet, so its row
//! is found by its hash alone (`user_id` NULL, `subject` the address hash).
//!
//! Redeeming is always compare, count and consume in one transaction (the
//! caller's): `lookup_token` / `find_code` then `fail` or `consume` inside
//! one `Ctx::write`, so two racing tries see each other.
//!
//! `mail_quota` (also here: it bounds how often these are mailed) counts
//! the mails of each kind asked for an address, so that the server cannot
//! be used to flood a mailbox.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::crypto::{ct_eq, hex, hmac_sha256, random_from, random_token, token_hash, MasterKey};
use crate::error::Error;

/// The kinds written so far.
pub const MFA_LOGIN: &str = "mfa_login";
pub const MFA_RESET_MAIN: &str = "mfa_reset_main";
pub const MFA_RESET_RECOVERY: &str = "mfa_reset_recovery";
/// A sign-in link (yat; lagrello with the tenant in `data`).
pub const MAGIC_LINK: &str = "magic_link";
/// A 6-digit sign-in code (native send-otp, passwordless); `data` = client.
pub const EMAIL_OTP: &str = "email_otp";
/// A password-reset link; `data` = the client that asked.
pub const PASSWORD_RESET: &str = "password_reset";
/// A sign-up link; no user yet, `data` = `{"email", "tenant"}`.
pub const SIGNUP: &str = "signup";
/// A link confirming an address for an account; `data` = the address.
pub const VERIFY_EMAIL: &str = "verify_email";

/// A sign-in at the pages between its password and its second factor
/// (web/signin.rs): a token in a short-lived cookie; `data` = the first
/// factor's amr when it was not the password ("email").
pub const WEB_SECOND_FACTOR: &str = "web_second_factor";

/// The sign-in pages' own emailed links and codes (web/emailed.rs): kinds
/// apart from the APIs', so that a page's link is used only at the page
/// and an app's only through its API. A sign-in link (`data` = the page
/// to go on to), a 6-digit sign-in code, a password-reset link.
pub const WEB_MAGIC_LINK: &str = "web_magic_link";
pub const WEB_EMAIL_OTP: &str = "web_email_otp";
pub const WEB_PASSWORD_RESET: &str = "web_password_reset";

/// The alphabet of emailed sign-in codes.
pub const DIGITS: &[u8] = b"0123456789";

/// The alphabet of short codes: no 0/o, 1/l/i.
const ALPHABET: &[u8] = crate::totp::RECOVERY_ALPHABET;

/// A live token or code found by its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub hash: String,
    pub user_id: String,
    pub attempts: i64,
    pub expires_at: i64,
    /// What the issuer stored with it.
    pub data: Option<String>,
}

fn found_from_row(r: &rusqlite::Row) -> rusqlite::Result<Found> {
    Ok(Found {
        hash: r.get(0)?,
        user_id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        attempts: r.get(2)?,
        expires_at: r.get(3)?,
        data: r.get(4)?,
    })
}

fn drop_unused(tx: &Connection, kind: &str, user_id: &str) -> Result<(), Error> {
    tx.prepare_cached(
        "DELETE FROM one_time_codes WHERE kind = ?1 AND subject = ?2 AND used_at IS NULL",
    )?
    .execute([kind, user_id])?;
    Ok(())
}

fn insert(
    tx: &Connection,
    hash: &str,
    kind: &str,
    user_id: &str,
    ttl: i64,
    now: i64,
) -> Result<(), Error> {
    insert_row(tx, hash, kind, user_id, Some(user_id), None, ttl, now)
}

#[allow(clippy::too_many_arguments)]
fn insert_row(
    tx: &Connection,
    hash: &str,
    kind: &str,
    subject: &str,
    user_id: Option<&str>,
    data: Option<&str>,
    ttl: i64,
    now: i64,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO one_time_codes (hash, kind, subject, user_id, created_at, expires_at, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![hash, kind, subject, user_id, now, now + ttl, data])?;
    Ok(())
}

/// Stores `token` (already drawn by the caller, e.g. a UUID) for `user_id`.
pub fn issue_token(
    tx: &Transaction,
    kind: &str,
    user_id: &str,
    token: &str,
    ttl: i64,
    now: i64,
) -> Result<(), Error> {
    insert(tx, &token_hash(token), kind, user_id, ttl, now)
}

/// The live (unused, unexpired) token of `kind`, whoever it belongs to.
pub fn find_token(
    conn: &Connection,
    kind: &str,
    token: &str,
    now: i64,
) -> Result<Option<Found>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT hash, user_id, attempts, expires_at, data FROM one_time_codes
              WHERE hash = ?1 AND kind = ?2 AND used_at IS NULL AND expires_at > ?3
                AND user_id IS NOT NULL",
        )?
        .query_row(params![token_hash(token), kind, now], found_from_row)
        .optional()?)
}

/// Stores a 256-bit link token drawn here, for `subject` (the user, or for
/// a sign-up link an address hash) with `data`; returns the token. Only
/// its SHA-256 is kept.
#[allow(clippy::too_many_arguments)]
pub fn issue_link(
    tx: &Connection,
    kind: &str,
    subject: &str,
    user_id: Option<&str>,
    data: Option<&str>,
    ttl: i64,
    now: i64,
) -> Result<String, Error> {
    let token = random_token()?;
    insert_row(
        tx,
        &token_hash(&token),
        kind,
        subject,
        user_id,
        data,
        ttl,
        now,
    )?;
    Ok(token)
}

/// Where a presented link token stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Unused and unexpired.
    Live(Found),
    /// Used already.
    Used,
    /// Unknown, or expired (and so, for the holder, the same).
    Gone,
}

/// Looks a link token of `kind` up by its hash, whoever it belongs to.
pub fn lookup_link(conn: &Connection, kind: &str, token: &str, now: i64) -> Result<Link, Error> {
    let row = conn
        .prepare_cached(
            "SELECT hash, user_id, attempts, expires_at, data, used_at FROM one_time_codes
              WHERE hash = ?1 AND kind = ?2",
        )?
        .query_row(params![token_hash(token), kind], |r| {
            Ok((found_from_row(r)?, r.get::<_, Option<i64>>(5)?))
        })
        .optional()?;
    Ok(match row {
        Some((_, Some(_))) => Link::Used,
        Some((f, None)) if f.expires_at > now => Link::Live(f),
        _ => Link::Gone,
    })
}

fn code_hash(master: &MasterKey, kind: &str, user_id: &str, code: &str) -> String {
    hex(&hmac_sha256(
        &master.derive("one-time-code"),
        format!("{kind}:{user_id}:{code}").as_bytes(),
    ))
}

/// Draws a short code of `len` characters for `user_id`, replacing the
/// unused ones of the same kind.
pub fn issue_code(
    tx: &Transaction,
    master: &MasterKey,
    kind: &str,
    user_id: &str,
    len: usize,
    ttl: i64,
    now: i64,
) -> Result<String, Error> {
    let code = random_from(ALPHABET, len)?;
    drop_unused(tx, kind, user_id)?;
    insert(
        tx,
        &code_hash(master, kind, user_id, &code),
        kind,
        user_id,
        ttl,
        now,
    )?;
    Ok(code)
}

/// Draws a numeric code of `len` digits for `subject`, replacing its
/// unused ones of the same kind; `user_id` None is the stand-in row of a
/// request for nobody (rolled back by the caller). Stored as an HMAC.
#[allow(clippy::too_many_arguments)]
pub fn issue_digits(
    tx: &Connection,
    master: &MasterKey,
    kind: &str,
    subject: &str,
    user_id: Option<&str>,
    data: Option<&str>,
    len: usize,
    ttl: i64,
    now: i64,
) -> Result<String, Error> {
    let code = random_from(DIGITS, len)?;
    drop_unused(tx, kind, subject)?;
    insert_row(
        tx,
        &code_hash(master, kind, subject, &code),
        kind,
        subject,
        user_id,
        data,
        ttl,
        now,
    )?;
    Ok(code)
}

/// The live code of `kind` sent to `user_id`, whether or not `code`
/// matches it (`matches` says), so the caller can count a wrong guess.
pub fn find_code(
    conn: &Connection,
    master: &MasterKey,
    kind: &str,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<Option<(Found, bool)>, Error> {
    let found = conn
        .prepare_cached(
            "SELECT hash, user_id, attempts, expires_at, data FROM one_time_codes
              WHERE kind = ?1 AND subject = ?2 AND used_at IS NULL AND expires_at > ?3
              ORDER BY created_at DESC LIMIT 1",
        )?
        .query_row(params![kind, user_id, now], found_from_row)
        .optional()?;
    let typed = code.trim().to_ascii_lowercase();
    Ok(found.map(|f| {
        let ok = ct_eq(
            f.hash.as_bytes(),
            code_hash(master, kind, user_id, &typed).as_bytes(),
        );
        (f, ok)
    }))
}

/// When the newest code of `kind` for `user_id` was issued, if any.
pub fn last_issued(conn: &Connection, kind: &str, user_id: &str) -> Result<Option<i64>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT max(created_at) FROM one_time_codes WHERE kind = ?1 AND subject = ?2",
        )?
        .query_row([kind, user_id], |r| r.get(0))?)
}

/// Counts a wrong guess against a code or token.
pub fn fail(tx: &Connection, hash: &str) -> Result<(), Error> {
    tx.prepare_cached("UPDATE one_time_codes SET attempts = attempts + 1 WHERE hash = ?1")?
        .execute([hash])?;
    Ok(())
}

/// Uses a code or token up. False when it was used already (a race lost).
pub fn consume(tx: &Connection, hash: &str, now: i64) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE one_time_codes SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
        )?
        .execute(params![hash, now])?
        == 1)
}

/// Uses up every live code and token of a user at once (a password
/// reset, a disabled account): a link or code mailed before must not
/// outlive the event that should end it.
pub fn void_user(tx: &Connection, user_id: &str, now: i64) -> Result<usize, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE one_time_codes SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
        )?
        .execute(params![user_id, now])?)
}

/// Uses up a user's half-done sign-ins, the password given and the second
/// factor owed (the pages' `WEB_SECOND_FACTOR`, the mfa dialect's
/// `MFA_LOGIN`): "sign out other sessions" must not leave a sign-in
/// elsewhere one code away from a new session. Returns how many.
pub fn void_pending_second_factor(
    tx: &Connection,
    user_id: &str,
    now: i64,
) -> Result<usize, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE one_time_codes SET used_at = ?2
              WHERE user_id = ?1 AND kind IN (?3, ?4) AND used_at IS NULL",
        )?
        .execute(params![user_id, now, WEB_SECOND_FACTOR, MFA_LOGIN])?)
}

/// Mails of one kind an address may be sent: one a minute, and
/// `QUOTA_PER_HOUR` in a rolling hour.
pub const QUOTA_INTERVAL: i64 = 60;
pub const QUOTA_PER_HOUR: i64 = 5;

/// Takes room for one more mail of `kind` to `address` (an address or a
/// name as typed, compared lower-cased): false when the address had one
/// in the last minute or `QUOTA_PER_HOUR` in the last hour. Only granted
/// mails are counted. The address is kept only as its SHA-256.
pub fn quota_take(tx: &Connection, address: &str, kind: &str, now: i64) -> Result<bool, Error> {
    let key = token_hash(&address.trim().to_lowercase());
    let (hour, last): (i64, Option<i64>) = tx
        .prepare_cached(
            "SELECT count(*), max(at) FROM mail_quota WHERE address = ?1 AND kind = ?2 AND at > ?3",
        )?
        .query_row(params![key, kind, now - 3600], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if hour >= QUOTA_PER_HOUR || last.is_some_and(|t| now - t < QUOTA_INTERVAL) {
        return Ok(false);
    }
    tx.prepare_cached("INSERT INTO mail_quota (address, kind, at) VALUES (?1, ?2, ?3)")?
        .execute(params![key, kind, now])?;
    Ok(true)
}

/// Deletes codes that expired a day ago and quota rows out of every
/// window (the sweeper).
pub fn sweep(tx: &Connection, now: i64) -> Result<usize, Error> {
    let n = tx.execute(
        "DELETE FROM one_time_codes WHERE expires_at < ?1",
        [now - 86_400],
    )?;
    Ok(n + tx.execute("DELETE FROM mail_quota WHERE at < ?1", [now - 86_400])?)
}
