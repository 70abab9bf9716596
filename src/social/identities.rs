//! The `identities` table: which user a provider's subject signs in as.
//! A user has at most one identity per provider; the provider is the
//! configured NAME of `[providers.NAME]`.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::Error;

/// One link between a provider's subject and a user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub user_id: String,
    /// The address the provider gave at the last sign-in, if any.
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The user `subject` of `provider` is linked to.
pub(crate) fn user_of(
    conn: &Connection,
    provider: &str,
    subject: &str,
) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached("SELECT user_id FROM identities WHERE provider = ?1 AND subject = ?2")?
        .query_row(params![provider, subject], |r| r.get(0))
        .optional()?)
}

/// Links `subject` of `provider` to `user_id`, keeping the sealed
/// upstream token if any. A user already linked to another subject of
/// that provider is a Conflict.
pub(crate) fn link(
    conn: &Connection,
    provider: &str,
    subject: &str,
    user_id: &str,
    email: Option<&str>,
    upstream: Option<&[u8]>,
    now: i64,
) -> Result<(), Error> {
    let taken: bool = conn.query_row(
        "SELECT count(*) > 0 FROM identities WHERE user_id = ?1 AND provider = ?2",
        params![user_id, provider],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Error::Conflict(format!(
            "the account is already linked to another {provider} identity"
        )));
    }
    conn.execute(
        "INSERT INTO identities (provider, subject, user_id, email, created_at, last_used_at,
                                 upstream)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        params![provider, subject, user_id, email, now, upstream],
    )?;
    Ok(())
}

/// Notes a sign-in through an existing link (and its upstream token).
pub(crate) fn touch(
    conn: &Connection,
    provider: &str,
    subject: &str,
    email: Option<&str>,
    upstream: Option<&[u8]>,
    now: i64,
) -> Result<(), Error> {
    conn.execute(
        "UPDATE identities SET last_used_at = ?3, email = coalesce(?4, email),
                               upstream = coalesce(?5, upstream)
         WHERE provider = ?1 AND subject = ?2",
        params![provider, subject, now, email, upstream],
    )?;
    Ok(())
}

/// A user's identity at `provider` with its sealed upstream token, taken
/// (erased) so that it is used once.
pub(crate) fn take_upstream(
    conn: &Connection,
    user_id: &str,
    provider: &str,
) -> Result<Option<(String, Vec<u8>)>, Error> {
    let found: Option<(String, Vec<u8>)> = conn
        .query_row(
            "SELECT subject, upstream FROM identities
             WHERE user_id = ?1 AND provider = ?2 AND upstream IS NOT NULL",
            params![user_id, provider],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if found.is_some() {
        conn.execute(
            "UPDATE identities SET upstream = NULL WHERE user_id = ?1 AND provider = ?2",
            params![user_id, provider],
        )?;
    }
    Ok(found)
}

/// Drops a link whose user is gone (deleted), so the subject can sign in
/// afresh.
pub(crate) fn forget(conn: &Connection, provider: &str, subject: &str) -> Result<(), Error> {
    conn.execute(
        "DELETE FROM identities WHERE provider = ?1 AND subject = ?2",
        params![provider, subject],
    )?;
    Ok(())
}

/// A user's identities, by provider name.
pub fn of_user(conn: &Connection, user_id: &str) -> Result<Vec<Identity>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT provider, subject, user_id, email, created_at, last_used_at
         FROM identities WHERE user_id = ?1 ORDER BY provider",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(Identity {
            provider: r.get(0)?,
            subject: r.get(1)?,
            user_id: r.get(2)?,
            email: r.get(3)?,
            created_at: r.get(4)?,
            last_used_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes a user's identity at `provider`; NotFound when there is none.
pub fn unlink(conn: &Connection, user_id: &str, provider: &str) -> Result<Identity, Error> {
    let found = of_user(conn, user_id)?
        .into_iter()
        .find(|i| i.provider == provider)
        .ok_or_else(|| Error::NotFound(format!("the user has no {provider:?} identity")))?;
    conn.execute(
        "DELETE FROM identities WHERE user_id = ?1 AND provider = ?2",
        params![user_id, provider],
    )?;
    Ok(found)
}
