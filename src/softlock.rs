//! The soft lock: failed credential checks counted per account and source,
//! with an hourly budget per account and the sources an account is trusted
//! from.
//!
//! * **Soft lock.** Failed credential checks count per scope (an account,
//!   or for a name that matches none, the hashed name, so unknown names
//!   behave exactly like known ones) *and source* (the client IP, IPv6 by
//!   its /64). From one source, `free_failures` (5) wrong tries go freely
//!   and the next attempt waits 1 s, then 3 s, 10 s, 30 s, 1 min, 2 min,
//!   5 min, 10 min, then 15 min at most. A success clears that source's
//!   count; a day without failures forgets it. Because the count is per
//!   source, failures from elsewhere never delay the owner (issue 8: a
//!   per-account delay let anyone keep any user out with one wrong password
//!   every 15 minutes).
//! * **Account budget.** Per source alone, an attacker with many addresses
//!   would get 5 free tries from each. So every scope also has a budget of
//!   `account_failures_per_hour` (30) failures in a rolling hour from all
//!   sources together; once it is spent, only sources the account
//!   completed a sign-in from in the last 30 days (at most the 5 most
//!   recent, kept in `trusted_sources`) may still try, each under its own
//!   delay. This is OWASP's "Slow Down Online Guessing Attacks with Device
//!   Cookies" with the source address in place of the cookie. The price:
//!   during an attack that keeps the budget spent, the owner at a new
//!   address waits until it has room.
//! * **The bound.** A source under its own delay fails at most 15 times in
//!   any hour (5 free, then delays of 1+3+10+30+60+120+300+600+900 s fit
//!   ten more in the first hour; about 4 an hour after that). Sources that
//!   are not trusted fail at most `account_failures_per_hour` times in any
//!   hour together. So one account's password meets at most
//!   30 + 5 x 15 = **105 guesses per hour** with the defaults, and at most
//!   30 from addresses the account has not signed in from. Codes tried
//!   with a name alone (`Lock::code`) have the same bound per typed name
//!   (username, email, or user id for the MFA reset). Second-factor codes
//!   after a right password (`Lock::factor`) share one delay among all
//!   untrusted sources instead: at most 15 in the first hour, 4 an hour
//!   after, plus 15 per trusted source.
//! * **What the caller learns.** `locked_until` (Retry-After, the mfa
//!   dialect's X-Account-Lockout) is only ever the caller's own wait, never
//!   when another source's delay ends.

use rusqlite::{params, Connection, OptionalExtension};

use crate::config::Limits;
use crate::crypto::token_hash;
use crate::error::Error;
use crate::limits::bucket_ip;

/// What kind of credential a soft lock guards, which decides how sources
/// are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Passwords and codes tried with only a name: a delay per source and
    /// the scope's hourly budget (anyone can trigger these).
    Budgeted,
    /// Second-factor codes after a right password: a delay per trusted
    /// source, one shared by all untrusted sources (see `Lock::factor`).
    Factor,
}

/// A soft lock as one attempt meets it: what is guessed at (the scope:
/// an account, a typed name, a second factor), from where (the source,
/// IPv6 by its /64), and the account whose trusted sources are exempt
/// from the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    scope: String,
    source: String,
    account: Option<String>,
    kind: Kind,
}

impl Lock {
    /// The password lock of a sign-in from `ip`: the account when the name
    /// is known, else the name (hashed, ASCII-folded as SQLite's NOCASE
    /// folds the user look-up: any other folding would lock names
    /// differently from accounts).
    pub fn password(user_id: Option<&str>, identifier: &str, ip: &str) -> Lock {
        let scope = match user_id {
            Some(id) => password_scope(id),
            None => format!("n:{}", token_hash(&identifier.trim().to_ascii_lowercase())),
        };
        Lock {
            scope,
            source: bucket_ip(ip),
            account: user_id.map(str::to_string),
            kind: Kind::Budgeted,
        }
    }

    /// The lock on codes tried without a password having been shown
    /// (verify-otp without a live login code, recovery sign-in, the emailed
    /// MFA reset). Its scope is the identifier as typed, the same for names
    /// that exist and those that do not, so that the count itself tells
    /// nothing; `user_id` (the account the name names, if any) only lends
    /// its trusted sources.
    pub fn code(identifier: &str, user_id: Option<&str>, ip: &str) -> Lock {
        Lock {
            scope: format!("c:{}", token_hash(&identifier.trim().to_ascii_lowercase())),
            source: bucket_ip(ip),
            account: user_id.map(str::to_string),
            kind: Kind::Budgeted,
        }
    }

    /// The lock on second-factor codes of an account whose password (or
    /// session) was shown: apart from the password's, so that a password
    /// sign-in does not reset the count of wrong codes; only a right code
    /// does. A six-digit code is a small space, so sources are not each
    /// given their own free tries: every source the account has not
    /// signed in from shares one delay (the pre-issue-8 per-account lock,
    /// at most 4 guesses an hour once it has grown), and only trusted
    /// sources count apart, so that someone holding the password cannot
    /// delay the owner at their usual address.
    pub fn factor(user_id: &str, ip: &str) -> Lock {
        Lock {
            scope: factor_scope(user_id),
            source: bucket_ip(ip),
            account: Some(user_id.to_string()),
            kind: Kind::Factor,
        }
    }
}

fn password_scope(user_id: &str) -> String {
    format!("u:{user_id}")
}

fn factor_scope(user_id: &str) -> String {
    format!("f:{user_id}")
}

/// The source row shared by every untrusted source of a factor lock.
const UNTRUSTED: &str = "*";

/// The growing delays after the free failures, in seconds.
const DELAYS: [i64; 9] = [1, 3, 10, 30, 60, 120, 300, 600, 900];
/// A (scope, source) count with no failure for a day starts over.
const FORGET_AFTER: i64 = 86_400;
/// The rolling window of the account budget.
const BUDGET_WINDOW: i64 = 3600;
/// How long a successful sign-in makes its source trusted for the account.
pub const TRUST_FOR: i64 = 30 * 86_400;
/// Trusted sources kept per account (the most recent).
pub const MAX_TRUSTED: i64 = 5;

/// The row of `lock` that this attempt counts on: its own source, except
/// an untrusted source of a factor lock, which shares one row.
fn row_source(conn: &Connection, lock: &Lock, now: i64) -> Result<String, Error> {
    match lock.kind {
        Kind::Factor if !is_trusted(conn, lock, now)? => Ok(UNTRUSTED.to_string()),
        _ => Ok(lock.source.clone()),
    }
}

/// True when the lock's account signed in from its source within
/// `TRUST_FOR`. An unknown name runs the same query (for no account), so
/// that it costs what a known one does.
fn is_trusted(conn: &Connection, lock: &Lock, now: i64) -> Result<bool, Error> {
    let hit: Option<i64> = conn
        .prepare_cached(
            "SELECT 1 FROM trusted_sources WHERE user_id = ?1 AND source = ?2 AND last_seen > ?3",
        )?
        .query_row(
            params![
                lock.account.as_deref().unwrap_or(""),
                lock.source,
                now - TRUST_FOR
            ],
            |r| r.get(0),
        )
        .optional()?;
    Ok(hit.is_some())
}

/// Records a completed sign-in of `user_id` from `ip`: that source is
/// trusted for the account for `TRUST_FOR`. Only the `MAX_TRUSTED` most
/// recent are kept, so the bound on guesses stays a number.
pub fn trust(conn: &Connection, user_id: &str, ip: &str, now: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO trusted_sources (user_id, source, last_seen) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, source) DO UPDATE SET last_seen = ?3",
    )?
    .execute(params![user_id, bucket_ip(ip), now])?;
    conn.prepare_cached(
        "DELETE FROM trusted_sources WHERE user_id = ?1 AND source NOT IN
         (SELECT source FROM trusted_sources WHERE user_id = ?1
          ORDER BY last_seen DESC, source LIMIT ?2)",
    )?
    .execute(params![user_id, MAX_TRUSTED])?;
    Ok(())
}

/// Until when this attempt's source must wait (0 when it may try now):
/// the later of its own delay and, for a budgeted lock whose scope spent
/// `limits.account_failures_per_hour` in the last hour, when the budget
/// has room again, unless the source is trusted for the account. Never
/// another source's delay: that is what keeps the answer (Retry-After,
/// X-Account-Lockout) from telling an attacker when the owner may try.
pub fn locked_until(
    conn: &Connection,
    lock: &Lock,
    limits: &Limits,
    now: i64,
) -> Result<i64, Error> {
    let source = row_source(conn, lock, now)?;
    let own: Option<i64> = conn
        .prepare_cached("SELECT locked_until FROM lockouts WHERE scope = ?1 AND source = ?2")?
        .query_row(params![lock.scope, source], |r| r.get(0))
        .optional()?;
    let own = own.filter(|u| *u > now).unwrap_or(0);
    if lock.kind != Kind::Budgeted {
        return Ok(own);
    }
    let budget = i64::from(limits.account_failures_per_hour.max(1));
    let spent: i64 = conn
        .prepare_cached("SELECT count(*) FROM lock_failures WHERE scope = ?1 AND at > ?2")?
        .query_row(params![lock.scope, now - BUDGET_WINDOW], |r| r.get(0))?;
    if spent < budget || is_trusted(conn, lock, now)? {
        return Ok(own);
    }
    // Room comes back when enough of the counted failures have left the
    // window for the count to drop below the budget.
    let freed: i64 = conn
        .prepare_cached(
            "SELECT at FROM lock_failures WHERE scope = ?1 AND at > ?2
             ORDER BY at LIMIT 1 OFFSET ?3",
        )?
        .query_row(
            params![lock.scope, now - BUDGET_WINDOW, spent - budget],
            |r| r.get(0),
        )?;
    Ok(own.max(freed + BUDGET_WINDOW))
}

/// Refuses with Retry-After (this source's own wait) while it must wait.
pub fn check(conn: &Connection, lock: &Lock, limits: &Limits, now: i64) -> Result<(), Error> {
    match locked_until(conn, lock, limits, now)? {
        0 => Ok(()),
        until => Err(Error::RateLimited {
            retry_after: (until - now).max(1) as u64,
        }),
    }
}

/// A failure as counted, to be taken back when it was counted ahead of a
/// check that then passed (see `auth::check_password`).
#[derive(Debug)]
pub struct Counted {
    budget_row: Option<i64>,
}

/// Counts a failure against this source's delay and, for a budgeted lock,
/// the scope's hourly budget. With `free_failures = N`, N failures go
/// freely and the N+1th attempt waits 1 s, the next 3 s, and so on.
pub fn record_failure(
    conn: &Connection,
    lock: &Lock,
    limits: &Limits,
    now: i64,
) -> Result<Counted, Error> {
    let source = row_source(conn, lock, now)?;
    let prev: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT failures, updated_at FROM lockouts WHERE scope = ?1 AND source = ?2",
        )?
        .query_row(params![lock.scope, source], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let failures = match prev {
        Some((f, at)) if now - at < FORGET_AFTER => f + 1,
        _ => 1,
    };
    // The Nth failure sets the first delay, so that the attempt after the
    // free ones waits (0 free behaves as 1: the first attempt has nothing
    // to wait for).
    let free = i64::from(limits.free_failures.max(1));
    let until = if failures >= free {
        now + DELAYS[((failures - free) as usize).min(DELAYS.len() - 1)]
    } else {
        0
    };
    conn.prepare_cached(
        "INSERT INTO lockouts (scope, source, failures, locked_until, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scope, source) DO UPDATE SET failures = ?3, locked_until = ?4, updated_at = ?5",
    )?
    .execute(params![lock.scope, source, failures, until, now])?;
    let budget_row = if lock.kind == Kind::Budgeted {
        conn.prepare_cached("DELETE FROM lock_failures WHERE scope = ?1 AND at <= ?2")?
            .execute(params![lock.scope, now - BUDGET_WINDOW])?;
        conn.prepare_cached("INSERT INTO lock_failures (scope, at) VALUES (?1, ?2)")?
            .execute(params![lock.scope, now])?;
        Some(conn.last_insert_rowid())
    } else {
        None
    };
    Ok(Counted { budget_row })
}

/// A success: forgets this source's failures, and takes back `counted`
/// when the attempt had been counted ahead. The budget keeps the other
/// failures (they were guesses all the same), and other sources keep
/// theirs, so that the owner signing in hands nobody fresh free tries;
/// for the same reason a factor success from an untrusted source leaves
/// the shared untrusted count alone.
pub fn clear(
    conn: &Connection,
    lock: &Lock,
    counted: Option<Counted>,
    now: i64,
) -> Result<(), Error> {
    let source = row_source(conn, lock, now)?;
    if source != UNTRUSTED {
        conn.prepare_cached("DELETE FROM lockouts WHERE scope = ?1 AND source = ?2")?
            .execute(params![lock.scope, source])?;
    }
    if let Some(row) = counted.and_then(|c| c.budget_row) {
        conn.prepare_cached("DELETE FROM lock_failures WHERE rowid = ?1")?
            .execute([row])?;
    }
    Ok(())
}

fn clear_scope(conn: &Connection, scope: &str) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM lockouts WHERE scope = ?1")?
        .execute([scope])?;
    conn.prepare_cached("DELETE FROM lock_failures WHERE scope = ?1")?
        .execute([scope])?;
    Ok(())
}

/// Forgets every source's failures on `user_id`'s password, and its
/// budget (a new password makes the old guesses moot).
pub fn clear_password(conn: &Connection, user_id: &str) -> Result<(), Error> {
    clear_scope(conn, &password_scope(user_id))
}

/// Forgets every source's failures on `user_id`'s second factor (an admin
/// reset of it).
pub fn clear_factor(conn: &Connection, user_id: &str) -> Result<(), Error> {
    clear_scope(conn, &factor_scope(user_id))
}

/// Deletes what no longer counts (the sweeper): delays forgotten and
/// over, failures out of the budget window, trust that has lapsed.
pub fn sweep(conn: &Connection, now: i64) -> Result<usize, Error> {
    let mut n = conn
        .prepare_cached("DELETE FROM lockouts WHERE updated_at <= ?1 AND locked_until <= ?2")?
        .execute(params![now - FORGET_AFTER, now])?;
    n += conn
        .prepare_cached("DELETE FROM lock_failures WHERE at <= ?1")?
        .execute([now - BUDGET_WINDOW])?;
    n += conn
        .prepare_cached("DELETE FROM trusted_sources WHERE last_seen <= ?1")?
        .execute([now - TRUST_FOR])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("l.db")).unwrap();
        (dir, conn)
    }

    fn limits(free: u32, budget: u32) -> Limits {
        Limits {
            free_failures: free,
            account_failures_per_hour: budget,
            ..Limits::default()
        }
    }

    /// A user row, for trusted_sources' foreign key.
    fn user(conn: &Connection, id: &str) {
        conn.execute(
            "INSERT INTO users (id, status, role, created_at, updated_at) VALUES (?1, 'active', 'user', 0, 0)",
            [id],
        )
        .unwrap();
    }

    #[test]
    fn the_soft_lock_grows_and_clears() {
        let (_d, conn) = db();
        let l = limits(3, 100);
        let k = Lock::password(Some("u1"), "alice", "1.2.3.4");
        for _ in 0..2 {
            record_failure(&conn, &k, &l, 1000).unwrap();
            assert_eq!(locked_until(&conn, &k, &l, 1000).unwrap(), 0);
        }
        record_failure(&conn, &k, &l, 1000).unwrap();
        assert_eq!(locked_until(&conn, &k, &l, 1000).unwrap(), 1001);
        record_failure(&conn, &k, &l, 1000).unwrap();
        assert_eq!(
            check(&conn, &k, &l, 1001),
            Err(Error::RateLimited { retry_after: 2 })
        );
        assert!(check(&conn, &k, &l, 1003).is_ok());
        clear(&conn, &k, None, 1003).unwrap();
        assert_eq!(locked_until(&conn, &k, &l, 1000).unwrap(), 0);
    }

    #[test]
    fn five_free_failures_then_the_sixth_attempt_waits() {
        let (_d, conn) = db();
        let l = Limits::default();
        assert_eq!(l.free_failures, 5);
        let k = Lock::password(Some("u1"), "alice", "1.2.3.4");
        for n in 1..=5 {
            assert!(check(&conn, &k, &l, 1000).is_ok(), "attempt {n} is free");
            record_failure(&conn, &k, &l, 1000).unwrap();
        }
        assert_eq!(
            check(&conn, &k, &l, 1000),
            Err(Error::RateLimited { retry_after: 1 })
        );
    }

    #[test]
    fn another_source_is_not_held_up_by_an_attackers_delay() {
        let (_d, conn) = db();
        let l = limits(2, 100);
        let attacker = Lock::password(Some("u1"), "alice", "10.0.0.1");
        let owner = Lock::password(Some("u1"), "alice", "10.0.0.2");
        for _ in 0..6 {
            record_failure(&conn, &attacker, &l, 1000).unwrap();
        }
        assert!(check(&conn, &attacker, &l, 1000).is_err());
        assert_eq!(locked_until(&conn, &owner, &l, 1000).unwrap(), 0);
        // The owner's success does not clear the attacker's count.
        clear(&conn, &owner, None, 1000).unwrap();
        assert!(check(&conn, &attacker, &l, 1000).is_err());
    }

    #[test]
    fn a_spent_budget_refuses_untrusted_sources_until_the_hour_passes() {
        let (_d, conn) = db();
        user(&conn, "u1");
        let l = limits(100, 3);
        trust(&conn, "u1", "10.0.0.9", 500).unwrap();
        for (i, ip) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            let k = Lock::password(Some("u1"), "alice", ip);
            check(&conn, &k, &l, 1000 + i as i64).unwrap();
            record_failure(&conn, &k, &l, 1000 + i as i64).unwrap();
        }
        let fresh = Lock::password(Some("u1"), "alice", "10.0.0.4");
        assert_eq!(
            check(&conn, &fresh, &l, 1010),
            Err(Error::RateLimited {
                retry_after: 1000 + 3600 - 1010
            })
        );
        let trusted = Lock::password(Some("u1"), "alice", "10.0.0.9");
        assert!(check(&conn, &trusted, &l, 1010).is_ok());
        // A trusted failure counts too: room comes back one hour after the
        // second oldest failure, not the oldest.
        record_failure(&conn, &trusted, &l, 1010).unwrap();
        assert_eq!(locked_until(&conn, &fresh, &l, 4600).unwrap(), 4601);
        assert!(check(&conn, &fresh, &l, 4601).is_ok());
        // An unknown name has no trusted source: the budget binds everyone.
        let name = |ip| Lock::password(None, "mallory", ip);
        for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            record_failure(&conn, &name(ip), &l, 2000).unwrap();
        }
        assert!(check(&conn, &name("10.0.0.9"), &l, 2000).is_err());
    }

    #[test]
    fn trust_lapses_and_only_the_most_recent_sources_are_kept() {
        let (_d, conn) = db();
        user(&conn, "u1");
        let k = |ip| Lock::password(Some("u1"), "alice", ip);
        trust(&conn, "u1", "10.0.0.1", 0).unwrap();
        assert!(is_trusted(&conn, &k("10.0.0.1"), TRUST_FOR - 1).unwrap());
        assert!(!is_trusted(&conn, &k("10.0.0.1"), TRUST_FOR).unwrap());
        for i in 2..=(MAX_TRUSTED + 1) {
            trust(&conn, "u1", &format!("10.0.0.{i}"), i).unwrap();
        }
        assert!(!is_trusted(&conn, &k("10.0.0.1"), 100).unwrap());
        assert!(is_trusted(&conn, &k("10.0.0.2"), 100).unwrap());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM trusted_sources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MAX_TRUSTED);
        // Trust is per account.
        let other = Lock::password(Some("u2"), "bob", "10.0.0.2");
        assert!(!is_trusted(&conn, &other, 100).unwrap());
    }

    #[test]
    fn untrusted_sources_share_one_second_factor_delay() {
        let (_d, conn) = db();
        user(&conn, "u1");
        let l = limits(2, 100);
        trust(&conn, "u1", "10.0.0.9", 900).unwrap();
        for ip in ["10.0.0.1", "10.0.0.2"] {
            record_failure(&conn, &Lock::factor("u1", ip), &l, 1000).unwrap();
        }
        assert!(check(&conn, &Lock::factor("u1", "10.0.0.3"), &l, 1000).is_err());
        assert!(check(&conn, &Lock::factor("u1", "10.0.0.9"), &l, 1000).is_ok());
        // A success from an untrusted source leaves the shared count alone.
        clear(&conn, &Lock::factor("u1", "10.0.0.3"), None, 1000).unwrap();
        assert!(check(&conn, &Lock::factor("u1", "10.0.0.1"), &l, 1000).is_err());
        clear_factor(&conn, "u1").unwrap();
        assert!(check(&conn, &Lock::factor("u1", "10.0.0.1"), &l, 1000).is_ok());
    }

    #[test]
    fn a_failure_counted_ahead_is_taken_back_on_success() {
        let (_d, conn) = db();
        let l = limits(100, 1);
        let k = Lock::password(Some("u1"), "alice", "10.0.0.1");
        let counted = record_failure(&conn, &k, &l, 1000).unwrap();
        assert!(
            check(&conn, &k, &l, 1000).is_err(),
            "the budget of one is spent"
        );
        clear(&conn, &k, Some(counted), 1000).unwrap();
        assert!(check(&conn, &k, &l, 1000).is_ok());
    }

    #[test]
    fn clearing_a_password_forgets_every_source_and_the_budget() {
        let (_d, conn) = db();
        let l = limits(1, 2);
        for ip in ["10.0.0.1", "10.0.0.2"] {
            record_failure(&conn, &Lock::password(Some("u1"), "a", ip), &l, 1000).unwrap();
        }
        clear_password(&conn, "u1").unwrap();
        for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            assert!(check(&conn, &Lock::password(Some("u1"), "a", ip), &l, 1000).is_ok());
        }
    }

    #[test]
    fn the_sweeper_deletes_what_no_longer_counts() {
        let (_d, conn) = db();
        user(&conn, "u1");
        let l = limits(1, 30);
        record_failure(&conn, &Lock::password(Some("u1"), "a", "10.0.0.1"), &l, 0).unwrap();
        trust(&conn, "u1", "10.0.0.2", 0).unwrap();
        assert_eq!(sweep(&conn, 100).unwrap(), 0);
        assert_eq!(sweep(&conn, TRUST_FOR).unwrap(), 3);
    }

    #[test]
    fn unknown_names_lock_by_their_hash_case_insensitively() {
        assert_eq!(
            Lock::password(None, "Bob", "1.2.3.4"),
            Lock::password(None, " bob ", "1.2.3.4")
        );
        assert_ne!(
            Lock::password(None, "bob", "1.2.3.4").scope,
            Lock::password(Some("bob"), "bob", "1.2.3.4").scope
        );
        assert_eq!(
            Lock::code("Bob", None, "1.2.3.4").scope,
            Lock::code("bob", Some("u1"), "1.2.3.4").scope
        );
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        assert_eq!(
            Lock::password(Some("u"), "", "2001:db8:1:2::1").source,
            Lock::password(Some("u"), "", "2001:db8:1:2::ffff").source
        );
    }
}
