//! Outgoing mail: the outbox every message goes through.
//!
//! A capability that mails something calls `enqueue` inside the transaction
//! that creates the code or link the mail carries, so either both exist or
//! neither does. The mail worker (the mail issue) delivers queued messages
//! through the configured command and erases each body once delivered.

use rusqlite::{params, Connection};

use crate::crypto::uuid_v4;
use crate::error::Error;

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// What it is for (`mfa_reset`, …): shown by `mail list`.
    pub kind: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    /// Plain text.
    pub body: &'a str,
}

/// Queues a message for delivery; returns its id.
pub fn enqueue(tx: &Connection, m: &Message, now: i64) -> Result<String, Error> {
    let id = uuid_v4()?;
    tx.prepare_cached(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, body, status, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
    )?
    .execute(params![id, m.kind, m.to, m.subject, m.body, now])?;
    Ok(id)
}
