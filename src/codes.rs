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

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::crypto::{ct_eq, hex, hmac_sha256, random_from, token_hash, MasterKey};
use crate::error::Error;

/// The kinds written so far.
pub const MFA_LOGIN: &str = "mfa_login";
pub const MFA_RESET_MAIN: &str = "mfa_reset_main";
pub const MFA_RESET_RECOVERY: &str = "mfa_reset_recovery";

/// The alphabet of short codes: no 0/o, 1/l/i.
const ALPHABET: &[u8] = crate::totp::RECOVERY_ALPHABET;

/// A live token or code found by its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub hash: String,
    pub user_id: String,
    pub attempts: i64,
    pub expires_at: i64,
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
    tx.prepare_cached(
        "INSERT INTO one_time_codes (hash, kind, subject, user_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
    )?
    .execute(params![hash, kind, user_id, now, now + ttl])?;
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
            "SELECT hash, user_id, attempts, expires_at FROM one_time_codes
              WHERE hash = ?1 AND kind = ?2 AND used_at IS NULL AND expires_at > ?3
                AND user_id IS NOT NULL",
        )?
        .query_row(params![token_hash(token), kind, now], |r| {
            Ok(Found {
                hash: r.get(0)?,
                user_id: r.get(1)?,
                attempts: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })
        .optional()?)
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
            "SELECT hash, user_id, attempts, expires_at FROM one_time_codes
              WHERE kind = ?1 AND subject = ?2 AND used_at IS NULL AND expires_at > ?3
              ORDER BY created_at DESC LIMIT 1",
        )?
        .query_row(params![kind, user_id, now], |r| {
            Ok(Found {
                hash: r.get(0)?,
                user_id: r.get(1)?,
                attempts: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })
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

/// Deletes codes that expired a day ago (the sweeper).
pub fn sweep(tx: &Connection, now: i64) -> Result<usize, Error> {
    Ok(tx.execute(
        "DELETE FROM one_time_codes WHERE expires_at < ?1",
        [now - 86_400],
    )?)
}
