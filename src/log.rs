//! Lines for stderr (the access log, connection warnings), written by a
//! thread of their own through a bounded queue.
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
}
