//! Brute-force defences: per-IP token buckets and the gate that bounds how
//! many password hashes run at once. The per-account soft lock is in
//! softlock.rs.
//!
//! * **Buckets.** Each endpoint family (credential checks, token endpoints)
//!   has a bucket per client IP. They live in memory for speed and are
//!   saved to `rate_buckets` every few seconds and at shutdown, and loaded
//!   at start, so a restart does not hand out a fresh budget.
//! * **Hash gate.** At most `cores` PBKDF2 computations run at once; a few
//!   more wait briefly; beyond that the answer is 429 at once, so a login
//!   flood never occupies every worker and starves refresh or /auth/me.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::config::Limits;
use crate::error::Error;

/// The endpoint families with separate per-IP budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Password and code checks.
    Login,
    /// Refresh, code exchange, token switch.
    Token,
}

impl Family {
    fn prefix(self) -> &'static str {
        match self {
            Family::Login => "login",
            Family::Token => "token",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: i64,
}

/// Per-IP token buckets.
pub struct RateLimiter {
    limits: Limits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Empty buckets with the configured sizes.
    pub fn new(limits: Limits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn shape(&self, family: Family) -> (f64, f64) {
        match family {
            Family::Login => (self.limits.login_burst, self.limits.login_per_minute / 60.0),
            Family::Token => (self.limits.token_burst, self.limits.token_per_minute / 60.0),
        }
    }

    /// Takes one token for `ip` in `family`, or says how long to wait.
    pub fn take(&self, family: Family, ip: &str, now: i64) -> Result<(), Error> {
        let (burst, rate) = self.shape(family);
        let key = format!("{}|{}", family.prefix(), bucket_ip(ip));
        let mut map = self
            .buckets
            .lock()
            .map_err(|_| Error::Internal("rate limiter poisoned".into()))?;
        if map.len() > 100_000 {
            // Forget full buckets first: they carry no state worth keeping.
            map.retain(|k, b| {
                let (burst, rate) = if k.starts_with("login|") {
                    self.shape(Family::Login)
                } else {
                    self.shape(Family::Token)
                };
                b.tokens + (now - b.updated) as f64 * rate < burst
            });
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        b.tokens = (b.tokens + (now - b.updated).max(0) as f64 * rate).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64;
            Err(Error::RateLimited { retry_after: wait })
        }
    }

    /// Writes the buckets that are not full to the database.
    pub fn save(&self, conn: &mut Connection, now: i64) -> Result<(), Error> {
        let snapshot: Vec<(String, Bucket)> = match self.buckets.lock() {
            Ok(m) => m.iter().map(|(k, b)| (k.clone(), *b)).collect(),
            Err(_) => return Ok(()),
        };
        crate::db::immediate(conn, |tx| {
            tx.execute("DELETE FROM rate_buckets", [])?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?1, ?2, ?3)",
            )?;
            for (k, b) in snapshot {
                let (burst, rate) = if k.starts_with("login|") {
                    self.shape(Family::Login)
                } else {
                    self.shape(Family::Token)
                };
                if b.tokens + (now - b.updated) as f64 * rate < burst {
                    stmt.execute(params![k, b.tokens, b.updated])?;
                }
            }
            Ok(())
        })
    }

    /// Loads saved buckets (at start).
    pub fn load(&self, conn: &Connection) -> Result<(), Error> {
        let mut stmt = conn.prepare("SELECT key, tokens, updated_at FROM rate_buckets")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut map = self
            .buckets
            .lock()
            .map_err(|_| Error::Internal("rate limiter poisoned".into()))?;
        for row in rows {
            let (k, tokens, updated) = row?;
            map.insert(k, Bucket { tokens, updated });
        }
        Ok(())
    }
}

/// The address a bucket is kept for: IPv4 as is, IPv6 by its /64 (one
/// subscriber's allocation), so a host cannot spray from fresh addresses.
pub(crate) fn bucket_ip(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map(|v4| v4.to_string())
            .unwrap_or_default(),
        _ => ip.to_string(),
    }
}
/// Bounds concurrent password hashing.
pub struct HashGate {
    state: Mutex<(usize, usize)>, // (running, waiting)
    cv: Condvar,
    permits: usize,
    max_waiting: usize,
    max_wait: Duration,
}

/// A running hash; dropping it frees the slot.
pub struct Permit<'a>(&'a HashGate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.0 -= 1;
        }
        self.0.cv.notify_one();
    }
}

impl HashGate {
    /// `permits` hashes at once (the cores); `max_waiting` may queue for
    /// up to `max_wait`.
    pub fn new(permits: usize, max_waiting: usize, max_wait: Duration) -> HashGate {
        HashGate {
            state: Mutex::new((0, 0)),
            cv: Condvar::new(),
            permits: permits.max(1),
            max_waiting,
            max_wait,
        }
    }

    /// A permit, or 429 when the queue is full or the wait too long.
    pub fn enter(&self) -> Result<Permit<'_>, Error> {
        let busy = Error::RateLimited { retry_after: 1 };
        let mut s = self
            .state
            .lock()
            .map_err(|_| Error::Internal("hash gate poisoned".into()))?;
        if s.0 < self.permits {
            s.0 += 1;
            return Ok(Permit(self));
        }
        if s.1 >= self.max_waiting {
            return Err(busy);
        }
        s.1 += 1;
        let deadline = Instant::now() + self.max_wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                s.1 -= 1;
                return Err(busy);
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .map_err(|_| Error::Internal("hash gate poisoned".into()))?
                .0;
            if s.0 < self.permits {
                s.0 += 1;
                s.1 -= 1;
                return Ok(Permit(self));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_then_refills_with_time() {
        let l = RateLimiter::new(Limits {
            login_burst: 2.0,
            login_per_minute: 60.0,
            ..Limits::default()
        });
        assert!(l.take(Family::Login, "1.2.3.4", 100).is_ok());
        assert!(l.take(Family::Login, "1.2.3.4", 100).is_ok());
        assert_eq!(
            l.take(Family::Login, "1.2.3.4", 100),
            Err(Error::RateLimited { retry_after: 1 })
        );
        assert!(l.take(Family::Login, "5.6.7.8", 100).is_ok());
        assert!(l.take(Family::Token, "1.2.3.4", 100).is_ok());
        assert!(l.take(Family::Login, "1.2.3.4", 101).is_ok());
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        assert_eq!(
            bucket_ip("2001:db8:1:2::1"),
            bucket_ip("2001:db8:1:2:ffff::9")
        );
        assert_ne!(bucket_ip("2001:db8:1:2::1"), bucket_ip("2001:db8:1:3::1"));
        assert_eq!(bucket_ip("::ffff:1.2.3.4"), "1.2.3.4");
        assert_eq!(bucket_ip("1.2.3.4"), "1.2.3.4");
    }

    #[test]
    fn the_gate_refuses_when_full() {
        let g = HashGate::new(1, 0, Duration::from_millis(10));
        let p = g.enter().unwrap();
        assert!(g.enter().is_err());
        drop(p);
        assert!(g.enter().is_ok());
    }
}
