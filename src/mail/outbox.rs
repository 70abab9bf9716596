//! The outbox every message goes through (`mail_outbox`).
//!
//! `mail::queue` (mod.rs) renders a mail and calls `enqueue` inside the
//! transaction that creates the code or link the mail carries, so either
//! both exist or neither does. The mail worker delivers queued messages
//! through the configured command.
//!
//! The outbox's storage contract (issue 8: reset codes were readable by
//! anyone holding the database or a backup):
//! * A body is only ever stored sealed (AES-256-GCM under the master key).
//!   The seal's purpose names the row id and the recipient, so a sealed
//!   body copied into another row, or a row whose recipient was rewritten,
//!   does not open.
//! * `open_queued` is the one reader of a body, and only for a message
//!   still queued. `mark_delivered` sets the status and erases the body in
//!   one statement: a delivered message's codes and links do not outlive
//!   its delivery. The metadata (id, kind, recipient, subject, status,
//!   attempts, times) stays for `mail list`.
//! * The subject is stored in the clear and is for listings: it must never
//!   carry a code, a link or anything else secret.

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::{uuid_v4, MasterKey};
use crate::error::Error;

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// What it is for (`mfa_reset`, …): shown by `mail list`.
    pub kind: &'a str,
    pub to: &'a str,
    /// Stored in the clear and listed: never a secret (no code, no link).
    pub subject: &'a str,
    /// The text/plain part; sealed before it is stored.
    pub text: &'a str,
    /// The text/html part, if any; sealed with the text.
    pub html: Option<&'a str>,
}

/// What is sealed: both parts of the body.
#[derive(serde::Serialize, serde::Deserialize)]
struct Body {
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    html: Option<String>,
}

/// A queued message, its body opened, as the mail worker delivers it.
#[derive(Clone, PartialEq)]
pub struct Queued {
    pub id: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// The text/plain part: carries codes and links, so it is left out of
    /// `Debug`, as is the HTML.
    pub text: String,
    /// The text/html part, if the mail has one.
    pub html: Option<String>,
    /// Delivery tries so far.
    pub attempts: i64,
}

impl std::fmt::Debug for Queued {
    // Nothing secret is logged: a `{:?}` of a message must not print its
    // codes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &"***")
            .field("html", &self.html.as_ref().map(|_| "***"))
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// The seal's purpose for one row's body: binds it to the row id and the
/// recipient (ids are UUIDs, without `:`, so the string is unambiguous).
fn seal_purpose(id: &str, to: &str) -> String {
    format!("mail-body:{id}:{to}")
}

/// Queues a message for delivery, its body sealed under `master`; returns
/// its id. The subject is stored as given: it must not carry a secret.
pub fn enqueue(
    tx: &Connection,
    master: &MasterKey,
    m: &Message,
    now: i64,
) -> Result<String, Error> {
    let id = uuid_v4()?;
    let body = serde_json::to_vec(&Body {
        text: m.text.to_string(),
        html: m.html.map(str::to_string),
    })
    .map_err(|e| Error::Internal(format!("mail body: {e}")))?;
    let sealed = master.seal(&seal_purpose(&id, m.to), &body)?;
    tx.prepare_cached(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, sealed_body, status, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
    )?
    .execute(params![id, m.kind, m.to, m.subject, sealed, now])?;
    Ok(id)
}

/// A queued message with its body opened, for delivery. `None` when there
/// is no such message, or it is no longer queued (sent, failed: its body
/// is gone or about to be). A body that does not open (wrong key, or
/// moved from another row) is an error, never an empty mail.
pub fn open_queued(
    conn: &Connection,
    master: &MasterKey,
    id: &str,
) -> Result<Option<Queued>, Error> {
    let row = conn
        .prepare_cached(
            "SELECT kind, to_addr, subject, sealed_body, attempts FROM mail_outbox
             WHERE id = ?1 AND status = 'queued'",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((kind, to, subject, sealed, attempts)) = row else {
        return Ok(None);
    };
    let sealed = sealed.ok_or_else(|| Error::Internal(format!("queued mail {id} has no body")))?;
    let plain = master.open(&seal_purpose(id, &to), &sealed)?;
    let body: Body = serde_json::from_slice(&plain)
        .map_err(|_| Error::Internal(format!("queued mail {id}: body does not parse")))?;
    Ok(Some(Queued {
        id: id.to_string(),
        kind,
        to,
        subject,
        text: body.text,
        html: body.html,
        attempts,
    }))
}

/// Marks a queued message delivered and erases its body, in one statement
/// so no state holds a sent message with its codes. Counts the try. False
/// when it was not queued (already marked: a race lost, or unknown).
pub fn mark_delivered(tx: &Connection, id: &str, now: i64) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE mail_outbox
             SET status = 'sent', sent_at = ?2, sealed_body = NULL, attempts = attempts + 1,
                 last_error = NULL
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, now])?
        == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    const CODE: &str = "k7q2x";

    fn setup() -> (tempfile::TempDir, Connection, MasterKey) {
        let dir = tempfile::tempdir().unwrap();
        let conn = db::open_and_migrate(&dir.path().join("m.db")).unwrap();
        (dir, conn, MasterKey::generate().unwrap())
    }

    fn reset_mail(to: &str) -> Message<'_> {
        Message {
            kind: "mfa_reset",
            to,
            subject: "Your two-factor reset code (1 of 2)",
            text: "Code 1 of 2: k7q2x\n",
            html: None,
        }
    }

    fn stored_body(conn: &Connection, id: &str) -> Option<Vec<u8>> {
        conn.query_row(
            "SELECT sealed_body FROM mail_outbox WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_queued_body_is_sealed_at_rest_and_opens_for_delivery() {
        let (_dir, conn, key) = setup();
        let id = enqueue(&conn, &key, &reset_mail("ann@example.com"), 100).unwrap();
        let raw = stored_body(&conn, &id).unwrap();
        assert!(
            !raw.windows(CODE.len()).any(|w| w == CODE.as_bytes()),
            "the code is not in the stored bytes"
        );
        let q = open_queued(&conn, &key, &id).unwrap().unwrap();
        assert_eq!(q.text, "Code 1 of 2: k7q2x\n");
        assert_eq!(q.to, "ann@example.com");
        assert_eq!(q.kind, "mfa_reset");
        assert_eq!(q.attempts, 0);
        assert!(!format!("{q:?}").contains(CODE), "Debug hides the body");
        let other = MasterKey::generate().unwrap();
        assert!(open_queued(&conn, &other, &id).is_err());
    }

    #[test]
    fn a_delivered_message_loses_its_body_and_keeps_its_metadata() {
        let (_dir, conn, key) = setup();
        let id = enqueue(&conn, &key, &reset_mail("ann@example.com"), 100).unwrap();
        assert!(mark_delivered(&conn, &id, 160).unwrap());
        assert_eq!(stored_body(&conn, &id), None);
        let (kind, to, subject, status, attempts, created, sent): (
            String,
            String,
            String,
            String,
            i64,
            i64,
            Option<i64>,
        ) = conn
            .query_row(
                "SELECT kind, to_addr, subject, status, attempts, created_at, sent_at
                 FROM mail_outbox WHERE id = ?1",
                [&id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            (kind.as_str(), to.as_str(), subject.as_str()),
            (
                "mfa_reset",
                "ann@example.com",
                "Your two-factor reset code (1 of 2)"
            )
        );
        assert_eq!(
            (status.as_str(), attempts, created, sent),
            ("sent", 1, 100, Some(160))
        );
        assert_eq!(
            open_queued(&conn, &key, &id).unwrap(),
            None,
            "nothing to deliver"
        );
        assert!(!mark_delivered(&conn, &id, 170).unwrap(), "only once");
    }

    #[test]
    fn a_body_sealed_for_one_row_does_not_open_in_another() {
        let (_dir, conn, key) = setup();
        let a = enqueue(&conn, &key, &reset_mail("ann@example.com"), 100).unwrap();
        let b = enqueue(&conn, &key, &reset_mail("ann@example.com"), 100).unwrap();
        conn.execute(
            "UPDATE mail_outbox SET sealed_body = (SELECT sealed_body FROM mail_outbox WHERE id = ?1)
             WHERE id = ?2",
            [&a, &b],
        )
        .unwrap();
        assert!(
            open_queued(&conn, &key, &b).is_err(),
            "swapped between rows"
        );
        assert!(open_queued(&conn, &key, &a).is_ok());
    }

    #[test]
    fn a_body_does_not_open_for_a_rewritten_recipient() {
        let (_dir, conn, key) = setup();
        let id = enqueue(&conn, &key, &reset_mail("ann@example.com"), 100).unwrap();
        conn.execute(
            "UPDATE mail_outbox SET to_addr = 'mallory@example.net' WHERE id = ?1",
            [&id],
        )
        .unwrap();
        assert!(open_queued(&conn, &key, &id).is_err());
    }

    #[test]
    fn an_unknown_message_has_nothing_to_deliver() {
        let (_dir, conn, key) = setup();
        assert_eq!(open_queued(&conn, &key, "nope").unwrap(), None);
        assert!(!mark_delivered(&conn, "nope", 1).unwrap());
    }
}
