//! Counters for GET /metrics, in the Prometheus text format: requests by
//! route pattern and status, sign-ins by outcome, and refresh-token reuse.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    logins: Mutex<BTreeMap<&'static str, u64>>,
    reuse: Mutex<u64>,
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
        out
    }
}
