//! Lines for stderr (the access log, connection warnings), written by a
//! thread of their own through a bounded queue; and the access log's two
//! line formats.
//!
//! The HTTP engine answers every connection from one thread: if it wrote
//! to stderr itself, a stderr nobody reads (a paused terminal, a full pipe,
//! a stuck log shipper) would stop the whole server at its next line. Here
//! a line that finds the queue full is dropped and counted, and the count
//! is reported once stderr moves again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::AccessLog;
use crate::engine::Served;

/// Lines waiting for stderr at most.
const QUEUE: usize = 4096;

enum Msg {
    Line(String),
    /// Answers once every line queued before it is written.
    Flush(SyncSender<()>),
}

/// The stderr writer.
pub struct Logger {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Logger {
    /// Starts the writer thread. If it cannot be started, lines are written
    /// by the caller instead (no worse than before).
    pub fn start() -> Logger {
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let count = dropped.clone();
        let started = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || write_lines(rx, &count));
        if let Err(e) = started {
            eprintln!("log: no writer thread ({e}); writing from the caller");
        }
        Logger { tx, dropped }
    }

    /// Queues one line (without its newline); never blocks.
    pub fn line(&self, line: String) {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(Msg::Line(line))) => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits (at most a second) until the lines queued so far are written:
    /// at shutdown, so that the last lines are not lost.
    pub fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if self.tx.try_send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Unix seconds as an RFC 3339 UTC timestamp to the second
/// (`2025-06-01T12:00:00Z`): requests are logged when answered, and the
/// duration carries the finer grain.
pub fn timestamp(secs: i64) -> String {
    let t = crate::clock::iso8601(secs);
    match t.strip_suffix(".000Z") {
        Some(s) => format!("{s}Z"),
        None => t,
    }
}

/// One access-log line for an answered request, `None` when the log is
/// off. The path never has its query (it can carry tokens and codes).
///
/// Text: `TIME CLIENT METHOD PATH STATUS DURATIONms USER`, `-` for what is
/// unknown. JSON: one object with `time`, `client`, `method`, `path`,
/// `route`, `status`, `duration_ms` and `user_id` (null when unknown).
pub fn access_line(format: AccessLog, time: &str, s: &Served) -> Option<String> {
    let client = if s.ip.is_empty() { "-" } else { s.ip };
    let ms = s.elapsed.as_secs_f64() * 1000.0;
    match format {
        AccessLog::Off => None,
        AccessLog::Text => Some(format!(
            "{time} {client} {} {} {} {ms:.1}ms {}",
            s.method,
            s.path,
            s.status,
            s.user.unwrap_or("-")
        )),
        AccessLog::Json => {
            #[derive(Serialize)]
            struct Line<'a> {
                time: &'a str,
                client: &'a str,
                method: &'a str,
                path: &'a str,
                route: &'a str,
                status: u16,
                duration_ms: f64,
                user_id: Option<&'a str>,
            }
            serde_json::to_string(&Line {
                time,
                client,
                method: s.method,
                path: s.path,
                route: s.route,
                status: s.status,
                // To the microsecond: 0.153, not 0.15300000000000002.
                duration_ms: (ms * 1000.0).round() / 1000.0,
                user_id: s.user,
            })
            .ok()
        }
    }
}

fn write_lines(rx: Receiver<Msg>, dropped: &AtomicU64) {
    while let Ok(msg) = rx.recv() {
        let mut err = std::io::stderr().lock();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(err, "log: {lost} lines dropped: stderr was not keeping up");
        }
        match msg {
            Msg::Line(line) => {
                let _ = writeln!(err, "{line}");
            }
            Msg::Flush(done) => {
                let _ = done.try_send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_lines_instead_of_blocking() {
        // A logger whose writer never reads: the queue fills, and lines
        // beyond it are counted, not waited for.
        let (tx, _rx) = sync_channel(2);
        let log = Logger {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for i in 0..10 {
            log.line(format!("line {i}"));
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn access_lines_carry_a_utc_timestamp_as_text_or_json() {
        let served = Served {
            ip: "203.0.113.9",
            method: "GET",
            path: "/auth/me",
            status: 200,
            route: "/auth/me",
            elapsed: Duration::from_micros(1534),
            user: Some("u-1"),
        };
        let time = timestamp(1_795_000_000);
        assert_eq!(time, "2026-11-18T11:06:40Z");
        assert_eq!(
            access_line(AccessLog::Text, &time, &served).unwrap(),
            "2026-11-18T11:06:40Z 203.0.113.9 GET /auth/me 200 1.5ms u-1"
        );
        let json: serde_json::Value =
            serde_json::from_str(&access_line(AccessLog::Json, &time, &served).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "time": "2026-11-18T11:06:40Z", "client": "203.0.113.9", "method": "GET",
                "path": "/auth/me", "route": "/auth/me", "status": 200,
                "duration_ms": 1.534, "user_id": "u-1",
            })
        );
        let anonymous = Served {
            ip: "",
            user: None,
            ..served
        };
        assert!(access_line(AccessLog::Text, &time, &anonymous)
            .unwrap()
            .ends_with(" 200 1.5ms -"));
        assert!(access_line(AccessLog::Json, &time, &anonymous)
            .unwrap()
            .contains(r#""client":"-","#));
        assert!(access_line(AccessLog::Off, &time, &anonymous).is_none());
    }
}
