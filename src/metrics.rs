//! Counters for GET /metrics, in the Prometheus text format: requests by
//! route pattern and status, sign-ins by outcome, refresh-token reuse, and
//! mail (sent, retried, failed; pending as a gauge). And who may read
//! them (`[metrics] token`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    logins: Mutex<BTreeMap<&'static str, u64>>,
    reuse: Mutex<u64>,
    mail_sent: AtomicU64,
    mail_retried: AtomicU64,
    mail_failed: AtomicU64,
    mail_pending: AtomicI64,
}

impl Metrics {
    /// Counts one request (route = the matched pattern, never a raw path).
    pub fn request(&self, route: &'static str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_default() += 1;
        }
    }

    /// Counts one sign-in attempt by outcome (`success` or an error code).
    pub fn login(&self, outcome: &'static str) {
        if let Ok(mut m) = self.logins.lock() {
            *m.entry(outcome).or_default() += 1;
        }
    }

    /// Counts one detected refresh-token reuse.
    pub fn reuse(&self) {
        if let Ok(mut n) = self.reuse.lock() {
            *n += 1;
        }
    }

    /// Counts one mail handed to the command (or the log mailer).
    pub fn mail_sent(&self) {
        self.mail_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed try that will be tried again.
    pub fn mail_retried(&self) {
        self.mail_retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one mail given up on.
    pub fn mail_failed(&self) {
        self.mail_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the number of mails waiting in the outbox (the mail worker
    /// reads it from the database on each pass).
    pub fn mail_pending(&self, n: i64) {
        self.mail_pending.store(n, Ordering::Relaxed);
    }

    /// True when a scraper presenting `presented` (its bearer token) may
    /// read the metrics: always without a configured token, else only
    /// with that token. Compared as SHA-256 digests in constant time, so
    /// the time taken tells nothing of the token, not even its length.
    pub fn may_scrape(configured: Option<&str>, presented: Option<&str>) -> bool {
        let Some(want) = configured else {
            return true;
        };
        let Some(got) = presented else {
            return false;
        };
        crate::crypto::ct_eq(
            &crate::crypto::sha256(want.as_bytes()),
            &crate::crypto::sha256(got.as_bytes()),
        )
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP hallpass_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE hallpass_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "hallpass_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP hallpass_logins_total Sign-in attempts by outcome.\n");
        out.push_str("# TYPE hallpass_logins_total counter\n");
        if let Ok(m) = self.logins.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(out, "hallpass_logins_total{{outcome=\"{outcome}\"}} {n}");
            }
        }
        out.push_str("# HELP hallpass_refresh_reuse_total Rotated refresh tokens presented again (family revoked).\n");
        out.push_str("# TYPE hallpass_refresh_reuse_total counter\n");
        let n = self.reuse.lock().map(|n| *n).unwrap_or(0);
        let _ = writeln!(out, "hallpass_refresh_reuse_total {n}");
        for (name, help, v) in [
            (
                "sent",
                "Mails handed to the mail command (exit 0) or the log mailer.",
                &self.mail_sent,
            ),
            (
                "retried",
                "Failed mail tries that will be tried again.",
                &self.mail_retried,
            ),
            (
                "failed",
                "Mails given up on after 24 hours of tries.",
                &self.mail_failed,
            ),
        ] {
            let _ = writeln!(out, "# HELP hallpass_mail_{name}_total {help}");
            let _ = writeln!(out, "# TYPE hallpass_mail_{name}_total counter");
            let _ = writeln!(
                out,
                "hallpass_mail_{name}_total {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP hallpass_mail_pending Mails waiting in the outbox.\n");
        out.push_str("# TYPE hallpass_mail_pending gauge\n");
        let _ = writeln!(
            out,
            "hallpass_mail_pending {}",
            self.mail_pending.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_token_must_be_presented_exactly() {
        assert!(Metrics::may_scrape(None, None));
        assert!(Metrics::may_scrape(None, Some("anything")));
        let t = Some("0123456789abcdef");
        assert!(Metrics::may_scrape(t, Some("0123456789abcdef")));
        assert!(!Metrics::may_scrape(t, None));
        assert!(!Metrics::may_scrape(t, Some("0123456789abcdeF")));
        assert!(!Metrics::may_scrape(t, Some("0123456789abcdef0")));
        assert!(!Metrics::may_scrape(t, Some("")));
    }
}
