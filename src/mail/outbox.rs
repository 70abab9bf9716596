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

//!
//! The worker that delivers it is `worker.rs`; the retry schedule is here.
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
    /// When it was queued (its Date header).
    pub created_at: i64,
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
            .field("created_at", &self.created_at)
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
            "SELECT kind, to_addr, subject, sealed_body, attempts, created_at FROM mail_outbox
             WHERE id = ?1 AND status = 'queued'",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .optional()?;
    let Some((kind, to, subject, sealed, attempts, created_at)) = row else {
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
        created_at,
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
                 last_error = NULL, claimed_at = NULL
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, now])?
        == 1)
}

// --- retries -------------------------------------------------------------

/// The first retry comes this long after a failed try.
pub const FIRST_RETRY_SECS: i64 = 30;
/// The wait between tries doubles up to this.
pub const MAX_RETRY_SECS: i64 = 3600;
/// A mail not delivered this long after it was queued is given up on.
pub const GIVE_UP_SECS: i64 = 86_400;
/// `last_error` keeps at most this many bytes.
pub const ERROR_KEEP: usize = 4096;

/// The wait after the `failures`-th failed try (1-based): 30 s, 60 s,
/// 120 s, ... at most an hour (README, "Mail").
pub fn backoff(failures: i64) -> i64 {
    let doublings = failures.clamp(1, 16) - 1;
    (FIRST_RETRY_SECS << doublings).min(MAX_RETRY_SECS)
}

/// What a failed try led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Tried again at this time.
    At(i64),
    /// Given up on (24 hours are over): `failed`, body erased.
    Failed,
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Records a failed try of a queued (claimed) message: the next try per
/// `backoff`, never later than 24 h after it was queued; past that, the
/// row is `failed` and its body erased in the same statement. None when
/// the row was not queued.
pub fn mark_retry(
    tx: &Connection,
    id: &str,
    error: &str,
    now: i64,
) -> Result<Option<Retry>, Error> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT attempts, created_at FROM mail_outbox WHERE id = ?1 AND status = 'queued'",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((attempts, created_at)) = row else {
        return Ok(None);
    };
    let give_up_at = created_at + GIVE_UP_SECS;
    let error = cut(error, ERROR_KEEP);
    if now >= give_up_at {
        mark_failed(tx, id, error, now)?;
        return Ok(Some(Retry::Failed));
    }
    let at = (now + backoff(attempts + 1)).min(give_up_at);
    tx.prepare_cached(
        "UPDATE mail_outbox
         SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, claimed_at = NULL
         WHERE id = ?1 AND status = 'queued'",
    )?
    .execute(params![id, at, error])?;
    Ok(Some(Retry::At(at)))
}

/// Gives a queued message up: `failed`, its body erased in the same
/// statement, `error` kept (cut to `ERROR_KEEP`). False when not queued.
pub fn mark_failed(tx: &Connection, id: &str, error: &str, now: i64) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE mail_outbox
             SET status = 'failed', sealed_body = NULL, attempts = attempts + 1,
                 last_error = ?2, claimed_at = NULL, next_attempt_at = ?3
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, cut(error, ERROR_KEEP), now])?
        == 1)
}

/// Claims up to `limit` queued messages that are due and not claimed, the
/// longest-waiting first; returns their ids.
pub fn claim_due(tx: &Connection, now: i64, limit: usize) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = tx
        .prepare_cached(
            "SELECT id FROM mail_outbox
             WHERE status = 'queued' AND next_attempt_at <= ?1 AND claimed_at IS NULL
             ORDER BY next_attempt_at, rowid LIMIT ?2",
        )?
        .query_map(params![now, limit as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut st = tx.prepare_cached("UPDATE mail_outbox SET claimed_at = ?2 WHERE id = ?1")?;
    for id in &ids {
        st.execute(params![id, now])?;
    }
    Ok(ids)
}

/// Releases every claim: called by the process that has just taken the
/// delivery lock, when any claim left is a dead process's.
pub fn release_claims(tx: &Connection) -> Result<usize, Error> {
    Ok(tx.execute(
        "UPDATE mail_outbox SET claimed_at = NULL WHERE claimed_at IS NOT NULL",
        [],
    )?)
}

/// Messages waiting for delivery (queued, claimed or not).
pub fn pending(conn: &Connection) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM mail_outbox WHERE status = 'queued'")?
        .query_row([], |r| r.get(0))?)
}

/// What `mail retry` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// A queued message is now due.
    Due,
    /// It is being delivered right now.
    InDelivery,
}

/// `hallpass mail retry ID`: a queued message becomes due now. A sent one
/// is a conflict; so is a failed one, whose body (and the code or link in
/// it, expired by then) was erased when it was given up on.
pub fn retry_now(tx: &Connection, id: &str, now: i64) -> Result<Retried, Error> {
    let row: Option<(String, Option<i64>)> = tx
        .prepare_cached("SELECT status, claimed_at FROM mail_outbox WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Err(Error::NotFound(format!("no mail {id}"))),
        Some((status, _)) if status == "sent" => {
            Err(Error::Conflict(format!("mail {id} was sent already")))
        }
        Some((status, _)) if status == "failed" => Err(Error::Conflict(format!(
            "mail {id} failed after 24 hours of tries and its body was erased then (the code or \
             link in it has expired): ask for a new one"
        ))),
        Some((_, Some(_))) => Ok(Retried::InDelivery),
        Some(_) => {
            tx.prepare_cached(
                "UPDATE mail_outbox SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![id, now])?;
            Ok(Retried::Due)
        }
    }
}

/// One row as `mail list` shows it: never a body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub id: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// `pending`, `sending` (its command is running), `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    /// The next try, for a pending message.
    pub next_attempt_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Every row, newest first (at most `limit`).
pub fn list(conn: &Connection, limit: usize) -> Result<Vec<Listed>, Error> {
    let mut st = conn.prepare(
        "SELECT id, kind, to_addr, subject, status, claimed_at, attempts, created_at,
                next_attempt_at, sent_at, last_error
         FROM mail_outbox ORDER BY created_at DESC, rowid DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit as i64], |r| {
        let status: String = r.get(4)?;
        let claimed: Option<i64> = r.get(5)?;
        let queued = status == "queued";
        Ok(Listed {
            id: r.get(0)?,
            kind: r.get(1)?,
            to: r.get(2)?,
            subject: r.get(3)?,
            status: match (status.as_str(), claimed) {
                ("queued", Some(_)) => "sending".into(),
                ("queued", None) => "pending".into(),
                _ => status,
            },
            attempts: r.get(6)?,
            created_at: r.get(7)?,
            next_attempt_at: if queued { r.get(8)? } else { None },
            sent_at: r.get(9)?,
            last_error: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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

    #[test]
    fn the_wait_between_tries_doubles_from_30_seconds_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(backoff).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(1000), 3600);
    }

    #[test]
    fn a_failing_mail_is_retried_for_24_hours_then_failed_with_its_body_erased() {
        let (_dir, conn, key) = setup();
        let id = enqueue(&conn, &key, &reset_mail("ann@example.com"), 0).unwrap();
        let mut now = 0;
        let mut tries = 0;
        loop {
            assert_eq!(claim_due(&conn, now, 10).unwrap(), vec![id.clone()]);
            assert!(
                claim_due(&conn, now, 10).unwrap().is_empty(),
                "claimed once"
            );
            tries += 1;
            match mark_retry(&conn, &id, &"e".repeat(10_000), now)
                .unwrap()
                .unwrap()
            {
                Retry::At(at) => {
                    assert!(at > now && at <= GIVE_UP_SECS);
                    assert!(
                        claim_due(&conn, at - 1, 10).unwrap().is_empty(),
                        "not due yet"
                    );
                    now = at;
                }
                Retry::Failed => break,
            }
        }
        assert_eq!(now, GIVE_UP_SECS);
        assert!((25..=40).contains(&tries), "{tries} tries");
        let (status, body, err, attempts): (String, Option<Vec<u8>>, String, i64) = conn
            .query_row(
                "SELECT status, sealed_body, last_error, attempts FROM mail_outbox WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), body, attempts), ("failed", None, tries));
        assert_eq!(err.len(), ERROR_KEEP);
        assert!(matches!(
            retry_now(&conn, &id, now),
            Err(Error::Conflict(_))
        ));
    }

    #[test]
    fn claims_left_by_a_dead_process_are_released_and_retry_makes_a_mail_due() {
        let (_dir, conn, key) = setup();
        let id = enqueue(&conn, &key, &reset_mail("ann@example.com"), 100).unwrap();
        assert_eq!(claim_due(&conn, 100, 1).unwrap().len(), 1);
        assert_eq!(list(&conn, 10).unwrap()[0].status, "sending");
        assert_eq!(retry_now(&conn, &id, 100).unwrap(), Retried::InDelivery);
        assert_eq!(release_claims(&conn).unwrap(), 1);
        mark_retry(&conn, &id, "boom", 100).unwrap();
        let l = &list(&conn, 10).unwrap()[0];
        assert_eq!(
            (
                l.status.as_str(),
                l.attempts,
                l.next_attempt_at,
                l.last_error.as_deref()
            ),
            ("pending", 1, Some(130), Some("boom"))
        );
        assert_eq!(retry_now(&conn, &id, 101).unwrap(), Retried::Due);
        assert_eq!(claim_due(&conn, 101, 5).unwrap(), vec![id.clone()]);
        assert_eq!(pending(&conn).unwrap(), 1);
        assert!(mark_delivered(&conn, &id, 102).unwrap());
        assert_eq!(pending(&conn).unwrap(), 0);
        assert!(matches!(
            retry_now(&conn, &id, 103),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            retry_now(&conn, "nope", 103),
            Err(Error::NotFound(_))
        ));
    }
}
