//! The mail worker: the `mail` thread that delivers the outbox
//! (`outbox.rs`) through the configured command (`command.rs`).
//!
//! * One process delivers at a time: the one holding the lock file beside
//!   the database (`{db}.mail.lock`, an OS file lock, released by the OS
//!   when the process dies, SIGKILL included). A second server on the same
//!   file queues mail and leaves delivery to the first.
//! * A row is claimed (`claimed_at`) in the transaction that picks it, and
//!   a claimed row is never picked again. The outcome clears the claim in
//!   the statement that records it. Claims found when the lock is taken
//!   were left by a process that died mid-delivery: they are released, so
//!   that mail is tried again (it may then arrive twice, if the dead
//!   process's command had handed it over; a mail is never sent twice when
//!   the try that sent it was recorded).
//! * At most `[mail] concurrency` commands run at once, each killed after
//!   `[mail] timeout_secs`. Exit 0 = sent: the body is erased as the row
//!   is marked. Anything else is retried: first after 30 s, then the wait
//!   doubles up to an hour, for 24 hours from queuing (README, "Mail"); then
//!   the row is `failed`, its body erased too, with the command's stderr
//!   (a few KB, never the body) in `last_error`.
//! * With no command, the log mailer writes the message to stderr (through
//!   the non-blocking `Logger`) and marks it sent: local development.
//! * `mail::queue` wakes the worker; it also looks every second (mail
//!   queued by another process, `mail retry`, a moved test clock).

use std::fs::File;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::{App, Ctx};
use crate::error::Error;

use super::outbox::{
    claim_due, mark_delivered, mark_failed, mark_retry, open_queued, pending, release_claims, Retry,
};
use super::{command, message};

/// Wakes the mail worker (`mail::queue`, a finished delivery) or stops it.
#[derive(Default)]
pub struct Signal {
    state: Mutex<(bool, bool)>, // (woken, stop)
    cv: Condvar,
}

impl Signal {
    /// Wakes the worker (cheap; never blocks on it).
    pub fn notify(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = true;
        }
        self.cv.notify_all();
    }

    fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = (true, true);
        }
        self.cv.notify_all();
    }

    /// Waits until woken or `timeout`; true once stopping.
    fn wait(&self, timeout: Duration) -> bool {
        let Ok(guard) = self.state.lock() else {
            return true;
        };
        let Ok((mut guard, _)) = self.cv.wait_timeout_while(guard, timeout, |s| !s.0) else {
            return true;
        };
        guard.0 = false;
        guard.1
    }
}

/// How often the worker looks for due mail without being woken.
const POLL: Duration = Duration::from_secs(1);

/// The running mail worker.
pub struct Worker {
    handle: JoinHandle<()>,
    signal: Arc<Signal>,
}

impl Worker {
    /// Stops taking new mail, waits for the commands running (each bounded
    /// by the timeout) and records their outcome.
    pub fn stop(self) {
        self.signal.stop();
        let _ = self.handle.join();
    }
}

/// The end of one try, sent back by a delivery thread.
struct Done {
    id: String,
    to: String,
    result: Result<(), String>,
}

/// Starts the `mail` thread on its own connection.
pub fn start(app: Arc<App>) -> Result<Worker, Error> {
    let conn = crate::db::open(&app.config.db)?;
    let signal = app.mail.signal.clone();
    let cx = Ctx { conn, app };
    let handle = std::thread::Builder::new()
        .name("mail".into())
        .spawn(move || work(cx))
        .map_err(|e| Error::Internal(format!("cannot start the mail thread: {e}")))?;
    Ok(Worker { handle, signal })
}

/// The delivery lock's path: beside the database.
pub fn lock_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".mail.lock");
    std::path::PathBuf::from(name)
}

/// Takes the delivery lock if no other process holds it.
fn take_lock(db: &std::path::Path) -> Result<Option<File>, Error> {
    let path = lock_path(db);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Internal(format!("mail lock {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Internal(format!(
            "mail lock {}: {e}",
            path.display()
        ))),
    }
}

fn work(mut cx: Ctx) {
    let signal = cx.app.mail.signal.clone();
    let (done_tx, done_rx) = channel::<Done>();
    let mut lock: Option<File> = None;
    let mut told_locked = false;
    let mut in_flight = 0usize;
    let mut unrecorded: Vec<Done> = Vec::new();
    let mut stopping = false;
    loop {
        while let Ok(d) = done_rx.try_recv() {
            in_flight = in_flight.saturating_sub(1);
            unrecorded.push(d);
        }
        // An outcome that could not be written (a busy database) is kept
        // and written on the next turn; its row stays claimed meanwhile.
        unrecorded.retain(|d| match record(&mut cx, d) {
            Ok(()) => false,
            Err(e) => {
                cx.app.log.line(format!("mail: recording {}: {e}", d.id));
                true
            }
        });
        if stopping && in_flight == 0 && unrecorded.is_empty() {
            break;
        }
        let mut more = false;
        if !stopping {
            if lock.is_none() {
                match take_lock(&cx.app.config.db) {
                    Ok(Some(f)) => {
                        if let Err(e) = cx.write(|tx| release_claims(tx)) {
                            cx.app.log.line(format!("mail: releasing claims: {e}"));
                        }
                        lock = Some(f);
                    }
                    Ok(None) if !told_locked => {
                        told_locked = true;
                        cx.app.log.line(
                            "mail: another hallpass delivers this database's mail; waiting".into(),
                        );
                    }
                    Ok(None) => {}
                    Err(e) => cx.app.log.line(format!("mail: {e}")),
                }
            }
            if lock.is_some() {
                match pass(&mut cx, &done_tx, &signal, &mut in_flight) {
                    Ok(m) => more = m,
                    Err(e) => cx.app.log.line(format!("mail: {e}")),
                }
            }
            if let Ok(n) = pending(&cx.conn) {
                cx.app.metrics.mail_pending(n);
            }
        }
        if more {
            continue;
        }
        if signal.wait(POLL) {
            stopping = true;
        }
    }
}

/// Claims what is due (as many as there is room for) and starts each
/// delivery; true when the claim was full (there may be more now).
fn pass(
    cx: &mut Ctx,
    done_tx: &Sender<Done>,
    signal: &Arc<Signal>,
    in_flight: &mut usize,
) -> Result<bool, Error> {
    let logging = cx.app.config.mail_command.is_empty();
    let room = if logging {
        16
    } else {
        cx.app.config.mail_concurrency.saturating_sub(*in_flight)
    };
    if room == 0 {
        return Ok(false);
    }
    let now = cx.now();
    let master = cx.app.master.clone();
    // Under the writer lock: a request that queued a mail and woke us
    // holds it until its transaction commits, so its row is seen here.
    let claimed = cx.write(|tx| {
        let mut out = Vec::new();
        for id in claim_due(tx, now, room)? {
            out.push(match open_queued(tx, &master, &id) {
                Ok(Some(q)) => Ok(q),
                Ok(None) => continue,
                Err(e) => Err((id, e.to_string())),
            });
        }
        Ok(out)
    })?;
    let full = claimed.len() == room;
    for item in claimed {
        let q = match item {
            Ok(q) => q,
            Err((id, why)) => {
                // It will never open (another master key, a moved row):
                // retrying cannot help.
                cx.write(|tx| {
                    mark_failed(tx, &id, &format!("the body does not open: {why}"), now)
                })?;
                cx.app.metrics.mail_failed();
                continue;
            }
        };
        let from = &cx.app.config.mail_from;
        let id = message::message_id(&q.id, from);
        let msg = message::build(&message::Envelope {
            from,
            to: &q.to,
            subject: &q.subject,
            text: &q.text,
            html: q.html.as_deref(),
            date: q.created_at,
            message_id: &id,
        });
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                cx.write(|tx| mark_failed(tx, &q.id, &e.to_string(), now))?;
                cx.app.metrics.mail_failed();
                continue;
            }
        };
        if logging {
            // The log mailer: its job is to show the message (codes and
            // links included) to the developer; it only runs when no
            // command is configured (README, "Mail").
            cx.app.log.line(format!(
                "mail: no [mail] command, so the log mailer prints message {} to {}:\n{}\n{}",
                q.id,
                q.to,
                msg_headers(&msg),
                q.text
            ));
            record(
                cx,
                &Done {
                    id: q.id,
                    to: q.to,
                    result: Ok(()),
                },
            )?;
            continue;
        }
        let argv = cx.app.config.mail_command.clone();
        let timeout = Duration::from_secs(cx.app.config.mail_timeout_secs);
        let done_tx = done_tx.clone();
        let signal = signal.clone();
        let (id, to) = (q.id.clone(), q.to.clone());
        let spawned = std::thread::Builder::new()
            .name("mail-send".into())
            .spawn(move || {
                let o = command::run(&argv, msg.as_bytes(), timeout);
                let argv0 = argv.first().map(String::as_str).unwrap_or("");
                let result = if o.sent() {
                    Ok(())
                } else {
                    Err(o.failure(argv0, timeout))
                };
                let _ = done_tx.send(Done { id, to, result });
                signal.notify();
            });
        match spawned {
            Ok(_) => *in_flight += 1,
            Err(e) => record(
                cx,
                &Done {
                    id: q.id,
                    to: q.to,
                    result: Err(format!("cannot start a delivery thread: {e}")),
                },
            )?,
        }
    }
    Ok(full)
}

/// The header block of a built message (the log mailer shows it above
/// the text part, which it prints decoded).
fn msg_headers(msg: &str) -> String {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .replace("\r\n", "\n")
}

/// Writes one try's outcome and counts it.
fn record(cx: &mut Ctx, d: &Done) -> Result<(), Error> {
    let now = cx.now();
    match &d.result {
        Ok(()) => {
            if cx.write(|tx| mark_delivered(tx, &d.id, now))? {
                cx.app.metrics.mail_sent();
            }
        }
        Err(why) => match cx.write(|tx| mark_retry(tx, &d.id, why, now))? {
            Some(Retry::At(at)) => {
                cx.app.metrics.mail_retried();
                cx.app.log.line(format!(
                    "mail: {} to {} not sent ({}); next try at {}",
                    d.id,
                    d.to,
                    why.replace('\n', " "),
                    crate::clock::iso8601(at)
                ));
            }
            Some(Retry::Failed) => {
                cx.app.metrics.mail_failed();
                cx.app.log.line(format!(
                    "mail: {} to {} given up after 24 hours of tries ({})",
                    d.id,
                    d.to,
                    why.replace('\n', " ")
                ));
            }
            None => {}
        },
    }
    Ok(())
}
